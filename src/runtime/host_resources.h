// Host resources one workload holds for its lifetime: a uid of its own, a
// size-capped file system for its work and outputs, and its GPU device nodes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "runtime/state_files.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

/// A uid reserved for one workload: held by an exclusive flock on
/// <state_dir>/uids/<uid>.lock, so it is released exactly when the holder (the
/// supervisor) exits, even by crash, and two workloads never share one.
class UidLease {
 public:
  UidLease() = default;
  UidLease(uint32_t uid, UniqueFd lock) : m_uid(uid), m_lock(std::move(lock)) {}
  uint32_t Uid() const { return m_uid; }
  int LockFd() const { return m_lock.Get(); }
  bool Valid() const { return m_lock.Valid(); }

 private:
  uint32_t m_uid = 0;
  UniqueFd m_lock;
};

/// Takes the first free uid of [first, first + count).
base::Result<UidLease> AllocateUid(const std::string& state_dir, uint32_t first, uint32_t count);

/// Makes a sparse `bytes`-sized ext4 image at `image` and mounts it (loop, nosuid,
/// nodev) on `mountpoint`: writes past the size fail with ENOSPC.
base::Status CreateQuotaFs(const std::string& image, const std::string& mountpoint, uint64_t bytes);
/// Unmounts `mountpoint` if it is mounted (lazily when busy); the loop device is
/// released by the kernel (autoclear).
base::Status UnmountQuotaFs(const std::string& mountpoint);
/// True when `path` is a mount point (per /proc/self/mountinfo).
bool IsMountPoint(const std::string& path);

/// Makes work/, outputs/ and tmp/ (0700, owned by `uid`) in `fs`, the workload's file
/// system as a checked dir: each made and chowned relative to its fd, never through a
/// link (an existing entry of that name is an error).
base::Status MakeWorkloadDirs(const state_files::StateDir& fs, uint32_t uid);
/// Makes the folders of each of `inside` (WorkloadSpec::workdir, outputs_dir) that lie
/// beneath /work or /outputs and are missing, owned by `uid`, before the workload runs
/// (a path elsewhere is left to the environment). Never through a link.
base::Status MakeInsideDirs(const state_files::StateDir& fs, uint32_t uid,
                            const std::vector<std::string>& inside);
/// Writes the sandbox's /etc files (passwd and group naming `uid`, hosts, and
/// `resolv_conf`) into <run>/etc, made and checked like every run-dir directory and
/// written atomically relative to its fd, never through a link.
base::Status WriteSandboxEtc(const state_files::StateDir& run, uint32_t uid,
                             std::string_view resolv_conf);

/// Device nodes, cgroup rules and environment for the GPUs given to a workload.
struct GpuDevicePlan {
  std::vector<std::pair<std::string, std::string>> binds;  ///< host node -> path inside
  std::vector<std::string> cgroup_allow;                   ///< v1 devices.allow rules
  std::string cuda_visible_devices;                        ///< UUIDs, comma separated
};

/// UUID -> minor from /proc/driver/nvidia/gpus/*/information ("GPU UUID", "Device Minor").
std::map<std::string, uint32_t> ReadNvidiaMinors(
    const std::string& gpus_dir = "/proc/driver/nvidia/gpus");

/// The UUID and minor of one driver `information` file's text, nullopt when either
/// is missing or malformed.
std::optional<std::pair<std::string, uint32_t>> ParseNvidiaGpuInformation(std::string_view text);

/// UUID -> minor of this host's GPUs: what NVML reports, completed by the driver's
/// /proc files (a GPU in both keeps NVML's minor). Empty on a host without GPUs.
std::map<std::string, uint32_t> HostGpuMinors(
    const std::string& gpus_dir = "/proc/driver/nvidia/gpus");

/// Device rules every workload gets (null, zero, full, random, urandom, tty, ptmx, pts).
std::vector<std::string> BaseDeviceRules();

/// Plans the GPU part of a sandbox: each UUID must be in `minors` and its node
/// <device_dir>/nvidia<minor> must be a character device of major 195; nvidiactl
/// and nvidia-uvm* are added when present.
base::Result<GpuDevicePlan> PlanGpuDevices(const std::vector<std::string>& uuids,
                                           const std::map<std::string, uint32_t>& minors,
                                           const std::string& device_dir);

}  // namespace gpunet::runtime
