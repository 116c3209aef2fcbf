#include "apps/gpunet_init/session.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gpunet::init {
namespace {

using base::SessionFrameType;

/// Connects to `port` on the sandbox's own loopback: 127.0.0.1, then ::1. Never an
/// address from the request (docs/sandbox.md "Interactive sessions").
Fd ConnectLoopback(uint16_t port, int* last_errno) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  v6.sin6_addr = in6addr_loopback;
  const std::pair<const sockaddr*, socklen_t> addrs[] = {
      {reinterpret_cast<const sockaddr*>(&v4), sizeof v4},
      {reinterpret_cast<const sockaddr*>(&v6), sizeof v6}};
  for (const auto& [addr, len] : addrs) {
    Fd fd(::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.Valid()) {
      *last_errno = errno;
      continue;
    }
    int rc;
    do rc = ::connect(fd.Get(), addr, len);
    while (rc != 0 && errno == EINTR);
    if (rc == 0) return fd;
    // The first refusal is the one to report (::1 may merely be absent).
    if (addr == addrs[0].first || *last_errno == 0) *last_errno = errno;
  }
  return Fd();
}

struct ForwardState {
  std::string pending;  ///< STDIN not yet written to the port
  bool stdin_eof = false;
  bool shut_wr = false;
  bool port_eof = false;
};

/// One client frame of a forward; an error message ends the session.
std::optional<std::string> HandleForwardFrame(const base::SessionFrame& frame, ForwardState& s) {
  switch (frame.type) {
    case SessionFrameType::kStdin:
      if (s.stdin_eof) return std::string("STDIN after STDIN_EOF");
      s.pending += frame.payload;
      return std::nullopt;
    case SessionFrameType::kStdinEof:
      s.stdin_eof = true;
      return std::nullopt;
    case SessionFrameType::kResize:
    case SessionFrameType::kSignal:
      return std::nullopt;  // nothing to resize or signal on a port
    default:
      return "unexpected " + base::SessionFrameTypeName(static_cast<uint8_t>(frame.type)) +
             " frame from the client";
  }
}

// NOLINTNEXTLINE(readability-function-size): one poll loop, two sockets
int RelayForward(FrameSocket& sock, Fd& tcp, uint16_t port) {
  ForwardState s;
  ::fcntl(tcp.Get(), F_SETFL, O_NONBLOCK);
  char buf[65536];
  bool first = true;
  while (!(s.port_eof && s.shut_wr)) {
    pollfd fds[2] = {
        {s.pending.size() < 256 * 1024 ? sock.Fd() : -1, POLLIN, 0},
        {tcp.Get(),
         static_cast<short>((s.port_eof ? 0 : POLLIN) | (s.pending.empty() ? 0 : POLLOUT)), 0}};
    int rc = ::poll(fds, 2, first ? 0 : -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return 1;
    // The first turn also takes what came with the OPEN.
    if (fds[0].revents || first) {
      first = false;
      if (fds[0].revents && !sock.ReadSome()) return 0;  // the client is gone
      for (;;) {
        auto next = sock.Decoder().Next();
        std::optional<std::string> bad;
        if (!next)
          bad = next.error().message;
        else if (!next->has_value())
          break;
        else
          bad = HandleForwardFrame(**next, s);
        if (bad) {
          (void)sock.SendError("malformed session request: " + *bad);
          return 1;
        }
      }
    }
    while (!s.pending.empty()) {
      ssize_t n = ::send(tcp.Get(), s.pending.data(), s.pending.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        (void)sock.SendError("the connection to port " + std::to_string(port) +
                             " inside the lease failed: " + std::strerror(errno));
        return 1;
      }
      s.pending.erase(0, static_cast<size_t>(n));
    }
    if (s.stdin_eof && s.pending.empty() && !s.shut_wr) {
      ::shutdown(tcp.Get(), SHUT_WR);
      s.shut_wr = true;
    }
    if (!s.port_eof && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::recv(tcp.Get(), buf, sizeof buf, 0);
      if (n > 0) {
        if (!sock.Send(SessionFrameType::kStdout, std::string_view(buf, static_cast<size_t>(n))))
          return 0;
      } else if (n == 0) {
        s.port_eof = true;
        if (!sock.Send(SessionFrameType::kStdoutEof)) return 0;
      } else if (errno != EINTR && errno != EAGAIN) {
        (void)sock.SendError("the connection to port " + std::to_string(port) +
                             " inside the lease failed: " + std::strerror(errno));
        return 1;
      }
    }
  }
  (void)sock.SendExit(0);
  return 0;
}

int ServeForward(FrameSocket& sock, uint16_t port) {
  int err = 0;
  Fd tcp = ConnectLoopback(port, &err);
  if (!tcp.Valid()) {
    const std::string p = std::to_string(port);
    if (err == ECONNREFUSED)
      (void)sock.SendError("nothing listens on port " + p +
                           " inside the lease (connection refused): start the server first");
    else
      (void)sock.SendError("cannot connect to port " + p +
                           " inside the lease: " + std::strerror(err));
    return 1;
  }
  if (!sock.Send(SessionFrameType::kReady)) return 0;
  return RelayForward(sock, tcp, port);
}

}  // namespace

int RunSession(int fd, const SshPaths& ssh) {
  // A client that goes away mid-write must end this session, not kill it silently
  // before it hangs up its command.
  ::signal(SIGPIPE, SIG_IGN);
  FrameSocket sock(fd);
  auto first = sock.ReadFrame();
  if (!first) {
    (void)sock.SendError("malformed session request: " + first.error().message);
    return 1;
  }
  if (!first->has_value()) return 0;  // connected and closed: nothing asked
  if ((*first)->type != SessionFrameType::kOpen) {
    (void)sock.SendError("malformed session request: the first frame is " +
                         base::SessionFrameTypeName(static_cast<uint8_t>((*first)->type)) +
                         ", not OPEN");
    return 1;
  }
  auto open = base::DecodeSessionOpen((*first)->payload);
  if (!open) {
    (void)sock.SendError(open.error().message);
    return 1;
  }
  switch (open->kind) {
    case base::SessionOpenKind::kExec:
      return ServeExec(sock, *open);
    case base::SessionOpenKind::kForward:
      return ServeForward(sock, open->port);
    case base::SessionOpenKind::kSsh:
      return ServeSsh(sock, *open, ssh);
    case base::SessionOpenKind::kSshHostKey:
      return ServeSshHostKey(sock, ssh);
  }
  return 1;
}

}  // namespace gpunet::init
