// Bech32 against the published BIP-173 vectors, plus round trips and the
// rejections our addresses rely on.
#include "base/bech32.h"

#include <gtest/gtest.h>

#include <string>

#include "unit/crypto/vector_file.h"

namespace gpunet::base {
namespace {

std::string Lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

TEST(Bech32, Bip173ValidVectorsDecodeAndReencode) {
  auto lines = testing::ReadVectorLines("bip173/valid.txt");
  EXPECT_EQ(lines.size(), 7u);
  for (const std::string& s : lines) {
    auto parts = Bech32Decode(s);
    ASSERT_TRUE(parts.has_value()) << s << ": " << parts.error().message;
    auto again = Bech32Encode(parts->hrp, parts->data5);
    ASSERT_TRUE(again.has_value()) << s;
    EXPECT_EQ(*again, Lower(s));
    // Any single flipped data character breaks the checksum.
    std::string bad = s;
    size_t pos = bad.rfind('1') + 1;
    bad[pos] = (bad[pos] == 'q' || bad[pos] == 'Q') ? (bad[pos] == 'q' ? 'p' : 'P')
                                                    : (bad[pos] >= 'a' ? 'q' : 'Q');
    EXPECT_FALSE(Bech32Decode(bad).has_value()) << bad;
  }
}

TEST(Bech32, Bip173InvalidVectorsAreRejected) {
  auto lines = testing::ReadVectorLines("bip173/invalid.txt");
  EXPECT_EQ(lines.size(), 12u);
  for (const std::string& line : lines) {
    auto fields = testing::SplitTabs(line);
    ASSERT_EQ(fields.size(), 2u) << line;
    auto parts = Bech32Decode(fields[0]);
    EXPECT_FALSE(parts.has_value()) << "accepted " << fields[0] << " (" << fields[1] << ")";
    if (!parts) {
      EXPECT_FALSE(parts.error().message.empty());
    }
  }
}

TEST(Bech32, Bip173SegwitVectorsRegroupBits) {
  auto lines = testing::ReadVectorLines("bip173/segwit_valid.txt");
  EXPECT_EQ(lines.size(), 3u);
  for (const std::string& line : lines) {
    auto fields = testing::SplitTabs(line);
    ASSERT_EQ(fields.size(), 2u) << line;
    auto parts = Bech32Decode(fields[0]);
    ASSERT_TRUE(parts.has_value()) << fields[0];
    ASSERT_FALSE(parts->data5.empty());
    EXPECT_EQ(parts->data5[0], 0) << "witness version";
    auto program = ConvertBits(std::span(parts->data5).subspan(1), 5, 8, false);
    ASSERT_TRUE(program.has_value()) << program.error().message;
    Bytes script = {0x00, static_cast<uint8_t>(program->size())};
    script.insert(script.end(), program->begin(), program->end());
    EXPECT_EQ(ToHex(script), fields[1]) << fields[0];
    // And back: version 0 + program regrouped to 5 bits re-encodes the address.
    auto data5 = ConvertBits(*program, 8, 5, true);
    ASSERT_TRUE(data5.has_value());
    data5->insert(data5->begin(), 0);
    EXPECT_EQ(Bech32Encode(parts->hrp, *data5).value(), Lower(fields[0]));
  }
}

TEST(Bech32, BytesRoundTrip) {
  for (size_t n = 0; n <= 40; ++n) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 37 + n);
    auto s = Bech32EncodeBytes("gpn", b);
    ASSERT_TRUE(s.has_value()) << n;
    auto back = Bech32DecodeBytes(*s, "gpn");
    ASSERT_TRUE(back.has_value()) << *s << ": " << back.error().message;
    EXPECT_EQ(*back, b);
  }
}

TEST(Bech32, MixedCaseRejectedUpperAccepted) {
  Bytes b = {1, 2, 3, 4, 5};
  std::string s = Bech32EncodeBytes("gpn", b).value();
  std::string upper = s;
  for (char& c : upper)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  EXPECT_EQ(Bech32DecodeBytes(upper, "gpn").value(), b);
  std::string mixed = s;
  mixed[0] = 'G';
  auto r = Bech32Decode(mixed);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("mixes upper and lower case"), std::string::npos);
}

TEST(Bech32, WrongPrefixRejected) {
  std::string s = Bech32EncodeBytes("abc", Bytes{1, 2, 3}).value();
  auto r = Bech32DecodeBytes(s, "gpn");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("expected \"gpn\""), std::string::npos);
}

TEST(Bech32, LengthLimitEnforcedBothWays) {
  // hrp 1 + sep 1 + 82 data + 6 checksum = 90: the longest allowed.
  Bytes data5(82, 0);
  auto ok = Bech32Encode("a", data5);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->size(), kBech32LengthMax);
  EXPECT_TRUE(Bech32Decode(*ok).has_value());
  data5.push_back(0);
  auto too_long = Bech32Encode("a", data5);
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error().code, ErrorCode::kLimitExceeded);
}

TEST(Bech32, EncodeRejectsBadInput) {
  EXPECT_FALSE(Bech32Encode("", Bytes{}).has_value());
  EXPECT_FALSE(Bech32Encode("ABC", Bytes{}).has_value());
  EXPECT_FALSE(Bech32Encode("a b", Bytes{}).has_value());
  EXPECT_FALSE(Bech32Encode("a", Bytes{32}).has_value());
  EXPECT_FALSE(Bech32Encode(std::string(84, 'a'), Bytes{}).has_value());
}

TEST(Bech32, NonZeroPaddingRejected) {
  // One byte needs two 5-bit groups: 8 bits + 2 padding bits that must be zero.
  Bytes data5 = {0, 1};  // padding bits = 01
  std::string s = Bech32Encode("gpn", data5).value();
  auto r = Bech32DecodeBytes(s, "gpn");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNonCanonical);
  // A whole spare 5-bit group is excess padding too.
  Bytes data5b = {0, 0, 0};
  EXPECT_FALSE(Bech32DecodeBytes(Bech32Encode("gpn", data5b).value(), "gpn").has_value());
}

TEST(Bech32, ConvertBitsRejectsWideValues) {
  EXPECT_FALSE(ConvertBits(Bytes{32}, 5, 8, false).has_value());
}

}  // namespace
}  // namespace gpunet::base
