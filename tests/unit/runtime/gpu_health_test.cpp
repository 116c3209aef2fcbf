// GPU health: the pure evaluators against NVML answers, then GpuMonitor through the
// real loading path with the fake NVML (tests/util/fake_nvml.cpp) standing in for the
// driver, its answers flipped by rewriting the state file between polls.
#include <dlfcn.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/gpu_health.h"
#include "runtime/nvml.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

using base::ErrorCode;
using nlohmann::json;

constexpr int kNotSupported = 3;
constexpr int kNoPermission = 4;
constexpr int kGpuIsLost = 15;
constexpr int kUnknown = 999;

/// A sample of a GPU with nothing wrong, every check answered.
GpuHealthSample Good() {
  GpuHealthSample s;
  s.uuid = "GPU-11111111-2222-3333-4444-555555555555";
  s.ecc_uncorrected_volatile = NvmlAnswer<uint64_t>::Of(0);
  s.ecc_uncorrected_aggregate = NvmlAnswer<uint64_t>::Of(0);
  s.retired_pages_pending = NvmlAnswer<bool>::Failed(kNotSupported);  // Hopper: rows, not pages
  s.remapped_rows = NvmlAnswer<RemappedRows>::Of({});
  s.temperature_c = NvmlAnswer<uint32_t>::Of(41);
  s.slowdown_threshold_c = NvmlAnswer<uint32_t>::Of(90);
  s.clocks_event_reasons = NvmlAnswer<uint64_t>::Of(0x1);  // nvmlClocksEventReasonGpuIdle
  s.xid_events = NvmlAnswer<bool>::Of(true);
  return s;
}

bool HasProblem(const GpuHealth& h, const std::string& check, GpuProblemSeverity severity,
                const std::string& words) {
  return std::ranges::any_of(h.problems, [&](const GpuProblem& p) {
    return p.check == check && p.severity == severity && p.reason.find(words) != std::string::npos;
  });
}

bool Mentions(const std::vector<std::string>& lines, const std::string& words) {
  return std::ranges::any_of(
      lines, [&](const std::string& l) { return l.find(words) != std::string::npos; });
}

TEST(EvaluateGpuHealth, AGoodGpuIsHealthy) {
  GpuHealth h = EvaluateGpuHealth(Good());
  EXPECT_TRUE(h.healthy);
  EXPECT_TRUE(h.problems.empty());
  EXPECT_TRUE(h.notes.empty());
  // Page retirement is not supported on this GPU: not monitored, not unhealthy.
  ASSERT_EQ(h.not_monitored.size(), 1u);
  EXPECT_NE(h.not_monitored[0].find("page retirement: not supported"), std::string::npos);
}

TEST(EvaluateGpuHealth, AGpuNvmlCannotOpenHasFailed) {
  GpuHealthSample s = Good();
  s.handle_code = kGpuIsLost;
  GpuHealth h = EvaluateGpuHealth(s);
  EXPECT_FALSE(h.healthy);
  EXPECT_TRUE(HasProblem(h, "nvml", GpuProblemSeverity::kFailed, "GPU is lost"));
}

TEST(EvaluateGpuHealth, VolatileUncorrectedEccFailsLifetimeCountIsANote) {
  GpuHealthSample s = Good();
  s.ecc_uncorrected_aggregate = NvmlAnswer<uint64_t>::Of(3);
  GpuHealth history = EvaluateGpuHealth(s);
  EXPECT_TRUE(history.healthy);
  EXPECT_TRUE(Mentions(history.notes, "3 uncorrected ECC error(s) over the GPU's life"));

  s.ecc_uncorrected_volatile = NvmlAnswer<uint64_t>::Of(2);
  GpuHealth now = EvaluateGpuHealth(s);
  EXPECT_FALSE(now.healthy);
  EXPECT_TRUE(HasProblem(now, "ecc", GpuProblemSeverity::kFailed,
                         "2 uncorrected ECC error(s) since the driver loaded"));
}

