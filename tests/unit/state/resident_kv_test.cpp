// ResidentKvStore: keys in its range are served from memory, loaded at Open and
// written through on Commit only after the durable store accepted the batch;
// everything else, and every Scan, goes to the durable store.
#include <gtest/gtest.h>

#include <thread>

#include "state/resident_kv.h"

namespace gpunet::state {
namespace {

base::Bytes K(uint8_t table, uint8_t b) {
  return base::Bytes{table, b};
}
base::Bytes V(uint8_t b) {
  return base::Bytes{b, b};
}
std::optional<base::Bytes> Read(const KvStore& kv, const base::Bytes& key) {
  auto value = kv.Get(key);
  EXPECT_TRUE(value.has_value());
  return value ? *value : std::nullopt;
}

/// A durable store whose next commit can be made to fail, as a full disk would.
class FailingKvStore final : public KvStore {
 public:
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    return m_kv.Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const KvVisitor& visit) const override {
    return m_kv.Scan(begin, end, visit);
  }
  base::Status Commit(const WriteBatch& batch) override {
    if (fail_next) {
      fail_next = false;
      return base::Fail(base::ErrorCode::kIo, "no space left on device");
    }
    return m_kv.Commit(batch);
  }
  bool fail_next = false;
  MemoryKvStore m_kv;
};

TEST(ResidentKv, OpenLoadsTheRangeAndServesItFromMemory) {
  MemoryKvStore durable;
  WriteBatch batch;
  batch.Put(K(0x00, 1), V(1));  // below the range
  batch.Put(K(0x01, 1), V(2));
  batch.Put(K(0x01, 2), V(3));
  batch.Put(K(0x02, 1), V(4));  // at its end: outside
  ASSERT_TRUE(durable.Commit(batch));
  auto resident = ResidentKvStore::Open(durable, base::Bytes{0x01}, base::Bytes{0x02});
  ASSERT_TRUE(resident.has_value()) << resident.error().ToString();
  EXPECT_EQ((*resident)->ResidentKeys(), 2u);
  EXPECT_EQ(Read(**resident, K(0x01, 1)), V(2));
  EXPECT_EQ(Read(**resident, K(0x01, 9)), std::nullopt);

  // Written behind its back (which the contract forbids), the durable store
  // changes: keys in the range still read the copy in memory, keys outside it
  // read the durable store. This is how the test knows where a read went.
  WriteBatch behind;
  behind.Put(K(0x01, 1), V(7));
  behind.Put(K(0x00, 1), V(8));
  behind.Put(K(0x02, 1), V(9));
  ASSERT_TRUE(durable.Commit(behind));
  EXPECT_EQ(Read(**resident, K(0x01, 1)), V(2));
  EXPECT_EQ(Read(**resident, K(0x00, 1)), V(8));
  EXPECT_EQ(Read(**resident, K(0x02, 1)), V(9));
}

TEST(ResidentKv, CommitWritesThroughPutsAndDeletes) {
  MemoryKvStore durable;
  auto resident = ResidentKvStore::Open(durable, base::Bytes{0x01}, base::Bytes{});
  ASSERT_TRUE(resident.has_value());
  WriteBatch batch;
  batch.Put(K(0x01, 1), V(1));
  batch.Put(K(0x05, 1), V(2));  // an empty end means "to the end of the key space"
  batch.Put(K(0x00, 1), V(3));
  ASSERT_TRUE((*resident)->Commit(batch));
  EXPECT_EQ((*resident)->ResidentKeys(), 2u);
  EXPECT_EQ(Read(durable, K(0x01, 1)), V(1));
  EXPECT_EQ(Read(**resident, K(0x05, 1)), V(2));
  EXPECT_EQ(Read(**resident, K(0x00, 1)), V(3));

  WriteBatch second;
  second.Delete(K(0x01, 1));
  second.Put(K(0x05, 1), V(4));
  ASSERT_TRUE((*resident)->Commit(second));
  EXPECT_EQ(Read(**resident, K(0x01, 1)), std::nullopt);
  EXPECT_EQ(Read(durable, K(0x01, 1)), std::nullopt);
  EXPECT_EQ(Read(**resident, K(0x05, 1)), V(4));
  EXPECT_EQ((*resident)->ResidentKeys(), 1u);

  // Scan reads the durable store, in key order.
  std::vector<base::Bytes> keys;
  ASSERT_TRUE(
      (*resident)->Scan(base::Bytes{}, base::Bytes{}, [&](base::ByteSpan k, base::ByteSpan) {
        keys.emplace_back(k.begin(), k.end());
        return true;
      }));
  EXPECT_EQ(keys, (std::vector<base::Bytes>{K(0x00, 1), K(0x05, 1)}));
}

TEST(ResidentKv, AFailedDurableCommitChangesNothingInMemory) {
  FailingKvStore durable;
  auto resident = ResidentKvStore::Open(durable, base::Bytes{0x01}, base::Bytes{0x02});
  ASSERT_TRUE(resident.has_value());
  WriteBatch batch;
  batch.Put(K(0x01, 1), V(1));
  ASSERT_TRUE((*resident)->Commit(batch));

  WriteBatch lost;
  lost.Put(K(0x01, 1), V(2));
  lost.Put(K(0x01, 2), V(3));
  durable.fail_next = true;
  auto committed = (*resident)->Commit(lost);
  ASSERT_FALSE(committed.has_value());
  EXPECT_NE(committed.error().message.find("no space left"), std::string::npos);
  EXPECT_EQ(Read(**resident, K(0x01, 1)), V(1));
  EXPECT_EQ(Read(**resident, K(0x01, 2)), std::nullopt);
}

TEST(ResidentKv, ReadersOnOtherThreadsSeeEachKeyBeforeOrAfterACommit) {
  MemoryKvStore durable;
  WriteBatch genesis;
  for (int i = 0; i < 256; ++i) genesis.Put(K(0x01, static_cast<uint8_t>(i)), V(0));
  ASSERT_TRUE(durable.Commit(genesis));
  auto resident = ResidentKvStore::Open(durable, base::Bytes{0x01}, base::Bytes{0x02});
  ASSERT_TRUE(resident.has_value());
  // Readers touch only resident keys, so they never reach the (single-threaded)
  // MemoryKvStore while the commits below write it.
  std::atomic<bool> stop = false;
  std::atomic<int> bad = 0;
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      uint8_t last[256] = {};
      while (!stop) {
        for (int i = 0; i < 256; ++i) {
          auto v = (*resident)->Get(K(0x01, static_cast<uint8_t>(i)));
          // Values only grow, and both bytes always come from one commit.
          if (!v || !*v || (**v)[0] != (**v)[1] || (**v)[0] < last[i]) ++bad;
          if (v && *v) last[i] = (**v)[0];
        }
      }
    });
  for (int round = 1; round <= 100; ++round) {
    WriteBatch batch;
    for (int i = 0; i < 256; ++i) batch.Put(K(0x01, static_cast<uint8_t>(i)), V(round));
    ASSERT_TRUE((*resident)->Commit(batch));
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(Read(**resident, K(0x01, 7)), V(100));
}

}  // namespace
}  // namespace gpunet::state
