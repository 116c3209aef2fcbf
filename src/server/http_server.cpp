#include "server/http_server.h"

#include <algorithm>
#include <chrono>
#include <future>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "base/check.h"
#include "server/http_server_impl.h"
#include "server/http_session.h"
#include "server/tls.h"

// The listener: accepting (and refusing over the caps), routing, the books of open
// sessions and per-address counts, the lifecycle. One connection's HTTP is in
// http_session.cpp, a websocket's in ws_session.cpp.

namespace gpunet::server {

namespace {

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
  boost::system::error_code ec;
  const net::ip::address parsed = net::ip::make_address(std::string(address), ec);
  if (ec)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "'" + std::string(address) + "' is not an IP address");
  return AddressKey(parsed);
}

HttpServer::Impl::Impl(ServerOptions o) : opt(std::move(o)) {
  GPUNET_CHECK(opt.io_threads >= 1 && opt.worker_threads >= 1);
  GPUNET_CHECK(opt.read_timeout_ms > 0 && opt.idle_timeout_ms > 0 && opt.write_timeout_ms > 0 &&
               opt.first_bytes_timeout_ms >= 0);
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
    m_relays = &m.GetGauge("gpunet_rpc_relays",
                           "Open connections upgraded to a byte relay (tenant API sessions).");
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
    // Only on a TLS server: a plain one (the node's) shows no TLS counter.
    if (opt.tls) {
      m_tls_failed_metric =
          &m.GetCounter("gpunet_rpc_tls_handshake_failures_total",
                        "Connections to a TLS server closed because their TLS handshake failed "
                        "or timed out (plain-HTTP clients among them).");
    }
    m_latency = &m.GetHistogram("gpunet_rpc_request_duration_seconds",
                                "Time from the first request byte to the response being queued.",
                                metrics::LatencyBucketsSeconds());
  }
}

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

void HttpServer::Impl::CountResponse(int status, SteadyClock::time_point began) {
  requests.fetch_add(1, std::memory_order_relaxed);
  if (opt.metrics != nullptr) {
    opt.metrics
        ->GetCounter("gpunet_rpc_requests_total", "HTTP responses by status code.",
                     {{"code", std::to_string(status)}})
        .Inc();
    if (began != SteadyClock::time_point{}) {
      m_latency->Observe(std::chrono::duration<double>(SteadyClock::now() - began).count());
    }
  }
}