TEST(EvaluateGpuHealth, PendingRetirementAndRemappingFail) {
  GpuHealthSample s = Good();
  s.retired_pages_pending = NvmlAnswer<bool>::Of(true);
  EXPECT_TRUE(HasProblem(EvaluateGpuHealth(s), "retired_pages", GpuProblemSeverity::kFailed,
                         "page retirement is pending"));
  s.retired_pages_pending = NvmlAnswer<bool>::Of(false);
  EXPECT_TRUE(EvaluateGpuHealth(s).healthy);

  s.remapped_rows = NvmlAnswer<RemappedRows>::Of({0, 1, true, false});
  GpuHealth pending = EvaluateGpuHealth(s);
  EXPECT_FALSE(pending.healthy);
  EXPECT_TRUE(HasProblem(pending, "remapped_rows", GpuProblemSeverity::kFailed,
                         "row remapping is pending"));
  EXPECT_TRUE(Mentions(pending.notes, "1 row(s) remapped"));

  s.remapped_rows = NvmlAnswer<RemappedRows>::Of({0, 0, false, true});
  EXPECT_TRUE(HasProblem(EvaluateGpuHealth(s), "remapped_rows", GpuProblemSeverity::kFailed,
                         "row remapping failed"));
  // Rows remapped in the past, nothing pending: the GPU repaired itself.
  s.remapped_rows = NvmlAnswer<RemappedRows>::Of({4, 2, false, false});
  EXPECT_TRUE(EvaluateGpuHealth(s).healthy);
}

TEST(EvaluateGpuHealth, NotSupportedAndAbsentAreNotMonitoredNotUnhealthy) {
  GpuHealthSample s;  // nothing asked: an old driver without any optional entry point
  s.uuid = "GPU-old";
  GpuHealth none = EvaluateGpuHealth(s);
  EXPECT_TRUE(none.healthy);
  EXPECT_TRUE(none.problems.empty());
  EXPECT_TRUE(Mentions(none.not_monitored, "this driver has no nvmlDeviceGetTotalEccErrors"));
  EXPECT_TRUE(Mentions(none.not_monitored, "Xid events: this driver has no"));

  s = Good();
  s.ecc_uncorrected_volatile = NvmlAnswer<uint64_t>::Failed(kNotSupported);  // consumer GPU
  s.ecc_uncorrected_aggregate = NvmlAnswer<uint64_t>::Failed(kNotSupported);
  s.remapped_rows = NvmlAnswer<RemappedRows>::Failed(kNotSupported);
  s.temperature_c = NvmlAnswer<uint32_t>::Failed(kNoPermission);
  s.clocks_event_reasons = NvmlAnswer<uint64_t>::Failed(kUnknown);
  s.xid_events = NvmlAnswer<bool>::Failed(kNotSupported);
  GpuHealth h = EvaluateGpuHealth(s);
  EXPECT_TRUE(h.healthy);
  EXPECT_TRUE(h.problems.empty());
  EXPECT_TRUE(Mentions(h.not_monitored, "uncorrected ECC errors: not supported"));
  EXPECT_TRUE(Mentions(h.not_monitored, "row remapping: not supported"));
  EXPECT_TRUE(Mentions(h.not_monitored, "temperature: no permission"));
  EXPECT_TRUE(Mentions(h.not_monitored, "clock throttling: unknown driver error"));
  EXPECT_TRUE(Mentions(h.not_monitored, "Xid events: not supported"));
}

TEST(EvaluateGpuHealth, ALostGpuAnswerToAnyQueryFails) {
  GpuHealthSample s = Good();
  s.temperature_c = NvmlAnswer<uint32_t>::Failed(kGpuIsLost);
  GpuHealth h = EvaluateGpuHealth(s);
  EXPECT_FALSE(h.healthy);
  EXPECT_TRUE(HasProblem(h, "temperature", GpuProblemSeverity::kFailed, "GPU is lost"));
  s = Good();
  s.ecc_uncorrected_volatile = NvmlAnswer<uint64_t>::Failed(16);  // NVML_ERROR_RESET_REQUIRED
  EXPECT_TRUE(
      HasProblem(EvaluateGpuHealth(s), "ecc", GpuProblemSeverity::kFailed, "requires a reset"));
}

