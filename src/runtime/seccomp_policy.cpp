#include "runtime/seccomp_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memory>

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

const char* const kDenied[] = {
    // namespaces (clone/unshare with CLONE_NEW* are filtered by flag below)
    "setns",
    // kernel attack surface a workload does not need
    "bpf",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "userfaultfd",
    // looking into or changing other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    // file systems and the machine
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "name_to_handle_at",
    "open_by_handle_at",
    "personality",
    "nfsservctl",
    "uselib",
    "vhangup",
};

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                     CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
#ifdef CLONE_NEWTIME
                                     | CLONE_NEWTIME
#endif
    ;

struct CtxFree {
  void operator()(void* ctx) const { seccomp_release(static_cast<scmp_filter_ctx>(ctx)); }
};

}  // namespace

std::vector<std::string> SeccompDeniedSyscalls() {
  std::vector<std::string> out(std::begin(kDenied), std::end(kDenied));
  out.push_back("unshare(CLONE_NEW*)");
  out.push_back("clone(CLONE_NEW*)");
  out.push_back("clone3 (ENOSYS)");
  return out;
}

base::Result<UniqueFd> BuildSeccompBpf() {
  std::unique_ptr<void, CtxFree> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Fail(ErrorCode::kUnsupported, "seccomp_init failed");
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  auto add = [&](const char* name, uint32_t action, unsigned argc,
                 const scmp_arg_cmp* cmp) -> base::Status {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return base::Ok();  // not on this architecture
    int rc = seccomp_rule_add_array(static_cast<scmp_filter_ctx>(ctx.get()), action, nr, argc, cmp);
    if (rc != 0)
      return Fail(ErrorCode::kInternal, std::string("seccomp rule for ") + name + " failed");
    return base::Ok();
  };
  for (const char* name : kDenied) GPUNET_TRY(add(name, eperm, 0, nullptr));
  // Deny when any namespace bit is set: libseccomp has no "masked != 0", so one rule
  // per bit (masked == bit).
  for (uint64_t bit = 1; bit != 0; bit <<= 1) {
    if (!(kNamespaceFlags & bit)) continue;
    scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit);
    GPUNET_TRY(add("unshare", eperm, 1, &cmp));
    GPUNET_TRY(add("clone", eperm, 1, &cmp));
  }
  GPUNET_TRY(add("clone3", SCMP_ACT_ERRNO(ENOSYS), 0, nullptr));

  UniqueFd fd(::memfd_create("gpunet-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.Valid()) return ErrnoFail("memfd_create", errno);
  int rc = seccomp_export_bpf(static_cast<scmp_filter_ctx>(ctx.get()), fd.Get());
  if (rc != 0)
    return Fail(ErrorCode::kInternal, "seccomp_export_bpf failed: " + std::to_string(rc));
  GPUNET_TRY(SealMemfd(fd.Get(), "seccomp"));
  return fd;
}

}  // namespace gpunet::runtime
