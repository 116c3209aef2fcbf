// The server over real TLS on 127.0.0.1: HTTPS and WSS with a self-signed
// certificate made with the OpenSSL API (util/tls_cert.h), a plain-HTTP client and an old-TLS
// client on the TLS port, and certificate/key files that cannot be used.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include "server/http_server.h"
#include "server/metrics.h"
#include "unit/server/raw_socket.h"
#include "util/temp_dir.h"
#include "util/tls_cert.h"

namespace gpunet::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using test::RawConn;
using test::WaitFor;

constexpr int kGuardMs = 20'000;  // liveness bound for anything that should happen

using gpunet::testing::CertAndKey;
using gpunet::testing::MakeSelfSigned;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

/// A TLS server with a fresh self-signed certificate, and /hello.
struct TlsFixture {
  explicit TlsFixture(ServerOptions opt = {}) {
    WriteFile(dir.Sub("cert.pem"), pair.certificate_pem);
    WriteFile(dir.Sub("key.pem"), pair.key_pem);
    opt.tls = TlsOptions{dir.Sub("cert.pem"), dir.Sub("key.pem")};
    opt.metrics = &registry;
    server = std::make_unique<HttpServer>(std::move(opt));
    server->Handle("GET", "/hello", [](const Request&) {
      return Response{200, "text/plain", "hello"};
    });
  }
  void Start() {
    auto st = server->Start();
    ASSERT_TRUE(st) << st.error().ToString();
  }
  /// A client context that trusts only this server's certificate.
  std::unique_ptr<ssl::context> ClientContext() const {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->add_certificate_authority(net::buffer(pair.certificate_pem));
    ctx->set_verify_mode(ssl::verify_peer);
    return ctx;
  }

  gpunet::testing::TempDir dir;
  CertAndKey pair = MakeSelfSigned();
  metrics::Registry registry;
  std::unique_ptr<HttpServer> server;
};

/// Connects and completes a TLS handshake; the error text when it fails.
std::string ConnectTls(beast::ssl_stream<beast::tcp_stream>& stream, uint16_t port) {
  auto& lowest = beast::get_lowest_layer(stream);
  lowest.expires_after(std::chrono::milliseconds(kGuardMs));
  beast::error_code ec;
  lowest.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return "connect: " + ec.message();
  stream.handshake(ssl::stream_base::client, ec);
  return ec ? "handshake: " + ec.message() : "";
}

/// One request over HTTPS with `ctx`; the response, or the error text in its body
/// with status 0.
http::response<http::string_body> HttpsExchange(uint16_t port, ssl::context& ctx,
                                                http::request<http::string_body> req,
                                                int* tls_version) {
  net::io_context ioc;
  beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
  http::response<http::string_body> res;
  if (std::string err = ConnectTls(stream, port); !err.empty()) {
    res.result(0);
    res.body() = err;
    return res;
  }
  if (tls_version != nullptr) *tls_version = SSL_version(stream.native_handle());
  req.set(http::field::host, "127.0.0.1");
  req.prepare_payload();
  beast::error_code ec;
  http::write(stream, req, ec);
  beast::flat_buffer buffer;
  if (!ec) http::read(stream, buffer, res, ec);
  if (ec) {
    res.result(0);
    res.body() = "exchange: " + ec.message();
  }
  return res;
}

http::response<http::string_body> HttpsGet(uint16_t port, ssl::context& ctx,
                                           const std::string& target, int* tls_version) {
  return HttpsExchange(port, ctx, {http::verb::get, target, 11}, tls_version);
}

TEST(Tls, HttpsRequestGetsItsAnswer) {
  TlsFixture f;
  f.Start();
  EXPECT_TRUE(f.server->Url().starts_with("https://127.0.0.1:")) << f.server->Url();
  auto ctx = f.ClientContext();
  int version = 0;
  auto res = HttpsGet(f.server->Port(), *ctx, "/hello", &version);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res.body(), "hello");
  EXPECT_GE(version, TLS1_2_VERSION);
  // The server's own errors come over TLS too.
  auto missing = HttpsGet(f.server->Port(), *ctx, "/nope", nullptr);
  ASSERT_EQ(missing.result_int(), 404u) << missing.body();
  EXPECT_EQ(Json::parse(missing.body())["error"]["code"], "not_found");
  EXPECT_EQ(f.server->Stats().tls_handshake_failures, 0u);
}

