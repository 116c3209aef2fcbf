#include "server/http_session.h"

#include <algorithm>
#include <optional>
#include <type_traits>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "base/check.h"
#include "server/relay_session.h"
#include "server/ws_session.h"

namespace gpunet::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

struct Responder::State {
  std::shared_ptr<ResponderControl> control;
  std::weak_ptr<HttpSessionBase> session;
  std::atomic<bool> answered{false};
  SteadyClock::time_point started;
  std::string counted_address;  // its key in pending_by_address; empty: not counted
};

namespace {

std::string PercentDecode(std::string_view in, bool* ok) {
  std::string out;
  *ok = true;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      if (i + 2 >= in.size()) {
        *ok = false;
        return {};
      }
      int hi = hex(in[i + 1]);
      int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) {
        *ok = false;
        return {};
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

/// Splits "a=1&b=x%20y" into a map. Fails on a bad escape or a repeated key.
base::Result<std::map<std::string, std::string>> ParseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    bool ok_key = true, ok_value = true;
    std::string key = PercentDecode(pair.substr(0, eq), &ok_key);
    std::string value = eq == std::string_view::npos
                            ? std::string()
                            : PercentDecode(pair.substr(eq + 1), &ok_value);
    if (!ok_key || !ok_value) {
      return base::Fail(base::ErrorCode::kInvalidArgument,
                        "bad percent-escape in query parameter \"" + std::string(pair) +
                            "\"; escape as %XX with two hex digits");
    }
    if (key.empty()) {
      return base::Fail(base::ErrorCode::kInvalidArgument,
                        "query parameter without a name: \"" + std::string(pair) + "\"");
    }
    if (!out.emplace(key, std::move(value)).second) {
      return base::Fail(base::ErrorCode::kInvalidArgument,
                        "query parameter \"" + key + "\" is given twice; give it once");
    }
  }
  return out;
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// Stream: beast::tcp_stream for plain HTTP, TlsStream for HTTPS. Timeouts are the
// tcp_stream's (Lowest()) either way; TLS adds a handshake before the first request.
template <class Stream>
class HttpSession final : public HttpSessionBase {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  /// stream_args: the accepted socket, then for TLS the server's context.
  template <class... StreamArgs>
  HttpSession(HttpServer::Impl& server, Peer peer, StreamArgs&&... stream_args)
      : HttpSessionBase(std::move(peer)),
        m_server(server),
        m_stream(std::forward<StreamArgs>(stream_args)...),
        m_executor(m_stream.get_executor()) {}

  void Run() override {
    net::dispatch(m_executor, [self = Self()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->WaitForRequest();
      }
    });
  }

  // Posts go to m_executor, never m_stream's: after an upgrade the stream has been
  // moved into the websocket (a moved-from TlsStream has no executor) while the
  // session may still be in the server's books for a moment.
  void Shutdown() override {
    net::post(m_executor, [self = Self()] {
      // A request still arriving has not been accepted yet: cut it. One being
      // handled or written finishes and then closes (keep-alive is off now).
      if (self->m_phase == Phase::kIdle || self->m_phase == Phase::kReading) self->Close();
    });
  }

  void PostDeliver(OutResponse out, SteadyClock::time_point started) override {
    net::post(m_executor, [self = Self(), out = std::move(out), started]() mutable {
      if (self->m_phase != Phase::kHandling) return;
      self->m_started = started;
      self->Write(std::move(out));
    });
  }

  std::shared_ptr<HttpSession> Self() {
    return std::static_pointer_cast<HttpSession>(shared_from_this());
  }

