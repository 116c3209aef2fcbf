// GPU health and the idle check between leases, through NVML (nvml_api.h).
//
// Collecting and deciding are apart: GpuMonitor asks NVML and keeps its raw answers
// (return codes and values) in a GpuHealthSample / GpuIdleSample; the pure functions
// EvaluateGpuHealth and EvaluateGpuIdle decide from those alone, so every rule is
// unit-tested against NVML answers without a GPU. docs/sandbox.md "GPUs and the
// driver" lists the rules and their sources.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "runtime/nvml.h"

namespace gpunet::runtime {

/// One raw NVML answer. `asked` is false when this driver lacks the entry point;
/// otherwise `code` is the nvmlReturn_t and `value` holds the answer when it is 0.
template <class T>
struct NvmlAnswer {
  bool asked = false;
  int code = 0;
  T value{};
  bool Ok() const { return asked && code == 0; }
  static NvmlAnswer Of(T v) { return NvmlAnswer{true, 0, std::move(v)}; }
  static NvmlAnswer Failed(int nvml_code) { return NvmlAnswer{true, nvml_code, T{}}; }
};

/// nvmlDeviceGetRemappedRows' four answers (Ampere and later).
struct RemappedRows {
  uint32_t corrected = 0;
  uint32_t uncorrected = 0;
  bool pending = false;  ///< a remap waits for the next GPU reset
  bool failure = false;  ///< a remap failed: the GPU is out of spare rows
};

/// Everything NVML answered about one GPU's health at one poll.
struct GpuHealthSample {
  std::string uuid;
  /// Getting the GPU's handle: not 0 (e.g. NVML_ERROR_GPU_IS_LOST) means nothing
  /// else could be asked.
  int handle_code = 0;
  NvmlAnswer<uint64_t> ecc_uncorrected_volatile;   ///< since the driver loaded
  NvmlAnswer<uint64_t> ecc_uncorrected_aggregate;  ///< over the GPU's life
  NvmlAnswer<bool> retired_pages_pending;          ///< pre-Ampere page retirement
  NvmlAnswer<RemappedRows> remapped_rows;
  NvmlAnswer<uint32_t> temperature_c;
  NvmlAnswer<uint32_t> slowdown_threshold_c;
  NvmlAnswer<uint64_t> clocks_event_reasons;  ///< nvmlClocksEventReason* bits
  /// Registering for Xid events (nvmlDeviceRegisterEvents); not asked when the
  /// driver lacks the event entry points.
  NvmlAnswer<bool> xid_events;
  /// Critical Xids NVML reported for this GPU since the monitor opened, oldest
  /// first, at most kXidsKept (older ones are dropped and counted).
  std::vector<uint64_t> xids;
  uint64_t xids_dropped = 0;
};

inline constexpr size_t kXidsKept = 32;

/// What an Xid says about the GPU. Sources: NVIDIA's Xid catalog
/// (docs.nvidia.com/deploy/xid-errors/, "Xid Error Listing" and its
/// per-Xid causes) and the GPU memory error management guide
/// (docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/).
enum class XidClass {
  kGpuFault,          ///< the GPU itself failed (or needs a reset): 48 63 64 74 79 92 94 95
  kApplicationFault,  ///< the workload's own fault, not the GPU's: 13 31 43 45
  kUnclassified,      ///< anything else (999 is NVML's "unknown Xid"): recorded only
};
XidClass ClassifyXid(uint64_t xid);
/// NVIDIA's one-line meaning of an Xid gpunet classifies, "" for others.
std::string_view XidMeaning(uint64_t xid);

enum class GpuProblemSeverity {
  kDegraded,  ///< works, slower (heat, throttling): shown, the GPU stays in service
  kFailed,    ///< must not serve: out of the offers, its lease stopped
};

struct GpuProblem {
  std::string
      check;  ///< "nvml", "ecc", "retired_pages", "remapped_rows", "xid", "temperature", "clocks"
  GpuProblemSeverity severity = GpuProblemSeverity::kFailed;
  std::string reason;  ///< one line a provider can act on
};

/// The verdict on one sample.
struct GpuHealth {
  bool healthy = true;  ///< no kFailed problem
  std::vector<GpuProblem> problems;
  /// Checks NVML could not answer (not supported on this GPU, entry point absent,
  /// no permission): not monitored, which is not unhealthy.
  std::vector<std::string> not_monitored;
  /// Worth logging, no effect on health: lifetime ECC counts, application Xids.
  std::vector<std::string> notes;
};

/// Decides from the raw answers alone (pure). An answer of NVML_ERROR_GPU_IS_LOST or
/// NVML_ERROR_RESET_REQUIRED to any query fails the GPU; NOT_SUPPORTED and an absent
/// entry point make that check "not monitored".
GpuHealth EvaluateGpuHealth(const GpuHealthSample& sample);

/// One process NVML lists on a GPU.
struct GpuProcess {
  uint32_t pid = 0;
  /// Its GPU memory, absent when NVML cannot say (NVML_VALUE_NOT_AVAILABLE).
  std::optional<uint64_t> used_memory_bytes;
  friend bool operator==(const GpuProcess&, const GpuProcess&) = default;
};

/// What NVML answered for the idle check of one GPU.
struct GpuIdleSample {
  std::string uuid;
  int handle_code = 0;
  NvmlAnswer<std::vector<GpuProcess>> compute_processes;
  NvmlAnswer<std::vector<GpuProcess>> graphics_processes;
  /// Framebuffer memory in use: nvmlDeviceGetMemoryInfo_v2's `used` (which leaves
  /// out the driver's reservation) where the driver has it, else the v1 `used`.
  NvmlAnswer<uint64_t> memory_used_bytes;
};

/// Used memory above the idle baseline that still counts as idle: the driver's own
/// allocations move by a few MiB between contexts.
inline constexpr uint64_t kGpuIdleMemorySlackBytes = 64ull << 20;

struct GpuIdle {
  bool idle = false;
  std::vector<uint32_t> pids;        ///< processes still on the GPU
  std::vector<std::string> reasons;  ///< why not idle, one line each; empty when idle
};

/// Idle: NVML lists no compute or graphics process on the GPU and its used memory
/// is at most `baseline_used_bytes` + kGpuIdleMemorySlackBytes. An answer that
/// cannot be had (other than NOT_SUPPORTED for one of the process lists) is "cannot
/// verify", which is not idle. Pure.
GpuIdle EvaluateGpuIdle(const GpuIdleSample& sample, uint64_t baseline_used_bytes);

namespace nvml {
class NvmlSession;
}

/// NVML held open for a daemon: the inventory taken at Open, an event set
/// registered for Xid events on every GPU and kept across polls, the Xids seen per
/// GPU, and each GPU's idle memory baseline. Thread-safe (one mutex; NVML itself is
/// thread-safe).
class GpuMonitor {
 public:
  /// Loads `library` (the driver's libnvidia-ml.so.1, or a test's fake) and opens
  /// the event set. Errors as ProbeNvml's.
  [[nodiscard]] static base::Result<std::unique_ptr<GpuMonitor>> Open(
      const std::string& library = kNvmlLibrary);
  ~GpuMonitor();
  GpuMonitor(const GpuMonitor&) = delete;
  GpuMonitor& operator=(const GpuMonitor&) = delete;

