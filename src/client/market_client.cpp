#include "client/market_client.h"

#include <chrono>
#include <optional>
#include <thread>

#include "client/market_tx.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;

std::unexpected<base::Error> Bad(std::string_view what, std::string_view key,
                                 std::string_view expected) {
  return Fail(ErrorCode::kCorrupt, "the node's answer to " + std::string(what) + ": field \"" +
                                       std::string(key) + "\" is missing or not " +
                                       std::string(expected));
}

base::Result<std::string> Str(const json& j, std::string_view key, std::string_view what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return Bad(what, key, "a string");
  return it->get<std::string>();
}

/// The JSON object of a 200 answer to GET `path`, else the node's error.
base::Result<json> AnswerOf(const HttpResponse& r, std::string_view path) {
  if (r.status != 200) return std::unexpected(ErrorFromResponse(r));
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Fail(ErrorCode::kCorrupt,
                "the node's answer to GET " + std::string(path) + " is not a JSON object");
  return j;
}

}  // namespace

base::Result<uint64_t> U64String(const json& j, std::string_view key, std::string_view what) {
  auto s = Str(j, key, what);
  if (!s) return Bad(what, key, "an integer string");
  if (s->empty() || s->size() > 20) return Bad(what, key, "an integer string");
  unsigned __int128 v = 0;
  for (char c : *s) {
    if (c < '0' || c > '9') return Bad(what, key, "an integer string");
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > UINT64_MAX) return Bad(what, key, "an integer string under 2^64");
  return static_cast<uint64_t>(v);
}

base::Result<uint64_t> U64Number(const json& j, std::string_view key, std::string_view what) {
  auto it = j.find(key);
  // Parsed JSON holds non-negative integers as unsigned; built JSON may hold them signed.
  if (it == j.end() || !it->is_number_integer() ||
      (!it->is_number_unsigned() && it->get<int64_t>() < 0))
    return Bad(what, key, "an unsigned number");
  return it->get<uint64_t>();
}

MarketClient::MarketClient(std::string url, HttpClientOptions options)
    : m_http(std::move(url), options) {}

base::Result<json> MarketClient::Get(std::string_view path) {
  auto r = m_http.Get(path);
  if (!r) return std::unexpected(r.error());
  return AnswerOf(*r, path);
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

base::Result<std::vector<json>> MarketClient::GetAll(std::string_view path, std::string_view name,
                                                     size_t pages_max) {
  const std::string base(path);
  const char join = base.find('?') == std::string::npos ? '?' : '&';
  std::vector<json> out;
  std::optional<uint64_t> after;
  for (size_t page = 0; page < pages_max; ++page) {
    auto j = Get(after ? base + join + "after=" + std::to_string(*after) : base);
    if (!j) return std::unexpected(j.error());
    auto list = j->find(name);
    if (list == j->end() || !list->is_array()) return Bad("GET " + base, name, "a list");
    for (auto& e : *list) out.push_back(std::move(e));
    if (!j->contains("next")) return out;
    auto next = U64Number(*j, "next", "GET " + base);
    if (!next) return std::unexpected(next.error());
    // The cursor only moves forward; one that does not is a node bug, not a loop.
    if (after && *next <= *after) return Bad("GET " + base, "next", "past the page before");
    after = *next;
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
  constexpr std::string_view kWhat = "GET /market/offers";
  auto it = answer.find("offers");
  if (it == answer.end() || !it->is_array()) return Bad(kWhat, "offers", "a list");
  std::vector<OfferView> out;
  for (const auto& o : *it) {
    if (!o.is_object()) return Bad(kWhat, "offers[]", "an object");
    OfferView v;
#define OV_TRY(lhs, expr)                              \
  do {                                                 \
    auto ov_r_ = (expr);                               \
    if (!ov_r_) return std::unexpected(ov_r_.error()); \
    lhs = *ov_r_;                                      \
  } while (0)
    uint64_t id = 0, n = 0;
    OV_TRY(id, U64Number(o, "offer_id", kWhat));
    v.id = std::to_string(id);
    OV_TRY(v.provider, Str(o, "provider", kWhat));
    OV_TRY(v.gpu_model, Str(o, "gpu_model", kWhat));
    OV_TRY(n, U64Number(o, "gpus_per_machine_max", kWhat));
    v.gpus = static_cast<uint32_t>(n);
    OV_TRY(n, U64Number(o, "free_gpus", kWhat));
    v.gpus_free = static_cast<uint32_t>(std::min<uint64_t>(n, UINT32_MAX));
    OV_TRY(v.vram_gb, U64Number(o, "vram_gib_min", kWhat));
    OV_TRY(v.price_ugpn_per_gpu_hour, U64String(o, "price_ugpn_per_gpu_hour", kWhat));
    OV_TRY(v.region, Str(o, "region", kWhat));
    OV_TRY(v.fabric, Str(o, "fabric", kWhat));
    OV_TRY(v.link, Str(o, "link", kWhat));
    OV_TRY(n, U64Number(o, "cuda_version_min", kWhat));
    v.cuda = CudaFromLedger(static_cast<uint32_t>(n));
    OV_TRY(n, U64Number(o, "compute_capability_min", kWhat));
    v.compute_capability = ComputeCapabilityFromLedger(static_cast<uint32_t>(n));
    std::string driver;
    OV_TRY(driver, Str(o, "driver_version_min", kWhat));
    if (auto d = ParseVersion(driver); d) v.driver = *d;  // non-numeric drivers compare as 0
    OV_TRY(n, U64Number(o, "machines", kWhat));
    v.machines = static_cast<uint32_t>(n);
    auto priv = o.find("private");
    if (priv == o.end() || !priv->is_boolean()) return Bad(kWhat, "private", "a boolean");
    v.is_private = priv->get<bool>();
#undef OV_TRY
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace gpunet::client
