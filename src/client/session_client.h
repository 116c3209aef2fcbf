// The tenant's side of an interactive session (docs/tenant-api.md "Sessions",
// docs/sandbox.md "Interactive sessions"): a signed `GET /leases/{id}/session` with
// `Upgrade: gpunet-session/1` over the pinned TLS of TenantClient, then frames
// (base/session_wire.h) both ways with the lease's in-sandbox init. The provider's
// host relays the bytes and never reads them.
//
// `gpunet exec/shell/forward/cp/ssh-proxy` (apps/gpunet/cmd_interactive.cpp) open a
// Session and hand it to RelaySession with the local file descriptors to move bytes
// between; the terminal (raw mode, SIGWINCH) stays the caller's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/session_wire.h"
#include "client/tenant_client.h"

namespace gpunet::client {

/// The Upgrade header's protocol of a session.
inline constexpr std::string_view kSessionProtocol = "gpunet-session/1";

/// GET /leases/{id}/session.
std::string SessionTarget(uint64_t lease_id);

/// What a refused session request means, for people: the provider's own message and
/// what to do (409: the workload is not running; 410: the lease is closed; 429: too
/// many sessions; 401/403: the signature). The code: kConflict for 409 and 410,
/// kPermissionDenied for 401/403, kNotFound for 404, kUnavailable for 429 and 5xx.
base::Error SessionRefusal(uint64_t lease_id, const TenantResponse& answer);

/// One session's frames over an upgraded connection. Send may be called from any
/// thread (one frame at a time goes out whole); Next from one thread at a time.
class Session {
 public:
  explicit Session(std::unique_ptr<ByteStream> stream) : m_stream(std::move(stream)) {}
  ~Session() { Close(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Sends one frame; a STDIN payload longer than kSessionPayloadMax goes as several.
  [[nodiscard]] base::Status Send(base::SessionFrameType type, std::string_view payload = {});
  /// The next frame from init, or nullopt when the connection ended. A malformed
  /// frame, or a connection that ends inside one, is kCorrupt.
  [[nodiscard]] base::Result<std::optional<base::SessionFrame>> Next();
  /// Ends the connection (a Next that waits returns an error).
  void Close();

 private:
  std::unique_ptr<ByteStream> m_stream;
  std::mutex m_send_mutex;
  base::SessionFrameDecoder m_decoder;
  bool m_ended = false;
};

/// Opens a session on `lease_id` through `tenant` (its scope names the lease) and
/// sends `open` as the first frame. A refusal before the upgrade is SessionRefusal's
/// error; a bad `open` kInvalidArgument before anything is sent.
[[nodiscard]] base::Result<std::unique_ptr<Session>> OpenSession(TenantClient& tenant,
                                                                 uint64_t lease_id,
                                                                 const base::SessionOpen& open);

/// The local ends RelaySession moves bytes between.
struct SessionRelayIo {
  /// Read and sent as STDIN; its end is STDIN_EOF. -1: no input (STDIN_EOF at once).
  int input_fd = -1;
  /// STDOUT goes here.
  int output_fd = -1;
  /// STDOUT_EOF shuts output_fd's writing side (a socket's; shutdown). Only for an
  /// output this session owns (a forwarded connection): a shared stdout (a socket to
  /// journald or a CI runner) must not be ended for others by the lease's side.
  bool shutdown_output_on_eof = false;
  /// STDERR goes here (-1: to output_fd).
  int error_fd = -1;
  /// Readable when the terminal's size changed (a self-pipe the caller's SIGWINCH
  /// handler writes to; drained here); then `window` is sent as RESIZE. -1: none.
  int resize_fd = -1;
  std::function<std::optional<base::SessionWindow>()> window;
  /// Called once, on READY.
  std::function<void()> on_ready;
  /// Called with the running total of bytes moved each way (progress).
  std::function<void(uint64_t sent, uint64_t received)> on_progress;
};

/// How a session ended.
struct SessionEnd {
  bool ready = false;                     ///< READY came
  std::optional<base::SessionExit> exit;  ///< EXIT came (the command's code)
  std::optional<std::string> error;       ///< ERROR came: init's message (TerminalLine)
  bool output_failed = false;             ///< writing output_fd failed (a closed pipe)
};

/// Moves bytes until EXIT, ERROR, the connection's end or a failed write to the
/// output: input_fd → STDIN frames (a thread of its own), frames → output_fd and
/// error_fd. A connection that ends before EXIT or ERROR is kUnavailable.
[[nodiscard]] base::Result<SessionEnd> RelaySession(Session& session, const SessionRelayIo& io);

}  // namespace gpunet::client
