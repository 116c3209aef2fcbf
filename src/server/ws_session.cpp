#include "server/ws_session.h"

#include <algorithm>
#include <deque>
#include <type_traits>

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/mutex.h"

namespace gpunet::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using Json = nlohmann::json;

namespace {

// Next is the layer under the websocket. Plain: the raw socket, not the HTTP
// session's tcp_stream, because the websocket has its own timeouts and Beast 1.74's
// closing handshake can overlap a pending read, which a tcp_stream refuses with an
// assertion (pending_guard). TLS: the HTTP session's TlsStream itself (the TLS state
// cannot leave it), with the tcp_stream's timeouts switched off; the TLS layer lets
// at most one read and one write reach the tcp_stream at a time.
template <class Next>
class WsSession final : public WsSessionBase {
 public:
  WsSession(HttpServer::Impl& server, Peer peer, Next&& next, std::set<std::string> topics)
      : WsSessionBase(std::move(peer)),
        m_server(server),
        m_ws(std::move(next)),
        m_kill_timer(m_ws.get_executor()),
        m_write_timer(m_ws.get_executor()),
        m_unsubscribed_timer(m_ws.get_executor()),
        m_topics(std::move(topics)) {}

  void Accept(UpgradeRequest req) {
    const ServerOptions& opt = m_server.opt;
    if constexpr (!std::is_same_v<Next, tcp::socket>) {
      beast::get_lowest_layer(m_ws).expires_never();  // the websocket's timeouts rule
    }
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

  bool Enqueue(std::string_view topic, std::shared_ptr<const std::string> frame) override
      EXCLUDES(m_mu) {
    base::MutexLock lock(m_mu);
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
      m_server.CountSlowDisconnect();
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

  // On the strand, as a write starts: a peer that does not take the frame within
  // write_timeout_ms is cut (websocket writes have no timeout of their own, and a
  // peer that never reads would hold the connection and its frame forever).
  void ArmWriteTimer() {
    const uint64_t generation = ++m_write_generation;
    m_write_timer.expires_after(std::chrono::milliseconds(m_server.opt.write_timeout_ms));
    m_write_timer.async_wait([self = Self(), generation](beast::error_code ec) {
      if (ec || generation != self->m_write_generation) return;  // the write ended
      self->m_server.CountSlowDisconnect();
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
      base::MutexLock lock(m_mu);
      m_accepted = true;
      subscribed = !m_topics.empty();
      if (!m_queue.empty() && !m_writing && !m_closing) {
        m_writing = true;
        net::post(m_ws.get_executor(), [self = Self()] { self->WriteNext(); });
      }
    }
    if (!subscribed) ArmUnsubscribedTimer();
    ReadNext();
    AdvanceClose();  // a close asked for during the handshake (Stop, queue cap) goes now
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
      base::MutexLock lock(m_mu);
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
      return JsonErrorText("invalid_argument", "not a command; " + usage);
    }
    auto [verb, arg] = *cmd.items().begin();
    bool subscribe = verb == "subscribe";
    if ((!subscribe && verb != "unsubscribe") || !arg.is_string()) {
      return JsonErrorText("invalid_argument", "unknown command \"" + verb + "\"; " + usage);
    }
    std::string topic = arg.get<std::string>();
    if (!m_server.topics.contains(topic)) {
      return JsonErrorText("not_found", "unknown topic \"" + topic +
                                            "\"; topics are: " + TopicList(m_server.topics));
    }
    bool subscribed = false;
    {
      base::MutexLock lock(m_mu);
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
      base::MutexLock lock(m_mu);
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
      self->m_server.CountWsMessageSent();
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
  // Over TLS the half-close is TCP's too, without a close_notify: a TLS shutdown
  // would have to read the peer's, which the pending read cannot share.
  // Not before the accept completes: until then the handshake owns the stream (its
  // 101 response is being written outside Beast's write lock, and on completion
  // Beast's open() clears that lock), so a write started then overlaps the 101 and
  // has its lock taken away, which Beast 1.74 reports as soft_mutex.hpp:75
  // `id_ == T::id`. OnAccept calls back when the accept completes.
  void AdvanceClose() {
    if (m_finished || !m_close_started || m_close_sent) return;
    {
      base::MutexLock lock(m_mu);
      if (!m_accepted) return;  // OnAccept calls back
      if (m_writing) return;    // WriteNext calls back when it ends
      m_writing = true;
    }
    m_close_sent = true;
    m_ws.text(true);
    auto notice = m_close_notice;
    m_ws.async_write(net::buffer(*notice), [self = Self(), notice](beast::error_code ec, size_t) {
      {
        base::MutexLock lock(self->m_mu);
        self->m_writing = false;
      }
      if (ec) return self->Finish();
      beast::error_code ignored;
      RawSocket(beast::get_lowest_layer(self->m_ws)).shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  void Finish() {
    if (m_finished) return;
    m_finished = true;
    {
      base::MutexLock lock(m_mu);
      m_closing = true;
      m_queue.clear();
      m_queue_bytes = 0;
    }
    m_kill_timer.cancel();
    DisarmWriteTimer();
    LiftUnsubscribedTimer();
    beast::error_code ignored;
    tcp::socket& socket = RawSocket(beast::get_lowest_layer(m_ws));
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    auto self = Self();  // keep alive past Unregister
    m_server.Unregister(this);
  }

  static std::string TopicList(const std::set<std::string>& topics) {
    std::string out;
    for (const auto& t : topics) out += (out.empty() ? "" : ", ") + t;
    return out;
  }

  HttpServer::Impl& m_server;
  websocket::stream<Next> m_ws;
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
  base::Mutex m_mu;
  std::set<std::string> m_topics GUARDED_BY(m_mu);
  std::deque<std::shared_ptr<const std::string>> m_queue GUARDED_BY(m_mu);
  size_t m_queue_bytes GUARDED_BY(m_mu) = 0;  ///< the sizes of m_queue's frames
  bool m_accepted GUARDED_BY(m_mu) = false;
  bool m_writing GUARDED_BY(m_mu) = false;
  bool m_closing GUARDED_BY(m_mu) = false;
};

}  // namespace

void StartWsSession(HttpServer::Impl& server, Peer peer, beast::tcp_stream&& stream,
                    std::set<std::string> topics, UpgradeRequest request) {
  auto ws = std::make_shared<WsSession<tcp::socket>>(server, std::move(peer),
                                                     stream.release_socket(), std::move(topics));
  server.Register(ws);
  ws->Accept(std::move(request));
}

void StartWsSession(HttpServer::Impl& server, Peer peer, TlsStream&& stream,
                    std::set<std::string> topics, UpgradeRequest request) {
  auto ws = std::make_shared<WsSession<TlsStream>>(server, std::move(peer), std::move(stream),
                                                   std::move(topics));
  server.Register(ws);
  ws->Accept(std::move(request));
}

}  // namespace gpunet::server
