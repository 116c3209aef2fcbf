#include "client/tenant_client.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "base/check.h"
#include "crypto/address.h"

namespace gpunet::client {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using base::ErrorCode;
using base::Fail;

namespace {

/// SHA-256 of the DER SubjectPublicKeyInfo of `cert`.
std::optional<base::Hash32> SpkiSha256(X509* cert) {
  EVP_PKEY* key = cert == nullptr ? nullptr : X509_get0_pubkey(cert);
  if (key == nullptr) return std::nullopt;
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return std::nullopt;
  base::Hash32 out;
  unsigned int out_len = 0;
  const int ok =
      EVP_Digest(der, static_cast<size_t>(len), out.begin(), &out_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1 || out_len != base::Hash32::kSize) return std::nullopt;
  return out;
}

/// What the handshake's verify callback saw of the server's own certificate.
struct PinCheck {
  base::Hash32 expected;
  std::optional<base::Hash32> seen;
  bool matched = false;
};

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// Runs one asynchronous operation on `ioc` to its end; its error.
template <class Start>
beast::error_code Run(net::io_context& ioc, Start&& start) {
  beast::error_code result = net::error::would_block;
  start([&result](beast::error_code ec) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

std::string PinMessage(const TenantClientOptions& o, const std::optional<base::Hash32>& seen) {
  return "the tenant API at " + o.url + " presented a TLS key whose SHA-256 SPKI fingerprint is " +
         (seen ? base::ToHex(*seen) : std::string("unreadable")) + ", but the ledger holds " +
         base::ToHex(o.spki_sha256) + " for provider " + crypto::AddressToString(o.scope.provider) +
         ": a man-in-the-middle is possible, so nothing was sent. Compare the ledger's "
         "tls_fingerprint (`gpunet provider show " +
         crypto::AddressToString(o.scope.provider) +
         " --output json`) with the provider's own key (docs/tenant-api.md \"Checking a "
         "fingerprint\"); a provider that rotated its key must publish the new fingerprint "
         "on the ledger first (\"Key rotation\")";
}

std::string Where(const TenantClientOptions& o, std::string_view method, std::string_view target) {
  return std::string(method) + " " + o.url + std::string(target.substr(0, target.find('?')));
}

}  // namespace

std::optional<std::string_view> TenantResponse::Header(std::string_view name) const {
  const std::string wanted = LowerAscii(name);
  for (const auto& [key, value] : headers)
    if (LowerAscii(key) == wanted) return std::string_view(value);
  return std::nullopt;
}

base::Result<TenantApiUrl> ParseTenantApiUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidArgument,
                "tenant API URL \"" + std::string(url) + "\" " + std::string(why) +
                    "; expected https://HOST:PORT, e.g. https://gpu.example.com:8443");
  };
  if (!LowerAscii(url.substr(0, std::min<size_t>(url.size(), 8))).starts_with("https://"))
    return bad("does not start with https://");
  std::string_view rest = url.substr(8);
  if (rest.ends_with("/")) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("has a path");
  TenantApiUrl out;
  std::string_view port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '['");
    out.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty() && !rest.starts_with(":")) return bad("has text after ']'");
    port = rest.empty() ? "" : rest.substr(1);
  } else {
    const size_t colon = rest.rfind(':');
    out.host = std::string(rest.substr(0, colon));
    port = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
  }
  if (out.host.empty()) return bad("has no host");
  // A name or IPv4 address: letters, digits, '-', '.'; an IPv6 one (in brackets): hex
  // digits, ':', '.'. Nothing else, so the URL has one reading.
  const bool v6_form = url.substr(8).starts_with("[");
  for (char c : out.host) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    const bool name = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.';
    if (v6_form ? !(hex || c == ':' || c == '.') : !name) return bad("has a bad host");
  }
  if (!port.empty() || rest.ends_with(":")) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
        value > 65535)
      return bad("has a bad port");
    out.port = static_cast<uint16_t>(value);
  }
  out.base =
      "https://" + (v6_form ? "[" + out.host + "]" : out.host) + ":" + std::to_string(out.port);
  return out;
}

