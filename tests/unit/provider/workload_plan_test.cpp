// From a lease and its manifest to the runtime's WorkloadSpec (provider/workload_plan.h):
// the machine share, the manifest's limits within it, environments, GPUs, refusals.
#include "provider/workload_plan.h"

#include <gtest/gtest.h>

#include <string>

namespace gpunet::provider {
namespace {

using base::ErrorCode;

client::MachineInfo Machine() {
  client::MachineInfo m;
  m.machine_id = 3;
  m.gpu_count = 8;
  m.cpu_cores = 100;   // 100 * 1000 * 3 / 8 = 37500 millis
  m.memory_gib = 250;  // 250 * 1024 * 3 / 8 = 96000 MiB
  m.disk_gib = 1001;   // 1001 * 1024 * 3 / 8 = 384384 MiB
  return m;
}

client::Manifest Job() {
  client::Manifest m;
  m.environment = "host";
  m.command = {"python3", "train.py"};
  m.env = {{"OMP_NUM_THREADS", "4"}};
  m.secrets = {"HF_TOKEN"};
  m.network = client::ManifestNetwork::kPorts;
  m.ports = {8888};
  m.workdir = "/work/src";
  m.outputs_dir = "/outputs/run";
  m.stop_grace_ms = 2500;
  return m;
}

WorkloadPlanInput Input(const client::Manifest& manifest = Job()) {
  WorkloadPlanInput in;
  in.lease.lease_id = 42;
  in.lease.allocations = {{.machine_id = 9, .gpus = 4}, {.machine_id = 3, .gpus = 3}};
  in.lease.manifest_hash = client::ManifestHash(manifest);
  in.machine = Machine();
  in.ends_at_ms = 1'700'000'000'000;
  in.manifest = manifest;
  in.gpu_uuids = {"GPU-a", "GPU-b", "GPU-c"};
  in.environments = {HostEnvironment(), ImageEnvironment("docker.io/library/python:3.12")};
  return in;
}

void ExpectRefused(const WorkloadPlanInput& in, ErrorCode code,
                   std::initializer_list<std::string_view> words) {
  auto plan = PlanWorkload(in);
  ASSERT_FALSE(plan) << "planned";
  EXPECT_EQ(plan.error().code, code) << plan.error().message;
  for (auto w : words)
    EXPECT_NE(plan.error().message.find(w), std::string::npos)
        << "message \"" << plan.error().message << "\" lacks \"" << w << "\"";
}

TEST(WorkloadPlan, ShareIsTheLeasesFractionFloored) {
  auto s = ComputeMachineShare(Machine(), 3);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->cpu_millis, 37500u);
  EXPECT_EQ(s->memory_mib, 96000u);
  EXPECT_EQ(s->disk_mib, 384384u);
  // 7 cores for 1 of 3 GPUs: 2333.33 millis, floored.
  client::MachineInfo odd = Machine();
  odd.gpu_count = 3;
  odd.cpu_cores = 7;
  odd.memory_gib = 1;
  odd.disk_gib = 0;
  auto t = ComputeMachineShare(odd, 1);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->cpu_millis, 2333u);
  EXPECT_EQ(t->memory_mib, 341u);
  EXPECT_EQ(t->disk_mib, 0u);
  // The whole machine, at the records' largest values: no overflow.
  client::MachineInfo huge = Machine();
  huge.gpu_count = UINT32_MAX;
  huge.memory_gib = UINT32_MAX;
  huge.cpu_cores = UINT32_MAX;
  auto all = ComputeMachineShare(huge, UINT32_MAX);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->memory_mib, uint64_t{UINT32_MAX} * 1024);
  EXPECT_EQ(all->cpu_millis, UINT32_MAX);  // clamped to the runtime's field
  EXPECT_EQ(ComputeMachineShare(Machine(), 9).error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(ComputeMachineShare(Machine(), 0).error().code, ErrorCode::kCorrupt);
}

TEST(WorkloadPlan, DefaultsToTheShareAndCarriesTheManifest) {
  auto plan = PlanWorkload(Input());
  ASSERT_TRUE(plan) << plan.error().message;
  const runtime::WorkloadSpec& s = plan->spec;
  EXPECT_EQ(s.id, "lease-42");
  EXPECT_EQ(s.backend, runtime::Backend::kSandbox);
  EXPECT_TRUE(s.image.empty());
  EXPECT_EQ(s.command, (std::vector<std::string>{"python3", "train.py"}));
  EXPECT_EQ(s.env, (std::map<std::string, std::string>{{"OMP_NUM_THREADS", "4"}}));
  EXPECT_EQ(s.resources.memory_bytes, 96000ull << 20);
  EXPECT_EQ(s.resources.cpu_millis, 37500u);
  EXPECT_EQ(s.resources.disk_bytes, 384384ull << 20);
  EXPECT_EQ(s.resources.shm_bytes, kDefaultShmMib << 20);
  EXPECT_EQ(s.resources.pids_max, kWorkloadPidsMax);
  EXPECT_EQ(s.network, runtime::NetworkMode::kPorts);
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].container_port, 8888);
  EXPECT_EQ(s.ports[0].host_port, 0);
  EXPECT_EQ(s.gpu_uuids, (std::vector<std::string>{"GPU-a", "GPU-b", "GPU-c"}));
  EXPECT_EQ(s.lease_id, "42");
  EXPECT_EQ(s.node_rank, 1u);  // the second allocation of the lease
  EXPECT_EQ(s.num_nodes, 2u);
  EXPECT_EQ(s.lease_ends_at_ms, 1'700'000'000'000);
  EXPECT_FALSE(s.allow_unenforced_limits);
  EXPECT_FALSE(plan->interactive);
  EXPECT_EQ(plan->spec.workdir, "/work/src");
  EXPECT_EQ(plan->spec.outputs_dir, "/outputs/run");
  EXPECT_EQ(plan->stop_grace_ms, 2500u);
  EXPECT_EQ(plan->secret_names, (std::vector<std::string>{"HF_TOKEN"}));
  EXPECT_EQ(plan->share.gpus, 3u);
}

