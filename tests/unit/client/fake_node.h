// A stand-in node for the client's tests: an HTTP/1.1 server on 127.0.0.1 that
// answers every request with one fixed status and body, so a test can serve the
// malformed answers a real node never gives (a missing field, a string where a
// number belongs) and see what the client library makes of them.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace gpunet::testing {

class FakeNode {
 public:
  /// Serves `body` (JSON) with `status` until destroyed.
  explicit FakeNode(std::string body, int status = 200)
      : m_response("HTTP/1.1 " + std::to_string(status) +
                   " X\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body) {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    m_port = ntohs(addr.sin_port);
    EXPECT_EQ(::listen(m_fd, 16), 0);
    m_thread = std::thread([this] { Serve(); });
  }
  ~FakeNode() {
    m_stop = true;
    ::shutdown(m_fd, SHUT_RDWR);  // wakes accept()
    m_thread.join();
    ::close(m_fd);
  }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
  /// The request line of the last request served ("GET /market/provider/gpn1... HTTP/1.1").
  std::string LastRequestLine() const {
    std::lock_guard lock(m_mutex);
    return m_last_request_line;
  }

 private:
  void Serve() {
    while (!m_stop) {
      int conn = ::accept(m_fd, nullptr, nullptr);
      if (conn < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard lock(m_mutex);
        m_last_request_line = request.substr(0, request.find("\r\n"));
      }
      size_t sent = 0;
      while (sent < m_response.size()) {
        ssize_t n = ::send(conn, m_response.data() + sent, m_response.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ::close(conn);
    }
  }

  std::string m_response;
  int m_fd = -1;
  uint16_t m_port = 0;
  std::atomic<bool> m_stop{false};
  mutable std::mutex m_mutex;
  std::string m_last_request_line;  ///< guarded by m_mutex
  std::thread m_thread;
};

}  // namespace gpunet::testing