  /// The GPUs and driver as NVML listed them at Open.
  const NvmlSnapshot& Inventory() const { return m_inventory; }
  /// "" when Xid events are monitored on every GPU, else why not (one line).
  std::string XidMonitoring() const;

  /// One raw sample per inventory GPU with a UUID, in inventory order; drains the
  /// Xid events NVML queued since the last call (never waits).
  std::vector<GpuHealthSample> ProbeGpuHealth();
  /// The sample of one GPU; kNotFound when the inventory has no such UUID (a GPU
  /// NVML could not open at Open has none: a caller that expects it must treat it
  /// as failed).
  base::Result<GpuHealthSample> ProbeGpuHealth(std::string_view uuid);

  /// The raw answers of the idle check for one GPU; kNotFound as above.
  base::Result<GpuIdleSample> ProbeGpuIdle(std::string_view uuid);
  /// The idle check between leases: ProbeGpuIdle, judged by EvaluateGpuIdle against
  /// the GPU's baseline (the lowest used memory seen with no process on it, from
  /// Open on; until one such sample exists, the sample's own use).
  base::Result<GpuIdle> CheckGpuIdle(std::string_view uuid);
  /// The baseline CheckGpuIdle uses for `uuid`, when one was seen.
  std::optional<uint64_t> IdleBaseline(std::string_view uuid) const;

 private:
  struct Device;
  GpuMonitor();
  const Device* Find(std::string_view uuid) const;
  void DrainEvents() REQUIRES(m_mu);
  GpuHealthSample Sample(const Device& d) REQUIRES(m_mu);
  GpuIdleSample SampleIdle(const Device& d) const;
  void LearnBaseline(const GpuIdleSample& s) REQUIRES(m_mu);

  std::unique_ptr<nvml::NvmlSession> m_session;
  NvmlSnapshot m_inventory;
  std::vector<Device> m_devices;  ///< set at Open, read-only after
  void* m_event_set = nullptr;    ///< nvmlEventSet_t, nullptr when none
  std::string m_xid_monitoring;   ///< set at Open
  mutable base::Mutex m_mu;
  std::map<std::string, std::vector<uint64_t>, std::less<>> m_xids GUARDED_BY(m_mu);
  std::map<std::string, uint64_t, std::less<>> m_xids_dropped GUARDED_BY(m_mu);
  int m_event_wait_code GUARDED_BY(m_mu) = 0;  ///< the last event wait's failure, 0 if none
  std::map<std::string, uint64_t, std::less<>> m_baseline GUARDED_BY(m_mu);
};

}  // namespace gpunet::runtime
