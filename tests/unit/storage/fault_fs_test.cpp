// The power-loss layer: first the file-system model on raw files, then whole
// databases: exactly the synced commits survive a cut, and the layer really
// drops data (without the cut the unsynced data is there).
#include "storage/fault_fs.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/clock.h"
#include "state/keyspace.h"
#include "storage/fault_fs_internal.h"
#include "storage/rocks_kv.h"
#include "unit/storage/storage_test_util.h"
#include "util/temp_dir.h"

namespace gpunet::storage {
namespace {

using gpunet::testing::FileText;
using gpunet::testing::TempDir;
using testing::B;

// ---- the model, on raw files ----

class FaultFsRaw : public ::testing::Test {
 protected:
  std::unique_ptr<rocksdb::FSWritableFile> Create(const std::string& path) {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    EXPECT_TRUE(fs().NewWritableFile(path, rocksdb::FileOptions(), &f, nullptr).ok());
    return f;
  }
  void Append(rocksdb::FSWritableFile& f, const std::string& data) {
    ASSERT_TRUE(f.Append(data, io, nullptr).ok());
  }
  void SyncDir() {
    std::unique_ptr<rocksdb::FSDirectory> d;
    ASSERT_TRUE(fs().NewDirectory(dir.Path(), io, &d, nullptr).ok());
    ASSERT_TRUE(d->Fsync(io, nullptr).ok());
  }
  FaultFileSystem& fs() { return *faults.FileSystem(); }

  TempDir dir;
  FaultInjection faults;
  rocksdb::IOOptions io;
};

TEST_F(FaultFsRaw, UnsyncedDataIsCutBackToTheLastSync) {
  auto f = Create(dir.Sub("a"));
  Append(*f, "durable-");
  ASSERT_TRUE(f->Sync(io, nullptr).ok());
  SyncDir();
  Append(*f, "volatile");
  ASSERT_TRUE(f->Flush(io, nullptr).ok());
  EXPECT_EQ(FileText(dir.Sub("a")), "durable-volatile");  // write-through: the OS has it
  EXPECT_EQ(faults.Stats().unsynced_bytes, 8u);
  auto cut = faults.SimulatePowerLoss();
  ASSERT_TRUE(cut.has_value()) << cut.error().ToString();
  EXPECT_EQ(FileText(dir.Sub("a")), "durable-");
  EXPECT_EQ(faults.Stats().dropped_bytes, 8u);
}

TEST_F(FaultFsRaw, RangeSyncIsNotDurable) {
  auto f = Create(dir.Sub("a"));
  SyncDir();
  Append(*f, "0123456789");
  ASSERT_TRUE(f->RangeSync(0, 10, io, nullptr).ok());
  ASSERT_TRUE(faults.SimulatePowerLoss());
  EXPECT_EQ(FileText(dir.Sub("a")), "");
}

TEST_F(FaultFsRaw, NewFileNeedsADirectorySync) {
  auto synced_entry = Create(dir.Sub("kept"));
  Append(*synced_entry, "x");
  ASSERT_TRUE(synced_entry->Sync(io, nullptr).ok());
  SyncDir();
  auto unsynced_entry = Create(dir.Sub("lost"));
  Append(*unsynced_entry, "y");
  ASSERT_TRUE(unsynced_entry->Sync(io, nullptr).ok());  // data synced, its name is not
  EXPECT_EQ(faults.Stats().unsynced_entries, 1u);
  ASSERT_TRUE(faults.SimulatePowerLoss());
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("kept")));
  EXPECT_EQ(FileText(dir.Sub("kept")), "x");
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("lost")));
}

