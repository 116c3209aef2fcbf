// The workload runtime's entry point: start, supervise, re-attach, stop and remove
// sandboxed workloads on a provider's machine (architecture §4, issue 6).
//
// Every workload runs under a supervisor process of its own (double-forked,
// setsid, in its own cgroup), so the caller — the provider daemon — can restart
// without killing workloads or losing their logs: a new Runtime over the same
// state_dir re-attaches by id. All state of one workload lives in its run dir,
// <state_dir>/runs/<id>/: spec.json, supervisor.pid, info.json, stdout.log and
// stderr.log (+ .1 after rotation), status.json (written atomically at exit),
// fs/ (the quota file system with work/ and outputs/).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "runtime/cgroup.h"
#include "runtime/outputs.h"
#include "runtime/podman.h"
#include "runtime/spec.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

struct RuntimeOptions {
  /// Root-owned directory for run dirs and uid locks (created 0711). It, runs/ and
  /// each run dir must be root's and writable by nobody else, and no directory above
  /// it may be writable by anyone but root (unless sticky, as /tmp), or the runtime
  /// refuses to use it (docs/sandbox.md, "The state directory").
  std::string state_dir = "/var/lib/gpunet/sandbox";
  /// argv that starts a supervisor; the runtime appends "--run-dir DIR --ready-fd N".
  /// For the gpunet binary: {"/path/to/gpunet", "sandbox", "supervise"}. Any binary
  /// that calls SupervisorMain() with those two values works (tests use their own).
  std::vector<std::string> supervisor_command;
  /// The in-sandbox init (gpunet-init, statically linked), bound read-only at
  /// /.gpunet/init in every bubblewrap sandbox and run as its command's parent
  /// (docs/sandbox.md "Interactive sessions"). Empty: "gpunet-init" beside the
  /// caller's /proc/self/exe (the gpunet binary). Start refuses when it is missing.
  std::string init_path;
  uint32_t uid_first = 200000;  ///< workload uids are taken from [uid_first, +uid_count)
  uint32_t uid_count = 10000;
  /// Parent cgroup per hierarchy (v1 controller name or "unified"); empty = the
  /// caller's own cgroup + "/gpunet/<hash of state_dir>" in each
  /// (DefaultCgroupParents, ScopeCgroupParents).
  std::map<std::string, std::string> cgroup_parents;
  /// Where GPU device nodes live (tests point it at fake nodes made with mknod).
  std::string device_dir = "/dev";
  /// GPU UUID -> device minor; empty = read /proc/driver/nvidia/gpus/*/information.
  std::map<std::string, uint32_t> gpu_minors;
  /// Extra binds (host path, path inside): read-only, and device binds. For tests
  /// and for providers that must expose something more (a dataset, a device).
  std::vector<std::pair<std::string, std::string>> extra_ro_binds;
  std::vector<std::pair<std::string, std::string>> extra_dev_binds;
  /// The podman backend (Backend::kPodman): podman binary, containers.conf dir,
  /// storage.conf and, where /etc/subuid has no range for "containers", the base of
  /// the fixed user namespace mappings: workload slot k (its uid - uid_first) maps
  /// 0..65535 to userns_base + k * 65536. cgroup_parent is not used: a supervised
  /// container nests under its workload's own cgroup, with the workload's limits.
  PodmanOptions podman;
};

/// An environment this host can run a workload in (the tenant API's
/// GET /environments): the bubblewrap sandbox over the host's own file system, or
/// an image in podman's local store.
struct Environment {
  std::string name;  ///< "host", or the image's name as podman lists it (repo:tag)
  Backend backend = Backend::kSandbox;
  std::string id;  ///< podman's image id (sha256 hex); "" for the host
};

/// The name of the session socket in a run dir (Runtime::OpenSession).
inline constexpr const char* kSessionSocketName = "session.sock";

/// The environment name of the bubblewrap sandbox.
inline constexpr const char* kHostEnvironment = "host";

enum class ExitReason : uint8_t {
  kExited,          ///< the command exited by itself (any code)
  kSignaled,        ///< killed by a signal it did not get from the runtime's limits
  kOutOfMemory,     ///< the kernel's OOM killer acted inside the memory limit
  kPidsLimit,       ///< forks were refused at the pids limit and the command failed
  kStopped,         ///< Runtime::Stop / Remove (or SIGTERM to the supervisor)
  kSupervisorLost,  ///< the supervisor died without writing a status
};
std::string_view ExitReasonName(ExitReason reason);

struct ExitStatus {
  int exit_code = 0;  ///< shell style: the code, or 128 + signal
  int signal = 0;     ///< terminating signal, 0 if it exited
  ExitReason reason = ExitReason::kExited;
  std::string message;  ///< one line for people, e.g. "killed: out of memory (limit 2G)"
  CgroupCounters counters;
  int64_t started_at_ms = 0;
  int64_t ended_at_ms = 0;
};

struct WorkloadInfo {
  std::string id;
  std::string run_dir;
  std::string work_dir;     ///< host path of /work inside (quota fs)
  std::string outputs_dir;  ///< host path of /outputs inside (read it with Outputs())
  /// The workload's file system root on the host (root's) and the outputs folder
  /// beneath it ("outputs", "work/results"): open it with OutputsReader::OpenIn, never
  /// by outputs_dir, whose inner folders the workload owns and may swap for links.
  std::string fs_dir;
  std::string outputs_beneath = "outputs";
  pid_t supervisor_pid = 0;
  /// The host uid the workload runs as (podman: its container root on the host with the
  /// fixed mapping; with --userns=auto the uid slot it holds, podman picking the ids).
  uint32_t uid = 0;
  std::vector<PortSpec> ports;          ///< bound host ports (NetworkMode::kPorts)
  std::vector<std::string> unenforced;  ///< limits not enforced (allow_unenforced_limits)
  bool running = false;                 ///< supervisor alive and no status yet
};

