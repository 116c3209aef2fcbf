// From a lease and its manifest to the workload the runtime starts (issue 17 item 4,
// docs/manifest.md "How a provider runs it"). A pure function: no clock, files or
// node; the daemon gathers the inputs and starts the result.
//
// The lease bought a share of one machine: its GPUs out of the machine's GPUs, and
// the same fraction of the machine's CPU, memory and disk as the ledger's machine
// record declares them. The manifest may ask less than that share, never more.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "client/manifest.h"
#include "client/market_answers.h"
#include "runtime/spec.h"

namespace gpunet::provider {

/// The processes and threads one workload may have (the cgroup pids limit). Not in
/// the manifest: a fixed ceiling against fork bombs, high enough for data loaders.
inline constexpr uint32_t kWorkloadPidsMax = 4096;
/// /dev/shm when the manifest does not ask (podman's and Docker's default), capped
/// by the memory limit.
inline constexpr uint64_t kDefaultShmMib = 64;

/// One environment this provider runs, as GET /environments lists it.
struct Environment {
  std::string name;  ///< what a manifest's `environment` names
  runtime::Backend backend = runtime::Backend::kSandbox;
  std::string image;  ///< the podman image (kPodman); empty for kSandbox
};
/// {"host", kSandbox}: bubblewrap over the host's read-only root.
Environment HostEnvironment();
/// {image, kPodman, image}: an image in the provider's local podman store.
Environment ImageEnvironment(const std::string& image);

struct WorkloadPlanInput {
  client::LeaseInfo lease;      ///< as the ledger has it (GET /market/lease/<id>)
  client::MachineInfo machine;  ///< this machine's record on the ledger
  int64_t ends_at_ms = 0;       ///< when the lease's paid time ends (GPUNET_LEASE_ENDS_AT)
  client::Manifest manifest;    ///< verified against lease.manifest_hash already
  /// The GPUs the daemon set aside for this lease on this machine: exactly the
  /// lease's allocation on it, each once.
  std::vector<std::string> gpu_uuids;
  std::vector<Environment> environments;  ///< what this provider runs
};

/// The lease's share of the machine: gpus/gpu_count of each resource, floored.
struct MachineShare {
  uint32_t gpus = 0;        ///< the lease's GPUs on this machine
  uint32_t gpu_count = 0;   ///< the machine's GPUs
  uint32_t cpu_millis = 0;  ///< floor(cpu_cores * 1000 * gpus / gpu_count)
  uint64_t memory_mib = 0;  ///< floor(memory_gib * 1024 * gpus / gpu_count)
  uint64_t disk_mib = 0;    ///< floor(disk_gib * 1024 * gpus / gpu_count)
};

struct WorkloadPlan {
  runtime::WorkloadSpec spec;  ///< secrets not in spec.env yet: the daemon adds their values
  MachineShare share;
  bool interactive = false;  ///< the manifest has no command (the init serves sessions)
  // What the daemon applies beside the spec (docs/manifest.md "How a provider runs it").
  uint32_t stop_grace_ms = 0;
  std::vector<std::string> secret_names;  ///< must all be set before the start
};

/// The lease's share of `machine`, for `gpus` of its GPUs. kCorrupt when the record
/// cannot hold such a lease (no GPUs, fewer than `gpus`, or `gpus` is 0).
[[nodiscard]] base::Result<MachineShare> ComputeMachineShare(const client::MachineInfo& machine,
                                                             uint32_t gpus);

/// Builds the workload for `in`. Refusals, each with what to do:
/// - kNotFound: the manifest's environment is not among `in.environments` (the
///   message lists them);
/// - kLimitExceeded: a manifest limit over the machine share (names the limit, what
///   was asked and the share);
/// - kCorrupt: the manifest's hash is not the lease's, the lease has no allocation on
///   this machine, or the machine record cannot hold it;
/// - kInvalidArgument: gpu_uuids are not exactly the allocation's GPUs, each once, or
///   the resulting spec breaks a runtime rule.
[[nodiscard]] base::Result<WorkloadPlan> PlanWorkload(const WorkloadPlanInput& in);

}  // namespace gpunet::provider
