// NVML's binary interface as gpunet uses it, declared here because no NVIDIA header
// is needed (or present) to build gpunet: the types, constants and prototypes of the
// entry points that nvml.cpp and gpu_health.cpp call, with the values of NVIDIA's
// public nvml.h (NVML API Reference Guide, docs.nvidia.com/deploy/nvml-api/, and the
// header shipped in the CUDA toolkit's targets/x86_64-linux/include/nvml.h, R580).
// Every value here is part of NVML's stable ABI: NVIDIA adds versioned entry points
// (_v2, _v3) rather than changing one.
//
// The test library tests/util/fake_nvml.cpp defines the same entry points and checks
// its definitions against the function types below, so the fake and the real library
// cannot drift apart silently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

// NOLINTBEGIN(readability-identifier-naming): NVIDIA's names, so they can be looked up
extern "C" {
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEventSet_t = struct nvmlEventSet_st*;
using nvmlEnableState_t = int;  ///< NVML_FEATURE_DISABLED 0, NVML_FEATURE_ENABLED 1

/// nvmlMemory_t (nvmlDeviceGetMemoryInfo): `used` includes the driver's reservation.
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
/// nvmlMemory_v2_t (nvmlDeviceGetMemoryInfo_v2, R510+): `used` without `reserved`.
struct nvmlMemory_v2_t {
  unsigned int version;  ///< kNvmlMemoryV2Version
  unsigned long long total;
  unsigned long long reserved;
  unsigned long long free;
  unsigned long long used;
};
/// nvmlPciInfo_t as nvmlDeviceGetPciInfo_v3 fills it.
struct nvmlPciInfo_t {
  char busIdLegacy[16];  ///< NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];  ///< NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE: "00000000:3B:00.0"
};
/// nvmlEventData_t as nvmlEventSetWait_v2 fills it.
struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;  ///< the Xid for nvmlEventTypeXidCriticalError (999: unknown)
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
/// nvmlProcessInfo_t as nvmlDeviceGet{Compute,Graphics}RunningProcesses_v3 fill it.
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;  ///< NVML_VALUE_NOT_AVAILABLE when the driver cannot say
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
}  // extern "C"