TEST_F(FaultFsRaw, UnsyncedRenameOverADurableFileIsUndone) {
  auto current = Create(dir.Sub("CURRENT"));
  Append(*current, "old\n");
  ASSERT_TRUE(current->Sync(io, nullptr).ok());
  ASSERT_TRUE(current->Close(io, nullptr).ok());
  SyncDir();
  auto tmp = Create(dir.Sub("CURRENT.tmp"));
  Append(*tmp, "new\n");
  ASSERT_TRUE(tmp->Sync(io, nullptr).ok());
  ASSERT_TRUE(tmp->Close(io, nullptr).ok());
  ASSERT_TRUE(fs().RenameFile(dir.Sub("CURRENT.tmp"), dir.Sub("CURRENT"), io, nullptr).ok());
  EXPECT_EQ(FileText(dir.Sub("CURRENT")), "new\n");
  ASSERT_TRUE(faults.SimulatePowerLoss());
  EXPECT_EQ(FileText(dir.Sub("CURRENT")), "old\n");
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("CURRENT.tmp")));
}

TEST_F(FaultFsRaw, RenameFollowedByDirectorySyncIsDurable) {
  auto current = Create(dir.Sub("CURRENT"));
  Append(*current, "old\n");
  ASSERT_TRUE(current->Sync(io, nullptr).ok());
  SyncDir();
  auto tmp = Create(dir.Sub("CURRENT.tmp"));
  Append(*tmp, "new\n");
  ASSERT_TRUE(tmp->Sync(io, nullptr).ok());
  ASSERT_TRUE(fs().RenameFile(dir.Sub("CURRENT.tmp"), dir.Sub("CURRENT"), io, nullptr).ok());
  SyncDir();
  ASSERT_TRUE(faults.SimulatePowerLoss());
  EXPECT_EQ(FileText(dir.Sub("CURRENT")), "new\n");
}

TEST_F(FaultFsRaw, NothingIsWrittenOnceThePowerIsOff) {
  auto f = Create(dir.Sub("a"));
  Append(*f, "abc");
  ASSERT_TRUE(f->Sync(io, nullptr).ok());
  SyncDir();
  ASSERT_TRUE(faults.SimulatePowerLoss());
  EXPECT_TRUE(faults.PoweredOff());
  EXPECT_TRUE(f->Append("more", io, nullptr).IsIOError());
  EXPECT_TRUE(f->Sync(io, nullptr).IsIOError());
  std::unique_ptr<rocksdb::FSWritableFile> g;
  EXPECT_TRUE(fs().NewWritableFile(dir.Sub("b"), rocksdb::FileOptions(), &g, nullptr).IsIOError());
  EXPECT_TRUE(fs().RenameFile(dir.Sub("a"), dir.Sub("c"), io, nullptr).IsIOError());
  EXPECT_TRUE(fs().DeleteFile(dir.Sub("a"), io, nullptr).IsIOError());
  EXPECT_EQ(FileText(dir.Sub("a")), "abc");
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("b")));
  // Closing a file after the cut does not grow it back.
  ASSERT_TRUE(f->Close(io, nullptr).ok());
  EXPECT_EQ(FileText(dir.Sub("a")), "abc");
}

TEST_F(FaultFsRaw, WritesTheModelCannotFollowAreRefused) {
  std::unique_ptr<rocksdb::FSRandomRWFile> rw;
  EXPECT_TRUE(
      fs().NewRandomRWFile(dir.Sub("rw"), rocksdb::FileOptions(), &rw, nullptr).IsNotSupported());
  EXPECT_TRUE(fs().LinkFile(dir.Sub("a"), dir.Sub("b"), io, nullptr).IsNotSupported());
}

// ---- whole databases ----

state::WriteBatch NumberedBatch(uint64_t n, int keys) {
  state::WriteBatch batch;
  for (int i = 0; i < keys; ++i) {
    base::Bytes k = state::keyspace::ReceiptKey(n, static_cast<uint32_t>(i));
    batch.Put(std::move(k), base::Bytes(100, static_cast<uint8_t>(n + i)));
  }
  batch.Put(state::keyspace::MetaKey(state::keyspace::kMetaLastHeight),
            state::keyspace::EncodeU64(n));
  return batch;
}

