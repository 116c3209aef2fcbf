// Reading the node's market endpoints (docs/rpc.md, "Market"). Answers are JSON
// handed to the CLI mostly as they are; what the client computes on (offers for
// the filter, ids and amounts it acts on) is parsed strictly: a missing field or
// an amount that is not an integer string is kCorrupt naming the field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "client/http_client.h"
#include "client/offer_filter.h"

namespace gpunet::client {

class MarketClient {
 public:
  explicit MarketClient(std::string url, HttpClientOptions options = {});

  /// GET `path` (e.g. "/market/lease/3"): the JSON body of a 200 answer, else the
  /// node's error (kNotFound for an unknown id, with the node's message).
  base::Result<nlohmann::json> Get(std::string_view path);

  /// GET /conservation. The node runs one scan at a time and answers 503 to a
  /// request that arrives during one: this asks again every 200 ms, for up to
  /// `wait_ms`, then returns what the node said.
  base::Result<nlohmann::json> Conservation(uint64_t wait_ms = 10'000);

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

/// j[key] as a u64 carried as an integer string (amounts, `_ugpn` fields).
base::Result<uint64_t> U64String(const nlohmann::json& j, std::string_view key,
                                 std::string_view what);
/// j[key] as an unsigned JSON number.
base::Result<uint64_t> U64Number(const nlohmann::json& j, std::string_view key,
                                 std::string_view what);

}  // namespace gpunet::client
