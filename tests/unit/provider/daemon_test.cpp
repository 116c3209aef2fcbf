// The daemon's start checks that need no node or host (provider/daemon.h).
#include "provider/daemon.h"

#include <gtest/gtest.h>

namespace gpunet::provider {
namespace {

TEST(Daemon, DevelopmentOnlySettingsNeedTheChainsDevelopmentFlag) {
  const std::string_view what = "daemon.withdraw_every is under 1m (a tx every period)";
  const std::string_view instead = "set it to 1m or more";
  EXPECT_TRUE(
      CheckDevelopmentChain({{"development", true}}, "http://n:1", what, instead).has_value());
  for (const nlohmann::json& status :
       {nlohmann::json::object(), nlohmann::json{{"development", false}},
        nlohmann::json{{"development", "true"}}}) {
    auto refused = CheckDevelopmentChain(status, "http://n:1", what, instead);
    ASSERT_FALSE(refused.has_value()) << status.dump();
    EXPECT_EQ(refused.error().code, base::ErrorCode::kPermissionDenied);
    EXPECT_EQ(refused.error().message,
              "daemon.withdraw_every is under 1m (a tx every period), which only a development "
              "chain allows, and the chain at http://n:1 does not say \"development\": true in "
              "its /status; set it to 1m or more");
  }
}

}  // namespace
}  // namespace gpunet::provider
