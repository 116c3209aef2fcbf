// The BFT core driven through real cores: one validator alone, four in a loopback.
#include <gtest/gtest.h>

#include "bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;

TEST(BftCore, SingleValidatorCommitsEveryHeightAlone) {
  Loopback net({10});
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(5));
  const auto& app = *net.nodes[0]->app;
  ASSERT_EQ(app.committed.size(), 5u);
  uint64_t prev_time = 1'000'000;
  for (size_t i = 0; i < app.committed.size(); ++i) {
    EXPECT_EQ(app.committed[i].header.height, i + 1);
    EXPECT_GT(app.committed[i].header.time_ms, prev_time);
    prev_time = app.committed[i].header.time_ms;
    EXPECT_EQ(app.commits[i].round, 0u);
  }
  EXPECT_EQ(app.committed[0].header.time_ms, 1'000'001u);  // genesis + 1
  EXPECT_EQ(net.nodes[0]->core->Counters().heights_decided, 5u);
}

TEST(BftCore, FourValidatorsCommitTenHeightsInAgreement) {
  Loopback net({1, 2, 3, 4});
  net.StartAll();
  ASSERT_TRUE(net.RunUntilHeight(10));
  EXPECT_TRUE(net.Agreement());
  for (const auto& n : net.nodes) {
    ASSERT_GE(n->app->committed.size(), 10u);
    for (size_t h = 0; h < 10; ++h)
      EXPECT_EQ(codec::BlockHash(n->app->committed[h].header),
                codec::BlockHash(net.nodes[0]->app->committed[h].header));
  }
  // Every certificate carries > 2/3 of the power and verifies on its own.
  for (const auto& c : net.nodes[0]->app->commits)
    EXPECT_TRUE(VerifyCommit(c, net.net().set, kChain, c.block_hash).has_value());
}

}  // namespace
}  // namespace gpunet::consensus
