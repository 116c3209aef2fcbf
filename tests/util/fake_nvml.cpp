// A fake NVML for tests: libfake_nvml.so exports exactly the entry points gpunet
// calls (src/runtime/nvml_api.h), with NVML's prototypes, and answers them from a
// JSON file named by the environment variable GPUNET_FAKE_NVML_STATE. The file is
// read again on every call, so a test changes an answer by rewriting it while the
// code under test holds the library open. Test-only: never installed, never linked
// into gpunet; tests reach it through the real loading path (ProbeNvml(path),
// GpuMonitor::Open(path), the daemon's `daemon.nvml_library`).
//
// Built twice: fake_nvml (a current driver) and fake_nvml_old (-DFAKE_NVML_OLD_DRIVER:
// only the entry points every driver since R418 has, and the clock reasons under
// their pre-R535 name nvmlDeviceGetCurrentClocksThrottleReasons).
//
// The state file (every field optional; defaults in brackets):
//   {"init": 0,                        nvmlInit_v2's answer [0]
//    "driver_version": "580.159.04",   ["580.00.00"]
//    "cuda_driver_version": 13000,     [12080]
//    "gpus": [{
//      "uuid": "GPU-...", "name": "...", "memory_total_bytes": N,
//      "memory_used_bytes": N,          v1 `used` [0]
//      "memory_reserved_bytes": N,      taken out of `used` by the _v2 query [0]
//      "minor": 0,                      [the GPU's index]
//      "compute_capability": [9, 0], "pci_bus_id": "00000000:3B:00.0",
//      "nvlink": [1, 1, 0],             each link's state; absent: NOT_SUPPORTED
//      "ecc_volatile_uncorrected": 0, "ecc_aggregate_uncorrected": 0,
//      "retired_pages_pending": false,
//      "remapped_rows": {"corrected": 0, "uncorrected": 0, "pending": false, "failure": false},
//      "temperature_c": 40, "slowdown_threshold_c": 90, "clocks_event_reasons": 0,
//      "compute_processes": [{"pid": 7, "used_memory_bytes": N}], "graphics_processes": [],
//      "xids": [79],        Xid events, in order: an event set receives those appended
//                           after it registered the GPU, each once (as NVML does)
//      "lost": false,       every query on the GPU answers NVML_ERROR_GPU_IS_LOST
//      "errors": {"nvmlDeviceGetTemperature": 3}}]}   one entry point's answer code
// A missing or unparsable file makes nvmlInit_v2 answer NVML_ERROR_DRIVER_NOT_LOADED.
//
// fake_nvml_stats() (not NVML's) counts the calls a test wants to see: inits,
// shutdowns, event sets created and freed.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "runtime/nvml_api.h"

