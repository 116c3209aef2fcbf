// Byte relays (messages.h UpgradeTarget, relay_session.cpp): a route answers with a
// socketpair's end, the client upgrades over plain TCP or TLS, and bytes go both ways
// verbatim, with half-close each way, back-pressure, and Stop() with relays open.
// The TLS client is plain blocking OpenSSL on a socket, so that it can send its
// close_notify and go on reading (a TLS half-close), which Asio's shutdown cannot.
// Waits are liveness guards (generous bounds), never timing assertions.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/http_server.h"
#include "server/metrics.h"
#include "unit/server/raw_socket.h"
#include "util/temp_dir.h"
#include "util/tls_cert.h"

namespace gpunet::server {
namespace {

using test::WaitFor;

constexpr int kGuardMs = 20'000;
constexpr std::string_view kProtocol = "test-relay/1";
constexpr std::string_view kUpgradeRequest =
    "GET /session HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test-relay/1\r\n\r\n";

/// An owned descriptor.
struct Fd {
  explicit Fd(int descriptor = -1) : fd(descriptor) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int fd = -1;
};

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

/// Reads until `size` bytes, EOF (sets *eof) or the guard.
std::string ReadBytes(int fd, size_t size, bool* eof = nullptr) {
  std::string out;
  if (eof != nullptr) *eof = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kGuardMs);
  while (out.size() < size && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, size - out.size()), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      if (eof != nullptr) *eof = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

/// True once `fd` reads EOF (data before it is returned in *before).
bool ReadsEof(int fd, std::string* before = nullptr) {
  bool eof = false;
  std::string got = ReadBytes(fd, 1 << 30, &eof);
  if (before != nullptr) *before = got;
  return eof;
}

Fd Connect(uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Fd();
  return fd;
}

/// Reads an HTTP response head (up to the blank line) byte by byte, so nothing of what
/// follows is taken.
std::string ReadHead(int fd) {
  std::string head;
  while (!head.ends_with("\r\n\r\n")) {
    std::string c = ReadBytes(fd, 1);
    if (c.empty()) break;
    head += c;
  }
  return head;
}

/// A server whose GET /session hands out one end of a fresh socketpair per request;
/// the test keeps the other ends in order.
struct RelayFixture {
  explicit RelayFixture(bool tls = false, const std::function<void(ServerOptions&)>& tweak = {}) {
    ServerOptions opt;
    opt.metrics = &registry;
    if (tweak) tweak(opt);
    if (tls) {
      std::ofstream(dir.Sub("cert.pem")) << pair.certificate_pem;
      opt.tls = TlsOptions{dir.Sub("cert.pem"), "(in memory)", pair.key_pem};
    }
    server = std::make_unique<HttpServer>(std::move(opt));
    server->Handle("GET", "/session", [this](const Request&) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return JsonError(500, "internal", "socketpair");
      {
        std::lock_guard lock(mu);
        ends.emplace_back(sv[1]);
      }
      return UpgradeResponse(sv[0], std::string(kProtocol), [this] { ++ended; });
    });
    server->Handle("GET", "/hello", [](const Request&) {
      return Response{200, "text/plain", "hello"};
    });
    auto st = server->Start();
    EXPECT_TRUE(st) << st.error().ToString();
  }
  /// The test's end of the n-th session's socketpair, once the handler made it.
  int End(size_t n) {
    EXPECT_TRUE(WaitFor([&] {
      std::lock_guard lock(mu);
      return ends.size() > n;
    }));
    std::lock_guard lock(mu);
    return n < ends.size() ? ends[n].fd : -1;
  }

