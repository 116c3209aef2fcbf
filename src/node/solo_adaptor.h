// The solo engine's adaptor (consensus/solo.h): it reaches the ledger through its
// Application interface and the mempool, and reports what each block did to a
// BlockListener (the node's RPC side: waiters, websocket topics, metrics). It holds
// nothing of the node itself.
#pragma once

#include <optional>
#include <string>

#include "codec/types.h"
#include "consensus/solo.h"
#include "ledger/application.h"

namespace gpunet::mempool {
class Mempool;
}  // namespace gpunet::mempool

namespace gpunet::node {

/// What the engine tells the rest of the node, on the engine thread.
class BlockListener {
 public:
  virtual ~BlockListener() = default;
  /// A tx left the mempool without being included (refused before inclusion, or
  /// made invalid by a committed block).
  virtual void OnTxDropped(const base::Hash32& tx_hash, codec::TxCode code,
                           const std::string& message) = 0;
  /// A block is durably committed; `seconds` it took to build, execute and commit
  /// (0 when not measured).
  virtual void OnBlockCommitted(const codec::Block& block,
                                const ledger::FinalizeBlockResponse& finalized,
                                const ledger::CommitResponse& committed, double seconds) = 0;
};

class SoloLedgerAdaptor final : public consensus::SoloAdaptor {
 public:
  /// All three must outlive the adaptor; `proposer` signs nothing, it is the
  /// address blocks name.
  SoloLedgerAdaptor(ledger::Application& app, mempool::Mempool& pool, codec::Address proposer,
                    BlockListener& listener)
      : m_app(app), m_pool(pool), m_proposer(proposer), m_listener(listener) {}

  bool HasPendingTxs() override;
  std::optional<uint64_t> NextDeadlineMs() override;
  uint64_t LastBlockTimeMs() override;
  /// Reaps the mempool, prepares, processes, finalizes and commits (synced) one
  /// block, then updates the mempool; the listener hears of each dropped tx and of
  /// the block.
  base::Status ProduceAndCommitBlock(uint64_t time_ms) override;

 private:
  ledger::Application& m_app;
  mempool::Mempool& m_pool;
  const codec::Address m_proposer;
  BlockListener& m_listener;
};

}  // namespace gpunet::node
