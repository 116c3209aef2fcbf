// Watches the file-system calls of a piece of code as they happen: the code runs
// in a forked child stopped by ptrace at every system call, and the parent looks
// at each file the instant it is created (before any later fchmod or rename), so
// a test can prove what no after-the-fact stat can: a file's mode at creation,
// that a rename happened, that a directory was fsynced.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>  // PTRACE_GET_SYSCALL_INFO and its structure (glibc 2.32+)
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace gpunet::testing {

struct FsCall {
  enum class Kind { kCreate, kSync, kRename, kLink, kChmod, kMkdir };
  Kind kind;
  std::string path;   ///< the file created, synced, chmod'd; a rename's or link's source
  std::string path2;  ///< a rename's or link's target
  mode_t mode = 0;    ///< kCreate, kMkdir: permission bits the instant after the call
  int flags = 0;      ///< kCreate: the open flags
};

struct FsTrace {
  bool traced = false;  ///< false when ptrace is not permitted here
  int exit_code = -1;   ///< body's return value (or 128 + the signal that killed it)
  std::vector<FsCall> calls;
};

namespace fs_trace_detail {

inline std::string ReadLink(const std::string& link) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

inline std::string FdPath(pid_t pid, long long fd) {
  return ReadLink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd));
}

inline std::string ReadString(pid_t pid, unsigned long long addr) {
  int mem = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  std::string out;
  char c = 0;
  while (mem >= 0 && out.size() < PATH_MAX &&
         ::pread(mem, &c, 1, static_cast<off_t>(addr + out.size())) == 1 && c != '\0')
    out.push_back(c);
  if (mem >= 0) ::close(mem);
  return out;
}

// An absolute path for (dirfd, path) as the traced process sees it.
inline std::string Resolve(pid_t pid, long long dirfd, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  const std::string base =
      dirfd == AT_FDCWD ? ReadLink("/proc/" + std::to_string(pid) + "/cwd") : FdPath(pid, dirfd);
  return base + "/" + path;
}

inline mode_t ModeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

// One watched system call between its entry and exit stops, already in FsCall terms.
struct Pending {
  bool watched = false;
  FsCall call{FsCall::Kind::kCreate};
};

inline Pending OnEntry(pid_t pid, long long nr, const uint64_t* args) {
  using K = FsCall::Kind;
  auto str = [&](int i) { return ReadString(pid, args[i]); };
  auto fd = [&](int i) { return static_cast<long long>(static_cast<int>(args[i])); };
  auto at = [&](int dirfd_arg, int path_arg) { return Resolve(pid, fd(dirfd_arg), str(path_arg)); };
  auto cwd = [&](int path_arg) { return Resolve(pid, AT_FDCWD, str(path_arg)); };
  Pending p{true};
  switch (nr) {
#ifdef SYS_open  // the legacy calls, where the architecture has them
    case SYS_open:
      p.call = {K::kCreate, "", "", 0, static_cast<int>(args[1])};
      break;
    case SYS_rename:
      p.call = {K::kRename, cwd(0), cwd(1)};
      break;
    case SYS_link:
      p.call = {K::kLink, cwd(0), cwd(1)};
      break;
    case SYS_chmod:
      p.call = {K::kChmod, cwd(0), "", static_cast<mode_t>(args[1])};
      break;
    case SYS_mkdir:
      p.call = {K::kMkdir, cwd(0)};
      break;
#endif
    case SYS_openat:
      p.call = {K::kCreate, "", "", 0, static_cast<int>(args[2])};
      break;
    case SYS_renameat:
    case SYS_renameat2:
      p.call = {K::kRename, at(0, 1), at(2, 3)};
      break;
    case SYS_linkat:
      p.call = {K::kLink, at(0, 1), at(2, 3)};
      break;
    case SYS_fchmodat:
      p.call = {K::kChmod, at(0, 1), "", static_cast<mode_t>(args[2])};
      break;
    case SYS_mkdirat:
      p.call = {K::kMkdir, at(0, 1)};
      break;
    case SYS_fsync:
    case SYS_fdatasync:
      p.call = {K::kSync, FdPath(pid, fd(0))};
      break;
    case SYS_fchmod:
      p.call = {K::kChmod, FdPath(pid, fd(0)), "", static_cast<mode_t>(args[1])};
      break;
    default:
      p.watched = false;
  }
  return p;
}

// Completes a watched call that succeeded: a created file's path and its mode at
// this instant; a made directory's mode.
inline void OnExit(pid_t pid, Pending p, long long rval, std::vector<FsCall>& out) {
  using K = FsCall::Kind;
  if (!p.watched || rval < 0) return;
  if (p.call.kind == K::kCreate) {
    if (!(p.call.flags & O_CREAT)) return;
    p.call.path = FdPath(pid, rval);
  }
  if (p.call.kind == K::kCreate || p.call.kind == K::kMkdir) p.call.mode = ModeOf(p.call.path);
  out.push_back(std::move(p.call));
}

}  // namespace fs_trace_detail

/// Runs body in a forked child (single-threaded: only the calling thread is
/// traced) and returns every successful create, sync, rename, link, chmod and
/// mkdir it made, in order. The test process must have no other threads running.
inline FsTrace TraceFsCalls(const std::function<int()>& body) {
  namespace d = fs_trace_detail;
  FsTrace trace;
  const pid_t pid = ::fork();
  if (pid < 0) return trace;
  if (pid == 0) {
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) ::_exit(126);
    ::raise(SIGSTOP);
    ::_exit(body());
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
    if (WIFEXITED(status)) trace.exit_code = WEXITSTATUS(status);
    return trace;  // ptrace refused (exit 126)
  }
  trace.traced = true;
  ::ptrace(PTRACE_SETOPTIONS, pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
  d::Pending pending;
  int deliver = 0;
  for (;;) {
    if (::ptrace(PTRACE_SYSCALL, pid, nullptr, deliver) != 0) break;
    deliver = 0;
    if (::waitpid(pid, &status, 0) != pid) break;
    if (WIFEXITED(status)) {
      trace.exit_code = WEXITSTATUS(status);
      break;
    }
    if (WIFSIGNALED(status)) {
      trace.exit_code = 128 + WTERMSIG(status);
      break;
    }
    if (!WIFSTOPPED(status)) continue;
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
      deliver = WSTOPSIG(status);  // a real signal: pass it on
      continue;
    }
    __ptrace_syscall_info info{};
    if (::ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof info, &info) <= 0) continue;
    if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
      pending = d::OnEntry(pid, static_cast<long long>(info.entry.nr), info.entry.args);
    } else if (info.op == PTRACE_SYSCALL_INFO_EXIT) {
      d::OnExit(pid, std::move(pending), info.exit.is_error ? -1 : info.exit.rval, trace.calls);
      pending = d::Pending{};
    }
  }
  return trace;
}

}  // namespace gpunet::testing