TenantClient::TenantClient(TenantClientOptions options, const crypto::KeyPair& key,
                           std::optional<DelegationGrant> grant)
    : m_options(std::move(options)), m_key(key), m_grant(grant) {}

base::Result<TenantResponse> TenantClient::Get(std::string_view target) {
  return Send("GET", target, {}, {}, true, nullptr);
}

base::Result<TenantResponse> TenantClient::Post(std::string_view target, std::string_view body,
                                                std::string_view content_type) {
  return Send("POST", target, body, content_type, true, nullptr);
}

base::Result<TenantResponse> TenantClient::Put(std::string_view target, std::string_view body,
                                               const HeaderList& extra) {
  return Send("PUT", target, body, "application/octet-stream", true, nullptr, extra);
}

base::Result<TenantResponse> TenantClient::GetUnsigned(std::string_view target) {
  return Send("GET", target, {}, {}, false, nullptr);
}

base::Result<TenantResponse> TenantClient::Download(std::string_view target,
                                                    const std::string& path) {
  return Send("GET", target, {}, {}, true, &path);
}

/// One connection's stream, context and pin, kept together for their lifetimes (the
/// verify callback holds `this`: an Exchange never moves).
struct TenantClient::Exchange {
  explicit Exchange(const base::Hash32& expected) : ctx(ssl::context::tls_client) {
    pin.expected = expected;
    GPUNET_CHECK(SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) == 1);
    // The ledger's pin is the only trust: no CA is asked, and the pin is checked inside
    // the handshake, so a wrong key fails it before any request byte is written.
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.set_verify_callback([this](bool, ssl::verify_context& vc) {
      X509_STORE_CTX* sc = vc.native_handle();
      if (X509_STORE_CTX_get_error_depth(sc) != 0) return true;
      pin.seen = SpkiSha256(X509_STORE_CTX_get_current_cert(sc));
      pin.matched = pin.seen && *pin.seen == pin.expected;
      return pin.matched;
    });
    stream.emplace(ioc, ctx);
  }

  PinCheck pin;
  net::io_context ioc;
  ssl::context ctx;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;  ///< what was read past the answer's header stays here
  http::response_parser<http::empty_body> head;
};

base::Result<HeaderList> TenantClient::AuthHeaders(std::string_view method, std::string_view target,
                                                   std::string_view body) const {
  const base::Clock& clock =
      m_options.clock != nullptr ? *m_options.clock : base::SystemClock::Instance();
  const RequestLine line{method, target, BodyHash(body)};
  return SignTenantRequest(m_options.scope, m_key, m_grant ? &*m_grant : nullptr, line,
                           static_cast<uint64_t>(clock.NowMs()), RandomNonce());
}

base::Result<std::unique_ptr<TenantClient::Exchange>> TenantClient::Connect(
    const TenantApiUrl& url) const {
  auto ex = std::make_unique<Exchange>(m_options.spki_sha256);
  auto& stream = *ex->stream;
  auto& lowest = beast::get_lowest_layer(stream);
  beast::error_code ec;
  if (net::ip::make_address(url.host, ec); ec)  // SNI for names, never for addresses
    SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
  tcp::resolver resolver(ex->ioc);
  auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) return Fail(ErrorCode::kUnavailable, "cannot resolve " + url.host + ": " + ec.message());
  lowest.expires_after(std::chrono::milliseconds(m_options.connect_timeout_ms));
  ec = Run(ex->ioc, [&](auto done) {
    lowest.async_connect(endpoints, [done](beast::error_code e, const tcp::endpoint&) { done(e); });
  });
  if (ec)
    return Fail(ErrorCode::kUnavailable, "cannot reach the tenant API at " + url.base + ": " +
                                             ec.message() + " — is the provider's daemon running?");
  ec = Run(ex->ioc, [&](auto done) { stream.async_handshake(ssl::stream_base::client, done); });
  if (ex->pin.seen.has_value() && !ex->pin.matched)
    return Fail(ErrorCode::kPermissionDenied, PinMessage(m_options, ex->pin.seen));
  if (ec)
    return Fail(ErrorCode::kUnavailable,
                "TLS handshake with the tenant API at " + url.base + " failed: " + ec.message());
  // Belt and braces: the key the session ended up with is the pinned one.
  const auto peer = SpkiSha256(SSL_get0_peer_certificate(stream.native_handle()));
  if (!peer || *peer != m_options.spki_sha256)
    return Fail(ErrorCode::kPermissionDenied, PinMessage(m_options, peer));
  return ex;
}

