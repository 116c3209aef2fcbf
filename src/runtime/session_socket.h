// The session socket of a run dir, the supervisor's side (internal to
// gpunet_runtime; callers use Runtime::OpenSession).
#pragma once

#include "base/result.h"
#include "runtime/sys_util.h"

#include <string>

namespace gpunet::runtime {

/// The init a sandbox runs (RuntimeOptions::init_path, or gpunet-init beside
/// /proc/self/exe when empty), checked: an absolute path to a regular file that every
/// uid may execute (the workload's runs it); when the caller is root, the file and its
/// folder owned by root and writable by no group or other (it runs in every tenant's
/// sandbox). Returns the real path (links resolved): the one to bind.
/// kNotFound/kPermissionDenied saying how to fix it.
base::Result<std::string> ResolveInitPath(const std::string& configured);

/// Creates <run dir>/session.sock (mode 0600, replacing a stale one) and listens on it;
/// `run_dir_fd` is the run dir (root's, 0711: the workload's uid traverses it to its
/// bind sources; only root writes it), open. The returned fd is close-on-exec.
base::Result<UniqueFd> ListenSessionSocket(int run_dir_fd);

}  // namespace gpunet::runtime
