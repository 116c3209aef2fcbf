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

/// A CUDA compute capability, e.g. 9.0 for Hopper.
struct ComputeCapability {
  int major_version = 0;
  int minor_version = 0;
  friend bool operator==(const ComputeCapability&, const ComputeCapability&) = default;
};

/// One GPU as NVML sees it (NVML's index order, which is PCI bus order). A field NVML
/// could not give is absent (or empty) and the reason is in `problem`; a field whose
/// entry point this driver lacks is absent and named in NvmlSnapshot::absent.
struct GpuInfo {
  uint32_t index = 0;
  std::string uuid;  ///< "GPU-xxxxxxxx-...": what leases and CUDA_VISIBLE_DEVICES name
  std::string name;  ///< e.g. "NVIDIA H100 80GB HBM3"
  uint64_t memory_total_bytes = 0;
  std::optional<uint32_t> minor;  ///< N of /dev/nvidiaN; absent when NVML cannot say
  std::optional<ComputeCapability> compute_capability;
  std::string pci_bus_id;  ///< "00000000:3B:00.0"; "" when NVML cannot say
  /// NVLink links in the active state (0 on a GPU without NVLink, which NVML answers
  /// "not supported"); absent when the driver lacks the query or it failed.
  std::optional<uint32_t> nvlink_active_links;
  std::string problem;  ///< a query NVML refused for this GPU, "" when none
};

/// How a GPU reaches its peers: "nvlink" with at least one active link, "pcie"
/// with none, "" when NVML did not say.
std::string GpuInterconnect(const GpuInfo& gpu);

/// A CUDA driver version as NVML encodes it (1000 * major + 10 * minor) in the
/// usual notation: 12080 -> "12.8", 13000 -> "13.0".
std::string CudaVersionText(int encoded);

/// What NVML reported on this host.
struct NvmlSnapshot {
  std::string library_path;    ///< the file the loader picked, e.g. /usr/lib/.../libnvidia-ml.so.1
  std::string driver_version;  ///< e.g. "580.159.04"
  /// The highest CUDA version this driver supports, e.g. "13.0"; "" when NVML cannot say.
  std::string cuda_driver_version;
  std::vector<GpuInfo> gpus;
  /// Optional NVML entry points this driver lacks (e.g. "nvmlDeviceGetPciInfo_v3"):
  /// the fields they fill are absent. A required one missing refuses the library.
  std::vector<std::string> absent;
  std::string problem;  ///< a host-wide query NVML refused (CUDA version), "" when none
};

/// Loads NVML (`library`: a soname the loader resolves, or a path), initialises it,
/// lists the GPUs and shuts it down again. Errors say why there is no answer:
/// kNotFound "NVML not found: no NVIDIA driver on this host (...)" when the library
/// cannot be loaded, kUnsupported when it lacks an entry point, kUnavailable
/// "nvmlInit failed: <NVML's reason>" when the driver does not answer. A host with
/// a driver and no GPU gives an empty list, not an error.
base::Result<NvmlSnapshot> ProbeNvml(const std::string& library = kNvmlLibrary);

namespace nvml {
class NvmlSession;
}
/// The inventory through a session already open (ProbeNvml and GpuMonitor share
/// it). Fails only when NVML cannot count the GPUs.
base::Result<NvmlSnapshot> ReadInventory(const nvml::NvmlSession& session);

/// The real directory of a shared library the loader resolves for `soname`
/// (dlopen, then the link map's path with links resolved), or "" when it cannot be
/// loaded. Used to find driver libraries where the loader finds them, whatever the
/// host's layout.
std::string LoadedLibraryDir(const std::string& soname);

}  // namespace gpunet::runtime
