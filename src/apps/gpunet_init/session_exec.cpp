// exec sessions: the command runs as a child of this session process (so inside the
// sandbox: its cgroup, uid, seccomp filter, namespaces and environment), on a pty
// made here or on pipes, and its input and output are relayed as frames.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "apps/gpunet_init/session.h"

namespace gpunet::init {
namespace {

using base::SessionFrameType;

/// STDIN held for the command before the socket is read no further (backpressure).
constexpr size_t kPendingStdinMax = 256 * 1024;
/// After the command exited, how long the output may stay silent before the session
/// ends without its EOF (a background process it left holds the pty or pipe open).
constexpr int kDrainIdleMs = 200;

struct Running {
  pid_t pid = -1;
  Fd pidfd;
  Fd in;   ///< the command's stdin (pipe), or the pty master
  Fd out;  ///< its stdout (pipe), or the pty master
  Fd err;  ///< its stderr (pipe); none with a pty
  bool tty = false;
};

[[noreturn]] void ExecChild(const std::vector<std::string>& argv,
                            const std::vector<std::string>& env) {
  ExecWithEnv(argv, env);
  std::string msg = "gpunet-init: cannot run " + argv[0] + ": " + std::strerror(errno) + "\n";
  (void)!::write(2, msg.data(), msg.size());
  ::_exit(errno == ENOENT ? 127 : 126);
}

/// A pipe whose write end the child closes (CloseFdsFrom) once it is a session leader:
/// READY, and a SIGNAL to its process group, may only follow that.
struct StartedPipe {
  Fd r, w;
  bool Make() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    r.Reset(p[0]);
    w.Reset(p[1]);
    return true;
  }
  void Wait() {
    w.Reset();
    char c;
    while (::read(r.Get(), &c, 1) < 0 && errno == EINTR) {
    }
  }
};

/// Forks the command: a new session, stdin/stdout/stderr the pty's slave `tty` (which
/// becomes its controlling terminal) or `fds`; returns once it leads its session.
pid_t Fork(const std::vector<std::string>& argv, const std::vector<std::string>& env,
           const char* tty, const int (&fds)[3], std::string* error) {
  StartedPipe started;
  if (!started.Make()) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return -1;
  }
  if (pid == 0) {
    ResetSignals();
    ::setsid();
    int slave = tty ? ::open(tty, O_RDWR) : -1;
    if (tty && (slave < 0 || ::ioctl(slave, TIOCSCTTY, 0) != 0)) ::_exit(126);
    for (int i = 0; i < 3; ++i)
      if (::dup2(tty ? slave : fds[i], i) != i) ::_exit(126);
    CloseFdsFrom(3);
    ExecChild(argv, env);
  }
  started.Wait();
  return pid;
}

std::optional<Running> SpawnOnPty(const std::vector<std::string>& argv,
                                  const std::vector<std::string>& env, base::SessionWindow window,
                                  std::string* error) {
  Fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  char name[128];
  if (!master.Valid() || ::grantpt(master.Get()) != 0 || ::unlockpt(master.Get()) != 0 ||
      ::ptsname_r(master.Get(), name, sizeof name) != 0) {
    *error = std::string("cannot make a pseudo-terminal in the lease: ") + std::strerror(errno);
    return std::nullopt;
  }
  winsize ws{};
  ws.ws_row = window.rows == 0 ? 24 : window.rows;
  ws.ws_col = window.cols == 0 ? 80 : window.cols;
  (void)::ioctl(master.Get(), TIOCSWINSZ, &ws);
  Running r;
  r.pid = Fork(argv, env, name, {-1, -1, -1}, error);
  if (r.pid < 0) return std::nullopt;
  r.tty = true;
  r.in = Fd(::fcntl(master.Get(), F_DUPFD_CLOEXEC, 3));
  r.out = std::move(master);
  return r;
}

