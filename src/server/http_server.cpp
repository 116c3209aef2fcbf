#include "server/http_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "server/metrics.h"

namespace gpunet::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// JSON helpers

namespace {

std::string DumpJson(const Json& value) {
  // Messages may quote client bytes (a path, a topic): never throw on bad UTF-8.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  return DumpJson(Json{{"error", {{"code", code}, {"message", message}}}});
}

}  // namespace

Response JsonError(int status, std::string_view code, std::string_view message) {
  return Response{status, "application/json", ErrorBody(code, message)};
}

int HttpStatusFor(base::ErrorCode code) {
  using base::ErrorCode;
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorrupt:
    case ErrorCode::kNonCanonical:
    case ErrorCode::kBadSignature:
    case ErrorCode::kLimitExceeded:
    case ErrorCode::kOverflow:
    case ErrorCode::kUnsupported:
    case ErrorCode::kWrongPassphrase:
      return 400;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

Response ErrorResponse(const base::Error& error) {
  return JsonError(HttpStatusFor(error.code), base::ErrorCodeName(error.code), error.message);
}

Response JsonResponse(const nlohmann::json& value, int status) {
  return Response{status, "application/json", DumpJson(value)};
}

base::Result<nlohmann::json> ParseJsonBody(const Request& request) {
  if (request.body.empty()) {
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "the request body is empty; send a JSON object");
  }
  Json value;
  try {
    value = Json::parse(request.body);
  } catch (const Json::parse_error& e) {
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!value.is_object()) {
    return base::Fail(
        base::ErrorCode::kInvalidArgument,
        std::string("the request body must be a JSON object, not ") + value.type_name());
  }
  return value;
}

// ---------------------------------------------------------------------------
// Server internals

namespace {

struct Route {
  std::string method;
  std::string path;
  bool prefix = false;
  Handler sync;
  AsyncHandler async;
};

/// Shared between the server and every Responder: lets a Responder that outlives
/// the server (kept by the node past Stop) find out it must not touch the sockets.
struct ResponderControl {
  std::mutex mu;
  bool alive = true;
  std::atomic<size_t> pending{0};  // requests handed to handlers and not yet answered
  // The same per peer address, for the peers the per-address caps apply to; an
  // address leaves the map when its count drops to zero. Under mu.
  std::map<std::string, size_t> pending_by_address;
};

/// Who is at the other end of a connection, for the per-address caps.
struct Peer {
  std::string address;  // PeerAddressKey: IPv4 (mapped ones too) or an IPv6 /64
  bool exempt = false;  // no per-address caps (a loopback peer, when so configured)
};

class HttpSession;

struct OutResponse {
  Response response;
  std::string allow;  // for 405
  bool close = false;
};

class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  explicit SessionBase(Peer peer) : m_peer(std::move(peer)) {}
  virtual ~SessionBase() = default;
  /// Server is stopping: close if idle, finish if busy. Any thread.
  virtual void Shutdown() = 0;
  virtual bool IsWebsocket() const { return false; }
  const Peer& GetPeer() const { return m_peer; }

 private:
  const Peer m_peer;
};

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

/// An IPv4-mapped IPv6 address as its IPv4 address; any other as it is.
net::ip::address Unmapped(const net::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
  return address;
}

std::string AddressKey(const net::ip::address& peer) {
  const net::ip::address address = Unmapped(peer);
  if (address.is_v4() || address.is_loopback()) return address.to_string();
  net::ip::address_v6::bytes_type bytes = address.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);  // the /64 prefix
  return net::ip::address_v6(bytes).to_string() + "/64";
}

Peer PeerOf(const net::ip::address& address, bool exempt_loopback) {
  return Peer{AddressKey(address), exempt_loopback && Unmapped(address).is_loopback()};
}

}  // namespace

base::Result<std::string> PeerAddressKey(std::string_view address) {
  beast::error_code ec;
  const net::ip::address parsed = net::ip::make_address(std::string(address), ec);
  if (ec)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "'" + std::string(address) + "' is not an IP address");
  return AddressKey(parsed);
}

struct Responder::State {
  std::shared_ptr<ResponderControl> control;
  std::weak_ptr<HttpSession> session;
  std::atomic<bool> answered{false};
  SteadyClock::time_point started;
  std::string counted_address;  // its key in pending_by_address; empty: not counted
};

