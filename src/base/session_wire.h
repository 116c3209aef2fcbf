// The frames of an interactive session (issue 18 item 3; docs/sandbox.md
// "Interactive sessions"): what the tenant's client and the in-sandbox init
// (gpunet-init) say to each other, relayed verbatim by the provider's host, which
// never parses them.
//
// A frame is `u8 type, u32 big-endian payload length (<= kSessionPayloadMax), payload`.
// The client sends one OPEN first, then STDIN, STDIN_EOF, RESIZE, SIGNAL; init answers
// READY once the session is open, then STDOUT, STDERR, STDOUT_EOF, and last EXIT or
// ERROR. Pure: no I/O here; init, the client and the tests share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gpunet::base {

/// Frame types. The numbers are the wire's: never renumbered.
enum class SessionFrameType : uint8_t {
  kOpen = 1,        ///< client→init, exactly once, first: an OPEN payload (EncodeSessionOpen)
  kStdin = 2,       ///< client→init: bytes
  kStdout = 3,      ///< init→client: bytes
  kStderr = 4,      ///< init→client: bytes
  kStdinEof = 5,    ///< client→init, empty: the client's input ended
  kResize = 6,      ///< client→init: u16 rows, u16 cols (each 1..kSessionTermSizeMax)
  kSignal = 7,      ///< client→init: u8 signal, one of SessionSignalAllowed
  kReady = 8,       ///< init→client, empty: the session is open
  kExit = 9,        ///< init→client, last: i32 exit code, u8 signal (0 = none)
  kError = 10,      ///< init→client, last: a UTF-8 message that says what to do
  kStdoutEof = 11,  ///< init→client, empty: no more STDOUT will come
};

/// What an OPEN asks for.
enum class SessionOpenKind : uint8_t {
  kExec = 1,        ///< run a command (or a login shell), with or without a pty
  kForward = 2,     ///< connect to 127.0.0.1:port (then [::1]:port) inside the sandbox
  kSsh = 3,         ///< run `sshd -i` that accepts the given public key
  kSshHostKey = 4,  ///< send the sshd's host public key line as STDOUT, then EXIT 0
};

inline constexpr size_t kSessionHeaderBytes = 5;
inline constexpr uint32_t kSessionPayloadMax = 65536;
inline constexpr uint16_t kSessionTermSizeMax = 4096;  ///< rows and cols, each
inline constexpr size_t kSessionArgcMax = 1024;
inline constexpr size_t kSessionEnvcMax = 64;
inline constexpr size_t kSessionSshKeyBytesMax = 8192;

/// One whole frame.
struct SessionFrame {
  SessionFrameType type = SessionFrameType::kStdin;
  std::string payload;
};

/// A terminal size. In an exec OPEN, 0 x 0 means "unknown" (init uses 24 x 80);
/// in a RESIZE each is 1..kSessionTermSizeMax.
struct SessionWindow {
  uint16_t rows = 0;
  uint16_t cols = 0;
};

/// A decoded OPEN payload. Only the fields of `kind` are meaningful.
struct SessionOpen {
  SessionOpenKind kind = SessionOpenKind::kExec;
  // kExec
  bool tty = false;
  SessionWindow window;
  std::vector<std::string> argv;  ///< empty = a login shell
  std::vector<std::string> env;   ///< NAME=value, only TERM, LANG and LC_*
  // kForward
  uint16_t port = 0;
  // kSsh
  std::string ssh_public_key;  ///< one OpenSSH public key line
};

/// How an exec session ended: EXIT's payload.
struct SessionExit {
  int32_t exit_code = 0;  ///< the code, or 128 + signal
  uint8_t signal = 0;     ///< 0 = it exited
};

/// Header + payload. `payload` must be at most kSessionPayloadMax (checked: a bug
/// otherwise; callers split larger data, see kSessionPayloadMax).
std::string EncodeSessionFrame(SessionFrameType type, std::string_view payload);

/// The OPEN payload of `open`. Refuses what DecodeSessionOpen would refuse, so a
/// client learns of a bad request before it sends it.
Result<std::string> EncodeSessionOpen(const SessionOpen& open);
/// Parses and checks an OPEN payload: the kind's fields, their limits (argc, envc,
/// sizes, port 1..65535, no NUL in argv or env, env names TERM/LANG/LC_* only, a key
/// line with no control bytes) and no trailing bytes. kInvalidArgument with a message
/// for the person who sent it.
Result<SessionOpen> DecodeSessionOpen(std::string_view payload);

std::string EncodeSessionResize(SessionWindow window);
/// 4 bytes, rows and cols each 1..kSessionTermSizeMax.
Result<SessionWindow> DecodeSessionResize(std::string_view payload);

/// Signals a client may send: SIGHUP 1, SIGINT 2, SIGQUIT 3, SIGKILL 9, SIGTERM 15.
bool SessionSignalAllowed(int signal);
/// The SIGNAL payload (`signal` must be allowed: checked).
std::string EncodeSessionSignal(int signal);
Result<int> DecodeSessionSignal(std::string_view payload);

std::string EncodeSessionExit(SessionExit exit);
Result<SessionExit> DecodeSessionExit(std::string_view payload);

/// Short name of a frame type for messages, e.g. "STDIN"; "type 42" for others.
std::string SessionFrameTypeName(uint8_t type);

/// Takes bytes as they arrive (any split) and yields whole frames. Checks the header
/// (a known type, the length limit) and the fixed-size payloads (STDIN_EOF, READY,
/// STDOUT_EOF empty; RESIZE 4 bytes; SIGNAL 1; EXIT 5) as soon as they are known; the
/// OPEN payload is the receiver's to decode. After an error it stays failed.
class SessionFrameDecoder {
 public:
  /// Appends received bytes.
  void Feed(std::string_view bytes);
  /// The next whole frame, nullopt when more bytes are needed, or the error.
  Result<std::optional<SessionFrame>> Next();
  /// At the end of the stream: kCorrupt when a partial frame is left over.
  Status Finish() const;
  /// Bytes held that no returned frame consumed yet.
  size_t Buffered() const { return m_buffer.size() - m_offset; }

 private:
  std::string m_buffer;
  size_t m_offset = 0;
  std::optional<Error> m_error;
};

}  // namespace gpunet::base
