// WAL records and the sign guard: canonical round trips, torn tails dropped at every
// possible cut, corruption in the middle refused.
#include <gtest/gtest.h>

#include "consensus/bft_wal.h"
#include "unit/consensus/bft_test_util.h"

namespace gpunet::consensus {
namespace {

using namespace testing;

std::vector<WalRecord> SampleRecords() {
  auto net = MakeValidators({1, 2});
  ToyApp app(net.set);
  BftProposalRequest req;
  req.height = 3;
  req.round = 1;
  req.time_ms = 1234;
  req.proposer = AddrOf(net.keys[0]);
  req.validators = net.set;
  codec::Block block = *app.PrepareProposal(req);
  codec::Proposal p;
  p.height = 3;
  p.round = 1;
  p.pol_round = 0;
  p.block_hash = codec::BlockHash(block.header);
  p.time_ms = 1234;
  codec::SignProposal(p, kChain, net.keys[0]);
  return {
      WalProposal{p, block},
      WalVote{MakeVote(net.keys[1], codec::VoteType::kPrevote, 3, 1, p.block_hash)},
      WalVote{MakeVote(net.keys[0], codec::VoteType::kPrecommit, 3, 1, codec::BlockId{})},
      WalTimeout{TimeoutInfo{3, 1, TimeoutStep::kPrevote}},
      WalEndHeight{3},
  };
}

base::Bytes Log(const std::vector<WalRecord>& records) {
  base::Bytes out;
  for (const auto& r : records) {
    auto b = EncodeWalRecord(r);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

TEST(BftWal, EveryKindRoundTripsCanonically) {
  for (const auto& rec : SampleRecords()) {
    const auto payload = EncodeWalPayload(rec);
    auto back = DecodeWalPayload(payload);
    ASSERT_TRUE(back.has_value()) << back.error().ToString();
    EXPECT_EQ(*back, rec);
    EXPECT_EQ(EncodeWalPayload(*back), payload);
    EXPECT_EQ(WalRecordHeight(*back), 3u);
  }
  const auto records = SampleRecords();
  auto read = ReadWal(Log(records));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->records, records);
  EXPECT_FALSE(read->torn_tail);
  EXPECT_EQ(read->valid_bytes, Log(records).size());
}

TEST(BftWal, PayloadDecoderRejectsNonCanonicalInput) {
  auto payload = EncodeWalPayload(WalTimeout{TimeoutInfo{3, 1, TimeoutStep::kPrevote}});
  auto trailing = payload;
  trailing.push_back(0);
  EXPECT_FALSE(DecodeWalPayload(trailing).has_value());
  auto bad_kind = payload;
  bad_kind[0] = 9;
  EXPECT_FALSE(DecodeWalPayload(bad_kind).has_value());
  auto bad_step = payload;
  bad_step.back() = 7;
  EXPECT_FALSE(DecodeWalPayload(bad_step).has_value());
  EXPECT_FALSE(DecodeWalPayload({}).has_value());
}

TEST(BftWal, ATornLastRecordIsDroppedAtEveryCut) {
  const auto records = SampleRecords();
  const base::Bytes full = Log(records);
  const size_t last_start = full.size() - EncodeWalRecord(records.back()).size();
  for (size_t cut = last_start; cut < full.size(); ++cut) {
    base::Bytes torn(full.begin(), full.begin() + static_cast<long>(cut));
    auto read = ReadWal(torn);
    ASSERT_TRUE(read.has_value()) << "cut " << cut << ": " << read.error().ToString();
    EXPECT_EQ(read->records.size(), records.size() - 1) << "cut " << cut;
    EXPECT_EQ(read->valid_bytes, last_start);
    EXPECT_EQ(read->torn_tail, cut != last_start);
  }
  // Cuts inside the big proposal record (the first one) leave nothing at all.
  const size_t first = EncodeWalRecord(records.front()).size();
  for (size_t cut = 1; cut < first; cut += 97) {
    auto read = ReadWal(base::ByteSpan(full.data(), cut));
    ASSERT_TRUE(read.has_value());
    EXPECT_TRUE(read->records.empty());
    EXPECT_TRUE(read->torn_tail);
    EXPECT_EQ(read->valid_bytes, 0u);
  }
}

TEST(BftWal, ABadChecksumOnTheLastRecordIsTornAndZeroTailToo) {
  const auto records = SampleRecords();
  base::Bytes log = Log(records);
  log.back() ^= 0x01;  // the last payload byte: checksum fails
  auto read = ReadWal(log);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->records.size(), records.size() - 1);
  EXPECT_TRUE(read->torn_tail);
  // A file extended with zeros by a crash before its data reached the disk.
  base::Bytes zeros = Log(records);
  const size_t good = zeros.size();
  zeros.resize(good + 4096, 0);
  read = ReadWal(zeros);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->records, records);
  EXPECT_EQ(read->valid_bytes, good);
  EXPECT_TRUE(read->torn_tail);
}

TEST(BftWal, DamageFollowedByIntactRecordsIsCorruption) {
  const auto records = SampleRecords();
  base::Bytes log = Log(records);
  const size_t second = EncodeWalRecord(records[0]).size();
  log[second + 20] ^= 0x40;  // inside the second record's payload
  auto read = ReadWal(log);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(read.error().message.find("intact records follow"), std::string::npos);
}

TEST(BftWal, SignGuardRoundTripAndCorruption) {
  SignGuardState g;
  g.public_key = KeyFor(1).Public();
  g.height = 42;
  g.round = 3;
  g.step = kSignStepPrecommit;
  g.block_hash = HashOf(9);
  g.pol_round = -1;
  g.time_ms = 777;
  g.signature.data.fill(0x5a);
  const auto bytes = EncodeSignGuard(g);
  auto back = DecodeSignGuard(bytes);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(*back, g);
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto flipped = bytes;
    flipped[i] ^= 0x01;
    EXPECT_FALSE(DecodeSignGuard(flipped).has_value()) << "byte " << i;
  }
  EXPECT_FALSE(DecodeSignGuard(base::ByteSpan(bytes.data(), bytes.size() - 1)).has_value());
  EXPECT_FALSE(DecodeSignGuard({}).has_value());
}

}  // namespace
}  // namespace gpunet::consensus