namespace {

namespace n = gpunet::runtime::nvml;
using nlohmann::json;

constexpr nvmlReturn_t kDriverNotLoaded = 9;

std::mutex g_mu;
int g_inits = 0, g_shutdowns = 0, g_sets_created = 0, g_sets_freed = 0;

/// One event set: how many of each GPU's "xids" it has delivered, and which GPUs
/// it registered.
struct EventSet {
  std::map<unsigned, size_t> delivered;
  std::set<unsigned> registered;
};

/// The state file as parsed; not an object when it is missing or unparsable.
json Load() {
  const char* path = std::getenv("GPUNET_FAKE_NVML_STATE");
  if (!path) return json();
  std::ifstream in(path);
  if (!in) return json();
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

/// The state file, {} when it cannot be read (nvmlInit_v2 refuses that case).
json State() {
  json s = Load();
  return s.is_object() ? s : json::object();
}

unsigned Index(nvmlDevice_t dev) {
  return static_cast<unsigned>(reinterpret_cast<uintptr_t>(dev) - 1);
}
nvmlDevice_t Handle(unsigned index) {
  return reinterpret_cast<nvmlDevice_t>(uintptr_t{index} + 1);
}

json Gpus(const json& state) {
  if (!state.contains("gpus") || !state["gpus"].is_array()) return json::array();
  return state["gpus"];
}

/// The GPU a handle names, or null; `code` is the answer to give when it is null or
/// when the test made the GPU lost or the entry point fail.
json Gpu(nvmlDevice_t dev, const char* entry_point, nvmlReturn_t* code) {
  json gpus = Gpus(State());
  *code = n::kSuccess;
  if (!dev || Index(dev) >= gpus.size()) {
    *code = n::kErrorInvalidArgument;
    return json();
  }
  json g = gpus[Index(dev)];
  if (g.value("lost", false))
    *code = n::kErrorGpuIsLost;
  else if (g.contains("errors") && g["errors"].contains(entry_point))
    *code = g["errors"][entry_point].get<int>();
  return g;
}

void CopyString(const std::string& s, char* out, unsigned size) {
  if (size == 0) return;
  std::snprintf(out, size, "%s", s.c_str());
}

#define FAKE_DEVICE_PROLOGUE(entry) \
  nvmlReturn_t code = 0;            \
  json g = Gpu(dev, entry, &code);  \
  if (code != n::kSuccess) return code;

[[maybe_unused]] nvmlReturn_t Processes(nvmlDevice_t dev, unsigned* count, nvmlProcessInfo_t* infos,
                                        const char* entry, const char* field) {
  FAKE_DEVICE_PROLOGUE(entry)
  json list = g.value(field, json::array());
  if (!count) return n::kErrorInvalidArgument;
  unsigned capacity = *count;
  *count = static_cast<unsigned>(list.size());
  if (list.size() > capacity) return n::kErrorInsufficientSize;
  for (size_t i = 0; i < list.size(); ++i) {
    infos[i] = nvmlProcessInfo_t{};
    infos[i].pid = list[i].value("pid", 0u);
    infos[i].usedGpuMemory = list[i].value("used_memory_bytes", n::kValueNotAvailable);
    infos[i].gpuInstanceId = 0xFFFFFFFFu;
    infos[i].computeInstanceId = 0xFFFFFFFFu;
  }
  return n::kSuccess;
}

}  // namespace

extern "C" {

nvmlReturn_t nvmlInit_v2() {
  json state = Load();
  if (!state.is_object()) return kDriverNotLoaded;
  std::lock_guard lock(g_mu);
  int code = state.value("init", 0);
  if (code == n::kSuccess) ++g_inits;
  return code;
}

nvmlReturn_t nvmlShutdown() {
  std::lock_guard lock(g_mu);
  ++g_shutdowns;
  return n::kSuccess;
}

const char* nvmlErrorString(nvmlReturn_t rc) {
  switch (rc) {
    case 0:
      return "Success";
    case 2:
      return "Invalid Argument";
    case 3:
      return "Not Supported";
    case 4:
      return "Insufficient Permissions";
    case 7:
      return "Insufficient Size";
    case 9:
      return "Driver Not Loaded";
    case 10:
      return "Timeout";
    case 15:
      return "GPU is lost";
    case 16:
      return "GPU requires reset";
    default:
      return "Unknown Error";
  }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned length) {
  CopyString(State().value("driver_version", "580.00.00"), version, length);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) {
  *count = static_cast<unsigned>(Gpus(State()).size());
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t* dev) {
  json gpus = Gpus(State());
  if (index >= gpus.size()) return n::kErrorInvalidArgument;
  if (gpus[index].contains("errors") &&
      gpus[index]["errors"].contains("nvmlDeviceGetHandleByIndex_v2"))
    return gpus[index]["errors"]["nvmlDeviceGetHandleByIndex_v2"].get<int>();
  *dev = Handle(index);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char* name, unsigned length) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetName")
  CopyString(g.value("name", "NVIDIA Fake GPU"), name, length);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char* uuid, unsigned length) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetUUID")
  CopyString(g.value("uuid", ""), uuid, length);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t* mem) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetMemoryInfo")
  mem->total = g.value("memory_total_bytes", 0ull);
  mem->used = g.value("memory_used_bytes", 0ull);
  mem->free = mem->total - mem->used;
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t dev, unsigned* minor_number) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetMinorNumber")
  *minor_number = g.value("minor", Index(dev));
  return n::kSuccess;
}

#ifdef FAKE_NVML_OLD_DRIVER

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t dev, unsigned long long* r) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetCurrentClocksThrottleReasons")
  *r = g.value("clocks_event_reasons", 0ull);
  return n::kSuccess;
}

