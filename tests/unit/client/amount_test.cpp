#include "client/amount.h"

#include <gtest/gtest.h>

namespace gpunet::client {
namespace {

using base::ErrorCode;

uint64_t Ok(std::string_view text) {
  auto v = ParseAmount(text);
  EXPECT_TRUE(v.has_value()) << text << ": " << (v ? "" : v.error().message);
  return v ? *v : 0;
}

ErrorCode Err(std::string_view text) {
  auto v = ParseAmount(text);
  EXPECT_FALSE(v.has_value()) << text << " parsed as " << (v ? *v : 0);
  if (v) return ErrorCode::kInternal;
  EXPECT_FALSE(v.error().message.empty());
  return v.error().code;
}

TEST(ParseAmount, GpnWithAndWithoutDecimals) {
  EXPECT_EQ(Ok("12"), 12'000'000u);
  EXPECT_EQ(Ok("12.5"), 12'500'000u);
  EXPECT_EQ(Ok("0.000001"), 1u);
  EXPECT_EQ(Ok("0"), 0u);
  EXPECT_EQ(Ok("1.000000"), 1'000'000u);
  EXPECT_EQ(Ok("12.5gpn"), 12'500'000u);
  EXPECT_EQ(Ok("12.5 GPN"), 12'500'000u);
  EXPECT_EQ(Ok("007.25"), 7'250'000u);
}

TEST(ParseAmount, Ugpn) {
  EXPECT_EQ(Ok("12500000ugpn"), 12'500'000u);
  EXPECT_EQ(Ok("1 ugpn"), 1u);
  EXPECT_EQ(Ok("18446744073709551615ugpn"), UINT64_MAX);
  EXPECT_EQ(Err("18446744073709551616ugpn"), ErrorCode::kOverflow);
  EXPECT_EQ(Err("1.5ugpn"), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Err("ugpn"), ErrorCode::kInvalidArgument);
}

TEST(ParseAmount, LargestGpnAndOverflow) {
  EXPECT_EQ(Ok("18446744073709.551615"), UINT64_MAX);
  EXPECT_EQ(Err("18446744073709.551616"), ErrorCode::kOverflow);
  EXPECT_EQ(Err("18446744073710"), ErrorCode::kOverflow);
  EXPECT_EQ(Err("99999999999999999999999999"), ErrorCode::kOverflow);
}

TEST(ParseAmount, RefusesMalformed) {
  EXPECT_EQ(Err("1.0000001"), ErrorCode::kInvalidArgument);  // 7 decimals
  auto seven = ParseAmount("0.1234567");
  ASSERT_FALSE(seven);
  EXPECT_NE(seven.error().message.find("7 decimals"), std::string::npos) << seven.error().message;
  for (const char* bad : {"", "-1", "-0.5", "+1", "1e6", ".5", "5.", "1.2.3", " 1", "1 ", "1,5",
                          "abc", "0x10", "12 5", "12.5 btc", "1..5", "1.5  gpn"})
    EXPECT_EQ(Err(bad), ErrorCode::kInvalidArgument) << '"' << bad << '"';
  auto negative = ParseAmount("-3");
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.error().message.find("negative"), std::string::npos);
}

TEST(FormatGpn, ExactAndTrimmed) {
  EXPECT_EQ(FormatGpn(0), "0");
  EXPECT_EQ(FormatGpn(1), "0.000001");
  EXPECT_EQ(FormatGpn(12'500'000), "12.5");
  EXPECT_EQ(FormatGpn(1'000'000), "1");
  EXPECT_EQ(FormatGpn(1'000), "0.001");
  EXPECT_EQ(FormatGpn(UINT64_MAX), "18446744073709.551615");
  EXPECT_EQ(DescribeAmount(12'500'000), "12.5 GPN (12500000 ugpn)");
}

TEST(FormatGpn, RoundTripsThroughParse) {
  for (uint64_t v :
       std::initializer_list<uint64_t>{0, 1, 10, 999'999, 1'000'001, 123'456'789'012, UINT64_MAX})
    EXPECT_EQ(Ok(FormatGpn(v)), v) << v;
}

}  // namespace
}  // namespace gpunet::client
