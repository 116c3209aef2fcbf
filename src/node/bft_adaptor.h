// The BFT engine's application (consensus::BftApplication) over the ledger's
// ABCI-shaped interface (ledger::Application), architecture §5.2 / issue 5 item 2.
//
// Consensus may not include the ledger (src/LAYERS), so this adaptor in node turns
// the core's calls into ledger calls and fills what the solo engine leaves empty:
//   * last-commit info (ledger::CommitInfo) from the block's certificate of the
//     previous height and the set that signed it;
//   * misbehaviour (ledger::Misbehavior) from the evidence the block carries, after
//     verifying every item (codec::VerifyEvidence) — a block with bad evidence is
//     rejected before the ledger executes it;
//   * the commit certificate of each decided block, stored under
//     keyspace::CommitKey(height) (table 0x15) so a restarted node knows the
//     last_commit its next proposal must carry.
//
// Order on commit: FinalizeBlock (execute, nothing durable), store the certificate
// (synced), then ledger Commit (synced). A crash between the two writes leaves a
// certificate for a height the ledger has not committed; that is harmless because
// a certificate proves the only block that height can ever decide, and it is
// overwritten when the height is committed again after the restart.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "codec/types.h"
#include "consensus/bft.h"
#include "ledger/application.h"
#include "mempool/mempool.h"
#include "state/kv.h"

namespace gpunet::node {

/// Who signed the previous block, per member of the set that signed it (in the
/// set's canonical order). Empty for the empty Commit{} of height 1.
ledger::CommitInfo CommitInfoOf(const codec::Commit& last_commit,
                                const codec::ValidatorSet& last_validators);

/// The ledger's view of verified evidence: one entry per item, with the offender's
/// power in `validators` (the set at the evidence height) and the set's total.
std::vector<ledger::Misbehavior> MisbehaviorOf(const std::vector<codec::Evidence>& evidence,
                                               const codec::ValidatorSet& validators);

/// The certificate stored for `height`; nullopt when none is.
base::Result<std::optional<codec::Commit>> ReadCommit(const state::KvStore& kv, uint64_t height);

/// The validator set in force at `height`: the last one stored at or below it
/// (keyspace::ValidatorSetKey is written where the set changes).
base::Result<codec::ValidatorSet> ReadValidatorSet(const state::KvStore& kv, uint64_t height);

/// Where the core starts after a (re)start: from the ledger's last committed height,
/// its block, its stored certificate and the validator sets. kCorrupt when a
/// committed height has no certificate (the store was not written by this engine:
/// a solo chain cannot be continued under bft).
base::Result<consensus::BftStartState> LoadBftStartState(const ledger::Application& app,
                                                         const state::KvStore& kv);

/// What the node learns once a block is durable.
struct BftCommitted {
  const codec::Block& block;
  const codec::Commit& commit;
  const ledger::FinalizeBlockResponse& finalized;
  const ledger::CommitResponse& committed;
  /// Mempool entries dropped by the post-block recheck.
  const std::vector<mempool::Removed>& dropped;
};

class LedgerBftAdaptor final : public consensus::BftApplication {
 public:
  /// `app` and `kv` (the store `app` writes to) must outlive the adaptor. `pool`
  /// (optional) supplies the proposer's candidate txs and is updated after every
  /// committed block. `evidence_max_age_heights` must equal the core's setting.
  LedgerBftAdaptor(ledger::Application& app, state::KvStore& kv, std::string chain_id,
                   uint64_t evidence_max_age_heights, mempool::Mempool* pool = nullptr);

  base::Result<codec::Block> PrepareProposal(const consensus::BftProposalRequest& request) override;
  base::Result<consensus::BftVerdict> ProcessProposal(
      const codec::Block& block, const consensus::BftBlockContext& context) override;
  base::Status FinalizeAndCommit(const codec::Block& block, const codec::Commit& commit,
                                 const consensus::BftBlockContext& context) override;
  base::Result<codec::ValidatorSet> ValidatorSetAt(uint64_t height) override;

  /// Called after every durable block (publishing, RPC waiters). Optional.
  void SetOnCommitted(std::function<void(const BftCommitted&)> on_committed) {
    m_on_committed = std::move(on_committed);
  }
  /// Called with the txs the proposer left out as invalid (dropped from the pool).
  void SetOnSkipped(std::function<void(const std::vector<ledger::SkippedTx>&)> on_skipped) {
    m_on_skipped = std::move(on_skipped);
  }

  /// Evidence items this adaptor saw committed in blocks (tests, the simulator).
  uint64_t EvidenceCommitted() const { return m_evidence_committed; }

 private:
  /// Why the block's evidence may not be included; nullopt when all of it verifies.
  base::Result<std::optional<std::string>> CheckEvidence(const codec::Block& block);

  ledger::Application& m_app;
  state::KvStore& m_kv;
  std::string m_chain_id;
  uint64_t m_evidence_max_age_heights;
  mempool::Mempool* m_pool;
  std::function<void(const BftCommitted&)> m_on_committed;
  std::function<void(const std::vector<ledger::SkippedTx>&)> m_on_skipped;
  uint64_t m_evidence_committed = 0;
};

}  // namespace gpunet::node
