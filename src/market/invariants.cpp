#include "market/invariants.h"

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

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
  // The bond covers every open lease's penalty at once (docs/market.md "Bonds").
  if (p.bond_ugpn < p.promised_penalties_ugpn)
    return Broken(at + "bond " + Str(p.bond_ugpn) + " below the open leases' penalties " +
                  Str(p.promised_penalties_ugpn));
  if ((p.started_leases > 0) != (p.heartbeat_deadline_ms != 0))
    return Broken(at + "heartbeat deadline set iff a lease is started");
  return base::Ok();
}

/// The record stored under `key`, decoded; nullopt when absent.
template <class T>
base::Result<std::optional<T>> Read(const StoreView& view, const base::Bytes& key) {
  GPUNET_TRY_ASSIGN(auto stored, view.Get(key));
  if (!stored) return std::optional<T>();
  GPUNET_TRY_ASSIGN(T record, Decode<T>(*stored));
  return std::optional<T>(std::move(record));
}

/// Visits the ids of a provider's entries in a party index (kProviderOpenLeases,
/// kProviderOpenOffers) in id order.
template <class Fn>
base::Status ForEachPartyId(const StoreView& view, uint8_t table, const codec::Address& owner,
                            Fn fn) {
  const base::Bytes begin = keys::KeyBuilder(table).Addr(owner);
  std::vector<uint64_t> ids;
  std::optional<base::Error> error;
  GPUNET_TRY(view.Scan(begin, keys::PrefixEnd(begin), [&](base::ByteSpan key, base::ByteSpan) {
    auto entry = keys::ParsePartyIndexKey(table, key);
    if (!entry) {
      error = Broken("key " + base::ToHex(key) + " is not of its table's layout").error();
      return false;
    }
    ids.push_back(entry->id);
    return true;
  }));
  if (error) return std::unexpected(*error);
  for (uint64_t id : ids) GPUNET_TRY(fn(id));
  return base::Ok();
}

