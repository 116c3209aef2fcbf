#include "base/session_wire.h"

#include <utility>

#include "base/check.h"

namespace gpunet::base {
namespace {

void PutU8(std::string& out, uint8_t v) {
  out.push_back(static_cast<char>(v));
}
void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void PutU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void PutString(std::string& out, std::string_view s) {
  GPUNET_CHECK(s.size() <= kSessionPayloadMax);
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

/// Reads big-endian fields off a payload; every read checks the bytes left.
class Reader {
 public:
  explicit Reader(std::string_view data) : m_data(data) {}
  bool U8(uint8_t& v) {
    if (m_data.size() < 1) return false;
    v = static_cast<uint8_t>(m_data[0]);
    m_data.remove_prefix(1);
    return true;
  }
  bool U16(uint16_t& v) {
    if (m_data.size() < 2) return false;
    v = static_cast<uint16_t>((Byte(0) << 8) | Byte(1));
    m_data.remove_prefix(2);
    return true;
  }
  bool U32(uint32_t& v) {
    if (m_data.size() < 4) return false;
    v = (Byte(0) << 24) | (Byte(1) << 16) | (Byte(2) << 8) | Byte(3);
    m_data.remove_prefix(4);
    return true;
  }
  bool String(std::string& v) {
    uint32_t len = 0;
    if (!U32(len) || m_data.size() < len) return false;
    v.assign(m_data.substr(0, len));
    m_data.remove_prefix(len);
    return true;
  }
  bool Done() const { return m_data.empty(); }

 private:
  uint32_t Byte(size_t i) const { return static_cast<uint8_t>(m_data[i]); }
  std::string_view m_data;
};

std::unexpected<Error> Bad(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, "session OPEN: " + std::move(message));
}

bool IsKnownType(uint8_t type) {
  return type >= static_cast<uint8_t>(SessionFrameType::kOpen) &&
         type <= static_cast<uint8_t>(SessionFrameType::kStdoutEof);
}

/// The payload size a type must have, or -1 for any size up to the limit.
int FixedPayloadBytes(SessionFrameType type) {
  switch (type) {
    case SessionFrameType::kStdinEof:
    case SessionFrameType::kReady:
    case SessionFrameType::kStdoutEof:
      return 0;
    case SessionFrameType::kResize:
      return 4;
    case SessionFrameType::kSignal:
      return 1;
    case SessionFrameType::kExit:
      return 5;
    default:
      return -1;
  }
}

bool HonouredEnvName(std::string_view name) {
  return name == "TERM" || name == "LANG" || name == "LC_ALL" ||
         (name.starts_with("LC_") && name.size() > 3);
}

Status CheckEnvEntry(std::string_view entry) {
  size_t eq = entry.find('=');
  if (eq == std::string_view::npos || eq == 0) return Bad("an environment entry is not NAME=value");
  std::string_view name = entry.substr(0, eq);
  for (char c : name) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return Bad("an environment name holds a character other than [A-Za-z0-9_]");
  }
  if (!HonouredEnvName(name))
    return Bad("environment variable " + std::string(name) +
               " is not passed to a session (only TERM, LANG and LC_*; set others in the "
               "command, e.g. `env NAME=value cmd`)");
  if (entry.find('\0') != std::string_view::npos) return Bad("an environment value holds a NUL");
  return Ok();
}

/// One OpenSSH public key line: "<type> <base64> [comment]", no control bytes and no
/// authorized_keys options before the type (the type is [a-z0-9@.-]+).
Status CheckPublicKeyLine(std::string_view line) {
  if (line.empty()) return Bad("the ssh public key is empty");
  if (line.size() > kSessionSshKeyBytesMax)
    return Bad("the ssh public key is over " + std::to_string(kSessionSshKeyBytesMax) + " bytes");
  for (char c : line) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      return Bad("the ssh public key holds a control byte (give one line of a .pub file)");
  }
  size_t space = line.find(' ');
  std::string_view type = line.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? "" : line.substr(space + 1);
  std::string_view blob = rest.substr(0, rest.find(' '));
  bool type_ok = !type.empty();
  for (char c : type)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '@' || c == '.' || c == '-'))
      type_ok = false;
  bool blob_ok = !blob.empty();
  for (char c : blob)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '/' || c == '='))
      blob_ok = false;
  if (!type_ok || !blob_ok)
    return Bad(
        "the ssh public key is not an OpenSSH public key line (`ssh-ed25519 AAAA... comment`)");
  return Ok();
}

