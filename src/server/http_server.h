// An HTTP/1.1 + websocket server: routes, limits, timeouts, pub/sub, and HTTPS/WSS
// when given a certificate (ServerOptions::tls). The node's RPC runs on it, and the
// provider daemon's tenant API is to.
//
// It knows nothing about the ledger: its user registers handlers that turn a
// Request into a Response (messages.h) and publishes JSON events to websocket
// topics. Beast, Asio and OpenSSL stay inside the library's .cpp files (pimpl)
// because they cost seconds per translation unit: http_server.cpp (listener,
// routing, limits), http_session.cpp (one HTTP connection), ws_session.cpp (one
// websocket), tls.cpp (the certificate and key).
//
// Threads: `io_threads` run every socket (accept, read, write, websocket); handlers
// run on a separate pool of `worker_threads`, so a handler that blocks (waiting for
// a commit) never stalls accepting or other connections. When more than
// `pending_requests_max` requests wait for a worker, new ones get 503 at once.
//
// One client cannot take the whole server: beside the global caps, each peer
// address has its own caps on connections, websockets and pending requests (429
// when over; loopback peers may be exempted, see ServerOptions). Idle keep-alive
// connections and websockets that subscribe to nothing are closed after a bounded
// time.
// A handler that must wait long should use HandleAsync and answer through its
// Responder from any thread instead of holding a worker.
//
// Every error the server produces itself is JSON:
//   {"error":{"code":"not_found","message":"no route for GET /nope; ..."}}
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <optional>

#include "base/result.h"
#include "server/messages.h"

namespace gpunet::server {

namespace metrics {
class Registry;
}

/// Answers an async route exactly once, from any thread. Move-only. If it is
/// destroyed unanswered the client gets a 500 (a handler bug, but the connection
/// is not left hanging). Answers after Stop() began are dropped.
class Responder {
 public:
  struct State;
  explicit Responder(std::shared_ptr<State> state);
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  void Respond(Response response);

 private:
  std::shared_ptr<State> m_state;
};

using Handler = std::function<Response(const Request&)>;
using AsyncHandler = std::function<void(Request, Responder)>;

/// HTTPS and WSS instead of plain HTTP: TLS 1.2 or newer only, with this
/// certificate and key. Start() fails with a message naming the file when one is
/// missing, unreadable, not PEM, or when the key is not the certificate's.
struct TlsOptions {
  std::string certificate_file;  ///< PEM: the server's certificate, then any intermediates
  std::string private_key_file;  ///< PEM, not encrypted with a passphrase
  /// The key's PEM itself, instead of private_key_file: for a process that may not
  /// open the key file (the provider's tenant-facing process gets it from its
  /// parent over an inherited descriptor). private_key_file then only names it in
  /// messages.
  std::string private_key_pem;
};

struct ServerOptions {
  std::string host = "127.0.0.1";       ///< address to bind; the RPC is local by default
  uint16_t port = 0;                    ///< 0: the kernel picks one (see HttpServer::Port)
  size_t body_bytes_max = 1024 * 1024;  ///< larger bodies get 413
  size_t header_bytes_max = 16 * 1024;  ///< request line + headers; larger gets 431
  /// The whole request (first byte to last body byte) must arrive within this;
  /// a client that trickles bytes (slowloris) is cut when it runs out.
  int64_t read_timeout_ms = 10'000;
  int64_t idle_timeout_ms = 30'000;  ///< keep-alive wait for the next request
  /// A new connection must finish its TLS handshake, and then send its first byte,
  /// each within this; 0: read_timeout_ms. Shorter than a read timeout sized for
  /// large bodies, it keeps silent connections from holding the per-address and
  /// total caps for long.
  int64_t first_bytes_timeout_ms = 0;
  int64_t write_timeout_ms = 10'000;  ///< a client that does not read is cut
  size_t connections_max = 256;       ///< beyond this, new connections get 503 and close
  /// Open connections (HTTP + websocket) from one peer address; beyond it, new
  /// ones from that address get 429 and close. A connection that became a byte relay
  /// (a handler's UpgradeResponse) no longer counts: the handler capped it.
  size_t connections_per_address_max = 32;
  size_t io_threads = 1;
  size_t worker_threads = 4;
  size_t pending_requests_max = 256;  ///< requests queued or running in workers, else 503
  /// Requests handed to handlers and not yet answered (an async wait included) for
  /// one peer address; beyond it, 429.
  size_t pending_requests_per_address_max = 32;
  /// Loopback peers (127.0.0.0/8, ::1) are exempt from the per-address caps: on the
  /// default listen address every client is local (the devnet, the provider
  /// daemon, the CLI) and shares 127.0.0.1. Set false when loopback peers are
  /// untrusted (tests of the caps; a local proxy that does its own per-client limits
  /// is still one address to the node). The global caps apply to everyone.
  bool per_address_exempt_loopback = true;
  int64_t stop_grace_ms = 5'000;  ///< Stop() waits this long for in-flight requests