std::optional<Running> SpawnOnPipes(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env, std::string* error) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return *error = "pipe", std::nullopt;
  Fd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return *error = "pipe", std::nullopt;
  Fd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return *error = "pipe", std::nullopt;
  Fd err_r(err[0]), err_w(err[1]);
  Running r;
  r.pid = Fork(argv, env, nullptr, {in_r.Get(), out_w.Get(), err_w.Get()}, error);
  if (r.pid < 0) return std::nullopt;
  r.in = std::move(in_w);
  r.out = std::move(out_r);
  r.err = std::move(err_r);
  for (const Fd* fd : {&r.in, &r.out, &r.err}) ::fcntl(fd->Get(), F_SETFL, O_NONBLOCK);
  return r;
}

/// The relay's state between two turns of its loop.
struct RelayState {
  std::string pending;      ///< STDIN not yet written to the command
  bool stdin_eof = false;   ///< the client sent STDIN_EOF
  bool eof_passed = false;  ///< ... and the command was told
  std::optional<int> status;
};

void SignalCommand(const Running& r, int sig) {
  pid_t group = r.pid;  // the command is a session (and process group) leader
  if (r.tty) {
    pid_t fg = ::tcgetpgrp(r.out.Get());
    if (fg > 0) group = fg;
  }
  (void)::kill(-group, sig);
}

