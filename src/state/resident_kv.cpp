#include "state/resident_kv.h"

#include <algorithm>

namespace gpunet::state {

ResidentKvStore::ResidentKvStore(KvStore& durable, base::Bytes begin, base::Bytes end)
    : m_durable(&durable), m_begin(std::move(begin)), m_end(std::move(end)) {}

base::Result<std::unique_ptr<ResidentKvStore>> ResidentKvStore::Open(KvStore& durable,
                                                                     base::Bytes begin,
                                                                     base::Bytes end) {
  std::unique_ptr<ResidentKvStore> store(
      new ResidentKvStore(durable, std::move(begin), std::move(end)));
  auto scanned =
      durable.Scan(store->m_begin, store->m_end, [&](base::ByteSpan key, base::ByteSpan value) {
        store->Put(key, value);
        return true;
      });
  if (!scanned) return base::Wrap(scanned.error(), "loading the application state into memory");
  // Room to grow without rehashing a shard in the middle of a commit.
  for (Shard& shard : store->m_shards) {
    base::MutexLock lock(shard.mutex);  // no other thread has the store yet
    shard.records.reserve(shard.records.size() * 2 + 1024);
  }
  return store;
}

bool ResidentKvStore::Resident(base::ByteSpan key) const {
  return !std::ranges::lexicographical_compare(key, m_begin) &&
         (m_end.empty() || std::ranges::lexicographical_compare(key, m_end));
}

ResidentKvStore::Shard& ResidentKvStore::ShardOf(base::ByteSpan key) const {
  // The high bits: the table inside the shard uses the low ones.
  return m_shards[(KeyHash{}(key) >> 40) % kShards];
}

void ResidentKvStore::Put(base::ByteSpan key, base::ByteSpan value) {
  Shard& shard = ShardOf(key);
  base::MutexLock lock(shard.mutex);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) {
    Record r;
    r.data.reserve(key.size() + value.size());
    r.data.assign(key.begin(), key.end());
    r.data.insert(r.data.end(), value.begin(), value.end());
    r.key_size = static_cast<uint32_t>(key.size());
    shard.records.insert(std::move(r));
    return;
  }
  // The key stays, so the record's place in the table does too.
  it->data.resize(key.size());
  it->data.insert(it->data.end(), value.begin(), value.end());
}

base::Result<std::optional<base::Bytes>> ResidentKvStore::Get(base::ByteSpan key) const {
  if (!Resident(key)) return m_durable->Get(key);
  Shard& shard = ShardOf(key);
  base::MutexLock lock(shard.mutex);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) return std::optional<base::Bytes>{};
  const base::ByteSpan value = it->Value();
  return std::optional<base::Bytes>{std::in_place, value.begin(), value.end()};
}

base::Status ResidentKvStore::Scan(base::ByteSpan begin, base::ByteSpan end,
                                   const KvVisitor& visit) const {
  return m_durable->Scan(begin, end, visit);
}

base::Status ResidentKvStore::Commit(const WriteBatch& batch) {
  GPUNET_TRY(m_durable->Commit(batch));
  for (const auto& [key, value] : batch.Ops()) {
    if (!Resident(key)) continue;
    if (value) {
      Put(key, *value);
      continue;
    }
    Shard& shard = ShardOf(key);
    base::MutexLock lock(shard.mutex);
    if (auto it = shard.records.find(base::ByteSpan(key)); it != shard.records.end())
      shard.records.erase(it);
  }
  return base::Ok();
}

size_t ResidentKvStore::ResidentKeys() const {
  size_t n = 0;
  for (const Shard& shard : m_shards) {
    base::MutexLock lock(shard.mutex);
    n += shard.records.size();
  }
  return n;
}

}  // namespace gpunet::state
