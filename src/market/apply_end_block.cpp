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
/// first block that sees the entry due stores height + kHeartbeatGraceBlocks as its
/// value (empty until then), so the grace counts from when the deadline came due. A
/// chain that halts and resumes past a deadline gives the provider those blocks to
/// get its LeaseStarted or heartbeat in, wherever in the timeout the halt fell.
R<uint64_t> GraceUntil(Store& store, const base::Bytes& key, uint64_t height) {
  auto raw = store.Get(key);
  if (!raw) return Op(raw.error());
  GPUNET_CHECK(raw->has_value());  // the caller found the key by scanning
  const base::Bytes& value = **raw;
  if (value.size() == 8) return base::ReadU64BE(value.data());
  if (!value.empty())
    return Op(base::Error{base::ErrorCode::kCorrupt, "deadline index entry " + base::ToHex(key) +
                                                         " holds " + Str(value.size()) +
                                                         " bytes, not 0 or 8"});
  const uint64_t until = height + limits::kHeartbeatGraceBlocks;
  base::Bytes stored;
  base::AppendU64BE(stored, until);
  store.Put(key, std::move(stored));
  return until;
}

}  // namespace

R<> RunEndBlock(Store& store, const BlockTime& block, std::vector<codec::Event>& events) {
  size_t budget = limits::kEndBlockWorkMax;
  const uint64_t now = block.time_ms;

  // Each section has its own share of the gas budget, so expensive awards cannot
  // starve faults and expiries (EndBlockSection).
  // 1. Awards at window end.
  M_TRY(windows, ScanDueIndex(store, keys::kWindowIndex, now, budget));
  for (const auto& k : windows) {
    // The rest waits for the next block; faults and expiries still run.
    if (!store.EndBlockBudgetLeft(EndBlockSection::kAwards)) break;
    M_TRY(entry, Parsed(keys::ParseDeadlineIndexKey(keys::kWindowIndex, k), k));
    M_DO(AwardAtWindowEnd(store, block, entry.id, events));
    --budget;
  }

  // 2a. Faults: missed starts.
  M_TRY(starts, ScanDueIndex(store, keys::kStartIndex, now, budget));
  for (const auto& k : starts) {
    // Faults left waiting: expiries wait too, so a lease whose provider went silent
    // is closed as a fault, never settled as an expiry ahead of it.
    if (!store.EndBlockBudgetLeft(EndBlockSection::kFaults)) return {};
    M_TRY(entry, Parsed(keys::ParseDeadlineIndexKey(keys::kStartIndex, k), k));
    M_TRY(l, Need<Lease>(store, keys::LeaseKey(entry.id), TxCode::kMarketUnknownLease, "lease"));
    GPUNET_CHECK(l.state == LeaseState::kReserved);
    --budget;
    M_TRY(grace_until, GraceUntil(store, k, block.height));
    if (block.height <= grace_until) continue;  // a halted chain is not the provider's fault
    M_DO(CloseLease(store, block, l, LeaseEnd::kMissedStart, now, events));
  }

  // 2b. Faults: heartbeats missing past the timeout and the grace in blocks.
  M_TRY(silent, ScanDueIndex(store, keys::kHeartbeatIndex, now, budget));
  for (const auto& k : silent) {
    if (budget == 0) break;
    if (!store.EndBlockBudgetLeft(EndBlockSection::kFaults)) return {};  // as above
    --budget;
    M_TRY(entry, Parsed(keys::ParseHeartbeatIndexKey(k), k));
    M_TRY(p, NeedProvider(store, entry.owner));
    M_TRY(grace_until, GraceUntil(store, k, block.height));
    if (block.height <= grace_until) continue;  // a halted chain: wait for the grace blocks
    base::Bytes prefix = keys::KeyBuilder(keys::kProviderOpenLeases).Addr(p.owner);
    M_TRY(open, Keys(store, prefix, keys::PrefixEnd(prefix), limits::kOpenLeasesPerProviderMax));
    for (const auto& lk : open) {
      if (budget == 0) break;
      M_TRY(open_entry, Parsed(keys::ParsePartyIndexKey(keys::kProviderOpenLeases, lk), lk));
      M_TRY(l, Need<Lease>(store, keys::LeaseKey(open_entry.id), TxCode::kMarketUnknownLease,
                           "lease"));
      if (l.state != LeaseState::kStarted) continue;
      --budget;
      // Funds that ran out before the provider went silent: an expiry, not a fault.
      LeaseEnd end =
          l.paid_until_ms <= p.last_heartbeat_ms ? LeaseEnd::kExpired : LeaseEnd::kMissedHeartbeat;
      M_DO(CloseLease(store, block, l, end, std::max(p.last_heartbeat_ms, l.started_ms), events));
    }
    // The index entry goes when its last started lease closed (CloseLease).
  }

  // 3. Expiries: funds ran out; settled at paid_until exactly.
  M_TRY(expired, ScanDueIndex(store, keys::kExpiryIndex, now, budget));
  for (const auto& k : expired) {
    if (!store.EndBlockBudgetLeft(EndBlockSection::kExpiries)) return {};
    M_TRY(entry, Parsed(keys::ParseDeadlineIndexKey(keys::kExpiryIndex, k), k));
    M_TRY(l, Need<Lease>(store, keys::LeaseKey(entry.id), TxCode::kMarketUnknownLease, "lease"));
    GPUNET_CHECK(l.state == LeaseState::kStarted);
    M_DO(CloseLease(store, block, l, LeaseEnd::kExpired, l.paid_until_ms, events));
    --budget;
  }
  return {};
}

}  // namespace gpunet::market::internal
