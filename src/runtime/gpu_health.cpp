#include "runtime/gpu_health.h"

#include <algorithm>

#include "base/check.h"
#include "runtime/nvml_api.h"

namespace gpunet::runtime {

namespace {

/// NVML's return codes in words (nvml.h's comments on nvmlReturn_t), for reasons a
/// provider reads without the NVML library at hand.
std::string CodeText(int code) {
  switch (code) {
    case 1:
      return "NVML was not initialised";
    case 2:
      return "invalid argument";
    case 3:
      return "not supported";
    case 4:
      return "no permission";
    case 6:
      return "not found";
    case 9:
      return "the driver is not loaded";
    case 10:
      return "timed out";
    case 12:
      return "NVML library not found";
    case 13:
      return "function not found";
    case 14:
      return "the infoROM is corrupted";
    case 15:
      return "the GPU is lost (fallen off the bus or otherwise inaccessible)";
    case 16:
      return "the GPU requires a reset";
    case 17:
      return "blocked by the operating system or cgroups";
    case 18:
      return "driver and NVML versions differ";
    case 999:
      return "unknown driver error";
    default:
      return "NVML error";
  }
}

std::string Code(int code) {
  return CodeText(code) + " (NVML code " + std::to_string(code) + ")";
}

bool GpuGone(int code) {
  return code == nvml::kErrorGpuIsLost || code == nvml::kErrorResetRequired;
}

constexpr uint64_t kMiB = 1ull << 20;

/// Builds a GpuHealth one check at a time.
class Verdict {
 public:
  void Failed(const std::string& check, const std::string& reason) {
    m_health.healthy = false;
    m_health.problems.push_back({check, GpuProblemSeverity::kFailed, reason});
  }
  void Degraded(const std::string& check, const std::string& reason) {
    m_health.problems.push_back({check, GpuProblemSeverity::kDegraded, reason});
  }
  void Note(const std::string& note) { m_health.notes.push_back(note); }

  /// True when `a` holds a value; otherwise records why the check has none: a lost
  /// GPU fails it, anything else leaves the check unmonitored.
  template <class T>
  bool Usable(const NvmlAnswer<T>& a, const std::string& check, const std::string& what,
              const char* entry_point) {
    if (a.Ok()) return true;
    if (!a.asked)
      m_health.not_monitored.push_back(what + ": this driver has no " + entry_point);
    else if (GpuGone(a.code))
      Failed(check, what + ": " + Code(a.code));
    else if (a.code == nvml::kErrorNotSupported)
      m_health.not_monitored.push_back(what + ": not supported on this GPU");
    else
      m_health.not_monitored.push_back(what + ": " + Code(a.code));
    return false;
  }
  GpuHealth Take() { return std::move(m_health); }

