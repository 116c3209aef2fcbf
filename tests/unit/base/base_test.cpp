#include <gtest/gtest.h>

#include "base/bytes.h"
#include "base/checked_math.h"
#include "base/clock.h"
#include "base/result.h"

using namespace gpunet::base;

TEST(Hex, RoundTrip) {
  Bytes b{0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(ToHex(b), "0001abff");
  auto back = FromHex("0001ABff");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, b);
}

TEST(Hex, RejectsOddLengthAndBadDigits) {
  EXPECT_FALSE(FromHex("abc"));
  auto r = FromHex("zz");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE((FixedFromHex<4>("0011")));
}

TEST(CheckedMath, AddSubMulOverflow) {
  EXPECT_EQ(CheckedAdd(1, 2), 3u);
  EXPECT_FALSE(CheckedAdd(UINT64_MAX, 1));
  EXPECT_FALSE(CheckedSub(1, 2));
  EXPECT_EQ(CheckedSub(5, 2), 3u);
  EXPECT_FALSE(CheckedMul(UINT64_MAX / 2 + 1, 2));
  EXPECT_EQ(CheckedMul(1u << 20, 1u << 20), uint64_t{1} << 40);
}

TEST(CheckedMath, MulDivFloorIsExactIn128Bits) {
  auto r = MulDivFloor(UINT64_MAX, UINT64_MAX, UINT64_MAX);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->quotient, UINT64_MAX);
  EXPECT_EQ(r->remainder, 0u);
  auto s = MulDivFloor(10, 7, 3);  // 70 / 3 = 23 rem 1
  ASSERT_TRUE(s);
  EXPECT_EQ(s->quotient, 23u);
  EXPECT_EQ(s->remainder, 1u);
  EXPECT_FALSE(MulDivFloor(1, 1, 0));
  EXPECT_FALSE(MulDivFloor(UINT64_MAX, 2, 1));
}

TEST(BigEndian, SortsNumerically) {
  Bytes a, b;
  AppendU64BE(a, 255);
  AppendU64BE(b, 256);
  EXPECT_LT(a, b);
  EXPECT_EQ(ReadU64BE(b.data()), 256u);
}

TEST(SeededRng, SameSeedSameSequence) {
  SeededRng x(42), y(42), z(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    uint64_t v = x.Next();
    EXPECT_EQ(v, y.Next());
    differs |= v != z.Next();
  }
  EXPECT_TRUE(differs);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(x.Below(7), 7u);
}

TEST(Result, ErrorCarriesCodeAndMessage) {
  Result<int> r = Fail(ErrorCode::kNotFound, "no key 'alice'");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().ToString(), "not_found: no key 'alice'");
}
