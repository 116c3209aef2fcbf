#include "client/http_client.h"

#include <charconv>
#include <chrono>
#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "base/check.h"

namespace gpunet::client {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using base::ErrorCode;
using base::Fail;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr uint16_t kDefaultPort = 26657;
constexpr std::string_view kStartHint = " — is `gpunet node` or `gpunet devnet` running?";

/// Runs the io_context until `done` or the deadline; false on the deadline.
bool RunUntil(net::io_context& ioc, const bool& done, SteadyClock::time_point deadline) {
  while (!done) {
    if (SteadyClock::now() >= deadline) return false;
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_until(deadline);
  }
  return true;
}

base::Error ConnectError(const beast::error_code& ec, const std::string& url, int64_t timeout_ms) {
  if (ec == beast::error::timeout) {
    return {ErrorCode::kUnavailable, "cannot reach the node at " + url + ": no answer within " +
                                         std::to_string(timeout_ms) +
                                         " ms — check the address, and that the node is up"};
  }
  return {ErrorCode::kUnavailable,
          "cannot reach the node at " + url + ": " + ec.message() + std::string(kStartHint)};
}

/// Resolves and connects the lowest layer with a deadline.
base::Status ConnectStream(net::io_context& ioc, beast::tcp_stream& stream, const NodeUrl& url,
                           int64_t timeout_ms) {
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) {
    return Fail(ErrorCode::kUnavailable,
                "cannot resolve \"" + url.host + "\" in " + url.base + ": " + ec.message());
  }
  bool done = false;
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  stream.async_connect(endpoints, [&](beast::error_code cec, const tcp::endpoint&) {
    ec = cec;
    done = true;
  });
  if (ioc.stopped()) ioc.restart();
  ioc.run();
  GPUNET_CHECK(done);
  if (ec) return std::unexpected(ConnectError(ec, url.base, timeout_ms));
  return base::Ok();
}

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

base::Result<NodeUrl> ParseNodeUrl(std::string_view url) {
  std::string_view rest = url;
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidArgument, "node URL \"" + std::string(url) + "\" " +
                                                 std::string(why) +
                                                 "; expected http://HOST:PORT, e.g. "
                                                 "http://127.0.0.1:26657");
  };
  std::string lower = LowerAscii(rest.substr(0, std::min<size_t>(rest.size(), 8)));
  if (lower.starts_with("https://")) return bad("uses https, which the node RPC does not serve");
  if (!lower.starts_with("http://")) return bad("does not start with http://");
  rest.remove_prefix(7);
  if (rest.ends_with("/")) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("has a path");
  NodeUrl out;
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    out.host = std::string(rest);
    out.port = kDefaultPort;
  } else {
    out.host = std::string(rest.substr(0, colon));
    std::string_view port = rest.substr(colon + 1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return bad("has a bad port");
    }
    out.port = static_cast<uint16_t>(value);
  }
  if (out.host.empty()) return bad("has no host");
  out.base = "http://" + out.host + ":" + std::to_string(out.port);
  return out;
}

base::Error ErrorFromResponse(const HttpResponse& response) {
  Json body = Json::parse(response.body, nullptr, false);
  std::string code_name;
  std::string message;
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const Json& e = body["error"];
    if (e.contains("code") && e["code"].is_string()) code_name = e["code"].get<std::string>();
    if (e.contains("message") && e["message"].is_string()) {
      message = e["message"].get<std::string>();
    }
  }
  if (message.empty()) {
    message = "the node answered HTTP " + std::to_string(response.status) + ": " +
              response.body.substr(0, 200);
  }
  for (uint16_t i = 1; i < 64; ++i) {
    auto code = static_cast<ErrorCode>(i);
    if (!code_name.empty() && base::ErrorCodeName(code) == code_name) return {code, message};
  }
  int s = response.status;
  ErrorCode code = s == 404               ? ErrorCode::kNotFound
                   : s == 409             ? ErrorCode::kConflict
                   : s == 413 || s == 431 ? ErrorCode::kLimitExceeded
                   : s == 408 || s == 504 ? ErrorCode::kTimeout
                   : s == 503             ? ErrorCode::kUnavailable
                   : s >= 400 && s < 500  ? ErrorCode::kInvalidArgument
                                          : ErrorCode::kInternal;
  return {code, message};
}