namespace gpunet::runtime::nvml {

// nvmlReturn_t values.
inline constexpr nvmlReturn_t kSuccess = 0;
inline constexpr nvmlReturn_t kErrorInvalidArgument = 2;
inline constexpr nvmlReturn_t kErrorNotSupported = 3;
inline constexpr nvmlReturn_t kErrorNoPermission = 4;
inline constexpr nvmlReturn_t kErrorNotFound = 6;
inline constexpr nvmlReturn_t kErrorInsufficientSize = 7;
inline constexpr nvmlReturn_t kErrorTimeout = 10;
inline constexpr nvmlReturn_t kErrorGpuIsLost = 15;
inline constexpr nvmlReturn_t kErrorResetRequired = 16;
inline constexpr nvmlReturn_t kErrorUnknown = 999;

inline constexpr nvmlEnableState_t kFeatureEnabled = 1;  ///< NVML_FEATURE_ENABLED
/// NVML_STRUCT_VERSION(Memory, 2): sizeof(nvmlMemory_v2_t) | 2 << 24.
inline constexpr unsigned kMemoryV2Version = sizeof(nvmlMemory_v2_t) | (2u << 24);
/// NVML_NVLINK_MAX_LINKS of R525 and later (18 links on Hopper; 12 on A100, 6 on V100).
inline constexpr unsigned kNvlinkMaxLinks = 18;
/// NVML_VALUE_NOT_AVAILABLE as an unsigned long long field holds it.
inline constexpr unsigned long long kValueNotAvailable = ~0ull;

// nvmlMemoryErrorType_t, nvmlEccCounterType_t.
inline constexpr int kMemoryErrorUncorrected = 1;  ///< NVML_MEMORY_ERROR_TYPE_UNCORRECTED
inline constexpr int kVolatileEcc = 0;             ///< NVML_VOLATILE_ECC: since the driver loaded
inline constexpr int kAggregateEcc = 1;            ///< NVML_AGGREGATE_ECC: the GPU's lifetime
// nvmlTemperatureSensors_t, nvmlTemperatureThresholds_t.
inline constexpr int kTemperatureGpu = 0;                ///< NVML_TEMPERATURE_GPU
inline constexpr int kTemperatureThresholdSlowdown = 1;  ///< NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
/// nvmlEventTypeXidCriticalError.
inline constexpr unsigned long long kEventTypeXidCriticalError = 0x8;

// nvmlClocksEventReason* (called nvmlClocksThrottleReason* before R535; same bits).
inline constexpr unsigned long long kClocksEventReasonHwSlowdown = 0x8;
inline constexpr unsigned long long kClocksEventReasonSwThermalSlowdown = 0x20;
inline constexpr unsigned long long kClocksEventReasonHwThermalSlowdown = 0x40;
inline constexpr unsigned long long kClocksEventReasonHwPowerBrakeSlowdown = 0x80;

// The entry points' types, by their NVML names.
using InitFn = nvmlReturn_t();
using ShutdownFn = nvmlReturn_t();
using ErrorStringFn = const char*(nvmlReturn_t);
using SystemGetDriverVersionFn = nvmlReturn_t(char*, unsigned);
using SystemGetCudaDriverVersionFn = nvmlReturn_t(int*);
using DeviceGetCountFn = nvmlReturn_t(unsigned*);
using DeviceGetHandleByIndexFn = nvmlReturn_t(unsigned, nvmlDevice_t*);
using DeviceGetStringFn = nvmlReturn_t(nvmlDevice_t, char*, unsigned);  // name, UUID
using DeviceGetMemoryInfoFn = nvmlReturn_t(nvmlDevice_t, nvmlMemory_t*);
using DeviceGetMemoryInfoV2Fn = nvmlReturn_t(nvmlDevice_t, nvmlMemory_v2_t*);
using DeviceGetUnsignedFn = nvmlReturn_t(nvmlDevice_t, unsigned*);  // minor number
using DeviceGetCudaComputeCapabilityFn = nvmlReturn_t(nvmlDevice_t, int*, int*);
using DeviceGetPciInfoFn = nvmlReturn_t(nvmlDevice_t, nvmlPciInfo_t*);
using DeviceGetNvLinkStateFn = nvmlReturn_t(nvmlDevice_t, unsigned, nvmlEnableState_t*);
using DeviceGetTotalEccErrorsFn = nvmlReturn_t(nvmlDevice_t, int, int, unsigned long long*);
using DeviceGetRetiredPagesPendingStatusFn = nvmlReturn_t(nvmlDevice_t, nvmlEnableState_t*);
using DeviceGetRemappedRowsFn = nvmlReturn_t(nvmlDevice_t, unsigned*, unsigned*, unsigned*,
                                             unsigned*);
using DeviceGetTemperatureFn = nvmlReturn_t(nvmlDevice_t, int, unsigned*);
using DeviceGetTemperatureThresholdFn = nvmlReturn_t(nvmlDevice_t, int, unsigned*);
using DeviceGetClocksEventReasonsFn = nvmlReturn_t(nvmlDevice_t, unsigned long long*);
using DeviceGetRunningProcessesFn = nvmlReturn_t(nvmlDevice_t, unsigned*, nvmlProcessInfo_t*);
using EventSetCreateFn = nvmlReturn_t(nvmlEventSet_t*);
using DeviceRegisterEventsFn = nvmlReturn_t(nvmlDevice_t, unsigned long long, nvmlEventSet_t);
using EventSetWaitFn = nvmlReturn_t(nvmlEventSet_t, nvmlEventData_t*, unsigned);
using EventSetFreeFn = nvmlReturn_t(nvmlEventSet_t);

/// The entry points, bound by name. The first block is required (a library without
/// one is refused); the rest are optional: an older driver lacks some, and each is
/// nullptr then, its name in NvmlSession::AbsentEntryPoints().
struct Api {
  InitFn* init = nullptr;                               // nvmlInit_v2
  ShutdownFn* shutdown = nullptr;                       // nvmlShutdown
  ErrorStringFn* error_string = nullptr;                // nvmlErrorString
  SystemGetDriverVersionFn* driver_version = nullptr;   // nvmlSystemGetDriverVersion
  DeviceGetCountFn* count = nullptr;                    // nvmlDeviceGetCount_v2
  DeviceGetHandleByIndexFn* handle_by_index = nullptr;  // nvmlDeviceGetHandleByIndex_v2
  DeviceGetStringFn* name = nullptr;                    // nvmlDeviceGetName
  DeviceGetStringFn* uuid = nullptr;                    // nvmlDeviceGetUUID
  DeviceGetMemoryInfoFn* memory = nullptr;              // nvmlDeviceGetMemoryInfo
  DeviceGetUnsignedFn* minor_number = nullptr;          // nvmlDeviceGetMinorNumber

