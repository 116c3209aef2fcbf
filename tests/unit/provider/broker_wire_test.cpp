#include "provider/broker_wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

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

/// Open descriptors of this process.
size_t OpenDescriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

/// A connected socketpair, closed at the end of the scope.
struct Pair {
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0); }
  ~Pair() {
    ::close(sv[0]);
    ::close(sv[1]);
  }
  int sv[2] = {-1, -1};
};

BrokerFrame SessionReply() {
  BrokerFrame f;
  f.op = BrokerOp::kReply;
  f.fields = {{"message", "ok"}, {"status", "200"}};
  return f;
}

/// A frame's bytes (its first `size` only, when given) sent with `fds` attached by hand
/// (WriteBrokerFrame passes one).
void SendWithFds(int socket, const BrokerFrame& frame, const std::vector<int>& fds,
                 size_t size = 0) {
  std::string bytes = EncodeBrokerFrame(frame).value();
  if (size != 0) bytes.resize(size);
  std::vector<char> control(CMSG_SPACE(fds.size() * sizeof(int)));
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
  std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  ASSERT_EQ(::sendmsg(socket, &msg, 0), static_cast<ssize_t>(bytes.size()));
}

TEST(BrokerWire, ADescriptorPassesWithAFrameAndWorksOnTheOtherSide) {
  Pair wire, session;
  ASSERT_TRUE(WriteBrokerFrame(wire.sv[0], SessionReply(), session.sv[0]).has_value());
  BrokerFd passed;
  auto got = ReadBrokerFrameWithFd(wire.sv[1], &passed);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, SessionReply());
  ASSERT_TRUE(passed.Valid());
  EXPECT_NE(passed.Get(), session.sv[0]);  // a descriptor of its own, same socket
  ASSERT_EQ(::write(session.sv[1], "hi", 2), 2);
  char buf[2] = {};
  ASSERT_EQ(::read(passed.Get(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
  // A frame without one leaves it invalid, and the next frame reads normally.
  ASSERT_TRUE(WriteBrokerFrame(wire.sv[0], Upload()).has_value());
  auto plain = ReadBrokerFrameWithFd(wire.sv[1], &passed);
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(passed.Valid());
  EXPECT_EQ(*plain, Upload());
}

TEST(BrokerWire, DescriptorsWhereNoneMayComeOrMoreThanOneAreClosedAndTheFrameRefused) {
  Pair wire, session;
  const size_t before = OpenDescriptors();
  // A frame read by ReadBrokerFrame takes none: the agent never accepts one.
  SendWithFds(wire.sv[0], Upload(), {session.sv[0]});
  auto refused = ReadBrokerFrame(wire.sv[1]);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, base::ErrorCode::kCorrupt);
  EXPECT_EQ(OpenDescriptors(), before);
  // Two with one frame; then more than the reader has room for (the kernel closes
  // the rest): refused, every one closed.
  for (size_t count : {2, 7}) {
    Pair fresh;
    const size_t at_start = OpenDescriptors();
    SendWithFds(fresh.sv[0], SessionReply(), std::vector<int>(count, session.sv[0]));
    BrokerFd passed;
    auto many = ReadBrokerFrameWithFd(fresh.sv[1], &passed);
    ASSERT_FALSE(many.has_value()) << count;
    EXPECT_EQ(many.error().code, base::ErrorCode::kCorrupt);
    EXPECT_FALSE(passed.Valid());
    EXPECT_EQ(OpenDescriptors(), at_start) << count << " descriptors sent";
  }
  // A descriptor with a torn frame is closed too.
  {
    Pair torn;
    const size_t at_start = OpenDescriptors();
    SendWithFds(torn.sv[0], SessionReply(), {session.sv[0]}, 6);
    ::shutdown(torn.sv[0], SHUT_WR);
    BrokerFd passed;
    EXPECT_FALSE(ReadBrokerFrameWithFd(torn.sv[1], &passed).has_value());
    EXPECT_FALSE(passed.Valid());
    EXPECT_EQ(OpenDescriptors(), at_start);
  }
  // A pipe cannot pass one.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  EXPECT_EQ(WriteBrokerFrame(p[1], SessionReply(), session.sv[0]).error().code,
            base::ErrorCode::kIo);
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace gpunet::provider
