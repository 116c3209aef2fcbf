// What readers compute from the market's records (docs/market.md, "What readers
// compute"): a lease's accrual at a time, a machine's free capacity and the class
// of machines an offer sells. The rules (apply*.cpp) and the node's RPC
// (node/market_routes.cpp) call these same functions, so what the RPC shows and
// what the ledger pays can never disagree.
//
// Pure functions of the records (and of a StoreView where they read), integer
// only, using market/math.h. They trust no record: on one that breaks the market's
// invariants (invariants.h) the amounts saturate at 0 rather than wrap, and the
// rules, which may trust their own writes, check those invariants themselves.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "codec/types.h"
#include "market/records.h"
#include "market/store.h"

namespace gpunet::market {

/// Where a started lease's accrual stops at `at_ms`: at_ms, no later than
/// paid_until_ms (the deposits pay no further) and no earlier than started_ms.
uint64_t AccrualEnd(const Lease& l, uint64_t at_ms);

/// A lease's money at a time (docs/market.md "Lease life"): what a withdrawal or a
/// close at `as_of_ms` pays the provider, and what stays in escrow after that.
struct LeaseAccrual {
  uint64_t as_of_ms = 0;
  /// AccrualEnd(as_of) for a started lease; 0 for a reserved or closed one.
  uint64_t settle_ms = 0;
  /// What the GPU time up to settle_ms has earned in all: accrued(settle_ms) of
  /// math.h, and never less than what was paid (a heartbeat fault may settle
  /// before a withdrawal, which is kept). paid_ugpn for a lease not running.
  uint64_t accrued_ugpn = 0;
  /// accrued - paid: what is due to the provider and not yet paid.
  uint64_t unpaid_ugpn = 0;
  /// escrow - unpaid: what the escrow holds beyond what is due.
  uint64_t escrow_left_ugpn = 0;
  bool operator==(const LeaseAccrual&) const = default;
};

/// The lease's accrual at `at_ms` (the block time: the node's RPC passes its last
/// block's, the rules the block they execute in).
LeaseAccrual AccrualAt(const Lease& l, uint64_t at_ms);

/// AccrualAt(l, at_ms).unpaid_ugpn: what a withdrawal at `at_ms` pays, and what a
/// close settling at `at_ms` pays before refunding the rest.
uint64_t AccruedUnpaid(const Lease& l, uint64_t at_ms);

/// GPUs of the machine held by open leases: gpu_count - free_gpus (0 when a
/// broken record has more free than it has).
uint32_t LeasedGpus(const Machine& m);

/// Whether the machine has `gpus` free GPUs: what a lease or an award of `gpus`
/// per machine needs.
bool HasFreeGpus(const Machine& m, uint32_t gpus);

/// Whether the machine is of the class the offer sells: the offer's model, on the
/// offer's site (any of the provider's sites when the offer's site_id is 0).
bool InOfferClass(const Offer& o, const Machine& m);

/// Why machine `machine_id` (record `m`) cannot serve one machine's share of an
/// order's requirements `q`: its GPU count, model, VRAM and CUDA version
/// (docs/market.md, "Orders and the auction"); nullopt when it can. The bid and the
/// award (apply_orders.cpp) check every machine of a bid with it and with the two
/// below, and the provider daemon's bidder (provider/bidder.cpp) its machine before
/// it bids, so the daemon sends no bid the ledger would refuse for these reasons.
/// The machine's free GPUs are not judged here (the award checks them as it leases).
std::optional<std::string> MachineMismatch(const codec::Requirements& q, uint32_t machine_id,
                                           const Machine& m);

/// Why machine `machine_id`, on a site of fabric `site_fabric`, does not meet the
/// order's fabric (kAny: every fabric does); nullopt when it does.
std::optional<std::string> FabricMismatch(const codec::Requirements& q, uint32_t machine_id,
                                          codec::Fabric site_fabric);

/// Why provider `p` is not in the order's region `q.region` (empty: any region);
/// nullopt when it is.
std::optional<std::string> RegionMismatch(const codec::Requirements& q, const Provider& p);

/// Why provider `p`'s tenant policy does not admit `tenant` (on its deny list, or an
/// allow list without it); nullopt when it does. Checked at every lease, bid and
/// award, and by the bidder.
std::optional<std::string> TenantNotAdmitted(const Provider& p, const codec::Address& tenant);

/// Why provider `p` does not qualify for an order that asks `q` of its bidders: it
/// is excluded, its bond or its earnings are under the minimum, or its fault rate
/// (FaultRatePpm of its completed leases and faults) is over the maximum; nullopt
/// when it qualifies. Checked at the bid and at the award, and by the bidder.
std::optional<std::string> ProviderUnqualified(const Provider& p,
                                               const codec::ProviderRequirements& q);

/// The class of machines an offer sells, summed over the provider's machines in
/// it (InOfferClass), so a reader can filter on it (docs/rpc.md, offers).
struct OfferClass {
  uint32_t machines = 0;
  uint32_t sites = 0;  ///< distinct sites of those machines
  uint32_t gpus_per_machine_max = 0;
  uint64_t free_gpus = 0;  ///< free GPUs of the class in all
  uint32_t vram_gib_min = 0;
  uint32_t cuda_version_min = 0;
  uint32_t compute_capability_min = 0;
  std::string driver_version_min;  ///< the least in byte order
  std::set<codec::GpuLink> links;
  std::set<codec::Fabric> fabrics;  ///< of those machines' sites
  uint64_t records_read = 0;        ///< the provider's sites and machines read
  bool operator==(const OfferClass&) const = default;
};

/// The class of offer `o` from its provider's sites and machines in `view` (the
/// same for every offer of one provider, model and site). At most
/// kSitesPerProviderMax + kMachinesPerProviderMax records are read.
base::Result<OfferClass> OfferClassOf(const StoreView& view, const Offer& o);

/// A bid with what the auction ranks it by besides itself.
struct RankedBid {
  Bid bid;
  uint64_t fault_rate_ppm = 0;  ///< FaultRatePpm of the bid's provider (math.h)
};

/// The rank of `bid`, placed by `provider` (its record).
RankedBid RankBid(const Bid& bid, const Provider& provider);

/// The auction's order (docs/market.md, "Orders and the auction"): the lowest price
/// first; equal prices: the provider with the lower fault rate, then the earlier bid
/// (lower id). The award at the window's end tries the bids in this order and
/// GET /market/order/<id>/bids lists them in it, so the list is the award's order.
bool AuctionRanksBefore(const RankedBid& a, const RankedBid& b);

/// `bids` in the auction's order (AuctionRanksBefore), each with its provider's
/// fault rate read from `view`. kCorrupt when a bid's provider has no record.
base::Result<std::vector<RankedBid>> RankBids(const StoreView& view, std::vector<Bid> bids);

}  // namespace gpunet::market
