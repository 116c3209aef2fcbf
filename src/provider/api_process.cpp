#include "provider/api_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/check.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

namespace {

constexpr int64_t kBackoffMaxMs = 30'000;
constexpr int64_t kHealthyAfterMs = 60'000;  ///< up this long: the next restart is quick again
constexpr int64_t kStopGraceMs = 2'000;
constexpr int kFirstChildFd = 3;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Exits the child with the errno of a failed step (the parent logs the status).
[[noreturn]] void ChildFail(int code) {
  ::_exit(code == 0 ? 127 : std::min(code, 126));
}

}  // namespace

ApiProcess::ApiProcess(ApiProcessOptions options) : m_options(std::move(options)) {
  GPUNET_CHECK(!m_options.command.empty() && !m_options.command[0].empty());
  GPUNET_CHECK(m_options.command[0][0] == '/');
  GPUNET_CHECK(m_options.broker_connections >= 1 && m_options.broker_connections <= 16);
  GPUNET_CHECK(m_options.user.uid != 0);
  GPUNET_CHECK(m_options.restart_backoff_first_ms >= 1);
  GPUNET_CHECK(!m_options.chain_id.empty() && !m_options.provider.empty());
}

ApiProcess::~ApiProcess() {
  Stop();
}

void ApiProcess::Start() {
  GPUNET_CHECK(!m_thread.joinable());
  m_thread = std::thread([this] { Keep(); });
}

void ApiProcess::Stop() {
  {
    std::lock_guard lock(m_mu);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

base::Status ApiProcess::Ready() const {
  if (m_pid == 0) return Fail(ErrorCode::kUnavailable, "the tenant API process is not running");
  const size_t colon = m_options.listen.rfind(':');
  std::string host = m_options.listen.substr(0, colon);
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoul(m_options.listen.substr(colon + 1))));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return Fail(ErrorCode::kUnavailable, "daemon.listen " + m_options.listen + " is not IPv4");
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(ErrorCode::kUnavailable, "no socket");
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  if (!ok)
    return Fail(ErrorCode::kUnavailable,
                "the tenant API does not accept connections on " + m_options.listen + " yet");
  return {};
}

base::Result<pid_t> ApiProcess::Spawn() {
  const size_t n = m_options.broker_connections;
  std::vector<int> child_fds, agent_fds;
  auto close_all = [&] {
    for (int fd : child_fds) ::close(fd);
    for (int fd : agent_fds) ::close(fd);
  };
  for (size_t i = 0; i < n; ++i) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      close_all();
      return Fail(ErrorCode::kIo, std::string("socketpair: ") + std::strerror(errno));
    }
    agent_fds.push_back(pair[0]);
    child_fds.push_back(pair[1]);
  }
  for (const std::string* path : {&m_options.key_path, &m_options.cert_path}) {
    int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      close_all();
      return Fail(ErrorCode::kIo, "cannot open " + *path + ": " + std::strerror(errno));
    }
    child_fds.push_back(fd);
  }
  // Everything the child needs, built before fork: after it, no allocation.
  std::string list;
  for (size_t i = 0; i < n; ++i)
    list += (i == 0 ? "" : ",") + std::to_string(kFirstChildFd + static_cast<int>(i));
  std::vector<std::string> args = m_options.command;
  for (std::string a : {std::string("--broker-fds"), list, std::string("--key-fd"),
                        std::to_string(kFirstChildFd + static_cast<int>(n)), std::string("--cert"),
                        // The certificate (0644) through its inherited fd: the child need not be
                        // able to walk the provider's home to reach it.
                        "/proc/self/fd/" + std::to_string(kFirstChildFd + static_cast<int>(n) + 1),
                        std::string("--listen"), m_options.listen, std::string("--chain-id"),
                        m_options.chain_id, std::string("--provider"), m_options.provider})
    args.push_back(std::move(a));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
  const UserIds user = m_options.user;

  const pid_t pid = ::fork();
  if (pid < 0) {
    close_all();
    return Fail(ErrorCode::kIo, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Out of the way of 3..: copies far above, then into place (dup2 clears CLOEXEC).
    int high[32];
    for (size_t i = 0; i < child_fds.size(); ++i) {
      high[i] = ::fcntl(child_fds[i], F_DUPFD_CLOEXEC, 256);
      if (high[i] < 0) ChildFail(errno);
    }
    for (size_t i = 0; i < child_fds.size(); ++i)
      if (::dup2(high[i], kFirstChildFd + static_cast<int>(i)) < 0) ChildFail(errno);
    ::syscall(SYS_close_range, kFirstChildFd + child_fds.size(), ~0U, 0);
    ::signal(SIGPIPE, SIG_DFL);
    if (int e = DropPrivileges(user); e != 0) ChildFail(e);
    ::execve(argv[0], argv.data(), envp);
    ChildFail(errno);
  }
  for (int fd : child_fds) ::close(fd);
  ++m_starts;
  if (m_options.on_spawn) {
    m_options.on_spawn(std::move(agent_fds));
  } else {
    for (int fd : agent_fds) ::close(fd);
  }
  return pid;
}

void ApiProcess::Keep() {
  int64_t backoff_ms = m_options.restart_backoff_first_ms;
  auto log = [this](const std::string& line) {
    if (m_options.log) m_options.log(line);
  };
  std::unique_lock lock(m_mu);
  while (!m_stop) {
    lock.unlock();
    auto pid = Spawn();
    lock.lock();
    if (!pid) {
      log("tenant API: cannot start it, retrying in " + std::to_string(backoff_ms) +
          " ms: " + pid.error().message);
    } else {
      m_pid = *pid;
      const int64_t started = NowMs();
      log("tenant API: started as pid " + std::to_string(*pid) + " (user " + m_options.user.name +
          ")");
      int status = 0;
      pid_t done = 0;
      while (!m_stop && (done = ::waitpid(*pid, &status, WNOHANG)) == 0)
        m_cv.wait_for(lock, std::chrono::milliseconds(200));
      if (done == 0) {  // stopping: SIGTERM, then SIGKILL after the grace
        ::kill(*pid, SIGTERM);
        const int64_t until = NowMs() + kStopGraceMs;
        while ((done = ::waitpid(*pid, &status, WNOHANG)) == 0 && NowMs() < until) {
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          lock.lock();
        }
        if (done == 0) {
          ::kill(*pid, SIGKILL);
          ::waitpid(*pid, &status, 0);
        }
        m_pid = 0;
        break;
      }
      m_pid = 0;
      const std::string how = WIFEXITED(status)
                                  ? "exited " + std::to_string(WEXITSTATUS(status))
                                  : "killed by signal " + std::to_string(WTERMSIG(status));
      if (NowMs() - started >= kHealthyAfterMs) backoff_ms = m_options.restart_backoff_first_ms;
      log("tenant API: pid " + std::to_string(*pid) + " " + how + "; restarting in " +
          std::to_string(backoff_ms) + " ms");
    }
    m_cv.wait_for(lock, std::chrono::milliseconds(backoff_ms), [this] { return m_stop; });
    backoff_ms = std::min(backoff_ms * 2, kBackoffMaxMs);
  }
}

}  // namespace gpunet::provider
