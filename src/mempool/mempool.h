// The mempool: transactions admitted by Application::CheckTx that wait for a block.
//
// Policy (issue 3; limits in base/limits.h):
//  - per-sender nonce queues: a tx whose nonce is ahead of the sender's next nonce
//    waits (up to nonce_gap_max ahead), only the contiguous prefix starting at the
//    next nonce is executable;
//  - block building (Reap) takes executable prefixes in fee order across senders
//    (highest fee first, earlier arrival on ties), never a tx before its
//    predecessor;
//  - replace-by-fee: the same sender+nonce replaces the pending tx only with a fee
//    at least rbf_bump_percent higher;
//  - caps: total txs and bytes (when full the lowest-fee queue tail of another
//    sender is evicted, but only for a strictly higher fee) and txs per sender;
//  - expiry by timeout_height, and Update() after each committed block removes
//    the included txs and re-checks the rest against the new state
//    (Application::RecheckTx: only the stateful checks, on the decoded tx kept).
// Every rejection carries a TxCode (codec/tx_result.h) and a message saying what to
// do. Thread-safe: one mutex; CheckTx (signature verification) runs outside it.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "base/bytes.h"
#include "base/limits.h"
#include "base/mutex.h"
#include "base/result.h"
#include "codec/tx_result.h"
#include "codec/types.h"
#include "ledger/application.h"

namespace gpunet::mempool {

struct MempoolOptions {
  size_t txs_max = base::limits::kMempoolTxsMax;
  size_t bytes_max = base::limits::kMempoolBytesMax;
  size_t sender_txs_max = base::limits::kMempoolSenderTxsMax;
  uint64_t nonce_gap_max = base::limits::kMempoolNonceGapMax;
  uint64_t rbf_bump_percent = base::limits::kMempoolRbfBumpPercent;
};

/// A tx that left the pool without being included, and why.
struct Removed {
  base::Hash32 tx_hash;
  codec::TxCode code = codec::TxCode::kOk;
  std::string message;
};

/// Outcome of Add. code kOk: pending.
struct AddResult {
  codec::TxCode code = codec::TxCode::kOk;
  std::string message;
  base::Hash32 tx_hash;  ///< zero when the bytes did not decode
  ledger::CheckTxResponse check;
  bool replaced = false;         ///< it replaced a pending tx of the same sender+nonce
  std::vector<Removed> evicted;  ///< txs pushed out (replaced one included)
  bool Ok() const { return code == codec::TxCode::kOk; }
};

struct MempoolStats {
  size_t txs = 0;
  size_t bytes = 0;
  size_t senders = 0;
};

class Mempool {
 public:
  /// `app` must outlive the pool.
  explicit Mempool(ledger::Application& app, MempoolOptions options = {});

  /// Admits a tx: CheckTx(kNew), then the pool's policy.
  AddResult Add(base::ByteSpan tx_bytes) EXCLUDES(m_mutex);

  /// Candidate txs for the next block in priority order, at most max_txs,
  /// max_bytes in total and max_gas in gas limits (0 = no limit).
  std::vector<base::Bytes> Reap(uint64_t max_bytes, uint64_t max_txs, uint64_t max_gas = 0) const
      EXCLUDES(m_mutex);
  /// The same txs as Reap, as CheckTx returned them (for
  /// PrepareProposalRequest::checked_txs): no copy of the bytes, no decoding again.
  std::vector<std::shared_ptr<const state::CheckedTx>> ReapChecked(uint64_t max_bytes,
                                                                   uint64_t max_txs,
                                                                   uint64_t max_gas = 0) const
      EXCLUDES(m_mutex);
  /// True when at least one tx is executable (its nonce is its sender's next).
  bool HasExecutable() const EXCLUDES(m_mutex);

  /// After block `height` committed: removes `included` hashes, expires txs whose
  /// timeout_height < height + 1, re-checks every other tx against the new state.
  /// Returns what was dropped (not the included ones).
  std::vector<Removed> Update(uint64_t height, const std::vector<base::Hash32>& included)
      EXCLUDES(m_mutex);
  /// The same after committed `block`, re-checking only the txs of the block's
  /// senders. Sound because a pending tx's validity depends only on its sender's
  /// account (nonce, balance for the fee), and only the sender's own txs move its
  /// nonce or lower its balance; every other pending tx stays as valid as it was
  /// (expiry is still applied to all). PrepareProposal checks every tx again anyway,
  /// so this bounds pool hygiene work by the block size, not by the pool size.
  std::vector<Removed> Update(const codec::Block& block) EXCLUDES(m_mutex);
  /// The same with the block's receipts (FinalizeBlock's; receipts[i] is
  /// block.txs[i]'s), whose tx hashes save encoding and hashing every tx again.
  std::vector<Removed> Update(const codec::Block& block, std::span<const codec::Receipt> receipts)
      EXCLUDES(m_mutex);
  /// Drops one tx (a proposer skipped it as invalid). False when it was not pending.
  bool Remove(const base::Hash32& tx_hash) EXCLUDES(m_mutex);

