#include "provider/broker_wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace gpunet::provider {
namespace {

BrokerFrame Upload() {
  BrokerFrame f;
  f.op = BrokerOp::kUpload;
  f.lease_id = 42;
  f.fields = {{"offset", "0"}, {"path", "data/train.bin"}};
  f.body = std::string("\0binary\xff", 8);
  return f;
}

TEST(BrokerWire, RoundTripsAndRefusesEveryBrokenRule) {
  auto bytes = EncodeBrokerFrame(Upload());
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message;
  const std::string rest = bytes->substr(4);
  auto back = DecodeBrokerFrame(rest);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, Upload());
  EXPECT_EQ(back->Field("path").value(), "data/train.bin");
  EXPECT_FALSE(back->Field("nope").has_value());

  // Every truncation is refused, and so is a trailing byte.
  for (size_t n = 0; n < rest.size(); ++n) {
    EXPECT_FALSE(DecodeBrokerFrame(rest.substr(0, n)).has_value()) << n;
  }
  EXPECT_FALSE(DecodeBrokerFrame(rest + "x").has_value());
  // Unknown op; keys out of order; a key with a capital letter.
  std::string bad_op = rest;
  bad_op[0] = 99;
  EXPECT_EQ(DecodeBrokerFrame(bad_op).error().code, base::ErrorCode::kCorrupt);
  std::string swapped = rest;
  const size_t first_key = 1 + 8 + 2 + 1;
  ASSERT_EQ(swapped.substr(first_key, 6), "offset");
  swapped.replace(first_key, 6, "zffset");
  EXPECT_EQ(DecodeBrokerFrame(swapped).error().code, base::ErrorCode::kNonCanonical);
  std::string capital = rest;
  capital[first_key] = 'O';
  EXPECT_EQ(DecodeBrokerFrame(capital).error().code, base::ErrorCode::kCorrupt);

  BrokerFrame big = Upload();
  big.body.assign(kBrokerBodyBytesMax + 1, 'x');
  EXPECT_FALSE(EncodeBrokerFrame(big).has_value());
  BrokerFrame bad_key = Upload();
  bad_key.fields["../x"] = "1";
  EXPECT_FALSE(EncodeBrokerFrame(bad_key).has_value());
}

TEST(BrokerWire, ReadsWholeFramesFromASocketAndTellsACleanEndFromATornOne) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ASSERT_TRUE(WriteBrokerFrame(sv[0], Upload()).has_value());
  auto got = ReadBrokerFrame(sv[1]);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, Upload());

  // An oversized length prefix is refused before anything is allocated.
  const char huge[4] = {'\x7f', '\xff', '\xff', '\xff'};
  ASSERT_EQ(::write(sv[0], huge, 4), 4);
  EXPECT_EQ(ReadBrokerFrame(sv[1]).error().code, base::ErrorCode::kCorrupt);

  // Half a frame, then the peer goes: torn.
  int tv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tv), 0);
  auto bytes = EncodeBrokerFrame(Upload()).value();
  ASSERT_EQ(::write(tv[0], bytes.data(), 10), 10);
  ::close(tv[0]);
  EXPECT_EQ(ReadBrokerFrame(tv[1]).error().code, base::ErrorCode::kCorrupt);
  ::close(tv[1]);

  // Between frames: a clean end.
  ::close(sv[0]);
  EXPECT_EQ(ReadBrokerFrame(sv[1]).error().code, base::ErrorCode::kNotFound);
  ::close(sv[1]);
}

}  // namespace
}  // namespace gpunet::provider