Status CheckOpen(const SessionOpen& open) {
  switch (open.kind) {
    case SessionOpenKind::kExec: {
      const SessionWindow& w = open.window;
      bool unknown = w.rows == 0 && w.cols == 0;
      if (!unknown && (w.rows == 0 || w.cols == 0 || w.rows > kSessionTermSizeMax ||
                       w.cols > kSessionTermSizeMax))
        return Bad("the terminal size " + std::to_string(w.rows) + "x" + std::to_string(w.cols) +
                   " is not 0x0 or within 1..4096 each");
      if (open.argv.size() > kSessionArgcMax)
        return Bad("more than " + std::to_string(kSessionArgcMax) + " command arguments");
      for (const std::string& arg : open.argv) {
        if (arg.find('\0') != std::string::npos) return Bad("a command argument holds a NUL");
        if (arg.size() > kSessionPayloadMax) return Bad("a command argument is over 65536 bytes");
      }
      if (open.env.size() > kSessionEnvcMax)
        return Bad("more than " + std::to_string(kSessionEnvcMax) + " environment entries");
      for (const std::string& entry : open.env) {
        if (entry.size() > kSessionPayloadMax)
          return Bad("an environment entry is over 65536 bytes");
        GPUNET_TRY(CheckEnvEntry(entry));
      }
      return Ok();
    }
    case SessionOpenKind::kForward:
      if (open.port == 0) return Bad("port 0 cannot be forwarded (give 1..65535)");
      return Ok();
    case SessionOpenKind::kSsh:
      return CheckPublicKeyLine(open.ssh_public_key);
    case SessionOpenKind::kSshHostKey:
      return Ok();
  }
  return Bad("unknown kind " + std::to_string(static_cast<int>(open.kind)));
}

Result<SessionOpen> DecodeExec(Reader& in) {
  SessionOpen open;
  open.kind = SessionOpenKind::kExec;
  uint8_t tty = 0;
  uint16_t argc = 0;
  if (!in.U8(tty) || !in.U16(open.window.rows) || !in.U16(open.window.cols) || !in.U16(argc))
    return Bad("exec payload cut short");
  if (tty > 1) return Bad("tty is neither 0 nor 1");
  open.tty = tty == 1;
  if (argc > kSessionArgcMax)
    return Bad("more than " + std::to_string(kSessionArgcMax) + " command arguments");
  open.argv.resize(argc);
  for (std::string& arg : open.argv)
    if (!in.String(arg)) return Bad("exec payload cut short in the arguments");
  uint16_t envc = 0;
  if (!in.U16(envc)) return Bad("exec payload cut short");
  if (envc > kSessionEnvcMax)
    return Bad("more than " + std::to_string(kSessionEnvcMax) + " environment entries");
  open.env.resize(envc);
  for (std::string& entry : open.env)
    if (!in.String(entry)) return Bad("exec payload cut short in the environment");
  return open;
}

}  // namespace

