#include "runtime/sys_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <sstream>

#include "base/check.h"
#include "base/clock.h"
#include "base/file_util.h"

namespace gpunet::runtime {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

using base::ErrorCode;
using base::Fail;

void UniqueFd::Reset(int fd) {
  if (m_fd >= 0) ::close(m_fd);
  m_fd = fd;
}

std::unexpected<base::Error> ErrnoFail(std::string_view what, int errno_value) {
  return Fail(ErrorCode::kIo, std::string(what) + ": " + std::strerror(errno_value));
}

base::Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.Valid()) {
    int e = errno;
    if (e == ENOENT) return Fail(ErrorCode::kNotFound, path + " does not exist");
    return ErrnoFail("open " + path, e);
  }
  return base::ReadFdToString(fd.Get(), path, max_bytes);
}

base::Status WriteStringToFile(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.Valid()) return ErrnoFail("open " + path, errno);
  return base::WriteAll(fd.Get(), data, path);
}

base::Status WriteFileAtomicAt(int dir_fd, const std::string& dir_path, const std::string& name,
                               std::string_view data, mode_t mode) {
  return base::WriteFileAtomicAt(dir_fd, dir_path, name, data, {.mode = mode});
}

std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  for (const char* dir :
       {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    std::string p = std::string(dir) + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::vector<std::string> HostEnvironment() {
  return {"LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
}

ExecStrings::ExecStrings(std::vector<std::string> strings) : m_strings(std::move(strings)) {
  for (auto& s : m_strings) m_pointers.push_back(s.data());
  m_pointers.push_back(nullptr);
}

base::Status SealMemfd(int fd, std::string_view what) {
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    return ErrnoFail("sealing the " + std::string(what) + " memfd", errno);
  if (::lseek(fd, 0, SEEK_SET) != 0)
    return ErrnoFail("lseek " + std::string(what) + " memfd", errno);
  return base::Ok();
}

base::Result<UniqueFd> SealedMemfd(const char* name, std::string_view data) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.Valid()) return ErrnoFail("memfd_create", errno);
  GPUNET_TRY(base::WriteAll(fd.Get(), data, name));
  GPUNET_TRY(SealMemfd(fd.Get(), name));
  return fd;
}

base::Result<int> RunProgram(const std::vector<std::string>& argv, std::string* output) {
  GPUNET_CHECK(!argv.empty());
  const ExecStrings args(argv);
  const ExecStrings envp(HostEnvironment());
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoFail("pipe", errno);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return ErrnoFail("fork", e);
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    ::close_range(3, ~0U, 0);
    ::execve(args.Get()[0], args.Get(), envp.Get());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() < 64 * 1024) out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoFail("waitpid", errno);
  }
  if (output) *output = std::move(out);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

void SleepMs(int ms) {
  timespec ts{ms / 1000, long(ms % 1000) * 1000000L};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

uint64_t ProcessStartTime(pid_t pid) {
  auto stat = ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
  size_t p = stat->rfind(')');
  if (p == std::string::npos) return 0;
  size_t field = 2;
  size_t i = p + 1;
  while (i < stat->size() && field < 22) {
    if ((*stat)[i] == ' ') ++field;
    ++i;
  }
  return std::strtoull(stat->c_str() + i, nullptr, 10);
}

bool ProcessEnded(pid_t pid) {
  auto stat = ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  size_t p = stat->rfind(')');
  return p == std::string::npos || p + 2 >= stat->size() || (*stat)[p + 2] == 'Z' ||
         (*stat)[p + 2] == 'X';
}

bool WaitProcessEnd(pid_t pid, uint64_t start_time, int64_t timeout_ms) {
  GPUNET_CHECK(pid > 0);
  const int64_t deadline =
      timeout_ms < 0 ? INT64_MAX : base::SystemClock::Instance().MonotonicMs() + timeout_ms;
  // A pidfd turns readable when the process ends (zombie or reaped): no polling. Its
  // start time is checked after the open, so a reused pid is never waited on.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  while (true) {
    if (ProcessStartTime(pid) != start_time || ProcessEnded(pid)) return true;
    const int64_t now = base::SystemClock::Instance().MonotonicMs();
    if (now >= deadline) return false;
    const int left = static_cast<int>(std::min<int64_t>(deadline - now, 1000));
    if (!pidfd.Valid()) {
      SleepMs(std::min(left, 10));  // no pidfd (ENOSYS, or the pid ended first)
      continue;
    }
    pollfd p{pidfd.Get(), POLLIN, 0};
    if (::poll(&p, 1, left) < 0 && errno != EINTR) SleepMs(std::min(left, 10));
  }
}

}  // namespace gpunet::runtime
