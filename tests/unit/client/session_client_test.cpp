// The client's side of an interactive session (client/session_client.h) against a
// scripted lease side on a socketpair: frames both ways, the input pump, EXIT, ERROR,
// a connection that ends early, and what a refused session request says.
#include "client/session_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>

namespace gpunet::client {
namespace {

using base::SessionFrameType;

/// A ByteStream over one end of a socketpair.
class SocketStream final : public ByteStream {
 public:
  explicit SocketStream(int fd) : m_fd(fd) {}
  ~SocketStream() override { ::close(m_fd); }
  base::Result<size_t> Read(std::span<uint8_t> out) override {
    const ssize_t n = ::read(m_fd, out.data(), out.size());
    if (n < 0) return base::Fail(base::ErrorCode::kUnavailable, "read failed");
    return static_cast<size_t>(n);
  }
  base::Status Write(std::string_view bytes) override {
    if (::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(bytes.size()))
      return base::Fail(base::ErrorCode::kUnavailable, "write failed");
    return base::Ok();
  }
  void Close() override { ::shutdown(m_fd, SHUT_RDWR); }

 private:
  int m_fd;
};

/// The lease's side: reads frames from its end of the socketpair.
struct LeaseSide {
  int fd;
  base::SessionFrameDecoder decoder;

  base::SessionFrame Read() {
    char buffer[4096];
    for (;;) {
      auto frame = decoder.Next();
      EXPECT_TRUE(frame);
      if (frame && *frame) return **frame;
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) return {SessionFrameType::kError, "connection ended"};
      decoder.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    }
  }
  void Write(SessionFrameType type, std::string_view payload = {}) {
    const std::string bytes = base::EncodeSessionFrame(type, payload);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
};

struct Pair {
  Pair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    session = std::make_unique<Session>(std::make_unique<SocketStream>(fds[0]));
  }
  ~Pair() { ::close(fds[1]); }
  int fds[2];
  std::unique_ptr<Session> session;
};

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0); }
  ~Pipe() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  void CloseWrite() {
    ::close(fds[1]);
    fds[1] = -1;
  }
  std::string ReadAll() {
    std::string out;
    char buffer[4096];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
      out.append(buffer, static_cast<size_t>(n));
    return out;
  }
  int fds[2] = {-1, -1};
};

TEST(SessionClient, RelaysInputOutputAndTheExitCode) {
  Pair pair;
  Pipe input, output, error;
  const std::string big(100'000, 'x');  // more than one frame's payload
  ASSERT_GE(::fcntl(input.fds[1], F_SETPIPE_SZ, 1 << 20), 1 << 17);
  ASSERT_EQ(::write(input.fds[1], big.data(), big.size()), static_cast<ssize_t>(big.size()));
  input.CloseWrite();
  std::string stdin_seen;
  bool eof_seen = false;
  std::thread lease([&] {
    LeaseSide side{pair.fds[1], {}};
    side.Write(SessionFrameType::kReady);
    for (auto f = side.Read(); f.type != SessionFrameType::kError; f = side.Read()) {
      if (f.type == SessionFrameType::kStdinEof) {
        eof_seen = true;
        break;
      }
      EXPECT_EQ(f.type, SessionFrameType::kStdin);
      stdin_seen += f.payload;
    }
    side.Write(SessionFrameType::kStdout, "out\n");
    side.Write(SessionFrameType::kStderr, "err\n");
    side.Write(SessionFrameType::kExit, base::EncodeSessionExit({130, 2}));
  });
  int ready = 0;
  SessionRelayIo io;
  io.input_fd = input.fds[0];
  io.output_fd = output.fds[1];
  io.error_fd = error.fds[1];
  io.on_ready = [&] { ++ready; };
  auto end = RelaySession(*pair.session, io);
  lease.join();
  ASSERT_TRUE(end) << end.error().ToString();
  EXPECT_TRUE(end->ready);
  EXPECT_EQ(ready, 1);
  ASSERT_TRUE(end->exit);
  EXPECT_EQ(end->exit->exit_code, 130);
  EXPECT_EQ(end->exit->signal, 2);
  EXPECT_FALSE(end->error);
  EXPECT_TRUE(eof_seen);
  EXPECT_EQ(stdin_seen, big);
  output.CloseWrite();
  error.CloseWrite();
  EXPECT_EQ(output.ReadAll(), "out\n");
  EXPECT_EQ(error.ReadAll(), "err\n");
}

// The ERROR message is printed after "lease 7: ": the lease's bytes as one harmless line.
TEST(SessionClient, NoInputIsAnEofAtOnceAndErrorEndsTheSession) {
  const std::pair<std::string, std::string> cases[] = {
      {"nothing listens on port 8888 inside the lease",
       "nothing listens on port 8888 inside the lease"},
      {"no sshd\x1b]0;title\x07\x1b[1A\r\ndone", "no sshd  done"}};
  for (const auto& [sent, shown] : cases) {
    Pair pair;
    Pipe output;
    std::thread lease([&] {
      LeaseSide side{pair.fds[1], {}};
      EXPECT_EQ(side.Read().type, SessionFrameType::kStdinEof);
      side.Write(SessionFrameType::kError, sent);
    });
    SessionRelayIo io;
    io.output_fd = output.fds[1];
    auto end = RelaySession(*pair.session, io);
    lease.join();
    ASSERT_TRUE(end) << end.error().ToString();
    EXPECT_FALSE(end->ready);
    EXPECT_FALSE(end->exit);
    ASSERT_TRUE(end->error);
    EXPECT_EQ(*end->error, shown);
  }
}

// STDOUT_EOF ends a forwarded connection's writing side only: a stdout socket that
// others share (journald, a CI runner) stays open after an exec session's EOF.
TEST(SessionClient, StdoutEofShutsTheOutputOnlyWhenTheSessionOwnsIt) {
  for (const bool owned : {false, true}) {
    Pair pair;
    int out[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out), 0);
    std::thread lease([&] {
      LeaseSide side{pair.fds[1], {}};
      EXPECT_EQ(side.Read().type, SessionFrameType::kStdinEof);
      side.Write(SessionFrameType::kStdout, "a");
      side.Write(SessionFrameType::kStdoutEof);
      side.Write(SessionFrameType::kExit, base::EncodeSessionExit({0, 0}));
    });
    SessionRelayIo io;
    io.output_fd = out[0];
    io.shutdown_output_on_eof = owned;
    auto end = RelaySession(*pair.session, io);
    lease.join();
    ASSERT_TRUE(end) << end.error().ToString();
    ASSERT_TRUE(end->exit);
    const bool still_open = ::send(out[0], "b", 1, MSG_NOSIGNAL) == 1;
    EXPECT_EQ(still_open, !owned) << "owned " << owned;
    ::close(out[0]);
    std::string seen;
    char buffer[16];
    for (ssize_t n; (n = ::read(out[1], buffer, sizeof buffer)) > 0;)
      seen.append(buffer, static_cast<size_t>(n));
    EXPECT_EQ(seen, owned ? "a" : "ab");
    ::close(out[1]);
  }
}

