// What this host can enforce, detected at run time (issue 6 items 1-3, 9).
//
// Provider hosts differ: this build machine has cgroup v1 controllers in a hybrid
// layout, most current distributions have pure cgroup v2 under systemd. Nothing in
// the runtime assumes either: the launcher asks Probe() and enforces what it finds,
// and refuses to start (unless told to run unenforced) when a limit cannot be applied.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "runtime/nvml.h"
#include "runtime/spec.h"

namespace gpunet::runtime {

/// How one resource limit is enforced on this host.
enum class Enforcement {
  kNone,      ///< cannot be enforced here
  kCgroupV1,  ///< by a cgroup v1 controller hierarchy
  kCgroupV2,  ///< by the unified hierarchy
  kOther,     ///< by another mechanism (see the reason text)
};

struct LimitSupport {
  Enforcement how = Enforcement::kNone;
  std::string detail;  ///< where (a path) or why not, for `gpunet sandbox check`
};

/// The cgroup layout of this host and of the calling process.
struct CgroupLayout {
  std::map<std::string, std::string> v1_mounts;  ///< controller -> mount point (v1 only)
  std::map<std::string, std::string> v1_self;    ///< controller -> this process's cgroup path
  std::string v2_mount;                          ///< unified mount point, "" when none
  std::string v2_self;                           ///< this process's v2 cgroup path
  std::vector<std::string> v2_controllers;       ///< controllers available in v2_self
  std::vector<std::string> v2_root_controllers;  ///< controllers the v2 root has
  std::string Describe() const;                  ///< "v1 (hybrid: ...)" / "v2" / "none"
};

struct HostCapabilities {
  bool is_root = false;
  CgroupLayout cgroups;
  LimitSupport memory, cpu, pids, devices, freezer;
  bool user_namespaces = false;        ///< a process can create a user namespace
  std::string user_namespaces_detail;  ///< why not / sysctl values
  bool seccomp = false;                ///< kernel has seccomp filter mode
  bool loop_devices = false;           ///< /dev/loop-control exists (disk quota)
  std::string bwrap, slirp4netns, podman, runc, mkfs_ext4, mount;  ///< paths, "" = absent
  std::string egress_unavailable;             ///< from network.h, "" when egress works
  std::vector<std::string> gpu_devices;       ///< /dev/nvidia[0-9]* found
  std::vector<std::string> driver_libraries;  ///< host libcuda*/libnvidia-* found
  /// Directories of those the sandbox's loader would not search (see DriverLibraries).
  std::vector<std::string> driver_library_dirs_unlisted;
  std::optional<NvmlSnapshot> nvml;          ///< the GPUs NVML reports, when it answered
  std::string nvml_unavailable;              ///< why not, when it did not
  uint64_t nofile_hard = 0, nproc_hard = 0;  ///< hard rlimits of this process
};

/// Inspects /proc, /sys/fs/cgroup, /dev and PATH. Never fails: absent features are
/// reported as absent.
HostCapabilities Probe();

/// The limits of `spec` this host cannot enforce, each as a sentence naming what is
/// missing ("memory limit: no memory cgroup controller (v1 or v2)"). Empty means the
/// sandbox can be started with every limit enforced.
std::vector<std::string> UnenforceableLimits(const HostCapabilities& caps,
                                             const WorkloadSpec& spec);

/// The host's GPU driver libraries, found where the dynamic loader finds them.
struct DriverLibraries {
  /// Driver library files (IsDriverLibraryName) (canonical directory + file name,
  /// links kept as links), sorted: each is bound read-only into the sandbox.
  std::vector<std::string> files;
  /// Directories of `files` that neither /etc/ld.so.cache lists nor are default
  /// loader directories (the driver under /usr/local/nvidia/lib64, found on the host
  /// through LD_LIBRARY_PATH, say): a workload gets them in LD_LIBRARY_PATH, else its
  /// loader would not find libcuda.so.1 although the file is there.
  std::vector<std::string> unlisted_dirs;
};

/// Looks in the fixed library dirs, in the directories `ldconfig -p` names for
/// driver sonames, and in the directories the loader resolves libnvidia-ml.so.1 and
/// libcuda.so.1 to (this process's LD_LIBRARY_PATH included). Never fails.
DriverLibraries DiscoverDriverLibraries();
/// DiscoverDriverLibraries().files.
std::vector<std::string> FindDriverLibraries();

/// The paths of `files` that are not at or below one of `roots` (whole path
/// components: /usr covers /usr/lib/x, not /usrx). The sandbox already shows its
/// system read-only paths, so driver libraries there need no bind of their own, and
/// must not get one: bwrap cannot bind onto a destination that is an absolute
/// symlink (such as /usr/lib/libcuda.so -> /usr/local/nvidia/lib64/libcuda.so), as it
/// resolves it before the new root exists.
std::vector<std::string> PathsOutside(const std::vector<std::string>& files,
                                      const std::vector<std::string>& roots);

/// True for the file names of the driver's user-space libraries: libcuda.so*,
/// libcudadebugger.so*, libnvidia-* and libnvcuvid* (not the CUDA toolkit's libcudart*, which
/// workloads bring themselves).
bool IsDriverLibraryName(std::string_view file_name);

/// One entry of `ldconfig -p`: "\tlibcuda.so.1 (libc6,x86-64) =>
/// /usr/lib/x86_64-linux-gnu/libcuda.so.1".
struct LdCacheEntry {
  std::string soname;
  std::string path;
};
/// Parses `ldconfig -p` output; lines that are not entries (the "N libs found in
/// cache" header) are skipped.
std::vector<LdCacheEntry> ParseLdconfigOutput(std::string_view text);

/// `env` (NAME=VALUE strings) with `dirs` appended to LD_LIBRARY_PATH (set when
/// absent); unchanged when `dirs` is empty. The workload's own entries come first.
std::vector<std::string> WithLibraryDirs(std::vector<std::string> env,
                                         const std::vector<std::string>& dirs);

/// "2G", "512M", "64k", "1000" (bytes) -> bytes; refuses junk and overflow.
base::Result<uint64_t> ParseByteSize(const std::string& text);
/// Inverse, for messages: 2147483648 -> "2G" (exact units only, else bytes).
std::string FormatByteSize(uint64_t bytes);

}  // namespace gpunet::runtime