// ---------------------------------------------------------------------------
// HttpClient

HttpClient::HttpClient(std::string url, HttpClientOptions options)
    : m_url(std::move(url)), m_options(options) {}

base::Result<HttpResponse> HttpClient::Get(std::string_view path_and_query) {
  return Request("GET", path_and_query, {}, {});
}

base::Result<HttpResponse> HttpClient::Post(std::string_view path, std::string_view json_body) {
  return Request("POST", path, json_body, "application/json");
}

// Over 70 lines on purpose: the whole exchange on one io_context, so the lifetimes of
// the stream, the parser and what the handlers capture are seen in one place.
// NOLINTNEXTLINE(readability-function-size)
base::Result<HttpResponse> HttpClient::Request(std::string_view method, std::string_view target,
                                               std::string_view body,
                                               std::string_view content_type) {
  auto url = ParseNodeUrl(m_url);
  if (!url) return std::unexpected(url.error());
  http::verb verb = http::string_to_verb(beast::string_view(method.data(), method.size()));
  if (verb == http::verb::unknown) {
    return Fail(ErrorCode::kInvalidArgument, "unknown HTTP method \"" + std::string(method) + "\"");
  }
  if (!target.starts_with("/")) {
    return Fail(ErrorCode::kInvalidArgument,
                "request path \"" + std::string(target) + "\" must start with /");
  }
  std::string what = std::string(method) + " " + std::string(target.substr(0, target.find('?')));

  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  GPUNET_TRY(ConnectStream(ioc, stream, *url, m_options.connect_timeout_ms));

  http::request<http::string_body> req{verb, std::string(target), 11};
  req.set(http::field::host, url->host + ":" + std::to_string(url->port));
  req.set(http::field::user_agent, "gpunet");
  if (!content_type.empty()) req.set(http::field::content_type, std::string(content_type));
  req.body() = std::string(body);
  req.keep_alive(false);
  req.prepare_payload();

  // Write and read at once: a node that refuses the request early (413) answers
  // before it has read the whole body, and that answer is what the user needs.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(m_options.response_bytes_max);
  parser.header_limit(64 * 1024);
  beast::error_code write_ec, read_ec;
  bool read_done = false;
  stream.expires_after(std::chrono::milliseconds(m_options.request_timeout_ms));
  http::async_write(stream, req, [&](beast::error_code ec, size_t) { write_ec = ec; });
  http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
    read_ec = ec;
    read_done = true;
    stream.cancel();  // a write still pushing a refused body is moot now
  });
  ioc.restart();
  ioc.run();
  GPUNET_CHECK(read_done);

  if (read_ec == beast::error::timeout) {
    return Fail(ErrorCode::kTimeout, "the node at " + url->base + " did not answer " + what +
                                         " within " + std::to_string(m_options.request_timeout_ms) +
                                         " ms — it may be busy or stuck; retry, or allow more "
                                         "time");
  }
  if (read_ec == http::error::body_limit) {
    return Fail(ErrorCode::kLimitExceeded, "the node's answer to " + what + " is over " +
                                               std::to_string(m_options.response_bytes_max) +
                                               " bytes");
  }
  if (read_ec) {
    std::string detail = read_ec.message();
    if (write_ec && write_ec != net::error::operation_aborted) detail = write_ec.message();
    return Fail(ErrorCode::kUnavailable, "the node at " + url->base +
                                             " closed the connection "
                                             "before answering " +
                                             what + " (" + detail +
                                             ") — it may have stopped; check its log");
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  auto& res = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  out.content_type = std::string(res[http::field::content_type]);
  out.body = std::move(res.body());
  return out;
}

// ---------------------------------------------------------------------------
// WsSubscriber

// The largest event frame the subscriber takes.
constexpr size_t kWsEventBytesMax = 128 * 1024 * 1024;