TEST(Tls, WssSubscriberGetsPublishedEvents) {
  TlsFixture f;
  f.Start();
  auto ctx = f.ClientContext();
  net::io_context ioc;
  beast::websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, *ctx);
  ASSERT_EQ(ConnectTls(ws.next_layer(), f.server->Port()), "");
  beast::get_lowest_layer(ws).expires_never();
  ws.set_option(beast::websocket::stream_base::timeout::suggested(beast::role_type::client));
  beast::error_code ec;
  ws.handshake("127.0.0.1", "/ws?subscribe=blocks", ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(WaitFor([&] { return f.server->Stats().ws_subscribers == 1; }, kGuardMs));

  EXPECT_EQ(f.server->Publish("blocks", R"({"height":7})"), 1u);
  beast::flat_buffer buffer;
  ws.read(buffer, ec);
  ASSERT_FALSE(ec) << ec.message();
  Json event = Json::parse(beast::buffers_to_string(buffer.data()));
  EXPECT_EQ(event["topic"], "blocks");
  EXPECT_EQ(event["data"]["height"], 7);

  // Commands are answered over the same TLS stream.
  buffer.consume(buffer.size());
  ws.write(net::buffer(std::string(R"({"subscribe":"txs"})")), ec);
  ASSERT_FALSE(ec) << ec.message();
  ws.read(buffer, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(beast::buffers_to_string(buffer.data()), R"({"subscribed":"txs"})");
}

TEST(Tls, PlainHttpToTheTlsPortIsClosedAndTheServerServesOn) {
  TlsFixture f;
  f.Start();
  RawConn raw(f.server->Port());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.Send("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  bool closed = false;
  std::string reply = raw.ReadUntilClose(kGuardMs, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(reply.find("hello"), std::string::npos) << reply;
  EXPECT_FALSE(reply.starts_with("HTTP/1.1 200")) << reply;
  ASSERT_TRUE(WaitFor([&] { return f.server->Stats().tls_handshake_failures == 1; }, kGuardMs));
  EXPECT_NE(f.registry.Render().find("gpunet_rpc_tls_handshake_failures_total 1"),
            std::string::npos);

  auto ctx = f.ClientContext();
  auto res = HttpsGet(f.server->Port(), *ctx, "/hello", nullptr);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res.body(), "hello");
}

TEST(Tls, ClientsBelowTls12AreRefused) {
  TlsFixture f;
  f.Start();
  auto ctx = f.ClientContext();
  // The client would speak TLS 1.1 at most, with nothing of its own in the way.
  SSL_CTX_set_security_level(ctx->native_handle(), 0);
  ASSERT_EQ(SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_1_VERSION), 1);
  auto res = HttpsGet(f.server->Port(), *ctx, "/hello", nullptr);
  EXPECT_EQ(res.result_int(), 0u) << "an old-TLS client was served: " << res.body();
  ASSERT_TRUE(WaitFor([&] { return f.server->Stats().tls_handshake_failures == 1; }, kGuardMs));
}

TEST(Tls, TheLimitsHoldOverTls) {
  ServerOptions opt;
  opt.body_bytes_max = 1024;
  opt.read_timeout_ms = 300;
  TlsFixture f(opt);
  f.server->Handle("POST", "/echo", [](const Request& r) {
    return Response{200, "text/plain", r.body};
  });
  f.Start();
  auto ctx = f.ClientContext();

  // A body over the limit: 413, read by the client before the connection goes.
  http::request<http::string_body> big(http::verb::post, "/echo", 11);
  big.body() = std::string(256 * 1024, 'x');
  auto res = HttpsExchange(f.server->Port(), *ctx, std::move(big), nullptr);
  ASSERT_EQ(res.result_int(), 413u) << res.body();
  EXPECT_EQ(Json::parse(res.body())["error"]["code"], "limit_exceeded");

  // A connection that never starts its handshake is cut at the read timeout.
  RawConn stalled(f.server->Port());
  ASSERT_TRUE(stalled.connected());
  bool closed = false;
  EXPECT_EQ(stalled.ReadUntilClose(kGuardMs, &closed), "");
  EXPECT_TRUE(closed) << "a connection without a handshake was kept past the read timeout";
  ASSERT_TRUE(WaitFor([&] { return f.server->Stats().tls_handshake_failures == 1; }, kGuardMs));

  http::request<http::string_body> small(http::verb::post, "/echo", 11);
  small.body() = "within the limit";
  res = HttpsExchange(f.server->Port(), *ctx, std::move(small), nullptr);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res.body(), "within the limit");
}

TEST(Tls, AConnectionOverTheAddressCapIsClosedWithoutAnAnswer) {
  ServerOptions opt;
  opt.connections_per_address_max = 1;
  opt.per_address_exempt_loopback = false;
  TlsFixture f(opt);
  f.Start();
  auto ctx = f.ClientContext();

  // The first connection from 127.0.0.1 completes its handshake and stays open.
  net::io_context ioc;
  beast::ssl_stream<beast::tcp_stream> first(ioc, *ctx);
  ASSERT_EQ(ConnectTls(first, f.server->Port()), "");

  // A second one is closed before any handshake: the client's fails.
  net::io_context ioc2;
  beast::ssl_stream<beast::tcp_stream> second(ioc2, *ctx);
  const std::string err = ConnectTls(second, f.server->Port());
  EXPECT_TRUE(err.starts_with("handshake: ")) << "a connection over the cap: '" << err << "'";
  // Nor is any plaintext answer written onto the socket.
  RawConn raw(f.server->Port());
  ASSERT_TRUE(raw.connected());
  bool closed = false;
  EXPECT_EQ(raw.ReadUntilClose(kGuardMs, &closed), "");
  EXPECT_TRUE(closed);
  ASSERT_TRUE(WaitFor([&] { return f.server->Stats().rejected_per_address == 2; }, kGuardMs));
  EXPECT_NE(f.registry.Render().find("gpunet_rpc_rejected_per_address_total 2"), std::string::npos);
  EXPECT_EQ(f.server->Stats().tls_handshake_failures, 0u);

  // The first connection is still served.
  http::request<http::string_body> req(http::verb::get, "/hello", 11);
  req.set(http::field::host, "127.0.0.1");
  beast::error_code ec;
  http::write(first, req, ec);
  ASSERT_FALSE(ec) << ec.message();
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(first, buffer, res, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "hello");
}

