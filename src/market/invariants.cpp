#include "market/invariants.h"

#include <map>
#include <string>
#include <tuple>

#include "market/keys.h"
#include "market/math.h"
#include "market/records.h"

namespace gpunet::market {

namespace {

std::string Str(uint64_t v) {
  return std::to_string(v);
}

/// Decodes every record of `table` and hands it to `fn(key, record)`; a decode
/// failure or an error returned by fn stops the scan.
template <class T, class Fn>
base::Status ForEach(const StoreView& view, uint8_t table, Fn fn) {
  base::Bytes begin = keys::KeyBuilder(table);
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

}  // namespace

base::Result<Holdings> SumHoldings(const StoreView& view) {
  Holdings h;
  GPUNET_TRY(ForEach<Lease>(view, keys::kLease, [&](const base::Bytes&, const Lease& l) {
    h.escrow_ugpn += l.escrow_ugpn;
    return base::Ok();
  }));
  GPUNET_TRY(ForEach<Order>(view, keys::kOrder, [&](const base::Bytes&, const Order& o) {
    h.escrow_ugpn += o.deposit_ugpn;
    return base::Ok();
  }));
  GPUNET_TRY(ForEach<Provider>(view, keys::kProvider, [&](const base::Bytes&, const Provider& p) {
    h.bonds_ugpn += p.bond_ugpn;
    for (const auto& u : p.unbonding) h.unbonding_ugpn += u.amount_ugpn;
    return base::Ok();
  }));
  return h;
}

base::Status CheckInvariants(const StoreView& view, const Params& params) {
  using MachineRef = std::tuple<codec::Address, uint32_t>;
  std::map<MachineRef, uint64_t> leased;
  struct Counts {
    uint64_t open = 0, started = 0, machines = 0, sites = 0, offers = 0;
    unsigned __int128 promised = 0;  ///< FaultPenalty of the open leases
  };
  std::map<codec::Address, Counts> counts;

  GPUNET_TRY(
      ForEach<Lease>(view, keys::kLease, [&](const base::Bytes&, const Lease& l) -> base::Status {
        std::string at = "lease " + Str(l.lease_id) + ": ";
        unsigned __int128 parts =
            static_cast<unsigned __int128>(l.paid_ugpn) + l.refunded_ugpn + l.escrow_ugpn;
        if (parts != l.deposited_ugpn) return Broken(at + "deposited != paid + refunded + escrow");
        if (l.state == LeaseState::kClosed) {
          if (l.escrow_ugpn != 0) return Broken(at + "closed but holds escrow");
          // Penalties come from the faults and a provider's close only, at most the
          // lease's FaultPenalty (docs/market.md "Lease life").
          const bool penalised = l.end == LeaseEnd::kMissedStart ||
                                 l.end == LeaseEnd::kMissedHeartbeat ||
                                 l.end == LeaseEnd::kProviderClosed;
          if (l.penalty_ugpn > (penalised ? FaultPenalty(l.rate_ugpn_per_hour, params) : 0))
            return Broken(at + "a penalty of " + Str(l.penalty_ugpn) + " ugpn for an end (" +
                          std::string(LeaseEndName(l.end)) + ") that does not allow it");
          return base::Ok();
        }
        if (l.allocations.empty()) return Broken(at + "no machines");
        for (const auto& a : l.allocations) leased[{l.provider, a.machine_id}] += a.gpus;
        auto& c = counts[l.provider];
        ++c.open;
        c.promised += FaultPenalty(l.rate_ugpn_per_hour, params);
        base::Bytes open_key =
            keys::PartyIndexKey(keys::kProviderOpenLeases, l.provider, l.lease_id);
        auto open = Exists(view, open_key);
        if (!open) return std::unexpected(open.error());
        if (!*open) return Broken(at + "open but missing from the provider's open leases");
        if (l.state == LeaseState::kReserved) {
          auto indexed = Exists(
              view, keys::DeadlineIndexKey(keys::kStartIndex, l.start_deadline_ms, l.lease_id));
          if (!indexed) return std::unexpected(indexed.error());
          if (!*indexed) return Broken(at + "reserved but not in the start-deadline index");
          if (l.paid_ugpn != 0) return Broken(at + "paid before it started");
        } else {
          ++c.started;
          auto indexed =
              Exists(view, keys::DeadlineIndexKey(keys::kExpiryIndex, l.paid_until_ms, l.lease_id));
          if (!indexed) return std::unexpected(indexed.error());
          if (!*indexed) return Broken(at + "started but not in the expiry index");
          uint64_t max_accrued = Accrued(l.rate_ugpn_per_hour, l.paid_until_ms - l.started_ms);
          if (max_accrued > l.deposited_ugpn)
            return Broken(at + "paid_until lets accrual exceed deposits");
          if (l.paid_ugpn > max_accrued) return Broken(at + "paid more than can accrue");
        }
        return base::Ok();
      }));

  GPUNET_TRY(ForEach<Machine>(
      view, keys::kMachine, [&](const base::Bytes& key, const Machine& m) -> base::Status {
        auto machine = OwnedIdOf(keys::ParseMachineKey(key), key);
        if (!machine) return std::unexpected(machine.error());
        const codec::Address& owner = machine->owner;
        const uint32_t id = machine->id;
        ++counts[owner].machines;
        uint64_t held = 0;
        if (auto it = leased.find({owner, id}); it != leased.end()) {
          held = it->second;
          leased.erase(it);
        }
        if (m.free_gpus > m.gpu_count || m.free_gpus + held != m.gpu_count)
          return Broken("machine " + Str(id) + ": free " + Str(m.free_gpus) + " + leased " +
                        Str(held) + " != inventory " + Str(m.gpu_count));
        return base::Ok();
      }));
  if (!leased.empty()) return Broken("an open lease holds GPUs of a machine that does not exist");

  GPUNET_TRY(
      ForEach<Site>(view, keys::kSite, [&](const base::Bytes& key, const Site&) -> base::Status {
        auto site = OwnedIdOf(keys::ParseSiteKey(key), key);
        if (!site) return std::unexpected(site.error());
        ++counts[site->owner].sites;
        return base::Ok();
      }));
  GPUNET_TRY(ForEach<Offer>(view, keys::kOffer, [&](const base::Bytes&, const Offer& o) {
    if (o.open) ++counts[o.provider].offers;
    return base::Ok();
  }));
  GPUNET_TRY(
      ForEach<Order>(view, keys::kOrder, [&](const base::Bytes&, const Order& o) -> base::Status {
        if (o.state != OrderState::kOpen && o.deposit_ugpn != 0)
          return Broken("order " + Str(o.order_id) + " is not open but holds a deposit");
        return base::Ok();
      }));
  GPUNET_TRY(ForEach<Provider>(
      view, keys::kProvider, [&](const base::Bytes&, const Provider& p) -> base::Status {
        const Counts& c = counts[p.owner];
        std::string at = "provider " + base::ToHex(p.owner.Span()) + ": ";
        if (p.open_leases != c.open)
          return Broken(at + "open_leases " + Str(p.open_leases) + ", scanned " + Str(c.open));
        if (p.started_leases != c.started)
          return Broken(at + "started_leases differs from the scan");
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
      }));
  return base::Ok();
}

}  // namespace gpunet::market