TEST(EvaluateGpuHealth, XidsThatMeanTheGpuFailedAreFatal) {
  for (uint64_t xid : {48, 63, 64, 74, 79, 92, 94, 95}) {
    EXPECT_EQ(ClassifyXid(xid), XidClass::kGpuFault) << xid;
    EXPECT_FALSE(XidMeaning(xid).empty()) << xid;
    GpuHealthSample s = Good();
    s.xids = {xid};
    GpuHealth h = EvaluateGpuHealth(s);
    EXPECT_FALSE(h.healthy) << xid;
    EXPECT_TRUE(HasProblem(h, "xid", GpuProblemSeverity::kFailed, "Xid " + std::to_string(xid)))
        << xid;
  }
  GpuHealthSample s = Good();
  s.xids = {79};
  EXPECT_TRUE(HasProblem(EvaluateGpuHealth(s), "xid", GpuProblemSeverity::kFailed,
                         "Xid 79 (GPU has fallen off the bus)"));
}

TEST(EvaluateGpuHealth, ApplicationXidsAreTheWorkloadsNotTheGpus) {
  for (uint64_t xid : {13, 31, 43, 45}) {
    EXPECT_EQ(ClassifyXid(xid), XidClass::kApplicationFault) << xid;
    GpuHealthSample s = Good();
    s.xids = {xid, xid};
    GpuHealth h = EvaluateGpuHealth(s);
    EXPECT_TRUE(h.healthy) << xid;
    EXPECT_TRUE(h.problems.empty()) << xid;
    ASSERT_EQ(h.notes.size(), 1u) << xid;  // repeated Xids are one note
    EXPECT_NE(h.notes[0].find("the workload's own fault"), std::string::npos) << h.notes[0];
  }
  // 999 is NVML's "unknown Xid": recorded, not judged.
  EXPECT_EQ(ClassifyXid(999), XidClass::kUnclassified);
  GpuHealthSample s = Good();
  s.xids = {999, 13, 79};
  s.xids_dropped = 5;
  GpuHealth h = EvaluateGpuHealth(s);
  EXPECT_FALSE(h.healthy);  // the 79 among them
  EXPECT_TRUE(Mentions(h.notes, "Xid 999: not classified"));
  EXPECT_TRUE(Mentions(h.notes, "5 older Xid(s) not kept"));
}

TEST(EvaluateGpuHealth, HeatAndThrottlingDegradeButDoNotFail) {
  GpuHealthSample s = Good();
  s.temperature_c = NvmlAnswer<uint32_t>::Of(89);
  EXPECT_TRUE(EvaluateGpuHealth(s).problems.empty());
  s.temperature_c = NvmlAnswer<uint32_t>::Of(90);
  GpuHealth hot = EvaluateGpuHealth(s);
  EXPECT_TRUE(hot.healthy);
  EXPECT_TRUE(HasProblem(hot, "temperature", GpuProblemSeverity::kDegraded,
                         "at 90 C, at or above its slowdown threshold of 90 C"));

  s = Good();
  s.clocks_event_reasons = NvmlAnswer<uint64_t>::Of(0x1 | 0x2 | 0x4 | 0x100);  // idle, app
  EXPECT_TRUE(EvaluateGpuHealth(s).problems.empty());  // clocks, power cap, display: normal
  s.clocks_event_reasons = NvmlAnswer<uint64_t>::Of(0x8 | 0x40 | 0x80);
  GpuHealth slow = EvaluateGpuHealth(s);
  EXPECT_TRUE(slow.healthy);
  EXPECT_TRUE(HasProblem(slow, "clocks", GpuProblemSeverity::kDegraded,
                         "hardware slowdown, hardware thermal slowdown, power brake"));
  s.clocks_event_reasons = NvmlAnswer<uint64_t>::Of(0x20);
  EXPECT_TRUE(HasProblem(EvaluateGpuHealth(s), "clocks", GpuProblemSeverity::kDegraded,
                         "software thermal slowdown"));
}