/// The one rule for workload ids, checked by every entry point that takes one (the
/// id names a directory, cgroups and a container): 1-64 characters of [a-z0-9-], not
/// starting with '-'. So no '.', '..', separators, control characters or NUL.
base::Status ValidateWorkloadId(std::string_view id);

/// The one rule for environment variable names, on every backend:
/// [A-Za-z_][A-Za-z0-9_]*. kInvalidArgument quoting the name with its bytes escaped.
base::Status ValidateEnvName(const std::string& name);

/// The spec's strings that reach execve, the workload's environment or a message:
/// command arguments and env values hold no NUL (execve would cut them short), env
/// names pass ValidateEnvName, and lease_id, master_addr, node_ips and the GPU UUIDs
/// hold no NUL or other control character (node_ips no ',' either: they are joined by
/// it). Part of ValidateSpec; the podman backend checks it too.
base::Status ValidateWorkloadStrings(const WorkloadSpec& spec);

/// The spec's workdir and outputs_dir: absolute, at most kInsideDirBytesMax bytes,
/// parts of [A-Za-z0-9._@+-] (none empty, "." or ".."); outputs_dir is /outputs or
/// beneath /outputs or /work. Part of ValidateWorkloadStrings.
base::Status ValidateInsideDirs(const WorkloadSpec& spec);

/// The host path of `inside` (/work/..., /outputs/...) in a workload whose disk is
/// mounted at `fs_dir` (<run>/fs); nullopt for a path on neither.
std::optional<std::string> HostPathOfInside(const std::string& fs_dir, std::string_view inside);

/// Checks a spec before anything is created: id, command, env names, sizes, network.
base::Status ValidateSpec(const WorkloadSpec& spec);

/// The environment the workload sees: a fixed PATH/HOME/LANG, the spec's env, then
/// the GPUNET_* lease variables (architecture §4) and CUDA_VISIBLE_DEVICES; nothing of the
/// provider's own environment.
std::vector<std::string> WorkloadEnvironment(const WorkloadSpec& spec,
                                             const std::string& cuda_visible_devices);

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);

  /// Starts a workload and returns once it runs (its limits, disk, network and
  /// seccomp filter in place) or with the reason it could not start.
  base::Result<WorkloadInfo> Start(const WorkloadSpec& spec);
  /// Reads a workload's state (after the caller restarted, for instance).
  base::Result<WorkloadInfo> Attach(const std::string& id) const;
  /// The exit status when the workload has ended, nullopt while it runs.
  base::Result<std::optional<ExitStatus>> Poll(const std::string& id) const;
  /// Waits for the end (timeout_ms < 0: forever).
  base::Result<ExitStatus> Wait(const std::string& id, int64_t timeout_ms = -1) const;
  /// Streams new stdout/stderr bytes to `sink` (stream is "stdout" or "stderr"),
  /// following rotation, until the workload has ended and its logs are drained.
  using LogSink = std::function<void(std::string_view stream, std::string_view data)>;
  base::Result<ExitStatus> Follow(const std::string& id, const LogSink& sink) const;
  /// Stops the workload: SIGTERM, up to the spec's stop_grace_ms for it to end, then
  /// its cgroup killed and torn down by its supervisor; waits for its status.
  base::Result<ExitStatus> Stop(const std::string& id) const;
  /// Stops the workload if it runs, then unmounts its disk and deletes its run dir.
  base::Status Remove(const std::string& id) const;
  /// Ids of all workloads with a run dir.
  std::vector<std::string> List() const;
  /// What this host can run: "host" when bubblewrap and user namespaces are there,
  /// then each image in podman's local store when podman can run (sorted by name;
  /// an image without a name is listed by id). Never pulls, never fails for want of
  /// podman: `notes` (when given) says why an environment is missing.
  std::vector<Environment> Environments(std::vector<std::string>* notes = nullptr) const;
  /// Safe reader over the workload's outputs (openat2, never follows links).
  base::Result<OutputsReader> Outputs(const std::string& id) const;
  /// A unix stream socket connected to the workload's in-sandbox init
  /// (<run_dir>/session.sock, docs/sandbox.md "Interactive sessions"): the caller
  /// relays session frames over it verbatim and never joins the sandbox. kNotFound
  /// for an unknown id; kConflict "the workload is not running" when nothing accepts
  /// (it ended, or it is being stopped); kUnavailable when its init does not accept
  /// (never waits on the tenant's side); kUnsupported for a podman workload (sessions
  /// need `environment: host` for now). The fd is blocking and close-on-exec.
  base::Result<UniqueFd> OpenSession(const std::string& id) const;

  const RuntimeOptions& Options() const { return m_options; }
  /// <state_dir>/runs/<id>, for tests and diagnostics; an id ValidateWorkloadId
  /// refuses is refused here too (never a path outside runs/).
  base::Result<std::string> RunDir(const std::string& id) const;

 private:
  RuntimeOptions m_options;
};

/// The supervisor process body. Call it from the binary named in
/// RuntimeOptions::supervisor_command with the --run-dir and --ready-fd values the
/// runtime passed; it returns the process exit code.
int SupervisorMain(const std::string& run_dir, int ready_fd);

}  // namespace gpunet::runtime