 private:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kDraining, kClosed };

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(m_stream); }

  /// first_bytes_timeout_ms, or read_timeout_ms when it is unset.
  int64_t FirstBytesTimeoutMs() const {
    return m_server.opt.first_bytes_timeout_ms > 0 ? m_server.opt.first_bytes_timeout_ms
                                                   : m_server.opt.read_timeout_ms;
  }

  // A client must finish the TLS handshake within first_bytes_timeout_ms, as it must
  // send a request: a trickled handshake is a slow-loris too. One that fails (a
  // plain-HTTP client on the TLS port, TLS below 1.2, garbage) is closed and counted.
  void Handshake() {
    Lowest().expires_after(std::chrono::milliseconds(FirstBytesTimeoutMs()));
    m_stream.async_handshake(net::ssl::stream_base::server, [self = Self()](beast::error_code ec) {
      if (ec) {
        if (!self->m_server.stopping.load()) self->m_server.CountTlsHandshakeFailure();
        return self->Close();
      }
      self->WaitForRequest();
    });
  }

  void WaitForRequest() {
    if (m_phase == Phase::kClosed) return;
    if (m_server.stopping.load()) return Close();
    m_phase = Phase::kIdle;
    m_parser.emplace();
    m_parser->header_limit(static_cast<uint32_t>(m_server.opt.header_bytes_max));
    m_parser->body_limit(m_server.opt.body_bytes_max);
    if (m_buffer.size() > 0) return StartRead();  // pipelined request already here
    // A new connection gets first_bytes_timeout_ms to send its first byte; a
    // kept-alive one may sit idle longer.
    int64_t wait_ms = m_first ? FirstBytesTimeoutMs() : m_server.opt.idle_timeout_ms;
    Lowest().expires_after(std::chrono::milliseconds(wait_ms));
    m_stream.async_read_some(m_buffer.prepare(4096),
                             [self = Self()](beast::error_code ec, size_t n) {
                               self->m_buffer.commit(n);
                               if (ec || n == 0) return self->Close();
                               self->StartRead();
                             });
  }

  void StartRead() {
    if (m_phase == Phase::kClosed) return;
    m_phase = Phase::kReading;
    m_started = SteadyClock::now();
    // One deadline for the whole request: trickling bytes does not extend it.
    m_deadline = m_started + std::chrono::milliseconds(m_server.opt.read_timeout_ms);
    Lowest().expires_at(m_deadline);
    http::async_read_header(m_stream, m_buffer, *m_parser,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto& req = m_parser->get();
    if (websocket::is_upgrade(req)) return Upgrade();
    if (req[http::field::expect] == "100-continue" && !m_parser->is_done()) {
      // curl and others wait for this before sending a body.
      Lowest().expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
      net::async_write(m_stream, net::buffer(kContinue.data(), kContinue.size()),
                       [self = Self()](beast::error_code wec, size_t) {
                         if (wec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (m_parser->is_done()) return Dispatch();
    Lowest().expires_at(m_deadline);
    http::async_read(m_stream, m_buffer, *m_parser, [self = Self()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      self->Dispatch();
    });
  }

  void OnReadError(beast::error_code ec) {
    const ServerOptions& opt = m_server.opt;
    if (m_server.stopping.load() || ec == net::error::operation_aborted) return Close();
    if (ec == beast::error::timeout) {
      return WriteError(408, "timeout",
                        "the request did not arrive within " + std::to_string(opt.read_timeout_ms) +
                            " ms; send the whole request at once");
    }
    if (ec == http::error::body_limit) {
      return WriteError(413, "limit_exceeded",
                        "the request body is over the " + std::to_string(opt.body_bytes_max) +
                            "-byte limit; send less (one transaction per request)");
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, "limit_exceeded",
                        "the request line and headers are over the " +
                            std::to_string(opt.header_bytes_max) +
                            "-byte limit; send fewer or "
                            "shorter headers");
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::bad_method).category()) {
      return Close();  // the peer went away or the socket failed: nobody to answer
    }
    WriteError(400, "invalid_argument",
               "malformed HTTP request (" + ec.message() + "); send HTTP/1.1 with a JSON body");
  }

  void WriteError(int status, std::string_view code, const std::string& message) {
    OutResponse out{JsonError(status, code, message), {}, true};
    Write(std::move(out));
  }

  // Over 70 lines: parse, route, admit against the pending caps and run the handler share
  // the session's parser and counters; one ordered sequence.
  // NOLINTNEXTLINE(readability-function-size)
  void Dispatch() {
    auto& msg = m_parser->get();
    std::string_view target(msg.target().data(), msg.target().size());
    if (target.empty() || target.front() != '/') {
      return WriteError(
          400, "invalid_argument",
          "request target \"" + std::string(target) + "\" must be a path starting with /");
    }
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(target);
    for (const auto& field : msg)
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    size_t qpos = target.find('?');
    req.path = std::string(target.substr(0, qpos));
    if (qpos != std::string_view::npos) {
      auto query = ParseQuery(target.substr(qpos + 1));
      if (!query) {
        return WriteError(400, "invalid_argument", query.error().message);
      }
      req.query = std::move(*query);
    }
    m_keep_alive = msg.keep_alive();
    m_upgrade_asked.clear();
    if (msg.version() == 11 && http::token_list{msg[http::field::connection]}.exists("upgrade"))
      m_upgrade_asked = std::string(msg[http::field::upgrade]);
    req.content_type = std::string(msg[http::field::content_type]);
    req.body = std::move(msg.body());
    req.remote_address = GetPeer().address;
    req.per_address_exempt = GetPeer().exempt;

    std::string allow;
    bool path_known = false;
    const Route* route = m_server.FindRoute(req.method, req.path, &allow, &path_known);
    if (!path_known) {
      return Write(
          {JsonError(404, "not_found",
                     "no endpoint " + req.path + "; see docs/rpc.md for the endpoint list"),
           {},
           false});
    }
    if (route == nullptr) {
      return Write({JsonError(405, "method_not_allowed",
                              req.method + " is not allowed on " + req.path + "; use " + allow),
                    allow, false});
    }
    if (route->prefix) req.path_rest = req.path.substr(route->path.size());

    auto control = m_server.control;
    if (control->pending.fetch_add(1) >= m_server.opt.pending_requests_max) {
      control->pending.fetch_sub(1);
      return Write(
          {JsonError(503, "unavailable",
                     "the node is busy (" + std::to_string(m_server.opt.pending_requests_max) +
                         " requests in progress); retry shortly"),
           {},
           false});
    }
    auto state = std::make_shared<Responder::State>();
    if (!CountPendingForPeer(*control, &state->counted_address)) {
      control->pending.fetch_sub(1);
      const size_t cap = m_server.opt.pending_requests_per_address_max;
      return Write({JsonError(429, "limit_exceeded",
                              m_server.PerAddressRefusal(GetPeer(), "requests in progress", cap)),
                    {},
                    false});
    }
    m_phase = Phase::kHandling;
    state->control = control;
    state->session = Self();
    state->started = m_started;
    net::post(*m_server.pool, [route, state, req = std::move(req)]() mutable {
      Responder responder(state);
      try {
        if (route->sync) {
          responder.Respond(route->sync(req));
        } else {
          route->async(std::move(req), std::move(responder));
        }
      } catch (const std::exception& e) {
        // Handlers should return errors, not throw; the client still gets an answer.
        // (An async handler that threw destroyed its Responder, which answered 500.)
        if (!state->answered.load()) {
          responder.Respond(JsonError(500, "internal", std::string("handler failed: ") + e.what()));
        }
      }
    });
  }

  // Counts one more pending request for this peer unless it is at its cap; sets
  // *counted to the address counted (left empty for an exempt peer).
  bool CountPendingForPeer(ResponderControl& control, std::string* counted) {
    if (GetPeer().exempt) return true;
    base::MutexLock lock(control.mu);
    size_t& pending = control.pending_by_address[GetPeer().address];
    if (pending >= m_server.opt.pending_requests_per_address_max) {
      if (pending == 0) control.pending_by_address.erase(GetPeer().address);
      return false;
    }
    ++pending;
    *counted = GetPeer().address;
    return true;
  }

  void Upgrade() {
    auto& req = m_parser->get();
    std::string_view target(req.target().data(), req.target().size());
    size_t qpos = target.find('?');
    std::string path(target.substr(0, qpos));
    if (path != m_server.opt.ws_path) {
      return WriteError(
          404, "not_found",
          "no websocket endpoint at " + path + "; connect to " + m_server.opt.ws_path);
    }
    std::set<std::string> topics;
    if (qpos != std::string_view::npos) {
      auto query = ParseQuery(target.substr(qpos + 1));
      if (!query) return WriteError(400, "invalid_argument", query.error().message);
      for (const auto& [key, value] : *query) {
        if (key != "subscribe") {
          return WriteError(400, "invalid_argument",
                            "unknown parameter \"" + key + "\"; use ?subscribe=blocks,txs");
        }
        std::string_view list = value;
        while (!list.empty()) {
          size_t comma = list.find(',');
          std::string topic(list.substr(0, comma));
          list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
          if (!m_server.topics.contains(topic)) {
            std::string known;
            for (const auto& t : m_server.topics) known += (known.empty() ? "" : ", ") + t;
            return WriteError(400, "invalid_argument",
                              "unknown topic \"" + topic + "\"; topics are: " + known);
          }
          topics.insert(topic);
        }
      }
    }
    // Checked and registered on different strands: two upgrades racing may both
    // pass; the cap is exceeded by at most the io_threads racing at once.
    if (m_server.WebsocketsOf(GetPeer()) >= m_server.opt.ws_per_address_max) {
      return WriteError(
          429, "limit_exceeded",
          m_server.PerAddressRefusal(GetPeer(), "websockets", m_server.opt.ws_per_address_max));
    }
    m_phase = Phase::kClosed;
    StartWsSession(m_server, GetPeer(), std::move(m_stream), std::move(topics),
                   m_parser->release());
    auto self = Self();
    m_server.Unregister(this);
  }

  /// Whether the request asked to switch to `protocol` (HTTP/1.1, Connection: Upgrade,
  /// the protocol among the Upgrade header's comma-separated entries, compared without
  /// case; an entry is name["/"version], which Beast's token_list would cut at '/').
  bool UpgradeAsked(std::string_view protocol) const {
    std::string_view list = m_upgrade_asked;
    while (!list.empty()) {
      const size_t comma = list.find(',');
      std::string_view entry = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t'))
        entry.remove_prefix(1);
      while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t'))
        entry.remove_suffix(1);
      if (beast::iequals(beast::string_view(entry.data(), entry.size()),
                         beast::string_view(protocol.data(), protocol.size())))
        return true;
    }
    return false;
  }

  // A handler's UpgradeResponse: the 101, then the connection becomes a relay. A
  // request that did not ask for the protocol gets 426 (and the target is dropped:
  // its descriptor closed, its on_end run).
  void WriteUpgrade(std::shared_ptr<UpgradeTarget> target) {
    const std::string protocol = target->Protocol();
    if (!UpgradeAsked(protocol)) {
      target.reset();
      Response refusal = JsonError(
          426, "upgrade_required",
          "this endpoint switches the connection to " + protocol +
              ": send the request over HTTP/1.1 with Connection: Upgrade and Upgrade: " + protocol);
      refusal.headers.emplace_back("Upgrade", protocol);
      return Write({std::move(refusal), {}, false});
    }
    if (m_server.stopping.load()) {
      target.reset();
      return WriteError(503, "unavailable", "the server is shutting down; connect again later");
    }
    m_phase = Phase::kWriting;
    auto head = std::make_shared<const std::string>(
        "HTTP/1.1 101 Switching Protocols\r\nServer: gpunet\r\nUpgrade: " + protocol +
        "\r\nConnection: Upgrade\r\n\r\n");
    m_server.CountResponse(101, m_started);
    Lowest().expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
    net::async_write(m_stream, net::buffer(*head),
                     [self = Self(), head, target](beast::error_code ec, size_t) mutable {
                       if (ec) return self->Close();
                       self->StartRelay(std::move(target));
                     });
  }

  void StartRelay(std::shared_ptr<UpgradeTarget> target) {
    if (m_phase == Phase::kClosed) return;
    m_phase = Phase::kClosed;
    std::string leftover = beast::buffers_to_string(m_buffer.data());
    m_buffer.consume(m_buffer.size());
    StartRelaySession(m_server, GetPeer(), std::move(m_stream), std::move(leftover),
                      std::move(target));
    auto self = Self();
    m_server.Unregister(this);
  }

  void Write(OutResponse out) {
    if (m_phase == Phase::kClosed) return;
    if (out.response.upgrade) return WriteUpgrade(std::move(out.response.upgrade));
    m_phase = Phase::kWriting;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(out.response.status));
    res->set(http::field::server, "gpunet");
    res->set(http::field::content_type, out.response.content_type);
    if (!out.allow.empty()) res->set(http::field::allow, out.allow);
    for (const auto& [name, value] : out.response.headers) res->set(name, value);
    res->body() = std::move(out.response.body);
    bool close = out.close || !m_keep_alive || m_server.stopping.load();
    res->keep_alive(!close);
    res->prepare_payload();
    m_server.CountResponse(out.response.status, m_started);
    Lowest().expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
    http::async_write(m_stream, *res, [self = Self(), res, close](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (close) return self->Drain();
      self->m_first = false;
      self->WaitForRequest();
    });
  }

  // After a closing response: stop sending, then read and discard what the client
  // still sends (an oversized body) for a short while. Closing with unread data
  // would reset the connection and could destroy the response before the client
  // reads it.
  // Over TLS the stop is TCP's too, without a close_notify: a TLS shutdown fails on
  // the application data the client is still sending (its body), which resets the
  // connection. Every response carries its length, so nothing is lost to truncation.
  void Drain() {
    m_phase = Phase::kDraining;
    beast::error_code ignored;
    RawSocket(Lowest()).shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(
        std::chrono::milliseconds(std::min<int64_t>(m_server.opt.read_timeout_ms, 2000)));
    DrainMore();
  }
  void DrainMore() {
    m_buffer.consume(m_buffer.size());
    m_stream.async_read_some(m_buffer.prepare(16 * 1024),
                             [self = Self()](beast::error_code ec, size_t n) {
                               if (ec) return self->Close();
                               self->m_buffer.commit(n);
                               self->DrainMore();
                             });
  }

  void Close() {
    if (m_phase == Phase::kClosed) return;
    m_phase = Phase::kClosed;
    beast::error_code ignored;
    tcp::socket& socket = RawSocket(Lowest());
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    auto self = Self();  // keep alive past Unregister
    m_server.Unregister(this);
  }

  HttpServer::Impl& m_server;
  Stream m_stream;
  const net::any_io_executor m_executor;  ///< the connection's strand
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::string_body>> m_parser;
  Phase m_phase = Phase::kIdle;
  bool m_first = true;
  bool m_keep_alive = true;
  std::string m_upgrade_asked;  ///< the request's Upgrade header, when it asked for one
  SteadyClock::time_point m_started{};
  SteadyClock::time_point m_deadline{};
};

}  // namespace

