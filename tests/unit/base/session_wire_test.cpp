// The session frames of docs/sandbox.md "Interactive sessions": exact bytes, the
// streaming decoder over every split, and each refusal of a malformed request.
#include "base/session_wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gpunet::base {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

TEST(SessionWire, FrameBytesAreTypeLengthPayload) {
  EXPECT_EQ(EncodeSessionFrame(SessionFrameType::kStdin, "hi"), Bytes({2, 0, 0, 0, 2, 'h', 'i'}));
  EXPECT_EQ(EncodeSessionFrame(SessionFrameType::kReady, ""), Bytes({8, 0, 0, 0, 0}));
  std::string big(kSessionPayloadMax, 'x');
  std::string frame = EncodeSessionFrame(SessionFrameType::kStdout, big);
  EXPECT_EQ(frame.substr(0, 5), Bytes({3, 0, 1, 0, 0}));
  EXPECT_EQ(frame.size(), 5 + kSessionPayloadMax);
}

TEST(SessionWire, ExecOpenBytesMatchTheContract) {
  SessionOpen open;
  open.kind = SessionOpenKind::kExec;
  open.tty = true;
  open.window = {24, 80};
  open.argv = {"ls", "-l"};
  open.env = {"TERM=xterm"};
  auto payload = EncodeSessionOpen(open);
  ASSERT_TRUE(payload.has_value()) << payload.error().message;
  std::string want = Bytes({1,   1, 0, 24, 0, 80,  0,   2, 0, 0, 0, 2, 'l',
                            's', 0, 0, 0,  2, '-', 'l', 0, 1, 0, 0, 0, 10}) +
                     "TERM=xterm";
  EXPECT_EQ(*payload, want);
  auto back = DecodeSessionOpen(*payload);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->kind, SessionOpenKind::kExec);
  EXPECT_TRUE(back->tty);
  EXPECT_EQ(back->window.rows, 24);
  EXPECT_EQ(back->window.cols, 80);
  EXPECT_EQ(back->argv, open.argv);
  EXPECT_EQ(back->env, open.env);
}

TEST(SessionWire, OtherOpenKindsRoundTrip) {
  SessionOpen fwd;
  fwd.kind = SessionOpenKind::kForward;
  fwd.port = 8888;
  EXPECT_EQ(*EncodeSessionOpen(fwd), Bytes({2, 0x22, 0xb8}));
  EXPECT_EQ(DecodeSessionOpen(Bytes({2, 0x22, 0xb8}))->port, 8888);

  SessionOpen ssh;
  ssh.kind = SessionOpenKind::kSsh;
  ssh.ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+/= me@laptop";
  auto payload = EncodeSessionOpen(ssh);
  ASSERT_TRUE(payload.has_value()) << payload.error().message;
  auto back = DecodeSessionOpen(*payload);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->kind, SessionOpenKind::kSsh);
  EXPECT_EQ(back->ssh_public_key, ssh.ssh_public_key);

  EXPECT_EQ(DecodeSessionOpen(Bytes({4}))->kind, SessionOpenKind::kSshHostKey);
  auto shell = DecodeSessionOpen(Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  ASSERT_TRUE(shell.has_value()) << shell.error().message;
  EXPECT_TRUE(shell->argv.empty());
  EXPECT_FALSE(shell->tty);
}

TEST(SessionWire, MalformedOpensAreRefused) {
  auto refused = [](const std::string& payload, std::string_view says) {
    auto r = DecodeSessionOpen(payload);
    ASSERT_FALSE(r.has_value()) << "accepted: " << says;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
  };
  refused("", "empty");
  refused(Bytes({9}), "unknown kind 9");
  refused(Bytes({2, 0, 0}), "port 0");
  refused(Bytes({2, 0}), "cut short");
  refused(Bytes({2, 0, 1, 7}), "trailing");
  refused(Bytes({4, 0}), "trailing");
  refused(Bytes({1, 2, 0, 0, 0, 0, 0, 0, 0, 0}), "tty");
  refused(Bytes({1, 1, 0x10, 1, 0, 80, 0, 0, 0, 0}), "4096");
  refused(Bytes({1, 1, 0, 0, 0, 80, 0, 0, 0, 0}), "terminal size");
  refused(Bytes({1, 0, 0, 0, 0, 0, 0x04, 0x01}), "more than 1024");
  refused(Bytes({1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'a'}), "cut short");
  refused(Bytes({1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 'a', 0, 0, 0}), "NUL");
  refused(Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0, 65}), "more than 64");
  std::string path_env = Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7}) + "PATH=/x";
  refused(path_env, "PATH is not passed");
  std::string ld = Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 12}) + "LD_PRELOAD=x";
  refused(ld, "LD_PRELOAD");
  std::string noeq = Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4}) + "TERM";
  refused(noeq, "NAME=value");
  std::string lc = Bytes({1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 11}) + "LC_ALL=C.UT";
  EXPECT_TRUE(DecodeSessionOpen(lc).has_value());

  auto key = [](const std::string& line) {
    std::string p = Bytes({3, 0, 0, 0, static_cast<int>(line.size())}) + line;
    return p;
  };
  refused(key(""), "empty");
  refused(key("ssh-ed25519 AAAA\nssh-rsa BBBB"), "control byte");
  refused(key("command=\"sh\" ssh-ed25519 AAAA"), "not an OpenSSH public key line");
  refused(key("ssh-ed25519"), "not an OpenSSH public key line");
  std::string huge = "ssh-ed25519 " + std::string(kSessionSshKeyBytesMax, 'A');
  SessionOpen big;
  big.kind = SessionOpenKind::kSsh;
  big.ssh_public_key = huge;
  EXPECT_FALSE(EncodeSessionOpen(big).has_value());
}