 private:
  GpuHealth m_health;
};

void EvaluateMemoryErrors(const GpuHealthSample& s, Verdict& v) {
  if (v.Usable(s.ecc_uncorrected_volatile, "ecc", "uncorrected ECC errors",
               "nvmlDeviceGetTotalEccErrors") &&
      s.ecc_uncorrected_volatile.value > 0)
    v.Failed("ecc", std::to_string(s.ecc_uncorrected_volatile.value) +
                        " uncorrected ECC error(s) since the driver loaded: reset the GPU "
                        "(or reboot) before it serves again");
  // The lifetime count includes errors the GPU already dealt with (a retired page or
  // a remapped row, checked below): history, not a present fault.
  if (v.Usable(s.ecc_uncorrected_aggregate, "ecc", "lifetime uncorrected ECC errors",
               "nvmlDeviceGetTotalEccErrors") &&
      s.ecc_uncorrected_aggregate.value > 0)
    v.Note(std::to_string(s.ecc_uncorrected_aggregate.value) +
           " uncorrected ECC error(s) over the GPU's life");
  if (v.Usable(s.retired_pages_pending, "retired_pages", "page retirement",
               "nvmlDeviceGetRetiredPagesPendingStatus") &&
      s.retired_pages_pending.value)
    v.Failed("retired_pages",
             "a memory page retirement is pending: reset the GPU (or reboot) to retire it");
  if (v.Usable(s.remapped_rows, "remapped_rows", "row remapping", "nvmlDeviceGetRemappedRows")) {
    const RemappedRows& r = s.remapped_rows.value;
    if (r.failure)
      v.Failed("remapped_rows", "row remapping failed (no spare rows left): the GPU needs service");
    else if (r.pending)
      v.Failed("remapped_rows", "a row remapping is pending: reset the GPU to apply it");
    if (r.uncorrected > 0)
      v.Note(std::to_string(r.uncorrected) + " row(s) remapped for uncorrectable errors");
  }
}

void EvaluateXids(const GpuHealthSample& s, Verdict& v) {
  v.Usable(s.xid_events, "xid", "Xid events", "nvmlEventSetCreate");
  std::vector<uint64_t> seen;
  for (uint64_t xid : s.xids) {
    if (std::ranges::find(seen, xid) != seen.end()) continue;
    seen.push_back(xid);
    std::string what = "Xid " + std::to_string(xid);
    if (std::string_view m = XidMeaning(xid); !m.empty()) what += " (" + std::string(m) + ")";
    switch (ClassifyXid(xid)) {
      case XidClass::kGpuFault:
        v.Failed("xid", what + ": a GPU fault; reset the GPU and restart the daemon");
        break;
      case XidClass::kApplicationFault:
        v.Note(what + ": the workload's own fault");
        break;
      case XidClass::kUnclassified:
        v.Note(what + ": not classified by gpunet");
        break;
    }
  }
  if (s.xids_dropped > 0) v.Note(std::to_string(s.xids_dropped) + " older Xid(s) not kept");
}

void EvaluateThermals(const GpuHealthSample& s, Verdict& v) {
  if (v.Usable(s.temperature_c, "temperature", "temperature", "nvmlDeviceGetTemperature") &&
      v.Usable(s.slowdown_threshold_c, "temperature", "slowdown temperature",
               "nvmlDeviceGetTemperatureThreshold") &&
      s.slowdown_threshold_c.value > 0 && s.temperature_c.value >= s.slowdown_threshold_c.value)
    v.Degraded("temperature", "at " + std::to_string(s.temperature_c.value) +
                                  " C, at or above its slowdown threshold of " +
                                  std::to_string(s.slowdown_threshold_c.value) + " C");
  if (!v.Usable(s.clocks_event_reasons, "clocks", "clock throttling",
                "nvmlDeviceGetCurrentClocksEventReasons"))
    return;
  const uint64_t bits = s.clocks_event_reasons.value;
  const std::pair<uint64_t, const char*> reasons[] = {
      {nvml::kClocksEventReasonHwSlowdown, "hardware slowdown"},
      {nvml::kClocksEventReasonHwThermalSlowdown, "hardware thermal slowdown"},
      {nvml::kClocksEventReasonSwThermalSlowdown, "software thermal slowdown"},
      {nvml::kClocksEventReasonHwPowerBrakeSlowdown, "power brake (external power supply)"},
  };
  std::string active;
  for (const auto& [bit, name] : reasons)
    if (bits & bit) active += (active.empty() ? "" : ", ") + std::string(name);
  if (!active.empty()) v.Degraded("clocks", "clocks held down: " + active);
}

}  // namespace

XidClass ClassifyXid(uint64_t xid) {
  switch (xid) {
    case 48:
    case 63:
    case 64:
    case 74:
    case 79:
    case 92:
    case 94:
    case 95:
      return XidClass::kGpuFault;
    case 13:
    case 31:
    case 43:
    case 45:
      return XidClass::kApplicationFault;
    default:
      return XidClass::kUnclassified;
  }
}

std::string_view XidMeaning(uint64_t xid) {
  switch (xid) {
    case 13:
      return "graphics engine exception";
    case 31:
      return "GPU memory page fault";
    case 43:
      return "GPU stopped processing";
    case 45:
      return "preemptive cleanup, due to previous errors";
    case 48:
      return "double bit ECC error";
    case 63:
      return "ECC page retirement or row remapping recording event";
    case 64:
      return "ECC page retirement or row remapper recording failure";
    case 74:
      return "NVLink error";
    case 79:
      return "GPU has fallen off the bus";
    case 92:
      return "high single-bit ECC error rate";
    case 94:
      return "contained ECC error";
    case 95:
      return "uncontained ECC error";
    default:
      return "";
  }
}

GpuHealth EvaluateGpuHealth(const GpuHealthSample& sample) {
  Verdict v;
  if (sample.handle_code != 0) {
    v.Failed("nvml", "NVML cannot open the GPU: " + Code(sample.handle_code));
    return v.Take();
  }
  EvaluateMemoryErrors(sample, v);
  EvaluateXids(sample, v);
  EvaluateThermals(sample, v);
  GpuHealth h = v.Take();
  GPUNET_CHECK(h.healthy == std::ranges::none_of(h.problems, [](const GpuProblem& p) {
                 return p.severity == GpuProblemSeverity::kFailed;
               }));
  return h;
}

GpuIdle EvaluateGpuIdle(const GpuIdleSample& sample, uint64_t baseline_used_bytes) {
  GpuIdle r;
  if (sample.handle_code != 0) {
    r.reasons.push_back("NVML cannot open the GPU: " + Code(sample.handle_code));
    return r;
  }
  auto check_list = [&r](const NvmlAnswer<std::vector<GpuProcess>>& a, const std::string& kind,
                         bool required) {
    if (a.Ok()) {
      for (const GpuProcess& p : a.value) r.pids.push_back(p.pid);
      if (!a.value.empty())
        r.reasons.push_back(std::to_string(a.value.size()) + " " + kind +
                            " process(es) still on the GPU");
    } else if (required || (a.asked && a.code != nvml::kErrorNotSupported)) {
      r.reasons.push_back("cannot list " + kind + " processes: " +
                          (a.asked ? Code(a.code) : "this driver has no entry point for it"));
    }
  };
  // Compute processes are what CUDA creates: that list is required. A GPU without
  // graphics (H100, A100) may answer "not supported" for the other.
  check_list(sample.compute_processes, "compute", true);
  check_list(sample.graphics_processes, "graphics", false);
  if (!sample.memory_used_bytes.Ok()) {
    r.reasons.push_back(
        "cannot read the GPU's memory use: " +
        (sample.memory_used_bytes.asked ? Code(sample.memory_used_bytes.code) : "no entry point"));
  } else if (sample.memory_used_bytes.value > baseline_used_bytes + kGpuIdleMemorySlackBytes) {
    r.reasons.push_back(std::to_string(sample.memory_used_bytes.value / kMiB) +
                        " MiB of GPU memory in use, idle baseline " +
                        std::to_string(baseline_used_bytes / kMiB) + " MiB");
  }
  std::ranges::sort(r.pids);
  auto dup = std::ranges::unique(r.pids);
  r.pids.erase(dup.begin(), dup.end());
  r.idle = r.reasons.empty();
  return r;
}

}  // namespace gpunet::runtime
