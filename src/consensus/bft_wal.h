// The BFT engine's write-ahead log records and its signing guard, as values with a
// canonical binary encoding. The core never touches files: it emits WriteWal and
// PersistSignGuard actions (consensus/bft.h) and the driver appends / rewrites and
// syncs them before it executes the next action. After a crash the driver reads the
// log back (ReadWal) and hands the records to BftCore::Start.
//
// Record frame (docs/consensus.md "What the WAL guarantees"):
//   u32 payload length (big-endian) | 8 bytes checksum = BLAKE2b-256(payload)[0..8] |
//   payload = u8 kind | the kind's fields (codec Write forms)
// so a torn last record (power loss mid-append) is detected and dropped, while a
// damaged record followed by good ones is reported as corruption, never skipped.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"

namespace gpunet::consensus {

/// Steps a timeout can be for. kCommitWait is the pause after a decision before the
/// next height starts (CometBFT timeout_commit). Encoded as one byte.
enum class TimeoutStep : uint8_t {
  kPropose = 1,
  kPrevote = 2,
  kPrecommit = 3,
  kCommitWait = 4,
};

/// Which timeout fired: the driver hands back exactly what ScheduleTimeout carried.
struct TimeoutInfo {
  uint64_t height = 0;
  uint32_t round = 0;
  TimeoutStep step = TimeoutStep::kPropose;
  bool operator==(const TimeoutInfo&) const = default;
};

/// A proposal with its whole block (received, or our own before it is broadcast).
struct WalProposal {
  codec::Proposal proposal;
  codec::Block block;
  bool operator==(const WalProposal&) const = default;
};
/// A vote (received, or our own before it is broadcast).
struct WalVote {
  codec::Vote vote;
  bool operator==(const WalVote&) const = default;
};
/// A timeout that changed the core's state.
struct WalTimeout {
  TimeoutInfo timeout;
  bool operator==(const WalTimeout&) const = default;
};
/// Height `height` is committed (written after the application's commit): records
/// up to and including this one may be pruned by the driver.
struct WalEndHeight {
  uint64_t height = 0;
  bool operator==(const WalEndHeight&) const = default;
};

/// Payload kinds (u8), append-only: kind N is alternative N-1 of WalRecord.
enum class WalKind : uint8_t { kProposal = 1, kVote = 2, kTimeout = 3, kEndHeight = 4 };

using WalRecord = std::variant<WalProposal, WalVote, WalTimeout, WalEndHeight>;

/// The height a record belongs to.
uint64_t WalRecordHeight(const WalRecord& record);

/// One framed record, ready to append to the log file.
base::Bytes EncodeWalRecord(const WalRecord& record);
/// The payload alone (no frame), for a driver that frames records itself.
base::Bytes EncodeWalPayload(const WalRecord& record);
/// Decodes one payload (no frame): strict, canonical (Encode(Decode(x)) == x).
base::Result<WalRecord> DecodeWalPayload(base::ByteSpan payload);

/// What ReadWal found in a log file.
struct WalReadResult {
  std::vector<WalRecord> records;  ///< every intact record, in order
  uint64_t valid_bytes = 0;        ///< length of the intact prefix: truncate the file to it
  bool torn_tail = false;          ///< bytes after valid_bytes were a torn last record
};

/// Reads a whole log. An incomplete last frame, a last frame whose checksum fails, or
/// a tail of zero bytes is a torn tail (dropped, torn_tail = true). A bad frame with
/// a good frame after it is kCorrupt: the log was damaged, not torn, and replaying a
/// log with a hole could make the core forget a vote it signed.
base::Result<WalReadResult> ReadWal(base::ByteSpan file);

/// The last message this validator key signed. The core refuses to sign anything at a
/// lower (height, round, step) and, at the same one, anything but the identical
/// message (it re-emits the stored signature instead of signing again, so even the
/// time field cannot differ). Persisted through the PersistSignGuard action to a file
/// of its own, so it survives when the WAL is lost.
struct SignGuardState {
  codec::PublicKey public_key;  ///< the key this guard belongs to (checked at start)
  uint64_t height = 0;          ///< 0 = never signed
  uint32_t round = 0;
  uint8_t step = 0;           ///< 0 none, 1 proposal, 2 prevote, 3 precommit (CometBFT order)
  codec::BlockId block_hash;  ///< zero for a nil vote
  int32_t pol_round = -1;     ///< proposals only
  uint64_t time_ms = 0;
  codec::Signature signature;
  bool operator==(const SignGuardState&) const = default;
};

inline constexpr uint8_t kSignStepProposal = 1;
inline constexpr uint8_t kSignStepPrevote = 2;
inline constexpr uint8_t kSignStepPrecommit = 3;

/// The guard file's bytes: a version byte, the fields, then the 8-byte checksum.
base::Bytes EncodeSignGuard(const SignGuardState& state);
/// kCorrupt on a bad checksum or shape (a driver must then refuse to start rather
/// than sign with a guard it cannot read).
base::Result<SignGuardState> DecodeSignGuard(base::ByteSpan bytes);

}  // namespace gpunet::consensus
