// Podman backend: runs a workload from an OCI image in the local image store
// (architecture §4, issue 6 item 7), with the same limits, network modes, environment
// and outputs contract as the bubblewrap sandbox.
//
// Facts of real hosts that shape it (docs/sandbox.md, "Facts of the build host"):
//   - crun refuses hybrid cgroup layouts, so the runtime is always runc;
//   - podman's default ulimits exceed a hard limit that root cannot raise
//     (no CAP_SYS_RESOURCE), so explicit ulimits within the hard limits are given;
//   - podman's default bridge reaches host services bound to 0.0.0.0, so the
//     container always starts with --network none and the runtime's own network
//     modes (network.h) are attached to its namespace before the command runs
//     (podman create + init, AttachNetwork, start).
// Podman is pointed at a runtime-owned containers.conf (CONTAINERS_CONF); nothing
// under /etc is edited.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "runtime/spec.h"

namespace gpunet::runtime {

struct PodmanOptions {
  std::string podman;  ///< path of the podman binary; "" = the usual Debian locations
  /// Runtime-owned directory where containers.conf is written (created 0700).
  std::string config_dir = "/var/lib/gpunet/podman";
  /// Optional storage.conf (CONTAINERS_STORAGE_CONF); "" = podman's default store.
  std::string storage_conf;
  /// Parent cgroup (same relative path in every hierarchy) under which each
  /// workload gets <cgroup_parent>/<id> holding its memory, pids and CPU limits.
  std::string cgroup_parent = "/gpunet-podman";
  /// When /etc/subuid has no range for the user "containers", --userns=auto cannot
  /// work; the container then gets the fixed mapping 0..65535 -> userns_base.. (one
  /// range per workload: the caller allocates it). 0 = only --userns=auto.
  uint32_t userns_base = 0;
};

/// How a podman workload ended (mirrors the sandbox's exit reasons).
enum class PodmanEnd : uint8_t {
  kExited,       ///< the command exited by itself (any code)
  kSignaled,     ///< killed by a signal not caused by a limit
  kOutOfMemory,  ///< killed at its memory limit
  kPidsLimit,    ///< failed after forks were refused at its pids limit
  kStartFailed,  ///< podman/runc could not start it (exit codes 125-127 of podman)
};
std::string_view PodmanEndName(PodmanEnd end);

struct PodmanExit {
  int exit_code = 0;  ///< shell style: the code, or 128 + signal
  PodmanEnd end = PodmanEnd::kExited;
  std::string message;  ///< one line for people
};

/// How the container of a workload is laid out. The one-shot PodmanBackend::Run fills
/// outputs_dir and run_dir; the supervisor of Runtime::Start (Backend::kPodman) fills
/// it all, so a podman workload gets what a sandbox one does: /work, /outputs and /tmp
/// on its quota disk, its cgroup (with the limits) as parent, its GPUs' device nodes.
struct PodmanContainerPlan {
  std::string outputs_dir;    ///< bound at /outputs
  std::string work_dir;       ///< bound at /work, the working directory; "" = none
  std::string tmp_dir;        ///< bound at /tmp; "" = a tmpfs of disk_bytes
  std::string run_dir;        ///< private dir: resolv.conf and the env file
  std::string cgroup_parent;  ///< relative cgroup path; "" = options' cgroup_parent/<id>
  uint32_t userns_base = 0;   ///< base of the fixed mapping; 0 = the options' userns_base
  /// ":U" on the volumes: podman chowns them to the container's root as mapped on the
  /// host. Not needed when the caller made them for that uid (fixed mapping).
  bool chown_volumes = true;
  std::vector<std::pair<std::string, std::string>> devices;  ///< host node -> path inside
  /// Bind the device nodes (any host path) and leave allowing them to the caller
  /// (AllowDevicesInContainer, cgroup v1), rather than --device (host path = path
  /// inside, device cgroup by runc).
  bool bind_devices = false;
  std::vector<std::string> ro_files;  ///< host files bound read-only at the same path
};

/// An image of podman's local store.
struct PodmanImage {
  std::string name;  ///< repository:tag, or "" for an image without a name
  std::string id;    ///< image id (hex)
};

/// How a container ended, as podman recorded it.
struct PodmanState {
  int exit_code = 0;  ///< shell style
  bool oom_killed = false;
};

/// Stream name ("stdout"/"stderr") and bytes, as the container writes them.
using PodmanOutputSink = std::function<void(std::string_view stream, std::string_view data)>;

class PodmanBackend {
 public:
  /// Finds podman and runc, writes containers.conf, decides the user namespace mode.
  static base::Result<PodmanBackend> Create(PodmanOptions options);

  /// Makes a local image from a root file system tarball (`podman import`): no
  /// registry involved. Returns the image id.
  base::Result<std::string> ImportRootfs(const std::string& tarball, const std::string& name) const;
  base::Status RemoveImage(const std::string& name) const;
  bool ImageExists(const std::string& name) const;