std::string EncodeSessionFrame(SessionFrameType type, std::string_view payload) {
  GPUNET_CHECK(payload.size() <= kSessionPayloadMax);
  GPUNET_CHECK(IsKnownType(static_cast<uint8_t>(type)));
  std::string out;
  out.reserve(kSessionHeaderBytes + payload.size());
  PutU8(out, static_cast<uint8_t>(type));
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

Result<std::string> EncodeSessionOpen(const SessionOpen& open) {
  GPUNET_TRY(CheckOpen(open));
  std::string out;
  PutU8(out, static_cast<uint8_t>(open.kind));
  switch (open.kind) {
    case SessionOpenKind::kExec:
      PutU8(out, open.tty ? 1 : 0);
      PutU16(out, open.window.rows);
      PutU16(out, open.window.cols);
      PutU16(out, static_cast<uint16_t>(open.argv.size()));
      for (const std::string& arg : open.argv) PutString(out, arg);
      PutU16(out, static_cast<uint16_t>(open.env.size()));
      for (const std::string& entry : open.env) PutString(out, entry);
      break;
    case SessionOpenKind::kForward:
      PutU16(out, open.port);
      break;
    case SessionOpenKind::kSsh:
      PutString(out, open.ssh_public_key);
      break;
    case SessionOpenKind::kSshHostKey:
      break;
  }
  if (out.size() > kSessionPayloadMax)
    return Bad("the request is over 65536 bytes (shorten the command)");
  return out;
}

Result<SessionOpen> DecodeSessionOpen(std::string_view payload) {
  Reader in(payload);
  uint8_t kind = 0;
  if (!in.U8(kind)) return Bad("empty payload");
  SessionOpen open;
  switch (kind) {
    case static_cast<uint8_t>(SessionOpenKind::kExec): {
      GPUNET_TRY_ASSIGN(open, DecodeExec(in));
      break;
    }
    case static_cast<uint8_t>(SessionOpenKind::kForward):
      open.kind = SessionOpenKind::kForward;
      if (!in.U16(open.port)) return Bad("forward payload cut short");
      break;
    case static_cast<uint8_t>(SessionOpenKind::kSsh):
      open.kind = SessionOpenKind::kSsh;
      if (!in.String(open.ssh_public_key)) return Bad("ssh payload cut short");
      break;
    case static_cast<uint8_t>(SessionOpenKind::kSshHostKey):
      open.kind = SessionOpenKind::kSshHostKey;
      break;
    default:
      return Bad("unknown kind " + std::to_string(kind) +
                 " (1 exec, 2 forward, 3 ssh, 4 ssh-hostkey; update gpunet?)");
  }
  if (!in.Done()) return Bad("trailing bytes after the payload");
  GPUNET_TRY(CheckOpen(open));
  return open;
}

std::string EncodeSessionResize(SessionWindow window) {
  std::string out;
  PutU16(out, window.rows);
  PutU16(out, window.cols);
  return out;
}

Result<SessionWindow> DecodeSessionResize(std::string_view payload) {
  Reader in(payload);
  SessionWindow w;
  if (!in.U16(w.rows) || !in.U16(w.cols) || !in.Done())
    return Fail(ErrorCode::kInvalidArgument, "session RESIZE: not 4 bytes");
  if (w.rows == 0 || w.cols == 0 || w.rows > kSessionTermSizeMax || w.cols > kSessionTermSizeMax)
    return Fail(ErrorCode::kInvalidArgument, "session RESIZE: " + std::to_string(w.rows) + "x" +
                                                 std::to_string(w.cols) +
                                                 " is not within 1..4096 rows and columns");
  return w;
}

bool SessionSignalAllowed(int signal) {
  return signal == 1 || signal == 2 || signal == 3 || signal == 9 || signal == 15;
}

std::string EncodeSessionSignal(int signal) {
  GPUNET_CHECK(SessionSignalAllowed(signal));
  std::string out;
  PutU8(out, static_cast<uint8_t>(signal));
  return out;
}

Result<int> DecodeSessionSignal(std::string_view payload) {
  if (payload.size() != 1) return Fail(ErrorCode::kInvalidArgument, "session SIGNAL: not 1 byte");
  int signal = static_cast<uint8_t>(payload[0]);
  if (!SessionSignalAllowed(signal))
    return Fail(ErrorCode::kInvalidArgument,
                "session SIGNAL: signal " + std::to_string(signal) +
                    " may not be sent (only HUP 1, INT 2, QUIT 3, KILL 9, TERM 15)");
  return signal;
}

std::string EncodeSessionExit(SessionExit exit) {
  std::string out;
  PutU32(out, static_cast<uint32_t>(exit.exit_code));
  PutU8(out, exit.signal);
  return out;
}

Result<SessionExit> DecodeSessionExit(std::string_view payload) {
  Reader in(payload);
  uint32_t code = 0;
  SessionExit exit;
  if (!in.U32(code) || !in.U8(exit.signal) || !in.Done())
    return Fail(ErrorCode::kInvalidArgument, "session EXIT: not 5 bytes");
  exit.exit_code = static_cast<int32_t>(code);
  return exit;
}

std::string SessionFrameTypeName(uint8_t type) {
  static constexpr const char* kNames[] = {"OPEN",      "STDIN",  "STDOUT",    "STDERR",
                                           "STDIN_EOF", "RESIZE", "SIGNAL",    "READY",
                                           "EXIT",      "ERROR",  "STDOUT_EOF"};
  if (!IsKnownType(type)) return "type " + std::to_string(type);
  return kNames[type - 1];
}

void SessionFrameDecoder::Feed(std::string_view bytes) {
  if (m_error) return;
  // Drop what earlier frames consumed before growing, so the buffer stays within
  // one frame plus what the caller fed since its last Next.
  if (m_offset > 0) {
    m_buffer.erase(0, m_offset);
    m_offset = 0;
  }
  m_buffer.append(bytes);
}

Result<std::optional<SessionFrame>> SessionFrameDecoder::Next() {
  if (m_error) return std::unexpected(*m_error);
  std::string_view rest = std::string_view(m_buffer).substr(m_offset);
  if (rest.empty()) return std::optional<SessionFrame>();
  uint8_t type = static_cast<uint8_t>(rest[0]);
  if (!IsKnownType(type)) {
    m_error = Error{ErrorCode::kCorrupt, "session frame of unknown type " + std::to_string(type)};
    return std::unexpected(*m_error);
  }
  if (rest.size() < kSessionHeaderBytes) return std::optional<SessionFrame>();
  Reader header(rest.substr(1, 4));
  uint32_t len = 0;
  GPUNET_CHECK(header.U32(len));
  auto frame_type = static_cast<SessionFrameType>(type);
  if (len > kSessionPayloadMax) {
    m_error = Error{ErrorCode::kLimitExceeded,
                    "session frame " + SessionFrameTypeName(type) + " of " + std::to_string(len) +
                        " bytes, over the " + std::to_string(kSessionPayloadMax) + " limit"};
    return std::unexpected(*m_error);
  }
  int fixed = FixedPayloadBytes(frame_type);
  if (fixed >= 0 && len != static_cast<uint32_t>(fixed)) {
    m_error = Error{ErrorCode::kCorrupt, "session frame " + SessionFrameTypeName(type) + " of " +
                                             std::to_string(len) + " bytes (it has " +
                                             std::to_string(fixed) + ")"};
    return std::unexpected(*m_error);
  }
  if (rest.size() < kSessionHeaderBytes + len) return std::optional<SessionFrame>();
  SessionFrame frame{frame_type, std::string(rest.substr(kSessionHeaderBytes, len))};
  m_offset += kSessionHeaderBytes + len;
  if (m_offset == m_buffer.size()) {
    m_buffer.clear();
    m_offset = 0;
  }
  return std::optional<SessionFrame>(std::move(frame));
}

Status SessionFrameDecoder::Finish() const {
  if (m_error) return std::unexpected(*m_error);
  if (Buffered() > 0)
    return Fail(ErrorCode::kCorrupt, "the session ended inside a frame (" +
                                         std::to_string(Buffered()) + " bytes left over)");
  return Ok();
}

}  // namespace gpunet::base
