#include "provider/broker_wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/check.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

namespace {

void PutBe(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

/// A cursor over one frame; every read checks what is left.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : m_bytes(bytes) {}
  base::Result<uint64_t> Be(int bytes, std::string_view what) {
    if (m_bytes.size() - m_pos < static_cast<size_t>(bytes)) {
      return Fail(ErrorCode::kCorrupt, "broker frame ends inside " + std::string(what));
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(m_bytes[m_pos++]);
    return v;
  }
  base::Result<std::string_view> Take(size_t n, std::string_view what) {
    if (m_bytes.size() - m_pos < n) {
      return Fail(ErrorCode::kCorrupt, "broker frame ends inside " + std::string(what));
    }
    std::string_view out = m_bytes.substr(m_pos, n);
    m_pos += n;
    return out;
  }
  bool AtEnd() const { return m_pos == m_bytes.size(); }

 private:
  std::string_view m_bytes;
  size_t m_pos = 0;
};

bool ValidKey(std::string_view key) {
  if (key.empty() || key.size() > kBrokerKeyBytesMax) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool KnownOp(uint8_t op) {
  return op >= static_cast<uint8_t>(BrokerOp::kReply) &&
         op <= static_cast<uint8_t>(BrokerOp::kSession);
}

/// Descriptors that arrived with a frame's bytes; closed unless taken.
struct Arrived {
  std::vector<int> fds;
  bool truncated = false;  ///< the kernel had more than fit (it closed those)
  Arrived() = default;
  Arrived(const Arrived&) = delete;
  Arrived& operator=(const Arrived&) = delete;
  ~Arrived() {
    for (int fd : fds) ::close(fd);
  }
};

/// One read that also collects descriptors sent with the bytes (SCM_RIGHTS); a plain
/// read on a pipe.
ssize_t ReadSome(int fd, char* out, size_t n, Arrived& arrived) {
  constexpr size_t kFdsAtOnce = 4;  // one is allowed; room to see (and close) extras
  alignas(cmsghdr) char control[CMSG_SPACE(kFdsAtOnce * sizeof(int))];
  iovec iov{out, n};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t r = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (r < 0 && errno == ENOTSOCK) return ::read(fd, out, n);
  if (r < 0) return r;
  if ((msg.msg_flags & MSG_CTRUNC) != 0) arrived.truncated = true;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int passed = -1;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      arrived.fds.push_back(passed);
    }
  }
  return r;
}

/// Reads exactly n bytes. A peer that closes before the first byte of a frame
/// (`frame_start`) ended cleanly: kNotFound; anywhere else the frame is torn.
base::Status ReadExactly(int fd, char* out, size_t n, bool frame_start, Arrived& arrived) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ReadSome(fd, out + done, n - done, arrived);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Fail(ErrorCode::kIo, std::string("broker read: ") + std::strerror(errno));
    if (r == 0) {
      if (done == 0 && frame_start) {
        return Fail(ErrorCode::kNotFound, "the broker peer closed the connection");
      }
      return Fail(ErrorCode::kCorrupt, "the broker peer closed the connection inside a frame");
    }
    done += static_cast<size_t>(r);
  }
  return base::Ok();
}

}  // namespace

std::string_view BrokerOpName(BrokerOp op) {
  switch (op) {
    case BrokerOp::kReply:
      return "reply";
    case BrokerOp::kEnvironments:
      return "environments";
    case BrokerOp::kLease:
      return "lease";
    case BrokerOp::kAuthorize:
      return "authorize";
    case BrokerOp::kManifest:
      return "manifest";
    case BrokerOp::kSecrets:
      return "secrets";
    case BrokerOp::kUpload:
      return "upload";
    case BrokerOp::kEvents:
      return "events";
    case BrokerOp::kLogs:
      return "logs";
    case BrokerOp::kOutputs:
      return "outputs";
    case BrokerOp::kStatus:
      return "status";
    case BrokerOp::kSession:
      return "session";
  }
  return "unknown";
}

