// A plain POSIX TCP connection for tests that must send what no well-behaved
// client sends: byte-by-byte headers, garbage, stalls. Waits are liveness guards
// (generous upper bounds), never timing assertions.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace gpunet::test {

class RawConn {
 public:
  /// Connects to 127.0.0.1:port; from `source` (another loopback address such as
  /// "127.0.0.2": all of 127/8 is local on Linux) when given, so that tests can
  /// play two peers with different addresses.
  explicit RawConn(uint16_t port, const char* source = nullptr) {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (source != nullptr) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      if (::inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
          ::bind(m_fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
        return;  // not connected
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m_connected = ::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConn() { Close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool connected() const { return m_connected; }

  /// False when the peer has gone (EPIPE/ECONNRESET).
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(m_fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  /// Reads until the peer closes or `guard_ms` passes. Sets *eof when it closed.
  std::string ReadUntilClose(int guard_ms, bool* eof) {
    std::string out;
    *eof = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(guard_ms);
    for (;;) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return out;
      pollfd p{m_fd, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(m_fd, buf, sizeof(buf), 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno == ECONNRESET) {
        *eof = true;
        return out;
      }
    }
  }

  /// Reads until `needle` has arrived (or close / guard); returns all read so far.
  std::string ReadUntil(std::string_view needle, int guard_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(guard_ms);
    while (m_pending.find(needle) == std::string::npos) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) break;
      pollfd p{m_fd, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(m_fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      m_pending.append(buf, static_cast<size_t>(n));
    }
    std::string out = std::move(m_pending);
    m_pending.clear();
    return out;
  }

  void Close() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }

 private:
  int m_fd = -1;
  bool m_connected = false;
  std::string m_pending;
};

/// Polls `pred` until true or the guard passes (a liveness bound, not a timing test).
template <class Pred>
bool WaitFor(Pred pred, int guard_ms = 10'000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(guard_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    ::usleep(2000);
  }
  return true;
}

}  // namespace gpunet::test
