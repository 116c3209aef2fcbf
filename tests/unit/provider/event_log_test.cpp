#include "provider/event_log.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

TEST(EventLog, KeepsEventsAcrossAReopenAndCutsATornTail) {
  testing::TempDir tmp;
  {
    auto log = EventLog::Open(tmp.Sub("events"));
    ASSERT_TRUE(log.has_value()) << log.error().message;
    EXPECT_EQ((*log)->Append(7, "reserved", "2 GPUs set aside", 1000).value(), 1u);
    EXPECT_EQ((*log)->Append(7, "started", "LeaseStarted sent", 2000).value(), 2u);
    EXPECT_EQ((*log)->Append(8, "reserved", "other lease", 3000).value(), 1u);
  }
  // A crash in the middle of a third line of lease 7.
  std::ofstream(tmp.Sub("events/7.events"), std::ios::app) << R"({"seq":3,"time_ms":4)";
  auto log = EventLog::Open(tmp.Sub("events"));
  ASSERT_TRUE(log.has_value());
  auto all = (*log)->Since(7, 0, 100);
  ASSERT_TRUE(all.has_value()) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1], (LeaseEvent{2, 2000, "started", "LeaseStarted sent"}));
  EXPECT_EQ((*log)->Append(7, "manifest", "accepted", 5000).value(), 3u);
  auto after = (*log)->Since(7, 2, 100);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].kind, "manifest");

  auto reread = EventLog::Open(tmp.Sub("events"));
  EXPECT_EQ((*reread)->Since(7, 0, 100)->size(), 3u);
  EXPECT_EQ((*reread)->Since(9, 0, 100)->size(), 0u);
}

TEST(EventLog, AWaitingReaderWakesOnAppend) {
  testing::TempDir tmp;
  auto log = EventLog::Open(tmp.Sub("events")).value();
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(log->Append(3, "running", "workload started", 1).has_value());
  });
  auto got = log->Since(3, 0, 10, 60'000);
  writer.join();
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].kind, "running");
  // Nothing new: a zero wait answers at once with nothing.
  EXPECT_TRUE(log->Since(3, 1, 10, 0)->empty());
}

TEST(EventLog, CapsEventsAndMessagesAndSurvivesBadUtf8) {
  testing::TempDir tmp;
  auto log = EventLog::Open(tmp.Sub("events"), 5).value();
  auto seq = log->Append(1, "log", std::string("\xff\xfe bad bytes") + std::string(5000, 'x'), 1);
  ASSERT_TRUE(seq.has_value()) << seq.error().message;
  auto got = log->Since(1, 0, 10).value();
  EXPECT_LE(got[0].message.size(), kEventMessageBytesMax + 8);
  for (size_t i = 1; i < 5; ++i) ASSERT_TRUE(log->Append(1, "e", "m", 1).has_value());
  auto over = log->Append(1, "e", "m", 1);
  ASSERT_FALSE(over.has_value());
  EXPECT_EQ(over.error().code, base::ErrorCode::kLimitExceeded);
  EXPECT_TRUE(log->Remove(1).has_value());
  EXPECT_TRUE(log->Since(1, 0, 10)->empty());
}

}  // namespace
}  // namespace gpunet::provider