std::optional<std::string_view> BrokerFrame::Field(std::string_view key) const {
  auto it = fields.find(std::string(key));
  if (it == fields.end()) return std::nullopt;
  return std::string_view(it->second);
}

base::Result<std::string> EncodeBrokerFrame(const BrokerFrame& frame) {
  if (!KnownOp(static_cast<uint8_t>(frame.op))) {
    return Fail(ErrorCode::kInvalidArgument, "broker frame with an unknown op");
  }
  if (frame.fields.size() > kBrokerFieldsMax) {
    return Fail(ErrorCode::kInvalidArgument,
                "broker frame with more than " + std::to_string(kBrokerFieldsMax) + " fields");
  }
  if (frame.body.size() > kBrokerBodyBytesMax) {
    return Fail(ErrorCode::kInvalidArgument,
                "broker frame body over " + std::to_string(kBrokerBodyBytesMax) + " bytes");
  }
  std::string rest;
  rest.push_back(static_cast<char>(frame.op));
  PutBe(rest, frame.lease_id, 8);
  PutBe(rest, frame.fields.size(), 2);
  for (const auto& [key, value] : frame.fields) {
    if (!ValidKey(key) || value.size() > kBrokerValueBytesMax) {
      return Fail(ErrorCode::kInvalidArgument,
                  "broker frame field '" + key.substr(0, 64) + "' breaks the key or value limits");
    }
    PutBe(rest, key.size(), 1);
    rest += key;
    PutBe(rest, value.size(), 4);
    rest += value;
  }
  PutBe(rest, frame.body.size(), 4);
  rest += frame.body;
  if (rest.size() > kBrokerFrameBytesMax) {
    return Fail(ErrorCode::kInvalidArgument, "broker frame over its size limit");
  }
  std::string out;
  PutBe(out, rest.size(), 4);
  return out + rest;
}

base::Result<BrokerFrame> DecodeBrokerFrame(std::string_view bytes) {
  if (bytes.size() > kBrokerFrameBytesMax) {
    return Fail(ErrorCode::kCorrupt,
                "broker frame over " + std::to_string(kBrokerFrameBytesMax) + " bytes");
  }
  Cursor in(bytes);
  BrokerFrame frame;
  GPUNET_TRY_ASSIGN(auto op, in.Be(1, "op"));
  if (!KnownOp(static_cast<uint8_t>(op))) {
    return Fail(ErrorCode::kCorrupt, "broker frame with unknown op " + std::to_string(op));
  }
  frame.op = static_cast<BrokerOp>(op);
  GPUNET_TRY_ASSIGN(frame.lease_id, in.Be(8, "lease id"));
  GPUNET_TRY_ASSIGN(auto count, in.Be(2, "field count"));
  if (count > kBrokerFieldsMax) {
    return Fail(ErrorCode::kCorrupt, "broker frame with " + std::to_string(count) +
                                         " fields (at most " + std::to_string(kBrokerFieldsMax) +
                                         ")");
  }
  std::string previous;
  for (uint64_t i = 0; i < count; ++i) {
    GPUNET_TRY_ASSIGN(auto key_len, in.Be(1, "a key length"));
    GPUNET_TRY_ASSIGN(auto key, in.Take(key_len, "a key"));
    if (!ValidKey(key)) return Fail(ErrorCode::kCorrupt, "broker frame with a malformed key");
    if (i > 0 && key <= previous) {
      return Fail(ErrorCode::kNonCanonical, "broker frame keys not strictly ascending");
    }
    GPUNET_TRY_ASSIGN(auto value_len, in.Be(4, "a value length"));
    if (value_len > kBrokerValueBytesMax) {
      return Fail(ErrorCode::kCorrupt,
                  "broker frame value over " + std::to_string(kBrokerValueBytesMax) + " bytes");
    }
    GPUNET_TRY_ASSIGN(auto value, in.Take(value_len, "a value"));
    previous = std::string(key);
    frame.fields.emplace(previous, std::string(value));
  }
  GPUNET_TRY_ASSIGN(auto body_len, in.Be(4, "the body length"));
  if (body_len > kBrokerBodyBytesMax) {
    return Fail(ErrorCode::kCorrupt,
                "broker frame body over " + std::to_string(kBrokerBodyBytesMax) + " bytes");
  }
  GPUNET_TRY_ASSIGN(auto body, in.Take(body_len, "the body"));
  frame.body = std::string(body);
  if (!in.AtEnd()) return Fail(ErrorCode::kCorrupt, "broker frame has bytes after its body");
  return frame;
}

