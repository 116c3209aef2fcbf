// codec/evidence.h: the pure check the ledger's ProcessProposal runs on evidence.
#include "codec/evidence.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "codec/hashes.h"
#include "crypto/address.h"
#include "util/keys.h"

namespace gpunet::codec {
namespace {

constexpr const char* kChain = "evidence-test";

using gpunet::testing::TestKey;

Vote SignedVote(const crypto::KeyPair& k, VoteType type, uint64_t h, uint32_t r, uint8_t hash) {
  Vote v;
  v.type = type;
  v.height = h;
  v.round = r;
  v.block_hash.data.fill(hash);
  v.time_ms = 100 + hash;
  v.validator = crypto::AddressOf(k.Public());
  SignVote(v, kChain, k);
  return v;
}

class EvidenceTest : public ::testing::Test {
 protected:
  crypto::KeyPair a = TestKey(1), b = TestKey(2), outsider = TestKey(3);
  ValidatorSet set;
  void SetUp() override {
    set.validators = {{a.Public(), 5}, {b.Public(), 7}};
    std::sort(set.validators.begin(), set.validators.end(),
              [](const auto& x, const auto& y) { return x.public_key < y.public_key; });
  }
  EvidenceContext Ctx(uint64_t block_height = 12, uint64_t max_age = 5) {
    return EvidenceContext{kChain, &set, block_height, max_age};
  }
  DuplicateVoteEvidence Good() {
    return *MakeDuplicateVoteEvidence(SignedVote(a, VoteType::kPrevote, 10, 2, 0x22),
                                      SignedVote(a, VoteType::kPrevote, 10, 2, 0x11));
  }
};

TEST_F(EvidenceTest, MakeOrdersCanonicallyAndVerifies) {
  auto ev = Good();
  EXPECT_LT(ev.vote_a.block_hash, ev.vote_b.block_hash);
  EXPECT_TRUE(VerifyDuplicateVoteEvidence(ev, Ctx()).has_value());
  EXPECT_TRUE(VerifyEvidence(Evidence{ev}, Ctx()).has_value());
  EXPECT_EQ(EvidenceHeight(Evidence{ev}), 10u);
  EXPECT_EQ(EvidenceValidator(Evidence{ev}), crypto::AddressOf(a.Public()));
  EXPECT_EQ(ValidatorPower(set, crypto::AddressOf(b.Public())), 7u);
  EXPECT_FALSE(ValidatorPower(set, crypto::AddressOf(outsider.Public())).has_value());
}

TEST_F(EvidenceTest, NilAgainstABlockIsAConflict) {
  auto nil = SignedVote(a, VoteType::kPrecommit, 10, 0, 0);
  auto block = SignedVote(a, VoteType::kPrecommit, 10, 0, 0x33);
  auto ev = MakeDuplicateVoteEvidence(block, nil);
  ASSERT_TRUE(ev.has_value());
  EXPECT_TRUE(ev->vote_a.block_hash.IsZero());
  EXPECT_TRUE(VerifyDuplicateVoteEvidence(*ev, Ctx()).has_value());
}

TEST_F(EvidenceTest, ShapeErrors) {
  auto v = SignedVote(a, VoteType::kPrevote, 10, 2, 0x11);
  EXPECT_FALSE(MakeDuplicateVoteEvidence(v, v).has_value());  // same hash: no conflict
  EXPECT_FALSE(
      MakeDuplicateVoteEvidence(v, SignedVote(b, VoteType::kPrevote, 10, 2, 0x22)).has_value());
  EXPECT_FALSE(
      MakeDuplicateVoteEvidence(v, SignedVote(a, VoteType::kPrecommit, 10, 2, 0x22)).has_value());
  EXPECT_FALSE(
      MakeDuplicateVoteEvidence(v, SignedVote(a, VoteType::kPrevote, 10, 3, 0x22)).has_value());
  EXPECT_FALSE(
      MakeDuplicateVoteEvidence(v, SignedVote(a, VoteType::kPrevote, 11, 2, 0x22)).has_value());
  auto swapped = Good();
  std::swap(swapped.vote_a, swapped.vote_b);
  auto r = VerifyDuplicateVoteEvidence(swapped, Ctx());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("canonical order"), std::string::npos);
}

TEST_F(EvidenceTest, ForgedSignatureAndNonMemberAreRefused) {
  auto ev = Good();
  ev.vote_b.signature.data[0] ^= 1;
  EXPECT_EQ(VerifyDuplicateVoteEvidence(ev, Ctx()).error().code, base::ErrorCode::kBadSignature);
  // vote_b signed by another key but claiming a's address.
  auto forged = Good();
  Vote by_b = forged.vote_b;
  by_b.validator = crypto::AddressOf(b.Public());
  SignVote(by_b, kChain, b);
  forged.vote_b.signature = by_b.signature;
  EXPECT_EQ(VerifyDuplicateVoteEvidence(forged, Ctx()).error().code,
            base::ErrorCode::kBadSignature);
  auto stranger = *MakeDuplicateVoteEvidence(SignedVote(outsider, VoteType::kPrevote, 10, 2, 1),
                                             SignedVote(outsider, VoteType::kPrevote, 10, 2, 2));
  EXPECT_EQ(VerifyDuplicateVoteEvidence(stranger, Ctx()).error().code, base::ErrorCode::kNotFound);
  EXPECT_EQ(VerifyDuplicateVoteEvidence(Good(), EvidenceContext{"other", &set, 12, 5}).error().code,
            base::ErrorCode::kBadSignature);
}

TEST_F(EvidenceTest, AgeLimits) {
  EXPECT_TRUE(VerifyDuplicateVoteEvidence(Good(), Ctx(15, 5)).has_value());   // exactly 5 old
  EXPECT_FALSE(VerifyDuplicateVoteEvidence(Good(), Ctx(16, 5)).has_value());  // 6 old
  EXPECT_FALSE(VerifyDuplicateVoteEvidence(Good(), Ctx(10, 5)).has_value());  // same height
  EXPECT_FALSE(VerifyDuplicateVoteEvidence(Good(), Ctx(9, 5)).has_value());   // future
}

}  // namespace
}  // namespace gpunet::codec