  bool Contains(const base::Hash32& tx_hash) const EXCLUDES(m_mutex);
  /// The first nonce at or after `from_nonce` for which `sender` has no pending tx.
  /// With `from_nonce` the account's next nonce, a tx of `sender` with a nonce up to
  /// this one can execute once the pending ones have; a higher one waits for a gap
  /// to be filled (the RPC refuses to hold a wait=committed request for it).
  uint64_t NextFreeNonce(const codec::Address& sender, uint64_t from_nonce) const EXCLUDES(m_mutex);
  /// NextFreeNonce from the account's next nonce as `account_nonce` reads it from
  /// the committed state, outside the pool's lock. A block that commits (and
  /// leaves the pool) between that read and the pool's would make the pool count
  /// from a nonce it no longer holds and report a gap that is not there, so the
  /// account is read again after the pool, and both again until they agree (a
  /// few times; a node commits a block per interval, not per microsecond).
  base::Result<uint64_t> NextFreeNonce(
      const codec::Address& sender,
      const std::function<base::Result<uint64_t>()>& account_nonce) const EXCLUDES(m_mutex);
  MempoolStats Stats() const EXCLUDES(m_mutex);
  /// Stats().txs without taking the lock: admission sets a gauge from it for
  /// every tx, and the lock is what admission threads and the engine contend on.
  size_t Txs() const { return m_txs.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    base::Bytes bytes;
    std::shared_ptr<const state::CheckedTx> checked;  // CheckTx's, never null
    base::Hash32 hash;
    uint64_t nonce = 0;
    uint64_t fee_ugpn = 0;
    uint64_t timeout_height = 0;
    uint64_t seq = 0;  // arrival order, the tie-break
  };
  struct Sender {
    uint64_t next_nonce = 0;          // committed state, as of the last CheckTx seen
    std::map<uint64_t, Entry> queue;  // by nonce
  };

  // Update's body: re-checks every sender's txs, or only the senders of `block`'s txs
  // (`included` holds their hashes, in block order) when given one.
  std::vector<Removed> UpdateImpl(uint64_t height, const std::vector<base::Hash32>& included,
                                  const codec::Block* block) EXCLUDES(m_mutex);
  // Reap's walk: calls take(entry) for each tx taken, in block order.
  template <class Take>
  void ReapEach(uint64_t max_bytes, uint64_t max_txs, uint64_t max_gas, Take&& take) const
      EXCLUDES(m_mutex);
  // Removes one entry (caller holds the lock).
  void EraseLocked(const codec::Address& sender, uint64_t nonce) REQUIRES(m_mutex);
  // Drops a leaving entry from the indexes and the counts, not from its queue.
  void UnindexLocked(const codec::Address& sender, const Entry& e) REQUIRES(m_mutex);

  // Where a pending tx sits: its sender's queue, at its nonce.
  struct Where {
    codec::Address sender;
    uint64_t nonce = 0;
  };

  ledger::Application& m_app;
  const MempoolOptions m_options;

  mutable base::Mutex m_mutex;
  // Hashed, not ordered: every walk over the senders orders what it finds by fee
  // and arrival (seq, unique), so the table's order never shows.
  absl::flat_hash_map<codec::Address, Sender> m_senders GUARDED_BY(m_mutex);
  // Only probed, never iterated: a flat table, not a tree with a cache miss per level.
  absl::flat_hash_map<base::Hash32, Where> m_by_hash GUARDED_BY(m_mutex);
  // The txs with a timeout_height, soonest first: expiry after a block reads only
  // the ones that expire instead of walking the pool.
  std::set<std::tuple<uint64_t, codec::Address, uint64_t>> m_by_timeout GUARDED_BY(m_mutex);
  std::atomic<size_t> m_txs{0};  // changed under m_mutex; Txs() reads it without
  size_t m_bytes GUARDED_BY(m_mutex) = 0;
  uint64_t m_seq GUARDED_BY(m_mutex) = 0;
  uint64_t m_height GUARDED_BY(m_mutex) = 0;  // last committed height seen by Update
};

}  // namespace gpunet::mempool
