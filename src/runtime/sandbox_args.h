// The bubblewrap command line of one sandbox, as a pure function of a plan so it
// can be read and tested without running anything (issue 6 item 1).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/spec.h"

namespace gpunet::runtime {

/// Everything BuildBwrapArgs needs that is not in the spec: host paths and fds.
struct SandboxPlan {
  std::string bwrap;        ///< absolute path of bwrap
  std::string work_dir;     ///< host dir bound read-write at /work
  std::string outputs_dir;  ///< host dir bound read-write at /outputs
  std::string tmp_dir;      ///< host dir bound read-write at /tmp (on the quota fs)
  std::string etc_dir;      ///< host dir with passwd, group, hosts, resolv.conf for /etc
  std::vector<std::pair<std::string, std::string>> ro_binds;   ///< extra read-only binds
  std::vector<std::pair<std::string, std::string>> dev_binds;  ///< GPU and extra device nodes
  uint64_t shm_bytes = 0;
  int seccomp_fd = -1;
  int json_status_fd = -1;
  int block_fd = -1;
  /// fd of BwrapEnvArgs' data, read by bwrap's `--args`: the workload's environment
  /// reaches the sandbox without being on any command line or in bwrap's environ.
  int env_args_fd = -1;
  /// The in-sandbox init on the host (RuntimeOptions::init_path), bound read-only at
  /// kInsideInitPath, and the fd of the listening session socket it inherits.
  std::string init_path;
  int session_listen_fd = -1;
};

/// Where the sandbox sees gpunet-init; its command is
/// `/.gpunet/init --listen-fd N -- <spec.command...>`.
inline constexpr const char* kInsideInitPath = "/.gpunet/init";

/// System paths bound read-only into every sandbox, when present on the host. Not
/// /etc as a whole (host secrets and config live there), not /root, /home, /var.
std::vector<std::string> SystemReadOnlyPaths();

/// bwrap options that make the sandboxed command's environment exactly `env`
/// (KEY=VALUE strings; names [A-Za-z_][A-Za-z0-9_]*, no NUL anywhere, as
/// ValidateSpec ensures): "--clearenv", then "--setenv KEY VALUE" for each, every
/// piece NUL-terminated, the format of `bwrap --args FD`. bwrap itself runs with
/// HostEnvironment(); it applies these while parsing its options, after its loader
/// and libc have started, and they take effect at its execve inside the sandbox.
std::string BwrapEnvArgs(const std::vector<std::string>& env);

/// argv for execve: bwrap, its options, "--", then the init with the session socket's
/// fd, "--" and spec.command (empty: an interactive machine). The environment is not
/// in it: it comes through `--args plan.env_args_fd` (BwrapEnvArgs).
std::vector<std::string> BuildBwrapArgs(const WorkloadSpec& spec, const SandboxPlan& plan);

}  // namespace gpunet::runtime
