#include "client/session_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "base/check.h"
#include "base/file_util.h"
#include "client/tenant_transfer.h"
#include "client/terminal_text.h"

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;
using base::SessionFrameType;

std::string SessionTarget(uint64_t lease_id) {
  return "/leases/" + std::to_string(lease_id) + "/session";
}

base::Error SessionRefusal(uint64_t lease_id, const TenantResponse& answer) {
  const std::string lease = std::to_string(lease_id);
  const std::string said = AnswerMessage(answer.body);
  const std::string provider =
      "the provider answered " + std::to_string(answer.status) + (said.empty() ? "" : ": " + said);
  switch (answer.status) {
    case 401:
      return {ErrorCode::kPermissionDenied,
              provider +
                  " (the signature was not accepted: if it speaks of the clock, set this "
                  "machine's clock right, NTP)"};
    case 403:
      return {ErrorCode::kPermissionDenied,
              provider + " (sign with lease " + lease +
                  "'s tenant key, --from KEY, or a session key it delegated: `gpunet lease grant " +
                  lease + " --session-key NAME --from KEY`)"};
    case 404:
      return {ErrorCode::kNotFound, provider +
                                        " (check the lease id with `gpunet lease list`; a provider "
                                        "whose daemon predates sessions answers so too)"};
    case 409:
      return {ErrorCode::kConflict,
              provider +
                  " (a session needs the lease's workload running: " + "`gpunet lease status " +
                  lease + "` shows it, `gpunet lease logs " + lease + "` why it ended)"};
    case 410:
      return {ErrorCode::kConflict, "lease " + lease + " is closed, and its sessions with it: " +
                                        provider + " (rent a new machine; `gpunet lease outputs " +
                                        lease + "` still reads its outputs for a while)"};
    case 429:
      return {ErrorCode::kUnavailable, provider +
                                           " (too many sessions: 16 per lease; end some "
                                           "ssh, shell or forward connections first)"};
    default:
      break;
  }
  if (answer.status >= 500) return {ErrorCode::kUnavailable, provider + " (try again shortly)"};
  return {answer.status == 400 ? ErrorCode::kInvalidArgument : ErrorCode::kInternal, provider};
}

base::Status Session::Send(SessionFrameType type, std::string_view payload) {
  std::string bytes;
  do {
    const std::string_view piece = payload.substr(0, base::kSessionPayloadMax);
    bytes += base::EncodeSessionFrame(type, piece);
    payload.remove_prefix(piece.size());
  } while (!payload.empty());
  std::lock_guard lock(m_send_mutex);
  return m_stream->Write(bytes);
}

base::Result<std::optional<base::SessionFrame>> Session::Next() {
  uint8_t buffer[64 * 1024];
  for (;;) {
    GPUNET_TRY_ASSIGN(auto frame, m_decoder.Next());
    if (frame) return frame;
    if (m_ended) {
      GPUNET_TRY(m_decoder.Finish());
      return std::optional<base::SessionFrame>();
    }
    GPUNET_TRY_ASSIGN(const size_t n, m_stream->Read(buffer));
    if (n == 0) m_ended = true;
    m_decoder.Feed(std::string_view(reinterpret_cast<const char*>(buffer), n));
  }
}

void Session::Close() {
  if (m_stream) m_stream->Close();
}

base::Result<std::unique_ptr<Session>> OpenSession(TenantClient& tenant, uint64_t lease_id,
                                                   const base::SessionOpen& open) {
  GPUNET_TRY_ASSIGN(const std::string payload, base::EncodeSessionOpen(open));
  GPUNET_TRY_ASSIGN(TenantUpgrade up, tenant.Upgrade(SessionTarget(lease_id), kSessionProtocol));
  if (!up.stream) return std::unexpected(SessionRefusal(lease_id, up.response));
  auto session = std::make_unique<Session>(std::move(up.stream));
  GPUNET_TRY(session->Send(SessionFrameType::kOpen, payload));
  return session;
}