void HttpServer::Impl::Register(std::shared_ptr<SessionBase> s) {
  base::MutexLock lock(sessions_mu);
  if (s->IsWebsocket()) ++ws_count;
  if (s->IsRelay()) ++relay_count;
  // A relay exists only because a handler said yes to its request (the tenant API's
  // sessions, capped there): it does not hold one of its address's plain connections.
  if (!s->GetPeer().exempt && !s->IsRelay()) {
    PeerCounts& counts = peers[s->GetPeer().address];
    ++counts.connections;
    if (s->IsWebsocket()) ++counts.websockets;
  }
  sessions.emplace(s.get(), std::move(s));
  UpdateGauges();
}
void HttpServer::Impl::Unregister(SessionBase* s) {
  std::shared_ptr<SessionBase> keep;  // destroyed after the lock is released
  {
    base::MutexLock lock(sessions_mu);
    auto it = sessions.find(s);
    if (it == sessions.end()) return;
    if (s->IsWebsocket()) --ws_count;
    if (s->IsRelay()) --relay_count;
    if (!s->GetPeer().exempt && !s->IsRelay()) {
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
void HttpServer::Impl::UpdateGauges() {
  if (m_connections != nullptr) m_connections->Set(static_cast<double>(sessions.size()));
  if (m_ws_subscribers != nullptr) m_ws_subscribers->Set(static_cast<double>(ws_count));
  if (m_relays != nullptr) m_relays->Set(static_cast<double>(relay_count));
}

std::string HttpServer::Impl::PerAddressRefusal(const Peer& peer, std::string_view what,
                                                size_t cap) {
  rejected_per_address.fetch_add(1, std::memory_order_relaxed);
  if (m_per_address_metric != nullptr) m_per_address_metric->Inc();
  return "your address " + peer.address + " has " + std::to_string(cap) + " " + std::string(what) +
         " open, its limit; close some or wait for them to finish";
}
size_t HttpServer::Impl::WebsocketsOf(const Peer& peer) const {
  base::MutexLock lock(sessions_mu);
  auto it = peers.find(peer.address);
  return peer.exempt || it == peers.end() ? 0 : it->second.websockets;
}

void HttpServer::Impl::CountTlsHandshakeFailure() {
  tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
  if (m_tls_failed_metric != nullptr) m_tls_failed_metric->Inc();
}

void HttpServer::Impl::CountSlowDisconnect() {
  slow_disconnects.fetch_add(1, std::memory_order_relaxed);
  if (m_slow_metric != nullptr) m_slow_metric->Inc();
}

void HttpServer::Impl::CountWsMessageSent() {
  if (m_ws_sent_metric != nullptr) m_ws_sent_metric->Inc();
}

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
    base::MutexLock lock(sessions_mu);
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
    auto session = NewHttpSession(*this, peer, std::move(socket));
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
  boost::system::error_code ignored;
  if (opt.tls) {
    // A TLS client cannot read a plaintext answer (it sees a TLS record error), and a
    // handshake would spend the work the limit is there to save: close without a word.
    socket.close(ignored);
    return;
  }
  // Best effort, never blocking the accept loop: one non-blocking write, then close.
  std::string body = JsonErrorText(status == 503 ? "unavailable" : "limit_exceeded", message);
  std::string text = std::string(status == 503 ? "HTTP/1.1 503 Service Unavailable"
                                               : "HTTP/1.1 429 Too Many Requests") +
                     "\r\nServer: gpunet\r\n"
                     "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body;
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
  base::MutexLock lock(s.lifecycle_mu);
  GPUNET_CHECK(!s.started);  // a server starts once
  boost::system::error_code ec;
  auto address = net::ip::make_address(s.opt.host, ec);
  if (ec) {
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "RPC listen address \"" + s.opt.host +
                          "\" is not an IP address; use 127.0.0.1 (or 0.0.0.0 to expose it)");
  }
  if (s.opt.tls) {
    auto context = MakeTlsContext(*s.opt.tls);
    if (!context) return std::unexpected(context.error());
    s.tls = std::move(*context);
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
  return (m_impl->opt.tls ? "https://" : "http://") + m_impl->opt.host + ":" +
         std::to_string(Port());
}

void HttpServer::Stop() {
  Impl& s = *m_impl;
  base::MutexLock lock(s.lifecycle_mu);
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
    base::MutexLock sessions_lock(s.sessions_mu);
    for (auto& [ptr, session] : s.sessions) session->Shutdown();
    s.sessions_cv.wait_for(sessions_lock.Native(), std::chrono::milliseconds(s.opt.stop_grace_ms),
                           [&s]() REQUIRES(s.sessions_mu) { return s.sessions.empty(); });
  }
  {
    base::MutexLock control_lock(s.control->mu);
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
    base::MutexLock sessions_lock(s.sessions_mu);
    left.swap(s.sessions);
    s.ws_count = 0;
    s.relay_count = 0;
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
  base::MutexLock lock(s.sessions_mu);
  if (s.stopping.load()) return 0;
  for (auto& [ptr, session] : s.sessions) {
    if (!session->IsWebsocket()) continue;
    if (static_cast<WsSessionBase&>(*session).Enqueue(topic, frame)) ++queued;
  }
  return queued;
}

ServerStats HttpServer::Stats() const {
  const Impl& s = *m_impl;
  ServerStats st;
  {
    base::MutexLock lock(s.sessions_mu);
    st.connections = s.sessions.size();
    st.ws_subscribers = s.ws_count;
    st.relays = s.relay_count;
  }
  st.requests = s.requests.load();
  st.requests_in_progress = s.control->pending.load();
  st.rejected_connections = s.rejected.load();
  st.rejected_per_address = s.rejected_per_address.load();
  st.ws_slow_disconnects = s.slow_disconnects.load();
  st.tls_handshake_failures = s.tls_handshake_failures.load();
  return st;
}

}  // namespace gpunet::server