  SystemGetCudaDriverVersionFn* cuda_driver_version = nullptr;  // nvmlSystemGetCudaDriverVersion
  DeviceGetMemoryInfoV2Fn* memory_v2 = nullptr;                 // nvmlDeviceGetMemoryInfo_v2
  DeviceGetCudaComputeCapabilityFn* compute_capability = nullptr;
  DeviceGetPciInfoFn* pci_info = nullptr;  // nvmlDeviceGetPciInfo_v3
  DeviceGetNvLinkStateFn* nvlink_state = nullptr;
  DeviceGetTotalEccErrorsFn* total_ecc_errors = nullptr;
  DeviceGetRetiredPagesPendingStatusFn* retired_pages_pending = nullptr;
  DeviceGetRemappedRowsFn* remapped_rows = nullptr;
  DeviceGetTemperatureFn* temperature = nullptr;
  DeviceGetTemperatureThresholdFn* temperature_threshold = nullptr;
  /// nvmlDeviceGetCurrentClocksEventReasons, else the older
  /// nvmlDeviceGetCurrentClocksThrottleReasons (the same function under its R5xx name).
  DeviceGetClocksEventReasonsFn* clocks_event_reasons = nullptr;
  DeviceGetRunningProcessesFn* compute_processes = nullptr;   // ..._v3
  DeviceGetRunningProcessesFn* graphics_processes = nullptr;  // ..._v3
  EventSetCreateFn* event_set_create = nullptr;
  DeviceRegisterEventsFn* register_events = nullptr;
  EventSetWaitFn* event_set_wait = nullptr;  // nvmlEventSetWait_v2
  EventSetFreeFn* event_set_free = nullptr;
};

/// Closes a dlopen handle (a std::unique_ptr deleter).
struct DlCloser {
  void operator()(void* handle) const;
};

/// NVML loaded and initialised: dlopen'ed, every entry point bound, nvmlInit_v2
/// called. The destructor calls nvmlShutdown and unloads the library. NVML counts
/// its initialisations, so several sessions in one process are fine.
class NvmlSession {
 public:
  /// Errors: kNotFound when `library` cannot be loaded ("NVML not found: no NVIDIA
  /// driver on this host (...)"), kUnsupported when a required entry point is
  /// missing, kUnavailable when nvmlInit fails.
  [[nodiscard]] static base::Result<std::unique_ptr<NvmlSession>> Open(const std::string& library);
  ~NvmlSession();
  NvmlSession(const NvmlSession&) = delete;
  NvmlSession& operator=(const NvmlSession&) = delete;

  const Api& Functions() const { return m_api; }
  /// The file the loader picked, e.g. /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.159.04.
  const std::string& LibraryPath() const { return m_library_path; }
  /// The optional entry points this library lacks, by NVML name.
  const std::vector<std::string>& AbsentEntryPoints() const { return m_absent; }
  /// NVML's text for `rc` with the number: "Not Supported (NVML code 3)".
  std::string Reason(nvmlReturn_t rc) const;

 private:
  NvmlSession() = default;
  std::unique_ptr<void, DlCloser> m_handle;
  Api m_api;
  std::string m_library_path;
  std::vector<std::string> m_absent;
  bool m_initialised = false;
};

}  // namespace gpunet::runtime::nvml
// NOLINTEND(readability-identifier-naming)
