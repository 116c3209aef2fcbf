// The lease engine over the REAL runtime (bubblewrap, cgroups, supervisors), with a
// fake ledger: a manifest starts a sandboxed workload with exactly the lease's GPU
// (fake device nodes), a restarted engine re-attaches to it without starting it
// again, the ledger's close stops it and retention's end removes it. Needs root;
// the test binary is its own supervisor (integration/sandbox/self_supervisor.h).
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "crypto/address.h"
#include "crypto/hash.h"
#include "integration/sandbox/self_supervisor.h"
#include "provider/engine.h"
#include "runtime/outputs.h"
#include "unit/provider/engine_fakes.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

constexpr uint32_t kMachine = 1;

/// Counts starts, so a test can say "nothing was started twice".
class CountingWorkloads final : public WorkloadPort {
 public:
  explicit CountingWorkloads(RuntimeWorkloads& real) : m_real(real) {}
  std::vector<std::string> List() override { return m_real.List(); }
  base::Result<bool> Running(const std::string& id) override { return m_real.Running(id); }
  base::Status Start(const runtime::WorkloadSpec& spec) override {
    ++starts;
    return m_real.Start(spec);
  }
  base::Status Stop(const std::string& id) override { return m_real.Stop(id); }
  base::Status Remove(const std::string& id) override { return m_real.Remove(id); }
  int starts = 0;

 private:
  RuntimeWorkloads& m_real;
};

class EngineRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox needs root";
    m_tmp.emplace(gpunet::testing::TempDirOptions{
        .parent = "/tmp", .prefix = "gpunet-engine-rt", .mode = 0711});
    m_options = gpunet::testing::SelfSupervisedOptions(m_tmp->Path(), 440000);
    const std::string dev = m_tmp->Sub("dev");
    ASSERT_EQ(::mkdir(dev.c_str(), 0711), 0);
    for (int minor : {0, 1}) {
      std::string node = dev + "/nvidia" + std::to_string(minor);
      ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0666, makedev(195, minor)), 0)
          << std::strerror(errno);
    }
    m_options.device_dir = dev;
    m_options.gpu_minors = {{"GPU-dev-0", 0}, {"GPU-dev-1", 1}};
    m_chain.view.height = 5;
    m_chain.view.time_ms = 1'000'000;
    m_chain.view.params.manifest_timeout_ms = 600'000;
    m_chain.view.params.heartbeat_timeout_ms = 300'000;
  }
  void TearDown() override {
    if (!m_tmp) return;
    runtime::Runtime rt(m_options);
    for (const auto& id : rt.List()) EXPECT_TRUE(rt.Remove(id).has_value()) << id;
    EXPECT_FALSE(m_tmp->Remove());
  }
  std::unique_ptr<Engine> Make(WorkloadPort& workloads) {
    auto book = LeaseBook::Open(m_tmp->Sub("state"));
    EXPECT_TRUE(book.has_value());
    EngineOptions o;
    o.provider = m_provider;
    o.machine_id = kMachine;
    o.outputs_retention_ms = 60'000;
    EngineHooks hooks;
    // Small limits, as the sandbox tests use; the dirs a manifest names (PlanWorkload
    // copies them into the spec; workload_plan_test checks that).
    hooks.build_spec = [this](const SpecInput& in) {
      auto spec = MinimalWorkloadSpec(in);
      if (spec) {
        if (!m_workdir.empty()) spec->workdir = m_workdir;
        if (!m_outputs_dir.empty()) spec->outputs_dir = m_outputs_dir;
        spec->resources.memory_bytes = 256ull << 20;
        spec->resources.pids_max = 64;
        spec->resources.disk_bytes = 32ull << 20;
        spec->resources.shm_bytes = 8ull << 20;
      }
      return spec;
    };
    std::vector<PoolGpu> gpus = {{"GPU-dev-0", "H100", 0, true, {}, 0},
                                 {"GPU-dev-1", "H100", 1, true, {}, 0}};
    return std::make_unique<Engine>(o, hooks, m_chain, workloads, std::move(*book), std::move(gpus),
                                    m_clock);
  }
  void AddLease(uint64_t id, const std::string& manifest) {
    client::LeaseInfo l;
    l.lease_id = id;
    l.provider = crypto::AddressToString(m_provider);
    l.allocations = {{kMachine, 1}};
    l.gpus = 1;
    l.state = "reserved";
    l.manifest_hash = crypto::Blake2b256(base::AsBytes(manifest));
    l.paid_until_ms = m_chain.view.time_ms + 3'600'000;
    m_chain.view.leases[id] = l;
  }

  std::optional<gpunet::testing::TempDir> m_tmp;
  std::string m_workdir, m_outputs_dir;
  runtime::RuntimeOptions m_options;
  gpunet::testing::FakeChain m_chain;
  codec::Address m_provider = gpunet::testing::TestAddress("provider");
  base::ManualClock m_clock{1'000};
};