/// Start()'s error for a TLS server with these files.
base::Error StartError(const std::string& certificate_file, const std::string& key_file) {
  ServerOptions opt;
  opt.tls = TlsOptions{certificate_file, key_file};
  HttpServer server(opt);
  auto st = server.Start();
  EXPECT_FALSE(st) << "started with " << certificate_file << " and " << key_file;
  return st ? base::Error{base::ErrorCode::kInternal, "started"} : st.error();
}

void ExpectMention(const base::Error& e, const std::string& text) {
  EXPECT_NE(e.message.find(text), std::string::npos) << e.ToString();
}

TEST(Tls, UnusableCertificateOrKeyFailsAtStartWithAClearError) {
  gpunet::testing::TempDir dir;
  const CertAndKey a = MakeSelfSigned();
  const CertAndKey b = MakeSelfSigned();
  const std::string cert = dir.Sub("a-cert.pem");
  const std::string key = dir.Sub("a-key.pem");
  const std::string other_key = dir.Sub("b-key.pem");
  const std::string garbage = dir.Sub("garbage.pem");
  WriteFile(cert, a.certificate_pem);
  WriteFile(key, a.key_pem);
  WriteFile(other_key, b.key_pem);
  WriteFile(garbage, "not a certificate\n");

  base::Error e = StartError(dir.Sub("absent.pem"), key);
  EXPECT_EQ(e.code, base::ErrorCode::kIo);
  ExpectMention(e, "certificate file " + dir.Sub("absent.pem"));
  ExpectMention(e, "No such file");

  e = StartError(cert, dir.Sub("absent-key.pem"));
  EXPECT_EQ(e.code, base::ErrorCode::kIo);
  ExpectMention(e, "private key file " + dir.Sub("absent-key.pem"));

  if (::geteuid() != 0) {  // root reads any file
    const std::string locked = dir.Sub("locked.pem");
    WriteFile(locked, a.key_pem);
    ASSERT_EQ(::chmod(locked.c_str(), 0), 0);
    e = StartError(cert, locked);
    EXPECT_EQ(e.code, base::ErrorCode::kIo);
    ExpectMention(e, "Permission denied");
  }

  e = StartError(garbage, key);
  EXPECT_EQ(e.code, base::ErrorCode::kInvalidArgument);
  ExpectMention(e, garbage + " holds no usable PEM certificate");

  e = StartError(cert, cert);  // the certificate given as the key
  EXPECT_EQ(e.code, base::ErrorCode::kInvalidArgument);
  ExpectMention(e, cert + " holds no usable PEM private key");

  e = StartError(cert, other_key);
  EXPECT_EQ(e.code, base::ErrorCode::kInvalidArgument);
  ExpectMention(
      e, "the TLS private key in " + other_key + " does not match the certificate in " + cert);

  e = StartError(cert, "");
  EXPECT_EQ(e.code, base::ErrorCode::kInvalidArgument);
  ExpectMention(e, "no private key file is given");

  // The right pair starts.
  ServerOptions opt;
  opt.tls = TlsOptions{cert, key};
  HttpServer server(opt);
  auto st = server.Start();
  EXPECT_TRUE(st) << st.error().ToString();
}

}  // namespace
}  // namespace gpunet::server

namespace gpunet::server {
namespace {

TEST(Tls, AKeyGivenAsPemServesWithoutItsFile) {
  gpunet::testing::TempDir dir;
  CertAndKey pair = MakeSelfSigned();
  WriteFile(dir.Sub("cert.pem"), pair.certificate_pem);
  ServerOptions opt;
  // The file named does not exist: the PEM given is what must be used.
  opt.tls = TlsOptions{dir.Sub("cert.pem"), dir.Sub("absent-key.pem"), pair.key_pem};
  HttpServer server(std::move(opt));
  server.Handle("GET", "/hello", [](const Request&) { return Response{200, "text/plain", "hi"}; });
  auto st = server.Start();
  ASSERT_TRUE(st) << st.error().ToString();
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->add_certificate_authority(net::buffer(pair.certificate_pem));
  ctx->set_verify_mode(ssl::verify_peer);
  auto res = HttpsGet(server.Port(), *ctx, "/hello", nullptr);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res.body(), "hi");

  // Another key's PEM is refused at start, naming the file it stands for.
  ServerOptions wrong;
  wrong.tls = TlsOptions{dir.Sub("cert.pem"), "key-from-parent", MakeSelfSigned().key_pem};
  HttpServer refused(std::move(wrong));
  auto bad = refused.Start();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("key-from-parent"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace gpunet::server
