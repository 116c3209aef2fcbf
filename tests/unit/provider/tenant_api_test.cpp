// The tenant-facing process (provider/tenant_api.h, broker_client.h): the real
// TenantApi over real TLS on 127.0.0.1, with a test agent of its own on the other end
// of real socketpairs that reads broker frames, records them and answers kReply
// frames. Requests are raw HTTPS bytes (so malformed ones can be sent too), signed
// with client::SignTenantRequest where a signature is needed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "client/manifest.h"
#include "client/tenant_client.h"
#include "client/tenant_request.h"
#include "provider/broker_client.h"
#include "provider/privileges.h"
#include "provider/tenant_api.h"
#include "util/keys.h"
#include "util/temp_dir.h"
#include "util/tls_cert.h"

namespace gpunet::provider {
namespace {

using gpunet::testing::TempDir;
using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

/// The agent's side of the broker: one thread per socketpair, each reading frames,
/// recording them and answering with `answer`.
class TestAgent {
 public:
  explicit TestAgent(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::runtime_error("socketpair");
      m_agent_fds.push_back(sv[0]);
      front_fds.push_back(sv[1]);
    }
  }
  ~TestAgent() {
    CloseAll();
    for (auto& t : m_threads) t.join();
    for (int fd : m_agent_fds) ::close(fd);
    for (int fd : m_init_ends) ::close(fd);
  }
  void Start() {
    for (int fd : m_agent_fds) m_threads.emplace_back([this, fd] { Serve(fd); });
  }
  /// Closes the agent's ends (the front sees every broker connection end).
  void CloseAll() {
    for (int fd : m_agent_fds) ::shutdown(fd, SHUT_RDWR);
  }
  std::vector<BrokerFrame> Seen() {
    std::lock_guard lock(m_mutex);
    return m_seen;
  }
  /// The "init" end of the n-th session the agent handed out (-1 when none yet).
  int InitEnd(size_t n) {
    std::lock_guard lock(m_mutex);
    return n < m_init_ends.size() ? m_init_ends[n] : -1;
  }

  std::vector<int> front_fds;  ///< handed to the BrokerClient (which owns them then)
  std::function<BrokerFrame(const BrokerFrame&)> answer = [](const BrokerFrame& f) {
    BrokerFrame r;
    r.fields["status"] = "200";
    r.body = "{\"op\":\"" + std::string(BrokerOpName(f.op)) + "\"}";
    return r;
  };

 private:
  void Serve(int fd) {
    while (true) {
      auto frame = ReadBrokerFrame(fd);
      if (!frame) return;
      {
        std::lock_guard lock(m_mutex);
        m_seen.push_back(*frame);
      }
      // A session's yes carries a socket, as the agent's does: one end of a fresh
      // pair, the other kept as the in-sandbox init's.
      const BrokerFrame reply = answer(*frame);
      int pass = -1;
      if (frame->op == BrokerOp::kSession && reply.Field("status") == "200") {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
        pass = sv[0];
        std::lock_guard lock(m_mutex);
        m_init_ends.push_back(sv[1]);
      }
      const bool written = WriteBrokerFrame(fd, reply, pass).has_value();
      if (pass >= 0) ::close(pass);
      if (!written) return;
    }
  }