uint64_t LastHeight(const state::KvStore& kv) {
  auto v = kv.Get(state::keyspace::MetaKey(state::keyspace::kMetaLastHeight));
  EXPECT_TRUE(v.has_value());
  if (!v || !*v) return 0;
  return *state::keyspace::DecodeU64(**v);
}

/// Batches 1..last are all there, complete, and nothing else is.
void ExpectExactlyBatches(const state::KvStore& kv, uint64_t last, int keys_per_batch) {
  EXPECT_EQ(LastHeight(kv), last);
  std::map<uint64_t, int> seen;
  auto s = kv.Scan(base::Bytes{state::keyspace::kReceiptByLocation},
                   state::keyspace::PrefixEnd(base::Bytes{state::keyspace::kReceiptByLocation}),
                   [&](base::ByteSpan k, base::ByteSpan v) {
                     const uint64_t n = base::ReadU64BE(k.data() + 1);
                     const uint32_t i = base::ReadU32BE(k.data() + 9);
                     EXPECT_EQ(v.size(), 100u);
                     EXPECT_EQ(v[0], static_cast<uint8_t>(n + i));
                     ++seen[n];
                     return true;
                   });
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(seen.size(), last);
  for (const auto& [n, count] : seen) {
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, last) << "batch " << n << " was never committed with sync";
    EXPECT_EQ(count, keys_per_batch) << "batch " << n << " is torn";
  }
}

std::unique_ptr<RocksKvStore> OpenOk(const std::string& path, const RocksKvOptions& options = {}) {
  auto store = RocksKvStore::Open(path, options);
  EXPECT_TRUE(store.has_value()) << (store ? "" : store.error().ToString());
  return store ? std::move(*store) : nullptr;
}

RocksKvOptions FaultOptions() {
  RocksKvOptions o;
  o.fault_injection = true;
  o.write_buffer_bytes = 64 << 10;  // flushes and compactions happen under the layer
  return o;
}

/// Commits `synced` batches with sync, then `unsynced` more without; returns the store.
std::unique_ptr<RocksKvStore> SyncedThenUnsynced(const std::string& path, int synced,
                                                 int unsynced) {
  auto store = OpenOk(path, FaultOptions());
  if (!store) return nullptr;
  for (int n = 1; n <= synced; ++n) EXPECT_TRUE(store->Commit(NumberedBatch(n, 50)));
  for (int n = synced + 1; n <= synced + unsynced; ++n)
    EXPECT_TRUE(store->CommitUnsyncedForTest(NumberedBatch(n, 50)));
  return store;
}

TEST(PowerLoss, ExactlyTheSyncedCommitsSurvive) {
  TempDir dir;
  auto store = SyncedThenUnsynced(dir.Path(), 40, 3);
  ASSERT_TRUE(store);
  // Before the cut the unsynced batches are visible in the process.
  EXPECT_EQ(LastHeight(*store), 43u);
  // The unsynced batch also deletes a synced key and overwrites another.
  state::WriteBatch sneaky;
  sneaky.Delete(state::keyspace::ReceiptKey(1, 0));
  sneaky.Put(state::keyspace::ReceiptKey(2, 0), base::Bytes(100, 0));
  ASSERT_TRUE(store->CommitUnsyncedForTest(sneaky));
  EXPECT_EQ(*store->Get(state::keyspace::ReceiptKey(1, 0)), std::nullopt);
  const FaultStats before = store->Faults()->Stats();
  EXPECT_GT(before.unsynced_bytes, 0u);
  EXPECT_GT(before.file_syncs, 40u);

  ASSERT_TRUE(store->SimulatePowerLoss());
  auto closed = store->Get(B("x"));
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code, base::ErrorCode::kUnavailable);
  EXPECT_EQ(store->Commit(NumberedBatch(99, 1)).error().code, base::ErrorCode::kUnavailable);
  EXPECT_GT(store->Faults()->Stats().dropped_bytes, 0u);
  store.reset();

  auto reopened = OpenOk(dir.Path());
  ASSERT_TRUE(reopened);
  ExpectExactlyBatches(*reopened, 40, 50);
  EXPECT_TRUE((*reopened->Get(state::keyspace::ReceiptKey(1, 0))).has_value());
  EXPECT_EQ((**reopened->Get(state::keyspace::ReceiptKey(2, 0)))[0], 2);
}

