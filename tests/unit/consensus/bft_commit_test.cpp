// Quorum arithmetic, commit certificates (VerifyCommit) and block time (MedianTime)
// with real ed25519 signatures.
#include <gtest/gtest.h>

#include "base/limits.h"
#include "unit/consensus/bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;

TEST(BftQuorum, TwoThirdsIsStrictAndInteger) {
  EXPECT_FALSE(HasTwoThirds(2, 3));  // exactly 2/3 is not enough
  EXPECT_TRUE(HasTwoThirds(3, 4));
  EXPECT_FALSE(HasTwoThirds(66, 100));
  EXPECT_FALSE(HasTwoThirds(200, 300));
  EXPECT_TRUE(HasTwoThirds(201, 300));
  EXPECT_FALSE(HasTwoThirds(0, 1));
  EXPECT_TRUE(HasTwoThirds(1, 1));
  // Near the power limit: 3 * power must not overflow.
  const uint64_t max = base::limits::kTotalVotingPowerMax;
  EXPECT_TRUE(HasTwoThirds(max, max));
  EXPECT_FALSE(HasTwoThirds(max / 3 * 2, max));
}

TEST(BftQuorum, OneThirdIsStrict) {
  EXPECT_FALSE(HasOneThird(1, 3));
  EXPECT_TRUE(HasOneThird(2, 4));
  EXPECT_FALSE(HasOneThird(100, 300));
  EXPECT_TRUE(HasOneThird(101, 300));
}

TEST(BftQuorum, UnequalStakesCountPowerNotHeads) {
  // Powers 1, 1, 1, 7 (total 10): the three small ones together (3) are not even
  // > 1/3; the big one alone (7) is > 2/3 — heads do not matter, power does.
  auto net = MakeValidators({1, 1, 1, 7});
  EXPECT_EQ(TotalPower(net.set), 10u);
  EXPECT_FALSE(HasOneThird(3, 10));
  EXPECT_TRUE(HasTwoThirds(7, 10));
  const codec::BlockId h = HashOf(7);
  auto big_alone = MakeCommit({&net.keys[3]}, 5, 0, h);
  EXPECT_TRUE(VerifyCommit(big_alone, net.set, kChain, h).has_value());
  auto small_three = MakeCommit({&net.keys[0], &net.keys[1], &net.keys[2]}, 5, 0, h);
  auto r = VerifyCommit(small_three, net.set, kChain, h);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("3 of 10"), std::string::npos) << r.error().message;
}

class VerifyCommitTest : public ::testing::Test {
 protected:
  Network net = MakeValidators({10, 20, 30, 40});
  codec::BlockId hash = HashOf(0xab);
  codec::Commit Good() {
    return MakeCommit({&net.keys[1], &net.keys[2], &net.keys[3]}, 9, 2, hash);  // 90 of 100
  }
};

TEST_F(VerifyCommitTest, AcceptsARealCertificate) {
  EXPECT_TRUE(VerifyCommit(Good(), net.set, kChain, hash).has_value());
}

TEST_F(VerifyCommitTest, RejectsTwoThirdsOrLess) {
  // 20 + 40 = 60 < 66.7, and 30 + 40 = 70 > 66.7.
  auto low = MakeCommit({&net.keys[1], &net.keys[3]}, 9, 2, hash);
  EXPECT_EQ(VerifyCommit(low, net.set, kChain, hash).error().code,
            base::ErrorCode::kInvalidArgument);
  auto ok = MakeCommit({&net.keys[2], &net.keys[3]}, 9, 2, hash);
  EXPECT_TRUE(VerifyCommit(ok, net.set, kChain, hash).has_value());
}

TEST_F(VerifyCommitTest, RejectsAForgedSignature) {
  auto c = Good();
  c.sigs[1].signature.data[5] ^= 1;
  EXPECT_EQ(VerifyCommit(c, net.set, kChain, hash).error().code, base::ErrorCode::kBadSignature);
  // A signature moved to another time: it no longer covers the vote.
  auto d = Good();
  d.sigs[0].time_ms += 1;
  EXPECT_EQ(VerifyCommit(d, net.set, kChain, hash).error().code, base::ErrorCode::kBadSignature);
  // Signed for another chain.
  EXPECT_EQ(VerifyCommit(Good(), net.set, "other-chain", hash).error().code,
            base::ErrorCode::kBadSignature);
}

TEST_F(VerifyCommitTest, RejectsANonMember) {
  auto outsider = KeyFor(200);
  auto c = MakeCommit({&net.keys[1], &net.keys[2], &net.keys[3], &outsider}, 9, 2, hash);
  auto r = VerifyCommit(c, net.set, kChain, hash);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kNotFound);
}