/// Applies one client frame. An error message ends the session.
std::optional<std::string> HandleFrame(const base::SessionFrame& frame, Running& r, RelayState& s) {
  switch (frame.type) {
    case SessionFrameType::kStdin:
      if (s.stdin_eof) return "STDIN after STDIN_EOF";
      if (r.in.Valid()) s.pending += frame.payload;
      return std::nullopt;
    case SessionFrameType::kStdinEof:
      s.stdin_eof = true;
      return std::nullopt;
    case SessionFrameType::kResize: {
      auto w = base::DecodeSessionResize(frame.payload);
      if (!w) return w.error().message;
      winsize ws{};
      ws.ws_row = w->rows;
      ws.ws_col = w->cols;
      if (r.tty) (void)::ioctl(r.out.Get(), TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH
      return std::nullopt;
    }
    case SessionFrameType::kSignal: {
      auto sig = base::DecodeSessionSignal(frame.payload);
      if (!sig) return sig.error().message;
      SignalCommand(r, *sig);
      return std::nullopt;
    }
    default:
      return "unexpected " + base::SessionFrameTypeName(static_cast<uint8_t>(frame.type)) +
             " frame from the client";
  }
}

/// Writes what it can of the pending STDIN; passes STDIN_EOF on once all is written.
void FeedCommand(Running& r, RelayState& s) {
  while (!s.pending.empty() && r.in.Valid()) {
    ssize_t n = ::write(r.in.Get(), s.pending.data(), s.pending.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {  // the command closed its stdin: what it did not read is dropped
      s.pending.clear();
      if (!r.tty) r.in.Reset();
      return;
    }
    s.pending.erase(0, static_cast<size_t>(n));
  }
  if (s.stdin_eof && !s.eof_passed && s.pending.empty()) {
    s.eof_passed = true;
    if (r.tty) {
      termios t{};
      char eof = ::tcgetattr(r.out.Get(), &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
      (void)!::write(r.in.Get(), &eof, 1);
    } else {
      r.in.Reset();
    }
  }
}

/// Reads the command's output once; false when that stream ended.
bool PumpOutput(FrameSocket& sock, Fd& fd, SessionFrameType type, bool* client_gone) {
  char buf[65536];
  ssize_t n = ::read(fd.Get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {  // EOF, or EIO from a pty master once no one holds the terminal
    fd.Reset();
    return false;
  }
  if (!sock.Send(type, std::string_view(buf, static_cast<size_t>(n)))) *client_gone = true;
  return true;
}

std::optional<std::string> DrainFrames(FrameSocket& sock, Running& r, RelayState& s);

/// Reads the client's frames now available. An error message ends the session;
/// `client_gone` when the client closed the stream.
std::optional<std::string> ReadClient(FrameSocket& sock, Running& r, RelayState& s,
                                      bool* client_gone) {
  if (!sock.ReadSome()) {
    *client_gone = true;
    return std::nullopt;
  }
  return DrainFrames(sock, r, s);
}

/// Applies the client frames the decoder holds (some may have come with the OPEN).
std::optional<std::string> DrainFrames(FrameSocket& sock, Running& r, RelayState& s) {
  for (;;) {
    auto next = sock.Decoder().Next();
    if (!next) return next.error().message;
    if (!next->has_value()) return std::nullopt;
    if (auto bad = HandleFrame(**next, r, s)) return bad;
  }
}

// NOLINTNEXTLINE(readability-function-size): one poll loop over the five descriptors
int Relay(FrameSocket& sock, Running& r) {
  RelayState s;
  bool client_gone = false;
  if (auto bad = DrainFrames(sock, r, s)) {
    (void)sock.SendError("malformed session request: " + *bad);
    SignalCommand(r, SIGHUP);
    return 1;
  }
  while (!client_gone) {
    if (s.status && !r.out.Valid() && !r.err.Valid()) break;
    enum { kSock, kIn, kOut, kErr, kPid, kCount };
    pollfd fds[kCount] = {};
    fds[kSock] = {s.pending.size() < kPendingStdinMax ? sock.Fd() : -1, POLLIN, 0};
    fds[kIn] = {!s.pending.empty() && r.in.Valid() ? r.in.Get() : -1, POLLOUT, 0};
    fds[kOut] = {r.out.Valid() ? r.out.Get() : -1, POLLIN, 0};
    fds[kErr] = {r.err.Valid() ? r.err.Get() : -1, POLLIN, 0};
    fds[kPid] = {r.pidfd.Valid() ? r.pidfd.Get() : -1, POLLIN, 0};
    int rc = ::poll(fds, kCount, s.status ? kDrainIdleMs : -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;  // the command ended and its output stayed silent
    if (fds[kSock].revents) {
      if (auto bad = ReadClient(sock, r, s, &client_gone)) {
        (void)sock.SendError("malformed session request: " + *bad);
        SignalCommand(r, SIGHUP);
        return 1;
      }
    }
    if (fds[kIn].revents || (s.stdin_eof && !s.eof_passed)) FeedCommand(r, s);
    if (fds[kOut].revents) PumpOutput(sock, r.out, SessionFrameType::kStdout, &client_gone);
    if (fds[kErr].revents) PumpOutput(sock, r.err, SessionFrameType::kStderr, &client_gone);
    if (fds[kPid].revents) {
      int st = 0;
      if (::waitpid(r.pid, &st, 0) == r.pid) s.status = st;
      r.pidfd.Reset();
    }
  }
  if (client_gone) {
    // The client went away (its connection closed): the command is hung up, as a
    // terminal's would be.
    SignalCommand(r, SIGHUP);
    return 0;
  }
  if (!s.status) {
    int st = 0;
    (void)::waitpid(r.pid, &st, 0);
    s.status = st;
  }
  (void)sock.SendExit(*s.status);
  return 0;
}

int Serve(FrameSocket& sock, std::optional<Running> running, const std::string& error) {
  if (!running) {
    (void)sock.SendError(error);
    return 1;
  }
  running->pidfd = OpenPidFd(running->pid);
  if (!running->pidfd.Valid()) {
    (void)sock.SendError(std::string("pidfd_open: ") + std::strerror(errno));
    (void)::kill(running->pid, SIGKILL);
    return 1;
  }
  if (!sock.Send(SessionFrameType::kReady)) {
    SignalCommand(*running, SIGHUP);
    return 0;
  }
  return Relay(sock, *running);
}

}  // namespace

int ServeCommand(FrameSocket& sock, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env) {
  std::string error;
  auto running = SpawnOnPipes(argv, env, &error);
  return Serve(sock, std::move(running), error);
}

int ServeExec(FrameSocket& sock, const base::SessionOpen& open) {
  std::vector<std::string> argv = open.argv;
  if (argv.empty()) argv = {LoginShell(), "-l"};
  const std::vector<std::string> env = EnvironmentWith(open.env);
  if (!open.tty) return ServeCommand(sock, argv, env);
  std::string error;
  auto running = SpawnOnPty(argv, env, open.window, &error);
  return Serve(sock, std::move(running), error);
}

}  // namespace gpunet::init
