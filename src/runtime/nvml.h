// GPU detection through NVIDIA's management library (NVML), loaded at run time.
//
// /dev/nvidiaN and /proc/driver/nvidia/gpus/*/information are not always there:
// sandboxed or virtualised hosts (gVisor's nvproxy, some container runtimes) expose
// the device nodes without the driver's /proc files, and the node numbers alone do
// not say which GPU (UUID) a lease names. NVML is the driver's own answer and is
// present wherever the driver's user-space part is, so it is asked first; the /proc
// files remain the fallback (host_resources.h ReadNvidiaMinors).
//
// gpunet links nothing of NVIDIA's: libnvidia-ml.so.1 is dlopen'ed when a probe
// runs, and its absence is an ordinary answer ("no NVIDIA driver on this host"),
// not an error of the build.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gpunet::runtime {

/// The soname the driver installs; the dynamic loader finds it wherever it lives.
inline constexpr const char* kNvmlLibrary = "libnvidia-ml.so.1";

/// One GPU as NVML sees it (NVML's index order, which is PCI bus order).
struct GpuInfo {
  uint32_t index = 0;
  std::string uuid;  ///< "GPU-xxxxxxxx-...": what leases and CUDA_VISIBLE_DEVICES name
  std::string name;  ///< e.g. "NVIDIA H100 80GB HBM3"
  uint64_t memory_total_bytes = 0;
  std::optional<uint32_t> minor;  ///< N of /dev/nvidiaN; absent when NVML cannot say
  std::string problem;            ///< a query NVML refused for this GPU, "" when none
};

/// What NVML reported on this host.
struct NvmlSnapshot {
  std::string library_path;    ///< the file the loader picked, e.g. /usr/lib/.../libnvidia-ml.so.1
  std::string driver_version;  ///< e.g. "580.159.04"
  std::vector<GpuInfo> gpus;
};

/// Loads NVML (`library`: a soname the loader resolves, or a path), initialises it,
/// lists the GPUs and shuts it down again. Errors say why there is no answer:
/// kNotFound "NVML not found: no NVIDIA driver on this host (...)" when the library
/// cannot be loaded, kUnsupported when it lacks an entry point, kUnavailable
/// "nvmlInit failed: <NVML's reason>" when the driver does not answer. A host with
/// a driver and no GPU gives an empty list, not an error.
base::Result<NvmlSnapshot> ProbeNvml(const std::string& library = kNvmlLibrary);

/// The real directory of a shared library the loader resolves for `soname`
/// (dlopen, then the link map's path with links resolved), or "" when it cannot be
/// loaded. Used to find driver libraries where the loader finds them, whatever the
/// host's layout.
std::string LoadedLibraryDir(const std::string& soname);

}  // namespace gpunet::runtime