TEST(WorkloadPlan, ManifestMayAskLessNeverMore) {
  client::Manifest m = Job();
  m.resources.memory_mib = 96000;  // exactly the share
  m.resources.cpu_millis = 1500;
  m.resources.disk_mib = 10240;
  m.resources.shm_mib = 4096;
  auto plan = PlanWorkload(Input(m));
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->spec.resources.memory_bytes, 96000ull << 20);
  EXPECT_EQ(plan->spec.resources.cpu_millis, 1500u);
  EXPECT_EQ(plan->spec.resources.disk_bytes, 10240ull << 20);
  EXPECT_EQ(plan->spec.resources.shm_bytes, 4096ull << 20);

  m = Job();
  m.resources.memory_mib = 96001;
  ExpectRefused(Input(m), ErrorCode::kLimitExceeded,
                {"resources.memory_mib asks 96001 MiB", "share of 96000 MiB",
                 "3 of 8 GPUs of machine 3 with 250 GiB memory"});
  m = Job();
  m.resources.cpu_millis = 37501;
  ExpectRefused(Input(m), ErrorCode::kLimitExceeded,
                {"resources.cpu_millis asks 37501", "share of 37500", "100 CPU cores"});
  m = Job();
  m.resources.disk_mib = 384385;
  ExpectRefused(Input(m), ErrorCode::kLimitExceeded,
                {"resources.disk_mib asks 384385 MiB", "share of 384384 MiB"});
  // Shared memory counts in the memory limit, including a share-sized default one.
  m = Job();
  m.resources.shm_mib = 96001;
  ExpectRefused(Input(m), ErrorCode::kLimitExceeded, {"shm_mib asks 96001", "96000"});
}

TEST(WorkloadPlan, EnvironmentsPickTheBackend) {
  client::Manifest m = Job();
  m.environment = "docker.io/library/python:3.12";
  auto plan = PlanWorkload(Input(m));
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_EQ(plan->spec.backend, runtime::Backend::kPodman);
  EXPECT_EQ(plan->spec.image, "docker.io/library/python:3.12");

  m.environment = "nvcr.io/nvidia/pytorch:24.05-py3";
  ExpectRefused(Input(m), ErrorCode::kNotFound,
                {"\"nvcr.io/nvidia/pytorch:24.05-py3\" is not run by this provider",
                 "host, docker.io/library/python:3.12"});
  WorkloadPlanInput none = Input();
  none.environments.clear();
  ExpectRefused(none, ErrorCode::kNotFound, {"it runs: nothing yet"});
}

TEST(WorkloadPlan, InteractiveKeepsTheSandboxUp) {
  client::Manifest m = Job();
  m.command.clear();
  auto plan = PlanWorkload(Input(m));
  ASSERT_TRUE(plan) << plan.error().message;
  EXPECT_TRUE(plan->interactive);
  // No command: the sandbox's init serves sessions until the lease ends.
  EXPECT_TRUE(plan->spec.command.empty());
}

TEST(WorkloadPlan, RefusesWhatTheLeaseDoesNotHold) {
  WorkloadPlanInput in = Input();
  in.lease.manifest_hash[0] ^= 1;
  ExpectRefused(in, ErrorCode::kCorrupt, {"manifest_hash differs"});
  in = Input();
  in.machine.machine_id = 4;
  ExpectRefused(in, ErrorCode::kCorrupt, {"no GPUs on machine 4"});
  in = Input();
  in.lease.allocations.push_back({.machine_id = 3, .gpus = 1});
  ExpectRefused(in, ErrorCode::kCorrupt, {"lists machine 3 twice"});
  in = Input();
  in.machine.gpu_count = 2;
  ExpectRefused(in, ErrorCode::kCorrupt, {"has 2 GPUs", "lease of 3"});
  in = Input();
  in.gpu_uuids.pop_back();
  ExpectRefused(in, ErrorCode::kInvalidArgument, {"2 GPUs set aside for a lease of 3"});
  in = Input();
  in.gpu_uuids[2] = "GPU-a";
  ExpectRefused(in, ErrorCode::kInvalidArgument, {"GPU GPU-a is set aside twice"});
  in = Input();
  in.gpu_uuids[2] = "GPU,x";
  ExpectRefused(in, ErrorCode::kInvalidArgument, {"malformed"});
  // A share under the runtime's least memory (3 of 255 GPUs of 1 GiB: 12 MiB): the runtime's rule.
  in = Input();
  in.machine.gpu_count = 255;
  in.machine.memory_gib = 1;
  ExpectRefused(in, ErrorCode::kInvalidArgument, {"memory limit below"});
  // An invalid manifest built in code never becomes a plan.
  client::Manifest bad = Job();
  bad.env["GPUNET_LEASE_ID"] = "1";
  in = Input(Job());
  in.manifest = bad;
  ExpectRefused(in, ErrorCode::kInvalidArgument, {"set by the provider's runtime"});
}

}  // namespace
}  // namespace gpunet::provider
