// ResidentKvStore: the committed application state held in memory, in front of
// the durable KvStore that stays its only source of truth.
//
// Every transfer reads its sender at admission and its sender and recipient at
// execution; recipients are random over millions of accounts, so a read-through
// cache would mostly miss, and a RocksDB point read costs microseconds (memtable,
// bloom filters, index and data blocks). The node already keeps the whole state
// tree in memory (state/smt.h), so it keeps the state's values too: they are read
// once at open and written through on every commit, after the durable write.
//
// Keys inside [begin, end) are served from memory; everything else (blocks,
// receipts, meta) and every Scan go to the durable store. Get may run on any
// thread while one thread commits: the values sit in locked shards, and a reader
// sees each key's value before or after a commit, as it would from RocksDB.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "state/kv.h"

namespace gpunet::state {

class ResidentKvStore final : public KvStore {
 public:
  /// Reads every key of `durable` in [begin, end) into memory. `durable` is not
  /// owned and must outlive this store; after Open, write to it only through
  /// this store, or the copy in memory goes stale.
  static base::Result<std::unique_ptr<ResidentKvStore>> Open(KvStore& durable, base::Bytes begin,
                                                             base::Bytes end);

  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override;
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const KvVisitor& visit) const override;
  /// Commits to the durable store; only when that succeeded are the batch's
  /// resident keys updated, so memory never holds what the disk may lose.
  base::Status Commit(const WriteBatch& batch) override;

  /// How many keys are held in memory.
  size_t ResidentKeys() const;

 private:
  ResidentKvStore(KvStore& durable, base::Bytes begin, base::Bytes end);
  bool Resident(base::ByteSpan key) const;

  // Not noexcept on purpose: libstdc++ then stores each node's hash, so a lookup
  // walking a bucket compares stored hashes instead of re-hashing every key it
  // passes (each a cache miss on a table of millions).
  struct BytesHash {
    size_t operator()(const base::Bytes& b) const {
      return std::hash<std::string_view>{}(
          std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<base::Bytes, base::Bytes, BytesHash> values;
  };
  static constexpr size_t kShards = 64;  // admission threads rarely meet the engine
  Shard& ShardOf(const base::Bytes& key) const;

  KvStore* m_durable;
  const base::Bytes m_begin;
  const base::Bytes m_end;
  mutable std::array<Shard, kShards> m_shards;
};

}  // namespace gpunet::state
