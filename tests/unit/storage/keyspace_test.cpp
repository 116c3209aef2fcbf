// The key space: byte order is logical order, tables do not overlap, values
// round-trip and malformed ones are refused.
#include "state/keyspace.h"

#include <gtest/gtest.h>

namespace gpunet::state::keyspace {
namespace {

TEST(Keyspace, HeightKeysSortNumerically) {
  const uint64_t heights[] = {0,         1, 2, 255, 256, 65535, 65536, 1ull << 32, UINT64_MAX - 1,
                              UINT64_MAX};
  for (size_t i = 1; i < std::size(heights); ++i) {
    EXPECT_LT(BlockKey(heights[i - 1]), BlockKey(heights[i]));
    EXPECT_LT(CommitKey(heights[i - 1]), CommitKey(heights[i]));
  }
  EXPECT_LT(ReceiptKey(1, UINT32_MAX), ReceiptKey(2, 0));
  EXPECT_LT(ReceiptKey(7, 255), ReceiptKey(7, 256));
  EXPECT_EQ(BlockKey(0x0102030405060708).size(), kHeightKeyBytes);
  EXPECT_EQ(ReceiptKey(1, 2).size(), kReceiptKeyBytes);
  EXPECT_EQ(BlockKey(0x0102030405060708), (base::Bytes{kBlockByHeight, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(Keyspace, TablesDoNotOverlap) {
  base::Hash32 h;
  h.data.fill(0xff);
  base::FixedBytes<20> address;
  address.data.fill(0xff);
  // The greatest key of each table sorts before the smallest of the next.
  const std::vector<std::pair<base::Bytes, base::Bytes>> ranges = {
      {MetaKey(""), MetaKey("zzzzzzzz")},
      {AccountKey(base::FixedBytes<20>{}), AccountKey(address)},
      {BlockKey(0), BlockKey(UINT64_MAX)},
      {BlockHashKey(base::Hash32{}), BlockHashKey(h)},
      {TxHashKey(base::Hash32{}), TxHashKey(h)},
      {ReceiptKey(0, 0), ReceiptKey(UINT64_MAX, UINT32_MAX)},
      {ValidatorSetKey(0), ValidatorSetKey(UINT64_MAX)},
      {CommitKey(0), CommitKey(UINT64_MAX)},
  };
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LT(ranges[i - 1].second, ranges[i].first) << i;
  // Application state is exactly [AppStateBegin, AppStateEnd).
  EXPECT_LE(AppStateBegin(), AccountKey(base::FixedBytes<20>{}));
  EXPECT_LT(AccountKey(address), AppStateEnd());
  EXPECT_LT(AppStateKey(0xff, base::Bytes(300, 0xff)), AppStateEnd());
  EXPECT_LE(AppStateEnd(), BlockKey(0));
}

TEST(Keyspace, PrefixEnd) {
  EXPECT_EQ(PrefixEnd(base::Bytes{0x01}), (base::Bytes{0x02}));
  EXPECT_EQ(PrefixEnd(base::Bytes{0x01, 0xff}), (base::Bytes{0x02}));
  EXPECT_EQ(PrefixEnd(base::Bytes{0xff, 0xff}), base::Bytes{});
  EXPECT_EQ(PrefixEnd(base::Bytes{}), base::Bytes{});
  const auto prefix = base::Bytes{kReceiptByLocation, 0, 0, 0, 0, 0, 0, 0, 9};
  EXPECT_LT(ReceiptKey(9, UINT32_MAX), PrefixEnd(prefix));
  EXPECT_GE(ReceiptKey(10, 0), PrefixEnd(prefix));
}

TEST(Keyspace, ValuesRoundTripAndMalformedAreRefused) {
  const TxLocation loc{0x0102030405060708, 0x0a0b0c0d};
  auto encoded = EncodeTxLocation(loc);
  EXPECT_EQ(encoded.size(), kTxLocationBytes);
  EXPECT_EQ(*DecodeTxLocation(encoded), loc);
  encoded.push_back(0);
  EXPECT_EQ(DecodeTxLocation(encoded).error().code, base::ErrorCode::kCorrupt);
  EXPECT_EQ(*DecodeU64(EncodeU64(42)), 42u);
  EXPECT_FALSE(DecodeU64(base::Bytes(7)).has_value());
  EXPECT_EQ(*HeightFromKey(kBlockByHeight, BlockKey(77)), 77u);
  EXPECT_FALSE(HeightFromKey(kCommitByHeight, BlockKey(77)).has_value());
  EXPECT_FALSE(HeightFromKey(kBlockByHeight, ReceiptKey(77, 0)).has_value());
}

}  // namespace
}  // namespace gpunet::state::keyspace
