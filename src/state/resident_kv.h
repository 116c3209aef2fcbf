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

#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <array>
#include <memory>
#include <string_view>

#include "base/mutex.h"
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

  // One key and its value in one heap block. A lookup touches the table's
  // control bytes, the slot and that block: three cache misses on a table of
  // millions, where std::unordered_map<Bytes, Bytes> took five (bucket, the node
  // before, the node, the key's bytes, the value's bytes) and cost about a
  // quarter of the engine's CPU under load (docs/build.md, "Hash tables").
  struct Record {
    mutable base::Bytes data;  ///< the key, then the value; only the value changes
    uint32_t key_size = 0;
    base::ByteSpan Key() const { return {data.data(), key_size}; }
    base::ByteSpan Value() const { return base::ByteSpan(data).subspan(key_size); }
  };
  static std::string_view View(base::ByteSpan b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  // Transparent: records are found by a key span, without building a record.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(base::ByteSpan key) const {
      return absl::Hash<std::string_view>{}(View(key));
    }
    size_t operator()(const Record& r) const { return (*this)(r.Key()); }
  };
  struct KeyEq {
    using is_transparent = void;
    static base::ByteSpan K(base::ByteSpan key) { return key; }
    static base::ByteSpan K(const Record& r) { return r.Key(); }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return View(K(a)) == View(K(b));
    }
  };
  struct Shard {
    mutable base::Mutex mutex;
    absl::flat_hash_set<Record, KeyHash, KeyEq> records GUARDED_BY(mutex);
  };
  static constexpr size_t kShards = 64;  // admission threads rarely meet the engine
  Shard& ShardOf(base::ByteSpan key) const;
  // Sets key's value in memory (the durable store is the caller's business).
  void Put(base::ByteSpan key, base::ByteSpan value);

  KvStore* m_durable;
  const base::Bytes m_begin;
  const base::Bytes m_end;
  mutable std::array<Shard, kShards> m_shards;
};

}  // namespace gpunet::state
