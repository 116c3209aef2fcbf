// RocksKvStore: KvStore semantics against the in-memory model, reopening, and
// every way Open can be refused.
#include "storage/rocks_kv.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/clock.h"
#include "state/keyspace.h"
#include "unit/storage/storage_test_util.h"
#include "util/temp_dir.h"

namespace gpunet::storage {
namespace {

using gpunet::testing::TempDir;
using testing::B;
using KvMap = std::map<base::Bytes, base::Bytes>;

std::unique_ptr<RocksKvStore> OpenOk(const std::string& path, const RocksKvOptions& options = {}) {
  auto store = RocksKvStore::Open(path, options);
  EXPECT_TRUE(store.has_value()) << (store ? "" : store.error().ToString());
  return store ? std::move(*store) : nullptr;
}

KvMap ScanAll(const state::KvStore& kv, base::ByteSpan begin = {}, base::ByteSpan end = {}) {
  KvMap out;
  auto s = kv.Scan(begin, end, [&](base::ByteSpan k, base::ByteSpan v) {
    out.emplace(base::Bytes(k.begin(), k.end()), base::Bytes(v.begin(), v.end()));
    return true;
  });
  EXPECT_TRUE(s.has_value()) << s.error().ToString();
  return out;
}

TEST(RocksKvStore, GetPutDeleteAndOverwrite) {
  TempDir dir;
  auto store = OpenOk(dir.Path());
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->Get(B("a")), std::nullopt);

  state::WriteBatch batch;
  batch.Put(B("a"), B("1"));
  batch.Put(B("b"), B("2"));
  batch.Put(B("empty"), {});
  ASSERT_TRUE(store->Commit(batch));
  EXPECT_EQ(*store->Get(B("a")), B("1"));
  EXPECT_EQ(*store->Get(B("empty")), base::Bytes{});  // present with an empty value, not absent

  batch.Clear();
  batch.Put(B("a"), B("3"));
  batch.Delete(B("b"));
  batch.Delete(B("never-there"));
  ASSERT_TRUE(store->Commit(batch));
  EXPECT_EQ(*store->Get(B("a")), B("3"));
  EXPECT_EQ(*store->Get(B("b")), std::nullopt);
  EXPECT_EQ(*store->Get(B("never-there")), std::nullopt);