namespace {

/// The input side of a relay: its own thread reads input_fd (and resize_fd) until
/// the input ends or Stop, sending STDIN, STDIN_EOF and RESIZE.
class InputPump {
 public:
  InputPump(Session& session, const SessionRelayIo& io, std::atomic<uint64_t>& sent)
      : m_session(session), m_io(io), m_sent(sent) {
    GPUNET_CHECK(::pipe2(m_wake, O_CLOEXEC) == 0);
    m_thread = std::thread([this] { Run(); });
  }
  ~InputPump() {
    [[maybe_unused]] const ssize_t w = ::write(m_wake[1], "x", 1);
    m_thread.join();
    ::close(m_wake[0]);
    ::close(m_wake[1]);
  }

 private:
  void Run() {
    bool input_open = m_io.input_fd >= 0;
    if (!input_open && !m_session.Send(SessionFrameType::kStdinEof)) return;
    std::vector<char> buffer(32 * 1024);
    for (;;) {
      pollfd fds[3] = {{m_wake[0], POLLIN, 0},
                       {input_open ? m_io.input_fd : -1, POLLIN, 0},
                       {m_io.resize_fd, POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents != 0) return;
      if (fds[2].revents != 0 && !Resize()) return;
      if (fds[1].revents == 0) continue;
      const ssize_t n = ::read(m_io.input_fd, buffer.data(), buffer.size());
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // the end, or an error reading (a reset socket): the input ended
        input_open = false;
        if (!m_session.Send(SessionFrameType::kStdinEof)) return;
        if (m_io.resize_fd < 0) return;
        continue;
      }
      if (!m_session.Send(SessionFrameType::kStdin,
                          std::string_view(buffer.data(), static_cast<size_t>(n))))
        return;
      m_sent += static_cast<uint64_t>(n);
    }
  }

  bool Resize() {
    char drain[64];
    [[maybe_unused]] const ssize_t r = ::read(m_io.resize_fd, drain, sizeof drain);
    const auto window = m_io.window ? m_io.window() : std::nullopt;
    if (!window || window->rows == 0 || window->cols == 0) return true;
    return m_session.Send(SessionFrameType::kResize, base::EncodeSessionResize(*window))
        .has_value();
  }

  Session& m_session;
  const SessionRelayIo& m_io;
  std::atomic<uint64_t>& m_sent;
  int m_wake[2] = {-1, -1};
  std::thread m_thread;
};

}  // namespace

base::Result<SessionEnd> RelaySession(Session& session, const SessionRelayIo& io) {
  GPUNET_CHECK(io.output_fd >= 0);
  SessionEnd end;
  std::atomic<uint64_t> sent{0};
  uint64_t received = 0;
  InputPump input(session, io, sent);
  // Closed before the pump is joined: a pump that waits to write then returns too.
  struct CloseFirst {
    Session& session;
    ~CloseFirst() { session.Close(); }
  } close_first{session};
  for (;;) {
    GPUNET_TRY_ASSIGN(auto frame, session.Next());
    if (!frame)
      return Fail(ErrorCode::kUnavailable,
                  "the session ended before the lease's side said how (the lease closed, or the "
                  "provider's daemon restarted): check `gpunet lease status`");
    switch (frame->type) {
      case SessionFrameType::kReady:
        end.ready = true;
        if (io.on_ready) io.on_ready();
        break;
      case SessionFrameType::kStdout:
      case SessionFrameType::kStderr: {
        const bool err = frame->type == SessionFrameType::kStderr && io.error_fd >= 0;
        if (!base::WriteAll(err ? io.error_fd : io.output_fd, frame->payload, "the output")) {
          end.output_failed = true;
          return end;
        }
        received += frame->payload.size();
        if (io.on_progress) io.on_progress(sent.load(), received);
        break;
      }
      case SessionFrameType::kStdoutEof:
        // Not a socket: ENOTSOCK, nothing to do.
        if (io.shutdown_output_on_eof) ::shutdown(io.output_fd, SHUT_WR);
        break;
      case SessionFrameType::kExit: {
        GPUNET_TRY_ASSIGN(end.exit, base::DecodeSessionExit(frame->payload));
        return end;
      }
      case SessionFrameType::kError:
        // Printed after "lease 7: " on our stderr: the lease's bytes, one harmless line.
        end.error = TerminalLine(frame->payload, 4096);
        return end;
      default:
        return Fail(ErrorCode::kCorrupt,
                    "the lease's side sent a " +
                        base::SessionFrameTypeName(static_cast<uint8_t>(frame->type)) +
                        " frame, which only a client sends");
    }
  }
}

}  // namespace gpunet::client