#else

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int* version) {
  *version = State().value("cuda_driver_version", 12080);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t* mem) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetMemoryInfo_v2")
  if (mem->version != n::kMemoryV2Version) return 25;  // NVML_ERROR_ARGUMENT_VERSION_MISMATCH
  mem->total = g.value("memory_total_bytes", 0ull);
  mem->reserved = g.value("memory_reserved_bytes", 0ull);
  unsigned long long used = g.value("memory_used_bytes", 0ull);
  mem->used = used > mem->reserved ? used - mem->reserved : 0;
  mem->free = mem->total - mem->reserved - mem->used;
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t dev, int* major_version,
                                                int* minor_version) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetCudaComputeCapability")
  json cc = g.value("compute_capability", json::array({9, 0}));
  *major_version = cc.at(0).get<int>();
  *minor_version = cc.at(1).get<int>();
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t dev, nvmlPciInfo_t* pci) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetPciInfo_v3")
  *pci = nvmlPciInfo_t{};
  CopyString(g.value("pci_bus_id", ""), pci->busId, sizeof pci->busId);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t dev, unsigned link, nvmlEnableState_t* active) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetNvLinkState")
  if (!g.contains("nvlink")) return n::kErrorNotSupported;  // a PCIe-only GPU
  if (link >= n::kNvlinkMaxLinks) return n::kErrorInvalidArgument;
  if (link >= g["nvlink"].size()) return n::kErrorNotSupported;
  *active = g["nvlink"][link].get<int>();
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t dev, int error_type, int counter_type,
                                         unsigned long long* count) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetTotalEccErrors")
  if (error_type != n::kMemoryErrorUncorrected) return n::kErrorInvalidArgument;
  *count = g.value(
      counter_type == n::kVolatileEcc ? "ecc_volatile_uncorrected" : "ecc_aggregate_uncorrected",
      0ull);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t dev, nvmlEnableState_t* pending) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetRetiredPagesPendingStatus")
  *pending = g.value("retired_pages_pending", false) ? n::kFeatureEnabled : 0;
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t dev, unsigned* corrected, unsigned* uncorrected,
                                       unsigned* pending, unsigned* failure) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetRemappedRows")
  json r = g.value("remapped_rows", json::object());
  *corrected = r.value("corrected", 0u);
  *uncorrected = r.value("uncorrected", 0u);
  *pending = r.value("pending", false) ? 1 : 0;
  *failure = r.value("failure", false) ? 1 : 0;
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned* celsius) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetTemperature")
  if (sensor != n::kTemperatureGpu) return n::kErrorInvalidArgument;
  *celsius = g.value("temperature_c", 40u);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t dev, int threshold, unsigned* celsius) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetTemperatureThreshold")
  if (threshold != n::kTemperatureThresholdSlowdown) return n::kErrorNotSupported;
  *celsius = g.value("slowdown_threshold_c", 90u);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev, unsigned long long* r) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceGetCurrentClocksEventReasons")
  *r = g.value("clocks_event_reasons", 0ull);
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t dev, unsigned* count,
                                                     nvmlProcessInfo_t* infos) {
  return Processes(dev, count, infos, "nvmlDeviceGetComputeRunningProcesses_v3",
                   "compute_processes");
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t dev, unsigned* count,
                                                      nvmlProcessInfo_t* infos) {
  return Processes(dev, count, infos, "nvmlDeviceGetGraphicsRunningProcesses_v3",
                   "graphics_processes");
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  std::lock_guard lock(g_mu);
  ++g_sets_created;
  *set = reinterpret_cast<nvmlEventSet_t>(new EventSet());
  return n::kSuccess;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t dev, unsigned long long types,
                                      nvmlEventSet_t set) {
  FAKE_DEVICE_PROLOGUE("nvmlDeviceRegisterEvents")
  if (types != n::kEventTypeXidCriticalError) return n::kErrorNotSupported;
  std::lock_guard lock(g_mu);
  auto* s = reinterpret_cast<EventSet*>(set);
  s->registered.insert(Index(dev));
  s->delivered[Index(dev)] = g.value("xids", json::array()).size();  // only later ones
  return n::kSuccess;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data, unsigned timeout_ms) {
  (void)timeout_ms;  // never waits: a test's events are in the file already
  json gpus = Gpus(State());
  std::lock_guard lock(g_mu);
  auto* s = reinterpret_cast<EventSet*>(set);
  for (unsigned index : s->registered) {
    if (index >= gpus.size()) continue;
    json xids = gpus[index].value("xids", json::array());
    size_t& delivered = s->delivered[index];
    if (delivered >= xids.size()) continue;
    *data = nvmlEventData_t{};
    data->device = Handle(index);
    data->eventType = n::kEventTypeXidCriticalError;
    data->eventData = xids[delivered++].get<unsigned long long>();
    data->gpuInstanceId = 0xFFFFFFFFu;
    data->computeInstanceId = 0xFFFFFFFFu;
    return n::kSuccess;
  }
  return n::kErrorTimeout;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  std::lock_guard lock(g_mu);
  ++g_sets_freed;
  delete reinterpret_cast<EventSet*>(set);
  return n::kSuccess;
}

