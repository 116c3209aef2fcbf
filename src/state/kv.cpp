#include "state/kv.h"

#include <algorithm>

namespace gpunet::state {

base::Result<std::optional<base::Bytes>> MemoryKvStore::Get(base::ByteSpan key) const {
  auto it = m_data.find(base::Bytes(key.begin(), key.end()));
  if (it == m_data.end()) return std::optional<base::Bytes>{};
  return std::optional<base::Bytes>{it->second};
}

base::Status MemoryKvStore::Scan(base::ByteSpan begin, base::ByteSpan end,
                                 const KvVisitor& visit) const {
  base::Bytes b(begin.begin(), begin.end());
  base::Bytes e(end.begin(), end.end());
  for (auto it = m_data.lower_bound(b); it != m_data.end(); ++it) {
    if (!e.empty() && !(it->first < e)) break;
    if (!visit(it->first, it->second)) break;
  }
  return base::Ok();
}

base::Status MemoryKvStore::Commit(const WriteBatch& batch) {
  for (const auto& [key, value] : batch.Ops()) {
    if (value)
      m_data[key] = *value;
    else
      m_data.erase(key);
  }
  return base::Ok();
}

}  // namespace gpunet::state