struct HttpServer::Impl {
  explicit Impl(ServerOptions o) : opt(std::move(o)) {
    GPUNET_CHECK(opt.io_threads >= 1 && opt.worker_threads >= 1);
    GPUNET_CHECK(opt.read_timeout_ms > 0 && opt.idle_timeout_ms > 0 && opt.write_timeout_ms > 0);
    GPUNET_CHECK(opt.ws_queue_messages_max >= 1 && opt.ws_queue_bytes_max >= 1 &&
                 opt.connections_max >= 1);
    GPUNET_CHECK(opt.connections_per_address_max >= 1 && opt.ws_per_address_max >= 1 &&
                 opt.pending_requests_per_address_max >= 1);
    GPUNET_CHECK(opt.ws_unsubscribed_timeout_ms > 0);
    if (opt.metrics != nullptr) {
      auto& m = *opt.metrics;
      m_connections =
          &m.GetGauge("gpunet_rpc_connections", "Open RPC connections (HTTP and websocket).");
      m_ws_subscribers =
          &m.GetGauge("gpunet_rpc_ws_subscribers", "Open websocket subscriber connections.");
      m_rejected_metric = &m.GetCounter("gpunet_rpc_rejected_connections_total",
                                        "Connections refused because connections_max was reached.");
      m_per_address_metric =
          &m.GetCounter("gpunet_rpc_rejected_per_address_total",
                        "Connections, websocket upgrades and requests refused with 429 because "
                        "their peer address was at its cap.");
      m_slow_metric = &m.GetCounter("gpunet_rpc_ws_slow_disconnects_total",
                                    "Websocket subscribers cut because their send queue was full "
                                    "or a frame was not taken within the write timeout.");
      m_ws_sent_metric = &m.GetCounter("gpunet_rpc_ws_messages_sent_total",
                                       "Websocket messages written to subscribers.");
      m_latency = &m.GetHistogram("gpunet_rpc_request_duration_seconds",
                                  "Time from the first request byte to the response being queued.",
                                  metrics::LatencyBucketsSeconds());
    }
  }

  const Route* FindRoute(std::string_view method, std::string_view path, std::string* allow,
                         bool* path_known) const;
  void CountResponse(int status, SteadyClock::time_point started) {
    requests.fetch_add(1, std::memory_order_relaxed);
    if (opt.metrics != nullptr) {
      opt.metrics
          ->GetCounter("gpunet_rpc_requests_total", "HTTP responses by status code.",
                       {{"code", std::to_string(status)}})
          .Inc();
      if (started != SteadyClock::time_point{}) {
        m_latency->Observe(std::chrono::duration<double>(SteadyClock::now() - started).count());
      }
    }
  }

  void Register(std::shared_ptr<SessionBase> s) {
    std::lock_guard lock(sessions_mu);
    if (s->IsWebsocket()) ++ws_count;
    if (!s->GetPeer().exempt) {
      PeerCounts& counts = peers[s->GetPeer().address];
      ++counts.connections;
      if (s->IsWebsocket()) ++counts.websockets;
    }
    sessions.emplace(s.get(), std::move(s));
    UpdateGauges();
  }
  void Unregister(SessionBase* s) {
    std::shared_ptr<SessionBase> keep;  // destroyed after the lock is released
    {
      std::lock_guard lock(sessions_mu);
      auto it = sessions.find(s);
      if (it == sessions.end()) return;
      if (s->IsWebsocket()) --ws_count;
      if (!s->GetPeer().exempt) {
        auto peer = peers.find(s->GetPeer().address);
        GPUNET_CHECK(peer != peers.end() && peer->second.connections >= 1);
        --peer->second.connections;
        if (s->IsWebsocket()) --peer->second.websockets;
        if (peer->second.connections == 0) peers.erase(peer);
      }
      keep = std::move(it->second);
      sessions.erase(it);
      UpdateGauges();
    }
    sessions_cv.notify_all();
  }
  void UpdateGauges() {
    if (m_connections != nullptr) m_connections->Set(static_cast<double>(sessions.size()));
    if (m_ws_subscribers != nullptr) m_ws_subscribers->Set(static_cast<double>(ws_count));
  }

  /// A 429 for a peer over one of its per-address caps; counts it.
  std::string PerAddressRefusal(const Peer& peer, std::string_view what, size_t cap) {
    rejected_per_address.fetch_add(1, std::memory_order_relaxed);
    if (m_per_address_metric != nullptr) m_per_address_metric->Inc();
    return "your address " + peer.address + " has " + std::to_string(cap) + " " +
           std::string(what) + " open, its limit; close some or wait for them to finish";
  }
  /// Open websockets of a peer; 0 for an exempt one.
  size_t WebsocketsOf(const Peer& peer) const {
    std::lock_guard lock(sessions_mu);
    auto it = peers.find(peer.address);
    return peer.exempt || it == peers.end() ? 0 : it->second.websockets;
  }

  void DoAccept();
  void OnAccept(boost::system::error_code ec, tcp::socket socket);
  void Reject(tcp::socket socket, int status, const std::string& message);

  ServerOptions opt;
  std::vector<Route> routes;
  std::set<std::string> topics;

