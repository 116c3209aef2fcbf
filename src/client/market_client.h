// Reading the node's market endpoints (docs/rpc.md, "Market"). The typed getters
// return the answers of client/market_answers.h, every field parsed strictly (a
// missing or mistyped field is kCorrupt naming it); each keeps the node's body for
// output that passes it through. Get and GetAll hand back JSON as it came, for
// callers that read an endpoint the typed getters do not cover.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "client/http_client.h"
#include "client/market_answers.h"
#include "client/offer_filter.h"

namespace gpunet::client {

/// One page of /market/orders or /market/leases (docs/rpc.md, "Lists are pages").
struct MarketListQuery {
  uint32_t limit = 100;           ///< 1..1000
  std::optional<uint64_t> after;  ///< the `next` of the page before
  bool all = false;               ///< closed (and awarded) records too
  std::string tenant;             ///< gpn1 address; empty: any
  std::string provider;           ///< leases: gpn1 address (one of tenant/provider)
};

class MarketClient {
 public:
  explicit MarketClient(std::string url, HttpClientOptions options = {});

  base::Result<MarketAnswer<ProviderInfo>> Provider(std::string_view owner_address);
  /// One page of up to `limit` providers in owner order (no cursor yet).
  base::Result<MarketPage<ProviderInfo>> Providers(uint32_t limit);
  base::Result<MarketAnswer<OfferInfo>> Offer(uint64_t id);
  base::Result<MarketPage<OrderInfo>> Orders(const MarketListQuery& query);
  base::Result<MarketAnswer<OrderInfo>> Order(uint64_t id);
  /// An order and its bids, cheapest first.
  base::Result<MarketAnswer<OrderBids>> Bids(uint64_t order_id);
  base::Result<MarketAnswer<BidInfo>> Bid(uint64_t id);
  base::Result<MarketPage<LeaseInfo>> Leases(const MarketListQuery& query);
  base::Result<MarketAnswer<LeaseInfo>> Lease(uint64_t id);

  /// GET /conservation, parsed. The node runs one scan at a time and answers 503 to
  /// a request that arrives during one: this asks again every 200 ms, for up to
  /// `wait_ms`, then returns what the node said.
  base::Result<ConservationInfo> CheckConservation(uint64_t wait_ms = 10'000);
  /// The same, the body as it came.
  base::Result<nlohmann::json> Conservation(uint64_t wait_ms = 10'000);

  /// GET `path` (e.g. "/market/lease/3"): the JSON body of a 200 answer, else the
  /// node's error (kNotFound for an unknown id, with the node's message).
  base::Result<nlohmann::json> Get(std::string_view path);

  /// Every entry of a paged list (docs/rpc.md, "Market"): GETs `path` (its query
  /// without `after`) page by page, following each answer's `next`, and returns
  /// the entries under `name` in list order. At most `pages_max` pages; more is
  /// kLimitExceeded, so a list that outgrew what a caller can hold says so.
  base::Result<std::vector<nlohmann::json>> GetAll(std::string_view path, std::string_view name,
                                                   size_t pages_max = kListPagesMax);

  /// Every open offer, every provider (all pages of GET /market/offers), as the
  /// filter sees them.
  base::Result<std::vector<OfferView>> Offers();

  /// Pages GetAll reads by default: 1,000 pages of up to 1,000 entries.
  static constexpr size_t kListPagesMax = 1000;

 private:
  HttpClient m_http;
};

/// The offers of a /market/offers answer; kCorrupt naming the field when one is
/// missing or of the wrong type.
base::Result<std::vector<OfferView>> ParseOfferViews(const nlohmann::json& answer);

}  // namespace gpunet::client