  /// The `podman create` argv for a workload (without the podman binary itself).
  /// `env_file` holds the complete environment (WritePodmanEnvFile): the tenant's
  /// variables are never podman arguments, which any host user can read in /proc;
  /// `outputs_dir` is bound at /outputs and <run_dir>/resolv.conf (SandboxResolvConf
  /// of the mode) at /etc/resolv.conf.
  std::vector<std::string> CreateArgs(const WorkloadSpec& spec, const std::string& env_file,
                                      const std::string& outputs_dir,
                                      const std::string& run_dir) const;
  /// The same for a full plan.
  std::vector<std::string> CreateArgs(const WorkloadSpec& spec, const std::string& env_file,
                                      const PodmanContainerPlan& plan) const;

  /// What a podman workload must pass before anything is created: an image reference
  /// (IsImageReference) that is in the local store, the id, the strings, the network.
  base::Status CheckSpec(const WorkloadSpec& spec) const;
  /// Creates the container and has runc create its process without starting the
  /// command (`podman create` + `podman init`), so that the caller can attach the
  /// network first; returns that process's host pid. The env file lives only for the
  /// create. On failure nothing is left (the container is removed).
  base::Result<pid_t> CreateContainer(const WorkloadSpec& spec, const std::vector<std::string>& env,
                                      const PodmanContainerPlan& plan) const;
  /// argv that starts the created container and streams its stdout/stderr until it
  /// ends (`podman start --attach`); its exit code is the container's.
  std::vector<std::string> StartArgv(const std::string& id) const;
  /// How the container of workload `id` ended (`podman inspect`).
  base::Result<PodmanState> State(const std::string& id) const;
  /// Removes the container of workload `id`, killing it if it runs; ok when none.
  base::Status RemoveContainer(const std::string& id) const;
  /// The images of the local store (`podman images`), never pulled.
  base::Result<std::vector<PodmanImage>> ListImages() const;
  /// "gpunet-<id>": the container of workload `id`.
  static std::string ContainerName(const std::string& id) { return "gpunet-" + id; }

  /// Runs a workload to its end: limits cgroup, create, init, network attach, start
  /// (output streamed to `sink`), exit reason from the limit cgroup's counters, then
  /// removes the container and its cgroups. `run_dir` is a private runtime dir.
  /// `env` is the complete environment (KEY=VALUE: the spec's env and the GPUNET_*
  /// variables, as the sandbox builds them); it reaches podman through a root-only
  /// env file in `run_dir`, deleted once the container exists.
  base::Result<PodmanExit> Run(const WorkloadSpec& spec, const std::vector<std::string>& env,
                               const std::string& outputs_dir, const std::string& run_dir,
                               const PodmanOutputSink& sink) const;

  /// Environment given to every podman invocation: HostEnvironment() and the
  /// runtime's CONTAINERS_CONF (and CONTAINERS_STORAGE_CONF when set), nothing else.
  std::vector<std::string> PodmanEnv() const;
  bool UsesAutoUserns() const { return m_auto_userns; }
  const PodmanOptions& Options() const { return m_options; }

 private:
  /// The user namespace mapping, GPU nodes and driver files of CreateArgs.
  void AppendUsersAndDevices(const PodmanContainerPlan& plan, std::vector<std::string>* args) const;

  PodmanOptions m_options;
  std::string m_runc;
  bool m_auto_userns = false;
};

/// Writes the v1 device `rules` ("c 195:0 rwm") into the devices cgroup of the created
/// container whose first process is `container_pid`, before its command starts: how a
/// supervised container gets the GPU nodes bound with PodmanContainerPlan::bind_devices.
base::Status AllowDevicesInContainer(pid_t container_pid, const std::vector<std::string>& rules,
                                     const std::map<std::string, std::string>& v1_mounts);

/// Whether `image` may go on podman's command line as the tenant's image: a letter or
/// digit, then [A-Za-z0-9._/:@-], at most 255 (never an option); no transport prefix
/// (dir:, oci-archive:, docker://, ...: an image from outside podman's store), and a
/// ':' before the first '/' only as a registry's host:port (digits).
bool IsImageReference(const std::string& image);

/// Writes `env` (KEY=VALUE strings) as a podman --env-file at `path`, atomically,
/// mode 0600 from its first instant, owned by the caller (root); a link at `path` is
/// refused (base::WriteFileAtomic). Refuses, writing nothing, an entry without '=',
/// a name that fails ValidateEnvName, a NUL, and a line break (podman reads one
/// variable a line).
base::Status WritePodmanEnvFile(const std::string& path, const std::vector<std::string>& env);

/// "" when podman can run containers on this host, else why not (for `gpunet
/// sandbox check` and for tests, which skip by name with this reason).
std::string PodmanUnavailableReason();

/// The containers.conf the runtime points podman at: runc, cgroupfs when there is
/// no systemd, file events, ulimits clamped to this process's hard limits.
std::string PodmanContainersConf();

}  // namespace gpunet::runtime
