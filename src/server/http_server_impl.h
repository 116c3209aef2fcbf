// Inside src/server only: the state the listener (http_server.cpp) and the sessions
// (http_session.cpp, ws_session.cpp) share. Users of the library see http_server.h.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "base/mutex.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace gpunet::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

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
  base::Mutex mu;
  bool alive GUARDED_BY(mu) = true;
  std::atomic<size_t> pending{0};  // requests handed to handlers and not yet answered
  // The same per peer address, for the peers the per-address caps apply to; an
  // address leaves the map when its count drops to zero. Under mu.
  std::map<std::string, size_t> pending_by_address GUARDED_BY(mu);
};

/// Who is at the other end of a connection, for the per-address caps.
struct Peer {
  std::string address;  // PeerAddressKey: IPv4 (mapped ones too) or an IPv6 /64
  bool exempt = false;  // no per-address caps (a loopback peer, when so configured)
};

/// A response on its way to a session's socket.
struct OutResponse {
  Response response;
  std::string allow;  // for 405
  bool close = false;
};

/// One open connection, as the server's books see it.
class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  explicit SessionBase(Peer peer) : m_peer(std::move(peer)) {}
  virtual ~SessionBase() = default;
  /// Server is stopping: close if idle, finish if busy. Any thread.
  virtual void Shutdown() = 0;
  virtual bool IsWebsocket() const { return false; }
  /// A connection upgraded to a byte relay (relay_session.cpp).
  virtual bool IsRelay() const { return false; }
  const Peer& GetPeer() const { return m_peer; }

 private:
  const Peer m_peer;
};

/// An HTTP connection (plain or TLS; http_session.cpp).
class HttpSessionBase : public SessionBase {
 public:
  using SessionBase::SessionBase;
  /// Starts the session on its strand: the TLS handshake if any, then requests.
  virtual void Run() = 0;
  /// From a Responder, any thread: writes the answer on the session's strand.
  virtual void PostDeliver(OutResponse out, SteadyClock::time_point started) = 0;
};

/// A websocket subscriber (plain or TLS; ws_session.cpp).
class WsSessionBase : public SessionBase {
 public:
  using SessionBase::SessionBase;
  bool IsWebsocket() const final { return true; }
  /// Queues a frame if subscribed to `topic` (empty topic: always, for replies).
  /// Any thread; never blocks on the network. False when not queued.
  virtual bool Enqueue(std::string_view topic, std::shared_ptr<const std::string> frame) = 0;
};

struct HttpServer::Impl {
  explicit Impl(ServerOptions o);

  /// The route for a request: the most specific path (exact, else the longest
  /// prefix), then the method among that path's routes. *path_known says whether any
  /// method has the path; *allow lists them (for a 405).
  const Route* FindRoute(std::string_view method, std::string_view path, std::string* allow,
                         bool* path_known) const;
  /// A response written: counts it by status, with its latency when `started` is set.
  void CountResponse(int status, SteadyClock::time_point began);
  void CountTlsHandshakeFailure();
  void CountSlowDisconnect();
  void CountWsMessageSent();

  void Register(std::shared_ptr<SessionBase> s) EXCLUDES(sessions_mu);
  void Unregister(SessionBase* s) EXCLUDES(sessions_mu);
  void UpdateGauges() REQUIRES(sessions_mu);
  /// A 429 for a peer over one of its per-address caps; counts it.
  std::string PerAddressRefusal(const Peer& peer, std::string_view what, size_t cap);
  /// Open websockets of a peer; 0 for an exempt one.
  size_t WebsocketsOf(const Peer& peer) const EXCLUDES(sessions_mu);

  void DoAccept();
  void OnAccept(boost::system::error_code ec, tcp::socket socket);
  void Reject(tcp::socket socket, int status, const std::string& message);

  ServerOptions opt;
  std::vector<Route> routes;
  std::set<std::string> topics;

  mutable base::Mutex sessions_mu;
  std::condition_variable sessions_cv;
  std::unordered_map<SessionBase*, std::shared_ptr<SessionBase>> sessions GUARDED_BY(sessions_mu);
  size_t ws_count GUARDED_BY(sessions_mu) = 0;
  size_t relay_count GUARDED_BY(sessions_mu) = 0;
  // Open sessions per peer address, for non-exempt peers; an address leaves the
  // map with its last connection, so its size is bounded by connections_max.
  struct PeerCounts {
    size_t connections = 0;
    size_t websockets = 0;
  };
  std::map<std::string, PeerCounts> peers GUARDED_BY(sessions_mu);

  std::atomic<bool> stopping{false};
  base::Mutex lifecycle_mu;
  // Written by Start under lifecycle_mu before it starts the threads that may read
  // them (Handle*, Port and Url read them unlocked: a server is started once).
  bool started = false;
  bool stopped GUARDED_BY(lifecycle_mu) = false;
  uint16_t port = 0;

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> rejected_per_address{0};
  std::atomic<uint64_t> slow_disconnects{0};
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::shared_ptr<ResponderControl> control = std::make_shared<ResponderControl>();

  metrics::Gauge* m_connections = nullptr;
  metrics::Gauge* m_ws_subscribers = nullptr;
  metrics::Gauge* m_relays = nullptr;
  metrics::Counter* m_rejected_metric = nullptr;
  metrics::Counter* m_per_address_metric = nullptr;
  metrics::Counter* m_slow_metric = nullptr;
  metrics::Counter* m_ws_sent_metric = nullptr;
  metrics::Counter* m_tls_failed_metric = nullptr;
  metrics::Histogram* m_latency = nullptr;

  /// Set by Start() when opt.tls is; every session's TLS stream uses it. Declared
  /// before the io_context, so it outlives every socket.
  std::unique_ptr<net::ssl::context> tls;

  // Declared after everything sessions touch, so destroyed before it; sockets and
  // timers must die before the io_context, hence ioc first among these.
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_retry;
  std::optional<net::thread_pool> pool;
  std::vector<std::thread> io_threads;
};

}  // namespace gpunet::server
