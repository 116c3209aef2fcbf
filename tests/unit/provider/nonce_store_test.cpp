// The tenant API's on-disk nonce store: replay across a re-open, expiry, the per-key
// cap, revocations, a torn tail after a crash, and compaction keeping the file small.
#include "provider/nonce_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

using base::ErrorCode;
using gpunet::testing::TempDir;
using gpunet::testing::TestKey;

client::RequestNonce N(uint32_t i) {
  client::RequestNonce n;
  for (size_t b = 0; b < 4; ++b) n[b] = static_cast<uint8_t>(i >> (8 * b));
  return n;
}

std::unique_ptr<NonceStore> OpenAt(const TempDir& dir, uint64_t now_ms,
                                   NonceStoreOptions options = {}) {
  auto store = NonceStore::Open(dir.Path(), now_ms, options);
  EXPECT_TRUE(store) << store.error().ToString();
  return store ? std::move(*store) : nullptr;
}

/// Records nonces 0..count-1 of `key` (kept until 60 s) in a fresh store; its log's path.
std::string LogWithNonces(const TempDir& dir, const crypto::PublicKey& key, uint32_t count) {
  auto store = OpenAt(dir, 0);
  for (uint32_t i = 0; i < count; ++i) EXPECT_TRUE(store->Record(key, N(i), 60'000, 0));
  return store->Path();
}

off_t FileSize(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_size;
}

TEST(NonceStore, AReplayIsRefusedEvenAfterAReopen) {
  TempDir dir;
  const auto key = TestKey(1).Public();
  {
    auto store = OpenAt(dir, 1'000);
    ASSERT_TRUE(store->Record(key, N(1), 61'000, 1'000));
    auto again = store->Record(key, N(1), 61'000, 1'500);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
    // Another key may use the same nonce.
    EXPECT_TRUE(store->Record(TestKey(2).Public(), N(1), 61'000, 1'500));
  }
  auto store = OpenAt(dir, 2'000);
  EXPECT_EQ(store->Entries(), 2u);
  auto replay = store->Record(key, N(1), 62'000, 2'000);
  ASSERT_FALSE(replay) << "a restart reopened the replay window";
  EXPECT_EQ(replay.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(store->Record(key, N(2), 62'000, 2'000));
}

TEST(NonceStore, EntriesExpireAfterTheWindow) {
  TempDir dir;
  const auto key = TestKey(1).Public();
  auto store = OpenAt(dir, 0);
  ASSERT_TRUE(store->Record(key, N(1), 60'000, 0));
  EXPECT_FALSE(store->Record(key, N(1), 60'000, 59'999));
  // Once expired the entry is gone (a request that old fails the clock check anyway).
  EXPECT_TRUE(store->Record(key, N(1), 120'000, 60'000));
  store.reset();
  // Expired entries are dropped at open.
  store = OpenAt(dir, 120'000);
  EXPECT_EQ(store->Entries(), 0u);
  EXPECT_EQ(store->LogRecords(), 0u);
}

TEST(NonceStore, AKeyOverItsCapGetsLimitExceededAndOthersAreUntouched) {
  TempDir dir;
  NonceStoreOptions opt;
  opt.per_key_max = 3;
  const auto noisy = TestKey(1).Public();
  const auto quiet = TestKey(2).Public();
  auto store = OpenAt(dir, 0, opt);
  ASSERT_TRUE(store->Record(quiet, N(100), 60'000, 0));
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(store->Record(noisy, N(i), 60'000 + i, 0));
  auto over = store->Record(noisy, N(9), 60'000, 1);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kLimitExceeded);
  // The quiet key's nonce was not evicted to make room: it is still a replay.
  auto quiet_replay = store->Record(quiet, N(100), 60'000, 1);
  ASSERT_FALSE(quiet_replay);
  EXPECT_EQ(quiet_replay.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(store->Record(quiet, N(101), 60'000, 1));
  // As the noisy key's oldest nonce expires, it may send one more.
  EXPECT_TRUE(store->Record(noisy, N(9), 120'000, 60'000));
}

TEST(NonceStore, AFullStoreIsUnavailable) {
  TempDir dir;
  NonceStoreOptions opt;
  opt.entries_max = 2;
  auto store = OpenAt(dir, 0, opt);
  ASSERT_TRUE(store->Record(TestKey(1).Public(), N(1), 60'000, 0));
  ASSERT_TRUE(store->Record(TestKey(2).Public(), N(1), 60'000, 0));
  auto full = store->Record(TestKey(3).Public(), N(1), 60'000, 0);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(store->Record(TestKey(3).Public(), N(1), 120'000, 60'000));
}

TEST(NonceStore, RevocationsSurviveAReopenUntilTheGrantExpires) {
  TempDir dir;
  const auto tenant = TestKey(1).Public();
  client::GrantId id;
  id.data.fill(4);
  {
    auto store = OpenAt(dir, 0);
    EXPECT_FALSE(store->IsRevoked(tenant, id, 0));
    ASSERT_TRUE(store->RecordRevocation(tenant, id, 500'000, 0));
    EXPECT_TRUE(store->IsRevoked(tenant, id, 1));
    // Another tenant's grant with the same id is not revoked by it.
    EXPECT_FALSE(store->IsRevoked(TestKey(2).Public(), id, 1));
  }
  auto store = OpenAt(dir, 400'000);
  EXPECT_TRUE(store->IsRevoked(tenant, id, 400'000));
  EXPECT_FALSE(store->IsRevoked(tenant, id, 500'000));
}

TEST(NonceStore, RevocationsAreCappedPerTenant) {
  TempDir dir;
  NonceStoreOptions opt;
  opt.per_key_max = 2;
  auto store = OpenAt(dir, 0, opt);
  const auto tenant = TestKey(1).Public();
  client::GrantId id;
  for (uint8_t i = 0; i < 2; ++i) {
    id[0] = i;
    ASSERT_TRUE(store->RecordRevocation(tenant, id, 1'000, 0));
  }
  id[0] = 1;
  EXPECT_TRUE(store->RecordRevocation(tenant, id, 2'000, 0)) << "a repeat is not a new entry";
  id[0] = 9;
  auto over = store->RecordRevocation(tenant, id, 1'000, 0);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kLimitExceeded);
  EXPECT_TRUE(store->RecordRevocation(TestKey(2).Public(), id, 1'000, 0));
}

TEST(NonceStore, ATornLastRecordIsCutAndTheRestKept) {
  TempDir dir;
  const auto key = TestKey(1).Public();
  const std::string path = LogWithNonces(dir, key, 3);  // nonces 0, 1, 2
  const off_t full = FileSize(path);
  // A crash in the middle of appending a third record: half of it reached the disk.
  ASSERT_EQ(::truncate(path.c_str(), full - 30), 0);
  {
    auto store = OpenAt(dir, 1);
    EXPECT_EQ(store->Entries(), 2u);
    EXPECT_FALSE(store->Record(key, N(1), 60'000, 1)) << "an intact record was lost";
    EXPECT_TRUE(store->Record(key, N(2), 60'000, 1)) << "the torn record was never acknowledged";
  }
  // A whole last record with a bad check (garbage written over it) is cut too.
  {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "\xff\xff", 2, FileSize(path) - 2), 2);
    ::close(fd);
  }
  auto store = OpenAt(dir, 2);
  EXPECT_EQ(store->Entries(), 2u);
}

TEST(NonceStore, DamageBeforeTheLastRecordIsCorruptNotIgnored) {
  TempDir dir;
  const auto key = TestKey(1).Public();
  const std::string path = LogWithNonces(dir, key, 3);
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, 8 + 10), 1);  // inside the first record
  byte = static_cast<char>(byte ^ 0x5a);
  ASSERT_EQ(::pwrite(fd, &byte, 1, 8 + 10), 1);
  ::close(fd);
  auto store = NonceStore::Open(dir.Path(), 1);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(store.error().message.find("wait 60 s"), std::string::npos) << store.error().message;

  // Not a nonce log at all.
  std::ofstream(path, std::ios::trunc) << "something else entirely";
  store = NonceStore::Open(dir.Path(), 1);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kCorrupt);
}

TEST(NonceStore, CompactionBoundsTheLog) {
  TempDir dir;
  const auto key = TestKey(1).Public();
  NonceStoreOptions opt;
  opt.compact_slack_records = 64;
  auto store = OpenAt(dir, 0, opt);
  // Many short-lived nonces over a long time: the log never holds more than twice the
  // live entries plus the slack, however many were ever recorded.
  const size_t slack = opt.compact_slack_records;
  const size_t total = 8 * slack;
  for (uint32_t i = 0; i < total; ++i) {
    const uint64_t now = 10ull * i;
    ASSERT_TRUE(store->Record(key, N(i), now + 100, now));
    ASSERT_LE(store->LogRecords(), 2 * store->Entries() + slack + 1);
  }
  EXPECT_LT(store->LogRecords(), total / 2);
  EXPECT_LE(static_cast<size_t>(FileSize(store->Path())), 8 + 61 * (slack + 64));
  // The live nonces are still refused after the compactions and a reopen.
  store.reset();
  store = OpenAt(dir, 10ull * (total - 1), opt);
  EXPECT_FALSE(
      store->Record(key, N(static_cast<uint32_t>(total - 1)), 1ull << 40, 10ull * (total - 1)));
}

}  // namespace
}  // namespace gpunet::provider
