#include "runtime/nvml.h"

#include <dlfcn.h>
#include <link.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "runtime/nvml_api.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

// Buffer sizes from nvml.h (NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE,
// NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE).
constexpr unsigned kDriverVersionBytes = 80;
constexpr unsigned kNameBytes = 96;
constexpr unsigned kUuidBytes = 96;

using DlHandle = std::unique_ptr<void, nvml::DlCloser>;

/// The resolved file behind a dlopen handle, "" when the loader does not say.
std::string HandlePath(void* handle) {
  link_map* map = nullptr;
  if (::dlinfo(handle, RTLD_DI_LINKMAP, static_cast<void*>(&map)) != 0 || !map || !map->l_name ||
      !*map->l_name)
    return "";
  std::error_code ec;
  auto real = std::filesystem::canonical(map->l_name, ec);
  return ec ? std::string(map->l_name) : real.string();
}

template <class Fn>
bool Bind(void* handle, const char* symbol, Fn** out) {
  void* p = ::dlsym(handle, symbol);
  *out = reinterpret_cast<Fn*>(p);
  return p != nullptr;
}

/// Adds a query NVML refused to the GPU's problem line.
void Note(GpuInfo& gpu, const std::string& what) {
  gpu.problem += (gpu.problem.empty() ? "" : "; ") + what;
}

/// Active NVLink links: links 0..kNvlinkMaxLinks-1 asked one by one. A GPU without
/// NVLink answers "not supported" (and a link index past its own count "invalid
/// argument"): those are links that do not exist, not failures.
void ReadNvlink(const nvml::NvmlSession& s, nvmlDevice_t dev, GpuInfo& gpu) {
  const nvml::Api& api = s.Functions();
  if (!api.nvlink_state) return;
  uint32_t active = 0;
  for (unsigned link = 0; link < nvml::kNvlinkMaxLinks; ++link) {
    nvmlEnableState_t state = 0;
    nvmlReturn_t rc = api.nvlink_state(dev, link, &state);
    if (rc == nvml::kSuccess) {
      if (state == nvml::kFeatureEnabled) ++active;
    } else if (rc != nvml::kErrorNotSupported && rc != nvml::kErrorInvalidArgument) {
      Note(gpu, "NVLink link " + std::to_string(link) + ": " + s.Reason(rc));
      return;
    }
  }
  gpu.nvlink_active_links = active;
}

/// The optional fields of one GPU: compute capability, PCI bus id, NVLink.
void ReadOptionalFields(const nvml::NvmlSession& s, nvmlDevice_t dev, GpuInfo& gpu) {
  const nvml::Api& api = s.Functions();
  if (api.compute_capability) {
    int major_version = 0, minor_version = 0;
    if (nvmlReturn_t rc = api.compute_capability(dev, &major_version, &minor_version);
        rc == nvml::kSuccess)
      gpu.compute_capability = ComputeCapability{major_version, minor_version};
    else
      Note(gpu, "compute capability: " + s.Reason(rc));
  }
  if (api.pci_info) {
    nvmlPciInfo_t pci{};
    if (nvmlReturn_t rc = api.pci_info(dev, &pci); rc == nvml::kSuccess)
      gpu.pci_bus_id = std::string(pci.busId, ::strnlen(pci.busId, sizeof pci.busId));
    else
      Note(gpu, "PCI info: " + s.Reason(rc));
  }
  ReadNvlink(s, dev, gpu);
}

GpuInfo ReadGpu(const nvml::NvmlSession& s, unsigned index) {
  const nvml::Api& api = s.Functions();
  GpuInfo gpu;
  gpu.index = index;
  nvmlDevice_t dev = nullptr;
  if (nvmlReturn_t rc = api.handle_by_index(index, &dev); rc != nvml::kSuccess) {
    // A GPU NVML cannot open (lost, or not permitted) is listed with the reason:
    // hiding it would make a provider's inventory silently shorter.
    gpu.problem = "nvmlDeviceGetHandleByIndex: " + s.Reason(rc);
    return gpu;
  }
  char uuid[kUuidBytes] = {};
  if (nvmlReturn_t rc = api.uuid(dev, uuid, sizeof uuid); rc == nvml::kSuccess)
    gpu.uuid = uuid;
  else
    Note(gpu, "UUID: " + s.Reason(rc));
  char name[kNameBytes] = {};
  if (nvmlReturn_t rc = api.name(dev, name, sizeof name); rc == nvml::kSuccess)
    gpu.name = name;
  else
    Note(gpu, "name: " + s.Reason(rc));
  nvmlMemory_t mem{};
  if (nvmlReturn_t rc = api.memory(dev, &mem); rc == nvml::kSuccess)
    gpu.memory_total_bytes = mem.total;
  else
    Note(gpu, "memory: " + s.Reason(rc));
  unsigned minor_number = 0;
  if (nvmlReturn_t rc = api.minor_number(dev, &minor_number); rc == nvml::kSuccess)
    gpu.minor = minor_number;
  else
    Note(gpu, "minor number: " + s.Reason(rc));
  ReadOptionalFields(s, dev, gpu);
  return gpu;
}

}  // namespace