TEST_F(EngineRuntimeTest, ManifestStartsTheWorkloadARestartAttachesTheCloseStopsAndRemoves) {
  // A lease id of this process, so concurrent runs never share a workload id.
  const uint64_t lease = 1'000'000 + static_cast<uint64_t>(::getpid());
  const std::string id = WorkloadIdOf(lease);
  const std::string manifest =
      R"({"command":["/bin/sh","-c","echo gpus=$CUDA_VISIBLE_DEVICES; exec sleep 60"]})";
  AddLease(lease, manifest);
  RuntimeWorkloads real(m_options);
  CountingWorkloads first(real);
  auto engine = Make(first);
  engine->Reconcile();  // GPUs set aside, LeaseStarted
  engine->Reconcile();  // the book sees it started
  ASSERT_EQ(m_chain.view.leases[lease].state, "started");
  auto submitted = engine->SubmitManifest(lease, manifest);
  ASSERT_TRUE(submitted.has_value()) << submitted.error().ToString();
  auto info = real.Underlying().Attach(id);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->running);
  const pid_t supervisor = info->supervisor_pid;
  // Its GPU, and only it: CUDA_VISIBLE_DEVICES names the lease's one UUID.
  std::string out;
  for (int i = 0; i < 100 && out.find('\n') == std::string::npos; ++i) {
    out = gpunet::testing::FileText(info->run_dir + "/stdout.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(out, "gpus=GPU-dev-0\n");

  // The daemon restarts: the workload is attached, not started again.
  engine.reset();
  CountingWorkloads second(real);
  engine = Make(second);
  engine->Reconcile();
  EXPECT_EQ(second.starts, 0);
  EXPECT_EQ(real.Underlying().Attach(id)->supervisor_pid, supervisor);
  EXPECT_TRUE(*real.Running(id));
  EXPECT_EQ(engine->SubmitManifest(lease, manifest).error().code, base::ErrorCode::kConflict);

  // The ledger closes the lease: the workload stops, its run dir stays for retention.
  auto& l = m_chain.view.leases[lease];
  l.state = "closed";
  l.end = "tenant_closed";
  l.closed_ms = m_chain.view.time_ms;
  engine->Reconcile();
  auto polled = real.Underlying().Poll(id);
  ASSERT_TRUE(polled.has_value() && polled->has_value());
  EXPECT_EQ((*polled)->reason, runtime::ExitReason::kStopped);
  EXPECT_EQ(real.List(), std::vector<std::string>{id});
  m_chain.view.time_ms += 60'000;
  engine->Reconcile();
  EXPECT_TRUE(real.List().empty());
  EXPECT_TRUE(engine->RecordsForTest().empty());
}

TEST_F(EngineRuntimeTest, TheManifestsWorkdirAndOutputsDirAreWhereTheWorkloadRunsAndWrites) {
  const uint64_t lease = 2'000'000 + static_cast<uint64_t>(::getpid());
  const std::string id = WorkloadIdOf(lease);
  m_workdir = "/work/src/app";
  m_outputs_dir = "/work/results";
  const std::string manifest =
      R"({"command":["/bin/sh","-c","pwd; echo $GPUNET_OUTPUT_DIR; echo done > $GPUNET_OUTPUT_DIR/r.txt"]})";
  AddLease(lease, manifest);
  RuntimeWorkloads real(m_options);
  auto engine = Make(real);
  engine->Reconcile();
  engine->Reconcile();
  auto submitted = engine->SubmitManifest(lease, manifest);
  ASSERT_TRUE(submitted.has_value()) << submitted.error().ToString();
  for (int i = 0; i < 200; ++i) {
    auto polled = real.Underlying().Poll(id);
    if (polled && polled->has_value()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto info = real.Underlying().Attach(id);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(gpunet::testing::FileText(info->run_dir + "/stdout.log"),
            "/work/src/app\n/work/results\n");
  // The tenant API reads the outputs where the workload left them, as its files.
  EXPECT_EQ(info->outputs_dir, info->run_dir + "/fs/work/results");
  auto reader = runtime::OutputsReader::Open(info->outputs_dir, info->uid);
  ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
  auto text = reader->ReadFile("r.txt", 100);
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  EXPECT_EQ(*text, "done\n");
}

}  // namespace
}  // namespace gpunet::provider