TEST(SessionWire, EncodeRefusesWhatDecodeRefuses) {
  SessionOpen open;
  open.argv = {std::string("a\0b", 3)};
  EXPECT_FALSE(EncodeSessionOpen(open).has_value());
  open.argv = {"ok"};
  open.env = {"HOME=/root"};
  EXPECT_FALSE(EncodeSessionOpen(open).has_value());
  open.env = {};
  open.argv.assign(kSessionArgcMax + 1, "x");
  EXPECT_FALSE(EncodeSessionOpen(open).has_value());
  open.argv = {std::string(kSessionPayloadMax, 'x')};
  auto too_big = EncodeSessionOpen(open);
  ASSERT_FALSE(too_big.has_value());
  EXPECT_NE(too_big.error().message.find("over 65536"), std::string::npos);
}

TEST(SessionWire, ResizeSignalAndExitPayloads) {
  EXPECT_EQ(EncodeSessionResize({50, 132}), Bytes({0, 50, 0, 132}));
  auto w = DecodeSessionResize(Bytes({0, 50, 0, 132}));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->rows, 50);
  EXPECT_EQ(w->cols, 132);
  EXPECT_FALSE(DecodeSessionResize(Bytes({0, 0, 0, 80})).has_value());
  EXPECT_FALSE(DecodeSessionResize(Bytes({0x10, 1, 0, 80})).has_value());
  EXPECT_FALSE(DecodeSessionResize(Bytes({0, 24, 0})).has_value());

  for (int sig : {1, 2, 3, 9, 15}) {
    auto s = DecodeSessionSignal(EncodeSessionSignal(sig));
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(*s, sig);
  }
  for (int sig : {0, 4, 11, 17, 19, 255})
    EXPECT_FALSE(DecodeSessionSignal(Bytes({sig})).has_value());

  EXPECT_EQ(EncodeSessionExit({130, 2}), Bytes({0, 0, 0, 130, 2}));
  auto e = DecodeSessionExit(Bytes({0xff, 0xff, 0xff, 0xff, 0}));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->exit_code, -1);
  EXPECT_FALSE(DecodeSessionExit(Bytes({0, 0, 0, 1})).has_value());
}

TEST(SessionWire, DecoderYieldsTheSameFramesForEverySplit) {
  std::string stream = EncodeSessionFrame(SessionFrameType::kReady, "") +
                       EncodeSessionFrame(SessionFrameType::kStdout, "hello") +
                       EncodeSessionFrame(SessionFrameType::kStderr, "") +
                       EncodeSessionFrame(SessionFrameType::kExit, EncodeSessionExit({3, 0}));
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    SessionFrameDecoder decoder;
    std::vector<SessionFrame> frames;
    for (size_t at = 0; at < stream.size(); at += chunk) {
      decoder.Feed(std::string_view(stream).substr(at, chunk));
      for (;;) {
        auto next = decoder.Next();
        ASSERT_TRUE(next.has_value()) << next.error().message;
        if (!next->has_value()) break;
        frames.push_back(std::move(**next));
      }
    }
    EXPECT_TRUE(decoder.Finish().has_value());
    ASSERT_EQ(frames.size(), 4u) << "chunk " << chunk;
    EXPECT_EQ(frames[0].type, SessionFrameType::kReady);
    EXPECT_EQ(frames[1].type, SessionFrameType::kStdout);
    EXPECT_EQ(frames[1].payload, "hello");
    EXPECT_EQ(frames[2].type, SessionFrameType::kStderr);
    EXPECT_EQ(frames[3].type, SessionFrameType::kExit);
    EXPECT_EQ(DecodeSessionExit(frames[3].payload)->exit_code, 3);
  }
}

TEST(SessionWire, DecoderRefusesBadHeadersAndStaysFailed) {
  {
    SessionFrameDecoder d;
    d.Feed(Bytes({0}));
    auto r = d.Next();
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("unknown type 0"), std::string::npos);
    d.Feed(EncodeSessionFrame(SessionFrameType::kStdin, "x"));
    EXPECT_FALSE(d.Next().has_value());
    EXPECT_FALSE(d.Finish().has_value());
  }
  {
    SessionFrameDecoder d;
    d.Feed(Bytes({12, 0, 0, 0, 0}));
    EXPECT_FALSE(d.Next().has_value());
  }
  {
    // Over the limit is refused from the header alone, before the payload arrives.
    SessionFrameDecoder d;
    d.Feed(Bytes({2, 0, 1, 0, 1}));
    auto r = d.Next();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  }
  {
    SessionFrameDecoder d;
    d.Feed(Bytes({5, 0, 0, 0, 1, 'x'}));
    auto r = d.Next();
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find("STDIN_EOF"), std::string::npos);
  }
  {
    SessionFrameDecoder d;
    d.Feed(Bytes({6, 0, 0, 0, 3, 0, 1, 0}));
    EXPECT_FALSE(d.Next().has_value());
  }
  {
    // A partial frame at the end of the stream is an error; none is not.
    SessionFrameDecoder d;
    d.Feed(Bytes({2, 0, 0, 0, 4, 'a'}));
    auto r = d.Next();
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(d.Buffered(), 6u);
    EXPECT_FALSE(d.Finish().has_value());
  }
}

TEST(SessionWire, TypeNames) {
  EXPECT_EQ(SessionFrameTypeName(1), "OPEN");
  EXPECT_EQ(SessionFrameTypeName(11), "STDOUT_EOF");
  EXPECT_EQ(SessionFrameTypeName(0), "type 0");
  EXPECT_EQ(SessionFrameTypeName(42), "type 42");
}

}  // namespace
}  // namespace gpunet::base
