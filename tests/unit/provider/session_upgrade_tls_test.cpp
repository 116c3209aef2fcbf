// The tenant's upgraded request (client::TenantClient::Upgrade, the first step of
// client::OpenSession) against server::HttpServer over real TLS: the request is a
// signed GET with Connection: Upgrade and the protocol, 101 leaves a stream whose
// bytes go both ways to the route's descriptor (those that came with the 101's header
// first), the end of the far side reads as 0, and a refusal comes back with its body
// and no stream.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>

#include "client/session_client.h"
#include "client/tenant_client.h"
#include "provider/tls_identity.h"
#include "server/http_server.h"
#include "util/keys.h"
#include "util/temp_dir.h"
#include "util/tls_cert.h"

namespace gpunet::provider {
namespace {

struct UpgradeServer {
  UpgradeServer() {
    const auto pair = gpunet::testing::MakeSelfSigned();
    std::ofstream(dir.Sub("cert.pem")) << pair.certificate_pem;
    std::ofstream(dir.Sub("key.pem")) << pair.key_pem;
    auto fp = SpkiFingerprintOfCertPem(pair.certificate_pem);
    EXPECT_TRUE(fp);
    fingerprint = *fp;
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server::ServerOptions opt;
    opt.tls = server::TlsOptions{dir.Sub("cert.pem"), dir.Sub("key.pem")};
    server = std::make_unique<server::HttpServer>(opt);
    server->HandlePrefix("GET", "/leases/", [this](const server::Request& r) {
      for (const auto& [name, value] : r.headers) {
        if (name == "Upgrade") upgrade = value;
        if (name == "Connection") connection = value;
        if (name == "Gpunet-Signature") signed_request = true;
      }
      if (r.path == "/leases/9/session") return server::JsonError(410, "gone", "lease 9 is closed");
      // Bytes the far side sent before the switch: they follow the 101 at once.
      EXPECT_EQ(::write(fds[1], "early", 5), 5);
      const int fd = fds[0];
      fds[0] = -1;
      return server::UpgradeResponse(fd, std::string(client::kSessionProtocol));
    });
    EXPECT_TRUE(server->Start());
  }
  ~UpgradeServer() {
    server.reset();
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }

  client::TenantClient Client(uint64_t lease) const {
    client::TenantClientOptions o;
    o.url = "https://127.0.0.1:" + std::to_string(server->Port());
    o.spki_sha256 = fingerprint;
    o.scope = {"gpunet-test", gpunet::testing::TestAddress(7), lease};
    return client::TenantClient(o, gpunet::testing::TestKey(1));
  }

  gpunet::testing::TempDir dir;
  base::Hash32 fingerprint;
  int fds[2] = {-1, -1};  ///< [0] goes to the server's relay; [1] is the far side
  std::string upgrade, connection;
  bool signed_request = false;
  std::unique_ptr<server::HttpServer> server;
};

std::string ReadSome(client::ByteStream& stream, size_t want) {
  std::string out;
  uint8_t buffer[4096];
  while (out.size() < want) {
    auto n = stream.Read(buffer);
    EXPECT_TRUE(n) << n.error().ToString();
    if (!n || *n == 0) break;
    out.append(reinterpret_cast<const char*>(buffer), *n);
  }
  return out;
}

TEST(SessionUpgradeTls, A101LeavesAStreamBothWays) {
  UpgradeServer s;
  auto tenant = s.Client(7);
  auto up = tenant.Upgrade(client::SessionTarget(7), client::kSessionProtocol);
  ASSERT_TRUE(up) << up.error().ToString();
  ASSERT_EQ(up->response.status, 101);
  ASSERT_TRUE(up->stream);
  EXPECT_EQ(s.upgrade, client::kSessionProtocol);
  EXPECT_EQ(s.connection, "Upgrade");
  EXPECT_TRUE(s.signed_request);
  EXPECT_EQ(ReadSome(*up->stream, 5), "early");
  ASSERT_TRUE(up->stream->Write("to-the-lease"));
  char got[32] = {};
  size_t n = 0;
  while (n < 12) {
    const ssize_t r = ::read(s.fds[1], got + n, sizeof got - n);
    ASSERT_GT(r, 0);
    n += static_cast<size_t>(r);
  }
  EXPECT_EQ(std::string(got, n), "to-the-lease");
  const std::string big(200'000, 'z');  // more than one TLS record and socket buffer
  ASSERT_EQ(::send(s.fds[1], big.data(), 100'000, MSG_NOSIGNAL), 100'000);
  EXPECT_EQ(ReadSome(*up->stream, 100'000), big.substr(0, 100'000));
  ::shutdown(s.fds[1], SHUT_WR);  // the far side ends: the stream reads 0
  uint8_t one[1];
  auto end = up->stream->Read(one);
  ASSERT_TRUE(end) << end.error().ToString();
  EXPECT_EQ(*end, 0u);
  up->stream->Close();
  EXPECT_FALSE(up->stream->Write("after the close"));
}

TEST(SessionUpgradeTls, ARefusalComesBackWithItsBodyAndNoStream) {
  UpgradeServer s;
  auto tenant = s.Client(9);
  auto up = tenant.Upgrade(client::SessionTarget(9), client::kSessionProtocol);
  ASSERT_TRUE(up) << up.error().ToString();
  EXPECT_EQ(up->response.status, 410);
  EXPECT_FALSE(up->stream);
  const base::Error e = client::SessionRefusal(9, up->response);
  EXPECT_NE(e.message.find("lease 9 is closed"), std::string::npos) << e.message;
  // OpenSession says the same, sending nothing more.
  base::SessionOpen open;
  open.kind = base::SessionOpenKind::kForward;
  open.port = 8888;
  auto session = client::OpenSession(tenant, 9, open);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error().code, base::ErrorCode::kConflict);
}

}  // namespace
}  // namespace gpunet::provider
