// The loopback with a seeded lossy network (drops, crashes with replay, unequal
// stakes, WALs lost while the sign guard survives): agreement and no double signing always,
// progress once the loss stops. A small deterministic cousin of the simulator in tests/sim/.
#include <gtest/gtest.h>

#include "unit/consensus/bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;

struct Lcg {
  uint64_t s;
  uint64_t Next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
  }
};

TEST(BftLossy, SeededDropsAndCrashesKeepSafetyAndLiveness) {
  size_t restarts = 0, later_rounds = 0, heights = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Lcg rng{seed};
    Loopback net({1, 2, 3, 4, 5});
    bool lossy = true;
    net.filter = [&](size_t, const Action&) { return !lossy || rng.Next() % 100 >= 25; };
    net.StartAll();
    for (int e = 0; e < 4000; ++e) {
      if (rng.Next() % 400 == 0) {
        const size_t victim = rng.Next() % net.nodes.size();
        if (!net.nodes[victim]->down) net.nodes[victim]->crash_after = rng.Next() % 4;
      }
      for (size_t i = 0; i < net.nodes.size(); ++i)
        if (net.nodes[i]->down && rng.Next() % 50 == 0) {
          net.Restart(i, /*lose_wal=*/rng.Next() % 4 == 0);  // the guard survives
          ++restarts;
        }
      if (!net.StepOnce()) break;
    }
    // Heal: everyone up, no loss; a few more heights must commit.
    lossy = false;
    for (size_t i = 0; i < net.nodes.size(); ++i) {
      net.nodes[i]->crash_after.reset();
      if (net.nodes[i]->down) net.Restart(i);
    }
    uint64_t top = 0;
    for (const auto& n : net.nodes) top = std::max<uint64_t>(top, n->app->committed.size());
    ASSERT_TRUE(net.RunUntilHeight(top + 3, 300000));
    EXPECT_TRUE(net.Agreement());
    for (size_t i = 0; i < net.nodes.size(); ++i) EXPECT_TRUE(net.NoDoubleSign(i)) << i;
    for (const auto& c : net.nodes[0]->app->commits) later_rounds += c.round > 0;
    heights += net.nodes[0]->app->committed.size();
  }
  // The hard cases really happened across the seeds.
  EXPECT_GT(restarts, 5u);
  EXPECT_GT(later_rounds, 0u);
  std::printf("lossy: %zu restarts, %zu of %zu heights decided after round 0\n", restarts,
              later_rounds, heights);
}

}  // namespace
}  // namespace gpunet::consensus