  mutable std::mutex sessions_mu;
  std::condition_variable sessions_cv;
  std::unordered_map<SessionBase*, std::shared_ptr<SessionBase>> sessions;
  size_t ws_count = 0;
  // Open sessions per peer address, for non-exempt peers; an address leaves the
  // map with its last connection, so its size is bounded by connections_max.
  struct PeerCounts {
    size_t connections = 0;
    size_t websockets = 0;
  };
  std::map<std::string, PeerCounts> peers;

  std::atomic<bool> stopping{false};
  std::mutex lifecycle_mu;
  bool started = false;
  bool stopped = false;
  uint16_t port = 0;

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> rejected_per_address{0};
  std::atomic<uint64_t> slow_disconnects{0};
  std::shared_ptr<ResponderControl> control = std::make_shared<ResponderControl>();

  metrics::Gauge* m_connections = nullptr;
  metrics::Gauge* m_ws_subscribers = nullptr;
  metrics::Counter* m_rejected_metric = nullptr;
  metrics::Counter* m_per_address_metric = nullptr;
  metrics::Counter* m_slow_metric = nullptr;
  metrics::Counter* m_ws_sent_metric = nullptr;
  metrics::Histogram* m_latency = nullptr;

  // Declared after everything sessions touch, so destroyed before it; sockets and
  // timers must die before the io_context, hence ioc first among these.
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_retry;
  std::optional<net::thread_pool> pool;
  std::vector<std::thread> io_threads;
};

const Route* HttpServer::Impl::FindRoute(std::string_view method, std::string_view path,
                                         std::string* allow, bool* path_known) const {
  // The most specific path first, whatever the method: an exact route, else the
  // longest prefix. Then the method among the routes of that path.
  const Route* match = nullptr;
  for (const Route& r : routes) {
    bool exact = !r.prefix && r.path == path;
    bool prefix = r.prefix && path.starts_with(r.path);
    if (!exact && !prefix) continue;
    bool better = match == nullptr || (exact && match->prefix) ||
                  (prefix && match->prefix && r.path.size() > match->path.size());
    if (better) match = &r;
  }
  *path_known = match != nullptr;
  if (match == nullptr) return nullptr;
  const Route* found = nullptr;
  std::set<std::string> methods;
  for (const Route& r : routes) {
    if (r.path != match->path || r.prefix != match->prefix) continue;
    methods.insert(r.method);
    if (r.method == method) found = &r;
  }
  for (const std::string& m : methods) {
    if (!allow->empty()) *allow += ", ";
    *allow += m;
  }
  return found;
}

// ---------------------------------------------------------------------------
// Websocket session

namespace {

class WsSession final : public SessionBase {
 public:
  // The websocket runs on the raw socket, not on the HTTP session's tcp_stream: the
  // websocket has its own timeouts, and Beast 1.74's closing handshake can overlap
  // a pending read, which a tcp_stream refuses with an assertion (pending_guard).
  WsSession(HttpServer::Impl& server, Peer peer, beast::tcp_stream&& stream,
            std::set<std::string> topics)
      : SessionBase(std::move(peer)),
        m_server(server),
        m_ws(stream.release_socket()),
        m_kill_timer(m_ws.get_executor()),
        m_write_timer(m_ws.get_executor()),
        m_unsubscribed_timer(m_ws.get_executor()),
        m_topics(std::move(topics)) {}

  bool IsWebsocket() const override { return true; }

