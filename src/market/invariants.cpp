#include "market/invariants.h"

#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "base/checked_math.h"
#include "market/keys.h"
#include "market/math.h"
#include "market/records.h"

namespace gpunet::market {

namespace {

std::string Str(uint64_t v) {
  return std::to_string(v);
}

/// Decodes every record under the key prefix `begin` and hands it to `fn(key, record)`; a decode
/// failure or an error returned by fn stops the scan.
template <class T, class Fn>
base::Status ForEach(const StoreView& view, const base::Bytes& begin, Fn fn) {
  std::optional<base::Error> error;
  GPUNET_TRY(
      view.Scan(begin, keys::PrefixEnd(begin), [&](base::ByteSpan key, base::ByteSpan value) {
        auto record = Decode<T>(value);
        if (!record) {
          error = base::Error{base::ErrorCode::kCorrupt,
                              "record at " + base::ToHex(key) + ": " + record.error().message};
          return false;
        }
        base::Status s = fn(base::Bytes(key.begin(), key.end()), *record);
        if (!s) {
          error = s.error();
          return false;
        }
        return true;
      }));
  if (error) return std::unexpected(*error);
  return base::Ok();
}

/// Hands every entry of index `table` to `check(key, value)`; the first error stops
/// the scan, named with its key.
template <class Check>
base::Status ScanEntries(const StoreView& view, uint8_t table, Check check) {
  const base::Bytes begin = keys::KeyBuilder(table);
  std::optional<base::Error> error;
  GPUNET_TRY(
      view.Scan(begin, keys::PrefixEnd(begin), [&](base::ByteSpan key, base::ByteSpan value) {
        base::Status s = check(key, value);
        if (s) return true;
        error = base::Error{s.error().code, s.error().message + " (key " + base::ToHex(key) + ")"};
        return false;
      }));
  if (error) return std::unexpected(*error);
  return base::Ok();
}

base::Result<bool> Exists(const StoreView& view, const base::Bytes& key) {
  auto v = view.Get(key);
  if (!v) return std::unexpected(v.error());
  return v->has_value();
}

base::Status Broken(std::string what) {
  return base::Fail(base::ErrorCode::kCorrupt, "market invariant broken: " + std::move(what));
}

/// The owner and id of a site or machine key (keys::ParseSiteKey, ParseMachineKey),
/// or a broken invariant naming a key of the wrong layout under the table's prefix.
base::Result<keys::OwnedId> OwnedIdOf(std::optional<keys::OwnedId> parts, const base::Bytes& key) {
  if (!parts)
    return std::unexpected(
        Broken("key " + base::ToHex(key) + " is not of its table's layout").error());
  return *parts;
}

/// The error of `s`, if any, naming the key it is about.
base::Status AtKey(base::Status s, base::ByteSpan key) {
  if (s) return s;
  return base::Fail(s.error().code, s.error().message + " (key " + base::ToHex(key) + ")");
}

/// What a provider's counters must equal, counted from the records.
struct Counts {
  uint64_t open = 0, started = 0, machines = 0, sites = 0, offers = 0;
  unsigned __int128 promised = 0;  ///< FaultPenalty of the open leases
};

/// The rules of one lease, with the index entries an open lease must have.
base::Status CheckLease(const StoreView& view, const Lease& l, const Params& params) {
  std::string at = "lease " + Str(l.lease_id) + ": ";
  unsigned __int128 parts =
      static_cast<unsigned __int128>(l.paid_ugpn) + l.refunded_ugpn + l.escrow_ugpn;
  if (parts != l.deposited_ugpn) return Broken(at + "deposited != paid + refunded + escrow");
  if (l.max_hours != 0 &&
      l.deposited_ugpn > static_cast<unsigned __int128>(l.rate_ugpn_per_hour) * l.max_hours)
    return Broken(at + "deposited " + Str(l.deposited_ugpn) + " over max_hours " +
                  Str(l.max_hours) + " of its rate");
  if (l.state == LeaseState::kClosed) {
    if (l.escrow_ugpn != 0) return Broken(at + "closed but holds escrow");
    // Penalties come from the faults and a provider's close only, at most the
    // lease's FaultPenalty (docs/market.md "Lease life").
    const bool penalised = l.end == LeaseEnd::kMissedStart || l.end == LeaseEnd::kMissedHeartbeat ||
                           l.end == LeaseEnd::kProviderClosed;
    if (l.penalty_ugpn > (penalised ? FaultPenalty(l.rate_ugpn_per_hour, params) : 0))
      return Broken(at + "a penalty of " + Str(l.penalty_ugpn) + " ugpn for an end (" +
                    std::string(LeaseEndName(l.end)) + ") that does not allow it");
    return base::Ok();
  }
  if (l.allocations.empty()) return Broken(at + "no machines");
  GPUNET_TRY_ASSIGN(bool open, Exists(view, keys::PartyIndexKey(keys::kProviderOpenLeases,
                                                                l.provider, l.lease_id)));
  if (!open) return Broken(at + "open but missing from the provider's open leases");
  if (l.state == LeaseState::kReserved) {
    GPUNET_TRY_ASSIGN(
        bool indexed,
        Exists(view, keys::DeadlineIndexKey(keys::kStartIndex, l.start_deadline_ms, l.lease_id)));
    if (!indexed) return Broken(at + "reserved but not in the start-deadline index");
    if (l.paid_ugpn != 0) return Broken(at + "paid before it started");
    return base::Ok();
  }
  GPUNET_TRY_ASSIGN(
      bool indexed,
      Exists(view, keys::DeadlineIndexKey(keys::kExpiryIndex, l.paid_until_ms, l.lease_id)));
  if (!indexed) return Broken(at + "started but not in the expiry index");
  uint64_t max_accrued = Accrued(l.rate_ugpn_per_hour, l.paid_until_ms - l.started_ms);
  if (max_accrued > l.deposited_ugpn) return Broken(at + "paid_until lets accrual exceed deposits");
  if (l.paid_ugpn > max_accrued) return Broken(at + "paid more than can accrue");
  return base::Ok();
}

/// Counts an open lease into its provider's counts and its machines' leased GPUs.
void CountOpenLease(const Lease& l, const Params& params, Counts& c,
                    std::map<uint32_t, uint64_t>& leased) {
  for (const auto& a : l.allocations) leased[a.machine_id] += a.gpus;
  ++c.open;
  if (l.state == LeaseState::kStarted) ++c.started;
  c.promised += FaultPenalty(l.rate_ugpn_per_hour, params);
}

/// free + GPUs of open leases on it == gpu_count (free <= count).
base::Status CheckMachine(uint32_t id, const Machine& m, uint64_t held) {
  if (m.free_gpus > m.gpu_count || m.free_gpus + held != m.gpu_count)
    return Broken("machine " + Str(id) + ": free " + Str(m.free_gpus) + " + leased " + Str(held) +
                  " != inventory " + Str(m.gpu_count));
  return base::Ok();
}

base::Status CheckOrder(const Order& o) {
  if (o.state != OrderState::kOpen && o.deposit_ugpn != 0)
    return Broken("order " + Str(o.order_id) + " is not open but holds a deposit");
  return base::Ok();
}

/// What a provider record must keep on its own: its bond covers its promised
/// penalties, its heartbeat deadline is set iff a lease is started.
base::Status CheckProviderOwnRules(const Provider& p, const std::string& at) {
  // The bond covers every open lease's penalty at once (docs/market.md "Bonds").
  if (p.bond_ugpn < p.promised_penalties_ugpn)
    return Broken(at + "bond " + Str(p.bond_ugpn) + " below the open leases' penalties " +
                  Str(p.promised_penalties_ugpn));
  if ((p.started_leases > 0) != (p.heartbeat_deadline_ms != 0))
    return Broken(at + "heartbeat deadline set iff a lease is started");
  return base::Ok();
}

/// A provider's counters against the counts of its records; its bond covers them.
base::Status CheckProvider(const Provider& p, const Counts& c) {
  std::string at = "provider " + base::ToHex(p.owner.Span()) + ": ";
  if (p.open_leases != c.open)
    return Broken(at + "open_leases " + Str(p.open_leases) + ", scanned " + Str(c.open));
  if (p.started_leases != c.started) return Broken(at + "started_leases differs from the scan");
  if (p.machines != c.machines) return Broken(at + "machines differs from the scan");
  if (p.sites != c.sites) return Broken(at + "sites differs from the scan");
  if (p.open_offers != c.offers) return Broken(at + "open_offers differs from the scan");
  if (p.promised_penalties_ugpn != c.promised)
    return Broken(at + "promised_penalties " + Str(p.promised_penalties_ugpn) +
                  " differs from the open leases' penalties");
  return CheckProviderOwnRules(p, at);
}

/// The record stored under `key`, decoded; nullopt when absent.
template <class T>
base::Result<std::optional<T>> Read(const StoreView& view, const base::Bytes& key) {
  GPUNET_TRY_ASSIGN(auto stored, view.Get(key));
  if (!stored) return std::optional<T>();
  GPUNET_TRY_ASSIGN(T record, Decode<T>(*stored));
  return std::optional<T>(std::move(record));
}

/// What a block moved in the records one provider's counters count: after - before
/// over the changed records only.
struct ProviderDelta {
  int64_t open = 0, started = 0, machines = 0, sites = 0;
  int64_t offers = 0;         ///< its open offer records
  int64_t offer_entries = 0;  ///< entries of its open-offers index
  int64_t lease_entries = 0;  ///< entries of its open-leases index
  __int128 promised = 0;      ///< FaultPenalty of its open leases
};

/// One machine the block touched: its record before and after (when it changed),
/// and the GPUs that changed leases hold on it, after - before.
struct MachineDelta {
  bool changed = false;
  std::optional<Machine> before;
  std::optional<Machine> after;
  int64_t held = 0;
};

/// A provider record the block changed.
struct ProviderChange {
  std::optional<Provider> before;
  std::optional<Provider> after;
};

/// The deltas of a block's changed records, per provider and per machine.
struct BlockDeltas {
  std::map<codec::Address, ProviderDelta> providers;
  std::map<std::tuple<codec::Address, uint32_t>, MachineDelta> machines;
  std::map<codec::Address, ProviderChange> records;
  /// Per order: its `bids` counter and the entries of its bids, after - before.
  std::map<uint64_t, std::pair<int64_t, int64_t>> order_bids;
};

/// +1 for the value after the block, -1 for the one before it.
int64_t SignOf(const std::optional<base::Bytes>* value, const RecordChange& change) {
  return value == &change.after ? 1 : -1;
}

/// 1 when the key exists after the block and not before, -1 the other way, else 0.
int64_t Created(const RecordChange& change) {
  return static_cast<int64_t>(change.after.has_value()) -
         static_cast<int64_t>(change.before.has_value());
}

/// Counts one side (`sign`) of a changed lease into its provider's and machines' deltas.
void CountLeaseDelta(const Lease& l, int64_t sign, const Params& params, BlockDeltas& d) {
  ProviderDelta& p = d.providers[l.provider];
  if (l.state == LeaseState::kClosed) return;
  p.open += sign;
  if (l.state == LeaseState::kStarted) p.started += sign;
  p.promised += sign * static_cast<__int128>(FaultPenalty(l.rate_ugpn_per_hour, params));
  for (const auto& a : l.allocations)
    d.machines[{l.provider, a.machine_id}].held += sign * static_cast<int64_t>(a.gpus);
}

std::string Signed(__int128 v) {
  return (v < 0 ? "-" : "+") + base::U128ToString(static_cast<unsigned __int128>(v < 0 ? -v : v));
}

/// A machine's GPUs in use (gpu_count - free) moved by as much as the changed
/// leases' GPUs on it: with the state before the block holding, free + leased ==
/// inventory after it.
base::Status CheckMachineDelta(const StoreView& view, const codec::Address& owner, uint32_t id,
                               MachineDelta& m) {
  const base::Bytes key = keys::MachineKey(owner, id);
  if (!m.changed) {
    GPUNET_TRY_ASSIGN(m.after, Read<Machine>(view, key));
    m.before = m.after;
  }
  auto used = [](const std::optional<Machine>& machine) -> int64_t {
    return machine ? static_cast<int64_t>(machine->gpu_count) - machine->free_gpus : 0;
  };
  const int64_t held = used(m.before) + m.held;  // leased GPUs on it after the block
  if (!m.after) {
    if (held == 0) return base::Ok();
    return AtKey(
        Broken("provider " + base::ToHex(owner.Span()) + ": an open lease holds GPUs of machine " +
               Str(id) + ", which does not exist"),
        key);
  }
  if (m.after->free_gpus > m.after->gpu_count || used(m.after) != held)
    return AtKey(Broken("machine " + Str(id) + ": free " + Str(m.after->free_gpus) + " + leased " +
                        (held < 0 ? Signed(held) : Str(static_cast<uint64_t>(held))) +
                        " != inventory " + Str(m.after->gpu_count)),
                 key);
  return base::Ok();
}

/// A provider's counters moved by as much as the records they count; a changed
/// record keeps its bond over its promised penalties and its heartbeat rule.
base::Status CheckProviderDelta(const codec::Address& owner, const ProviderDelta& d,
                                const ProviderChange* record) {
  const std::string at = "provider " + base::ToHex(owner.Span()) + ": ";
  auto counter = [&](auto field) -> __int128 {
    if (!record) return 0;
    __int128 after = record->after ? static_cast<__int128>((*record->after).*field) : 0;
    __int128 before = record->before ? static_cast<__int128>((*record->before).*field) : 0;
    return after - before;
  };
  auto same = [&](const char* name, __int128 moved, __int128 counted,
                  const char* what) -> base::Status {
    if (moved == counted) return base::Ok();
    return Broken(at + name + " moved by " + Signed(moved) + " in the block, " + what + " by " +
                  Signed(counted));
  };
  GPUNET_TRY(same("open_leases", counter(&Provider::open_leases), d.open, "its open leases"));
  GPUNET_TRY(same("open_leases", counter(&Provider::open_leases), d.lease_entries,
                  "its open-leases index"));
  GPUNET_TRY(
      same("started_leases", counter(&Provider::started_leases), d.started, "its started leases"));
  GPUNET_TRY(same("machines", counter(&Provider::machines), d.machines, "its machines"));
  GPUNET_TRY(same("sites", counter(&Provider::sites), d.sites, "its sites"));
  GPUNET_TRY(same("open_offers", counter(&Provider::open_offers), d.offers, "its open offers"));
  GPUNET_TRY(same("open_offers", counter(&Provider::open_offers), d.offer_entries,
                  "its open-offers index"));
  GPUNET_TRY(same("promised_penalties", counter(&Provider::promised_penalties_ugpn), d.promised,
                  "its open leases' penalties"));
  if (!record || !record->after) return base::Ok();
  return CheckProviderOwnRules(*record->after, at);
}

/// An entry added to a provider's open offers or open leases: it names an open
/// record of that provider.
template <class T>
base::Status CheckAddedEntry(const StoreView& view, const std::optional<keys::PartyEntry>& entry,
                             const base::Bytes& record_key, const char* what) {
  if (!entry) return Broken("key is not of its table's layout");
  GPUNET_TRY_ASSIGN(auto record, Read<T>(view, record_key));
  bool open = false;
  if constexpr (std::is_same_v<T, Offer>)
    open = record && record->open;
  else
    open = record && record->state != LeaseState::kClosed;
  if (!open || record->provider != entry->party)
    return Broken("provider " + base::ToHex(entry->party.Span()) + ": its " + what +
                  " index names " + Str(entry->id) + ", which is not one of its");
  return base::Ok();
}

/// Whether `lease` needs the entry `deadline_ms` of the start (kStartIndex) or
/// expiry index: reserved with that start deadline, or started and paid until then.
bool NeedsDeadlineEntry(const std::optional<Lease>& lease, uint8_t table, uint64_t deadline_ms) {
  if (!lease) return false;
  return table == keys::kStartIndex
             ? lease->state == LeaseState::kReserved && lease->start_deadline_ms == deadline_ms
             : lease->state == LeaseState::kStarted && lease->paid_until_ms == deadline_ms;
}

/// An entry of the start or expiry index that exists (added by the block, or
/// scanned): its lease needs exactly this entry.
base::Status CheckDeadlineEntry(const StoreView& view, uint8_t table, base::ByteSpan key) {
  auto entry = keys::ParseDeadlineIndexKey(table, key);
  if (!entry) return Broken("key is not of its table's layout");
  GPUNET_TRY_ASSIGN(auto lease, Read<Lease>(view, keys::LeaseKey(entry->id)));
  if (!NeedsDeadlineEntry(lease, table, entry->deadline_ms))
    return Broken(std::string(table == keys::kStartIndex ? "start" : "expiry") +
                  "-deadline index names lease " + Str(entry->id) + " at " +
                  Str(entry->deadline_ms) + ", which is not its deadline");
  return base::Ok();
}

/// A deleted entry of an index keyed to a lease: the lease must no longer need it.
base::Status CheckDroppedLeaseEntry(const StoreView& view, uint8_t table, base::ByteSpan key) {
  uint64_t id = 0;
  if (table == keys::kProviderOpenLeases) {
    auto entry = keys::ParsePartyIndexKey(table, key);
    if (!entry) return Broken("key is not of its table's layout");
    id = entry->id;
  } else {
    auto entry = keys::ParseDeadlineIndexKey(table, key);
    if (!entry) return Broken("key is not of its table's layout");
    id = entry->id;
    GPUNET_TRY_ASSIGN(auto lease, Read<Lease>(view, keys::LeaseKey(id)));
    if (NeedsDeadlineEntry(lease, table, entry->deadline_ms))
      return Broken("lease " + Str(id) + " lost its deadline-index entry");
    return base::Ok();
  }
  GPUNET_TRY_ASSIGN(auto lease, Read<Lease>(view, keys::LeaseKey(id)));
  if (lease && lease->state != LeaseState::kClosed)
    return Broken("lease " + Str(id) + " is open but left its provider's open leases");
  return base::Ok();
}

/// A deleted entry of a provider's open offers: the offer must not still be an open
/// offer of that provider (else the counter and the index could drop it together).
base::Status CheckDroppedOfferEntry(const StoreView& view,
                                    const std::optional<keys::PartyEntry>& entry) {
  if (!entry) return Broken("key is not of its table's layout");
  GPUNET_TRY_ASSIGN(auto offer, Read<Offer>(view, keys::OfferKey(entry->id)));
  if (offer && offer->open && offer->provider == entry->party)
    return Broken("offer " + Str(entry->id) + " is open but left its provider's open offers");
  return base::Ok();
}

/// The bid id a provider's one-bid entry (kOrderProviderBid) holds; nullopt when
/// the value is not a u64.
std::optional<uint64_t> BidIdOf(base::ByteSpan value) {
  if (value.size() != 8) return std::nullopt;
  return base::ReadU64BE(value.data());
}

/// A bid that exists: its order exists, it is in the order's bids, and its
/// provider's one-bid entry on the order names it.
base::Status CheckBid(const StoreView& view, const Bid& b) {
  std::string at = "bid " + Str(b.bid_id) + ": ";
  GPUNET_TRY_ASSIGN(bool order, Exists(view, keys::OrderKey(b.order_id)));
  if (!order) return Broken(at + "its order " + Str(b.order_id) + " does not exist");
  GPUNET_TRY_ASSIGN(bool listed, Exists(view, keys::OrderBidKey(b.order_id, b.bid_id)));
  if (!listed) return Broken(at + "missing from the bids of order " + Str(b.order_id));
  GPUNET_TRY_ASSIGN(auto named, view.Get(keys::OrderProviderBidKey(b.order_id, b.provider)));
  if (!named || BidIdOf(*named) != b.bid_id)
    return Broken(at + "its provider's bid entry on order " + Str(b.order_id) +
                  " does not name it");
  return base::Ok();
}

/// A bid the block deleted (withdrawn): no index still names it.
base::Status CheckDroppedBid(const StoreView& view, const Bid& b) {
  std::string at = "bid " + Str(b.bid_id) + " is gone but ";
  GPUNET_TRY_ASSIGN(bool listed, Exists(view, keys::OrderBidKey(b.order_id, b.bid_id)));
  if (listed) return Broken(at + "still in the bids of order " + Str(b.order_id));
  GPUNET_TRY_ASSIGN(auto named, view.Get(keys::OrderProviderBidKey(b.order_id, b.provider)));
  if (named && BidIdOf(*named) == b.bid_id)
    return Broken(at + "its provider's bid entry on order " + Str(b.order_id) + " names it");
  return base::Ok();
}

/// An entry of an order's bids that exists (added, or scanned): it names a bid of
/// that order.
base::Status CheckOrderBidEntry(const StoreView& view, base::ByteSpan key) {
  auto entry = keys::ParseOrderBidKey(key);
  if (!entry) return Broken("key is not of its table's layout");
  GPUNET_TRY_ASSIGN(auto bid, Read<Bid>(view, keys::BidKey(entry->bid_id)));
  if (!bid || bid->order_id != entry->order_id)
    return Broken("the bids of order " + Str(entry->order_id) + " name bid " + Str(entry->bid_id) +
                  ", which is not one of its");
  return base::Ok();
}

/// A dropped entry of an order's bids: its bid is gone too (a bid leaves its
/// order's bids only by being withdrawn).
base::Status CheckDroppedOrderBidEntry(const StoreView& view, base::ByteSpan key) {
  auto entry = keys::ParseOrderBidKey(key);
  if (!entry) return Broken("key is not of its table's layout");
  GPUNET_TRY_ASSIGN(auto bid, Read<Bid>(view, keys::BidKey(entry->bid_id)));
  if (bid && bid->order_id == entry->order_id)
    return Broken("bid " + Str(entry->bid_id) + " is on order " + Str(entry->order_id) +
                  " but left its bids");
  return base::Ok();
}

/// A provider's one-bid entry on an order that exists (added, or scanned): it
/// names a bid of that provider on that order.
base::Status CheckProviderBidEntry(const StoreView& view, base::ByteSpan key,
                                   base::ByteSpan value) {
  auto entry = keys::ParseOrderProviderBidKey(key);
  auto id = BidIdOf(value);
  if (!entry || !id) return Broken("key or value is not of its table's layout");
  GPUNET_TRY_ASSIGN(auto bid, Read<Bid>(view, keys::BidKey(*id)));
  if (!bid || bid->order_id != entry->order_id || bid->provider != entry->provider)
    return Broken("provider " + base::ToHex(entry->provider.Span()) + "'s bid entry on order " +
                  Str(entry->order_id) + " names bid " + Str(*id) + ", which is not its bid there");
  return base::Ok();
}

/// The rules one changed record must keep, and what it moves in its provider's
/// counted records (before and after the block).
// Over 70 lines: one switch over the tables a changed key can name, each arm a few
// lines; split per table it would scatter the one place that lists them.
// NOLINTNEXTLINE(readability-function-size)
base::Status CheckChange(const StoreView& view, const RecordChange& change, const Params& params,
                         BlockDeltas& deltas) {
  const base::Bytes& key = change.key;
  if (key.size() < 2 || key[0] != keys::kAppState) return base::Ok();
  const uint8_t table = key[1];
  switch (table) {
    case keys::kLease:
      for (const auto* value : {&change.before, &change.after}) {
        if (!*value) continue;
        GPUNET_TRY_ASSIGN(Lease lease, Decode<Lease>(**value));
        CountLeaseDelta(lease, SignOf(value, change), params, deltas);
        if (value == &change.after) GPUNET_TRY(CheckLease(view, lease, params));
      }
      return base::Ok();
    case keys::kOffer:
      for (const auto* value : {&change.before, &change.after}) {
        if (!*value) continue;
        GPUNET_TRY_ASSIGN(Offer offer, Decode<Offer>(**value));
        if (offer.open) deltas.providers[offer.provider].offers += SignOf(value, change);
        if (value != &change.after || !offer.open) continue;
        GPUNET_TRY_ASSIGN(bool indexed,
                          Exists(view, keys::PartyIndexKey(keys::kProviderOpenOffers,
                                                           offer.provider, offer.offer_id)));
        if (!indexed)
          return Broken("offer " + Str(offer.offer_id) +
                        " is open but missing from the provider's open offers");
      }
      return base::Ok();
    case keys::kOrder:
      for (const auto* value : {&change.before, &change.after}) {
        if (!*value) continue;
        GPUNET_TRY_ASSIGN(Order order, Decode<Order>(**value));
        deltas.order_bids[order.order_id].first += SignOf(value, change) * order.bids;
        if (value == &change.after) GPUNET_TRY(CheckOrder(order));
      }
      return base::Ok();
    case keys::kBid:
      if (change.after) {
        GPUNET_TRY_ASSIGN(Bid bid, Decode<Bid>(*change.after));
        return CheckBid(view, bid);
      }
      if (change.before) {
        GPUNET_TRY_ASSIGN(Bid bid, Decode<Bid>(*change.before));
        return CheckDroppedBid(view, bid);
      }
      return base::Ok();
    case keys::kOrderBids: {
      auto entry = keys::ParseOrderBidKey(key);
      if (!entry) return Broken("key is not of its table's layout");
      deltas.order_bids[entry->order_id].second += Created(change);
      if (change.before && !change.after) return CheckDroppedOrderBidEntry(view, key);
      if (!change.before && change.after) return CheckOrderBidEntry(view, key);
      return base::Ok();
    }
    case keys::kOrderProviderBid:
      // A dropped entry needs no check of its own: the bid it named is either gone
      // (CheckDroppedBid) or still there, and then CheckBid of the scan or of the
      // block that changes it finds its entry missing.
      if (change.after) return CheckProviderBidEntry(view, key, *change.after);
      return base::Ok();
    case keys::kProvider: {
      auto owner = keys::ParseProviderKey(key);
      if (!owner) return Broken("key is not of its table's layout");
      ProviderChange& record = deltas.records[*owner];
      if (change.before) {
        GPUNET_TRY_ASSIGN(record.before, Decode<Provider>(*change.before));
      }
      if (change.after) {
        GPUNET_TRY_ASSIGN(record.after, Decode<Provider>(*change.after));
      }
      return base::Ok();
    }
    case keys::kSite: {
      GPUNET_TRY_ASSIGN(auto site, OwnedIdOf(keys::ParseSiteKey(key), key));
      deltas.providers[site.owner].sites += Created(change);
      return base::Ok();
    }
    case keys::kMachine: {
      GPUNET_TRY_ASSIGN(auto id, OwnedIdOf(keys::ParseMachineKey(key), key));
      deltas.providers[id.owner].machines += Created(change);
      MachineDelta& machine = deltas.machines[{id.owner, id.id}];
      machine.changed = true;
      if (change.before) {
        GPUNET_TRY_ASSIGN(machine.before, Decode<Machine>(*change.before));
      }
      if (change.after) {
        GPUNET_TRY_ASSIGN(machine.after, Decode<Machine>(*change.after));
      }
      return base::Ok();
    }
    case keys::kProviderOpenOffers: {
      auto entry = keys::ParsePartyIndexKey(table, key);
      if (!entry) return Broken("key is not of its table's layout");
      deltas.providers[entry->party].offer_entries += Created(change);
      if (change.before && !change.after) return CheckDroppedOfferEntry(view, entry);
      if (!change.before && change.after)
        return CheckAddedEntry<Offer>(view, entry, keys::OfferKey(entry->id), "open-offers");
      return base::Ok();
    }
    case keys::kProviderOpenLeases: {
      auto entry = keys::ParsePartyIndexKey(table, key);
      if (!entry) return Broken("key is not of its table's layout");
      deltas.providers[entry->party].lease_entries += Created(change);
      if (change.before && !change.after) return CheckDroppedLeaseEntry(view, table, key);
      if (!change.before && change.after)
        return CheckAddedEntry<Lease>(view, entry, keys::LeaseKey(entry->id), "open-leases");
      return base::Ok();
    }
    case keys::kStartIndex:
    case keys::kExpiryIndex:
      if (change.before && !change.after) return CheckDroppedLeaseEntry(view, table, key);
      if (!change.before && change.after) return CheckDeadlineEntry(view, table, key);
      return base::Ok();
    default:
      return base::Ok();
  }
}

}  // namespace

base::Result<Holdings> SumHoldings(const StoreView& view) {
  Holdings h;
  GPUNET_TRY(
      ForEach<Lease>(view, keys::KeyBuilder(keys::kLease), [&](const base::Bytes&, const Lease& l) {
        h.escrow_ugpn += l.escrow_ugpn;
        return base::Ok();
      }));
  GPUNET_TRY(
      ForEach<Order>(view, keys::KeyBuilder(keys::kOrder), [&](const base::Bytes&, const Order& o) {
        h.escrow_ugpn += o.deposit_ugpn;
        return base::Ok();
      }));
  GPUNET_TRY(ForEach<Provider>(view, keys::KeyBuilder(keys::kProvider),
                               [&](const base::Bytes&, const Provider& p) {
                                 h.bonds_ugpn += p.bond_ugpn;
                                 for (const auto& u : p.unbonding)
                                   h.unbonding_ugpn += u.amount_ugpn;
                                 return base::Ok();
                               }));
  return h;
}

base::Result<HoldingsChange> HoldingsOf(std::span<const RecordChange> changes) {
  HoldingsChange out;
  for (const RecordChange& change : changes) {
    if (change.key.size() < 2 || change.key[0] != keys::kAppState) continue;
    const uint8_t table = change.key[1];
    if (table != keys::kLease && table != keys::kOrder && table != keys::kProvider) continue;
    for (const auto* value : {&change.before, &change.after}) {
      if (!*value) continue;
      Holdings& h = value == &change.before ? out.before : out.after;
      auto fail = [&](const base::Error& e) {
        return base::Wrap(e, "market record at key " + base::ToHex(change.key));
      };
      if (table == keys::kLease) {
        auto lease = Decode<Lease>(**value);
        if (!lease) return fail(lease.error());
        h.escrow_ugpn += lease->escrow_ugpn;
      } else if (table == keys::kOrder) {
        auto order = Decode<Order>(**value);
        if (!order) return fail(order.error());
        h.escrow_ugpn += order->deposit_ugpn;
      } else {
        auto provider = Decode<Provider>(**value);
        if (!provider) return fail(provider.error());
        h.bonds_ugpn += provider->bond_ugpn;
        for (const auto& u : provider->unbonding) h.unbonding_ugpn += u.amount_ugpn;
      }
    }
  }
  return out;
}

base::Status CheckInvariants(const StoreView& view, const Params& params) {
  using MachineRef = std::tuple<codec::Address, uint32_t>;
  std::map<MachineRef, uint64_t> leased;
  std::map<codec::Address, Counts> counts;

  GPUNET_TRY(ForEach<Lease>(view, keys::KeyBuilder(keys::kLease),
                            [&](const base::Bytes&, const Lease& l) -> base::Status {
                              GPUNET_TRY(CheckLease(view, l, params));
                              if (l.state == LeaseState::kClosed) return base::Ok();
                              std::map<uint32_t, uint64_t> on_machines;
                              CountOpenLease(l, params, counts[l.provider], on_machines);
                              for (const auto& [id, gpus] : on_machines)
                                leased[{l.provider, id}] += gpus;
                              return base::Ok();
                            }));

  GPUNET_TRY(ForEach<Machine>(
      view, keys::KeyBuilder(keys::kMachine),
      [&](const base::Bytes& key, const Machine& m) -> base::Status {
        GPUNET_TRY_ASSIGN(auto machine, OwnedIdOf(keys::ParseMachineKey(key), key));
        ++counts[machine.owner].machines;
        uint64_t held = 0;
        if (auto it = leased.find({machine.owner, machine.id}); it != leased.end()) {
          held = it->second;
          leased.erase(it);
        }
        return CheckMachine(machine.id, m, held);
      }));
  if (!leased.empty()) return Broken("an open lease holds GPUs of a machine that does not exist");

  GPUNET_TRY(ForEach<Site>(view, keys::KeyBuilder(keys::kSite),
                           [&](const base::Bytes& key, const Site&) -> base::Status {
                             GPUNET_TRY_ASSIGN(auto site, OwnedIdOf(keys::ParseSiteKey(key), key));
                             ++counts[site.owner].sites;
                             return base::Ok();
                           }));
  GPUNET_TRY(
      ForEach<Offer>(view, keys::KeyBuilder(keys::kOffer), [&](const base::Bytes&, const Offer& o) {
        if (o.open) ++counts[o.provider].offers;
        return base::Ok();
      }));
  std::map<uint64_t, uint64_t> bids_of;
  GPUNET_TRY(ForEach<Bid>(view, keys::KeyBuilder(keys::kBid),
                          [&](const base::Bytes&, const Bid& b) -> base::Status {
                            ++bids_of[b.order_id];
                            return CheckBid(view, b);
                          }));
  GPUNET_TRY(ForEach<Order>(view, keys::KeyBuilder(keys::kOrder),
                            [&](const base::Bytes&, const Order& o) -> base::Status {
                              if (o.bids != bids_of[o.order_id])
                                return Broken("order " + Str(o.order_id) + ": bids " + Str(o.bids) +
                                              ", scanned " + Str(bids_of[o.order_id]));
                              return CheckOrder(o);
                            }));
  GPUNET_TRY(ScanEntries(view, keys::kOrderBids, [&](base::ByteSpan key, base::ByteSpan) {
    return CheckOrderBidEntry(view, key);
  }));
  GPUNET_TRY(
      ScanEntries(view, keys::kOrderProviderBid, [&](base::ByteSpan key, base::ByteSpan value) {
        return CheckProviderBidEntry(view, key, value);
      }));
  GPUNET_TRY(ForEach<Provider>(
      view, keys::KeyBuilder(keys::kProvider),
      [&](const base::Bytes&, const Provider& p) { return CheckProvider(p, counts[p.owner]); }));
  for (uint8_t table : {keys::kStartIndex, keys::kExpiryIndex})
    GPUNET_TRY(ScanEntries(view, table, [&](base::ByteSpan key, base::ByteSpan) {
      return CheckDeadlineEntry(view, table, key);
    }));
  return base::Ok();
}

base::Status CheckChanged(const StoreView& view, std::span<const RecordChange> changes,
                          const Params& params) {
  BlockDeltas deltas;
  for (const RecordChange& change : changes)
    GPUNET_TRY(AtKey(CheckChange(view, change, params, deltas), change.key));
  for (auto& [machine, delta] : deltas.machines) {
    const auto& [owner, id] = machine;
    GPUNET_TRY(CheckMachineDelta(view, owner, id, delta));
  }
  for (const auto& [order_id, delta] : deltas.order_bids)
    if (delta.first != delta.second)
      return AtKey(Broken("order " + Str(order_id) + ": bids moved by " + Signed(delta.first) +
                          ", its bids' entries by " + Signed(delta.second)),
                   keys::OrderKey(order_id));
  for (const auto& [owner, record] : deltas.records) deltas.providers[owner];
  for (const auto& [owner, delta] : deltas.providers) {
    auto record = deltas.records.find(owner);
    GPUNET_TRY(AtKey(CheckProviderDelta(owner, delta,
                                        record == deltas.records.end() ? nullptr : &record->second),
                     keys::ProviderKey(owner)));
  }
  return base::Ok();
}

}  // namespace gpunet::market
