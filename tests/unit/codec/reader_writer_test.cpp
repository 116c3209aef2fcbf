// The field-level rules every decoder inherits: integers, varints, flags, strings,
// truncation, trailing bytes, and error messages that name the field.
#include <gtest/gtest.h>

#include <string>

#include "base/clock.h"
#include "codec/reader.h"
#include "codec/writer.h"

namespace gpunet::codec {
namespace {

using base::Bytes;
using base::ErrorCode;

Bytes Hex(std::string_view hex) {
  return base::FromHex(hex).value();
}

TEST(Writer, FixedWidthIntegersAreBigEndian) {
  Writer w;
  w.U8(0xab);
  w.U16(0x0102);
  w.U32(0x03040506);
  w.U64(0x0708090a0b0c0d0e);
  w.I32(-1);
  w.Bool(true);
  w.Bool(false);
  EXPECT_EQ(base::ToHex(w.Data()),
            "ab010203040506"
            "0708090a0b0c0d0e"
            "ffffffff"
            "0100");
}

TEST(Writer, VarUintIsMinimalLeb128) {
  struct Case {
    uint64_t value;
    const char* hex;
  } cases[] = {
      {0, "00"},     {1, "01"},       {127, "7f"},       {128, "8001"},
      {300, "ac02"}, {16383, "ff7f"}, {16384, "808001"}, {UINT64_MAX, "ffffffffffffffffff01"}};
  for (const auto& c : cases) {
    Writer w;
    w.VarUint(c.value);
    EXPECT_EQ(base::ToHex(w.Data()), c.hex) << c.value;
    Reader r(w.Data(), "x");
    auto v = r.VarUint("v");
    ASSERT_TRUE(v) << v.error().ToString();
    EXPECT_EQ(*v, c.value);
    EXPECT_TRUE(r.Finish());
  }
}

TEST(Reader, VarUintRoundTripsRandomValues) {
  base::SeededRng rng(7);
  for (int i = 0; i < 10000; ++i) {
    uint64_t v = rng.Next() >> rng.Below(64);
    Writer w;
    w.VarUint(v);
    Reader r(w.Data(), "x");
    auto got = r.VarUint("v");
    ASSERT_TRUE(got) << v;
    EXPECT_EQ(*got, v);
    EXPECT_EQ(r.Remaining(), 0u);
  }
}

TEST(Reader, RejectsNonMinimalVarUint) {
  for (const char* hex : {"8000", "ff00", "808000", "8180808000", "ffffffffffffffffff00"}) {
    Bytes b = Hex(hex);
    Reader r(b, "x");
    auto v = r.VarUint("len");
    ASSERT_FALSE(v) << hex;
    EXPECT_EQ(v.error().code, ErrorCode::kNonCanonical) << hex;
    EXPECT_NE(v.error().message.find("x.len"), std::string::npos) << v.error().message;
  }
}

TEST(Reader, RejectsVarUintOver64Bits) {
  for (const char* hex : {"ffffffffffffffffff02", "ffffffffffffffffff7f", "ffffffffffffffffff81",
                          "80808080808080808080"}) {
    Bytes b = Hex(hex);
    Reader r(b, "x");
    auto v = r.VarUint("len");
    ASSERT_FALSE(v) << hex;
    EXPECT_EQ(v.error().code, ErrorCode::kCorrupt) << hex;
  }
}

TEST(Reader, RejectsTruncatedVarUintAndIntegers) {
  for (const char* hex : {"", "80", "ffff"}) {
    Bytes b = Hex(hex);
    Reader r(b, "x");
    auto v = r.VarUint("len");
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, ErrorCode::kCorrupt);
    EXPECT_NE(v.error().message.find("truncated"), std::string::npos);
  }
  Bytes seven(7, 0);
  Reader r(seven, "account");
  auto v = r.U64("balance_ugpn");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(v.error().message,
            "account.balance_ugpn: truncated: needs 8 bytes at offset 0, 7 left");
}

TEST(Reader, BoolAcceptsOnlyZeroAndOne) {
  Bytes b = {0, 1, 2};
  Reader r(b, "x");
  EXPECT_EQ(r.Bool("a").value(), false);
  EXPECT_EQ(r.Bool("b").value(), true);
  auto bad = r.Bool("c");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kNonCanonical);
  EXPECT_NE(bad.error().message.find("x.c"), std::string::npos);
}

TEST(Reader, SignedI32IsTwosComplement) {
  Bytes b = Hex("ffffffff7fffffff80000000");
  Reader r(b, "x");
  EXPECT_EQ(r.I32("a").value(), -1);
  EXPECT_EQ(r.I32("b").value(), INT32_MAX);
  EXPECT_EQ(r.I32("c").value(), INT32_MIN);
}

