#include "node/solo_adaptor.h"

#include <chrono>
#include <utility>

#include "mempool/mempool.h"

namespace gpunet::node {

bool SoloLedgerAdaptor::HasPendingTxs() {
  return m_pool.HasExecutable();
}

std::optional<uint64_t> SoloLedgerAdaptor::NextDeadlineMs() {
  return m_app.NextDeadline();
}

uint64_t SoloLedgerAdaptor::LastBlockTimeMs() {
  return m_app.Info().last_block_time_ms;
}

base::Status SoloLedgerAdaptor::ProduceAndCommitBlock(uint64_t time_ms) {
  // A duration for the metric and the log, in fractions of a millisecond: read from
  // steady_clock itself, not the node's clock (whole milliseconds; a test's
  // ManualClock would make every commit take 0 s).
  const auto started = std::chrono::steady_clock::now();
  const ledger::AppInfo info = m_app.Info();
  ledger::PrepareProposalRequest prep;
  prep.height = info.last_height + 1;
  prep.time_ms = time_ms;
  prep.proposer = m_proposer;
  prep.checked_txs =
      m_pool.ReapChecked(info.consensus_params.block_bytes_max, info.consensus_params.block_txs_max,
                         info.consensus_params.block_gas_max);
  GPUNET_TRY_ASSIGN(auto prepared, m_app.PrepareProposal(prep));
  for (const auto& s : prepared.skipped) {
    if (s.code == codec::TxCode::kOk) continue;  // valid, over the block limits: next block
    m_pool.Remove(s.tx_hash);
    m_listener.OnTxDropped(s.tx_hash, s.code, "dropped before inclusion: " + s.message);
  }
  // The block moves from request to request: thousands of txs are not copied.
  ledger::ProcessProposalRequest process{std::move(prepared.block), {}, {}};
  GPUNET_TRY_ASSIGN(const auto processed, m_app.ProcessProposal(process));
  if (!processed.accept)
    return base::Fail(base::ErrorCode::kInternal, "own proposal rejected: " + processed.reason);
  ledger::FinalizeBlockRequest finalize{std::move(process.block), {}, {}};
  GPUNET_TRY_ASSIGN(const auto finalized, m_app.FinalizeBlock(finalize));
  const codec::Block& block = finalize.block;
  GPUNET_TRY_ASSIGN(const auto committed, m_app.Commit());  // synced: from here on durable
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  for (const auto& d : m_pool.Update(block, finalized.receipts))
    m_listener.OnTxDropped(d.tx_hash, d.code, d.message);
  m_listener.OnBlockCommitted(block, finalized, committed, seconds);
  return base::Ok();
}

}  // namespace gpunet::node