std::shared_ptr<HttpSessionBase> NewHttpSession(HttpServer::Impl& server, Peer peer,
                                                tcp::socket socket) {
  if (server.tls != nullptr) {
    return std::make_shared<HttpSession<TlsStream>>(server, std::move(peer), std::move(socket),
                                                    *server.tls);
  }
  return std::make_shared<HttpSession<beast::tcp_stream>>(server, std::move(peer),
                                                          std::move(socket));
}

Responder::Responder(std::shared_ptr<State> state) : m_state(std::move(state)) {
  GPUNET_CHECK(m_state != nullptr);
}
Responder::Responder(Responder&&) noexcept = default;
Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (m_state && !m_state->answered) {
      Respond(JsonError(500, "internal", "the handler dropped the request without answering"));
    }
    m_state = std::move(other.m_state);
  }
  return *this;
}

Responder::~Responder() {
  if (m_state && !m_state->answered) {
    Respond(JsonError(500, "internal", "the handler dropped the request without answering"));
  }
}

void Responder::Respond(Response response) {
  GPUNET_CHECK(m_state != nullptr);                 // moved-from Responder
  GPUNET_CHECK(!m_state->answered.exchange(true));  // a request is answered once
  ResponderControl& control = *m_state->control;
  base::MutexLock lock(control.mu);
  control.pending.fetch_sub(1);
  if (!m_state->counted_address.empty()) {
    auto it = control.pending_by_address.find(m_state->counted_address);
    GPUNET_CHECK(it != control.pending_by_address.end() && it->second >= 1);
    if (--it->second == 0) control.pending_by_address.erase(it);
  }
  if (!control.alive) return;
  std::shared_ptr<HttpSessionBase> session = m_state->session.lock();
  if (!session) return;
  auto started = m_state->started;
  session->PostDeliver(OutResponse{std::move(response), {}, false}, started);
}

}  // namespace gpunet::server
