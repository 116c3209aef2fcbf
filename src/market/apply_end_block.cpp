// End of block (apply.h's EndBlock): awards at window end, then faults (missed
// starts, missed heartbeats), then expiries, within the block's work budget.
#include "market/apply_internal.h"

namespace gpunet::market::internal {

namespace {

/// Index entries of `table` due at `now` (key deadline <= now), at most `max`.
R<std::vector<base::Bytes>> ScanDueIndex(const StoreView& view, uint8_t table, uint64_t now,
                                         size_t max) {
  base::Bytes begin = keys::KeyBuilder(table);
  base::Bytes end = now == UINT64_MAX ? keys::PrefixEnd(begin)
                                      : base::Bytes(keys::KeyBuilder(table).U64(now + 1));
  return Keys(view, begin, end, max);
}

/// The height up to which the fault of a due deadline-index entry `key` waits: the
/// first block that sees the entry due stores height + heartbeat_grace_blocks as its
/// value (empty until then), so the grace counts from when the deadline came due. A
/// chain that halts and resumes past a deadline gives the provider those blocks to
/// get its LeaseStarted or heartbeat in, wherever in the timeout the halt fell.
R<uint64_t> GraceUntil(Store& store, const base::Bytes& key, uint64_t height,
                       uint64_t grace_blocks) {
  auto raw = store.Get(key);
  if (!raw) return Op(raw.error());
  GPUNET_CHECK(raw->has_value());  // the caller found the key by scanning
  const base::Bytes& value = **raw;
  if (value.size() == 8) return base::ReadU64BE(value.data());
  if (!value.empty())
    return Op(base::Error{base::ErrorCode::kCorrupt, "deadline index entry " + base::ToHex(key) +
                                                         " holds " + Str(value.size()) +
                                                         " bytes, not 0 or 8"});
  const uint64_t until = height + grace_blocks;
  base::Bytes stored;
  base::AppendU64BE(stored, until);
  store.Put(key, std::move(stored));
  return until;
}

/// 1. Awards at window end. When the section's budget is spent the rest waits for
/// the next block; faults and expiries still run.
R<> AwardsDue(Store& store, const Params& params, const BlockTime& block, size_t& budget,
              std::vector<codec::Event>& events) {
  GPUNET_TRY_ASSIGN(auto windows, ScanDueIndex(store, keys::kWindowIndex, block.time_ms, budget));
  for (const auto& k : windows) {
    if (!store.EndBlockBudgetLeft(EndBlockSection::kAwards)) break;
    GPUNET_TRY_ASSIGN(auto entry, Parsed(keys::ParseDeadlineIndexKey(keys::kWindowIndex, k), k));
    GPUNET_TRY(AwardAtWindowEnd(store, params, block, entry.id, events));
    --budget;
  }
  return {};
}

// The fault and expiry sections return whether the sections after them run: not
// once faults are left waiting, so that a lease whose provider went silent is
// closed as a fault, never settled as an expiry ahead of it.

/// 2a. Faults: missed starts.
R<bool> MissedStarts(Store& store, const Params& params, const BlockTime& block, size_t& budget,
                     std::vector<codec::Event>& events) {
  const uint64_t now = block.time_ms;
  GPUNET_TRY_ASSIGN(auto starts, ScanDueIndex(store, keys::kStartIndex, now, budget));
  for (const auto& k : starts) {
    if (!store.EndBlockBudgetLeft(EndBlockSection::kFaults)) return false;
    GPUNET_TRY_ASSIGN(auto entry, Parsed(keys::ParseDeadlineIndexKey(keys::kStartIndex, k), k));
    GPUNET_TRY_ASSIGN(
        auto l, Need<Lease>(store, keys::LeaseKey(entry.id), TxCode::kMarketUnknownLease, "lease"));
    GPUNET_CHECK(l.state == LeaseState::kReserved);
    --budget;
    GPUNET_TRY_ASSIGN(auto grace_until,
                      GraceUntil(store, k, block.height, params.heartbeat_grace_blocks));
    if (block.height <= grace_until) continue;  // a halted chain is not the provider's fault
    GPUNET_TRY(CloseLease(store, params, block, l, LeaseEnd::kMissedStart, now, events));
  }
  return true;
}

/// Closes the started leases of provider `p`, silent past its heartbeat deadline.
R<> CloseSilentLeases(Store& store, const Params& params, const BlockTime& block, const Provider& p,
                      size_t& budget, std::vector<codec::Event>& events) {
  base::Bytes prefix = keys::KeyBuilder(keys::kProviderOpenLeases).Addr(p.owner);
  GPUNET_TRY_ASSIGN(
      auto open, Keys(store, prefix, keys::PrefixEnd(prefix), limits::kOpenLeasesPerProviderMax));
  for (const auto& lk : open) {
    if (budget == 0) break;
    GPUNET_TRY_ASSIGN(auto open_entry,
                      Parsed(keys::ParsePartyIndexKey(keys::kProviderOpenLeases, lk), lk));
    GPUNET_TRY_ASSIGN(auto l, Need<Lease>(store, keys::LeaseKey(open_entry.id),
                                          TxCode::kMarketUnknownLease, "lease"));
    if (l.state != LeaseState::kStarted) continue;
    --budget;
    // Funds that ran out before the provider went silent: an expiry, not a fault.
    LeaseEnd end =
        l.paid_until_ms <= p.last_heartbeat_ms ? LeaseEnd::kExpired : LeaseEnd::kMissedHeartbeat;
    GPUNET_TRY(CloseLease(store, params, block, l, end, std::max(p.last_heartbeat_ms, l.started_ms),
                          events));
  }
  // The index entry goes when its last started lease closed (CloseLease).
  return {};
}

/// 2b. Faults: heartbeats missing past the timeout and the grace in blocks.
R<bool> MissedHeartbeats(Store& store, const Params& params, const BlockTime& block, size_t& budget,
                         std::vector<codec::Event>& events) {
  GPUNET_TRY_ASSIGN(auto silent, ScanDueIndex(store, keys::kHeartbeatIndex, block.time_ms, budget));
  for (const auto& k : silent) {
    if (budget == 0) break;
    if (!store.EndBlockBudgetLeft(EndBlockSection::kFaults)) return false;
    --budget;
    GPUNET_TRY_ASSIGN(auto entry, Parsed(keys::ParseHeartbeatIndexKey(k), k));
    GPUNET_TRY_ASSIGN(auto p, NeedProvider(store, entry.owner));
    GPUNET_TRY_ASSIGN(auto grace_until,
                      GraceUntil(store, k, block.height, params.heartbeat_grace_blocks));
    if (block.height <= grace_until) continue;  // a halted chain: wait for the grace blocks
    GPUNET_TRY(CloseSilentLeases(store, params, block, p, budget, events));
  }
  return true;
}

/// 3. Expiries: funds ran out; settled at paid_until exactly.
R<> Expiries(Store& store, const Params& params, const BlockTime& block, size_t& budget,
             std::vector<codec::Event>& events) {
  GPUNET_TRY_ASSIGN(auto expired, ScanDueIndex(store, keys::kExpiryIndex, block.time_ms, budget));
  for (const auto& k : expired) {
    if (!store.EndBlockBudgetLeft(EndBlockSection::kExpiries)) return {};
    GPUNET_TRY_ASSIGN(auto entry, Parsed(keys::ParseDeadlineIndexKey(keys::kExpiryIndex, k), k));
    GPUNET_TRY_ASSIGN(
        auto l, Need<Lease>(store, keys::LeaseKey(entry.id), TxCode::kMarketUnknownLease, "lease"));
    GPUNET_CHECK(l.state == LeaseState::kStarted);
    GPUNET_TRY(CloseLease(store, params, block, l, LeaseEnd::kExpired, l.paid_until_ms, events));
    --budget;
  }
  return {};
}

}  // namespace

R<> RunEndBlock(Store& store, const Params& params, const BlockTime& block,
                std::vector<codec::Event>& events) {
  // At most kEndBlockWorkMax items in all; each section has its own share of the
  // gas budget, so expensive awards cannot starve faults and expiries
  // (EndBlockSection).
  size_t budget = limits::kEndBlockWorkMax;
  GPUNET_TRY(AwardsDue(store, params, block, budget, events));
  GPUNET_TRY_ASSIGN(bool go_on, MissedStarts(store, params, block, budget, events));
  if (!go_on) return {};
  GPUNET_TRY_ASSIGN(go_on, MissedHeartbeats(store, params, block, budget, events));
  if (!go_on) return {};
  return Expiries(store, params, block, budget, events);
}

}  // namespace gpunet::market::internal