base::Result<TenantResponse> TenantClient::RequestHead(
    Exchange& ex, const TenantApiUrl& url, std::string_view method, std::string_view target,
    std::string_view body, const HeaderList& headers, bool upgrade) const {
  const std::string what = Where(m_options, method, target);
  auto& stream = *ex.stream;
  auto& lowest = beast::get_lowest_layer(stream);
  const http::verb verb = http::string_to_verb(beast::string_view(method.data(), method.size()));
  http::request<http::string_body> req{verb, std::string(target), 11};
  req.set(http::field::host, url.host + ":" + std::to_string(url.port));
  req.set(http::field::user_agent, "gpunet");
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::string(body);
  if (!upgrade) req.keep_alive(false);
  req.prepare_payload();
  lowest.expires_after(std::chrono::milliseconds(m_options.request_timeout_ms));
  beast::error_code ec = Run(ex.ioc, [&](auto done) {
    http::async_write(stream, req, [done](beast::error_code e, size_t) { done(e); });
  });
  if (ec) return Fail(ErrorCode::kUnavailable, what + ": sending failed: " + ec.message());
  // Beast checks a Content-Length against the limit as the header is parsed: the
  // header's parser has none, and each reader of the body checks its own.
  ex.head.body_limit(std::numeric_limits<std::uint64_t>::max());
  ec = Run(ex.ioc, [&](auto done) {
    http::async_read_header(stream, ex.buffer, ex.head,
                            [done](beast::error_code e, size_t) { done(e); });
  });
  if (ec) return Fail(ErrorCode::kUnavailable, what + ": no answer: " + ec.message());
  TenantResponse out;
  out.status = static_cast<int>(ex.head.get().result_int());
  out.content_type = std::string(ex.head.get()[http::field::content_type]);
  for (const auto& field : ex.head.get())
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  return out;
}

base::Status TenantClient::ReadBody(Exchange& ex, std::string_view what,
                                    TenantResponse& out) const {
  auto& stream = *ex.stream;
  const bool too_long = ex.head.content_length().value_or(0) > m_options.response_bytes_max;
  http::response_parser<http::string_body> text(std::move(ex.head));
  text.body_limit(m_options.response_bytes_max);
  beast::error_code ec;
  if (!too_long) {
    ec = Run(ex.ioc, [&](auto done) {
      http::async_read(stream, ex.buffer, text, [done](beast::error_code e, size_t) { done(e); });
    });
  }
  if (too_long || ec == http::error::body_limit)
    return Fail(ErrorCode::kLimitExceeded, std::string(what) + ": the answer is larger than " +
                                               std::to_string(m_options.response_bytes_max) +
                                               " bytes");
  if (ec)
    return Fail(ErrorCode::kUnavailable,
                std::string(what) + ": reading the answer failed: " + ec.message());
  out.body = std::move(text.get().body());
  return base::Ok();
}

