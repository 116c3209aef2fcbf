#include "provider/workload_plan.h"

#include <algorithm>
#include <set>

#include "base/check.h"
#include "base/checked_math.h"
#include "runtime/podman.h"
#include "runtime/runtime.h"

namespace gpunet::provider {
namespace {

using base::ErrorCode;
using base::Fail;

/// floor(amount * gpus / gpu_count), exact (gpus <= gpu_count, so it fits).
uint64_t ShareOf(uint64_t amount, uint32_t gpus, uint32_t gpu_count) {
  auto r = base::MulDivFloor(amount, gpus, gpu_count);
  GPUNET_CHECK(r.has_value() && r->quotient <= amount);
  return r->quotient;
}

/// "2 of 8 GPUs of machine 3 with 192 GiB memory": what a share was computed from.
std::string ShareBasis(const MachineShare& share, const client::MachineInfo& machine,
                       const std::string& resource) {
  return std::to_string(share.gpus) + " of " + std::to_string(share.gpu_count) +
         " GPUs of machine " + std::to_string(machine.machine_id) + " with " + resource;
}

/// A limit the manifest asks: at most the share; absent = the share.
base::Result<uint64_t> Limit(const std::optional<uint32_t>& asked, uint64_t share,
                             const std::string& field, const std::string& unit,
                             const std::string& basis) {
  if (!asked) return share;
  if (*asked > share)
    return Fail(ErrorCode::kLimitExceeded, "manifest " + field + " asks " + std::to_string(*asked) +
                                               " " + unit + ", over the lease's machine share of " +
                                               std::to_string(share) + " " + unit + " (" + basis +
                                               "); ask at most the share, or lease more GPUs");
  return *asked;
}

base::Result<const client::AllocationInfo*> FindAllocation(const client::LeaseInfo& lease,
                                                           uint32_t machine_id, uint32_t& rank) {
  const client::AllocationInfo* found = nullptr;
  for (size_t i = 0; i < lease.allocations.size(); ++i) {
    if (lease.allocations[i].machine_id != machine_id) continue;
    if (found != nullptr)
      return Fail(ErrorCode::kCorrupt, "lease " + std::to_string(lease.lease_id) +
                                           " lists machine " + std::to_string(machine_id) +
                                           " twice");
    found = &lease.allocations[i];
    rank = static_cast<uint32_t>(i);
  }
  if (found == nullptr)
    return Fail(ErrorCode::kCorrupt, "lease " + std::to_string(lease.lease_id) +
                                         " has no GPUs on machine " + std::to_string(machine_id) +
                                         "; it runs elsewhere");
  return found;
}

base::Result<Environment> FindEnvironment(const std::vector<Environment>& environments,
                                          const std::string& name) {
  for (const auto& e : environments)
    if (e.name == name) return e;
  std::string list;
  for (const auto& e : environments) list += (list.empty() ? "" : ", ") + e.name;
  return Fail(ErrorCode::kNotFound,
              "manifest environment \"" + name + "\" is not run by this provider; it runs: " +
                  (list.empty() ? std::string("nothing yet") : list) +
                  " (GET /environments); pick one of them before creating a lease");
}

base::Status CheckGpus(const std::vector<std::string>& uuids, uint32_t gpus) {
  if (uuids.size() != gpus)
    return Fail(ErrorCode::kInvalidArgument,
                std::to_string(uuids.size()) + " GPUs set aside for a lease of " +
                    std::to_string(gpus) + " on this machine; give exactly its GPUs");
  std::set<std::string_view> seen;
  for (const auto& u : uuids)
    if (!seen.insert(u).second)
      return Fail(ErrorCode::kInvalidArgument, "GPU " + u + " is set aside twice");
  return base::Ok();
}

/// The runtime::Resources of the plan: each limit at most the share.
base::Result<runtime::Resources> PlanResources(const client::ManifestResources& asked,
                                               const MachineShare& share,
                                               const client::MachineInfo& machine) {
  runtime::Resources r;
  GPUNET_TRY_ASSIGN(
      uint64_t memory_mib,
      Limit(asked.memory_mib, share.memory_mib, "resources.memory_mib", "MiB",
            ShareBasis(share, machine, std::to_string(machine.memory_gib) + " GiB memory")));
  GPUNET_TRY_ASSIGN(
      uint64_t cpu_millis,
      Limit(asked.cpu_millis, share.cpu_millis, "resources.cpu_millis", "thousandths of a core",
            ShareBasis(share, machine, std::to_string(machine.cpu_cores) + " CPU cores")));
  GPUNET_TRY_ASSIGN(
      uint64_t disk_mib,
      Limit(asked.disk_mib, share.disk_mib, "resources.disk_mib", "MiB",
            ShareBasis(share, machine, std::to_string(machine.disk_gib) + " GiB disk")));
  uint64_t shm_mib = asked.shm_mib ? *asked.shm_mib : std::min(kDefaultShmMib, memory_mib);
  if (shm_mib > memory_mib)
    return Fail(ErrorCode::kLimitExceeded,
                "manifest resources.shm_mib asks " + std::to_string(shm_mib) +
                    " MiB, over the memory limit of " + std::to_string(memory_mib) +
                    " MiB it counts in; ask less shared memory");
  r.memory_bytes = memory_mib << 20;
  r.cpu_millis = static_cast<uint32_t>(cpu_millis);  // <= share.cpu_millis, a uint32_t
  r.disk_bytes = disk_mib << 20;
  r.shm_bytes = shm_mib << 20;
  r.pids_max = kWorkloadPidsMax;
  return r;
}

runtime::NetworkMode PlanNetwork(client::ManifestNetwork network) {
  switch (network) {
    case client::ManifestNetwork::kNone:
      return runtime::NetworkMode::kNone;
    case client::ManifestNetwork::kEgress:
      return runtime::NetworkMode::kEgress;
    case client::ManifestNetwork::kPorts:
      return runtime::NetworkMode::kPorts;
  }
  GPUNET_CHECK(false);
  return runtime::NetworkMode::kNone;
}

}  // namespace

Environment HostEnvironment() {
  return {std::string(client::kHostEnvironment), runtime::Backend::kSandbox, ""};
}

Environment ImageEnvironment(const std::string& image) {
  return {image, runtime::Backend::kPodman, image};
}

base::Result<MachineShare> ComputeMachineShare(const client::MachineInfo& machine, uint32_t gpus) {
  if (gpus == 0 || machine.gpu_count < gpus)
    return Fail(ErrorCode::kCorrupt, "machine " + std::to_string(machine.machine_id) + " has " +
                                         std::to_string(machine.gpu_count) +
                                         " GPUs on the ledger; a lease of " + std::to_string(gpus) +
                                         " cannot run on it");
  MachineShare s;
  s.gpus = gpus;
  s.gpu_count = machine.gpu_count;
  uint64_t cpu = ShareOf(uint64_t{machine.cpu_cores} * 1000, gpus, machine.gpu_count);
  s.cpu_millis = static_cast<uint32_t>(std::min<uint64_t>(cpu, UINT32_MAX));
  s.memory_mib = ShareOf(uint64_t{machine.memory_gib} * 1024, gpus, machine.gpu_count);
  s.disk_mib = ShareOf(uint64_t{machine.disk_gib} * 1024, gpus, machine.gpu_count);
  GPUNET_CHECK(s.memory_mib <= uint64_t{machine.memory_gib} * 1024);
  return s;
}

base::Result<WorkloadPlan> PlanWorkload(const WorkloadPlanInput& in) {
  const client::Manifest& m = in.manifest;
  GPUNET_TRY(client::ValidateManifest(m));
  if (client::ManifestHash(m) != in.lease.manifest_hash)
    return Fail(ErrorCode::kCorrupt, "the manifest is not the one lease " +
                                         std::to_string(in.lease.lease_id) +
                                         " carries on the ledger (its manifest_hash differs)");
  uint32_t rank = 0;
  GPUNET_TRY_ASSIGN(auto allocation, FindAllocation(in.lease, in.machine.machine_id, rank));
  GPUNET_TRY_ASSIGN(auto share, ComputeMachineShare(in.machine, allocation->gpus));
  GPUNET_TRY(CheckGpus(in.gpu_uuids, allocation->gpus));
  GPUNET_TRY_ASSIGN(auto environment, FindEnvironment(in.environments, m.environment));

  WorkloadPlan plan;
  plan.share = share;
  runtime::WorkloadSpec& spec = plan.spec;
  spec.id = "lease-" + std::to_string(in.lease.lease_id);
  spec.backend = environment.backend;
  if (environment.backend == runtime::Backend::kPodman) {
    if (!runtime::IsImageReference(environment.image))
      return Fail(ErrorCode::kInvalidArgument,
                  "environment \"" + environment.name + "\" names image \"" + environment.image +
                      "\", which podman would not take as an image reference");
    spec.image = environment.image;
  }
  plan.interactive = m.command.empty();
  // Interactive (issue 18): no command, so the sandbox's init (gpunet-init) serves
  // sessions until the lease ends. A podman image would run its own command for an
  // empty one, and takes no sessions yet: it idles as before.
  spec.command = m.command;
  if (plan.interactive && spec.backend == runtime::Backend::kPodman)
    spec.command = {"sleep", "infinity"};
  spec.env = m.env;
  GPUNET_TRY_ASSIGN(spec.resources, PlanResources(m.resources, share, in.machine));
  spec.network = PlanNetwork(m.network);
  for (uint16_t port : m.ports) spec.ports.push_back({.container_port = port, .host_port = 0});
  spec.gpu_uuids = in.gpu_uuids;
  spec.lease_id = std::to_string(in.lease.lease_id);
  spec.node_rank = rank;
  spec.num_nodes = static_cast<uint32_t>(in.lease.allocations.size());
  spec.lease_ends_at_ms = in.ends_at_ms;
  spec.workdir = m.workdir;
  spec.outputs_dir = m.outputs_dir;
  plan.stop_grace_ms = m.stop_grace_ms;
  plan.secret_names = m.secrets;

  GPUNET_TRY(runtime::ValidateWorkloadStrings(spec));
  if (spec.backend == runtime::Backend::kSandbox) GPUNET_TRY(runtime::ValidateSpec(spec));
  GPUNET_CHECK(spec.resources.memory_bytes <= share.memory_mib << 20);
  GPUNET_CHECK(spec.resources.cpu_millis <= share.cpu_millis);
  return plan;
}

}  // namespace gpunet::provider
