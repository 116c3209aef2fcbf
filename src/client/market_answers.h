// The node's market answers as typed values (docs/rpc.md, "Market"). Each parser
// reads every documented field strictly (client/json_fields.h): a missing field, a
// string where a number belongs, an amount that is not an integer string or an
// address that is not gpn1 is kCorrupt naming the request, the field's path and
// what was expected. Each answer keeps the body as the node sent it (`raw`), so
// `--output json` passes it through unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/result.h"
#include "client/offer_filter.h"

namespace gpunet::client {

/// One answer of a /market endpoint: the record and the committed block it was
/// read at.
template <class T>
struct MarketAnswer {
  uint64_t height = 0;
  uint64_t time_ms = 0;  ///< that block's time
  T value;
  nlohmann::json raw;         ///< the whole body as the node sent it
  nlohmann::json raw_record;  ///< the record's object inside it ("lease": {...}) as sent
};

/// One page of a list endpoint: entries in list order; `next` (the `after` of the
/// next page) when more follow.
template <class T>
struct MarketPage {
  uint64_t height = 0;
  uint64_t time_ms = 0;
  std::vector<T> entries;
  bool truncated = false;
  std::optional<uint64_t> next;
  nlohmann::json raw;
};

struct PayoutShare {
  std::string payee;  ///< gpn1 address
  uint32_t bp = 0;    ///< basis points of each payment
};

struct UnbondingInfo {
  uint64_t amount_ugpn = 0;
  uint64_t release_ms = 0;
};

struct SiteInfo {
  uint32_t site_id = 0;
  std::string fabric;
  uint32_t bandwidth_gbps = 0;
  uint32_t machines = 0;
};

/// A machine as its provider reported it (self-reported until attested).
struct MachineInfo {
  uint32_t machine_id = 0;
  uint32_t site_id = 0;
  std::string gpu_model;
  uint32_t gpu_count = 0;
  uint32_t free_gpus = 0;
  uint32_t vram_gib = 0;
  std::string link;
  std::string driver_version;
  uint32_t cuda_version = 0;        ///< 12040 = CUDA 12.4
  uint32_t compute_capability = 0;  ///< 90 = 9.0
  uint32_t cpu_cores = 0;
  uint32_t memory_gib = 0;
  uint32_t disk_gib = 0;
};

/// The class of machines an offer sells: its provider's machines of the offer's
/// model (on its site), summarised (docs/rpc.md, "offer").
struct OfferClass {
  std::string region;
  bool provider_active = false;
  uint32_t fault_rate_ppm = 0;
  uint32_t machines = 0;
  uint32_t sites = 0;
  uint32_t gpus_per_machine_max = 0;
  uint64_t free_gpus = 0;  ///< summed over the machines
  uint32_t vram_gib_min = 0;
  uint32_t cuda_version_min = 0;
  uint32_t compute_capability_min = 0;
  std::string driver_version_min;
  std::string link;    ///< "mixed" when the machines differ
  std::string fabric;  ///< "mixed" when the sites differ
};

struct OfferInfo {
  uint64_t offer_id = 0;
  std::string provider;
  std::string gpu_model;
  uint32_t site_id = 0;  ///< 0: any site
  uint64_t price_ugpn_per_gpu_hour = 0;
  std::vector<std::string> tenants;  ///< the only tenants allowed; empty: anyone
  bool is_private = false;
  bool open = false;
  uint64_t created_ms = 0;
  uint32_t min_hours = 0;  ///< a lease's first deposit covers this; 0: the chain's minimum
  uint32_t max_hours = 0;  ///< a lease's deposits in all cover at most this; 0: no limit
  /// GET /market/offer(s) add it; a provider's offer_list does not.
  std::optional<OfferClass> machine_class;
};

struct ProviderInfo {
  std::string owner;
  std::string operator_address;
  std::string tenant_api_uri;
  base::Hash32 tls_fingerprint{};
  std::string region;
  std::vector<PayoutShare> payouts;
  std::vector<std::string> policy_allow;
  std::vector<std::string> policy_deny;
  bool active = false;
  uint64_t bond_ugpn = 0;
  std::vector<UnbondingInfo> unbonding;
  uint64_t registered_ms = 0;
  uint64_t last_heartbeat_ms = 0;
  uint64_t last_heartbeat_height = 0;
  uint64_t heartbeat_deadline_ms = 0;
  uint32_t sites = 0;
  uint32_t machines = 0;
  uint32_t open_offers = 0;
  uint32_t open_leases = 0;
  uint32_t started_leases = 0;
  uint64_t leases_completed = 0;
  uint64_t faults = 0;
  uint32_t fault_rate_ppm = 0;
  uint64_t penalties_paid_ugpn = 0;
  uint64_t penalties_unpaid_ugpn = 0;
  uint64_t earned_ugpn = 0;
  uint64_t promised_penalties_ugpn = 0;
  uint64_t required_bond_ugpn = 0;
  // GET /market/provider/<owner> only (a list entry has none of them).
  std::vector<SiteInfo> site_list;
  std::vector<MachineInfo> machine_list;
  std::vector<OfferInfo> offer_list;  ///< the open offers, without their class
};

struct OrderRequirementsInfo {
  std::vector<std::string> gpu_models;  ///< empty: any model
  uint32_t gpus_per_machine = 0;
  uint32_t machines = 0;
  uint32_t min_vram_gib = 0;
  std::string region;
  std::string fabric;
  bool same_site = false;
  uint32_t min_cuda_version = 0;
  std::vector<std::string> auditors;
  std::vector<std::pair<std::string, std::string>> attributes;  ///< in the node's order
};

struct OrderProvidersInfo {
  uint64_t min_bond_ugpn = 0;
  uint64_t min_earned_ugpn = 0;
  uint32_t max_fault_rate_ppm = 0;
  std::vector<std::string> excluded;
};

struct OrderInfo {
  uint64_t order_id = 0;
  std::string tenant;
  OrderRequirementsInfo requirements;
  uint64_t max_price_ugpn_per_gpu_hour = 0;
  uint64_t deposit_ugpn = 0;
  base::Hash32 manifest_hash{};
  uint64_t created_ms = 0;
  uint64_t window_end_ms = 0;
  std::string state;  ///< open, awarded or closed
  uint32_t bids = 0;
  uint64_t lease_id = 0;  ///< 0 until awarded
  OrderProvidersInfo providers;
};

struct BidInfo {
  uint64_t bid_id = 0;
  uint64_t order_id = 0;
  std::string provider;
  uint64_t price_ugpn_per_gpu_hour = 0;
  std::vector<uint32_t> machine_ids;
  uint64_t created_ms = 0;
};

/// GET /market/order/<id>/bids: the order and its bids, cheapest first.
struct OrderBids {
  OrderInfo order;
  std::vector<BidInfo> bids;
};

struct AllocationInfo {
  uint32_t machine_id = 0;
  uint32_t gpus = 0;
};

struct LeaseInfo {
  uint64_t lease_id = 0;
  std::string tenant;
  std::string provider;
  uint64_t offer_id = 0;  ///< 0 when from an order
  uint64_t order_id = 0;  ///< 0 when from an offer
  std::vector<AllocationInfo> allocations;
  uint64_t gpus = 0;
  uint64_t price_ugpn_per_gpu_hour = 0;
  uint64_t rate_ugpn_per_hour = 0;
  base::Hash32 manifest_hash{};
  std::string state;  ///< reserved, started or closed
  std::string end;    ///< none, tenant_closed, ... (docs/rpc.md)
  uint64_t created_ms = 0;
  uint64_t start_deadline_ms = 0;
  uint64_t started_ms = 0;
  uint64_t paid_until_ms = 0;
  uint64_t deposited_ugpn = 0;
  uint64_t escrow_ugpn = 0;
  uint64_t paid_ugpn = 0;
  uint64_t refunded_ugpn = 0;
  uint64_t penalty_ugpn = 0;
  uint64_t closed_ms = 0;
  uint32_t min_hours = 0;  ///< its offer's (0 when from an order)
  uint32_t max_hours = 0;  ///< deposits in all cover at most this many hours; 0: no limit
  uint64_t as_of_ms = 0;   ///< the block time accrued_ugpn is computed at
  uint64_t accrued_ugpn = 0;
  uint64_t withdrawable_ugpn = 0;
};

/// The two sides of the supply equation, as GET /conservation scanned them.
struct ConservationSums {
  unsigned __int128 balances_ugpn = 0;
  unsigned __int128 escrow_ugpn = 0;
  unsigned __int128 bonds_ugpn = 0;
  unsigned __int128 stake_ugpn = 0;
  unsigned __int128 unbonding_ugpn = 0;
  uint64_t fee_pool_ugpn = 0;
  uint64_t genesis_ugpn = 0;
  uint64_t minted_ugpn = 0;
  uint64_t burned_ugpn = 0;
  uint64_t accounts = 0;
  std::string equation;  ///< both sides as text
};

/// GET /conservation.
struct ConservationInfo {
  uint64_t height = 0;
  uint64_t time_ms = 0;
  bool holds = false;
  /// Why the scan could not add up (a stored value did not decode); then no sums.
  std::optional<std::string> message;
  std::optional<ConservationSums> sums;
  nlohmann::json raw;
};

// Parsers of the answers, public for tests (a malformed answer is easier to build
// as JSON than to serve). `what` names the request in errors ("GET /market/lease/3").
base::Result<MarketAnswer<ProviderInfo>> ParseProviderAnswer(const nlohmann::json& j,
                                                             const std::string& what);
base::Result<MarketPage<ProviderInfo>> ParseProvidersPage(const nlohmann::json& j,
                                                          const std::string& what);
base::Result<MarketAnswer<OfferInfo>> ParseOfferAnswer(const nlohmann::json& j,
                                                       const std::string& what);
base::Result<MarketPage<OfferInfo>> ParseOffersPage(const nlohmann::json& j,
                                                    const std::string& what);
/// The list "offers" of `j` (entries with their class), without a page's envelope:
/// the offers GetAll gathered from several pages.
base::Result<std::vector<OfferInfo>> ParseOfferList(const nlohmann::json& j,
                                                    const std::string& what);
base::Result<MarketAnswer<OrderInfo>> ParseOrderAnswer(const nlohmann::json& j,
                                                       const std::string& what);
base::Result<MarketPage<OrderInfo>> ParseOrdersPage(const nlohmann::json& j,
                                                    const std::string& what);
base::Result<MarketAnswer<OrderBids>> ParseOrderBidsAnswer(const nlohmann::json& j,
                                                           const std::string& what);
base::Result<MarketAnswer<BidInfo>> ParseBidAnswer(const nlohmann::json& j,
                                                   const std::string& what);
base::Result<MarketAnswer<LeaseInfo>> ParseLeaseAnswer(const nlohmann::json& j,
                                                       const std::string& what);
base::Result<MarketPage<LeaseInfo>> ParseLeasesPage(const nlohmann::json& j,
                                                    const std::string& what);
base::Result<ConservationInfo> ParseConservation(const nlohmann::json& j);

/// What `gpunet offers` filters on. `offer` has its class (as every offer of
/// ParseOffersPage and ParseOfferAnswer has).
OfferView OfferViewOf(const OfferInfo& offer);

}  // namespace gpunet::client