struct WsSubscriber::Impl {
  std::string url;
  net::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
  // A read stays pending across a timed-out Next(), so no frame is lost.
  bool read_pending = false;
  bool read_done = false;
  beast::error_code read_ec;
  std::deque<std::string> backlog;  // events that arrived while awaiting a reply
  std::optional<base::Error> closed;

  // The node's last message before it hangs up: {"closing":{"code","reason"}}.
  std::optional<std::string> closing_reason;

  base::Result<std::string> ReadFrame(int64_t timeout_ms) {
    for (;;) {
      auto frame = ReadOneFrame(timeout_ms);
      if (!frame) return frame;
      Json j = Json::parse(*frame, nullptr, false);
      if (!j.is_object() || !j.contains("closing") || !j["closing"].is_object()) return frame;
      const Json& c = j["closing"];
      std::string why = c.contains("reason") && c["reason"].is_string()
                            ? c["reason"].get<std::string>()
                            : std::string("no reason given");
      if (c.contains("code") && c["code"].is_number_integer())
        why += " (code " + std::to_string(c["code"].get<int>()) + ")";
      closing_reason = why;  // the connection ends next; say why then
    }
  }

  base::Result<std::string> ReadOneFrame(int64_t timeout_ms) {
    if (closed) return std::unexpected(*closed);
    if (!read_pending) {
      read_pending = true;
      read_done = false;
      ws.async_read(buffer, [this](beast::error_code ec, size_t) {
        read_ec = ec;
        read_done = true;
      });
    }
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    if (!RunUntil(ioc, read_done, deadline)) {
      return Fail(ErrorCode::kTimeout, "no message from the node at " + url + " within " +
                                           std::to_string(timeout_ms) + " ms");
    }
    read_pending = false;
    if (read_ec) {
      std::string why;
      // A close frame may arrive and our answer to it fail (the node already hung
      // up): the reason is still what the user needs.
      if (closing_reason) {
        why = "the node closed the subscription: " + *closing_reason;
      } else if (read_ec == websocket::error::closed ||
                 ws.reason().code != websocket::close_code::none) {
        why = "the node closed the subscription";
        const auto& reason = ws.reason();
        if (!reason.reason.empty()) why += ": " + std::string(reason.reason.c_str());
        why += " (code " + std::to_string(static_cast<int>(reason.code)) + ")";
      } else {
        why = "lost the connection to the node at " + url + ": " + read_ec.message();
      }
      closed = base::Error{ErrorCode::kUnavailable, why};
      return std::unexpected(*closed);
    }
    std::string text = beast::buffers_to_string(buffer.data());
    buffer.consume(buffer.size());
    return text;
  }

  base::Status WriteFrame(std::string_view text, int64_t timeout_ms) {
    if (closed) return std::unexpected(*closed);
    bool done = false;
    beast::error_code ec;
    ws.text(true);
    ws.async_write(net::buffer(text.data(), text.size()), [&](beast::error_code wec, size_t) {
      ec = wec;
      done = true;
    });
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    if (!RunUntil(ioc, done, deadline)) {
      // The write cannot be abandoned half-done: drop the connection.
      beast::error_code ignored;
      beast::get_lowest_layer(ws).socket().close(ignored);
      closed = base::Error{ErrorCode::kTimeout, "the node at " + url +
                                                    " did not take a message "
                                                    "within " +
                                                    std::to_string(timeout_ms) + " ms"};
      return std::unexpected(*closed);
    }
    if (ec) {
      closed = base::Error{ErrorCode::kUnavailable,
                           "lost the connection to the node at " + url + ": " + ec.message()};
      return std::unexpected(*closed);
    }
    return base::Ok();
  }

  /// Reads until a frame that is not an event (a reply); events go to the backlog.
  base::Result<std::string> ReadReply(int64_t timeout_ms) {
    auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      auto frame = ReadFrame(std::max<int64_t>(left.count(), 1));
      if (!frame) return frame;
      Json j = Json::parse(*frame, nullptr, false);
      if (j.is_object() && j.contains("topic")) {
        backlog.push_back(std::move(*frame));
        continue;
      }
      return frame;
    }
  }
};