GpuIdleSample IdleSample() {
  GpuIdleSample s;
  s.uuid = "GPU-idle";
  s.compute_processes = NvmlAnswer<std::vector<GpuProcess>>::Of({});
  s.graphics_processes = NvmlAnswer<std::vector<GpuProcess>>::Of({});
  s.memory_used_bytes = NvmlAnswer<uint64_t>::Of(2ull << 20);
  return s;
}

TEST(EvaluateGpuIdle, NoProcessAndBaselineMemoryIsIdle) {
  GpuIdle r = EvaluateGpuIdle(IdleSample(), 0);
  EXPECT_TRUE(r.idle);
  EXPECT_TRUE(r.reasons.empty());
  // A compute-only GPU answers "not supported" for graphics processes.
  GpuIdleSample s = IdleSample();
  s.graphics_processes = NvmlAnswer<std::vector<GpuProcess>>::Failed(kNotSupported);
  EXPECT_TRUE(EvaluateGpuIdle(s, 0).idle);
  s.graphics_processes = {};  // an old driver without the entry point
  EXPECT_TRUE(EvaluateGpuIdle(s, 0).idle);
}

TEST(EvaluateGpuIdle, LeftoverProcessesAndMemoryAreNotIdle) {
  GpuIdleSample s = IdleSample();
  s.compute_processes = NvmlAnswer<std::vector<GpuProcess>>::Of({{4242, 1ull << 30}, {17, {}}});
  s.graphics_processes = NvmlAnswer<std::vector<GpuProcess>>::Of({{4242, {}}});
  GpuIdle r = EvaluateGpuIdle(s, 0);
  EXPECT_FALSE(r.idle);
  EXPECT_EQ(r.pids, (std::vector<uint32_t>{17, 4242}));
  EXPECT_TRUE(Mentions(r.reasons, "2 compute process(es) still on the GPU"));
  EXPECT_TRUE(Mentions(r.reasons, "1 graphics process(es) still on the GPU"));

  s = IdleSample();
  s.memory_used_bytes = NvmlAnswer<uint64_t>::Of((500ull << 20) + kGpuIdleMemorySlackBytes);
  EXPECT_TRUE(EvaluateGpuIdle(s, 500ull << 20).idle);  // the slack, exactly
  s.memory_used_bytes = NvmlAnswer<uint64_t>::Of((500ull << 20) + kGpuIdleMemorySlackBytes + 1);
  GpuIdle mem = EvaluateGpuIdle(s, 500ull << 20);
  EXPECT_FALSE(mem.idle);
  EXPECT_TRUE(mem.pids.empty());
  EXPECT_TRUE(Mentions(mem.reasons, "564 MiB of GPU memory in use, idle baseline 500 MiB"));
}

TEST(EvaluateGpuIdle, WhatCannotBeVerifiedIsNotIdle) {
  GpuIdleSample s = IdleSample();
  s.compute_processes = NvmlAnswer<std::vector<GpuProcess>>::Failed(kNotSupported);
  GpuIdle r = EvaluateGpuIdle(s, 0);
  EXPECT_FALSE(r.idle);
  EXPECT_TRUE(Mentions(r.reasons, "cannot list compute processes: not supported"));
  s = IdleSample();
  s.graphics_processes = NvmlAnswer<std::vector<GpuProcess>>::Failed(kNoPermission);
  EXPECT_FALSE(EvaluateGpuIdle(s, 0).idle);
  s = IdleSample();
  s.memory_used_bytes = NvmlAnswer<uint64_t>::Failed(kGpuIsLost);
  EXPECT_TRUE(Mentions(EvaluateGpuIdle(s, 0).reasons, "cannot read the GPU's memory use"));
  s = IdleSample();
  s.handle_code = kGpuIsLost;
  EXPECT_FALSE(EvaluateGpuIdle(s, 0).idle);
}

