#include "consensus/bft_wal.h"

#include <algorithm>

#include "base/check.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/reader.h"
#include "codec/writer.h"
#include "crypto/hash.h"

namespace gpunet::consensus {

namespace {

using base::ErrorCode;

constexpr size_t kFrameHeaderBytes = 4 + 8;
constexpr size_t kChecksumBytes = 8;
constexpr uint8_t kGuardVersion = 1;
// The largest payload: a proposal with a whole block, plus room for the framing.
constexpr size_t kPayloadBytesMax = base::limits::kBlockBytesMax + 64 * 1024;

void Checksum(base::ByteSpan payload, uint8_t out[kChecksumBytes]) {
  const base::Hash32 h = crypto::Blake2b256(payload);
  std::copy_n(h.data.begin(), kChecksumBytes, out);
}

bool ChecksumMatches(base::ByteSpan payload, base::ByteSpan sum) {
  uint8_t expect[kChecksumBytes];
  Checksum(payload, expect);
  return std::equal(sum.begin(), sum.end(), expect);
}

uint32_t ReadU32(base::ByteSpan b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

base::Status ReadTimeout(codec::Reader& r, TimeoutInfo& out) {
  auto h = r.U64("height");
  if (!h) return std::unexpected(h.error());
  auto round = r.U32("round");
  if (!round) return std::unexpected(round.error());
  auto step = r.U8("step");
  if (!step) return std::unexpected(step.error());
  if (*step < 1 || *step > 4) return r.Error(ErrorCode::kCorrupt, "step", "unknown timeout step");
  out = TimeoutInfo{*h, *round, static_cast<TimeoutStep>(*step)};
  return base::Ok();
}

}  // namespace

uint64_t WalRecordHeight(const WalRecord& record) {
  struct V {
    uint64_t operator()(const WalProposal& p) const { return p.proposal.height; }
    uint64_t operator()(const WalVote& v) const { return v.vote.height; }
    uint64_t operator()(const WalTimeout& t) const { return t.timeout.height; }
    uint64_t operator()(const WalEndHeight& e) const { return e.height; }
  };
  return std::visit(V{}, record);
}

base::Bytes EncodeWalPayload(const WalRecord& record) {
  codec::Writer w;
  w.U8(static_cast<uint8_t>(record.index() + 1));
  struct V {
    codec::Writer& w;
    void operator()(const WalProposal& p) const {
      codec::Write(w, p.proposal);
      codec::Write(w, p.block);
    }
    void operator()(const WalVote& v) const { codec::Write(w, v.vote); }
    void operator()(const WalTimeout& t) const {
      w.U64(t.timeout.height);
      w.U32(t.timeout.round);
      w.U8(static_cast<uint8_t>(t.timeout.step));
    }
    void operator()(const WalEndHeight& e) const { w.U64(e.height); }
  };
  std::visit(V{w}, record);
  return std::move(w).Take();
}

base::Bytes EncodeWalRecord(const WalRecord& record) {
  const base::Bytes payload = EncodeWalPayload(record);
  GPUNET_CHECK(payload.size() <= kPayloadBytesMax);
  codec::Writer w(payload.size() + kFrameHeaderBytes);
  w.U32(static_cast<uint32_t>(payload.size()));
  uint8_t sum[kChecksumBytes];
  Checksum(payload, sum);
  w.Raw(base::ByteSpan(sum, kChecksumBytes));
  w.Raw(payload);
  return std::move(w).Take();
}

base::Result<WalRecord> DecodeWalPayload(base::ByteSpan payload) {
  if (payload.size() > kPayloadBytesMax)
    return base::Fail(ErrorCode::kLimitExceeded, "wal record: payload over the size limit");
  codec::Reader r(payload, "wal_record");
  auto kind = r.U8("kind");
  if (!kind) return std::unexpected(kind.error());
  WalRecord out;
  switch (static_cast<WalKind>(*kind)) {
    case WalKind::kProposal: {
      WalProposal p;
      GPUNET_TRY(codec::Read(r, p.proposal));
      GPUNET_TRY(codec::Read(r, p.block));
      out = std::move(p);
      break;
    }
    case WalKind::kVote: {
      WalVote v;
      GPUNET_TRY(codec::Read(r, v.vote));
      out = v;
      break;
    }
    case WalKind::kTimeout: {
      WalTimeout t;
      GPUNET_TRY(ReadTimeout(r, t.timeout));
      out = t;
      break;
    }
    case WalKind::kEndHeight: {
      auto h = r.U64("height");
      if (!h) return std::unexpected(h.error());
      out = WalEndHeight{*h};
      break;
    }
    default:
      return r.Error(ErrorCode::kCorrupt, "kind", "unknown WAL record kind");
  }
  GPUNET_TRY(r.Finish());
  return out;
}

base::Result<WalReadResult> ReadWal(base::ByteSpan file) {
  WalReadResult out;
  size_t pos = 0;
  while (pos < file.size()) {
    const base::ByteSpan rest = file.subspan(pos);
    // Where the intact prefix ends, the rest is torn when it is the last frame, or
    // only zero bytes (a file extended by a crash before its data reached the disk).
    auto torn_or_corrupt = [&](size_t frame_end, std::string_view what) -> base::Status {
      const bool zeros = std::all_of(rest.begin(), rest.end(), [](uint8_t b) { return b == 0; });
      if (frame_end >= rest.size() || zeros) {
        out.torn_tail = true;
        return base::Ok();
      }
      return base::Fail(ErrorCode::kCorrupt,
                        "wal: record at byte " + std::to_string(pos) + " is damaged (" +
                            std::string(what) +
                            ") and intact records follow it; the log cannot be replayed safely "
                            "— restore it or start this validator with an empty WAL and its "
                            "sign guard");
    };
    if (rest.size() < kFrameHeaderBytes) {
      out.torn_tail = true;
      break;
    }
    const uint32_t len = ReadU32(rest);
    const size_t frame_end = kFrameHeaderBytes + static_cast<size_t>(len);
    if (len == 0 || len > kPayloadBytesMax) {
      GPUNET_TRY(torn_or_corrupt(rest.size(), "bad length"));
      break;
    }
    if (frame_end > rest.size()) {
      out.torn_tail = true;
      break;
    }
    const base::ByteSpan payload = rest.subspan(kFrameHeaderBytes, len);
    if (!ChecksumMatches(payload, rest.subspan(4, kChecksumBytes))) {
      GPUNET_TRY(torn_or_corrupt(frame_end, "checksum mismatch"));
      break;
    }
    auto record = DecodeWalPayload(payload);
    if (!record)
      return base::Wrap(record.error(), "wal: record at byte " + std::to_string(pos) +
                                            " has a good checksum but does not decode");
    out.records.push_back(std::move(*record));
    pos += frame_end;
    out.valid_bytes = pos;
  }
  return out;
}

base::Bytes EncodeSignGuard(const SignGuardState& s) {
  codec::Writer w;
  w.U8(kGuardVersion);
  w.Fixed(s.public_key);
  w.U64(s.height);
  w.U32(s.round);
  w.U8(s.step);
  w.Fixed(s.block_hash);
  w.I32(s.pol_round);
  w.U64(s.time_ms);
  w.Fixed(s.signature);
  uint8_t sum[kChecksumBytes];
  Checksum(w.Data(), sum);
  w.Raw(base::ByteSpan(sum, kChecksumBytes));
  return std::move(w).Take();
}

base::Result<SignGuardState> DecodeSignGuard(base::ByteSpan bytes) {
  if (bytes.size() < kChecksumBytes + 1)
    return base::Fail(ErrorCode::kCorrupt,
                      "sign guard: file too short (" + std::to_string(bytes.size()) + " bytes)");
  const base::ByteSpan body = bytes.first(bytes.size() - kChecksumBytes);
  if (!ChecksumMatches(body, bytes.last(kChecksumBytes)))
    return base::Fail(ErrorCode::kCorrupt,
                      "sign guard: checksum mismatch; refusing to sign with a guard that cannot "
                      "be read (restore the file; never delete it while the key is in use)");
  codec::Reader r(body, "sign_guard");
  auto version = r.U8("version");
  if (!version) return std::unexpected(version.error());
  if (*version != kGuardVersion)
    return r.Error(ErrorCode::kUnsupported, "version", "unknown sign guard version");
  SignGuardState s;
  auto pk = r.Fixed<32>("public_key");
  if (!pk) return std::unexpected(pk.error());
  s.public_key = *pk;
  auto h = r.U64("height");
  if (!h) return std::unexpected(h.error());
  s.height = *h;
  auto round = r.U32("round");
  if (!round) return std::unexpected(round.error());
  s.round = *round;
  auto step = r.U8("step");
  if (!step) return std::unexpected(step.error());
  if (*step > kSignStepPrecommit) return r.Error(ErrorCode::kCorrupt, "step", "unknown step");
  s.step = *step;
  auto hash = r.Fixed<32>("block_hash");
  if (!hash) return std::unexpected(hash.error());
  s.block_hash = *hash;
  auto pol = r.I32("pol_round");
  if (!pol) return std::unexpected(pol.error());
  s.pol_round = *pol;
  auto time = r.U64("time_ms");
  if (!time) return std::unexpected(time.error());
  s.time_ms = *time;
  auto sig = r.Fixed<64>("signature");
  if (!sig) return std::unexpected(sig.error());
  s.signature = *sig;
  GPUNET_TRY(r.Finish());
  return s;
}

}  // namespace gpunet::consensus