WsSubscriber::WsSubscriber(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

WsSubscriber::~WsSubscriber() {
  // Close politely if we can do it quickly; otherwise just drop the socket.
  Impl& s = *m_impl;
  if (!s.closed && s.ws.is_open()) {
    bool done = false;
    s.ws.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
    RunUntil(s.ioc, done, SteadyClock::now() + std::chrono::milliseconds(500));
  }
  beast::error_code ignored;
  beast::get_lowest_layer(s.ws).socket().close(ignored);
}

base::Result<std::unique_ptr<WsSubscriber>> WsSubscriber::Connect(
    std::string_view url_text, const std::vector<std::string>& topics, int64_t timeout_ms,
    std::string_view path) {
  auto url = ParseNodeUrl(url_text);
  if (!url) return std::unexpected(url.error());
  auto impl = std::make_unique<Impl>();
  impl->url = url->base;
  auto& lowest = beast::get_lowest_layer(impl->ws);
  GPUNET_TRY(ConnectStream(impl->ioc, lowest, *url, timeout_ms));
  // A "txs" event carries a whole block's txs in one frame (up to 10,000 txs with
  // their receipts' events): more than Beast's 16 MiB default may allow.
  impl->ws.read_message_max(kWsEventBytesMax);

  std::string target(path);
  for (size_t i = 0; i < topics.size(); ++i) {
    target += (i == 0 ? "?subscribe=" : ",") + topics[i];
  }
  websocket::response_type res;
  beast::error_code ec;
  bool done = false;
  lowest.expires_after(std::chrono::milliseconds(timeout_ms));
  impl->ws.async_handshake(res, url->host + ":" + std::to_string(url->port), target,
                           [&](beast::error_code hec) {
                             ec = hec;
                             done = true;
                           });
  impl->ioc.restart();
  impl->ioc.run();
  GPUNET_CHECK(done);
  lowest.expires_never();
  if (ec == websocket::error::upgrade_declined) {
    HttpResponse refused{static_cast<int>(res.result_int()), "", res.body()};
    base::Error e = ErrorFromResponse(refused);
    return Fail(e.code, "the node at " + url->base + " refused the subscription: " + e.message);
  }
  if (ec == beast::error::timeout) {
    return Fail(ErrorCode::kTimeout, "the node at " + url->base +
                                         " did not complete the websocket handshake within " +
                                         std::to_string(timeout_ms) + " ms");
  }
  if (ec) {
    return Fail(ErrorCode::kUnavailable,
                "websocket handshake with " + url->base + " failed: " + ec.message());
  }
  return std::unique_ptr<WsSubscriber>(new WsSubscriber(std::move(impl)));
}

base::Status WsSubscriber::Subscribe(std::string_view topic, int64_t timeout_ms) {
  auto reply = SendCommand(Json{{"subscribe", topic}}.dump(), timeout_ms);
  if (!reply) return std::unexpected(reply.error());
  Json j = Json::parse(*reply, nullptr, false);
  if (j.is_object() && j.contains("subscribed") && j["subscribed"] == topic) return base::Ok();
  return std::unexpected(ErrorFromResponse(HttpResponse{400, "", *reply}));
}

base::Result<std::string> WsSubscriber::SendCommand(std::string_view text, int64_t timeout_ms) {
  GPUNET_TRY(m_impl->WriteFrame(text, timeout_ms));
  return m_impl->ReadReply(timeout_ms);
}

base::Result<WsEvent> WsSubscriber::Next(int64_t timeout_ms) {
  std::string frame;
  if (!m_impl->backlog.empty()) {
    frame = std::move(m_impl->backlog.front());
    m_impl->backlog.pop_front();
  } else {
    auto read = m_impl->ReadFrame(timeout_ms);
    if (!read) return std::unexpected(read.error());
    frame = std::move(*read);
  }
  Json j = Json::parse(frame, nullptr, false);
  if (!j.is_object() || !j.contains("topic") || !j["topic"].is_string() || !j.contains("data")) {
    return Fail(ErrorCode::kCorrupt,
                "unexpected message from the node at " + m_impl->url + ": " + frame.substr(0, 200));
  }
  return WsEvent{j["topic"].get<std::string>(), j["data"].dump()};
}

}  // namespace gpunet::client
