#include "server/relay_session.h"

#include <unistd.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include "base/check.h"

// One relay: two pumps on the connection's strand, client → descriptor ("up") and
// descriptor → client ("down"). Each pump has one buffer and at most one operation in
// flight: it reads, writes all it read, and only then reads again, so a side that
// does not take bytes stops the other side being read (back-pressure through the
// kernel's socket buffers, no queue here). Nothing is parsed.
//
// Ends: EOF from the client → shutdown(fd, SHUT_WR), the down pump goes on. EOF on
// the descriptor → plain: shutdown(SHUT_WR) of the TCP socket and the up pump goes
// on; TLS: a TLS shutdown (close_notify), which must not overlap a read of ours, so a
// pending client read is cancelled first (the descriptor's side has closed: nothing
// the client still sends has anywhere to go). Both ended, any error, or Stop: both
// closed, the UpgradeTarget dropped (its on_end runs).
// No idle timeout: an interactive session may be silent for hours (ssh keeps itself
// alive); TCP keepalive finds a client that vanished.

namespace gpunet::server {

namespace beast = boost::beast;
using UnixSocket = net::local::stream_protocol::socket;

namespace {

/// The client's side ended cleanly: a FIN (plain), a close_notify (eof), or a FIN
/// without one (a client that just closed its socket; nothing is lost for us).
bool CleanEnd(const beast::error_code& ec) {
  return ec == net::error::eof || ec == net::ssl::error::stream_truncated;
}

template <class Next>  // tcp::socket (plain) or TlsStream
class RelaySession final : public SessionBase {
  static constexpr bool kTls = std::is_same_v<Next, TlsStream>;
  enum class Pump { kReading, kWriting, kDone };

 public:
  RelaySession(HttpServer::Impl& server, Peer peer, Next&& next,
               std::shared_ptr<UpgradeTarget> target)
      : SessionBase(std::move(peer)),
        m_server(server),
        m_client(std::move(next)),
        m_executor(m_client.get_executor()),
        m_fd(m_executor),
        m_target(std::move(target)),
        m_up(kRelayBufferBytes),
        m_down(kRelayBufferBytes) {
    GPUNET_CHECK(m_target != nullptr);
  }

  bool IsRelay() const override { return true; }

  // On the strand, once registered.
  void Start(std::string leftover) {
    // Registered after Stop() shut the sessions down: nobody else will close it.
    if (m_server.stopping.load()) return Finish();
    beast::error_code ec;
    const int fd = m_target->TakeFd();
    m_fd.assign(net::local::stream_protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      return Finish();
    }
    if constexpr (kTls) beast::get_lowest_layer(m_client).expires_never();
    RawSocket().set_option(tcp::socket::keep_alive(true), ec);
    ReadFd();
    if (leftover.empty()) return ReadClient();
    m_leftover = std::move(leftover);
    m_up_state = Pump::kWriting;
    net::async_write(m_fd, net::buffer(m_leftover),
                     [self = Self()](beast::error_code wec, size_t) { self->OnFdWritten(wec); });
  }

  void Shutdown() override {
    net::post(m_executor, [self = Self()] { self->Finish(); });
  }

 private:
  std::shared_ptr<RelaySession> Self() {
    return std::static_pointer_cast<RelaySession>(shared_from_this());
  }
  tcp::socket& RawSocket() {
    if constexpr (kTls) {
      return beast::get_lowest_layer(m_client).socket();
    } else {
      return m_client;
    }
  }

  // ---- up: client → descriptor ----
  void ReadClient() {
    m_up_state = Pump::kReading;
    m_client.async_read_some(net::buffer(m_up), [self = Self()](beast::error_code ec, size_t n) {
      self->OnClientRead(ec, n);
    });
  }
  void OnClientRead(beast::error_code ec, size_t n) {
    if (m_finished) return;
    if constexpr (kTls) {
      if (m_down_state == Pump::kDone) {  // cancelled (or ended) for the TLS shutdown
        m_up_state = Pump::kDone;
        return CloseTls();
      }
    }
    if (ec) return CleanEnd(ec) ? EndUp() : Finish();
    GPUNET_CHECK(n > 0 && n <= m_up.size());
    m_up_state = Pump::kWriting;
    net::async_write(m_fd, net::buffer(m_up.data(), n),
                     [self = Self()](beast::error_code wec, size_t) { self->OnFdWritten(wec); });
  }
  void OnFdWritten(beast::error_code ec) {
    if (m_finished) return;
    m_leftover.clear();
    if (ec) return Finish();  // the descriptor's side is gone (EPIPE) or failed
    if constexpr (kTls) {
      if (m_down_state == Pump::kDone) {
        m_up_state = Pump::kDone;
        return CloseTls();
      }
    }
    ReadClient();
  }
  void EndUp() {
    m_up_state = Pump::kDone;
    beast::error_code ignored;
    m_fd.shutdown(net::socket_base::shutdown_send, ignored);
    if (m_down_state == Pump::kDone) Finish();
  }