// --- through the fake NVML -------------------------------------------------------

const char kH100[] = "GPU-0a1b2c3d-0000-4000-8000-000000000001";
const char kL4[] = "GPU-0a1b2c3d-0000-4000-8000-000000000002";

/// A state file for the fake NVML, named in GPUNET_FAKE_NVML_STATE while it lives,
/// and a handle that keeps the fake loaded so its call counters last the test.
class FakeNvml : public ::testing::Test {
 protected:
  void SetUp() override {
    m_path = m_dir.Sub("nvml.json");
    ::setenv("GPUNET_FAKE_NVML_STATE", m_path.c_str(), 1);
    m_state = {{"driver_version", "580.159.04"},
               {"cuda_driver_version", 13000},
               {"gpus",
                {{{"uuid", kH100},
                  {"name", "NVIDIA H100 80GB HBM3"},
                  {"memory_total_bytes", 85520809984ull},
                  {"memory_used_bytes", 560ull << 20},
                  {"memory_reserved_bytes", 559ull << 20},
                  {"minor", 3},
                  {"compute_capability", {9, 0}},
                  {"pci_bus_id", "00000000:3B:00.0"},
                  {"nvlink", {1, 1, 0, 1}}},
                 {{"uuid", kL4},
                  {"name", "NVIDIA L4"},
                  {"memory_total_bytes", 24152899584ull},
                  {"compute_capability", {8, 9}},
                  {"pci_bus_id", "00000000:5E:00.0"}}}}};
    Write();
    m_fake = ::dlopen(GPUNET_FAKE_NVML, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(m_fake, nullptr) << ::dlerror();
    m_stats = reinterpret_cast<int (*)(const char*)>(::dlsym(m_fake, "fake_nvml_stats"));
    ASSERT_NE(m_stats, nullptr);
  }
  void TearDown() override {
    if (m_fake) ::dlclose(m_fake);
    ::unsetenv("GPUNET_FAKE_NVML_STATE");
  }
  void Write() { std::ofstream(m_path) << m_state.dump(); }
  json& Gpu(size_t i) { return m_state["gpus"][i]; }
  int Stat(const char* what) const { return m_stats(what); }

  gpunet::testing::TempDir m_dir;
  std::string m_path;
  json m_state;
  void* m_fake = nullptr;
  int (*m_stats)(const char*) = nullptr;
};

TEST_F(FakeNvml, InventoryHasEveryField) {
  auto snap = ProbeNvml(GPUNET_FAKE_NVML);
  ASSERT_TRUE(snap.has_value()) << snap.error().message;
  EXPECT_EQ(snap->driver_version, "580.159.04");
  EXPECT_EQ(snap->cuda_driver_version, "13.0");
  EXPECT_TRUE(snap->absent.empty());
  EXPECT_EQ(snap->problem, "");
  EXPECT_NE(snap->library_path.find("libfake_nvml.so"), std::string::npos);
  ASSERT_EQ(snap->gpus.size(), 2u);
  const GpuInfo& h = snap->gpus[0];
  EXPECT_EQ(h.problem, "");
  EXPECT_EQ(h.uuid, kH100);
  EXPECT_EQ(h.name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(h.memory_total_bytes, 85520809984ull);
  EXPECT_EQ(h.minor, 3u);
  EXPECT_EQ(h.compute_capability, (ComputeCapability{9, 0}));
  EXPECT_EQ(h.pci_bus_id, "00000000:3B:00.0");
  EXPECT_EQ(h.nvlink_active_links, 3u);
  EXPECT_EQ(GpuInterconnect(h), "nvlink");
  const GpuInfo& l4 = snap->gpus[1];
  EXPECT_EQ(l4.index, 1u);
  EXPECT_EQ(l4.minor, 1u);
  EXPECT_EQ(l4.compute_capability, (ComputeCapability{8, 9}));
  EXPECT_EQ(l4.nvlink_active_links, 0u);  // NVLink "not supported": a PCIe card
  EXPECT_EQ(GpuInterconnect(l4), "pcie");
  EXPECT_EQ(Stat("inits"), Stat("shutdowns"));  // the probe shut NVML down again
}

TEST_F(FakeNvml, RefusedQueriesAreRecordedPerGpu) {
  Gpu(1)["errors"] = {{"nvmlDeviceGetMinorNumber", kNotSupported},
                      {"nvmlDeviceGetPciInfo_v3", kUnknown},
                      {"nvmlDeviceGetNvLinkState", kNoPermission}};
  Write();
  auto snap = ProbeNvml(GPUNET_FAKE_NVML);
  ASSERT_TRUE(snap.has_value()) << snap.error().message;
  const GpuInfo& l4 = snap->gpus[1];
  EXPECT_EQ(l4.uuid, kL4);
  EXPECT_FALSE(l4.minor.has_value());
  EXPECT_EQ(l4.pci_bus_id, "");
  EXPECT_FALSE(l4.nvlink_active_links.has_value());
  EXPECT_EQ(GpuInterconnect(l4), "");
  EXPECT_NE(l4.problem.find("minor number: Not Supported (NVML code 3)"), std::string::npos)
      << l4.problem;
  EXPECT_NE(l4.problem.find("PCI info: Unknown Error (NVML code 999)"), std::string::npos);
  EXPECT_NE(l4.problem.find("NVLink link 0: Insufficient Permissions"), std::string::npos);
  EXPECT_EQ(snap->gpus[0].problem, "");
}

TEST_F(FakeNvml, AnOldDriverLeavesFieldsAbsentWithTheReason) {
  auto snap = ProbeNvml(GPUNET_FAKE_NVML_OLD);
  ASSERT_TRUE(snap.has_value()) << snap.error().message;
  for (const char* name :
       {"nvmlSystemGetCudaDriverVersion", "nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetNvLinkState",
        "nvmlDeviceGetCudaComputeCapability", "nvmlEventSetWait_v2", "nvmlDeviceGetRemappedRows"})
    EXPECT_NE(std::ranges::find(snap->absent, name), snap->absent.end()) << name;
  // Found under its pre-R535 name, so not absent.
  EXPECT_EQ(std::ranges::find(snap->absent, "nvmlDeviceGetCurrentClocksEventReasons"),
            snap->absent.end());
  EXPECT_EQ(snap->cuda_driver_version, "");
  ASSERT_EQ(snap->gpus.size(), 2u);
  const GpuInfo& h = snap->gpus[0];
  EXPECT_EQ(h.uuid, kH100);
  EXPECT_EQ(h.minor, 3u);
  EXPECT_FALSE(h.compute_capability.has_value());
  EXPECT_EQ(h.pci_bus_id, "");
  EXPECT_FALSE(h.nvlink_active_links.has_value());
  EXPECT_EQ(h.problem, "");  // absent is not a refusal
}

TEST_F(FakeNvml, ADriverThatDoesNotAnswerIsRefusedWithNvmlsReason) {
  m_state["init"] = 9;
  Write();
  auto r = ProbeNvml(GPUNET_FAKE_NVML);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("nvmlInit failed: Driver Not Loaded (NVML code 9)"),
            std::string::npos)
      << r.error().message;
  auto m = GpuMonitor::Open(GPUNET_FAKE_NVML);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, ErrorCode::kUnavailable);
  // No state file at all: the fake's "driver not loaded".
  ::unsetenv("GPUNET_FAKE_NVML_STATE");
  auto none = ProbeNvml(GPUNET_FAKE_NVML);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
}