#endif  // FAKE_NVML_OLD_DRIVER

/// Not NVML's: the counts a test checks ("inits", "shutdowns", "event_sets_created",
/// "event_sets_freed"); -1 for another name.
int fake_nvml_stats(const char* what) {
  std::lock_guard lock(g_mu);
  const std::string w = what;
  if (w == "inits") return g_inits;
  if (w == "shutdowns") return g_shutdowns;
  if (w == "event_sets_created") return g_sets_created;
  if (w == "event_sets_freed") return g_sets_freed;
  return -1;
}

}  // extern "C"

// The definitions above have NVML's prototypes, as gpunet declares them.
static_assert(std::is_same_v<decltype(nvmlInit_v2), n::InitFn>);
static_assert(std::is_same_v<decltype(nvmlShutdown), n::ShutdownFn>);
static_assert(std::is_same_v<decltype(nvmlErrorString), n::ErrorStringFn>);
static_assert(std::is_same_v<decltype(nvmlSystemGetDriverVersion), n::SystemGetDriverVersionFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetCount_v2), n::DeviceGetCountFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetHandleByIndex_v2), n::DeviceGetHandleByIndexFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetName), n::DeviceGetStringFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetUUID), n::DeviceGetStringFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetMemoryInfo), n::DeviceGetMemoryInfoFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetMinorNumber), n::DeviceGetUnsignedFn>);
#ifdef FAKE_NVML_OLD_DRIVER
static_assert(std::is_same_v<decltype(nvmlDeviceGetCurrentClocksThrottleReasons),
                             n::DeviceGetClocksEventReasonsFn>);
#else
static_assert(
    std::is_same_v<decltype(nvmlSystemGetCudaDriverVersion), n::SystemGetCudaDriverVersionFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetMemoryInfo_v2), n::DeviceGetMemoryInfoV2Fn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetCudaComputeCapability),
                             n::DeviceGetCudaComputeCapabilityFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetPciInfo_v3), n::DeviceGetPciInfoFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetNvLinkState), n::DeviceGetNvLinkStateFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetTotalEccErrors), n::DeviceGetTotalEccErrorsFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetRetiredPagesPendingStatus),
                             n::DeviceGetRetiredPagesPendingStatusFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetRemappedRows), n::DeviceGetRemappedRowsFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetTemperature), n::DeviceGetTemperatureFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetTemperatureThreshold),
                             n::DeviceGetTemperatureThresholdFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetCurrentClocksEventReasons),
                             n::DeviceGetClocksEventReasonsFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetComputeRunningProcesses_v3),
                             n::DeviceGetRunningProcessesFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceGetGraphicsRunningProcesses_v3),
                             n::DeviceGetRunningProcessesFn>);
static_assert(std::is_same_v<decltype(nvmlEventSetCreate), n::EventSetCreateFn>);
static_assert(std::is_same_v<decltype(nvmlDeviceRegisterEvents), n::DeviceRegisterEventsFn>);
static_assert(std::is_same_v<decltype(nvmlEventSetWait_v2), n::EventSetWaitFn>);
static_assert(std::is_same_v<decltype(nvmlEventSetFree), n::EventSetFreeFn>);
#endif