  void Accept(http::request<http::string_body> req) {
    const ServerOptions& opt = m_server.opt;
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::milliseconds(opt.write_timeout_ms);
    t.idle_timeout = std::chrono::milliseconds(opt.ws_idle_timeout_ms);
    t.keep_alive_pings = true;
    m_ws.set_option(t);
    m_ws.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "gpunet"); }));
    m_ws.read_message_max(opt.ws_incoming_bytes_max);
    auto self = Self();
    m_ws.async_accept(req, [self](beast::error_code ec) { self->OnAccept(ec); });
  }

  /// Queues a frame if subscribed to `topic` (empty topic: always, for replies).
  /// Any thread; never blocks on the network.
  bool Enqueue(std::string_view topic, std::shared_ptr<const std::string> frame) {
    std::lock_guard lock(m_mu);
    if (m_closing) return false;
    if (!topic.empty() && !m_topics.contains(std::string(topic))) return false;
    const ServerOptions& opt = m_server.opt;
    const bool over_messages = m_queue.size() >= opt.ws_queue_messages_max;
    // Into an empty queue any frame goes (m_queue_bytes may then pass the cap).
    const bool over_bytes =
        !m_queue.empty() && m_queue_bytes + frame->size() > opt.ws_queue_bytes_max;
    if (over_messages || over_bytes) {
      m_closing = true;
      m_queue.clear();
      m_queue_bytes = 0;
      CountSlowDisconnect();
      std::string reason =
          "subscriber too slow: " +
          (over_messages ? std::to_string(opt.ws_queue_messages_max) + " messages"
                         : "over " + std::to_string(opt.ws_queue_bytes_max) + " bytes") +
          " queued; read faster or subscribe to fewer topics";
      net::post(m_ws.get_executor(), [self = Self(), reason] {
        self->CloseWith(websocket::close_code::policy_error, reason);
      });
      return false;
    }
    m_queue_bytes += frame->size();
    GPUNET_CHECK(m_queue_bytes <= opt.ws_queue_bytes_max || m_queue.empty());
    m_queue.push_back(std::move(frame));
    if (m_accepted && !m_writing) {
      m_writing = true;
      net::post(m_ws.get_executor(), [self = Self()] { self->WriteNext(); });
    }
    return true;
  }

  void Shutdown() override {
    net::post(m_ws.get_executor(), [self = Self()] {
      self->DropQueueAndClose(websocket::close_code::going_away, "the node is shutting down");
    });
  }

 private:
  std::shared_ptr<WsSession> Self() {
    return std::static_pointer_cast<WsSession>(shared_from_this());
  }

  void CountSlowDisconnect() {
    m_server.slow_disconnects.fetch_add(1, std::memory_order_relaxed);
    if (m_server.m_slow_metric != nullptr) m_server.m_slow_metric->Inc();
  }

  // On the strand, as a write starts: a peer that does not take the frame within
  // write_timeout_ms is cut (websocket writes have no timeout of their own, and a
  // peer that never reads would hold the connection and its frame forever).
  void ArmWriteTimer() {
    const uint64_t generation = ++m_write_generation;
    m_write_timer.expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
    m_write_timer.async_wait([self = Self(), generation](beast::error_code ec) {
      if (ec || generation != self->m_write_generation) return;  // the write ended
      self->CountSlowDisconnect();
      self->Finish();
    });
  }
  // On the strand, when a write ends.
  void DisarmWriteTimer() {
    ++m_write_generation;
    m_write_timer.cancel();
  }

  void OnAccept(beast::error_code ec) {
    if (ec) return Finish();
    bool subscribed = false;
    {
      std::lock_guard lock(m_mu);
      m_accepted = true;
      subscribed = !m_topics.empty();
      if (!m_queue.empty() && !m_writing && !m_closing) {
        m_writing = true;
        net::post(m_ws.get_executor(), [self = Self()] { self->WriteNext(); });
      }
    }
    if (!subscribed) ArmUnsubscribedTimer();
    ReadNext();
  }

  // On the strand. A websocket without a subscription costs a connection slot and
  // delivers nothing; pings would keep it forever, so it gets a deadline of its own
  // that only a subscription lifts.
  void ArmUnsubscribedTimer() {
    if (m_unsubscribed_armed) return;  // commands do not push the deadline back
    m_unsubscribed_armed = true;
    const uint64_t generation = ++m_unsubscribed_generation;
    m_unsubscribed_timer.expires_after(
        std::chrono::milliseconds(m_server.opt.ws_unsubscribed_timeout_ms));
    m_unsubscribed_timer.async_wait([self = Self(), generation](beast::error_code ec) {
      if (ec || generation != self->m_unsubscribed_generation) return;  // re-armed or lifted
      self->DropQueueAndClose(websocket::close_code::policy_error,
                              "no subscription for " +
                                  std::to_string(self->m_server.opt.ws_unsubscribed_timeout_ms) +
                                  " ms; subscribe to a topic (" + TopicList(self->m_server.topics) +
                                  ") right after connecting, or disconnect");
    });
  }
  void LiftUnsubscribedTimer() {
    m_unsubscribed_armed = false;
    ++m_unsubscribed_generation;
    m_unsubscribed_timer.cancel();
  }

  // On the strand: nothing queued is sent any more; the closing notice goes next.
  void DropQueueAndClose(websocket::close_code code, std::string reason) {
    {
      std::lock_guard lock(m_mu);
      m_closing = true;
      m_queue.clear();
      m_queue_bytes = 0;
    }
    CloseWith(code, std::move(reason));
  }

  void ReadNext() {
    m_ws.async_read(m_read_buffer,
                    [self = Self()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return Finish();  // closed by the peer, idle timeout, too large, or stopped
    std::string text = beast::buffers_to_string(m_read_buffer.data());
    m_read_buffer.consume(m_read_buffer.size());
    Reply(HandleCommand(text));
    ReadNext();
  }

  std::string HandleCommand(const std::string& text) {
    Json cmd = Json::parse(text, nullptr, false);
    std::string usage = "send {\"subscribe\":\"<topic>\"} or {\"unsubscribe\":\"<topic>\"}";
    if (cmd.is_discarded() || !cmd.is_object() || cmd.size() != 1) {
      return ErrorBody("invalid_argument", "not a command; " + usage);
    }
    auto [verb, arg] = *cmd.items().begin();
    bool subscribe = verb == "subscribe";
    if ((!subscribe && verb != "unsubscribe") || !arg.is_string()) {
      return ErrorBody("invalid_argument", "unknown command \"" + verb + "\"; " + usage);
    }
    std::string topic = arg.get<std::string>();
    if (!m_server.topics.contains(topic)) {
      return ErrorBody("not_found", "unknown topic \"" + topic +
                                        "\"; topics are: " + TopicList(m_server.topics));
    }
    bool subscribed = false;
    {
      std::lock_guard lock(m_mu);
      if (subscribe) {
        m_topics.insert(topic);
      } else {
        m_topics.erase(topic);
      }
      subscribed = !m_topics.empty();
    }
    // The deadline runs from when the last topic went, not from the connect.
    if (subscribed) {
      LiftUnsubscribedTimer();
    } else {
      ArmUnsubscribedTimer();
    }
    return DumpJson(Json{{subscribe ? "subscribed" : "unsubscribed", topic}});
  }

  void Reply(std::string text) {
    Enqueue({}, std::make_shared<const std::string>(std::move(text)));
  }

  void WriteNext() {
    std::shared_ptr<const std::string> frame;
    bool closing = false;
    {
      std::lock_guard lock(m_mu);
      closing = m_closing;
      if (closing || m_queue.empty()) {
        m_writing = false;
      } else {
        frame = m_queue.front();
        m_queue.pop_front();
        GPUNET_CHECK(m_queue_bytes >= frame->size());
        m_queue_bytes -= frame->size();
      }
    }
    if (!frame) {
      if (closing) AdvanceClose();  // a close waits for the write in flight to end
      return;
    }
    m_ws.text(true);
    ArmWriteTimer();
    m_ws.async_write(net::buffer(*frame), [self = Self(), frame](beast::error_code ec, size_t) {
      self->DisarmWriteTimer();
      if (ec) return self->Finish();
      if (self->m_server.m_ws_sent_metric != nullptr) {
        self->m_server.m_ws_sent_metric->Inc();
      }
      self->WriteNext();
    });
  }

  // On the strand. Starts the closing handshake with a reason; a peer that does not
  // take the close frame is cut when the kill timer fires.
  void CloseWith(websocket::close_code code, std::string reason) {
    if (m_finished || m_close_started) return;
    m_close_started = true;
    m_close_notice = std::make_shared<const std::string>(DumpJson(
        Json{{"closing", {{"code", static_cast<int>(code)}, {"reason", std::move(reason)}}}}));
    m_kill_timer.expires_after(
        std::chrono::milliseconds(std::min<int64_t>(m_server.opt.write_timeout_ms, 2000)));
    m_kill_timer.async_wait([self = Self()](beast::error_code ec) {
      if (!ec) self->Finish();
    });
    AdvanceClose();
  }

  // On the strand, after CloseWith and whenever a write of ours ends. The node does
  // not use Beast's closing handshake: in Boost.Beast 1.74, async_close while the
  // session's read is pending trips assertions (close.hpp wr_block, tcp_stream
  // pending_guard) under some interleavings, and cancelling the read fails the
  // stream. Instead it sends a last message {"closing":{"code","reason"}} (an
  // ordinary write, after the one in flight), then half-closes the socket; the
  // peer's EOF ends the pending read and Finish runs (or the kill timer does).
  void AdvanceClose() {
    if (m_finished || !m_close_started || m_close_sent) return;
    {
      std::lock_guard lock(m_mu);
      if (m_writing) return;  // WriteNext calls back when it ends
      m_writing = true;
    }
    m_close_sent = true;
    m_ws.text(true);
    auto notice = m_close_notice;
    m_ws.async_write(net::buffer(*notice), [self = Self(), notice](beast::error_code ec, size_t) {
      {
        std::lock_guard lock(self->m_mu);
        self->m_writing = false;
      }
      if (ec) return self->Finish();
      beast::error_code ignored;
      self->m_ws.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  void Finish() {
    if (m_finished) return;
    m_finished = true;
    {
      std::lock_guard lock(m_mu);
      m_closing = true;
      m_queue.clear();
      m_queue_bytes = 0;
    }
    m_kill_timer.cancel();
    DisarmWriteTimer();
    LiftUnsubscribedTimer();
    beast::error_code ignored;
    m_ws.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    m_ws.next_layer().close(ignored);
    auto self = Self();  // keep alive past Unregister
    m_server.Unregister(this);
  }

  static std::string TopicList(const std::set<std::string>& topics) {
    std::string out;
    for (const auto& t : topics) out += (out.empty() ? "" : ", ") + t;
    return out;
  }

  HttpServer::Impl& m_server;
  websocket::stream<tcp::socket> m_ws;
  beast::flat_buffer m_read_buffer;
  net::steady_timer m_kill_timer;
  net::steady_timer m_write_timer;  ///< cuts a peer that does not take a frame
  net::steady_timer m_unsubscribed_timer;
  std::shared_ptr<const std::string> m_close_notice;
  // Strand-only state.
  uint64_t m_unsubscribed_generation = 0;  // a fired timer of an older generation is stale
  uint64_t m_write_generation = 0;         // likewise for the write timer
  bool m_unsubscribed_armed = false;
  bool m_finished = false;
  bool m_close_started = false;
  bool m_close_sent = false;
  // Shared with publishers, under m_mu.
  std::mutex m_mu;
  std::set<std::string> m_topics;
  std::deque<std::shared_ptr<const std::string>> m_queue;
  size_t m_queue_bytes = 0;  ///< the sizes of m_queue's frames
  bool m_accepted = false;
  bool m_writing = false;
  bool m_closing = false;
};

// ---------------------------------------------------------------------------
// HTTP session

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

class HttpSession final : public SessionBase {
 public:
  HttpSession(HttpServer::Impl& server, Peer peer, tcp::socket&& socket)
      : SessionBase(std::move(peer)), m_server(server), m_stream(std::move(socket)) {}

  void Run() {
    net::dispatch(m_stream.get_executor(), [self = Self()] { self->WaitForRequest(); });
  }

  void Shutdown() override {
    net::post(m_stream.get_executor(), [self = Self()] {
      // A request still arriving has not been accepted yet: cut it. One being
      // handled or written finishes and then closes (keep-alive is off now).
      if (self->m_phase == Phase::kIdle || self->m_phase == Phase::kReading) self->Close();
    });
  }

  /// From a Responder, any thread: writes the answer on the session's strand.
  void PostDeliver(OutResponse out, SteadyClock::time_point started) {
    net::post(m_stream.get_executor(), [self = Self(), out = std::move(out), started]() mutable {
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

  void WaitForRequest() {
    if (m_phase == Phase::kClosed) return;
    if (m_server.stopping.load()) return Close();
    m_phase = Phase::kIdle;
    m_parser.emplace();
    m_parser->header_limit(static_cast<uint32_t>(m_server.opt.header_bytes_max));
    m_parser->body_limit(m_server.opt.body_bytes_max);
    if (m_buffer.size() > 0) return StartRead();  // pipelined request already here
    // A new connection gets the read timeout to send its first byte; a kept-alive
    // one may sit idle longer.
    int64_t wait_ms = m_first ? m_server.opt.read_timeout_ms : m_server.opt.idle_timeout_ms;
    m_stream.expires_after(std::chrono::milliseconds(wait_ms));
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
    m_stream.expires_at(m_deadline);
    http::async_read_header(m_stream, m_buffer, *m_parser,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto& req = m_parser->get();
    if (websocket::is_upgrade(req)) return Upgrade();
    if (req[http::field::expect] == "100-continue" && !m_parser->is_done()) {
      // curl and others wait for this before sending a body.
      m_stream.expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
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
    m_stream.expires_at(m_deadline);
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
    std::lock_guard lock(control.mu);
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
    auto ws =
        std::make_shared<WsSession>(m_server, GetPeer(), std::move(m_stream), std::move(topics));
    m_server.Register(ws);
    ws->Accept(m_parser->release());
    auto self = Self();
    m_server.Unregister(this);
  }

  void Write(OutResponse out) {
    if (m_phase == Phase::kClosed) return;
    m_phase = Phase::kWriting;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(out.response.status));
    res->set(http::field::server, "gpunet");
    res->set(http::field::content_type, out.response.content_type);
    if (!out.allow.empty()) res->set(http::field::allow, out.allow);
    res->body() = std::move(out.response.body);
    bool close = out.close || !m_keep_alive || m_server.stopping.load();
    res->keep_alive(!close);
    res->prepare_payload();
    m_server.CountResponse(out.response.status, m_started);
    m_stream.expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
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
  void Drain() {
    m_phase = Phase::kDraining;
    beast::error_code ignored;
    m_stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    m_stream.expires_after(
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
    m_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    m_stream.socket().close(ignored);
    auto self = Self();  // keep alive past Unregister
    m_server.Unregister(this);
  }

  HttpServer::Impl& m_server;
  beast::tcp_stream m_stream;
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::string_body>> m_parser;
  Phase m_phase = Phase::kIdle;
  bool m_first = true;
  bool m_keep_alive = true;
  SteadyClock::time_point m_started{};
  SteadyClock::time_point m_deadline{};
};

}  // namespace

// ---------------------------------------------------------------------------
// Responder

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
  std::lock_guard lock(control.mu);
  control.pending.fetch_sub(1);
  if (!m_state->counted_address.empty()) {
    auto it = control.pending_by_address.find(m_state->counted_address);
    GPUNET_CHECK(it != control.pending_by_address.end() && it->second >= 1);
    if (--it->second == 0) control.pending_by_address.erase(it);
  }
  if (!control.alive) return;
  std::shared_ptr<HttpSession> session = m_state->session.lock();
  if (!session) return;
  auto started = m_state->started;
  session->PostDeliver(OutResponse{std::move(response), {}, false}, started);
}

// ---------------------------------------------------------------------------
// Accept loop

void HttpServer::Impl::DoAccept() {
  acceptor->async_accept(net::make_strand(ioc),
                         [this](boost::system::error_code ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         });
}

void HttpServer::Impl::OnAccept(boost::system::error_code ec, tcp::socket socket) {
  if (stopping.load() || ec == net::error::operation_aborted || !acceptor->is_open()) return;
  if (ec) {
    // Out of file descriptors and the like: back off instead of spinning.
    accept_retry->expires_after(std::chrono::milliseconds(50));
    accept_retry->async_wait([this](boost::system::error_code wec) {
      if (!wec && !stopping.load()) DoAccept();
    });
    return;
  }
  boost::system::error_code peer_ec;
  const tcp::endpoint remote = socket.remote_endpoint(peer_ec);
  if (peer_ec) {  // reset before we looked: nobody to answer
    socket.close(peer_ec);
    return DoAccept();
  }
  const Peer peer = PeerOf(remote.address(), opt.per_address_exempt_loopback);
  size_t open_now = 0;
  size_t open_from_peer = 0;
  {
    std::lock_guard lock(sessions_mu);
    open_now = sessions.size();
    auto it = peers.find(peer.address);
    if (!peer.exempt && it != peers.end()) open_from_peer = it->second.connections;
  }
  if (open_now >= opt.connections_max) {
    Reject(std::move(socket), 503,
           "the node has " + std::to_string(opt.connections_max) +
               " connections open, its limit; retry shortly or close idle connections");
  } else if (open_from_peer >= opt.connections_per_address_max) {
    Reject(std::move(socket), 429,
           PerAddressRefusal(peer, "connections", opt.connections_per_address_max));
  } else {
    auto session = std::make_shared<HttpSession>(*this, peer, std::move(socket));
    Register(session);
    session->Run();
  }
  DoAccept();
}

void HttpServer::Impl::Reject(tcp::socket socket, int status, const std::string& message) {
  GPUNET_CHECK(status == 503 || status == 429);  // 429s were counted by PerAddressRefusal
  if (status == 503) {
    rejected.fetch_add(1, std::memory_order_relaxed);
    if (m_rejected_metric != nullptr) m_rejected_metric->Inc();
  }
  // Best effort, never blocking the accept loop: one non-blocking write, then close.
  std::string body = ErrorBody(status == 503 ? "unavailable" : "limit_exceeded", message);
  std::string text = std::string(status == 503 ? "HTTP/1.1 503 Service Unavailable"
                                               : "HTTP/1.1 429 Too Many Requests") +
                     "\r\nServer: gpunet\r\n"
                     "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body;
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(net::buffer(text), ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

// ---------------------------------------------------------------------------
// HttpServer

HttpServer::HttpServer(ServerOptions options) : m_impl(std::make_unique<Impl>(std::move(options))) {
  for (const auto& t : m_impl->opt.ws_topics) {
    GPUNET_CHECK(!t.empty());
    m_impl->topics.insert(t);
  }
}

HttpServer::~HttpServer() {
  Stop();
}

void HttpServer::Handle(std::string method, std::string path, Handler handler) {
  GPUNET_CHECK(!m_impl->started && handler && path.starts_with("/"));
  m_impl->routes.push_back(
      Route{std::move(method), std::move(path), false, std::move(handler), {}});
}

void HttpServer::HandlePrefix(std::string method, std::string prefix, Handler handler) {
  GPUNET_CHECK(!m_impl->started && handler && prefix.starts_with("/"));
  m_impl->routes.push_back(
      Route{std::move(method), std::move(prefix), true, std::move(handler), {}});
}

void HttpServer::HandleAsync(std::string method, std::string path, AsyncHandler handler,
                             bool prefix) {
  GPUNET_CHECK(!m_impl->started && handler && path.starts_with("/"));
  m_impl->routes.push_back(
      Route{std::move(method), std::move(path), prefix, {}, std::move(handler)});
}

base::Status HttpServer::Start() {
  Impl& s = *m_impl;
  std::lock_guard lock(s.lifecycle_mu);
  GPUNET_CHECK(!s.started);  // a server starts once
  boost::system::error_code ec;
  auto address = net::ip::make_address(s.opt.host, ec);
  if (ec) {
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "RPC listen address \"" + s.opt.host +
                          "\" is not an IP address; use 127.0.0.1 (or 0.0.0.0 to expose it)");
  }
  tcp::endpoint endpoint(address, s.opt.port);
  s.acceptor.emplace(net::make_strand(s.ioc));
  s.accept_retry.emplace(s.acceptor->get_executor());
  std::string where = s.opt.host + ":" + std::to_string(s.opt.port);
  if (s.acceptor->open(endpoint.protocol(), ec); ec) {
    return base::Fail(base::ErrorCode::kIo,
                      "cannot open a socket for " + where + ": " + ec.message());
  }
  s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (s.acceptor->bind(endpoint, ec); ec) {
    return base::Fail(base::ErrorCode::kIo,
                      "cannot listen on " + where + ": " + ec.message() +
                          " — is another gpunet node running? Stop it or choose another port");
  }
  if (s.acceptor->listen(net::socket_base::max_listen_connections, ec); ec) {
    return base::Fail(base::ErrorCode::kIo, "cannot listen on " + where + ": " + ec.message());
  }
  s.port = s.acceptor->local_endpoint().port();
  s.started = true;
  s.pool.emplace(s.opt.worker_threads);
  s.work.emplace(s.ioc.get_executor());
  net::post(s.acceptor->get_executor(), [&s] { s.DoAccept(); });
  for (size_t i = 0; i < s.opt.io_threads; ++i) {
    s.io_threads.emplace_back([&s] { s.ioc.run(); });
  }
  return base::Ok();
}

uint16_t HttpServer::Port() const {
  GPUNET_CHECK(m_impl->started);
  return m_impl->port;
}

std::string HttpServer::Url() const {
  return "http://" + m_impl->opt.host + ":" + std::to_string(Port());
}

void HttpServer::Stop() {
  Impl& s = *m_impl;
  std::lock_guard lock(s.lifecycle_mu);
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping.store(true);

  std::promise<void> closed;
  net::post(s.acceptor->get_executor(), [&s, &closed] {
    boost::system::error_code ignored;
    s.acceptor->close(ignored);
    s.accept_retry->cancel();
    closed.set_value();
  });
  closed.get_future().wait();

  {
    std::unique_lock sessions_lock(s.sessions_mu);
    for (auto& [ptr, session] : s.sessions) session->Shutdown();
    s.sessions_cv.wait_for(sessions_lock, std::chrono::milliseconds(s.opt.stop_grace_ms),
                           [&s] { return s.sessions.empty(); });
  }
  {
    std::lock_guard control_lock(s.control->mu);
    s.control->alive = false;  // late Responders now drop their answers
  }
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  s.pool->stop();
  s.pool->join();
  s.pool.reset();  // destroys queued handlers (and the sessions they hold)
  std::unordered_map<SessionBase*, std::shared_ptr<SessionBase>> left;
  {
    std::lock_guard sessions_lock(s.sessions_mu);
    left.swap(s.sessions);
    s.ws_count = 0;
  }
  left.clear();
  s.accept_retry.reset();
  s.acceptor.reset();
}

size_t HttpServer::Publish(std::string_view topic, std::string_view json_text) {
  Impl& s = *m_impl;
  GPUNET_CHECK(s.topics.contains(std::string(topic)));  // topics are fixed at construction
  GPUNET_CHECK(!json_text.empty());
  auto frame = std::make_shared<const std::string>("{\"topic\":\"" + std::string(topic) +
                                                   "\",\"data\":" + std::string(json_text) + "}");
  size_t queued = 0;
  // Holding sessions_mu keeps Stop() from destroying a session (and the
  // io_context its strand posts to) underneath us; Enqueue itself never blocks.
  std::lock_guard lock(s.sessions_mu);
  if (s.stopping.load()) return 0;
  for (auto& [ptr, session] : s.sessions) {
    if (!session->IsWebsocket()) continue;
    if (static_cast<WsSession&>(*session).Enqueue(topic, frame)) ++queued;
  }
  return queued;
}

ServerStats HttpServer::Stats() const {
  const Impl& s = *m_impl;
  ServerStats st;
  {
    std::lock_guard lock(s.sessions_mu);
    st.connections = s.sessions.size();
    st.ws_subscribers = s.ws_count;
  }
  st.requests = s.requests.load();
  st.requests_in_progress = s.control->pending.load();
  st.rejected_connections = s.rejected.load();
  st.rejected_per_address = s.rejected_per_address.load();
  st.ws_slow_disconnects = s.slow_disconnects.load();
  return st;
}

}  // namespace gpunet::server