TEST_F(FakeNvml, MonitorSeesAGpuFailBetweenPolls) {
  auto m = GpuMonitor::Open(GPUNET_FAKE_NVML);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  GpuMonitor& mon = **m;
  EXPECT_EQ(mon.Inventory().gpus.size(), 2u);
  EXPECT_EQ(mon.XidMonitoring(), "");
  auto first = mon.ProbeGpuHealth();
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].uuid, kH100);
  for (const auto& s : first) {
    GpuHealth h = EvaluateGpuHealth(s);
    EXPECT_TRUE(h.healthy) << s.uuid;
    EXPECT_TRUE(h.problems.empty()) << s.uuid;
  }
  Gpu(0)["ecc_volatile_uncorrected"] = 1;
  Write();
  auto second = mon.ProbeGpuHealth();
  EXPECT_FALSE(EvaluateGpuHealth(second[0]).healthy);
  EXPECT_TRUE(EvaluateGpuHealth(second[1]).healthy);

  Gpu(0)["ecc_volatile_uncorrected"] = 0;
  Gpu(1)["lost"] = true;
  Write();
  auto lost = mon.ProbeGpuHealth(kL4);
  ASSERT_TRUE(lost.has_value());
  GpuHealth h = EvaluateGpuHealth(*lost);
  EXPECT_FALSE(h.healthy);
  EXPECT_TRUE(HasProblem(h, "ecc", GpuProblemSeverity::kFailed, "GPU is lost"));
  EXPECT_TRUE(EvaluateGpuHealth(mon.ProbeGpuHealth()[0]).healthy);

  auto none = mon.ProbeGpuHealth("GPU-not-here");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
}