/// One provider's records counted through its own indexes and key prefixes (no scan
/// of a whole table): its open leases against its machines' free GPUs and its
/// counters. Run for every provider a block touched.
base::Status CheckProviderRecords(const StoreView& view, const codec::Address& owner,
                                  const Params& params) {
  const std::string at = "provider " + base::ToHex(owner.Span()) + ": ";
  Counts c;
  std::map<uint32_t, uint64_t> leased;
  GPUNET_TRY(
      ForEachPartyId(view, keys::kProviderOpenLeases, owner, [&](uint64_t id) -> base::Status {
        GPUNET_TRY_ASSIGN(auto lease, Read<Lease>(view, keys::LeaseKey(id)));
        if (!lease || lease->state == LeaseState::kClosed || lease->provider != owner)
          return AtKey(Broken(at + "its open-leases index names lease " + Str(id) +
                              ", which is not an open lease of its"),
                       keys::PartyIndexKey(keys::kProviderOpenLeases, owner, id));
        CountOpenLease(*lease, params, c, leased);
        return base::Ok();
      }));
  const base::Bytes machines = keys::KeyBuilder(keys::kMachine).Addr(owner);
  GPUNET_TRY(ForEach<Machine>(
      view, machines, [&](const base::Bytes& key, const Machine& m) -> base::Status {
        GPUNET_TRY_ASSIGN(auto machine, OwnedIdOf(keys::ParseMachineKey(key), key));
        ++c.machines;
        uint64_t held = 0;
        if (auto it = leased.find(machine.id); it != leased.end()) {
          held = it->second;
          leased.erase(it);
        }
        return AtKey(CheckMachine(machine.id, m, held), key);
      }));
  if (!leased.empty())
    return AtKey(Broken(at + "an open lease holds GPUs of machine " + Str(leased.begin()->first) +
                        ", which does not exist"),
                 keys::MachineKey(owner, leased.begin()->first));
  const base::Bytes sites = keys::KeyBuilder(keys::kSite).Addr(owner);
  GPUNET_TRY(ForEach<Site>(view, sites, [&](const base::Bytes&, const Site&) {
    ++c.sites;
    return base::Ok();
  }));
  GPUNET_TRY(
      ForEachPartyId(view, keys::kProviderOpenOffers, owner, [&](uint64_t id) -> base::Status {
        GPUNET_TRY_ASSIGN(auto offer, Read<Offer>(view, keys::OfferKey(id)));
        if (!offer || !offer->open || offer->provider != owner)
          return AtKey(Broken(at + "its open-offers index names offer " + Str(id) +
                              ", which is not an open offer of its"),
                       keys::PartyIndexKey(keys::kProviderOpenOffers, owner, id));
        ++c.offers;
        return base::Ok();
      }));
  GPUNET_TRY_ASSIGN(auto provider, Read<Provider>(view, keys::ProviderKey(owner)));
  if (provider) return AtKey(CheckProvider(*provider, c), keys::ProviderKey(owner));
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
    if (!lease) return base::Ok();
    const bool needed =
        table == keys::kStartIndex
            ? lease->state == LeaseState::kReserved &&
                  lease->start_deadline_ms == entry->deadline_ms
            : lease->state == LeaseState::kStarted && lease->paid_until_ms == entry->deadline_ms;
    if (needed) return Broken("lease " + Str(id) + " lost its deadline-index entry");
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

/// The rules one changed record must keep, and the providers it touches (before and
/// after the block).
base::Status CheckChange(const StoreView& view, const RecordChange& change, const Params& params,
                         std::set<codec::Address>& providers) {
  const base::Bytes& key = change.key;
  if (key.size() < 2 || key[0] != keys::kAppState) return base::Ok();
  const uint8_t table = key[1];
  auto touch = [&](const std::optional<keys::PartyEntry>& entry) {
    if (entry) providers.insert(entry->party);
  };
  switch (table) {
    case keys::kLease:
      for (const auto* value : {&change.before, &change.after}) {
        if (!*value) continue;
        GPUNET_TRY_ASSIGN(Lease lease, Decode<Lease>(**value));
        providers.insert(lease.provider);
        if (value == &change.after) GPUNET_TRY(CheckLease(view, lease, params));
      }
      return base::Ok();
    case keys::kOffer:
      for (const auto* value : {&change.before, &change.after}) {
        if (!*value) continue;
        GPUNET_TRY_ASSIGN(Offer offer, Decode<Offer>(**value));
        providers.insert(offer.provider);
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
      if (change.after) {
        GPUNET_TRY_ASSIGN(Order order, Decode<Order>(*change.after));
        GPUNET_TRY(CheckOrder(order));
      }
      return base::Ok();
    case keys::kProvider:
      if (auto owner = keys::ParseProviderKey(key)) providers.insert(*owner);
      return base::Ok();
    case keys::kSite: {
      GPUNET_TRY_ASSIGN(auto site, OwnedIdOf(keys::ParseSiteKey(key), key));
      providers.insert(site.owner);
      return base::Ok();
    }
    case keys::kMachine: {
      GPUNET_TRY_ASSIGN(auto machine, OwnedIdOf(keys::ParseMachineKey(key), key));
      providers.insert(machine.owner);
      return base::Ok();
    }
    case keys::kProviderOpenOffers: {
      auto entry = keys::ParsePartyIndexKey(table, key);
      touch(entry);
      if (change.before && !change.after) return CheckDroppedOfferEntry(view, entry);
      return base::Ok();
    }
    case keys::kProviderLeases:
      touch(keys::ParsePartyIndexKey(table, key));
      return base::Ok();
    case keys::kProviderOpenLeases:
      touch(keys::ParsePartyIndexKey(table, key));
      if (change.before && !change.after) return CheckDroppedLeaseEntry(view, table, key);
      return base::Ok();
    case keys::kStartIndex:
    case keys::kExpiryIndex:
      if (change.before && !change.after) return CheckDroppedLeaseEntry(view, table, key);
      return base::Ok();
    case keys::kHeartbeatIndex:
      if (auto entry = keys::ParseHeartbeatIndexKey(key)) providers.insert(entry->owner);
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
  GPUNET_TRY(ForEach<Order>(view, keys::KeyBuilder(keys::kOrder),
                            [&](const base::Bytes&, const Order& o) { return CheckOrder(o); }));
  GPUNET_TRY(ForEach<Provider>(
      view, keys::KeyBuilder(keys::kProvider),
      [&](const base::Bytes&, const Provider& p) { return CheckProvider(p, counts[p.owner]); }));
  return base::Ok();
}

base::Status CheckChanged(const StoreView& view, std::span<const RecordChange> changes,
                          const Params& params) {
  std::set<codec::Address> providers;
  for (const RecordChange& change : changes)
    GPUNET_TRY(AtKey(CheckChange(view, change, params, providers), change.key));
  for (const codec::Address& owner : providers)
    GPUNET_TRY(CheckProviderRecords(view, owner, params));
  return base::Ok();
}

}  // namespace gpunet::market