base::Status TenantClient::ReadFile(Exchange& ex, std::string_view what,
                                    const std::string& path) const {
  auto& stream = *ex.stream;
  auto& lowest = beast::get_lowest_layer(stream);
  const std::string part = path + ".part";
  if (ex.head.content_length().value_or(0) > m_options.download_bytes_max)
    return Fail(ErrorCode::kLimitExceeded, std::string(what) + ": the file is larger than " +
                                               std::to_string(m_options.download_bytes_max) +
                                               " bytes");
  http::response_parser<http::file_body> file(std::move(ex.head));
  file.body_limit(m_options.download_bytes_max);
  beast::error_code ec;
  file.get().body().open(part.c_str(), beast::file_mode::write, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot write " + part + ": " + ec.message());
  while (!ec && !file.is_done()) {
    lowest.expires_after(std::chrono::milliseconds(m_options.request_timeout_ms));
    ec = Run(ex.ioc, [&](auto done) {
      http::async_read_some(stream, ex.buffer, file,
                            [done](beast::error_code e, size_t) { done(e); });
    });
  }
  file.get().body().close();
  if (!ec && std::rename(part.c_str(), path.c_str()) != 0)
    ec = beast::error_code(errno, beast::system_category());
  if (ec) {
    std::remove(part.c_str());
    return Fail(ec == http::error::body_limit ? ErrorCode::kLimitExceeded : ErrorCode::kUnavailable,
                std::string(what) + ": download to " + path + " failed: " + ec.message());
  }
  return base::Ok();
}

namespace {

/// The upgraded TLS connection: one thread runs the connection's io_context, and
/// Read and Write post their operations to it and wait, so the TLS stream is only
/// ever touched there (asio's ssl::stream allows one read and one write at once, from
/// one thread).
class TlsByteStream final : public ByteStream {
 public:
  explicit TlsByteStream(std::unique_ptr<TenantClient::Exchange> ex, net::io_context& ioc,
                         beast::ssl_stream<beast::tcp_stream>& stream, std::string early)
      : m_ex(std::move(ex)),
        m_ioc(ioc),
        m_stream(stream),
        m_early(std::move(early)),
        m_work(net::make_work_guard(ioc)) {
    beast::get_lowest_layer(m_stream).expires_never();  // a session has no idle timeout
    m_ioc.restart();
    m_thread = std::thread([this] { m_ioc.run(); });
  }
  ~TlsByteStream() override { Close(); }

  base::Result<size_t> Read(std::span<uint8_t> out) override {
    if (!m_early.empty()) {
      const size_t n = std::min(out.size(), m_early.size());
      std::copy_n(m_early.begin(), n, out.begin());
      m_early.erase(0, n);
      return n;
    }
    if (m_closed) return Fail(ErrorCode::kUnavailable, "the session's connection is closed");
    std::promise<std::pair<beast::error_code, size_t>> done;
    auto result = done.get_future();
    net::post(m_ioc, [&] {
      m_stream.async_read_some(net::buffer(out.data(), out.size()),
                               [&](beast::error_code ec, size_t n) {
                                 done.set_value({ec, n});
                               });
    });
    const auto [ec, n] = result.get();
    // The relay ends its side with close_notify, or by closing the TCP connection.
    if (ec == net::error::eof || ec == ssl::error::stream_truncated) return size_t{0};
    if (ec) return Fail(ErrorCode::kUnavailable, "the session's connection broke: " + ec.message());
    return n;
  }

  base::Status Write(std::string_view bytes) override {
    std::promise<beast::error_code> done;
    auto result = done.get_future();
    if (!Post([&] {
          net::async_write(m_stream, net::buffer(bytes.data(), bytes.size()),
                           [&](beast::error_code ec, size_t) { done.set_value(ec); });
        }))
      return Fail(ErrorCode::kUnavailable, "the session's connection is closed");
    if (const auto ec = result.get())
      return Fail(ErrorCode::kUnavailable, "the session's connection broke: " + ec.message());
    return base::Ok();
  }

  void Close() override {
    {
      std::lock_guard lock(m_post_mutex);
      if (m_closed) return;
      m_closed = true;
    }
    // Closing the socket ends a read or write that waits (operation_aborted); what was
    // posted before runs first, so no caller waits on an operation that never starts.
    net::post(m_ioc, [this] {
      beast::error_code ignored;
      beast::get_lowest_layer(m_stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(m_stream).socket().close(ignored);
    });
    m_work.reset();
    if (m_thread.joinable()) m_thread.join();
  }

 private:
  /// Posts `op` unless the stream is closed (then false).
  template <class Op>
  bool Post(Op&& op) {
    std::lock_guard lock(m_post_mutex);
    if (m_closed) return false;
    net::post(m_ioc, std::forward<Op>(op));
    return true;
  }

  std::unique_ptr<TenantClient::Exchange> m_ex;  ///< owns the stream and the io_context
  net::io_context& m_ioc;
  beast::ssl_stream<beast::tcp_stream>& m_stream;
  std::string m_early;  ///< bytes that came with the 101's header, read first
  net::executor_work_guard<net::io_context::executor_type> m_work;
  std::mutex m_post_mutex;
  bool m_closed = false;  ///< guarded by m_post_mutex
  std::thread m_thread;
};

}  // namespace

base::Result<TenantUpgrade> TenantClient::Upgrade(std::string_view target,
                                                  std::string_view protocol) {
  GPUNET_TRY_ASSIGN(const TenantApiUrl url, ParseTenantApiUrl(m_options.url));
  GPUNET_TRY(CheckRequestTarget(target));
  const std::string what = Where(m_options, "GET", target);
  GPUNET_TRY_ASSIGN(HeaderList headers, AuthHeaders("GET", target, {}));
  headers.emplace_back("Connection", "Upgrade");
  headers.emplace_back("Upgrade", std::string(protocol));
  GPUNET_TRY_ASSIGN(auto ex, Connect(url));
  TenantUpgrade out;
  GPUNET_TRY_ASSIGN(out.response, RequestHead(*ex, url, "GET", target, {}, headers, true));
  if (out.response.status != 101) {
    GPUNET_TRY(ReadBody(*ex, what, out.response));
    return out;
  }
  const auto upgrade = out.response.Header("Upgrade");
  if (!upgrade || LowerAscii(*upgrade) != LowerAscii(protocol))
    return Fail(ErrorCode::kCorrupt, what + ": the provider switched to protocol \"" +
                                         std::string(upgrade.value_or("")) + "\", not " +
                                         std::string(protocol));
  const auto early = ex->buffer.data();
  std::string bytes(static_cast<const char*>(early.data()), early.size());
  auto& ioc = ex->ioc;
  auto& stream = *ex->stream;
  out.stream = std::make_unique<TlsByteStream>(std::move(ex), ioc, stream, std::move(bytes));
  return out;
}

base::Result<TenantResponse> TenantClient::Send(std::string_view method, std::string_view target,
                                                std::string_view body,
                                                std::string_view content_type, bool sign,
                                                const std::string* download_path,
                                                const HeaderList& extra) {
  GPUNET_TRY_ASSIGN(const TenantApiUrl url, ParseTenantApiUrl(m_options.url));
  GPUNET_TRY(CheckRequestMethod(method));
  GPUNET_TRY(CheckRequestTarget(target));
  const std::string what = Where(m_options, method, target);
  HeaderList headers;
  if (sign) {
    GPUNET_TRY_ASSIGN(headers, AuthHeaders(method, target, body));
  }
  if (!content_type.empty()) headers.emplace_back("Content-Type", std::string(content_type));
  headers.insert(headers.end(), extra.begin(), extra.end());
  GPUNET_TRY_ASSIGN(auto ex, Connect(url));
  GPUNET_TRY_ASSIGN(TenantResponse out, RequestHead(*ex, url, method, target, body, headers));
  if (download_path != nullptr && out.status == 200) {
    GPUNET_TRY(ReadFile(*ex, what, *download_path));
    return out;
  }
  GPUNET_TRY(ReadBody(*ex, what, out));
  return out;
}

}  // namespace gpunet::client