TEST_F(FakeNvml, XidEventsComeThroughOneEventSetKeptAcrossPolls) {
  Gpu(0)["xids"] = {79};  // before the monitor registered: NVML does not replay it
  Write();
  const int sets_before = Stat("event_sets_created");
  const int freed_before = Stat("event_sets_freed");
  {
    auto m = GpuMonitor::Open(GPUNET_FAKE_NVML);
    ASSERT_TRUE(m.has_value()) << m.error().message;
    GpuMonitor& mon = **m;
    auto s = mon.ProbeGpuHealth();
    EXPECT_TRUE(s[0].xids.empty());
    EXPECT_TRUE(EvaluateGpuHealth(s[0]).healthy);

    Gpu(1)["xids"] = {13};  // the workload's own page fault
    Write();
    s = mon.ProbeGpuHealth();
    EXPECT_EQ(s[1].xids, (std::vector<uint64_t>{13}));
    GpuHealth app = EvaluateGpuHealth(s[1]);
    EXPECT_TRUE(app.healthy);
    EXPECT_TRUE(Mentions(app.notes, "Xid 13"));

    Gpu(0)["xids"] = {79, 48};
    Write();
    s = mon.ProbeGpuHealth();
    EXPECT_EQ(s[0].xids, (std::vector<uint64_t>{48}));
    EXPECT_FALSE(EvaluateGpuHealth(s[0]).healthy);
    // Delivered once, kept: the GPU stays failed at the next polls.
    s = mon.ProbeGpuHealth();
    EXPECT_EQ(s[0].xids, (std::vector<uint64_t>{48}));
    EXPECT_FALSE(EvaluateGpuHealth(s[0]).healthy);
    EXPECT_EQ(s[1].xids, (std::vector<uint64_t>{13}));
    EXPECT_EQ(Stat("event_sets_created"), sets_before + 1);
    EXPECT_EQ(Stat("event_sets_freed"), freed_before);
  }
  EXPECT_EQ(Stat("event_sets_freed"), freed_before + 1);
  EXPECT_EQ(Stat("inits"), Stat("shutdowns"));
}

TEST_F(FakeNvml, XidsKeptAreCapped) {
  auto m = GpuMonitor::Open(GPUNET_FAKE_NVML);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  json xids = json::array();
  for (size_t i = 0; i < kXidsKept + 3; ++i) xids.push_back(13);
  xids.push_back(94);
  Gpu(0)["xids"] = xids;
  Write();
  auto s = (*m)->ProbeGpuHealth();
  EXPECT_EQ(s[0].xids.size(), kXidsKept);
  EXPECT_EQ(s[0].xids.back(), 94u);
  EXPECT_EQ(s[0].xids_dropped, 4u);
  EXPECT_FALSE(EvaluateGpuHealth(s[0]).healthy);
}

