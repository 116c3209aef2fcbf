// ApiProcess: the tenant-facing process runs without root, gets the broker sockets and
// the TLS key on its fds and nothing else, and is started again when it dies.
#include "provider/api_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

/// What the agent's end of a socket receives until the peer closes it or 10 s pass.
std::string ReadUntilClosed(int fd) {
  std::string got;
  char buf[512];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class ApiProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to another user";
    auto user = LookupUser("nobody");
    if (!user) GTEST_SKIP() << "no user nobody";
    std::ofstream(dir.Path() + "/key.pem") << "KEY-PEM";
    std::ofstream(dir.Path() + "/cert.pem") << "CERT-PEM";
    ::chmod((dir.Path() + "/key.pem").c_str(), 0600);
    options.listen = "127.0.0.1:1";
    options.chain_id = "gpunet-test";
    options.provider = "gpn1provider";
    options.key_path = dir.Path() + "/key.pem";
    options.cert_path = dir.Path() + "/cert.pem";
    options.user = *user;
    options.broker_connections = 2;
    options.on_spawn = [this](std::vector<int> fds) {
      std::lock_guard lock(mu);
      spawned.push_back(std::move(fds));
    };
  }
  void TearDown() override {
    for (auto& fds : spawned)
      for (int fd : fds) ::close(fd);
  }
  std::vector<int> FdsOfStart(size_t n) {
    for (int i = 0; i < 300; ++i) {
      {
        std::lock_guard lock(mu);
        if (spawned.size() > n) return spawned[n];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return {};
  }

  gpunet::testing::TempDir dir{{.parent = "", .prefix = "gpunet-api", .mode = 0700}};
  ApiProcessOptions options;
  std::mutex mu;
  std::vector<std::vector<int>> spawned;
};

TEST_F(ApiProcessTest, RunsUnprivilegedWithTheSocketsAndKeyOnItsFdsAndIsRestarted) {
  // The "API": says who it is and what its fds hold on the first broker socket, then
  // exits, so the agent must start it again.
  options.command = {"/bin/sh", "-c",
                     "{ echo \"uid=$(id -u) args=$*\"; cat <&5; cat \"$6\"; "
                     "ls /proc/self/fd | wc -l; } >&3",
                     "api"};
  ApiProcess api(options);
  EXPECT_FALSE(api.Ready().has_value());
  api.Start();
  auto first = FdsOfStart(0);
  ASSERT_EQ(first.size(), 2u);
  const std::string said = ReadUntilClosed(first[0]);
  EXPECT_EQ(said.find("uid=0 "), std::string::npos) << said;
  EXPECT_NE(said.find("uid=" + std::to_string(options.user.uid)), std::string::npos) << said;
  EXPECT_NE(said.find("--broker-fds 3,4 --key-fd 5 --cert /proc/self/fd/6 --listen 127.0.0.1:1 "
                      "--chain-id gpunet-test --provider gpn1provider"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("KEY-PEMCERT-PEM"), std::string::npos) << said;  // read though 0600 root's
  // 0, 1, 2 as this process has them, 3..6, and the fd ls opens for /proc/self/fd:
  // nothing else of the agent's leaks in.
  int expected = 4 + 1;
  for (int fd = 0; fd < 3; ++fd) expected += ::fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  EXPECT_NE(said.find("-PEM" + std::to_string(expected) + "\n"), std::string::npos) << said;
  auto second = FdsOfStart(1);  // it exited: started again after the backoff
  ASSERT_EQ(second.size(), 2u);
  api.Stop();
  EXPECT_GE(api.Starts(), 2u);
}

TEST_F(ApiProcessTest, StopEndsAProcessThatKeepsRunning) {
  options.command = {"/bin/sh", "-c", "echo up >&3; exec sleep 600", "api"};
  ApiProcess api(options);
  api.Start();
  auto fds = FdsOfStart(0);
  ASSERT_EQ(fds.size(), 2u);
  char buf[3];
  ASSERT_EQ(::read(fds[0], buf, 3), 3);
  api.Stop();  // SIGTERM ends sleep; the socket's other end closes with it
  EXPECT_EQ(::read(fds[0], buf, 1), 0);
  EXPECT_EQ(api.Starts(), 1u);
}

}  // namespace
}  // namespace gpunet::provider