namespace nvml {

void DlCloser::operator()(void* handle) const {
  if (handle) ::dlclose(handle);
}

std::string NvmlSession::Reason(nvmlReturn_t rc) const {
  const char* s = m_api.error_string ? m_api.error_string(rc) : nullptr;
  return (s && *s ? std::string(s) : "unknown error") + " (NVML code " + std::to_string(rc) + ")";
}

// Over 70 lines: one table of every entry point NVML is asked for, then init.
// NOLINTNEXTLINE(readability-function-size)
base::Result<std::unique_ptr<NvmlSession>> NvmlSession::Open(const std::string& library) {
  ::dlerror();
  std::unique_ptr<NvmlSession> s(new NvmlSession());
  s->m_handle.reset(::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!s->m_handle) {
    const char* why = ::dlerror();
    return Fail(ErrorCode::kNotFound,
                "NVML not found: no NVIDIA driver on this host (" +
                    (why ? std::string(why) : library + ": cannot be loaded") + ")");
  }
  void* h = s->m_handle.get();
  s->m_library_path = HandlePath(h);
  Api& api = s->m_api;
  const std::pair<const char*, bool> required[] = {
      {"nvmlInit_v2", Bind(h, "nvmlInit_v2", &api.init)},
      {"nvmlShutdown", Bind(h, "nvmlShutdown", &api.shutdown)},
      {"nvmlErrorString", Bind(h, "nvmlErrorString", &api.error_string)},
      {"nvmlSystemGetDriverVersion", Bind(h, "nvmlSystemGetDriverVersion", &api.driver_version)},
      {"nvmlDeviceGetCount_v2", Bind(h, "nvmlDeviceGetCount_v2", &api.count)},
      {"nvmlDeviceGetHandleByIndex_v2",
       Bind(h, "nvmlDeviceGetHandleByIndex_v2", &api.handle_by_index)},
      {"nvmlDeviceGetName", Bind(h, "nvmlDeviceGetName", &api.name)},
      {"nvmlDeviceGetUUID", Bind(h, "nvmlDeviceGetUUID", &api.uuid)},
      {"nvmlDeviceGetMemoryInfo", Bind(h, "nvmlDeviceGetMemoryInfo", &api.memory)},
      {"nvmlDeviceGetMinorNumber", Bind(h, "nvmlDeviceGetMinorNumber", &api.minor_number)},
  };
  for (const auto& [name, found] : required)
    if (!found)
      return Fail(ErrorCode::kUnsupported,
                  (s->m_library_path.empty() ? library : s->m_library_path) +
                      " is not a usable NVML: it has no " + name +
                      " (driver too old, or not NVIDIA's library)");
  // The R535 name first, the older one (same function) where the driver predates it.
  if (!Bind(h, "nvmlDeviceGetCurrentClocksEventReasons", &api.clocks_event_reasons))
    Bind(h, "nvmlDeviceGetCurrentClocksThrottleReasons", &api.clocks_event_reasons);
  const std::pair<const char*, bool> optional[] = {
      {"nvmlSystemGetCudaDriverVersion",
       Bind(h, "nvmlSystemGetCudaDriverVersion", &api.cuda_driver_version)},
      {"nvmlDeviceGetMemoryInfo_v2", Bind(h, "nvmlDeviceGetMemoryInfo_v2", &api.memory_v2)},
      {"nvmlDeviceGetCudaComputeCapability",
       Bind(h, "nvmlDeviceGetCudaComputeCapability", &api.compute_capability)},
      {"nvmlDeviceGetPciInfo_v3", Bind(h, "nvmlDeviceGetPciInfo_v3", &api.pci_info)},
      {"nvmlDeviceGetNvLinkState", Bind(h, "nvmlDeviceGetNvLinkState", &api.nvlink_state)},
      {"nvmlDeviceGetTotalEccErrors",
       Bind(h, "nvmlDeviceGetTotalEccErrors", &api.total_ecc_errors)},
      {"nvmlDeviceGetRetiredPagesPendingStatus",
       Bind(h, "nvmlDeviceGetRetiredPagesPendingStatus", &api.retired_pages_pending)},
      {"nvmlDeviceGetRemappedRows", Bind(h, "nvmlDeviceGetRemappedRows", &api.remapped_rows)},
      {"nvmlDeviceGetTemperature", Bind(h, "nvmlDeviceGetTemperature", &api.temperature)},
      {"nvmlDeviceGetTemperatureThreshold",
       Bind(h, "nvmlDeviceGetTemperatureThreshold", &api.temperature_threshold)},
      {"nvmlDeviceGetCurrentClocksEventReasons", api.clocks_event_reasons != nullptr},
      {"nvmlDeviceGetComputeRunningProcesses_v3",
       Bind(h, "nvmlDeviceGetComputeRunningProcesses_v3", &api.compute_processes)},
      {"nvmlDeviceGetGraphicsRunningProcesses_v3",
       Bind(h, "nvmlDeviceGetGraphicsRunningProcesses_v3", &api.graphics_processes)},
      {"nvmlEventSetCreate", Bind(h, "nvmlEventSetCreate", &api.event_set_create)},
      {"nvmlDeviceRegisterEvents", Bind(h, "nvmlDeviceRegisterEvents", &api.register_events)},
      {"nvmlEventSetWait_v2", Bind(h, "nvmlEventSetWait_v2", &api.event_set_wait)},
      {"nvmlEventSetFree", Bind(h, "nvmlEventSetFree", &api.event_set_free)},
  };
  for (const auto& [name, found] : optional)
    if (!found) s->m_absent.emplace_back(name);

  if (nvmlReturn_t rc = api.init(); rc != kSuccess)
    return Fail(ErrorCode::kUnavailable,
                "nvmlInit failed: " + s->Reason(rc) +
                    "; is the NVIDIA kernel module loaded and /dev/nvidiactl accessible?");
  s->m_initialised = true;
  return s;
}

NvmlSession::~NvmlSession() {
  if (m_initialised) m_api.shutdown();
}

}  // namespace nvml

