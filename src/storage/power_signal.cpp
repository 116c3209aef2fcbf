// CutPowerOnSignal: a signal becomes a power cut followed by _exit.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "storage/fault_fs.h"

namespace gpunet::storage {

namespace {

std::atomic<int> g_pipe_write_fd{-1};

void OnSignal(int) {
  const int saved_errno = errno;
  const int fd = g_pipe_write_fd.load();
  const char byte = 1;
  if (fd >= 0) [[maybe_unused]]
    ssize_t ignored = write(fd, &byte, 1);
  errno = saved_errno;
}

}  // namespace

base::Status CutPowerOnSignal(const FaultInjection& faults, int signo, int exit_code) {
  if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "cannot arm a power cut on signal " + std::to_string(signo));
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return base::Fail(base::ErrorCode::kIo,
                      std::string("pipe for the power-cut signal: ") + std::strerror(errno));
  int expected = -1;
  if (!g_pipe_write_fd.compare_exchange_strong(expected, fds[1])) {
    close(fds[0]);
    close(fds[1]);
    return base::Fail(base::ErrorCode::kConflict, "a power cut is already armed in this process");
  }
  std::thread([cut_faults = FaultInjection(faults), read_fd = fds[0], exit_code]() mutable {
    char byte = 0;
    while (read(read_fd, &byte, 1) < 0 && errno == EINTR) {
    }
    auto cut = cut_faults.SimulatePowerLoss();
    _exit(cut ? exit_code : 125);  // no destructors, no flushes: the power is gone
  }).detach();
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(signo, &action, nullptr) != 0)
    return base::Fail(base::ErrorCode::kIo, std::string("sigaction: ") + std::strerror(errno));
  return base::Ok();
}

}  // namespace gpunet::storage