TEST_F(VerifyCommitTest, RejectsADuplicateSignerAndDisorder) {
  auto c = Good();
  c.sigs.insert(c.sigs.begin() + 1, c.sigs[0]);  // same signer twice: counted twice would pass
  auto r = VerifyCommit(c, net.set, kChain, hash);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("duplicate"), std::string::npos) << r.error().message;
  auto d = Good();
  std::swap(d.sigs[0], d.sigs[2]);
  EXPECT_FALSE(VerifyCommit(d, net.set, kChain, hash).has_value());
  // Duplicates of a 34% signer would reach 2/3 if counted: 40 + 40 = 80.
  auto dup = MakeCommit({&net.keys[3]}, 9, 2, hash);
  dup.sigs.push_back(dup.sigs[0]);
  EXPECT_FALSE(VerifyCommit(dup, net.set, kChain, hash).has_value());
}

TEST_F(VerifyCommitTest, RejectsAWrongBlockHash) {
  EXPECT_FALSE(VerifyCommit(Good(), net.set, kChain, HashOf(0xac)).has_value());
  // The commit's own block_hash changed: the signatures no longer cover it.
  auto c = Good();
  c.block_hash = HashOf(0xac);
  EXPECT_EQ(VerifyCommit(c, net.set, kChain, HashOf(0xac)).error().code,
            base::ErrorCode::kBadSignature);
  // A nil "certificate" is never a commit.
  auto nil = MakeCommit({&net.keys[1], &net.keys[2], &net.keys[3]}, 9, 2, codec::BlockId{});
  EXPECT_FALSE(VerifyCommit(nil, net.set, kChain, codec::BlockId{}).has_value());
}

TEST_F(VerifyCommitTest, RejectsAnotherRoundOrHeightThanSigned) {
  auto c = Good();
  c.round = 3;
  EXPECT_EQ(VerifyCommit(c, net.set, kChain, hash).error().code, base::ErrorCode::kBadSignature);
  auto d = Good();
  d.height = 10;
  EXPECT_EQ(VerifyCommit(d, net.set, kChain, hash).error().code, base::ErrorCode::kBadSignature);
}

TEST(BftMedianTime, WeightedMedianOfHandComputedCommits) {
  auto net = MakeValidators({10, 20, 30, 40});
  const codec::BlockId h = HashOf(1);
  // Times by power: 10 -> 100, 20 -> 200, 30 -> 300, 40 -> 400. Total 100, half 50:
  // walk 10 (left 40), 20 (left 20), 30 >= 20 -> 300.
  codec::Commit c;
  c.height = 3;
  c.block_hash = h;
  const uint64_t times[] = {100, 200, 300, 400};
  for (size_t i = 0; i < 4; ++i) {
    auto v = MakeVote(net.keys[i], codec::VoteType::kPrecommit, 3, 0, h, times[i]);
    c.sigs.push_back({v.validator, v.time_ms, v.signature});
  }
  std::sort(c.sigs.begin(), c.sigs.end(),
            [](const auto& a, const auto& b) { return a.validator < b.validator; });
  EXPECT_EQ(*MedianTime(c, net.set), 300u);
  // The 40-power validator lies far in the future: still not enough to move the
  // median beyond the others (half = 50: 100(10), 200(20), 300(30) -> 300).
  for (auto& s : c.sigs)
    if (s.validator == AddrOf(net.keys[3])) s.time_ms = 1'000'000'000;
  EXPECT_EQ(*MedianTime(c, net.set), 300u);
  // Only 30 and 40 signed (total 70, half 35): 300(30) leaves 5, 400 -> 400.
  codec::Commit two;
  two.height = 3;
  two.block_hash = h;
  for (size_t i : {2u, 3u}) {
    auto v = MakeVote(net.keys[i], codec::VoteType::kPrecommit, 3, 0, h, times[i]);
    two.sigs.push_back({v.validator, v.time_ms, v.signature});
  }
  std::sort(two.sigs.begin(), two.sigs.end(),
            [](const auto& a, const auto& b) { return a.validator < b.validator; });
  EXPECT_EQ(*MedianTime(two, net.set), 400u);
}

TEST(BftMedianTime, ErrorsAndBlockTime) {
  auto net = MakeValidators({1, 1, 1});
  EXPECT_FALSE(MedianTime(codec::Commit{}, net.set).has_value());
  auto outsider = KeyFor(99);
  auto c = MakeCommit({&outsider}, 2, 0, HashOf(3));
  EXPECT_EQ(MedianTime(c, net.set).error().code, base::ErrorCode::kNotFound);
  EXPECT_EQ(*BlockTime(1, codec::Commit{}, codec::ValidatorSet{}, 5000), 5001u);
  EXPECT_FALSE(BlockTime(0, codec::Commit{}, net.set, 5000).has_value());
  EXPECT_FALSE(BlockTime(1, c, net.set, 5000).has_value());  // height 1 has no last commit
  auto good = MakeCommit({&net.keys[0], &net.keys[1], &net.keys[2]}, 1, 0, HashOf(3), 7777);
  EXPECT_EQ(*BlockTime(2, good, net.set, 5000), 7777u);
}

}  // namespace
}  // namespace gpunet::consensus