TEST_F(FakeNvml, AnOldDriverIsMonitoredWhereItCanBe) {
  Gpu(0)["clocks_event_reasons"] = 0x40;
  Write();
  auto m = GpuMonitor::Open(GPUNET_FAKE_NVML_OLD);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_NE((*m)->XidMonitoring().find("Xid events not monitored"), std::string::npos);
  auto s = (*m)->ProbeGpuHealth();
  ASSERT_EQ(s.size(), 2u);
  GpuHealth h = EvaluateGpuHealth(s[0]);
  EXPECT_TRUE(h.healthy);
  EXPECT_TRUE(Mentions(h.not_monitored, "this driver has no nvmlDeviceGetTotalEccErrors"));
  // The clock reasons, asked under their old name.
  EXPECT_TRUE(HasProblem(h, "clocks", GpuProblemSeverity::kDegraded, "hardware thermal"));
  // No process lists on this driver: the idle check cannot be passed.
  auto idle = (*m)->CheckGpuIdle(kH100);
  ASSERT_TRUE(idle.has_value());
  EXPECT_FALSE(idle->idle);
  EXPECT_TRUE(Mentions(idle->reasons, "cannot list compute processes"));
}

TEST_F(FakeNvml, IdleCheckBetweenLeases) {
  auto m = GpuMonitor::Open(GPUNET_FAKE_NVML);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  GpuMonitor& mon = **m;
  // The _v2 memory query leaves the driver's 559 MiB out: 1 MiB at Open.
  EXPECT_EQ(mon.IdleBaseline(kH100), 1ull << 20);
  auto idle = mon.CheckGpuIdle(kH100);
  ASSERT_TRUE(idle.has_value()) << idle.error().message;
  EXPECT_TRUE(idle->idle);

  // A lease's process left behind, holding memory.
  Gpu(0)["compute_processes"] = {{{"pid", 31337}, {"used_memory_bytes", 2ull << 30}}};
  Gpu(0)["memory_used_bytes"] = (560ull << 20) + (2ull << 30);
  Write();
  auto busy = mon.CheckGpuIdle(kH100);
  ASSERT_TRUE(busy.has_value());
  EXPECT_FALSE(busy->idle);
  EXPECT_EQ(busy->pids, std::vector<uint32_t>{31337});
  EXPECT_TRUE(Mentions(busy->reasons, "1 compute process(es)"));
  EXPECT_TRUE(Mentions(busy->reasons, "2049 MiB of GPU memory in use, idle baseline 1 MiB"));
  auto raw = mon.ProbeGpuIdle(kH100);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->compute_processes.value, (std::vector<GpuProcess>{{31337, 2ull << 30}}));

  // The process gone but its memory not returned: still not idle.
  Gpu(0)["compute_processes"] = json::array();
  Write();
  auto leaked = mon.CheckGpuIdle(kH100);
  ASSERT_TRUE(leaked.has_value());
  EXPECT_FALSE(leaked->idle);
  EXPECT_TRUE(leaked->pids.empty());
  EXPECT_EQ(mon.IdleBaseline(kH100), 1ull << 20);  // a higher use never raises it

  Gpu(0)["memory_used_bytes"] = 600ull << 20;  // back within the slack
  Write();
  EXPECT_TRUE(mon.CheckGpuIdle(kH100)->idle);
  // Many processes: NVML's "insufficient size" answer is retried with room.
  json many = json::array();
  for (unsigned pid = 100; pid < 180; ++pid) many.push_back({{"pid", pid}});
  Gpu(1)["compute_processes"] = many;
  Write();
  auto crowded = mon.CheckGpuIdle(kL4);
  ASSERT_TRUE(crowded.has_value());
  EXPECT_EQ(crowded->pids.size(), 80u);

  auto none = mon.CheckGpuIdle("GPU-not-here");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace gpunet::runtime