  ASSERT_TRUE(store->Commit(state::WriteBatch{}));  // empty commit is fine
  EXPECT_EQ(ScanAll(*store).size(), 2u);
}

TEST(RocksKvStore, ScanIsByteOrderedBoundedAndStoppable) {
  TempDir dir;
  auto store = OpenOk(dir.Path());
  ASSERT_TRUE(store);
  state::WriteBatch batch;
  // Heights as big-endian keys: byte order must be numeric order.
  for (uint64_t h : {256u, 1u, 255u, 65536u, 2u})
    batch.Put(state::keyspace::BlockKey(h), B("block"));
  batch.Put(state::keyspace::MetaKey(state::keyspace::kMetaLastHeight),
            state::keyspace::EncodeU64(7));
  batch.Put(base::Bytes{0xff, 0xff}, B("last"));
  ASSERT_TRUE(store->Commit(batch));

  std::vector<uint64_t> heights;
  const auto begin = base::Bytes{state::keyspace::kBlockByHeight};
  const auto end = state::keyspace::PrefixEnd(begin);
  ASSERT_TRUE(store->Scan(begin, end, [&](base::ByteSpan k, base::ByteSpan) {
    heights.push_back(*state::keyspace::HeightFromKey(state::keyspace::kBlockByHeight, k));
    return true;
  }));
  EXPECT_EQ(heights, (std::vector<uint64_t>{1, 2, 255, 256, 65536}));

  // [BlockKey(2), BlockKey(256)) excludes its end.
  heights.clear();
  ASSERT_TRUE(store->Scan(state::keyspace::BlockKey(2), state::keyspace::BlockKey(256),
                          [&](base::ByteSpan k, base::ByteSpan) {
                            heights.push_back(*state::keyspace::HeightFromKey(
                                state::keyspace::kBlockByHeight, k));
                            return true;
                          }));
  EXPECT_EQ(heights, (std::vector<uint64_t>{2, 255}));

  // The visitor stops the scan.
  int visited = 0;
  ASSERT_TRUE(store->Scan({}, {}, [&](base::ByteSpan, base::ByteSpan) { return ++visited < 3; }));
  EXPECT_EQ(visited, 3);

  // Empty end = to the end: the 0xffff key is the last one seen.
  auto all = ScanAll(*store);
  EXPECT_EQ(all.size(), 7u);
  EXPECT_EQ(all.rbegin()->first, (base::Bytes{0xff, 0xff}));
  // begin >= end: nothing.
  EXPECT_TRUE(ScanAll(*store, state::keyspace::BlockKey(9), state::keyspace::BlockKey(3)).empty());
}

TEST(RocksKvStore, RandomBatchesMatchTheMemoryModel) {
  const uint64_t seed = 0x5eed0001;
  SCOPED_TRACE("seed=" + std::to_string(seed));
  base::SeededRng rng(seed);
  TempDir dir;
  RocksKvOptions options;
  options.write_buffer_bytes = 64 << 10;  // force flushes and compactions underneath
  auto store = OpenOk(dir.Path(), options);
  ASSERT_TRUE(store);
  state::MemoryKvStore model;
  auto random_key = [&] {
    base::Bytes k(1 + rng.Below(4));
    for (auto& b : k)
      b = static_cast<uint8_t>(rng.Below(4) * 0x40 +
                               rng.Below(2));  // few distinct bytes: collisions
    return k;
  };
  for (int round = 0; round < 200; ++round) {
    state::WriteBatch batch;
    const uint64_t ops = rng.Below(40);
    for (uint64_t i = 0; i < ops; ++i) {
      if (rng.Below(3) == 0) {
        batch.Delete(random_key());
      } else {
        base::Bytes v(rng.Below(300));
        for (auto& b : v) b = static_cast<uint8_t>(rng.Next());
        batch.Put(random_key(), std::move(v));
      }
    }
    ASSERT_TRUE(store->Commit(batch));
    ASSERT_TRUE(model.Commit(batch));
    for (int q = 0; q < 5; ++q) {
      auto k = random_key();
      ASSERT_EQ(*store->Get(k), *model.Get(k)) << "round " << round;
      auto b = random_key(), e = random_key();
      if (rng.Below(4) == 0) e.clear();
      ASSERT_EQ(ScanAll(*store, b, e), ScanAll(model, b, e)) << "round " << round;
    }
  }
  EXPECT_EQ(ScanAll(*store).size(), model.Size());
  // And the same after a reopen.
  KvMap before = ScanAll(model);
  store.reset();
  store = OpenOk(dir.Path(), options);
  ASSERT_TRUE(store);
  EXPECT_EQ(ScanAll(*store), before);
}

TEST(RocksKvStore, ReopenKeepsCommittedData) {
  TempDir dir;
  {
    auto store = OpenOk(dir.Path());
    ASSERT_TRUE(store);
    state::WriteBatch batch;
    for (int i = 0; i < 1000; ++i)
      batch.Put(B("k" + std::to_string(i)), B("v" + std::to_string(i)));
    ASSERT_TRUE(store->Commit(batch));
    batch.Clear();
    batch.Delete(B("k7"));
    ASSERT_TRUE(store->Commit(batch));
  }
  RocksKvOptions no_create;
  no_create.create_if_missing = false;
  auto store = OpenOk(dir.Path(), no_create);
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->Get(B("k999")), B("v999"));
  EXPECT_EQ(*store->Get(B("k7")), std::nullopt);
  EXPECT_EQ(ScanAll(*store).size(), 999u);
  EXPECT_EQ(store->Path(), dir.Path());
}

TEST(RocksKvStore, OpenTwiceInOneProcessIsAClearConflict) {
  TempDir dir;
  auto first = OpenOk(dir.Path());
  ASSERT_TRUE(first);
  auto second = RocksKvStore::Open(dir.Path());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, base::ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find("already open"), std::string::npos)
      << second.error().message;
  first.reset();
  EXPECT_TRUE(RocksKvStore::Open(dir.Path()).has_value());  // the lock went with the first store
}