TEST(PowerLoss, WithoutTheCutTheUnsyncedCommitsAreThere) {
  // The control for the test above: the same writes, closed without a cut,
  // do reach the disk. So it is the layer that dropped them there.
  TempDir dir;
  auto store = SyncedThenUnsynced(dir.Path(), 40, 3);
  ASSERT_TRUE(store);
  store.reset();
  auto reopened = OpenOk(dir.Path());
  ASSERT_TRUE(reopened);
  ExpectExactlyBatches(*reopened, 43, 50);
}

TEST(PowerLoss, SurvivesFlushesCompactionsAndRepeatedCuts) {
  TempDir dir;
  uint64_t synced = 0;
  for (int cut = 0; cut < 4; ++cut) {
    auto store = OpenOk(dir.Path(), FaultOptions());
    ASSERT_TRUE(store);
    ASSERT_EQ(LastHeight(*store), synced);
    // ~100 KiB per 20 batches: several memtable flushes per round.
    for (int i = 0; i < 60; ++i) ASSERT_TRUE(store->Commit(NumberedBatch(++synced, 50)));
    ASSERT_TRUE(store->CommitUnsyncedForTest(NumberedBatch(synced + 1, 50)));
    ASSERT_TRUE(store->SimulatePowerLoss());
  }
  int tables = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.Path()))
    tables += e.path().extension() == ".sst";
  EXPECT_GT(tables, 0) << "no flush happened: the test did not exercise table files";
  auto reopened = OpenOk(dir.Path());
  ASSERT_TRUE(reopened);
  ExpectExactlyBatches(*reopened, synced, 50);
}

TEST(PowerLoss, CutWhileAnotherThreadCommits) {
  const uint64_t seed = 0xc0ffee;
  SCOPED_TRACE("seed=" + std::to_string(seed));
  base::SeededRng rng(seed);
  TempDir dir;
  for (int round = 0; round < 8; ++round) {
    auto store = OpenOk(dir.Path(), FaultOptions());
    ASSERT_TRUE(store);
    const uint64_t start = LastHeight(*store);
    std::atomic<uint64_t> acknowledged{start};
    std::thread writer([&] {
      for (uint64_t n = start + 1;; ++n) {
        if (!store->Commit(NumberedBatch(n, 20))) return;  // the power went
        acknowledged = n;
      }
    });
    // Wait for some progress, then cut at a random moment.
    while (acknowledged.load() < start + 1 + rng.Below(30)) std::this_thread::yield();
    ASSERT_TRUE(store->SimulatePowerLoss());
    writer.join();
    store.reset();
    auto reopened = OpenOk(dir.Path());
    ASSERT_TRUE(reopened);
    const uint64_t last = LastHeight(*reopened);
    // Every acknowledged commit is there; at most the one in flight beyond it.
    EXPECT_GE(last, acknowledged.load()) << "round " << round;
    EXPECT_LE(last, acknowledged.load() + 1) << "round " << round;
    ExpectExactlyBatches(*reopened, last, 20);
  }
}

TEST(PowerLoss, NeedsTheFaultLayer) {
  TempDir dir;
  auto store = OpenOk(dir.Path());
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->Faults().has_value());
  auto s = store->SimulatePowerLoss();
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, base::ErrorCode::kUnsupported);
  EXPECT_TRUE(store->Commit(NumberedBatch(1, 1)));  // still open
}

}  // namespace
}  // namespace gpunet::storage
