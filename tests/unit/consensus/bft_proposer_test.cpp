// CometBFT proposer-priority rotation against hand-computed sequences.
#include <gtest/gtest.h>

#include "consensus/bft_proposer.h"
#include "unit/consensus/bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;

// Validators whose powers are given in ascending ADDRESS order, so a hand-computed
// sequence can name them A < B < C by address.
struct ByAddress {
  std::vector<codec::Address> addr;  // addr[i] has powers[i]
  codec::ValidatorSet set;
};

ByAddress WithPowersByAddress(const std::vector<uint64_t>& powers) {
  std::vector<crypto::KeyPair> keys;
  for (size_t i = 0; i < powers.size(); ++i) keys.push_back(KeyFor(static_cast<uint8_t>(50 + i)));
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return AddrOf(a) < AddrOf(b); });
  ByAddress out;
  for (size_t i = 0; i < powers.size(); ++i) {
    out.addr.push_back(AddrOf(keys[i]));
    out.set.validators.push_back({keys[i].Public(), powers[i]});
  }
  std::sort(out.set.validators.begin(), out.set.validators.end(),
            [](const auto& a, const auto& b) { return a.public_key < b.public_key; });
  return out;
}

std::string Sequence(const ByAddress& v, uint64_t heights) {
  std::string s;
  for (uint64_t h = 1; h <= heights; ++h) {
    const auto p = ProposerSchedule::AtHeight(v.set, h).Proposer().address;
    for (size_t i = 0; i < v.addr.size(); ++i)
      if (v.addr[i] == p) s.push_back(static_cast<char>('A' + i));
  }
  return s;
}

TEST(BftProposer, PowersOneTwoThreeHandComputed) {
  // Priorities (A,B,C), powers 1,2,3, total 6; +power, the max pays 6:
  //  (1,2,3)->C (1,2,-3); (2,4,0)->B (2,-2,0); (3,0,3) tie A,C -> A (smaller address)
  //  (-3,0,3); (-2,2,6)->C (-2,2,0); (-1,4,3)->B (-1,-2,3); (0,0,6)->C (0,0,0): repeat.
  EXPECT_EQ(Sequence(WithPowersByAddress({1, 2, 3}), 12), "CBACBCCBACBC");
}

TEST(BftProposer, EqualPowersRoundRobinInAddressOrder) {
  EXPECT_EQ(Sequence(WithPowersByAddress({5, 5, 5, 5}), 8), "ABCDABCD");
}

TEST(BftProposer, FrequencyIsProportionalToStake) {
  auto v = WithPowersByAddress({1, 3, 6});
  const std::string s = Sequence(v, 1000);
  EXPECT_EQ(std::count(s.begin(), s.end(), 'A'), 100);
  EXPECT_EQ(std::count(s.begin(), s.end(), 'B'), 300);
  EXPECT_EQ(std::count(s.begin(), s.end(), 'C'), 600);
}

TEST(BftProposer, RoundsAdvanceWithinAHeight) {
  auto v = WithPowersByAddress({1, 2, 3});
  auto h1 = ProposerSchedule::AtHeight(v.set, 1);
  // Round r of height 1 = the same walk: C, then B, A, C, B, C.
  auto rounds = h1.ProposersForRounds(6);
  std::string s;
  for (const auto& a : rounds)
    for (size_t i = 0; i < 3; ++i)
      if (v.addr[i] == a) s.push_back(static_cast<char>('A' + i));
  EXPECT_EQ(s, "CBACBC");
  for (uint64_t r = 0; r < 6; ++r) EXPECT_EQ(h1.Advanced(r).Proposer().address, rounds[r]);
  // The next height does not inherit the rounds: height 2 round 0 is B.
  EXPECT_EQ(ProposerSchedule::AtHeight(v.set, 2).Proposer().address, v.addr[1]);
}

TEST(BftProposer, RescalesWhenPrioritiesSpreadBeyondTheWindow) {
  // One huge and one tiny stake: the window (2 * total) keeps priorities bounded
  // over many heights, and the schedule stays proportional.
  auto v = WithPowersByAddress({1, 1000});
  auto s = ProposerSchedule(v.set);
  uint64_t a = 0;
  for (int i = 0; i < 2002; ++i) {
    if (s.Proposer().address == v.addr[0]) ++a;
    for (const auto& e : s.Entries()) {
      EXPECT_LE(e.priority, 2 * static_cast<int64_t>(s.TotalPower()));
      EXPECT_GE(e.priority, -2 * static_cast<int64_t>(s.TotalPower()));
    }
    s.Increment(1);
  }
  EXPECT_EQ(a, 2u);
}

TEST(BftProposer, EncodeDecodeRoundTripAndRejects) {
  auto v = WithPowersByAddress({1, 2, 3});
  auto s = ProposerSchedule::AtHeight(v.set, 7);
  auto bytes = s.Encode();
  auto back = ProposerSchedule::Decode(bytes);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->Encode(), bytes);
  auto trailing = bytes;
  trailing.push_back(0);
  EXPECT_FALSE(ProposerSchedule::Decode(trailing).has_value());
  auto truncated = bytes;
  truncated.pop_back();
  EXPECT_FALSE(ProposerSchedule::Decode(truncated).has_value());
  EXPECT_FALSE(ProposerSchedule::Decode({}).has_value());
}

TEST(BftProposer, NewMembersStartBehind) {
  auto v = WithPowersByAddress({1, 1, 1});
  auto three = ProposerSchedule::AtHeight(v.set, 5);
  codec::ValidatorSet four = v.set;
  four.validators.push_back({KeyFor(120).Public(), 1});
  std::sort(four.validators.begin(), four.validators.end(),
            [](const auto& a, const auto& b) { return a.public_key < b.public_key; });
  auto next = three.WithValidators(four);
  next.Increment(1);
  // The newcomer starts at -1.125 * total and does not propose next.
  EXPECT_NE(next.Proposer().address, AddrOf(KeyFor(120)));
}

}  // namespace
}  // namespace gpunet::consensus
