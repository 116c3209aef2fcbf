// The solo engine's decisions under a fake clock, and a simulated chain driven by
// Step() through a recording adaptor.
#include "consensus/solo.h"

#include <gtest/gtest.h>

#include <vector>

namespace gpunet::consensus {
namespace {

TEST(SoloDecide, IdleWaitsOneInterval) {
  SoloEngine e(1000);
  auto d = e.Decide(5000, 1000, false, std::nullopt);
  EXPECT_FALSE(d.produce);
  EXPECT_EQ(d.wake_at_ms, 6000u);
}

TEST(SoloDecide, PendingTxsProduceOnlyAfterInterval) {
  SoloEngine e(1000);
  auto early = e.Decide(1500, 1000, true, std::nullopt);
  EXPECT_FALSE(early.produce);
  EXPECT_EQ(early.wake_at_ms, 2000u);
  auto due = e.Decide(2000, 1000, true, std::nullopt);
  EXPECT_TRUE(due.produce);
  EXPECT_EQ(due.block_time_ms, 2000u);
}

TEST(SoloDecide, NewTxsWakeOnlyAnEngineWithNothingPending) {
  SoloEngine e(1000);
  // Idle or waiting for a deadline: a tx could start a block sooner.
  EXPECT_TRUE(e.Decide(5000, 1000, false, std::nullopt).wake_on_tx);
  EXPECT_TRUE(e.Decide(1500, 1000, false, 9000).wake_on_tx);
  // Txs already wait for the interval: another one changes nothing.
  auto waiting = e.Decide(1500, 1000, true, std::nullopt);
  EXPECT_FALSE(waiting.produce);
  EXPECT_FALSE(waiting.wake_on_tx);
  EXPECT_EQ(waiting.wake_at_ms, 2000u);
}

TEST(SoloDecide, DeadlineProducesEmptyBlock) {
  SoloEngine e(100);
  auto before = e.Decide(1000, 500, false, 1200);
  EXPECT_FALSE(before.produce);
  EXPECT_EQ(before.wake_at_ms, 1200u);
  auto at = e.Decide(1200, 500, false, 1200);
  EXPECT_TRUE(at.produce);
  // A deadline inside the interval waits for the interval.
  auto inside = e.Decide(1250, 1200, false, 1210);
  EXPECT_FALSE(inside.produce);
  EXPECT_EQ(inside.wake_at_ms, 1300u);
}

TEST(SoloDecide, BlockTimeStrictlyIncreasesEvenIfClockGoesBack) {
  SoloEngine e(1);
  // The clock is behind the last block time (restart on a skewed clock).
  auto d = e.Decide(900, 1000, true, std::nullopt);
  EXPECT_FALSE(d.produce);
  EXPECT_GT(d.wake_at_ms, 900u);
  auto d2 = e.Decide(1001, 1000, true, std::nullopt);
  ASSERT_TRUE(d2.produce);
  EXPECT_EQ(d2.block_time_ms, 1001u);
}

struct FakeChain : SoloAdaptor {
  std::vector<uint64_t> block_times{0};
  int pending = 0;
  std::optional<uint64_t> deadline;
  bool fail = false;
  bool HasPendingTxs() override { return pending > 0; }
  std::optional<uint64_t> NextDeadlineMs() override { return deadline; }
  uint64_t LastBlockTimeMs() override { return block_times.back(); }
  base::Status ProduceAndCommitBlock(uint64_t t) override {
    if (fail) return base::Fail(base::ErrorCode::kIo, "disk gone");
    block_times.push_back(t);
    pending = 0;
    if (deadline && *deadline <= t) deadline.reset();
    return base::Ok();
  }
};

TEST(SoloStep, SimulatedClockRespectsIntervalAndMonotonicTimes) {
  SoloEngine e(250);
  FakeChain chain;
  uint64_t now = 10;
  for (int i = 0; i < 2000; ++i) {
    if (i % 7 == 0) chain.pending++;
    if (i % 97 == 0) chain.deadline = now + 300;
    auto d = e.Step(chain, now);
    ASSERT_TRUE(d.has_value());
    now = d->produce ? now + 13 : std::min(d->wake_at_ms, now + 40);
  }
  ASSERT_GT(chain.block_times.size(), 10u);
  for (size_t i = 2; i < chain.block_times.size(); ++i)
    EXPECT_GE(chain.block_times[i], chain.block_times[i - 1] + 250);
  chain.pending = 1;
  chain.fail = true;
  auto err = e.Step(chain, now + 1000);
  ASSERT_FALSE(err.has_value());
  EXPECT_EQ(err.error().code, base::ErrorCode::kIo);
}

}  // namespace
}  // namespace gpunet::consensus
