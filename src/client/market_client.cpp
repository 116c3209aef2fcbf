#include "client/market_client.h"

#include <chrono>
#include <optional>
#include <thread>

#include "client/json_fields.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;

/// The JSON object of a 200 answer to GET `path`, else the node's error.
base::Result<json> AnswerOf(const HttpResponse& r, std::string_view path) {
  if (r.status != 200) return std::unexpected(ErrorFromResponse(r));
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Fail(ErrorCode::kCorrupt,
                "the node's answer to GET " + std::string(path) + " is not a JSON object");
  return j;
}

/// "?limit=N[&after=ID]&state=open|all[&tenant=A][&provider=A]".
std::string QueryOf(const MarketListQuery& q) {
  std::string out = "?limit=" + std::to_string(q.limit);
  if (q.after) out += "&after=" + std::to_string(*q.after);
  out += q.all ? "&state=all" : "&state=open";
  if (!q.tenant.empty()) out += "&tenant=" + q.tenant;
  if (!q.provider.empty()) out += "&provider=" + q.provider;
  return out;
}

/// GET `path`, its answer parsed by `parse` (which names the request in errors).
template <class Parse>
auto Typed(MarketClient& client, const std::string& path, const Parse& parse)
    -> decltype(parse(json(), path)) {
  auto j = client.Get(path);
  if (!j) return std::unexpected(j.error());
  return parse(*j, "GET " + path);
}

}  // namespace

MarketClient::MarketClient(std::string url, HttpClientOptions options)
    : m_http(std::move(url), options) {}

base::Result<json> MarketClient::Get(std::string_view path) {
  auto r = m_http.Get(path);
  if (!r) return std::unexpected(r.error());
  return AnswerOf(*r, path);
}

base::Result<MarketAnswer<ProviderInfo>> MarketClient::Provider(std::string_view owner_address) {
  return Typed(*this, "/market/provider/" + std::string(owner_address), ParseProviderAnswer);
}

base::Result<MarketPage<ProviderInfo>> MarketClient::Providers(uint32_t limit) {
  return Typed(*this, "/market/providers?limit=" + std::to_string(limit), ParseProvidersPage);
}

base::Result<MarketAnswer<OfferInfo>> MarketClient::Offer(uint64_t id) {
  return Typed(*this, "/market/offer/" + std::to_string(id), ParseOfferAnswer);
}

base::Result<MarketPage<OrderInfo>> MarketClient::Orders(const MarketListQuery& query) {
  return Typed(*this, "/market/orders" + QueryOf(query), ParseOrdersPage);
}

base::Result<MarketAnswer<OrderInfo>> MarketClient::Order(uint64_t id) {
  return Typed(*this, "/market/order/" + std::to_string(id), ParseOrderAnswer);
}

base::Result<MarketAnswer<OrderBids>> MarketClient::Bids(uint64_t order_id) {
  return Typed(*this, "/market/order/" + std::to_string(order_id) + "/bids", ParseOrderBidsAnswer);
}

base::Result<MarketAnswer<BidInfo>> MarketClient::Bid(uint64_t id) {
  return Typed(*this, "/market/bid/" + std::to_string(id), ParseBidAnswer);
}

base::Result<MarketPage<LeaseInfo>> MarketClient::Leases(const MarketListQuery& query) {
  return Typed(*this, "/market/leases" + QueryOf(query), ParseLeasesPage);
}

base::Result<MarketAnswer<LeaseInfo>> MarketClient::Lease(uint64_t id) {
  return Typed(*this, "/market/lease/" + std::to_string(id), ParseLeaseAnswer);
}

base::Result<json> MarketClient::Conservation(uint64_t wait_ms) {
  constexpr uint64_t kRetryMs = 200;
  for (uint64_t waited = 0;; waited += kRetryMs) {
    auto r = m_http.Get("/conservation");
    if (!r) return std::unexpected(r.error());
    // 503: another client's scan is running (its answer is cached once it ends),
    // or a block committed during the scan: a retry gets one height's answer.
    if (r->status != 503 || waited >= wait_ms) return AnswerOf(*r, "/conservation");
    std::this_thread::sleep_for(std::chrono::milliseconds(kRetryMs));
  }
}

base::Result<ConservationInfo> MarketClient::CheckConservation(uint64_t wait_ms) {
  auto j = Conservation(wait_ms);
  if (!j) return std::unexpected(j.error());
  return ParseConservation(*j);
}

base::Result<std::vector<json>> MarketClient::GetAll(std::string_view path, std::string_view name,
                                                     size_t pages_max) {
  const std::string base(path);
  const char join = base.find('?') == std::string::npos ? '?' : '&';
  std::vector<json> out;
  std::optional<uint64_t> after;
  for (size_t page = 0; page < pages_max; ++page) {
    auto j = Get(after ? base + join + "after=" + std::to_string(*after) : base);
    if (!j) return std::unexpected(j.error());
    JsonFields f(*j, "GET " + base);
    const json* list = nullptr;
    GPUNET_TRY_ASSIGN(list, f.Array(name));
    for (const auto& e : *list) out.push_back(e);
    if (!f.Has("next")) return out;
    uint64_t next = 0;
    GPUNET_TRY_ASSIGN(next, f.Number<uint64_t>("next"));
    // The cursor only moves forward; one that does not is a node bug, not a loop.
    if (after && next <= *after) return f.Bad("next", "is not past the page before");
    after = next;
  }
  return Fail(ErrorCode::kLimitExceeded,
              "GET " + base + " has more than " + std::to_string(pages_max) +
                  " pages; narrow the query (a provider, a tenant) or page with `after`");
}

base::Result<std::vector<OfferView>> MarketClient::Offers() {
  auto all = GetAll("/market/offers?limit=1000", "offers");
  if (!all) return std::unexpected(all.error());
  return ParseOfferViews(json{{"offers", std::move(*all)}});
}

base::Result<std::vector<OfferView>> ParseOfferViews(const json& answer) {
  std::vector<OfferInfo> offers;
  GPUNET_TRY_ASSIGN(offers, ParseOfferList(answer, "GET /market/offers"));
  std::vector<OfferView> out;
  out.reserve(offers.size());
  for (const auto& o : offers) out.push_back(OfferViewOf(o));
  return out;
}

}  // namespace gpunet::client