  // ---- down: descriptor → client ----
  void ReadFd() {
    m_down_state = Pump::kReading;
    m_fd.async_read_some(net::buffer(m_down), [self = Self()](beast::error_code ec, size_t n) {
      self->OnFdRead(ec, n);
    });
  }
  void OnFdRead(beast::error_code ec, size_t n) {
    if (m_finished) return;
    if (ec == net::error::eof) return EndDown();
    if (ec) return Finish();
    GPUNET_CHECK(n > 0 && n <= m_down.size());
    m_down_state = Pump::kWriting;
    net::async_write(m_client, net::buffer(m_down.data(), n),
                     [self = Self()](beast::error_code wec, size_t) {
                       if (self->m_finished) return;
                       if (wec) return self->Finish();
                       self->ReadFd();
                     });
  }
  void EndDown() {
    m_down_state = Pump::kDone;
    if constexpr (kTls) {
      switch (m_up_state) {
        case Pump::kDone:
          return CloseTls();
        case Pump::kReading:  // its handler goes on to CloseTls
          beast::get_lowest_layer(m_client).socket().cancel();
          return;
        case Pump::kWriting:  // OnFdWritten goes on to CloseTls
          return;
      }
    } else {
      beast::error_code ignored;
      m_client.shutdown(tcp::socket::shutdown_send, ignored);
      if (m_up_state == Pump::kDone) Finish();
    }
  }

  // TLS only, with no read or write of ours in flight: close_notify, then close. A
  // client that does not answer with its own within the bound is cut.
  void CloseTls() {
    if constexpr (kTls) {
      if (m_tls_closing) return;
      m_tls_closing = true;
      beast::get_lowest_layer(m_client).expires_after(
          std::chrono::milliseconds(std::min<int64_t>(m_server.opt.write_timeout_ms, 2000)));
      m_client.async_shutdown([self = Self()](beast::error_code) { self->Finish(); });
    }
  }

  void Finish() {
    if (m_finished) return;
    m_finished = true;
    beast::error_code ignored;
    m_fd.close(ignored);
    RawSocket().shutdown(tcp::socket::shutdown_both, ignored);
    RawSocket().close(ignored);
    m_target.reset();    // runs the handler's on_end
    auto self = Self();  // keep alive past Unregister
    m_server.Unregister(this);
  }

  HttpServer::Impl& m_server;
  Next m_client;
  const net::any_io_executor m_executor;  ///< the connection's strand
  UnixSocket m_fd;                        ///< stream sockets of any family relay the same
  std::shared_ptr<UpgradeTarget> m_target;
  std::vector<char> m_up;    ///< client → descriptor
  std::vector<char> m_down;  ///< descriptor → client
  std::string m_leftover;    ///< sent after the request, before the 101 went out
  Pump m_up_state = Pump::kReading;
  Pump m_down_state = Pump::kReading;
  bool m_tls_closing = false;
  bool m_finished = false;
};

template <class Next>
void StartRelay(HttpServer::Impl& server, Peer peer, Next&& next, std::string leftover,
                std::shared_ptr<UpgradeTarget> target) {
  auto relay = std::make_shared<RelaySession<Next>>(server, std::move(peer), std::move(next),
                                                    std::move(target));
  server.Register(relay);
  relay->Start(std::move(leftover));
}

}  // namespace

void StartRelaySession(HttpServer::Impl& server, Peer peer, beast::tcp_stream&& stream,
                       std::string leftover, std::shared_ptr<UpgradeTarget> target) {
  StartRelay(server, std::move(peer), stream.release_socket(), std::move(leftover),
             std::move(target));
}

void StartRelaySession(HttpServer::Impl& server, Peer peer, TlsStream&& stream,
                       std::string leftover, std::shared_ptr<UpgradeTarget> target) {
  StartRelay(server, std::move(peer), std::move(stream), std::move(leftover), std::move(target));
}

}  // namespace gpunet::server