  gpunet::testing::TempDir dir;
  gpunet::testing::CertAndKey pair = gpunet::testing::MakeSelfSigned();
  metrics::Registry registry;
  std::mutex mu;
  std::vector<Fd> ends;
  std::atomic<int> ended{0};
  std::unique_ptr<HttpServer> server;
};

/// A plain connection that has upgraded; `early` is sent right behind the request.
Fd UpgradePlain(RelayFixture& f, std::string_view early = "") {
  Fd c = Connect(f.server->Port());
  EXPECT_GE(c.fd, 0);
  EXPECT_TRUE(SendAll(c.fd, std::string(kUpgradeRequest) + std::string(early)));
  const std::string head = ReadHead(c.fd);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << head;
  EXPECT_NE(head.find("Upgrade: test-relay/1\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("Connection: Upgrade\r\n"), std::string::npos) << head;
  return c;
}

TEST(Relay, BytesGoBothWaysVerbatimAndBytesSentBehindTheRequestGoFirst) {
  RelayFixture f;
  Fd c = UpgradePlain(f, "EARLY");
  const int end = f.End(0);
  EXPECT_EQ(ReadBytes(end, 5), "EARLY");
  // Every byte value, both ways: nothing is parsed or changed.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  all += "\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
  ASSERT_TRUE(SendAll(c.fd, all));
  EXPECT_EQ(ReadBytes(end, all.size()), all);
  ASSERT_TRUE(SendAll(end, all));
  EXPECT_EQ(ReadBytes(c.fd, all.size()), all);
  EXPECT_EQ(f.server->Stats().relays, 1u);
  EXPECT_NE(f.registry.Render().find("gpunet_rpc_relays 1"), std::string::npos);
  EXPECT_EQ(f.ended.load(), 0);
}

TEST(Relay, TheClientsEofHalfClosesTheDescriptorAndTheOtherWayGoesOn) {
  RelayFixture f;
  Fd c = UpgradePlain(f);
  const int end = f.End(0);
  ASSERT_EQ(::shutdown(c.fd, SHUT_WR), 0);
  EXPECT_TRUE(ReadsEof(end));  // shutdown(fd, SHUT_WR) reached the descriptor's peer
  ASSERT_TRUE(SendAll(end, "still here"));
  EXPECT_EQ(ReadBytes(c.fd, 10), "still here");
  EXPECT_EQ(f.ended.load(), 0);
  ::shutdown(end, SHUT_WR);
  EXPECT_TRUE(ReadsEof(c.fd));
  EXPECT_TRUE(WaitFor([&] { return f.ended.load() == 1 && f.server->Stats().relays == 0; }));
}

TEST(Relay, TheDescriptorsEofHalfClosesTheClientAndTheOtherWayGoesOn) {
  RelayFixture f;
  Fd c = UpgradePlain(f);
  const int end = f.End(0);
  ASSERT_TRUE(SendAll(end, "last words"));
  ASSERT_EQ(::shutdown(end, SHUT_WR), 0);
  std::string before;
  EXPECT_TRUE(ReadsEof(c.fd, &before));
  EXPECT_EQ(before, "last words");
  ASSERT_TRUE(SendAll(c.fd, "late"));
  EXPECT_EQ(ReadBytes(end, 4), "late");
  ::shutdown(c.fd, SHUT_WR);
  EXPECT_TRUE(ReadsEof(end));
  EXPECT_TRUE(WaitFor([&] { return f.ended.load() == 1 && f.server->Stats().relays == 0; }));
}

TEST(Relay, AResetClientClosesTheDescriptor) {
  RelayFixture f;
  Fd c = UpgradePlain(f);
  const int end = f.End(0);
  linger hard{1, 0};  // close() sends a RST
  ASSERT_EQ(::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
  c = Fd();
  EXPECT_TRUE(ReadsEof(end));
  EXPECT_TRUE(WaitFor([&] { return f.ended.load() == 1 && f.server->Stats().relays == 0; }));
}

TEST(Relay, WithoutTheUpgradeHeadersTheAnswerIs426AndTheDescriptorIsClosed) {
  RelayFixture f;
  Fd c = Connect(f.server->Port());
  ASSERT_TRUE(SendAll(c.fd, "GET /session HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string head = ReadHead(c.fd);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 426 ")) << head;
  EXPECT_NE(head.find("Upgrade: test-relay/1\r\n"), std::string::npos) << head;
  EXPECT_TRUE(ReadsEof(f.End(0)));
  EXPECT_TRUE(WaitFor([&] { return f.ended.load() == 1; }));
  // Another protocol than the route's is no better.
  Fd c2 = Connect(f.server->Port());
  ASSERT_TRUE(SendAll(
      c2.fd, "GET /session HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"));
  EXPECT_TRUE(ReadHead(c2.fd).starts_with("HTTP/1.1 426 "));
  EXPECT_TRUE(ReadsEof(f.End(1)));
  EXPECT_EQ(f.server->Stats().relays, 0u);
}

TEST(Relay, AnUpgradeAskedOfARouteThatTakesNoneGetsItsUsualAnswer) {
  RelayFixture f;
  Fd c = Connect(f.server->Port());
  ASSERT_TRUE(SendAll(c.fd,
                      "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "
                      "test-relay/1\r\n\r\n"));
  const std::string head = ReadHead(c.fd);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_EQ(ReadBytes(c.fd, 5), "hello");
  EXPECT_EQ(f.server->Stats().relays, 0u);
}

TEST(Relay, AClientThatStopsReadingStopsTheDescriptorBeingRead) {
  RelayFixture f;
  Fd c = UpgradePlain(f);
  const int end = f.End(0);
  ASSERT_EQ(::fcntl(end, F_SETFL, ::fcntl(end, F_GETFL) | O_NONBLOCK), 0);
  // Write until the descriptor stops taking bytes for a while. With a queue that grows
  // without bound the relay would take all 256 MiB; with back-pressure it takes its
  // buffer and what the kernel's socket buffers hold.
  constexpr size_t kBound = 256u << 20;
  std::string chunk(65536, '\0');
  size_t written = 0;
  bool stalled = false;
  while (written < kBound && !stalled) {
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((written + i) % 251);
    const ssize_t n = ::send(end, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{end, POLLOUT, 0};
      stalled = ::poll(&p, 1, 1000) == 0;
    } else {
      FAIL() << "send: " << std::strerror(errno);
    }
  }
  EXPECT_TRUE(stalled) << written << " bytes taken and still taking";
  // The client reads again: every byte arrives, in order, and the relay still works.
  std::string got = ReadBytes(c.fd, written);
  ASSERT_EQ(got.size(), written);
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != static_cast<char>(i % 251)) FAIL() << "byte " << i << " differs";
  }
  ASSERT_TRUE(SendAll(c.fd, "ping"));
  EXPECT_EQ(ReadBytes(end, 4), "ping");
}

TEST(Relay, StopClosesLiveRelaysAndTheirDescriptors) {
  RelayFixture f;
  Fd c1 = UpgradePlain(f);
  Fd c2 = UpgradePlain(f);
  const int end1 = f.End(0), end2 = f.End(1);
  // The 101 goes out before the relay takes the connection over: wait for both.
  EXPECT_TRUE(WaitFor([&] { return f.server->Stats().relays == 2; }));
  f.server->Stop();
  EXPECT_TRUE(ReadsEof(end1));
  EXPECT_TRUE(ReadsEof(end2));
  EXPECT_TRUE(ReadsEof(c1.fd));
  EXPECT_TRUE(ReadsEof(c2.fd));
  EXPECT_EQ(f.ended.load(), 2);
  EXPECT_EQ(f.server->Stats().relays, 0u);
}

// A relay was admitted by its handler (the tenant API caps sessions itself): it does
// not hold one of its address's plain connections, so a tenant with sessions open can
// still make requests under a small per-address cap.
TEST(Relay, ARelayDoesNotCountAgainstItsAddresssConnectionCap) {
  RelayFixture f(false, [](ServerOptions& o) {
    o.connections_per_address_max = 1;
    o.per_address_exempt_loopback = false;
  });
  Fd c1 = UpgradePlain(f);
  EXPECT_TRUE(WaitFor([&] { return f.server->Stats().relays == 1; }));
  Fd c2 = UpgradePlain(f);  // a second relay from the same address
  EXPECT_TRUE(WaitFor([&] { return f.server->Stats().relays == 2; }));
  Fd plain = Connect(f.server->Port());
  ASSERT_GE(plain.fd, 0);
  ASSERT_TRUE(SendAll(plain.fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string head = ReadHead(plain.fd);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head;
  // The plain connection still counts: the next one from the address is refused.
  Fd over = Connect(f.server->Port());
  ASSERT_GE(over.fd, 0);
  ASSERT_TRUE(SendAll(over.fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(ReadHead(over.fd).starts_with("HTTP/1.1 429")) << "the plain cap still holds";
}

// ---- TLS ----

/// A blocking OpenSSL client on a plain socket.
class TlsClient {
 public:
  explicit TlsClient(uint16_t port) : m_socket(Connect(port)) {
    m_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(m_ctx, SSL_VERIFY_NONE, nullptr);  // the fixture's own server
    m_ssl = SSL_new(m_ctx);
    SSL_set_fd(m_ssl, m_socket.fd);
    m_ok = m_socket.fd >= 0 && SSL_connect(m_ssl) == 1;
  }
  ~TlsClient() {
    SSL_free(m_ssl);
    SSL_CTX_free(m_ctx);
  }
  bool ok() const { return m_ok; }
  bool Write(std::string_view data) {
    return SSL_write(m_ssl, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }
  /// Reads `size` bytes or up to the end; *how: 0 more to come, 1 close_notify, 2 an
  /// end without one or an error.
  std::string Read(size_t size, int* how) {
    std::string out;
    *how = 0;
    while (out.size() < size) {
      char buf[16384];
      ERR_clear_error();  // SSL_get_error reads the thread's error queue
      const int n = SSL_read(m_ssl, buf, static_cast<int>(std::min(sizeof buf, size - out.size())));
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      *how = SSL_get_error(m_ssl, n) == SSL_ERROR_ZERO_RETURN ? 1 : 2;
      break;
    }
    return out;
  }
  /// Sends close_notify and returns at once (reading stays possible).
  void SendCloseNotify() { SSL_shutdown(m_ssl); }
  /// The upgrade: true when the answer is a 101.
  bool Upgrade() {
    if (!Write(kUpgradeRequest)) return false;
    std::string head;
    int how = 0;
    while (!head.ends_with("\r\n\r\n") && how == 0) head += Read(1, &how);
    return head.starts_with("HTTP/1.1 101 ");
  }

 private:
  Fd m_socket;
  SSL_CTX* m_ctx = nullptr;
  SSL* m_ssl = nullptr;
  bool m_ok = false;
};

/// A TLS client of `f` that has upgraded (nullptr, with a failure, when it could not).
std::unique_ptr<TlsClient> UpgradeTls(RelayFixture& f) {
  auto c = std::make_unique<TlsClient>(f.server->Port());
  EXPECT_TRUE(c->ok() && c->Upgrade());
  return c->ok() ? std::move(c) : nullptr;
}

/// The relay's end reaches `c` as a close_notify (not a cut); answered, the relay ends.
void ExpectTlsCloseAndEnd(TlsClient& c, RelayFixture& f, std::string_view before = "") {
  int how = 0;
  EXPECT_EQ(c.Read(before.size() + 1, &how), before);
  EXPECT_EQ(how, 1) << "the relay's end should be a close_notify, not a cut: "
                    << ERR_error_string(ERR_peek_error(), nullptr);
  c.SendCloseNotify();  // the answer the relay waits for (a bounded while) before closing
  EXPECT_TRUE(WaitFor([&] { return f.ended.load() == 1 && f.server->Stats().relays == 0; }));
}

TEST(RelayTls, BytesGoBothWaysAndTheClientsCloseNotifyHalfClosesTheDescriptor) {
  RelayFixture f(/*tls=*/true);
  auto c = UpgradeTls(f);
  ASSERT_TRUE(c);
  const int end = f.End(0);
  ASSERT_TRUE(c->Write("up"));
  EXPECT_EQ(ReadBytes(end, 2), "up");
  ASSERT_TRUE(SendAll(end, "down"));
  int how = 0;
  EXPECT_EQ(c->Read(4, &how), "down");
  c->SendCloseNotify();
  EXPECT_TRUE(ReadsEof(end));
  ASSERT_TRUE(SendAll(end, "after"));
  EXPECT_EQ(c->Read(5, &how), "after");
  EXPECT_EQ(how, 0);
  ::shutdown(end, SHUT_WR);
  EXPECT_EQ(c->Read(1, &how), "");
  EXPECT_EQ(how, 1) << "the relay's end should be a close_notify, not a cut";
  EXPECT_TRUE(WaitFor([&] { return f.ended.load() == 1 && f.server->Stats().relays == 0; }));
}

TEST(RelayTls, TheDescriptorsEofIsAClearTlsCloseAfterEveryByte) {
  RelayFixture f(/*tls=*/true);
  auto c = UpgradeTls(f);
  ASSERT_TRUE(c);
  const int end = f.End(0);
  const std::string big(300'000, 'x');  // more than one buffer and one TLS record
  ASSERT_TRUE(SendAll(end, big));
  ::close(f.ends[0].fd);
  f.ends[0].fd = -1;
  ExpectTlsCloseAndEnd(*c, f, big);
}

TEST(RelayTls, TheDescriptorsEofWhileTheClientsReadIsPendingIsAClearTlsClose) {
  RelayFixture f(/*tls=*/true);
  auto c = UpgradeTls(f);
  ASSERT_TRUE(c);
  const int end = f.End(0);
  ASSERT_TRUE(c->Write("up"));
  EXPECT_EQ(ReadBytes(end, 2), "up");  // the relay reads the client again now
  ::shutdown(end, SHUT_RDWR);
  ExpectTlsCloseAndEnd(*c, f);
}

TEST(RelayTls, StopClosesATlsRelay) {
  RelayFixture f(/*tls=*/true);
  auto c = UpgradeTls(f);
  ASSERT_TRUE(c);
  const int end = f.End(0);
  f.server->Stop();
  EXPECT_TRUE(ReadsEof(end));
  int how = 0;
  c->Read(1, &how);
  EXPECT_NE(how, 0);
  EXPECT_EQ(f.ended.load(), 1);
}

}  // namespace
}  // namespace gpunet::server
