// gpunet-init: the first process of a sandbox that the runtime starts (bwrap runs
// `/.gpunet/init --listen-fd 7 -- COMMAND...`). It runs the workload's command as its
// child and exits as it does, forwards SIGTERM/SIGINT/SIGHUP to it, reaps every
// orphan, and serves the interactive sessions the provider's agent connects to
// <run_dir>/session.sock, each in a process of its own forked here: inside the
// sandbox, so no host process ever joins its namespaces (docs/sandbox.md
// "Interactive sessions"). Statically linked: it runs in any environment's root.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "apps/gpunet_init/init_util.h"
#include "apps/gpunet_init/session.h"

namespace gpunet::init {
namespace {

/// Live sessions init serves at once (docs/sandbox.md "Interactive sessions").
constexpr size_t kSessionsMax = 32;

struct Args {
  int listen_fd = -1;
  std::vector<std::string> command;  ///< empty: an interactive machine
};

bool ParseArgs(int argc, char** argv, Args* out) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--listen-fd" && i + 1 < argc) {
      char* end = nullptr;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 3 || v > 1 << 20) return false;
      out->listen_fd = static_cast<int>(v);
    } else {
      return false;
    }
  }
  for (; i < argc; ++i) out->command.emplace_back(argv[i]);
  return out->listen_fd >= 0;
}

class Init {
 public:
  Init(int listen_fd, std::vector<std::string> command)
      : m_listen(listen_fd), m_command(std::move(command)) {}
  /// Runs until the workload ends (or, interactive, until SIGTERM); the exit code.
  int Run();

 private:
  bool Setup();
  void StartWorkload();
  /// Handles one signal; returns true when init is to exit with m_exit_code.
  bool OnSignal(const signalfd_siginfo& info);
  bool Reap();
  void Accept();

  Fd m_listen;
  Fd m_signals;
  std::vector<std::string> m_command;
  pid_t m_workload = -1;
  std::set<pid_t> m_sessions;
  int m_exit_code = 0;
  SshPaths m_ssh;
};

bool Init::Setup() {
  ::fcntl(m_listen.Get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(m_listen.Get(), F_SETFL, O_NONBLOCK);
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (::getsockopt(m_listen.Get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
      !accepting) {
    std::fprintf(stderr, "gpunet-init: fd %d is not a listening socket\n", m_listen.Get());
    return false;
  }
  // Orphans of the workload and of sessions (double forks, daemons) come to init,
  // which reaps them: no zombie outlives its parent.
  (void)::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  m_signals = Fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  // A session client gone before its ERROR was written must not kill init.
  ::signal(SIGPIPE, SIG_IGN);
  return m_signals.Valid();
}

void Init::StartWorkload() {
  m_workload = ::fork();
  if (m_workload != 0) return;
  ResetSignals();
  ::setpgid(0, 0);  // its own process group: init signals it and its children as one
  CloseFdsFrom(3);
  std::vector<char*> argv;
  for (auto& a : m_command) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  // bwrap's own message and exit code for a command it could not run, as before init.
  std::fprintf(stderr, "gpunet-init: execvp %s: %s\n", argv[0], std::strerror(errno));
  ::_exit(1);
}

bool Init::Reap() {
  for (;;) {
    int st = 0;
    pid_t pid = ::waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return false;
    m_sessions.erase(pid);
    if (pid == m_workload) {
      m_exit_code = ExitCodeOf(st);
      return true;
    }
  }
}

bool Init::OnSignal(const signalfd_siginfo& info) {
  const int sig = static_cast<int>(info.ssi_signo);
  if (sig == SIGCHLD) return Reap();
  const bool from_outside = info.ssi_pid == 0 && info.ssi_code == SI_USER;
  if (m_workload < 0) {
    // An interactive machine ends with the runtime's Stop (a SIGTERM from outside the
    // sandbox's pid namespace), not with a `kill -1` typed in one of its shells.
    m_exit_code = 128 + sig;
    return sig == SIGTERM && from_outside;
  }
  // The runtime's Stop (from outside the sandbox's pid namespace: sender pid 0) sends
  // SIGTERM to every process of the sandbox itself; passing it on would give the
  // workload a second one. Any other is passed to the workload's process group.
  if (sig == SIGTERM && from_outside) return false;
  (void)::kill(-m_workload, sig);
  return false;
}

void Init::Accept() {
  for (;;) {
    int conn = ::accept4(m_listen.Get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;  // EAGAIN: all taken
    Fd fd(conn);
    if (m_sessions.size() >= kSessionsMax) {
      FrameSocket sock(fd.Get());
      (void)sock.SendError("this lease serves " + std::to_string(kSessionsMax) +
                           " sessions at once and all are open: close one (exit a shell, stop a "
                           "forward) and retry");
      continue;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      FrameSocket sock(fd.Get());
      (void)sock.SendError(std::string("the lease cannot start a session: fork: ") +
                           std::strerror(errno));
      continue;
    }
    if (pid == 0) {
      // Nothing of init's reaches a session: signals reset, only the connection kept.
      // Its 0-2 are not the workload's log pipes: /dev/null.
      ResetSignals();
      if (::dup2(fd.Get(), 3) != 3) ::_exit(1);
      CloseFdsFrom(4);
      int devnull = ::open("/dev/null", O_RDWR);
      for (int i = 0; i < 3 && devnull >= 0; ++i) ::dup2(devnull, i);
      if (devnull > 3) ::close(devnull);
      ::_exit(RunSession(3, m_ssh));
    }
    m_sessions.insert(pid);
  }
}

int Init::Run() {
  if (!Setup()) return 125;
  if (!m_command.empty()) {
    StartWorkload();
    if (m_workload < 0) {
      std::fprintf(stderr, "gpunet-init: fork: %s\n", std::strerror(errno));
      return 1;
    }
  }
  for (;;) {
    pollfd fds[2] = {{m_signals.Get(), POLLIN, 0}, {m_listen.Get(), POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno != EINTR) return 125;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      while (::read(m_signals.Get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info))
        if (OnSignal(info)) return m_exit_code;
    }
    if (fds[1].revents & POLLIN) Accept();
  }
}

}  // namespace
}  // namespace gpunet::init

int main(int argc, char** argv) {
  gpunet::init::Args args;
  if (!gpunet::init::ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr, "usage: gpunet-init --listen-fd N -- [COMMAND ARGS...]\n");
    return 125;
  }
  gpunet::init::Init init(args.listen_fd, std::move(args.command));
  return init.Run();
}
