#include "provider/chain_watch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "base/mutex.h"
#include "server/http_server.h"

namespace gpunet::provider {
namespace {

/// Polls `done` every 10 ms for up to 20 s (a generous bound, not a timing check).
template <class F>
bool Eventually(F done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

std::unique_ptr<server::HttpServer> BlockServer(uint16_t port) {
  server::ServerOptions o;
  o.port = port;
  o.ws_topics = {"blocks"};
  auto s = std::make_unique<server::HttpServer>(o);
  EXPECT_TRUE(s->Start().has_value());
  return s;
}

class Lines {
 public:
  void Add(std::string_view line) {
    base::MutexLock lock(m_mu);
    m_lines.emplace_back(line);
  }
  size_t Count(std::string_view words) const {
    base::MutexLock lock(m_mu);
    size_t n = 0;
    for (const auto& l : m_lines) n += l.find(words) != std::string::npos;
    return n;
  }

 private:
  mutable base::Mutex m_mu;
  std::vector<std::string> m_lines GUARDED_BY(m_mu);
};

TEST(ChainWatch, WakesOnConnectAndEveryBlockAndReconnectsAfterTheNodeReturns) {
  auto node = BlockServer(0);
  const uint16_t port = node->Port();
  std::atomic<int> wakes{0};
  Lines log;
  ChainWatch watch(
      {node->Url(), 20, 100}, [&] { ++wakes; }, [&](std::string_view line) { log.Add(line); });
  watch.Start();
  ASSERT_TRUE(Eventually([&] { return wakes.load() >= 1; }));  // the catch-up after connect
  ASSERT_TRUE(Eventually([&] {
    node->Publish("blocks", R"({"height":2})");
    return wakes.load() >= 3;
  }));
  EXPECT_TRUE(watch.Connected());

  node->Stop();
  node.reset();
  ASSERT_TRUE(Eventually([&] { return log.Count("connection lost") == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several failed retries
  EXPECT_EQ(log.Count("connection lost"), 1u);                  // logged once, not per retry
  EXPECT_EQ(log.Count("cannot subscribe"), 0u);
  EXPECT_FALSE(watch.Connected());

  const int before = wakes.load();
  node = BlockServer(port);
  ASSERT_TRUE(Eventually([&] { return watch.Reconnects() == 1; }));
  ASSERT_TRUE(Eventually([&] { return wakes.load() > before; }));  // catch-up on reconnect
  watch.Stop();
  EXPECT_EQ(log.Count("subscribed to blocks"), 2u);
}

}  // namespace
}  // namespace gpunet::provider
