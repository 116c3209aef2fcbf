#include "runtime/nvml.h"

#include <dlfcn.h>
#include <link.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <memory>

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

// The few NVML entry points used, as declared in NVIDIA's public nvml.h. Their
// versioned names (_v2) are the ones current drivers export; they have been stable
// since the R3xx drivers. The types keep NVIDIA's names.
// NOLINTBEGIN(readability-identifier-naming)
using nvmlReturn_t = int;
using nvmlDevice_t = struct NvmlDeviceOpaque*;
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
// NOLINTEND(readability-identifier-naming)
constexpr nvmlReturn_t kNvmlSuccess = 0;
// Buffer sizes from nvml.h (NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE,
// NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE).
constexpr unsigned kDriverVersionBytes = 80;
constexpr unsigned kNameBytes = 96;
constexpr unsigned kUuidBytes = 96;

struct NvmlApi {
  nvmlReturn_t (*init)();
  nvmlReturn_t (*shutdown)();
  const char* (*error_string)(nvmlReturn_t);
  nvmlReturn_t (*driver_version)(char*, unsigned);
  nvmlReturn_t (*count)(unsigned*);
  nvmlReturn_t (*handle_by_index)(unsigned, nvmlDevice_t*);
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned);
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned);
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*minor)(nvmlDevice_t, unsigned*);
};

struct DlCloser {
  void operator()(void* h) const {
    if (h) ::dlclose(h);
  }
};
using DlHandle = std::unique_ptr<void, DlCloser>;

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
bool Bind(void* handle, const char* symbol, Fn* out) {
  void* p = ::dlsym(handle, symbol);
  *out = reinterpret_cast<Fn>(p);
  return p != nullptr;
}

std::string Reason(const NvmlApi& api, nvmlReturn_t rc) {
  const char* s = api.error_string ? api.error_string(rc) : nullptr;
  return (s && *s ? std::string(s) : "unknown error") + " (NVML code " + std::to_string(rc) + ")";
}

}  // namespace

// Over 70 lines: dlopen, symbol lookup, init and the per-device
// reads share the handle and its shutdown guard; one sequence
// NOLINTNEXTLINE(readability-function-size)
base::Result<NvmlSnapshot> ProbeNvml(const std::string& library) {
  ::dlerror();
  DlHandle handle(::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle) {
    const char* why = ::dlerror();
    return Fail(ErrorCode::kNotFound,
                "NVML not found: no NVIDIA driver on this host (" +
                    (why ? std::string(why) : library + ": cannot be loaded") + ")");
  }
  NvmlSnapshot snap;
  snap.library_path = HandlePath(handle.get());
  NvmlApi api{};
  const std::pair<const char*, bool> symbols[] = {
      {"nvmlInit_v2", Bind(handle.get(), "nvmlInit_v2", &api.init)},
      {"nvmlShutdown", Bind(handle.get(), "nvmlShutdown", &api.shutdown)},
      {"nvmlErrorString", Bind(handle.get(), "nvmlErrorString", &api.error_string)},
      {"nvmlSystemGetDriverVersion",
       Bind(handle.get(), "nvmlSystemGetDriverVersion", &api.driver_version)},
      {"nvmlDeviceGetCount_v2", Bind(handle.get(), "nvmlDeviceGetCount_v2", &api.count)},
      {"nvmlDeviceGetHandleByIndex_v2",
       Bind(handle.get(), "nvmlDeviceGetHandleByIndex_v2", &api.handle_by_index)},
      {"nvmlDeviceGetName", Bind(handle.get(), "nvmlDeviceGetName", &api.name)},
      {"nvmlDeviceGetUUID", Bind(handle.get(), "nvmlDeviceGetUUID", &api.uuid)},
      {"nvmlDeviceGetMemoryInfo", Bind(handle.get(), "nvmlDeviceGetMemoryInfo", &api.memory)},
      {"nvmlDeviceGetMinorNumber", Bind(handle.get(), "nvmlDeviceGetMinorNumber", &api.minor)},
  };
  for (const auto& [name, found] : symbols)
    if (!found)
      return Fail(ErrorCode::kUnsupported,
                  (snap.library_path.empty() ? library : snap.library_path) +
                      " is not a usable NVML: it has no " + name +
                      " (driver too old, or not NVIDIA's library)");

  if (nvmlReturn_t rc = api.init(); rc != kNvmlSuccess)
    return Fail(ErrorCode::kUnavailable,
                "nvmlInit failed: " + Reason(api, rc) +
                    "; is the NVIDIA kernel module loaded and /dev/nvidiactl accessible?");
  // Shut down on every path from here on; the library is unloaded after that.
  struct Shutdown {
    const NvmlApi& api;
    ~Shutdown() { api.shutdown(); }
  } shutdown{api};

  char version[kDriverVersionBytes] = {};
  if (api.driver_version(version, sizeof version) == kNvmlSuccess) snap.driver_version = version;
  unsigned count = 0;
  if (nvmlReturn_t rc = api.count(&count); rc != kNvmlSuccess)
    return Fail(ErrorCode::kUnavailable, "nvmlDeviceGetCount failed: " + Reason(api, rc));
  for (unsigned i = 0; i < count; ++i) {
    GpuInfo gpu;
    gpu.index = i;
    nvmlDevice_t dev = nullptr;
    if (nvmlReturn_t rc = api.handle_by_index(i, &dev); rc != kNvmlSuccess) {
      // A GPU NVML cannot open (lost, or not permitted) is listed with the reason:
      // hiding it would make a provider's inventory silently shorter.
      gpu.problem = "nvmlDeviceGetHandleByIndex: " + Reason(api, rc);
      snap.gpus.push_back(std::move(gpu));
      continue;
    }
    auto note = [&gpu](const std::string& what) {
      gpu.problem += (gpu.problem.empty() ? "" : "; ") + what;
    };
    char uuid[kUuidBytes] = {};
    if (nvmlReturn_t rc = api.uuid(dev, uuid, sizeof uuid); rc == kNvmlSuccess)
      gpu.uuid = uuid;
    else
      note("UUID: " + Reason(api, rc));
    char name[kNameBytes] = {};
    if (nvmlReturn_t rc = api.name(dev, name, sizeof name); rc == kNvmlSuccess)
      gpu.name = name;
    else
      note("name: " + Reason(api, rc));
    nvmlMemory_t mem{};
    if (nvmlReturn_t rc = api.memory(dev, &mem); rc == kNvmlSuccess)
      gpu.memory_total_bytes = mem.total;
    else
      note("memory: " + Reason(api, rc));
    unsigned minor = 0;
    if (nvmlReturn_t rc = api.minor(dev, &minor); rc == kNvmlSuccess)
      gpu.minor = minor;
    else
      note("minor number: " + Reason(api, rc));
    snap.gpus.push_back(std::move(gpu));
  }
  return snap;
}

std::string LoadedLibraryDir(const std::string& soname) {
  DlHandle handle(::dlopen(soname.c_str(), RTLD_LAZY | RTLD_LOCAL));
  if (!handle) return "";
  std::string path = HandlePath(handle.get());
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
}

}  // namespace gpunet::runtime
