// The tenant's pinned HTTPS client against server::HttpServer over real TLS on
// 127.0.0.1, serving the TLS identity `provider init` makes, with the provider's
// RequestVerifier behind the routes: the fingerprint init publishes is the one the
// client pins and is served, signed requests verify end to end (tenant key, session key + grant, a
// stranger gets 403), a wrong key is refused before any request byte is sent, and a
// download streams to a file.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "base/clock.h"
#include "client/tenant_client.h"
#include "client/tenant_transfer.h"
#include "provider/request_auth.h"
#include "provider/tls_identity.h"
#include "server/http_server.h"
#include "util/keys.h"
#include "util/temp_dir.h"
#include "util/tls_cert.h"

namespace gpunet::provider {
namespace {

using client::TenantClient;
using client::TenantClientOptions;
using gpunet::testing::TempDir;
using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

constexpr uint64_t kLeaseId = 42;
constexpr size_t kBigBytes = 3 * 1024 * 1024 + 17;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

/// SHA-256 of the certificate's SubjectPublicKeyInfo, computed apart from the client's
/// code path (from the certificate's X509_PUBKEY, not the key).
base::Hash32 IndependentSpkiSha256(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EXPECT_NE(cert, nullptr);
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  EXPECT_GT(len, 0);
  base::Hash32 out;
  unsigned int out_len = 0;
  EXPECT_EQ(EVP_Digest(der, static_cast<size_t>(len), out.begin(), &out_len, EVP_sha256(), nullptr),
            1);
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

std::string BigBody() {
  std::string s(kBigBytes, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
  return s;
}

/// A tenant API over TLS: the verifier guards every route but /environments.
struct TenantApi {
  TenantApi() {
    auto made = GenerateTlsIdentity("127.0.0.1");
    EXPECT_TRUE(made) << made.error().ToString();
    identity = *made;
    WriteText(dir.Sub("cert.pem"), identity.cert_pem);
    WriteText(dir.Sub("key.pem"), identity.key_pem);
    auto opened = NonceStore::Open(dir.Path(), Now());
    EXPECT_TRUE(opened) << opened.error().ToString();
    nonces = std::move(*opened);
    config.chain_id = "gpunet-test";
    config.provider = TestAddress(7);
    verifier = std::make_unique<RequestVerifier>(config, base::SystemClock::Instance(), *nonces);
    lease.lease_id = kLeaseId;
    lease.tenant = crypto::AddressOf(tenant.Public());
    lease.provider = config.provider;
    lease.ends_at_ms = Now() + 3'600'000;

    server::ServerOptions opt;
    opt.tls = server::TlsOptions{dir.Sub("cert.pem"), dir.Sub("key.pem")};
    server = std::make_unique<server::HttpServer>(opt);
    server->Handle("GET", "/environments", [this](const server::Request&) {
      ++handled;
      return server::Response{200, "application/json", "[\"host\"]"};
    });
    server->HandlePrefix("POST", "/leases/", [this](const server::Request& r) {
      return Guarded(r, RouteKind::kWrite, "accepted " + r.body);
    });
    server->HandlePrefix("PUT", "/leases/", [this](const server::Request& r) {
      std::string chunk_sha256;
      for (const auto& [name, value] : r.headers)
        if (name == client::kChunkSha256Header) chunk_sha256 = value;
      return Guarded(r, RouteKind::kWrite, chunk_sha256 + " " + std::to_string(r.body.size()));
    });
    server->HandlePrefix("GET", "/leases/", [this](const server::Request& r) {
      return Guarded(r, RouteKind::kRead, r.path.ends_with("/big") ? BigBody() : "small");
    });
    auto st = server->Start();
    EXPECT_TRUE(st) << st.error().ToString();
  }

  static uint64_t Now() { return static_cast<uint64_t>(base::SystemClock::Instance().NowMs()); }

  server::Response Guarded(const server::Request& r, RouteKind kind, std::string body) {
    ++handled;
    IncomingRequest in{r.method, r.target, &r.headers, client::BodyHash(r.body)};
    AuthVerdict v = verifier->Verify(in, lease, kind);
    if (!v.Allowed()) return server::JsonError(v.status, v.code, v.message);
    last_signer = v.signer;
    return server::Response{200, "text/plain", std::move(body)};
  }

  TenantClientOptions ClientOptions() const {
    TenantClientOptions o;
    o.url = "https://127.0.0.1:" + std::to_string(server->Port());
    o.spki_sha256 = identity.spki_sha256;  // what provider init puts in provider.yaml
    o.scope = {config.chain_id, config.provider, kLeaseId};
    return o;
  }

  TempDir dir;
  TlsIdentity identity;
  std::unique_ptr<NonceStore> nonces;
  VerifierConfig config;
  std::unique_ptr<RequestVerifier> verifier;
  LeaseView lease;
  crypto::KeyPair tenant = TestKey(1);
  std::atomic<int> handled{0};
  crypto::PublicKey last_signer;
  std::unique_ptr<server::HttpServer> server;
};

TEST(TenantApiTls, TheFingerprintInitPublishesIsTheSha256OfTheDerSpki) {
  TenantApi api;
  auto fp = SpkiFingerprintOfCertPem(api.identity.cert_pem);
  ASSERT_TRUE(fp) << fp.error().ToString();
  EXPECT_EQ(*fp, IndependentSpkiSha256(api.identity.cert_pem));
  EXPECT_EQ(api.identity.spki_sha256, *fp);
  EXPECT_NE(*fp, IndependentSpkiSha256(gpunet::testing::MakeSelfSigned().certificate_pem));
}

TEST(TenantApiTls, ThePinnedKeyIsServedAndSignedRequestsVerify) {
  TenantApi api;
  TenantClient tenant(api.ClientOptions(), api.tenant);
  auto env = tenant.GetUnsigned("/environments");
  ASSERT_TRUE(env) << env.error().ToString();
  EXPECT_EQ(env->status, 200);
  EXPECT_EQ(env->body, "[\"host\"]");

  auto res = tenant.Post("/leases/42/manifest", "{\"command\":[\"echo\"]}");
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->body, "accepted {\"command\":[\"echo\"]}");
  EXPECT_EQ(api.last_signer, api.tenant.Public());
  // Each request carries its own nonce: the same call twice is two requests.
  res = tenant.Post("/leases/42/manifest", "{\"command\":[\"echo\"]}");
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 200) << res->body;
  // The raw target with a query goes through byte for byte as signed.
  res = tenant.Get("/leases/42/logs?tail=10&follow=0");
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST(TenantApiTls, AnUploadChunkIsASignedPutWithItsSha256Header) {
  TenantApi api;
  TenantClient tenant(api.ClientOptions(), api.tenant);
  const std::string chunk = BigBody().substr(0, 100'000);  // within the test server's body cap
  const std::string sha256 = client::Sha256Hex(chunk);
  auto res = tenant.Put(client::UploadTarget(kLeaseId, "data/a b.bin", 0), chunk,
                        {{std::string(client::kChunkSha256Header), sha256}});
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->body, sha256 + " " + std::to_string(chunk.size()));
  EXPECT_EQ(api.last_signer, api.tenant.Public());
  // The answer's headers come back to the caller.
  EXPECT_TRUE(res->Header("content-type").has_value());
  EXPECT_EQ(res->Header("Content-Type"), res->Header("CONTENT-TYPE"));
  EXPECT_FALSE(res->Header("Gpunet-Next-Offset").has_value());
}

TEST(TenantApiTls, ASessionKeyWithAGrantIsServedAndAStrangerGets403) {
  TenantApi api;
  const auto session = TestKey(2);
  client::GrantId id;
  id.data.fill(5);
  const auto grant = client::SignGrant(api.tenant, api.ClientOptions().scope, session.Public(),
                                       api.lease.ends_at_ms, id);
  TenantClient delegated(api.ClientOptions(), session, grant);
  auto res = delegated.Get("/leases/42/status");
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(api.last_signer, session.Public());

  TenantClient stranger(api.ClientOptions(), TestKey(5));
  res = stranger.Get("/leases/42/status");
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 403) << res->body;
  EXPECT_NE(res->body.find("neither lease 42's tenant"), std::string::npos) << res->body;
}

TEST(TenantApiTls, AnotherKeyIsRefusedBeforeAnyRequestByteIsSent) {
  TenantApi api;
  TenantClientOptions opt = api.ClientOptions();
  // The ledger pins another key: the server in between is a man-in-the-middle.
  opt.spki_sha256 = IndependentSpkiSha256(gpunet::testing::MakeSelfSigned().certificate_pem);
  TenantClient tenant(opt, api.tenant);
  for (int i = 0; i < 2; ++i) {
    auto res =
        i == 0 ? tenant.Post("/leases/42/manifest", "{}") : tenant.GetUnsigned("/environments");
    ASSERT_FALSE(res) << "served by an unpinned key: " << res->status;
    EXPECT_EQ(res.error().code, base::ErrorCode::kPermissionDenied);
    EXPECT_NE(res.error().message.find("man-in-the-middle is possible"), std::string::npos)
        << res.error().message;
    EXPECT_NE(res.error().message.find(base::ToHex(opt.spki_sha256)), std::string::npos);
    EXPECT_NE(res.error().message.find(base::ToHex(api.identity.spki_sha256)), std::string::npos)
        << "the message shows the key the server presented";
  }
  EXPECT_EQ(api.handled.load(), 0);
  EXPECT_EQ(api.server->Stats().requests, 0u) << "the server read a request";
  EXPECT_EQ(api.nonces->Entries(), 0u);
  // The client refused inside the handshake (it never sent its Finished), not after it:
  // the server counts both handshakes as failed. Polled: the server sees it a moment
  // later; the bound is for liveness only.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (api.server->Stats().tls_handshake_failures < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(api.server->Stats().tls_handshake_failures, 2u);
}

TEST(TenantApiTls, ADownloadStreamsToAFileAndARefusalWritesNothing) {
  TenantApi api;
  TempDir out;
  TenantClient tenant(api.ClientOptions(), api.tenant);
  const std::string path = out.Sub("big.bin");
  auto res = tenant.Download("/leases/42/outputs/big", path);
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(gpunet::testing::FileText(path), BigBody());
  EXPECT_EQ(gpunet::testing::FileMode(path + ".part"), gpunet::testing::kNoFileMode);

  TenantClient stranger(api.ClientOptions(), TestKey(5));
  const std::string refused = out.Sub("refused.bin");
  res = stranger.Download("/leases/42/outputs/big", refused);
  ASSERT_TRUE(res) << res.error().ToString();
  EXPECT_EQ(res->status, 403);
  EXPECT_NE(res->body.find("permission_denied"), std::string::npos) << res->body;
  EXPECT_EQ(gpunet::testing::FileMode(refused), gpunet::testing::kNoFileMode);
  EXPECT_EQ(gpunet::testing::FileMode(refused + ".part"), gpunet::testing::kNoFileMode);

  // An answer over the in-memory cap is refused, not truncated.
  TenantClientOptions small = api.ClientOptions();
  small.response_bytes_max = 1024;
  TenantClient capped(small, api.tenant);
  auto big = capped.Get("/leases/42/outputs/big");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, base::ErrorCode::kLimitExceeded);
}

TEST(TenantApiTls, TheClientRefusesWhatTheApiWouldRefuse) {
  TenantApi api;
  TenantClient tenant(api.ClientOptions(), api.tenant);
  auto res = tenant.Get("/leases/42/../43/logs");
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code, base::ErrorCode::kInvalidArgument);
  TenantClientOptions plain = api.ClientOptions();
  plain.url = "http://127.0.0.1:" + std::to_string(api.server->Port());
  res = TenantClient(plain, api.tenant).Get("/x");
  ASSERT_FALSE(res);
  EXPECT_NE(res.error().message.find("https://"), std::string::npos);
  EXPECT_EQ(api.handled.load(), 0);
}

}  // namespace
}  // namespace gpunet::provider