TEST(Reader, CountAndLengthLimits) {
  Writer w;
  w.VarUint(17);
  Reader r(w.Data(), "tx");
  auto n = r.Count("msgs", 16, "kMsgsPerTxMax");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(n.error().message, "tx.msgs: 17 entries, over the limit of 16 (limits::kMsgsPerTxMax)");

  Writer w2;
  w2.LenBytes(Bytes(5, 'a'));
  Reader r2(w2.Data(), "x");
  auto s = r2.LenBytes("memo", 4, "kMemoBytesMax");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kLimitExceeded);

  // A length that claims more than is there is truncation, not an allocation.
  Bytes huge = Hex("ffffffff0f61");
  Reader r3(huge, "x");
  auto t = r3.LenBytes("blob", SIZE_MAX, "none");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::kCorrupt);
}

TEST(Reader, FinishRejectsTrailingBytes) {
  Bytes b = {1, 2, 3};
  Reader r(b, "vote");
  ASSERT_TRUE(r.U8("type"));
  auto s = r.Finish();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kNonCanonical);
  EXPECT_EQ(s.error().message, "vote: 2 trailing bytes after the end at offset 1");
}

TEST(Reader, ScopesNameNestedFields) {
  Bytes b;
  Reader r(b, "tx");
  auto body = r.Enter("body");
  {
    auto msg = r.Enter("msgs", 3);
    auto v = r.U64("amount_ugpn");
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().message.substr(0, 32), "tx.body.msgs[3].amount_ugpn: tru");
  }
  auto v = r.U8("memo");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message.substr(0, 13), "tx.body.memo:");
}

struct StringCase {
  const char* bytes;
  StringRule rule;
  bool ok;
};

TEST(CheckString, IdentIsNonEmptyPrintableAsciiWithoutSpace) {
  StringCase cases[] = {
      {"gpunet-devnet-1", StringRule::kIdent, true},
      {"!~", StringRule::kIdent, true},
      {"", StringRule::kIdent, false},
      {"has space", StringRule::kIdent, false},
      {"tab\t", StringRule::kIdent, false},
      {"del\x7f", StringRule::kIdent, false},
      {"caf\xc3\xa9", StringRule::kIdent, false},
  };
  for (const auto& c : cases) {
    auto s = CheckString(c.bytes, 64, c.rule, "f");
    EXPECT_EQ(s.has_value(), c.ok) << c.bytes;
    if (!s) {
      EXPECT_EQ(s.error().code, ErrorCode::kCorrupt);
    }
  }
}

TEST(CheckString, TextIsWellFormedUtf8WithoutControls) {
  StringCase cases[] = {
      {"", StringRule::kText, true},
      {"plain text ~", StringRule::kText, true},
      {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\x80", StringRule::kText, true},  // é € 🚀
      {"\xed\x9f\xbf", StringRule::kText, true},                          // U+D7FF
      {"\xee\x80\x80", StringRule::kText, true},                          // U+E000
      {"\xf4\x8f\xbf\xbf", StringRule::kText, true},                      // U+10FFFF
      {"new\nline", StringRule::kText, false},
      {"esc\x1b[2J", StringRule::kText, false},
      {"del\x7f", StringRule::kText, false},
      {"\xc0\xaf", StringRule::kText, false},          // overlong '/'
      {"\xc1\xbf", StringRule::kText, false},          // overlong
      {"\xe0\x80\xaf", StringRule::kText, false},      // overlong 3-byte
      {"\xf0\x80\x80\xaf", StringRule::kText, false},  // overlong 4-byte
      {"\xed\xa0\x80", StringRule::kText, false},      // surrogate U+D800
      {"\xf4\x90\x80\x80", StringRule::kText, false},  // U+110000
      {"\xf5\x80\x80\x80", StringRule::kText, false},
      {"\x80", StringRule::kText, false},  // lone continuation
      {"\xc3", StringRule::kText, false},  // truncated sequence
      {"\xe2\x82", StringRule::kText, false},
      {"\xff", StringRule::kText, false},
  };
  for (const auto& c : cases) {
    auto s = CheckString(c.bytes, 64, c.rule, "memo");
    EXPECT_EQ(s.has_value(), c.ok) << base::ToHex(base::AsBytes(c.bytes));
    if (!s) {
      EXPECT_EQ(s.error().code, ErrorCode::kCorrupt);
      EXPECT_EQ(s.error().message.substr(0, 5), "memo:");
    }
  }
  // A NUL inside is a control character, not a terminator.
  EXPECT_FALSE(CheckString(std::string_view("a\0b", 3), 64, StringRule::kText, "memo"));
}

TEST(CheckString, LimitIsInBytesNotCharacters) {
  std::string four_euros = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac";  // 12 bytes
  EXPECT_TRUE(CheckString(four_euros, 12, StringRule::kText, "m"));
  auto s = CheckString(four_euros, 11, StringRule::kText, "m");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kLimitExceeded);
}

TEST(Reader, StringAppliesTheRule) {
  Writer w;
  w.String("bad\ttab");
  Reader r(w.Data(), "tx");
  auto s = r.String("chain_id", 64, StringRule::kIdent, "kChainIdBytesMax");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(s.error().message.substr(0, 12), "tx.chain_id:");
}

}  // namespace
}  // namespace gpunet::codec
