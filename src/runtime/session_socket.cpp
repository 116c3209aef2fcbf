// Runtime::OpenSession and the listening session socket of a run dir
// (docs/sandbox.md "Interactive sessions"). Both reach the socket through the run
// dir's open fd (/proc/self/fd/N/session.sock): no path is resolved twice, and a
// long state dir does not hit sockaddr_un's 108 bytes.
#include "runtime/session_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "base/check.h"
#include "runtime/runtime.h"
#include "runtime/state_files.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

base::Result<sockaddr_un> SessionAddress(int run_dir_fd) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = "/proc/self/fd/" + std::to_string(run_dir_fd) + "/" + kSessionSocketName;
  GPUNET_CHECK(path.size() < sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

base::Result<std::string> ResolveInitPath(const std::string& configured) {
  std::string path = configured;
  if (path.empty()) {
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return ErrnoFail("reading /proc/self/exe to find gpunet-init", errno);
    std::string self(exe, static_cast<size_t>(n));
    path = self.substr(0, self.rfind('/') + 1) + "gpunet-init";
  }
  if (path.empty() || path[0] != '/')
    return Fail(ErrorCode::kInvalidArgument,
                "RuntimeOptions::init_path must be an absolute path (" + path + ")");
  // The real file: what is checked is what the sandbox binds, not a link that could be
  // pointed elsewhere after the check.
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real)
    return Fail(ErrorCode::kNotFound,
                "the in-sandbox init " + path +
                    " is missing: install gpunet-init beside gpunet (`make build` builds "
                    "build/bin/gpunet-init)");
  path = real.get();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoFail("stat " + path, errno);
  if (!S_ISREG(st.st_mode) || (st.st_mode & S_IXOTH) == 0)
    return Fail(ErrorCode::kPermissionDenied,
                "the in-sandbox init " + path +
                    " is not a file every user may execute (the workload's uid runs it): "
                    "chmod 755 it");
  if (::geteuid() == 0) {
    // It runs in every tenant's sandbox: whoever may change it (or swap it through its
    // folder) would run code in all of them. A root runtime takes it only from root,
    // written by nobody else.
    const std::string dir = path.substr(0, std::max<size_t>(path.rfind('/'), 1));
    struct stat dir_st {};
    if (::stat(dir.c_str(), &dir_st) != 0) return ErrnoFail("stat " + dir, errno);
    for (const auto& [what, s] : {std::pair<std::string, const struct stat*>{path, &st},
                                  std::pair<std::string, const struct stat*>{dir, &dir_st}}) {
      if (s->st_uid != 0 || (s->st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return Fail(
            ErrorCode::kPermissionDenied,
            "the in-sandbox init " + path + " runs in every tenant's sandbox, but " + what +
                " is owned by uid " + std::to_string(s->st_uid) +
                (s->st_mode & (S_IWGRP | S_IWOTH) ? ", writable by group or others"
                                                  : std::string()) +
                ": install it root-owned, written by root only, in a folder owned by root and "
                "not group- or world-writable (the provider's init is the gpunet-init "
                "beside gpunet: `sudo install -o root -g root -m 755 build/bin/gpunet "
                "build/bin/gpunet-init /usr/local/bin/`)");
    }
  }
  return path;
}

base::Result<UniqueFd> ListenSessionSocket(int run_dir_fd) {
  GPUNET_TRY_ASSIGN(sockaddr_un addr, SessionAddress(run_dir_fd));
  // A stale socket of an earlier start is replaced (the run dir is root's, 0711: no one
  // else can create or remove entries in it).
  if (::unlinkat(run_dir_fd, kSessionSocketName, 0) != 0 && errno != ENOENT)
    return ErrnoFail("removing the old session socket", errno);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.Valid()) return ErrnoFail("session socket", errno);
  // 0600 from the start: the umask makes the socket file's mode at bind.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.Get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) return ErrnoFail("binding the session socket", bind_errno);
  if (::fchmodat(run_dir_fd, kSessionSocketName, 0600, 0) != 0)
    return ErrnoFail("chmod of the session socket", errno);
  if (::listen(fd.Get(), 64) != 0) return ErrnoFail("listening on the session socket", errno);
  return fd;
}

base::Result<UniqueFd> Runtime::OpenSession(const std::string& id) const {
  GPUNET_TRY(ValidateWorkloadId(id));
  auto run = state_files::OpenRunDir(m_options.state_dir, id);
  if (!run) {
    if (run.error().code == ErrorCode::kNotFound)
      return Fail(ErrorCode::kNotFound, "no workload " + id);
    return std::unexpected(run.error());
  }
  if (auto text = run->Read(state_files::kSpecFile))
    if (auto spec = state_files::SpecFromJson(*text); spec && spec->backend == Backend::kPodman)
      return Fail(ErrorCode::kUnsupported,
                  "interactive sessions need `environment: host` for now (this workload runs "
                  "in a podman image)");
  const std::string not_running = "the workload is not running";
  if (run->Has(state_files::kStatusFile))
    return Fail(ErrorCode::kConflict, not_running + " (it ended)");
  GPUNET_TRY_ASSIGN(sockaddr_un addr, SessionAddress(run->Fd()));
  // Non-blocking: a unix connect waits while the listener's backlog is full, and the
  // tenant controls whether its init accepts (it may stop it). The caller must never
  // wait on the tenant, so a full backlog is an answer, not a wait.
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.Valid()) return ErrnoFail("session socket", errno);
  if (::connect(fd.Get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    if (e == ECONNREFUSED || e == ENOENT) return Fail(ErrorCode::kConflict, not_running);
    if (e == EAGAIN)
      return Fail(ErrorCode::kUnavailable,
                  "the workload's init is not taking sessions (its queue is full): retry, or "
                  "end sessions that hang");
    return ErrnoFail("connecting to the workload's session socket", e);
  }
  // The caller gets an ordinary blocking stream.
  if (::fcntl(fd.Get(), F_SETFL, 0) != 0) return ErrnoFail("fcntl on the session socket", errno);
  return fd;
}

}  // namespace gpunet::runtime