TEST(RocksKvStore, MissingDatabaseIsNotFoundWhenNotCreating) {
  TempDir dir;
  RocksKvOptions no_create;
  no_create.create_if_missing = false;
  auto r = RocksKvStore::Open(dir.Sub("nothing-here"), no_create);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kNotFound) << r.error().ToString();
  EXPECT_NE(r.error().message.find("no database in"), std::string::npos);

  // An existing but empty directory is no database either.
  r = RocksKvStore::Open(dir.Path(), no_create);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kNotFound) << r.error().ToString();
}

TEST(RocksKvStore, UnusablePathsAreErrorsNotCrashes) {
  TempDir dir;
  EXPECT_EQ(RocksKvStore::Open("").error().code, base::ErrorCode::kInvalidArgument);
  // Parent directory missing.
  auto r = RocksKvStore::Open(dir.Sub("no/such/parent"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kIo) << r.error().ToString();
  // A regular file where the directory should be.
  std::ofstream(dir.Sub("file")) << "not a directory";
  r = RocksKvStore::Open(dir.Sub("file"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kIo) << r.error().ToString();
}

void MakeDatabase(const std::string& path) {
  auto store = OpenOk(path);
  ASSERT_TRUE(store);
  state::WriteBatch batch;
  batch.Put(B("key"), B("value"));
  ASSERT_TRUE(store->Commit(batch));
}

TEST(RocksKvStore, GarbageCurrentFileIsCorrupt) {
  TempDir dir;
  MakeDatabase(dir.Path());
  std::ofstream(dir.Sub("CURRENT"), std::ios::trunc) << "garbage";
  auto r = RocksKvStore::Open(dir.Path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt) << r.error().ToString();
  EXPECT_NE(r.error().message.find("is corrupt"), std::string::npos);
}

TEST(RocksKvStore, GarbageManifestIsCorrupt) {
  TempDir dir;
  MakeDatabase(dir.Path());
  int manifests = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.Path())) {
    if (entry.path().filename().string().starts_with("MANIFEST-")) {
      std::ofstream(entry.path(), std::ios::trunc) << std::string(200, '\x5a');
      ++manifests;
    }
  }
  ASSERT_GT(manifests, 0);
  auto r = RocksKvStore::Open(dir.Path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt) << r.error().ToString();
}

TEST(RocksKvStore, DamagedTableFileIsReportedNotServed) {
  TempDir dir;
  RocksKvOptions options;
  options.write_buffer_bytes = 64 << 10;
  {
    auto store = OpenOk(dir.Path(), options);
    ASSERT_TRUE(store);
    for (int b = 0; b < 20; ++b) {
      state::WriteBatch batch;
      for (int i = 0; i < 200; ++i) {
        base::Bytes v(100, static_cast<uint8_t>(i));
        batch.Put(B("key-" + std::to_string(b) + "-" + std::to_string(i)), v);
      }
      ASSERT_TRUE(store->Commit(batch));
    }
  }
  int tables = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.Path())) {
    if (entry.path().extension() != ".sst") continue;
    // Flip bytes in the data blocks (the start of the file), keep the footer.
    std::fstream f(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    for (int off = 100; off < 4000; off += 97) {
      f.seekp(off);
      f.put('\xa5');
    }
    ++tables;
  }
  ASSERT_GT(tables, 0) << "the test needs flushed table files";
  auto store = RocksKvStore::Open(dir.Path(), options);
  if (!store) {
    EXPECT_EQ(store.error().code, base::ErrorCode::kCorrupt) << store.error().ToString();
    return;
  }
  auto s = (*store)->Scan({}, {}, [](base::ByteSpan, base::ByteSpan) { return true; });
  ASSERT_FALSE(s.has_value()) << "a damaged table was read without complaint";
  EXPECT_EQ(s.error().code, base::ErrorCode::kCorrupt) << s.error().ToString();
}

}  // namespace
}  // namespace gpunet::storage