  std::string ws_path = "/ws";                             ///< GET upgrade target
  std::vector<std::string> ws_topics = {"blocks", "txs"};  ///< topics clients may join
  size_t ws_queue_messages_max = 256;  ///< per connection; beyond it, disconnect
  /// Bytes of the frames queued for one connection (the one being written not
  /// counted); a frame that would take the queue past it disconnects the
  /// subscriber, except into an empty queue, so any one frame gets through. A
  /// frame being written that the peer does not take within write_timeout_ms
  /// cuts the connection too.
  size_t ws_queue_bytes_max = 32 * 1024 * 1024;
  size_t ws_incoming_bytes_max = 4096;  ///< largest client message (subscribe commands)
  int64_t ws_idle_timeout_ms = 60'000;  ///< pings keep live clients; silent ones are cut
  /// Open websockets from one peer address; beyond it, the upgrade gets 429.
  size_t ws_per_address_max = 8;
  /// A websocket subscribed to no topic for this long is closed (answering pings
  /// does not keep it); one with a subscription stays however quiet the chain is.
  int64_t ws_unsubscribed_timeout_ms = 30'000;

  /// When set, the server counts requests, connections and websocket events here.
  metrics::Registry* metrics = nullptr;

  /// Unset: plain HTTP and websocket (the node's default, on loopback). Set: every
  /// connection must complete a TLS handshake within first_bytes_timeout_ms first; one that
  /// does not (a plain-HTTP client, say) is closed and counted.
  std::optional<TlsOptions> tls;
};

/// Counts for tests and status pages.
struct ServerStats {
  size_t connections = 0;               ///< open HTTP + websocket connections
  size_t ws_subscribers = 0;            ///< open websocket connections
  size_t relays = 0;                    ///< open connections upgraded to a byte relay
  uint64_t requests = 0;                ///< HTTP responses written
  size_t requests_in_progress = 0;      ///< handed to handlers, not yet answered
  uint64_t rejected_connections = 0;    ///< refused because of connections_max
  uint64_t rejected_per_address = 0;    ///< connections, upgrades, requests refused with 429
  uint64_t ws_slow_disconnects = 0;     ///< subscribers cut for a full send queue
  uint64_t tls_handshake_failures = 0;  ///< connections closed without a TLS handshake
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();  ///< Stop()s if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Routes, registered before Start(). An exact path wins over a prefix; the
  /// longest prefix wins among prefixes. A path that matches with another method
  /// gets 405 with an Allow header.
  void Handle(std::string method, std::string path, Handler handler);
  void HandlePrefix(std::string method, std::string prefix, Handler handler);
  void HandleAsync(std::string method, std::string path, AsyncHandler handler, bool prefix = false);

  /// Binds and starts serving. Fails with kIo and a hint when the port is taken, and
  /// before binding when the TLS certificate or key cannot be used.
  base::Status Start();
  /// The bound port (useful with port 0). Valid after Start().
  uint16_t Port() const;
  /// "http://127.0.0.1:<port>", or "https://..." with TLS
  std::string Url() const;

  /// Stops accepting, lets requests in flight finish (up to stop_grace_ms), closes
  /// idle and websocket connections and relays, joins every thread. Idempotent.
  void Stop();

  /// Sends `json_text` to every subscriber of `topic` as
  /// {"topic":"<topic>","data":<json_text>}. Never blocks on a subscriber: a full
  /// queue disconnects that subscriber. Any thread. Returns how many got it queued.
  size_t Publish(std::string_view topic, std::string_view json_text);

  ServerStats Stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> m_impl;
};

/// The key the per-address caps count a peer under, from its IP address text:
/// an IPv4 address as itself (an IPv4-mapped IPv6 one as its IPv4 address), ::1 as
/// itself, any other IPv6 address as its /64 ("2001:db8:1:2::/64"), because one
/// host is commonly given a whole /64 and could otherwise take a fresh address
/// per connection. kInvalidArgument when the text is not an IP address.
base::Result<std::string> PeerAddressKey(std::string_view address);

}  // namespace gpunet::server