std::string CudaVersionText(int encoded) {
  if (encoded <= 0) return "";
  return std::to_string(encoded / 1000) + "." + std::to_string(encoded % 1000 / 10);
}

std::string GpuInterconnect(const GpuInfo& gpu) {
  if (!gpu.nvlink_active_links) return "";
  return *gpu.nvlink_active_links > 0 ? "nvlink" : "pcie";
}

base::Result<NvmlSnapshot> ReadInventory(const nvml::NvmlSession& session) {
  const nvml::Api& api = session.Functions();
  NvmlSnapshot snap;
  snap.library_path = session.LibraryPath();
  snap.absent = session.AbsentEntryPoints();
  char version[kDriverVersionBytes] = {};
  if (api.driver_version(version, sizeof version) == nvml::kSuccess) snap.driver_version = version;
  if (api.cuda_driver_version) {
    int cuda = 0;
    if (nvmlReturn_t rc = api.cuda_driver_version(&cuda); rc == nvml::kSuccess)
      snap.cuda_driver_version = CudaVersionText(cuda);
    else
      snap.problem = "CUDA driver version: " + session.Reason(rc);
  }
  unsigned count = 0;
  if (nvmlReturn_t rc = api.count(&count); rc != nvml::kSuccess)
    return Fail(ErrorCode::kUnavailable, "nvmlDeviceGetCount failed: " + session.Reason(rc));
  for (unsigned i = 0; i < count; ++i) snap.gpus.push_back(ReadGpu(session, i));
  return snap;
}

base::Result<NvmlSnapshot> ProbeNvml(const std::string& library) {
  GPUNET_TRY_ASSIGN(auto session, nvml::NvmlSession::Open(library));
  return ReadInventory(*session);
}

std::string LoadedLibraryDir(const std::string& soname) {
  DlHandle handle(::dlopen(soname.c_str(), RTLD_LAZY | RTLD_LOCAL));
  if (!handle) return "";
  std::string path = HandlePath(handle.get());
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
}

}  // namespace gpunet::runtime
