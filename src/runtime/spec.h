// What a workload is, independent of the backend that runs it (architecture §4).
// The provider daemon builds a WorkloadSpec from a lease and its manifest; the
// `gpunet sandbox run` command builds one from flags.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpunet::runtime {

enum class NetworkMode {
  kNone,    ///< loopback only
  kEgress,  ///< outbound through slirp4netns; host, private ranges and link-local blocked
  kPorts,   ///< listed ports reachable from the host through the runtime's forwarder
};

enum class Backend {
  kSandbox,  ///< bubblewrap + cgroups (default)
  kPodman,   ///< OCI image from podman's local store, through podman + runc
};

struct Resources {
  uint64_t memory_bytes = 2ull << 30;    ///< cgroup memory limit
  uint32_t cpu_millis = 1000;            ///< CPU quota in thousandths of a core
  uint32_t pids_max = 256;               ///< cgroup pids limit
  uint64_t disk_bytes = 1ull << 30;      ///< quota of work + outputs
  uint64_t shm_bytes = 64ull << 20;      ///< size of /dev/shm
  uint64_t log_bytes_max = 16ull << 20;  ///< per log file before rotation
};

struct PortSpec {
  uint16_t container_port = 0;  ///< port the workload listens on inside
  uint16_t host_port = 0;       ///< port on the host's 127.0.0.1 (0 = pick a free one)
};

/// Stop's SIGTERM grace when the spec gives none, and the most a spec may ask for.
inline constexpr uint32_t kStopGraceMsDefault = 1000;
inline constexpr uint32_t kStopGraceMsMax = 300'000;

/// Inside the workload: its disk's two folders, and the defaults of the spec's dirs.
inline constexpr std::string_view kWorkdirDefault = "/work";
inline constexpr std::string_view kOutputsDirDefault = "/outputs";
inline constexpr size_t kInsideDirBytesMax = 256;

struct WorkloadSpec {
  std::string id;  ///< unique per workload, [a-z0-9-], e.g. a lease id
  Backend backend = Backend::kSandbox;
  std::vector<std::string> command;        ///< argv; command[0] looked up in PATH inside
  std::string image;                       ///< OCI image (podman backend)
  std::map<std::string, std::string> env;  ///< workload env (GPUNET_* are added by the runtime)
  Resources resources;
  NetworkMode network = NetworkMode::kNone;
  std::vector<PortSpec> ports;         ///< with NetworkMode::kPorts
  std::vector<std::string> gpu_uuids;  ///< GPUs given to the workload, by UUID
  /// Runtime::Stop sends SIGTERM (sandbox: every process of the workload; podman: the
  /// container's first process, as `podman stop` does), waits up to this long for the
  /// workload to end, then kills its cgroup (docs/sandbox.md, "Stop and teardown").
  uint32_t stop_grace_ms = kStopGraceMsDefault;
  /// The command's working directory inside: absolute, parts of [A-Za-z0-9._@+-]
  /// (ValidateInsideDirs). One under /work or /outputs is made (as the workload's
  /// uid) before the start; anywhere else it must exist in the environment.
  std::string workdir = std::string(kWorkdirDefault);
  /// Where the workload leaves its outputs, inside: /outputs or a folder beneath
  /// /outputs or /work, made before the start. GPUNET_OUTPUT_DIR names it, and
  /// WorkloadInfo::outputs_dir (what the tenant API reads) is its host path.
  std::string outputs_dir = std::string(kOutputsDirDefault);
  /// When limits cannot be enforced on this host the runtime refuses to start,
  /// unless this is set (and then it says which limits are missing).
  bool allow_unenforced_limits = false;
  // Lease context exported as GPUNET_* variables (architecture §4).
  std::string lease_id;
  uint32_t node_rank = 0;
  uint32_t num_nodes = 1;
  std::vector<std::string> node_ips;
  int64_t lease_ends_at_ms = 0;
  std::string master_addr;
  uint16_t master_port = 0;
};

}  // namespace gpunet::runtime
