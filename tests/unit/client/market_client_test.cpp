#include "client/market_client.h"

#include <gtest/gtest.h>

#include "crypto/address.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using nlohmann::json;

/// One offer as GET /market/offers answers it (docs/rpc.md, "Market").
json OfferJson() {
  return {{"offer_id", 3},
          {"provider", crypto::AddressToString(testing::TestAddress("provider"))},
          {"gpu_model", "H100"},
          {"site_id", 1},
          {"price_ugpn_per_gpu_hour", "2500000"},
          {"tenants", json::array()},
          {"private", false},
          {"open", true},
          {"created_ms", 1},
          {"min_hours", 0},
          {"max_hours", 48},
          {"region", "eu-west"},
          {"provider_active", true},
          {"fault_rate_ppm", 0},
          {"machines", 2},
          {"sites", 1},
          {"gpus_per_machine_max", 8},
          {"free_gpus", 14},
          {"vram_gib_min", 80},
          {"cuda_version_min", 12040},
          {"compute_capability_min", 90},
          {"driver_version_min", "550.54.15"},
          {"link", "nvlink"},
          {"fabric", "infiniband"}};
}

TEST(ParseOfferViews, ReadsEveryFieldTheFilterUses) {
  json answer = {{"height", 5}, {"offers", json::array({OfferJson()})}};
  auto views = ParseOfferViews(answer);
  ASSERT_TRUE(views.has_value()) << views.error().message;
  ASSERT_EQ(views->size(), 1u);
  const OfferView& v = (*views)[0];
  EXPECT_EQ(v.id, "3");
  EXPECT_EQ(v.gpu_model, "H100");
  EXPECT_EQ(v.gpus, 8u);
  EXPECT_EQ(v.gpus_free, 14u);
  EXPECT_EQ(v.vram_gb, 80u);
  EXPECT_EQ(v.price_ugpn_per_gpu_hour, 2'500'000u);
  EXPECT_EQ(v.cuda, (Version{12, 4, 0}));
  EXPECT_EQ(v.compute_capability, (Version{9, 0, 0}));
  EXPECT_EQ(v.driver, (Version{550, 54, 15}));
  EXPECT_EQ(v.fabric, "infiniband");
  EXPECT_EQ(v.machines, 2u);
  EXPECT_FALSE(v.is_private);
  auto f = ParseOfferFilter({"gpu=H100 gpus>=8 price<=2.5 region=eu fabric=infiniband cuda>=12.1"});
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(Matches(*f, v));
}

TEST(ParseOfferViews, RefusesMissingOrMistypedFields) {
  auto refused = [](json offer, std::string_view field) {
    json answer = json::object();
    answer["offers"] = json::array();
    answer["offers"].push_back(std::move(offer));
    auto views = ParseOfferViews(answer);
    ASSERT_FALSE(views.has_value()) << field;
    EXPECT_EQ(views.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(views.error().message.find("offers[0]." + std::string(field) + "\""),
              std::string::npos)
        << field << ": " << views.error().message;
  };
  for (std::string_view field :
       {"offer_id", "provider", "gpu_model", "gpus_per_machine_max", "free_gpus", "vram_gib_min",
        "price_ugpn_per_gpu_hour", "region", "fabric", "link", "cuda_version_min",
        "compute_capability_min", "driver_version_min", "machines", "private", "max_hours"}) {
    json o = OfferJson();
    o.erase(std::string(field));
    refused(o, field);
  }
  json number_price = OfferJson();
  number_price["price_ugpn_per_gpu_hour"] = 2500000;  // amounts are strings
  refused(number_price, "price_ugpn_per_gpu_hour");
  json float_price = OfferJson();
  float_price["price_ugpn_per_gpu_hour"] = "2.5";
  refused(float_price, "price_ugpn_per_gpu_hour");
  json huge = OfferJson();
  huge["price_ugpn_per_gpu_hour"] = "18446744073709551616";
  refused(huge, "price_ugpn_per_gpu_hour");
  json negative = OfferJson();
  negative["free_gpus"] = -1;
  refused(negative, "free_gpus");
  auto not_list = ParseOfferViews(json{{"offers", "none"}});
  ASSERT_FALSE(not_list.has_value());
  EXPECT_EQ(not_list.error().code, ErrorCode::kCorrupt);
}

TEST(MarketClient, UnreachableNodeSaysSo) {
  MarketClient client("http://127.0.0.1:1", HttpClientOptions{500, 1000});
  auto r = client.Get("/market/offers");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("127.0.0.1:1"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace gpunet::client
