// Client failures against real sockets: nothing listening, a listener that never
// answers, a server that hangs up. (The happy paths run against the real server
// in tests/unit/node.)
#include "client/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

namespace gpunet::client {
namespace {

/// A bound 127.0.0.1 socket; listening or not.
struct Socket {
  explicit Socket(bool listen) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    if (listen) {
      EXPECT_EQ(::listen(fd, 16), 0);
    }
  }
  ~Socket() { ::close(fd); }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port); }
  int fd;
  uint16_t port;
};

TEST(NodeUrl, ParsesTheForms) {
  auto u = ParseNodeUrl("http://127.0.0.1:26657");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 26657);
  EXPECT_EQ(u->base, "http://127.0.0.1:26657");
  u = ParseNodeUrl("HTTP://localhost/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, 26657);

  for (std::string bad : {"127.0.0.1:26657", "https://x:1", "http://", "http://:80", "http://x:0",
                          "http://x:99999", "http://x:12a", "http://x:1/status", "ftp://x"}) {
    auto r = ParseNodeUrl(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("http://127.0.0.1:26657"), std::string::npos);
  }
}

TEST(HttpClient, RefusedConnectionSaysWhatToCheck) {
  std::string url;
  {
    Socket s(false);  // bound, not listening: connecting is refused
    url = s.Url();
    HttpClient c(url);
    auto r = c.Get("/status");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, base::ErrorCode::kUnavailable);
    EXPECT_NE(r.error().message.find("cannot reach the node at " + url), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("refused"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("gpunet devnet"), std::string::npos) << r.error().message;

    auto ws = WsSubscriber::Connect(url, {"blocks"});
    ASSERT_FALSE(ws);
    EXPECT_EQ(ws.error().code, base::ErrorCode::kUnavailable);
  }
  auto bad = HttpClient("localhost:1").Get("/status");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, base::ErrorCode::kInvalidArgument);
  auto bad_path = HttpClient("http://127.0.0.1:1").Get("status");
  ASSERT_FALSE(bad_path);
  EXPECT_EQ(bad_path.error().code, base::ErrorCode::kInvalidArgument);
}

TEST(HttpClient, ANodeThatNeverAnswersTimesOut) {
  Socket s(true);  // the kernel completes the handshake; nobody ever reads
  HttpClient c(s.Url(), {.connect_timeout_ms = 2'000, .request_timeout_ms = 300});
  auto r = c.Post("/tx", "{}");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kTimeout);
  EXPECT_NE(r.error().message.find("did not answer POST /tx within 300 ms"), std::string::npos)
      << r.error().message;

  auto ws = WsSubscriber::Connect(s.Url(), {"blocks"}, 300);
  ASSERT_FALSE(ws);
  EXPECT_EQ(ws.error().code, base::ErrorCode::kTimeout);
}

TEST(HttpClient, ANodeThatHangsUpIsUnavailable) {
  Socket s(true);
  std::thread closer([&] {
    int fd = ::accept(s.fd, nullptr, nullptr);
    char buf[1024];
    (void)::recv(fd, buf, sizeof(buf), 0);
    ::close(fd);
  });
  auto r = HttpClient(s.Url()).Get("/status");
  closer.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("closed the connection"), std::string::npos)
      << r.error().message;
}

TEST(HttpClient, ErrorFromResponseReadsTheNodesErrorBody) {
  auto e = ErrorFromResponse(
      {409, "application/json", R"({"error":{"code":"conflict","message":"nonce is stale"}})"});
  EXPECT_EQ(e.code, base::ErrorCode::kConflict);
  EXPECT_EQ(e.message, "nonce is stale");
  e = ErrorFromResponse(
      {405, "application/json", R"({"error":{"code":"method_not_allowed","message":"use GET"}})"});
  EXPECT_EQ(e.code, base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message, "use GET");
  e = ErrorFromResponse({502, "text/html", "<html>bad gateway</html>"});
  EXPECT_EQ(e.code, base::ErrorCode::kInternal);
  EXPECT_NE(e.message.find("502"), std::string::npos);
  e = ErrorFromResponse({413, "", ""});
  EXPECT_EQ(e.code, base::ErrorCode::kLimitExceeded);
}

}  // namespace
}  // namespace gpunet::client
