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
        base::Bytes k(key.begin(), key.end());
        store->ShardOf(k).values.emplace(std::move(k), base::Bytes(value.begin(), value.end()));
        return true;
      });
  if (!scanned) return base::Wrap(scanned.error(), "loading the application state into memory");
  // Room to grow without rehashing a shard in the middle of a commit.
  for (Shard& shard : store->m_shards) shard.values.reserve(shard.values.size() * 2 + 1024);
  return store;
}

bool ResidentKvStore::Resident(base::ByteSpan key) const {
  return !std::ranges::lexicographical_compare(key, m_begin) &&
         (m_end.empty() || std::ranges::lexicographical_compare(key, m_end));
}

ResidentKvStore::Shard& ResidentKvStore::ShardOf(const base::Bytes& key) const {
  // The high bits: the table inside the shard uses the low ones.
  return m_shards[(BytesHash{}(key) >> 40) % kShards];
}

base::Result<std::optional<base::Bytes>> ResidentKvStore::Get(base::ByteSpan key) const {
  if (!Resident(key)) return m_durable->Get(key);
  const base::Bytes k(key.begin(), key.end());
  Shard& shard = ShardOf(k);
  std::lock_guard lock(shard.mutex);
  auto it = shard.values.find(k);
  if (it == shard.values.end()) return std::optional<base::Bytes>{};
  return std::optional<base::Bytes>{it->second};
}

base::Status ResidentKvStore::Scan(base::ByteSpan begin, base::ByteSpan end,
                                   const KvVisitor& visit) const {
  return m_durable->Scan(begin, end, visit);
}

base::Status ResidentKvStore::Commit(const WriteBatch& batch) {
  GPUNET_TRY(m_durable->Commit(batch));
  for (const auto& [key, value] : batch.Ops()) {
    if (!Resident(key)) continue;
    Shard& shard = ShardOf(key);
    std::lock_guard lock(shard.mutex);
    if (value)
      shard.values.insert_or_assign(key, *value);
    else
      shard.values.erase(key);
  }
  return base::Ok();
}

size_t ResidentKvStore::ResidentKeys() const {
  size_t n = 0;
  for (const Shard& shard : m_shards) {
    std::lock_guard lock(shard.mutex);
    n += shard.values.size();
  }
  return n;
}

}  // namespace gpunet::state
