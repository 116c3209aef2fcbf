// StateDb: the block-execution overlay over the committed KvStore.
//
// Reads see this block's pending writes first, then the committed store. Writes
// stay in memory until the block is committed: Changes() is the state part of the
// block's WriteBatch and, hashed, the state tree's update (state/smt.h). A
// checkpoint marks a point to roll back to: the pipeline takes one before a tx's
// messages so a failing message undoes all of them while the fee and nonce stay.
//
// Gas (state/gas.h): while a GasMeter is attached, every Get, every entry a Scan
// visits, every Put and every Delete is charged to it here, at this interface, so
// no caller can reach the state without paying. Once the meter is exhausted, Get and
// Scan fail (kLimitExceeded, "out of gas") and Put/Delete still apply but leave the
// meter exhausted: the pipeline checks it after each message and rolls back.
//
// Deterministic: pending writes live in an ordered map; nothing depends on
// insertion history. Not thread-safe (one block executes on one thread).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"
#include "state/gas.h"
#include "state/kv.h"

namespace gpunet::state {

class StateDb {
 public:
  explicit StateDb(const KvStore& committed) : m_committed(&committed) {}

  /// The value of key as this block sees it (pending write, else committed).
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const;
  /// Visits keys in [begin, end) in byte order as this block sees them: pending
  /// writes merged over the committed store (deleted keys skipped). An empty end
  /// means "to the end". Return false from the visitor to stop.
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end, const KvVisitor& visit) const;
  void Put(base::Bytes key, base::Bytes value);
  void Delete(base::Bytes key);

  /// Opens a point to roll back to. Checkpoints nest. Only writes made while one is
  /// open are journaled: a block's fees and sends outside any checkpoint cost no
  /// undo record (a copy of the key and the old value each).
  size_t Checkpoint();
  /// Undoes every Put/Delete made since the checkpoint. It stays open; checkpoints
  /// taken after it are closed.
  void RevertTo(size_t checkpoint);
  /// Closes the checkpoint and every one taken after it, keeping the writes. With
  /// none open any more, the journal is dropped.
  void Release(size_t checkpoint);

  /// Every key written in this block with its final value (nullopt = deleted),
  /// ordered by key. Keys written and then restored still appear (with the value
  /// they hold now), which is harmless: committing them writes the same bytes.
  const KeyOps& Pending() const { return m_pending; }
  /// A key this block changed: its value in the committed store (before the block)
  /// and as the block leaves it (nullopt: absent).
  using ChangeVisitor =
      std::function<bool(base::ByteSpan key, const std::optional<base::Bytes>& before,
                         const std::optional<base::Bytes>& after)>;
  /// Visits every key whose value this block changed, ordered by key, with its old
  /// value read from the committed store (one Get per pending key, no copy of the
  /// state). Keys written back to the value they had are skipped. Charges no gas
  /// and counts no operation: the ledger's per-block invariant check reads these
  /// after execution (architecture §2.9). Return false from the visitor to stop.
  base::Status ForEachChange(const ChangeVisitor& visit) const;
  /// Pending() as a WriteBatch, ready to be merged into the block's commit batch.
  WriteBatch Changes() const;
  /// Changes() without the copy: the pending writes move into the batch and this
  /// overlay is left empty (as after Clear()).
  WriteBatch TakeChanges();
  /// Forgets every pending write (the block was dropped or committed).
  void Clear();

  /// Charges every later operation to `meter` (not owned; nullptr detaches).
  void AttachMeter(GasMeter* meter) { m_meter = meter; }
  GasMeter* Meter() const { return m_meter; }
  /// Operations made with no meter attached since construction: block execution
  /// attaches one for every tx and for the end-of-block work, and the coverage test
  /// requires this to stay 0 over a block.
  uint64_t UnmeteredOps() const { return m_unmetered_ops; }

  // ---- typed accessors (state/keyspace.h layout) ----

  /// The account at address; a zero account (balance 0, nonce 0) when none is
  /// stored. kCorrupt when the stored bytes do not decode.
  base::Result<codec::Account> GetAccount(const codec::Address& address) const;
  /// Stores the account. Accounts are never deleted (architecture §2.3): a zeroed account
  /// keeps its nonce so old transactions cannot be replayed.
  void PutAccount(const codec::Address& address, const codec::Account& account);

 private:
  struct Undo {
    base::Bytes key;
    std::optional<std::optional<base::Bytes>> previous;  ///< nullopt: key was not pending
  };
  void Record(const base::Bytes& key);
  // Charges a Get of `value` (nullopt: absent) under `key`; false when out of gas.
  bool MeterGet(base::ByteSpan key, const std::optional<base::Bytes>& value,
                GasMeter::Source source) const;

  const KvStore* m_committed;
  GasMeter* m_meter = nullptr;
  mutable uint64_t m_unmetered_ops = 0;
  KeyOps m_pending;
  std::vector<Undo> m_journal;
  std::vector<size_t> m_checkpoints;  ///< open ones, journal positions, ascending
};

/// Attaches a meter to a StateDb for a scope, and puts back what was attached before.
class MeterScope {
 public:
  MeterScope(StateDb& db, GasMeter* meter) : m_db(&db), m_previous(db.Meter()) {
    db.AttachMeter(meter);
  }
  ~MeterScope() { m_db->AttachMeter(m_previous); }
  MeterScope(const MeterScope&) = delete;
  MeterScope& operator=(const MeterScope&) = delete;

 private:
  StateDb* m_db;
  GasMeter* m_previous;
};

/// The error Get and Scan return once the attached meter is exhausted.
base::Error OutOfGasError();

}  // namespace gpunet::state
