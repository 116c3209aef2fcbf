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

  /// GET /market/offers (open offers, every provider), as the filter sees them.
  base::Result<std::vector<OfferView>> Offers();

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