  std::vector<int> m_agent_fds;
  std::vector<std::thread> m_threads;
  std::mutex m_mutex;
  std::vector<BrokerFrame> m_seen;
  std::vector<int> m_init_ends;
};

struct HttpReply {
  int status = 0;
  std::string head;
  std::string body;
  bool Has(std::string_view text) const { return body.find(text) != std::string::npos; }
};

int ConnectLoopback(uint16_t port) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

/// Sends `request` (whole HTTP bytes, "Connection: close") over TLS and reads the
/// answer to the end. The server's key is not checked here (TenantClient's pinning
/// has its own tests).
HttpReply RawHttps(uint16_t port, const std::string& request) {
  HttpReply out;
  const int s = ConnectLoopback(port);
  if (s < 0) return out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, s);
  std::string got;
  if (SSL_connect(ssl) == 1) {
    size_t done = 0;
    while (done < request.size()) {
      const int n = SSL_write(ssl, request.data() + done,
                              static_cast<int>(std::min<size_t>(request.size() - done, 1 << 16)));
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    char buffer[16384];
    while (true) {
      const int n = SSL_read(ssl, buffer, sizeof(buffer));
      if (n <= 0) break;
      got.append(buffer, static_cast<size_t>(n));
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(s);
  const size_t split = got.find("\r\n\r\n");
  if (got.rfind("HTTP/1.1 ", 0) == 0 && got.size() >= 12) out.status = std::stoi(got.substr(9, 3));
  out.head = got.substr(0, split);
  if (split != std::string::npos) out.body = got.substr(split + 4);
  return out;
}

std::string RequestBytes(std::string_view method, std::string_view target,
                         const client::HeaderList& headers, std::string_view body) {
  std::string r = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  r += body;
  return r;
}

/// The lease a /leases/{id}... target names (42 for any other target).
uint64_t LeaseOfTarget(std::string_view target) {
  if (!target.starts_with("/leases/")) return 42;
  uint64_t id = 0;
  for (char c : target.substr(8)) {
    if (c < '0' || c > '9') break;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

/// Signed for the Front's scope (chain gpunet-test, provider TestAddress(7), the
/// target's lease), by TestKey(1) unless `key` is given.
client::HeaderList SignedHeaders(std::string_view method, std::string_view target,
                                 std::string_view body, const crypto::KeyPair& key = TestKey(1)) {
  const client::RequestScope scope{"gpunet-test", TestAddress(7), LeaseOfTarget(target)};
  auto headers = client::SignTenantRequest(
      scope, key, nullptr, client::RequestLine{method, target, client::BodyHash(body)},
      static_cast<uint64_t>(base::SystemClock::Instance().NowMs()), client::RandomNonce());
  EXPECT_TRUE(headers) << headers.error().ToString();
  return headers ? *headers : client::HeaderList{};
}

std::string HeaderOf(const client::HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

std::string Sha256HexOf(std::string_view bytes) {
  unsigned char d[32];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out.push_back(kHex[d[i] >> 4]);
    out.push_back(kHex[d[i] & 15]);
  }
  return out;
}

std::string CanonicalManifest() {
  client::Manifest m;
  m.environment = "host";
  m.command = {"echo", "hi"};
  return client::CanonicalManifestJson(m);
}

/// A TenantApi on 127.0.0.1 with a TestAgent behind `fds` broker sockets.
struct Front {
  explicit Front(size_t fds = 3, std::function<void(server::ServerOptions&)> tune = {})
      : agent(fds) {
    const auto made = gpunet::testing::MakeSelfSigned();
    std::ofstream(dir.Sub("cert.pem")) << made.certificate_pem;
    agent.Start();
    broker = std::make_unique<BrokerClient>(agent.front_fds);
    TenantApiOptions options;
    options.server = TenantApiServerDefaults(fds);
    options.server.host = "127.0.0.1";
    options.server.port = 0;
    if (tune) tune(options.server);
    options.cert_file = dir.Sub("cert.pem");
    options.key_pem = made.key_pem;
    options.chain_id = "gpunet-test";
    options.provider = TestAddress(7);
    api = std::make_unique<TenantApi>(std::move(options), *broker);
    auto started = api->Start();
    EXPECT_TRUE(started) << started.error().ToString();
  }
  HttpReply Send(std::string_view method, std::string_view target, std::string_view body = "",
                 client::HeaderList extra = {}, bool sign = true) {
    client::HeaderList headers = sign ? SignedHeaders(method, target, body) : client::HeaderList{};
    headers.insert(headers.end(), extra.begin(), extra.end());
    return RawHttps(api->Port(), RequestBytes(method, target, headers, body));
  }

  TempDir dir;
  TestAgent agent;
  std::unique_ptr<BrokerClient> broker;
  std::unique_ptr<TenantApi> api;
};

TEST(TenantApi, EnvironmentsIsUnsignedAndForwardedWithoutAuthFields) {
  Front f;
  auto r = f.Send("GET", "/environments", "", {}, false);
  EXPECT_EQ(r.status, 200) << r.head << r.body;
  EXPECT_EQ(r.body, "{\"op\":\"environments\"}");
  const auto seen = f.agent.Seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, BrokerOp::kEnvironments);
  EXPECT_EQ(seen[0].lease_id, 0u);
  EXPECT_TRUE(seen[0].fields.empty());
}

TEST(TenantApi, ASignedRequestReachesTheAgentWithTheRawTargetAndHeadersVerbatim) {
  Front f;
  const std::string target = "/leases/42/events?after=7&wait_ms=0";
  const auto headers = SignedHeaders("GET", target, "");
  auto r = RawHttps(f.api->Port(), RequestBytes("GET", target, headers, ""));
  EXPECT_EQ(r.status, 200) << r.body;
  const auto seen = f.agent.Seen();
  ASSERT_EQ(seen.size(), 1u);
  const BrokerFrame& frame = seen[0];
  EXPECT_EQ(frame.op, BrokerOp::kEvents);
  EXPECT_EQ(frame.lease_id, 42u);
  EXPECT_EQ(frame.Field("method"), "GET");
  EXPECT_EQ(frame.Field("target"), target);
  EXPECT_EQ(frame.Field("signer"), HeaderOf(headers, "Gpunet-Signer"));
  EXPECT_EQ(frame.Field("timestamp"), HeaderOf(headers, "Gpunet-Timestamp"));
  EXPECT_EQ(frame.Field("nonce"), HeaderOf(headers, "Gpunet-Nonce"));
  EXPECT_EQ(frame.Field("signature"), HeaderOf(headers, "Gpunet-Signature"));
  EXPECT_FALSE(frame.Field("grant"));
  EXPECT_EQ(frame.Field("after"), "7");
  EXPECT_EQ(frame.Field("wait_ms"), "0");
  EXPECT_TRUE(frame.body.empty());
}

TEST(TenantApi, EveryRouteMapsToItsOpAndFields) {
  Front f;
  struct Case {
    std::string method, target, body;
    BrokerOp op;
    std::map<std::string, std::string> fields;
  };
  client::GrantRevocation revoke;
  revoke.lease_id = 42;
  const std::string revocation = client::EncodeRevocation(revoke);  // parsed, not verified, here
  const std::vector<Case> cases = {
      {"GET", "/leases/42", "", BrokerOp::kStatus, {}},
      {"GET", "/leases/42/events", "", BrokerOp::kEvents, {{"after", "0"}, {"wait_ms", "0"}}},
      {"POST", "/leases/42/secrets", "{\"TOKEN\":\"s3cret\"}", BrokerOp::kSecrets, {}},
      {"GET",
       "/leases/42/files/data/a%20b.bin",
       "",
       BrokerOp::kUpload,
       {{"path", "data/a b.bin"}, {"query", "1"}}},
      {"GET",
       "/leases/42/logs?stream=stderr&offset=10&max=100&wait_ms=25000",
       "",
       BrokerOp::kLogs,
       {{"stream", "stderr"}, {"offset", "10"}, {"max", "100"}, {"wait_ms", "25000"}}},
      {"GET",
       "/leases/42/logs",
       "",
       BrokerOp::kLogs,
       {{"stream", "stdout"}, {"offset", "0"}, {"max", "1048576"}, {"wait_ms", "0"}}},
      {"GET", "/leases/42/outputs", "", BrokerOp::kOutputs, {{"path", ""}}},
      {"GET",
       "/leases/42/outputs/run/model.pt?offset=5",
       "",
       BrokerOp::kOutputs,
       {{"path", "run/model.pt"}, {"offset", "5"}, {"max", "8388608"}}},
      {"POST", "/leases/42/grants/revoke", revocation, BrokerOp::kAuthorize, {}},
  };
  for (const Case& c : cases) {
    auto r = f.Send(c.method, c.target, c.body);
    EXPECT_EQ(r.status, 200) << c.target << ": " << r.body;
    const auto seen = f.agent.Seen();
    ASSERT_FALSE(seen.empty());
    const BrokerFrame& frame = seen.back();
    EXPECT_EQ(frame.op, c.op) << c.target;
    EXPECT_EQ(frame.body, c.body) << c.target;
    for (const auto& [k, v] : c.fields) EXPECT_EQ(frame.Field(k), v) << c.target << " " << k;
    EXPECT_EQ(frame.Field("target"), c.target);
  }
  EXPECT_EQ(f.agent.Seen().size(), cases.size());
}

TEST(TenantApi, BadTargetsAreRefusedBeforeTheAgentSeesThem) {
  Front f;
  const std::vector<std::pair<std::string, int>> cases = {
      {"/leases/42/files/a%2Fb", 400},
      {"/leases/42/files/a%2fb", 400},
      {"/leases/42/files/../etc/passwd", 400},
      {"/leases/42/files/%2e%2e/x", 400},
      {"/leases/42/files/a%00b", 400},
      {"/leases/42/files/a%5Cb", 400},
      {"/leases/42/files//x", 400},
      {"/leases/042", 400},
      {"/leases/0", 400},
      {"/leases/18446744073709551616", 400},
      {"/leases/4x2", 400},
      {"/leases/42/events?after=01", 400},
      {"/leases/42/events?wait_ms=25001", 400},
      {"/leases/42/events?after=1&after=2", 400},
      {"/leases/42/events?follow=1", 400},
      {"/leases/42/logs?stream=stdin", 400},
      {"/leases/42/logs?max=1048577", 400},
      {"/leases/42/files", 404},
      {"/nope", 404},
      {"/leases/42/nope", 404},
      {"/environments?x=1", 400},
      {"/leases/42/outputs/", 400},
      {"/leases/42/files/dir/", 400},
      {"/", 400},
  };
  for (const auto& [target, status] : cases) {
    auto r = f.Send("GET", "/leases/1", "");  // a valid one in between keeps the server honest
    EXPECT_EQ(r.status, 200);
    // Signed as sent: the client would refuse to sign most of these, so sign by hand.
    r = RawHttps(f.api->Port(), RequestBytes("GET", target, {}, ""));
    EXPECT_EQ(r.status, status) << target << ": " << r.body;
    EXPECT_TRUE(r.Has("\"error\":{\"code\":")) << target << ": " << r.body;
  }
  // PUT without offset, a method not allowed on the path.
  auto r = f.Send("PUT", "/leases/42/files/x", "");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(r.Has("offset is required")) << r.body;
  r = f.Send("POST", "/leases/42", "");
  EXPECT_EQ(r.status, 405) << r.body;
  EXPECT_EQ(f.agent.Seen().size(), cases.size()) << "only the valid requests reach the agent";
}

TEST(TenantApi, MissingOrMalformedAuthHeadersGet401NamingTheHeader) {
  Front f;
  const std::string target = "/leases/42";
  for (std::string_view drop :
       {"Gpunet-Signer", "Gpunet-Timestamp", "Gpunet-Nonce", "Gpunet-Signature"}) {
    client::HeaderList headers = SignedHeaders("GET", target, "");
    std::erase_if(headers, [&](const auto& h) { return h.first == drop; });
    auto r = RawHttps(f.api->Port(), RequestBytes("GET", target, headers, ""));
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_TRUE(r.Has(std::string(drop) + " is missing")) << r.body;
  }
  client::HeaderList headers = SignedHeaders("GET", target, "");
  for (auto& [k, v] : headers)
    if (k == "Gpunet-Nonce") v = "XYZ";
  auto r = RawHttps(f.api->Port(), RequestBytes("GET", target, headers, ""));
  EXPECT_EQ(r.status, 401) << r.body;
  headers = SignedHeaders("GET", target, "");
  headers.emplace_back("gpunet-nonce", HeaderOf(headers, "Gpunet-Nonce"));
  r = RawHttps(f.api->Port(), RequestBytes("GET", target, headers, ""));
  EXPECT_EQ(r.status, 401) << "a repeated header is refused, not picked from: " << r.body;
  EXPECT_TRUE(f.agent.Seen().empty());
}

TEST(TenantApi, TheManifestMustBeCanonicalBeforeItIsForwarded) {
  Front f;
  const std::string canonical = CanonicalManifest();
  std::string spaced = canonical;
  spaced.insert(1, " ");
  auto r = f.Send("POST", "/leases/42/manifest", spaced);
  EXPECT_EQ(r.status, 422) << r.body;
  r = f.Send("POST", "/leases/42/manifest", "{\"environment\":");
  EXPECT_EQ(r.status, 400) << r.body;
  r = f.Send("POST", "/leases/42/manifest", std::string(client::kManifestBytesMax + 1, ' '));
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_TRUE(f.agent.Seen().empty());
  r = f.Send("POST", "/leases/42/manifest", canonical);
  EXPECT_EQ(r.status, 200) << r.body;
  const auto seen = f.agent.Seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, BrokerOp::kManifest);
  EXPECT_EQ(seen[0].body, canonical);
}

TEST(TenantApi, SecretsMustBeAnObjectOfStringsAndAreNeverQuoted) {
  Front f;
  for (const std::string body :
       {"[\"x\"]", "{\"A\":1}", "{\"A\":\"hunter2\"", "{\"\":\"hunter2\"}"}) {
    auto r = f.Send("POST", "/leases/42/secrets", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_FALSE(r.Has("hunter2")) << r.body;
  }
  EXPECT_TRUE(f.agent.Seen().empty());
}

TEST(TenantApi, UploadChunksAreHashCheckedHere) {
  Front f;
  const std::string chunk = "hello, chunk";
  const std::string target = "/leases/42/files/in/data%2Bx.txt?offset=0";
  auto r = f.Send("PUT", target, chunk, {{"Gpunet-Chunk-Sha256", Sha256HexOf("other")}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(r.Has("damaged")) << r.body;
  r = f.Send("PUT", target, chunk);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(r.Has("Gpunet-Chunk-Sha256")) << r.body;
  std::string upper = Sha256HexOf(chunk);
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  r = f.Send("PUT", target, chunk, {{"Gpunet-Chunk-Sha256", upper}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(f.agent.Seen().empty());

  r = f.Send("PUT", target, chunk, {{"Gpunet-Chunk-Sha256", Sha256HexOf(chunk)}});
  EXPECT_EQ(r.status, 200) << r.body;
  const auto seen = f.agent.Seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, BrokerOp::kUpload);
  EXPECT_EQ(seen[0].Field("path"), "in/data+x.txt");
  EXPECT_EQ(seen[0].Field("offset"), "0");
  EXPECT_EQ(seen[0].Field("chunk_sha256"), Sha256HexOf(chunk));
  EXPECT_EQ(seen[0].body, chunk);
}

TEST(TenantApi, ARevocationThatDoesNotParseIsRefusedBeforeTheAgentSeesIt) {
  Front f;
  auto r = f.Send("POST", "/leases/42/grants/revoke", "{\"grant_id\":\"00\"}");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(r.Has("EncodeRevocation")) << r.body;
  EXPECT_TRUE(f.agent.Seen().empty());
}

TEST(TenantApi, OverSizeBodiesGet413AndHugeHeaders431) {
  Front f;
  // Over the server's cap (one chunk): refused from Content-Length, before the body.
  std::string request = "PUT /leases/42/files/x?offset=0 HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                        std::to_string(kTenantChunkBytesMax + 1) + "\r\nConnection: close\r\n\r\n";
  auto r = RawHttps(f.api->Port(), request);
  EXPECT_EQ(r.status, 413) << r.body;
  // Under the server's cap, over the endpoint's.
  r = f.Send("POST", "/leases/42/grants/revoke", std::string(kTenantRevokeBytesMax + 1, '{'));
  EXPECT_EQ(r.status, 413) << r.body;
  r = f.Send("GET", "/leases/42", "x");
  EXPECT_EQ(r.status, 413) << r.body;
  r = f.Send("GET", "/leases/42", "", {{"X-Filler", std::string(20'000, 'a')}});
  EXPECT_EQ(r.status, 431) << r.body;
  EXPECT_TRUE(r.Has("\"code\":\"limit_exceeded\"")) << r.body;
  r = RawHttps(f.api->Port(),
               RequestBytes("GET", "/leases/42/files/" + std::string(20'000, 'a'), {}, ""));
  EXPECT_EQ(r.status, 431) << "a huge request line: " << r.body;
  EXPECT_TRUE(f.agent.Seen().empty());
  EXPECT_EQ(f.Send("GET", "/leases/42").status, 200) << "and it keeps serving";
}

TEST(TenantApi, TheAgentsReplyBecomesTheAnswer) {
  Front f;
  f.agent.answer = [](const BrokerFrame& frame) {
    BrokerFrame r;
    if (frame.op == BrokerOp::kManifest) {
      r.fields["status"] = "409";
      r.fields["message"] = "a manifest was accepted already";
    } else if (frame.op == BrokerOp::kLogs) {
      r.fields["status"] = "200";
      r.fields["content_type"] = "application/octet-stream";
      r.fields["next_offset"] = "14";
      r.fields["ended"] = "1";
      r.body = std::string("line\n\x00\xff", 7) + "more\n\n";
    } else if (frame.op == BrokerOp::kStatus) {
      r.fields["status"] = "410";
      r.body = "{\"error\":{\"code\":\"gone\",\"message\":\"closed\"}}";
    } else {
      r.fields["status"] = "OK";  // not a status: 502
    }
    return r;
  };
  auto r = f.Send("POST", "/leases/42/manifest", CanonicalManifest());
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body,
            "{\"error\":{\"code\":\"conflict\",\"message\":\"a manifest was accepted already\"}}");
  r = f.Send("GET", "/leases/42/logs?offset=0");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, std::string("line\n\x00\xff", 7) + "more\n\n");
  EXPECT_NE(r.head.find("Gpunet-Next-Offset: 14"), std::string::npos) << r.head;
  EXPECT_NE(r.head.find("Gpunet-Ended: 1"), std::string::npos) << r.head;
  EXPECT_NE(r.head.find("application/octet-stream"), std::string::npos) << r.head;
  r = f.Send("GET", "/leases/42");
  EXPECT_EQ(r.status, 410);
  EXPECT_TRUE(r.Has("closed"));
  r = f.Send("GET", "/leases/42/outputs");
  EXPECT_EQ(r.status, 502) << r.body;
}

TEST(TenantApi, ABrokenBrokerConnectionIs502AndDroppedAndTheLastOneEndsTheProcess) {
  Front f(2);
  f.agent.answer = [](const BrokerFrame& frame) {
    BrokerFrame r;  // an agent that speaks out of turn: an op other than kReply
    r.op = frame.lease_id == 13 ? BrokerOp::kStatus : BrokerOp::kReply;
    r.fields["status"] = "200";
    return r;
  };
  EXPECT_EQ(f.broker->Alive(), 2u);
  auto r = f.Send("GET", "/leases/13");
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_EQ(f.broker->Alive(), 1u);
  EXPECT_EQ(f.Send("GET", "/leases/42").status, 200) << "the other connection still serves";
  r = f.Send("GET", "/leases/13");
  EXPECT_EQ(r.status, 502) << r.body;
  f.broker->WaitAllGone();
  r = f.Send("GET", "/leases/42");
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_TRUE(r.Has("not connected")) << r.body;
}

TEST(TenantApi, AnIdleConnectionTheAgentClosesIsDropped) {
  Front f(3);
  f.agent.CloseAll();
  f.broker->WaitAllGone();  // returns: the watcher noticed every close
  EXPECT_EQ(f.broker->Alive(), 0u);
}

TEST(TenantApi, HundredsOfConnectionsAreCutAndTheServerKeepsServing) {
  // First the per-address cap (429) refuses them, then, with that cap lifted, the
  // global one (503).
  for (const size_t per_address : {size_t{16}, size_t{1000}}) {
    SCOPED_TRACE("per-address cap " + std::to_string(per_address));
    Front f(2, [per_address](server::ServerOptions& o) {
      o.connections_max = 64;
      o.connections_per_address_max = per_address;
      o.first_bytes_timeout_ms = 1'000;  // the silent ones within the caps are cut too
    });
    std::vector<int> sockets;
    for (int i = 0; i < 300; ++i) {
      const int s = ConnectLoopback(f.api->Port());
      if (s >= 0) sockets.push_back(s);
    }
    // Every connection ends: those over the caps at once (an answer, then close),
    // those within them when they send no TLS handshake in time.
    for (int s : sockets) {
      char buffer[512];
      while (::read(s, buffer, sizeof(buffer)) > 0) {
      }
    }
    const auto stats = f.api->Stats();
    const size_t cap = std::min<size_t>(per_address, 64);
    EXPECT_GE(stats.rejected_per_address + stats.rejected_connections, sockets.size() - cap);
    if (per_address > 64) {
      EXPECT_GE(stats.rejected_connections, sockets.size() - 64);
    }
    for (int s : sockets) ::close(s);
    // The server serves again once they are gone (the caps count open connections).
    HttpReply r;
    for (int i = 0; i < 200 && r.status != 200; ++i) {
      r = f.Send("GET", "/leases/42");
      if (r.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(r.status, 200) << r.body;
  }
}

TEST(TenantApi, SilentConnectionsAreCutAfterTheFirstBytesTimeoutNotTheReadTimeout) {
  Front f(2, [](server::ServerOptions& o) {
    EXPECT_EQ(o.first_bytes_timeout_ms, 10'000);  // the tenant API's default
    EXPECT_EQ(o.read_timeout_ms, 60'000);
    o.first_bytes_timeout_ms = 300;
  });
  // A cut connection reads its end long before this; a read that runs into it
  // (EAGAIN) means the connection was left open for the read timeout.
  const auto bound = [](int s) {
    timeval tv{20, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  };
  // No TLS handshake at all.
  const int silent = ConnectLoopback(f.api->Port());
  ASSERT_GE(silent, 0);
  bound(silent);
  char buffer[64];
  errno = 0;
  EXPECT_EQ(::read(silent, buffer, sizeof(buffer)), 0) << std::strerror(errno);
  ::close(silent);
  // A handshake, then no request.
  const int quiet = ConnectLoopback(f.api->Port());
  ASSERT_GE(quiet, 0);
  bound(quiet);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, quiet);
  ASSERT_EQ(SSL_connect(ssl), 1);
  errno = 0;
  EXPECT_LE(SSL_read(ssl, buffer, sizeof(buffer)), 0);
  EXPECT_NE(errno, EAGAIN) << "the handshaken, silent connection was still open after 20 s";
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(quiet);
  EXPECT_EQ(f.Send("GET", "/leases/42").status, 200);
}

TEST(TenantApi, ALongPollHoldsOnlyItsOwnBrokerConnection) {
  Front f(2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  f.agent.answer = [released](const BrokerFrame& frame) {
    if (frame.op == BrokerOp::kEvents) released.wait();  // a follow that waits for events
    BrokerFrame r;
    r.fields["status"] = "200";
    r.body = "{\"op\":\"" + std::string(BrokerOpName(frame.op)) + "\"}";
    return r;
  };
  HttpReply events;
  std::thread poll([&] { events = f.Send("GET", "/leases/42/events?after=3&wait_ms=25000"); });
  while (f.agent.Seen().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // The agent holds the long-poll; other requests go over the other connection.
  for (int i = 0; i < 3; ++i) {
    auto r = f.Send("GET", "/leases/42");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "{\"op\":\"status\"}");
  }
  release.set_value();
  poll.join();
  EXPECT_EQ(events.status, 200) << events.body;
  EXPECT_EQ(events.body, "{\"op\":\"events\"}");
  EXPECT_EQ(f.broker->Alive(), 2u);
}

/// The test agent's answer while long-polls (wait_ms > 0) wait until `released`.
std::function<BrokerFrame(const BrokerFrame&)> HoldingLongPolls(std::shared_future<void> released) {
  return [released](const BrokerFrame& frame) {
    if (frame.Field("wait_ms").value_or("0") != "0") released.wait();
    BrokerFrame r;
    r.fields["status"] = "200";
    r.body = "{\"op\":\"" + std::string(BrokerOpName(frame.op)) + "\"}";
    return r;
  };
}

TEST(TenantApi, LongPollsAreCappedPerLeaseAndLeaveABrokerConnectionFree) {
  Front f(4);  // long-polls may hold 3 of the 4 broker connections
  std::promise<void> release;
  f.agent.answer = HoldingLongPolls(release.get_future().share());
  const auto waiting = [&](size_t n) {
    while (f.agent.Seen().size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  std::vector<HttpReply> held(3);
  std::vector<std::thread> polls;
  polls.emplace_back([&] { held[0] = f.Send("GET", "/leases/42/events?after=3&wait_ms=25000"); });
  polls.emplace_back([&] { held[1] = f.Send("GET", "/leases/42/logs?wait_ms=25000"); });
  waiting(2);
  auto third = f.Send("GET", "/leases/42/events?wait_ms=100");
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_TRUE(third.Has("lease 42 has 2 long-polls waiting")) << third.body;
  polls.emplace_back([&] { held[2] = f.Send("GET", "/leases/43/events?wait_ms=25000"); });
  waiting(3);
  auto past = f.Send("GET", "/leases/44/logs?wait_ms=100");
  EXPECT_EQ(past.status, 503) << past.body;
  EXPECT_TRUE(past.Has("3 long-polls waiting")) << past.body;
  // Neither refusal reached the agent, and the free connection serves the rest.
  EXPECT_EQ(f.agent.Seen().size(), 3u);
  EXPECT_EQ(f.Send("GET", "/leases/42").status, 200);
  EXPECT_EQ(f.Send("GET", "/leases/42/events?after=3&wait_ms=0").status, 200);
  release.set_value();
  for (auto& t : polls) t.join();
  for (const auto& r : held) EXPECT_EQ(r.status, 200) << r.body;
  // Ended long-polls no longer count.
  EXPECT_EQ(f.Send("GET", "/leases/42/events?wait_ms=100").status, 200);
  EXPECT_EQ(f.Send("GET", "/leases/42/logs?wait_ms=100").status, 200);
}

/// A TLS connection that asks GET /leases/{id}/session to upgrade (blocking OpenSSL).
class SessionConn {
 public:
  /// Connects and sends the upgrade request, signed unless `headers` says otherwise.
  SessionConn(uint16_t port, std::string_view target, const client::HeaderList& headers,
              bool ask_upgrade = true)
      : m_socket(ConnectLoopback(port)) {
    m_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(m_ctx, SSL_VERIFY_NONE, nullptr);
    m_ssl = SSL_new(m_ctx);
    if (m_socket < 0) return;
    SSL_set_fd(m_ssl, m_socket);
    if (SSL_connect(m_ssl) != 1) return;
    std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n";
    for (const auto& [k, v] : headers) request += k + ": " + v + "\r\n";
    if (ask_upgrade) request += "Connection: Upgrade\r\nUpgrade: gpunet-session/1\r\n";
    request += "\r\n";
    if (!Write(request)) return;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char c;
      if (SSL_read(m_ssl, &c, 1) != 1) break;
      head.push_back(c);
    }
    if (head.rfind("HTTP/1.1 ", 0) == 0 && head.size() >= 12) status = std::stoi(head.substr(9, 3));
    // A refusal's body, by its length (the connection stays open for the next request).
    const size_t at = head.find("Content-Length: ");
    if (status != 101 && at != std::string::npos)
      body = Read(std::stoul(head.substr(at + 16, head.find("\r\n", at) - at - 16)));
  }
  ~SessionConn() {
    SSL_free(m_ssl);
    SSL_CTX_free(m_ctx);
    if (m_socket >= 0) ::close(m_socket);
  }
  bool Write(std::string_view data) {
    return SSL_write(m_ssl, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }
  /// Up to `size` bytes; fewer when the connection ends (*ended set).
  std::string Read(size_t size, bool* ended = nullptr) {
    std::string out;
    if (ended != nullptr) *ended = false;
    while (out.size() < size) {
      char buffer[4096];
      ERR_clear_error();  // SSL_get_error reads the thread's queue (RawHttps leaves errors)
      const int n =
          SSL_read(m_ssl, buffer, static_cast<int>(std::min(sizeof buffer, size - out.size())));
      if (n <= 0) {
        if (ended != nullptr) *ended = true;
        // The relay's close_notify: answered, so it closes without waiting for one.
        if (SSL_get_error(m_ssl, n) == SSL_ERROR_ZERO_RETURN) SSL_shutdown(m_ssl);
        break;
      }
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }

  int status = 0;
  std::string head;  ///< the response head, blank line included
  std::string body;  ///< a refusal's body

 private:
  int m_socket = -1;
  SSL_CTX* m_ctx = nullptr;
  SSL* m_ssl = nullptr;
};

std::unique_ptr<SessionConn> OpenSession(Front& f, uint64_t lease) {
  const std::string target = "/leases/" + std::to_string(lease) + "/session";
  return std::make_unique<SessionConn>(f.api->Port(), target, SignedHeaders("GET", target, ""));
}

/// Polls `pred` for up to 20 s (a liveness bound, not a timing test).
template <class Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 10'000 && !pred(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return pred();
}

TEST(TenantApi, ASessionIsTheAgentsSocketRelayedVerbatimAndHoldsNoBrokerConnection) {
  Front f(2);
  auto s = OpenSession(f, 42);
  ASSERT_EQ(s->status, 101) << s->head;
  EXPECT_NE(s->head.find("Upgrade: gpunet-session/1\r\n"), std::string::npos) << s->head;
  const auto seen = f.agent.Seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].op, BrokerOp::kSession);
  EXPECT_EQ(seen[0].lease_id, 42u);
  EXPECT_EQ(seen[0].Field("target"), "/leases/42/session");
  EXPECT_TRUE(seen[0].Field("signature").has_value());
  const int init = f.agent.InitEnd(0);
  ASSERT_GE(init, 0);
  // Frames are the tenant's and init's business: any bytes go through unchanged.
  const std::string open("\x01\x00\x00\x00\x03\x01\x00\x18", 8);
  ASSERT_TRUE(s->Write(open));
  char buffer[8] = {};
  ASSERT_EQ(::recv(init, buffer, 8, MSG_WAITALL), 8);
  EXPECT_EQ(std::string(buffer, 8), open);
  ASSERT_EQ(::send(init, "\x08\x00\x00\x00\x00", 5, MSG_NOSIGNAL), 5);
  EXPECT_EQ(s->Read(5), std::string("\x08\x00\x00\x00\x00", 5));
  EXPECT_EQ(f.api->SessionsOf(42), 1u);
  EXPECT_EQ(f.api->Stats().relays, 1u);
  // Both broker connections are free: two long-polls could wait at once.
  EXPECT_EQ(f.broker->Alive(), 2u);
  EXPECT_EQ(f.Send("GET", "/leases/42").status, 200);
  // Init ends the session: the tenant reads the end, and the count goes.
  ::shutdown(init, SHUT_RDWR);
  bool ended = false;
  EXPECT_EQ(s->Read(1, &ended), "");
  EXPECT_TRUE(ended);
  EXPECT_TRUE(Eventually([&] { return f.api->SessionsOf(42) == 0 && f.api->Sessions() == 0; }));
}

TEST(TenantApi, ASessionWithoutUpgradeOrSignatureOrThatTheAgentRefusesIsAnAnswerNotARelay) {
  Front f(2);
  const std::string target = "/leases/42/session";
  SessionConn plain(f.api->Port(), target, SignedHeaders("GET", target, ""), false);
  EXPECT_EQ(plain.status, 426) << plain.head;
  EXPECT_NE(plain.head.find("Upgrade: gpunet-session/1"), std::string::npos) << plain.head;
  SessionConn unsigned_conn(f.api->Port(), target, {});
  EXPECT_EQ(unsigned_conn.status, 401) << unsigned_conn.head;
  client::HeaderList forged = SignedHeaders("GET", "/leases/43/session", "");
  SessionConn wrong_lease(f.api->Port(), target, forged);
  EXPECT_EQ(wrong_lease.status, 401) << "signed for lease 43";
  EXPECT_TRUE(f.agent.Seen().empty());
  EXPECT_EQ(f.Send("POST", target).status, 405);
  f.agent.answer = [](const BrokerFrame&) {
    BrokerFrame r;
    r.fields["status"] = "409";
    r.body =
        "{\"error\":{\"code\":\"conflict\",\"message\":\"the lease's workload is not running "
        "(state: exited)\"}}";
    return r;
  };
  auto refused = OpenSession(f, 42);
  EXPECT_EQ(refused->status, 409) << refused->head;
  EXPECT_NE(refused->body.find("(state: exited)"), std::string::npos) << refused->body;
  EXPECT_EQ(f.api->Sessions(), 0u);
  EXPECT_EQ(f.api->Stats().relays, 0u);
}

/// The agent's yes to a session names the lease's tenant: `tenant_of(lease)`.
std::function<BrokerFrame(const BrokerFrame&)> SessionsOfTenants(
    std::function<std::string(uint64_t)> tenant_of) {
  return [tenant_of = std::move(tenant_of)](const BrokerFrame& frame) {
    BrokerFrame r;
    r.fields["status"] = "200";
    if (frame.op == BrokerOp::kSession) r.fields["tenant"] = tenant_of(frame.lease_id);
    return r;
  };
}

TEST(TenantApi, SessionsAreCappedPerLeaseAndInAll) {
  Front f(2);
  // Each lease its own tenant: only the per-lease and the total caps are met.
  f.agent.answer = SessionsOfTenants([](uint64_t lease) { return "t" + std::to_string(lease); });
  std::vector<std::unique_ptr<SessionConn>> open;
  for (size_t i = 0; i < kTenantSessionsPerLeaseMax; ++i) {
    open.push_back(OpenSession(f, 42));
    ASSERT_EQ(open.back()->status, 101) << i << open.back()->head;
  }
  const size_t asked = f.agent.Seen().size();
  auto over = OpenSession(f, 42);
  EXPECT_EQ(over->status, 429) << over->head;
  EXPECT_NE(over->body.find("lease 42 has 16 sessions open"), std::string::npos) << over->body;
  EXPECT_EQ(f.agent.Seen().size(), asked) << "a lease at its cap is not asked for another";
  // Other leases until the process's cap.
  for (uint64_t lease = 43; open.size() < kTenantSessionsMax; ++lease) {
    for (int i = 0; i < 8; ++i) {
      open.push_back(OpenSession(f, lease));
      ASSERT_EQ(open.back()->status, 101) << lease << open.back()->head;
    }
  }
  auto full = OpenSession(f, 99);
  EXPECT_EQ(full->status, 503) << full->head;
  EXPECT_NE(full->body.find("64 sessions open"), std::string::npos) << full->body;
  EXPECT_EQ(f.api->Sessions(), kTenantSessionsMax);
  // One ends (the tenant left, and init ended the session): its lease may open one again.
  open.front().reset();
  ::shutdown(f.agent.InitEnd(0), SHUT_RDWR);
  EXPECT_TRUE(Eventually([&] { return f.api->SessionsOf(42) == kTenantSessionsPerLeaseMax - 1; }));
  auto again = OpenSession(f, 42);
  EXPECT_EQ(again->status, 101) << again->head;
}

TEST(TenantApi, OneTenantsLeasesTakeAtMostItsShareOfTheSessions) {
  Front f(2);
  // Leases 42 to 44 are tenant A's, the others B's.
  f.agent.answer = SessionsOfTenants([](uint64_t lease) { return lease <= 44 ? "A" : "B"; });
  static_assert(kTenantSessionsPerTenantMax == 2 * kTenantSessionsPerLeaseMax);
  std::vector<std::unique_ptr<SessionConn>> open;
  for (uint64_t lease : {42, 43})
    for (size_t i = 0; i < kTenantSessionsPerLeaseMax; ++i) {
      open.push_back(OpenSession(f, lease));
      ASSERT_EQ(open.back()->status, 101) << lease << open.back()->head;
    }
  auto over = OpenSession(f, 44);
  EXPECT_EQ(over->status, 429) << over->head;
  EXPECT_NE(over->body.find("lease 44's tenant has 32 sessions open"), std::string::npos)
      << over->body;
  EXPECT_EQ(f.api->SessionsOf(44), 0u);
  // The agent's socket for it was closed: its "init" end reads the end.
  const int refused_init = f.agent.InitEnd(2 * kTenantSessionsPerLeaseMax);
  ASSERT_GE(refused_init, 0);
  char c;
  EXPECT_EQ(::read(refused_init, &c, 1), 0);
  auto other = OpenSession(f, 45);
  EXPECT_EQ(other->status, 101) << "another tenant still gets one: " << other->head;
  EXPECT_EQ(f.api->Sessions(), 2 * kTenantSessionsPerLeaseMax + 1);
  // One of A's ends: A may open one again, on any of its leases.
  open.front().reset();
  ::shutdown(f.agent.InitEnd(0), SHUT_RDWR);
  EXPECT_TRUE(Eventually([&] { return f.api->SessionsOf(42) == kTenantSessionsPerLeaseMax - 1; }));
  auto again = OpenSession(f, 44);
  EXPECT_EQ(again->status, 101) << again->head;
}

TEST(TenantApi, ABadlySignedLongPollTakesNoSlotAndSlotsAreKeptPerSigner) {
  Front f(4);  // long-polls may hold 3 of the 4 broker connections
  std::promise<void> release;
  f.agent.answer = HoldingLongPolls(release.get_future().share());
  const std::string target = "/leases/42/events?wait_ms=25000";
  // A stranger fills lease 42's slots with requests that do not verify, or that verify
  // as its own key's: neither takes the tenant's.
  for (int i = 0; i < 3; ++i) {
    client::HeaderList bad = SignedHeaders("GET", target, "");
    for (auto& [k, v] : bad)
      if (k == "Gpunet-Signature") v[0] = v[0] == 'a' ? 'b' : 'a';
    auto r = RawHttps(f.api->Port(), RequestBytes("GET", target, bad, ""));
    EXPECT_EQ(r.status, 401) << r.body;
  }
  EXPECT_TRUE(f.agent.Seen().empty());
  std::vector<std::thread> polls;
  std::vector<HttpReply> held(3);
  const crypto::KeyPair stranger = TestKey(2);
  polls.emplace_back([&] {
    held[0] = RawHttps(f.api->Port(),
                       RequestBytes("GET", target, SignedHeaders("GET", target, "", stranger), ""));
  });
  polls.emplace_back([&] { held[1] = f.Send("GET", target); });
  polls.emplace_back([&] { held[2] = f.Send("GET", target); });
  while (f.agent.Seen().size() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // The tenant's own third is over its cap.
  auto third = f.Send("GET", "/leases/42/events?wait_ms=100");
  EXPECT_EQ(third.status, 429) << third.body;
  release.set_value();
  for (auto& t : polls) t.join();
  for (const auto& r : held) EXPECT_EQ(r.status, 200) << r.body;
}

/// RunTenantApi's options as `provider run` gives them, on 127.0.0.1 (any port).
RunTenantApiOptions LocalRunOptions(const std::string& cert_file, const TestAgent& agent,
                                    int key_fd) {
  RunTenantApiOptions options;
  options.api.server = TenantApiServerDefaults(agent.front_fds.size());
  options.api.server.host = "127.0.0.1";
  options.api.server.port = 0;
  options.api.cert_file = cert_file;
  options.api.chain_id = "gpunet-test";
  options.api.provider = TestAddress(7);
  options.broker_fds = agent.front_fds;
  options.key_fd = key_fd;
  return options;
}

TEST(TenantApi, RunTenantApiReadsTheKeyFromItsDescriptorAndEndsWithTheBroker) {
  TempDir dir;
  const auto made = gpunet::testing::MakeSelfSigned();
  std::ofstream(dir.Sub("cert.pem")) << made.certificate_pem;
  int key_pipe[2];
  ASSERT_EQ(::pipe2(key_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(::write(key_pipe[1], made.key_pem.data(), made.key_pem.size()),
            static_cast<ssize_t>(made.key_pem.size()));
  ::close(key_pipe[1]);
  TestAgent agent(2);
  agent.Start();
  RunTenantApiOptions options = LocalRunOptions(dir.Sub("cert.pem"), agent, key_pipe[0]);
  std::atomic<uint16_t> port{0};
  std::atomic<bool> finished{false};
  base::Status result;
  std::thread run([&] {
    result = RunTenantApi(std::move(options), [&](uint16_t p) { port = p; });
    finished = true;
  });
  while (port == 0 && !finished) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_NE(port, 0) << (run.join(), result.error().ToString());
  auto r = RawHttps(port, RequestBytes("GET", "/environments", {}, ""));
  EXPECT_EQ(r.status, 200) << r.body;
  agent.CloseAll();
  run.join();
  EXPECT_TRUE(result) << result.error().ToString();
  EXPECT_EQ(::fcntl(key_pipe[0], F_GETFD), -1) << "the key descriptor is closed after reading";
}

// The tenant-facing process works as `nobody` with nothing but its descriptors: the
// child drops root the way `provider run` does, then serves; the certificate is
// readable by all, the key only arrives over the pipe.
TEST(TenantApi, ItServesAsNobodyWithOnlyItsDescriptors) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to nobody";
  auto nobody = LookupUser("nobody");
  if (!nobody) GTEST_SKIP() << nobody.error().ToString();
  gpunet::testing::TempDirOptions dir_options;
  dir_options.mode = 0711;  // nobody reaches the certificate inside
  TempDir dir(dir_options);
  const auto made = gpunet::testing::MakeSelfSigned();
  std::ofstream(dir.Sub("cert.pem")) << made.certificate_pem;
  ASSERT_EQ(::chmod(dir.Sub("cert.pem").c_str(), 0644), 0);
  std::ofstream(dir.Sub("key.pem")) << made.key_pem;
  ASSERT_EQ(::chmod(dir.Sub("key.pem").c_str(), 0600), 0);
  int key_pipe[2], port_pipe[2];
  ASSERT_EQ(::pipe(key_pipe), 0);
  ASSERT_EQ(::pipe(port_pipe), 0);
  TestAgent agent(2);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(key_pipe[1]);
    ::close(port_pipe[0]);
    if (DropPrivileges(*nobody) != 0) ::_exit(10);
    // As nobody the key file is out of reach; only the descriptor gives the key.
    if (::access(dir.Sub("key.pem").c_str(), R_OK) == 0) ::_exit(11);
    RunTenantApiOptions options = LocalRunOptions(dir.Sub("cert.pem"), agent, key_pipe[0]);
    const int out = port_pipe[1];
    auto done = RunTenantApi(std::move(options), [out](uint16_t p) {
      [[maybe_unused]] ssize_t n = ::write(out, &p, sizeof(p));
    });
    ::_exit(done ? 0 : 12);
  }
  ::close(key_pipe[0]);
  ::close(port_pipe[1]);
  for (int fd : agent.front_fds) ::close(fd);
  agent.Start();
  ASSERT_EQ(::write(key_pipe[1], made.key_pem.data(), made.key_pem.size()),
            static_cast<ssize_t>(made.key_pem.size()));
  ::close(key_pipe[1]);
  uint16_t port = 0;
  ASSERT_EQ(::read(port_pipe[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(port_pipe[0]);
  auto r = RawHttps(port, RequestBytes("GET", "/environments", {}, ""));
  EXPECT_EQ(r.status, 200) << r.body;
  const std::string target = "/leases/42/outputs";
  r = RawHttps(port, RequestBytes("GET", target, SignedHeaders("GET", target, ""), ""));
  EXPECT_EQ(r.status, 200) << r.body;
  agent.CloseAll();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

}  // namespace
}  // namespace gpunet::provider
