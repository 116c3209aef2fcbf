// The solo engine (architecture §5.1): one validator that decides blocks alone.
//
// It is a pure decision function over times the caller passes in: no threads, no
// clocks, so it is tested with a fake clock and driven by the node's engine thread.
// Rules: a block when txs are waiting or the application's next deadline is due;
// at most one block per block_interval_ms (measured on block times); block times
// strictly increase. Consensus may not include the ledger (src/LAYERS), so the
// node implements SoloAdaptor over LedgerApp + mempool.
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"

namespace gpunet::consensus {

/// What the solo engine needs from the node.
class SoloAdaptor {
 public:
  virtual ~SoloAdaptor() = default;
  /// True when the mempool holds an executable tx.
  virtual bool HasPendingTxs() = 0;
  /// The application's NextDeadline (consensus ms), nullopt = none.
  virtual std::optional<uint64_t> NextDeadlineMs() = 0;
  /// Time of the last committed block (genesis time before the first).
  virtual uint64_t LastBlockTimeMs() = 0;
  /// Prepare, process, finalize and commit (synced) one block with this time.
  virtual base::Status ProduceAndCommitBlock(uint64_t time_ms) = 0;
};

struct SoloDecision {
  bool produce = false;
  uint64_t block_time_ms = 0;  ///< when produce: the new block's time
  uint64_t wake_at_ms = 0;     ///< when not: decide again at this time
  /// When not: whether a tx arriving before wake_at_ms could make the block
  /// sooner. False while executable txs already wait for the interval to pass:
  /// then more txs change nothing, and waking the caller per tx (thousands a
  /// second under load) would only burn the CPU that checks their signatures.
  bool wake_on_tx = true;
};

class SoloEngine {
 public:
  /// block_interval_ms >= 1.
  explicit SoloEngine(uint64_t block_interval_ms);

  /// The decision at `now_ms`. Idle (nothing pending, no deadline) wakes one
  /// interval later; the caller also re-decides when a tx arrives.
  SoloDecision Decide(uint64_t now_ms, uint64_t last_block_time_ms, bool pending_txs,
                      std::optional<uint64_t> deadline_ms) const;

  /// One step: decide with the adaptor's inputs and produce a block when due.
  /// Returns the decision taken; an adaptor error stops the engine (caller).
  base::Result<SoloDecision> Step(SoloAdaptor& adaptor, uint64_t now_ms) const;

  uint64_t BlockIntervalMs() const { return m_interval_ms; }

 private:
  uint64_t m_interval_ms;
};

}  // namespace gpunet::consensus
