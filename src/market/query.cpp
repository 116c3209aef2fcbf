#include "market/query.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "base/check.h"
#include "crypto/address.h"
#include "market/keys.h"
#include "market/math.h"

namespace gpunet::market {

namespace {

/// Decodes every record of `prefix`'s keys and hands it to `fn(key, record)`; a
/// decode failure stops the scan and is returned.
template <class T, class Fn>
base::Status ForEachUnder(const StoreView& view, const base::Bytes& prefix, Fn fn) {
  std::optional<base::Error> error;
  GPUNET_TRY(
      view.Scan(prefix, keys::PrefixEnd(prefix), [&](base::ByteSpan key, base::ByteSpan value) {
        auto record = Decode<T>(value);
        if (!record) {
          error = record.error();
          return false;
        }
        if (auto bad = fn(key, *record); !bad) {
          error = bad.error();
          return false;
        }
        return true;
      }));
  if (error) return std::unexpected(*error);
  return base::Ok();
}

/// Adds machine `m` of the class to the sums and minima of `c`.
void AddToClass(OfferClass& c, const Machine& m) {
  const bool first = c.machines++ == 0;
  c.gpus_per_machine_max = std::max(c.gpus_per_machine_max, m.gpu_count);
  c.free_gpus += m.free_gpus;
  c.vram_gib_min = first ? m.vram_gib : std::min(c.vram_gib_min, m.vram_gib);
  c.cuda_version_min = first ? m.cuda_version : std::min(c.cuda_version_min, m.cuda_version);
  c.compute_capability_min =
      first ? m.compute_capability : std::min(c.compute_capability_min, m.compute_capability);
  if (first || m.driver_version < c.driver_version_min) c.driver_version_min = m.driver_version;
  c.links.insert(m.link);
}

}  // namespace

uint64_t AccrualEnd(const Lease& l, uint64_t at_ms) {
  return std::max(std::min(at_ms, l.paid_until_ms), l.started_ms);
}

LeaseAccrual AccrualAt(const Lease& l, uint64_t at_ms) {
  LeaseAccrual a;
  a.as_of_ms = at_ms;
  a.accrued_ugpn = l.paid_ugpn;
  if (l.state == LeaseState::kStarted) {
    a.settle_ms = AccrualEnd(l, at_ms);
    a.accrued_ugpn =
        std::max(a.accrued_ugpn, Accrued(l.rate_ugpn_per_hour, a.settle_ms - l.started_ms));
  }
  a.unpaid_ugpn = a.accrued_ugpn - l.paid_ugpn;  // accrued >= paid: the max above
  a.escrow_left_ugpn = l.escrow_ugpn - std::min(l.escrow_ugpn, a.unpaid_ugpn);
  return a;
}

uint64_t AccruedUnpaid(const Lease& l, uint64_t at_ms) {
  return AccrualAt(l, at_ms).unpaid_ugpn;
}

uint32_t LeasedGpus(const Machine& m) {
  return m.gpu_count - std::min(m.gpu_count, m.free_gpus);
}

bool HasFreeGpus(const Machine& m, uint32_t gpus) {
  return m.free_gpus >= gpus;
}

bool InOfferClass(const Offer& o, const Machine& m) {
  return m.gpu_model == o.gpu_model && (o.site_id == 0 || m.site_id == o.site_id);
}

base::Result<OfferClass> OfferClassOf(const StoreView& view, const Offer& o) {
  OfferClass c;
  std::map<uint32_t, Site> sites;
  auto add_site = [&](base::ByteSpan key, const Site& s) -> base::Status {
    ++c.records_read;
    auto site = keys::ParseSiteKey(key);
    if (!site)
      return base::Fail(base::ErrorCode::kCorrupt,
                        "market key " + base::ToHex(key) + " is not a site key");
    sites.emplace(site->id, s);
    return base::Ok();
  };
  GPUNET_TRY(ForEachUnder<Site>(view, keys::KeyBuilder(keys::kSite).Addr(o.provider), add_site));
  std::set<uint32_t> used_sites;
  auto add_machine = [&](base::ByteSpan, const Machine& m) -> base::Status {
    ++c.records_read;
    if (!InOfferClass(o, m)) return base::Ok();
    AddToClass(c, m);
    used_sites.insert(m.site_id);
    if (auto s = sites.find(m.site_id); s != sites.end()) c.fabrics.insert(s->second.fabric);
    return base::Ok();
  };
  GPUNET_TRY(
      ForEachUnder<Machine>(view, keys::KeyBuilder(keys::kMachine).Addr(o.provider), add_machine));
  c.sites = static_cast<uint32_t>(used_sites.size());
  return c;
}

RankedBid RankBid(const Bid& bid, const Provider& provider) {
  return {bid, FaultRatePpm(provider.leases_completed, provider.faults)};
}

bool AuctionRanksBefore(const RankedBid& a, const RankedBid& b) {
  return std::tie(a.bid.price_ugpn_per_gpu_hour, a.fault_rate_ppm, a.bid.bid_id) <
         std::tie(b.bid.price_ugpn_per_gpu_hour, b.fault_rate_ppm, b.bid.bid_id);
}

base::Result<std::vector<RankedBid>> RankBids(const StoreView& view, std::vector<Bid> bids) {
  std::vector<RankedBid> ranked;
  ranked.reserve(bids.size());
  for (const Bid& bid : bids) {
    GPUNET_TRY_ASSIGN(auto bytes, view.Get(keys::ProviderKey(bid.provider)));
    if (!bytes)
      return base::Fail(base::ErrorCode::kCorrupt,
                        "bid " + std::to_string(bid.bid_id) + " names a provider with no record");
    GPUNET_TRY_ASSIGN(auto provider, DecodeProvider(*bytes));
    ranked.push_back(RankBid(bid, provider));
  }
  std::sort(ranked.begin(), ranked.end(), AuctionRanksBefore);
  GPUNET_CHECK(ranked.size() == bids.size());
  return ranked;
}

std::optional<std::string> MachineMismatch(const codec::Requirements& q, uint32_t machine_id,
                                           const Machine& m) {
  const std::string at = "machine " + std::to_string(machine_id) + ": ";
  if (m.gpu_count < q.gpus_per_machine)
    return at + std::to_string(m.gpu_count) + " GPUs, the order wants " +
           std::to_string(q.gpus_per_machine) + " per machine";
  if (!q.gpu_models.empty() &&
      !std::binary_search(q.gpu_models.begin(), q.gpu_models.end(), m.gpu_model))
    return at + "model " + m.gpu_model + " is not accepted";
  if (m.vram_gib < q.min_vram_gib) return at + "VRAM below the minimum";
  if (m.cuda_version < q.min_cuda_version) return at + "CUDA version below the minimum";
  return std::nullopt;
}

std::optional<std::string> FabricMismatch(const codec::Requirements& q, uint32_t machine_id,
                                          codec::Fabric site_fabric) {
  if (q.fabric != codec::Fabric::kAny && site_fabric != q.fabric)
    return "machine " + std::to_string(machine_id) + ": site fabric does not match";
  return std::nullopt;
}

std::optional<std::string> RegionMismatch(const codec::Requirements& q, const Provider& p) {
  if (!q.region.empty() && q.region != p.region)
    return "provider region '" + p.region + "', the order wants '" + q.region + "'";
  return std::nullopt;
}

std::optional<std::string> TenantNotAdmitted(const Provider& p, const codec::Address& tenant) {
  const auto listed = [&](const std::vector<codec::Address>& set) {
    return std::binary_search(set.begin(), set.end(), tenant);
  };
  if (listed(p.policy.deny) || (!p.policy.allow.empty() && !listed(p.policy.allow)))
    return "provider " + crypto::AddressToString(p.owner) + "'s policy does not admit " +
           crypto::AddressToString(tenant);
  return std::nullopt;
}

std::optional<std::string> ProviderUnqualified(const Provider& p,
                                               const codec::ProviderRequirements& q) {
  const std::string at = "provider " + crypto::AddressToString(p.owner);
  if (std::binary_search(q.excluded.begin(), q.excluded.end(), p.owner))
    return at + " is excluded by the order";
  if (p.bond_ugpn < q.min_bond_ugpn)
    return at + " has a bond of " + std::to_string(p.bond_ugpn) + " ugpn, the order asks for " +
           std::to_string(q.min_bond_ugpn);
  if (p.earned_ugpn < q.min_earned_ugpn)
    return at + " earned " + std::to_string(p.earned_ugpn) +
           " ugpn from other tenants, the order asks for " + std::to_string(q.min_earned_ugpn);
  const uint64_t rate = FaultRatePpm(p.leases_completed, p.faults);
  if (rate > q.max_fault_rate_ppm)
    return at + " has a fault rate of " + std::to_string(rate) + " ppm, the order allows " +
           std::to_string(q.max_fault_rate_ppm);
  return std::nullopt;
}

}  // namespace gpunet::market