TEST(SessionClient, AConnectionThatEndsEarlyOrInAFrameIsAnError) {
  {
    Pair pair;
    Pipe output;
    ::shutdown(pair.fds[1], SHUT_WR);
    SessionRelayIo io;
    io.output_fd = output.fds[1];
    auto end = RelaySession(*pair.session, io);
    ASSERT_FALSE(end);
    EXPECT_EQ(end.error().code, base::ErrorCode::kUnavailable);
  }
  {
    Pair pair;
    const std::string half = base::EncodeSessionFrame(SessionFrameType::kStdout, "abcdef");
    ASSERT_EQ(::write(pair.fds[1], half.data(), 7), 7);
    ::shutdown(pair.fds[1], SHUT_WR);
    auto frame = pair.session->Next();
    ASSERT_FALSE(frame);
    EXPECT_EQ(frame.error().code, base::ErrorCode::kCorrupt);
  }
  {  // a frame only a client sends
    Pair pair;
    Pipe output;
    LeaseSide side{pair.fds[1], {}};
    side.Write(SessionFrameType::kStdin, "x");
    SessionRelayIo io;
    io.output_fd = output.fds[1];
    auto end = RelaySession(*pair.session, io);
    ASSERT_FALSE(end);
    EXPECT_EQ(end.error().code, base::ErrorCode::kCorrupt);
  }
}

TEST(SessionClient, RefusalsSayWhatToDo) {
  TenantResponse r;
  r.status = 410;
  r.body = R"({"error":{"code":"gone","message":"lease 7 is closed"}})";
  base::Error e = SessionRefusal(7, r);
  EXPECT_EQ(e.code, base::ErrorCode::kConflict);
  EXPECT_NE(e.message.find("lease 7 is closed"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("rent a new machine"), std::string::npos) << e.message;
  r.status = 409;
  r.body =
      R"j({"error":{"code":"conflict","message":"the lease's workload is not running (state: exited)"}})j";
  e = SessionRefusal(7, r);
  EXPECT_EQ(e.code, base::ErrorCode::kConflict);
  EXPECT_NE(e.message.find("not running (state: exited)"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("gpunet lease status 7"), std::string::npos) << e.message;
  r.status = 429;
  EXPECT_EQ(SessionRefusal(7, r).code, base::ErrorCode::kUnavailable);
  r.status = 403;
  EXPECT_EQ(SessionRefusal(7, r).code, base::ErrorCode::kPermissionDenied);
  EXPECT_EQ(SessionTarget(7), "/leases/7/session");
}

}  // namespace
}  // namespace gpunet::client