BrokerFd& BrokerFd::operator=(BrokerFd&& other) noexcept {
  if (this != &other) {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = std::exchange(other.m_fd, -1);
  }
  return *this;
}

BrokerFd::~BrokerFd() {
  if (m_fd >= 0) ::close(m_fd);
}

namespace {

base::Result<BrokerFrame> ReadFrame(int fd, Arrived& arrived) {
  char prefix[4];
  GPUNET_TRY(ReadExactly(fd, prefix, sizeof prefix, /*frame_start=*/true, arrived));
  uint64_t length = 0;
  for (char c : prefix) length = (length << 8) | static_cast<unsigned char>(c);
  if (length > kBrokerFrameBytesMax) {
    return Fail(ErrorCode::kCorrupt, "broker frame announces " + std::to_string(length) +
                                         " bytes (at most " + std::to_string(kBrokerFrameBytesMax) +
                                         ")");
  }
  std::string rest(length, '\0');
  GPUNET_TRY(ReadExactly(fd, rest.data(), rest.size(), /*frame_start=*/false, arrived));
  return DecodeBrokerFrame(rest);
}

/// The first bytes of a frame with `pass_fd` attached.
ssize_t SendWithFd(int fd, const char* data, size_t n, int pass_fd) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<char*>(data), n};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
}

}  // namespace

base::Result<BrokerFrame> ReadBrokerFrame(int fd) {
  Arrived arrived;
  auto frame = ReadFrame(fd, arrived);
  if (!arrived.fds.empty() || arrived.truncated) {
    // Closed by `arrived`: whatever the frame said, it broke the wire's rules.
    return Fail(ErrorCode::kCorrupt, "a descriptor came with a broker frame that takes none");
  }
  return frame;
}

base::Result<BrokerFrame> ReadBrokerFrameWithFd(int fd, BrokerFd* passed) {
  GPUNET_CHECK(passed != nullptr);
  *passed = BrokerFd();
  Arrived arrived;
  auto frame = ReadFrame(fd, arrived);
  if (arrived.fds.size() > 1 || arrived.truncated)
    return Fail(ErrorCode::kCorrupt, "more than one descriptor came with a broker frame");
  if (!frame) return frame;  // a descriptor with a torn frame is closed by `arrived`
  if (!arrived.fds.empty()) *passed = BrokerFd(std::exchange(arrived.fds.back(), -1));
  arrived.fds.clear();
  return frame;
}

base::Status WriteBrokerFrame(int fd, const BrokerFrame& frame, int pass_fd) {
  GPUNET_TRY_ASSIGN(auto bytes, EncodeBrokerFrame(frame));
  size_t done = 0;
  while (done < bytes.size()) {
    // MSG_NOSIGNAL: a peer that went away is an error here, not a SIGPIPE.
    ssize_t n = done == 0 && pass_fd >= 0
                    ? SendWithFd(fd, bytes.data(), bytes.size(), pass_fd)
                    : ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && pass_fd >= 0 && errno == ENOTSOCK)
      return Fail(ErrorCode::kIo, "broker write: a descriptor can only go over a socket");
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrorCode::kIo, std::string("broker write: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return base::Ok();
}

}  // namespace gpunet::provider
