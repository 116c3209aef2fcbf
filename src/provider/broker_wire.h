// The wire between the tenant-facing process and the daemon's root part (issue 17
// item 5; docs/provider.md "Two processes").
//
// The process that parses tenant input — TLS, HTTP, signatures' headers, manifests,
// upload bodies — runs as an unprivileged user. Everything it needs from the root
// part (the lease as the ledger has it, writing an upload as the workload's uid,
// starting the workload, reading logs and outputs) it asks for over one local
// stream socket, one request at a time, in these frames. The root part parses
// nothing else from that side, so the frame is deliberately dumb: a fixed binary
// layout with a hard cap on every length, no JSON, no nesting.
//
//   frame  = u32 length of the rest (big-endian, <= kBrokerFrameBytesMax)
//            u8  op
//            u64 lease id (0 when the op names no lease)
//            u16 field count (<= kBrokerFieldsMax)
//            field*  = u8 key length (1..64), key bytes [a-z0-9_], u32 value length, value
//            u32 body length, body
// Keys are strictly ascending and unique (one encoding per frame), and the lengths
// must add up to the frame's exactly. A frame that breaks any rule is refused with
// the reason, and the root part then closes the connection.
//
// One frame carries a descriptor: the agent's kReply with status 200 to kSession
// (docs/tenant-api.md "Sessions"), which passes the connected socket to the lease's
// in-sandbox init with the frame's first byte (SCM_RIGHTS). A descriptor that comes
// with any other frame, or more than one, is closed at once and the frame refused.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"

namespace gpunet::provider {

inline constexpr size_t kBrokerFrameBytesMax = 9u << 20;  ///< an 8 MiB upload chunk + fields
inline constexpr size_t kBrokerBodyBytesMax = 8u << 20;
inline constexpr size_t kBrokerFieldsMax = 32;
inline constexpr size_t kBrokerKeyBytesMax = 64;
inline constexpr size_t kBrokerValueBytesMax = 64u << 10;

/// What the tenant-facing process may ask. Append-only numbering.
enum class BrokerOp : uint8_t {
  kReply = 1,         ///< an answer: field "status" (HTTP-like code), "message", body
  kEnvironments = 2,  ///< what this provider runs (GET /environments)
  kLease = 3,         ///< the lease as the ledger has it, for the signature check
  kAuthorize = 4,     ///< the signed request's fields: the root part re-verifies them
  kManifest = 5,      ///< body = the manifest's canonical JSON
  kSecrets = 6,       ///< body = the secret values (never logged)
  kUpload = 7,        ///< fields path, offset; body = the chunk
  kEvents = 8,        ///< fields after, wait_ms
  kLogs = 9,          ///< fields stream, offset, max
  kOutputs = 10,      ///< fields path ("" = list)
  kStatus = 11,       ///< the lease's workload state
  kSession = 12,      ///< an interactive session: the 200 reply carries its socket and
                      ///< the lease's tenant address (field "tenant", for the session caps)
};
std::string_view BrokerOpName(BrokerOp op);

struct BrokerFrame {
  BrokerOp op = BrokerOp::kReply;
  uint64_t lease_id = 0;
  std::map<std::string, std::string> fields;  ///< ascending by key, as on the wire
  std::string body;

  /// The value of a field, or nullopt.
  std::optional<std::string_view> Field(std::string_view key) const;
  bool operator==(const BrokerFrame&) const = default;
};

/// The frame's bytes, length prefix included. kInvalidArgument when a field or the
/// body breaks a limit (the sender's bug, never sent).
base::Result<std::string> EncodeBrokerFrame(const BrokerFrame& frame);

/// Decodes the bytes after the length prefix (exactly one frame's). kCorrupt with
/// the rule broken; kNonCanonical for keys out of order.
base::Result<BrokerFrame> DecodeBrokerFrame(std::string_view bytes);

/// A descriptor received with a frame; closed on destruction unless released.
class BrokerFd {
 public:
  BrokerFd() = default;
  explicit BrokerFd(int fd) : m_fd(fd) {}
  BrokerFd(BrokerFd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  BrokerFd& operator=(BrokerFd&& other) noexcept;
  BrokerFd(const BrokerFd&) = delete;
  BrokerFd& operator=(const BrokerFd&) = delete;
  ~BrokerFd();
  int Get() const { return m_fd; }
  bool Valid() const { return m_fd >= 0; }
  /// The descriptor, now the caller's to close.
  int Release() { return std::exchange(m_fd, -1); }

 private:
  int m_fd = -1;
};

/// Blocking I/O of whole frames on a stream socket or pipe. ReadBrokerFrame gives
/// kNotFound at a clean end of stream (the peer closed between frames), kCorrupt
/// for a torn or oversized frame, and for a frame that came with a descriptor (which
/// it closes): only ReadBrokerFrameWithFd takes one.
base::Result<BrokerFrame> ReadBrokerFrame(int fd);
/// ReadBrokerFrame that keeps one descriptor sent with the frame in *passed (left
/// invalid when none came). Two or more: all closed, kCorrupt. Whether this frame may
/// carry one is the caller's to check (BrokerClient: a 200 reply to kSession only).
base::Result<BrokerFrame> ReadBrokerFrameWithFd(int fd, BrokerFd* passed);
/// Writes a frame; `pass_fd` >= 0 goes with its first byte (SCM_RIGHTS: the peer gets
/// its own descriptor; the caller still closes `pass_fd`). kInvalidArgument when the
/// frame cannot be encoded, kIo when the socket fails (a pipe cannot pass one).
base::Status WriteBrokerFrame(int fd, const BrokerFrame& frame, int pass_fd = -1);

}  // namespace gpunet::provider
