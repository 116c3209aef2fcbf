// The storage interface the state machine reads and writes through. `state` owns
// it; `storage` implements it on RocksDB; tests and the simulator use the
// in-memory implementation here. Keys are raw bytes ordered byte-wise; the key
// space (which prefix holds what) is documented in state/keyspace.h.
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::state {

/// Byte-wise order of keys (std::less<Bytes>'s), transparent: a map keyed by Bytes
/// is searched with a ByteSpan, without copying the key first.
struct BytesLess {
  using is_transparent = void;
  bool operator()(base::ByteSpan a, base::ByteSpan b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
  }
};

/// Keys to new values, nullopt for a delete, in key order.
using KeyOps = std::map<base::Bytes, std::optional<base::Bytes>, BytesLess>;

/// Changes committed together: a key maps to a new value, or to nullopt (delete).
/// Ordered, so applying it is deterministic.
class WriteBatch {
 public:
  WriteBatch() = default;
  /// A batch of exactly these operations (nullopt: delete).
  explicit WriteBatch(KeyOps ops) : m_ops(std::move(ops)) {}
  void Put(base::Bytes key, base::Bytes value) { m_ops[std::move(key)] = std::move(value); }
  void Delete(base::Bytes key) { m_ops[std::move(key)] = std::nullopt; }
  const KeyOps& Ops() const { return m_ops; }
  bool Empty() const { return m_ops.empty(); }
  size_t Size() const { return m_ops.size(); }
  void Clear() { m_ops.clear(); }

 private:
  KeyOps m_ops;
};

/// Visitor for Scan: return false to stop.
using KvVisitor = std::function<bool(base::ByteSpan key, base::ByteSpan value)>;

class KvStore {
 public:
  virtual ~KvStore() = default;
  /// The committed value of key, nullopt when absent.
  virtual base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const = 0;
  /// Visits committed keys in [begin, end) in byte order; an empty end means "to the end".
  virtual base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                            const KvVisitor& visit) const = 0;
  /// Applies every change of the batch atomically and durably: when this returns
  /// Ok the batch survives a crash or power loss; when the process dies inside it,
  /// either all of the batch or none of it is there after restart.
  virtual base::Status Commit(const WriteBatch& batch) = 0;
};

/// A KvStore in memory: for unit tests and the simulator.
class MemoryKvStore final : public KvStore {
 public:
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override;
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const KvVisitor& visit) const override;
  base::Status Commit(const WriteBatch& batch) override;
  size_t Size() const { return m_data.size(); }

 private:
  std::map<base::Bytes, base::Bytes, std::less<>> m_data;
};

}  // namespace gpunet::state
