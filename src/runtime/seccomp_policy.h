// The seccomp filter every sandboxed workload runs under (issue 6 item 1).
//
// A deny list on top of the namespaces and dropped capabilities: the syscalls
// below are where kernel escapes have come from (user namespaces, BPF, io_uring,
// keyrings, perf, userfaultfd) or what a workload never needs (mount, ptrace,
// kexec, modules). Denied calls fail with EPERM so programs see an ordinary
// refusal. clone3 fails with ENOSYS: its flags sit behind a pointer a filter
// cannot read, and libc falls back to clone, whose flags the filter checks.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

/// Names of the syscalls denied outright (for docs and `sandbox check`).
std::vector<std::string> SeccompDeniedSyscalls();

/// Builds the filter with libseccomp and exports it as a raw BPF program into a
/// sealed memfd positioned at 0, ready for `bwrap --seccomp FD`.
base::Result<UniqueFd> BuildSeccompBpf();

}  // namespace gpunet::runtime
