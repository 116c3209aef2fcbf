#include "apps/gpunet_init/init_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace gpunet::init {

void Fd::Reset(int fd) {
  if (m_fd >= 0) ::close(m_fd);
  m_fd = fd;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      (void)::poll(&p, 1, -1);
      continue;
    }
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool FrameSocket::Send(base::SessionFrameType type, std::string_view payload) {
  do {
    std::string_view piece = payload.substr(0, base::kSessionPayloadMax);
    if (!WriteAll(m_fd, base::EncodeSessionFrame(type, piece))) return false;
    payload.remove_prefix(piece.size());
  } while (!payload.empty());
  return true;
}

bool FrameSocket::SendExit(int wait_status) {
  base::SessionExit exit;
  exit.exit_code = ExitCodeOf(wait_status);
  exit.signal = WIFSIGNALED(wait_status) ? static_cast<uint8_t>(WTERMSIG(wait_status)) : 0;
  return Send(base::SessionFrameType::kExit, base::EncodeSessionExit(exit));
}

base::Result<std::optional<base::SessionFrame>> FrameSocket::ReadFrame() {
  for (;;) {
    auto next = m_decoder.Next();
    if (!next || next->has_value()) return next;
    if (!ReadSome()) {
      if (auto end = m_decoder.Finish(); !end) return std::unexpected(end.error());
      return std::optional<base::SessionFrame>();
    }
  }
}

bool FrameSocket::ReadSome() {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(m_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    m_decoder.Feed(std::string_view(buf, static_cast<size_t>(n)));
    return true;
  }
}

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 255;
}

void ResetSignals() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP) (void)::sigaction(s, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

void CloseFdsFrom(int first, int keep) {
  if (keep < first) {
    ::close_range(static_cast<unsigned>(first), ~0U, 0);
    return;
  }
  if (keep > first) ::close_range(static_cast<unsigned>(first), static_cast<unsigned>(keep - 1), 0);
  ::close_range(static_cast<unsigned>(keep + 1), ~0U, 0);
}

std::vector<std::string> EnvironmentWith(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  auto name_of = [](std::string_view kv) { return kv.substr(0, kv.find('=')); };
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    bool replaced = false;
    for (const auto& x : extra)
      if (name_of(x) == name_of(kv)) replaced = true;
    if (!replaced) out.emplace_back(kv);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

void ExecWithEnv(const std::vector<std::string>& argv, const std::vector<std::string>& envp) {
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : envp) e.push_back(const_cast<char*>(s.c_str()));
  e.push_back(nullptr);
  // execvpe searches the PATH of the calling process: init's, which is the workload's.
  ::execvpe(a[0], a.data(), e.data());
}

std::string LoginShell() {
  std::ifstream in("/etc/passwd");
  const std::string uid = std::to_string(::getuid());
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::stringstream s(line);
    for (std::string part; std::getline(s, part, ':');) f.push_back(part);
    if (f.size() >= 7 && f[2] == uid && !f[6].empty() && f[6][0] == '/' &&
        ::access(f[6].c_str(), X_OK) == 0)
      return f[6];
  }
  return ::access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
}

Fd OpenPidFd(pid_t pid) {
  return Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

}  // namespace gpunet::init
