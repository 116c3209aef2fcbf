#include "node/bft_adaptor.h"

#include <algorithm>

#include "base/check.h"
#include "codec/encoding.h"
#include "codec/evidence.h"
#include "codec/hashes.h"
#include "consensus/bft_commit.h"
#include "crypto/address.h"
#include "ledger/block_store.h"
#include "state/keyspace.h"

namespace gpunet::node {

namespace keyspace = state::keyspace;
using base::ErrorCode;
using base::Fail;

// ---------------------------------------------------------------- free functions

ledger::CommitInfo CommitInfoOf(const codec::Commit& last_commit,
                                const codec::ValidatorSet& last_validators) {
  ledger::CommitInfo info;
  if (last_commit.height == 0) return info;  // the empty certificate of height 1
  info.round = last_commit.round;
  info.votes.reserve(last_validators.validators.size());
  for (const codec::Validator& v : last_validators.validators) {
    const codec::Address address = crypto::AddressOf(v.public_key);
    // sigs are in ascending address order (VerifyCommit checked it).
    auto it = std::lower_bound(
        last_commit.sigs.begin(), last_commit.sigs.end(), address,
        [](const codec::CommitSig& sig, const codec::Address& a) { return sig.validator < a; });
    const bool signed_it = it != last_commit.sigs.end() && it->validator == address;
    info.votes.push_back(ledger::VoteInfo{address, v.power, signed_it});
  }
  return info;
}

std::vector<ledger::Misbehavior> MisbehaviorOf(const std::vector<codec::Evidence>& evidence,
                                               const codec::ValidatorSet& validators) {
  std::vector<ledger::Misbehavior> out;
  out.reserve(evidence.size());
  const uint64_t total = consensus::TotalPower(validators);
  for (const codec::Evidence& e : evidence) {
    const auto* dup = std::get_if<codec::DuplicateVoteEvidence>(&e);
    GPUNET_CHECK(dup != nullptr);  // the only kind; a new kind must be mapped here
    ledger::Misbehavior m;
    m.kind = ledger::Misbehavior::Kind::kDuplicateVote;
    m.validator = codec::EvidenceValidator(e);
    m.power = codec::ValidatorPower(validators, m.validator).value_or(0);
    m.height = codec::EvidenceHeight(e);
    m.time_ms = std::min(dup->vote_a.time_ms, dup->vote_b.time_ms);
    m.total_voting_power = total;
    out.push_back(m);
  }
  return out;
}

base::Result<std::optional<codec::Commit>> ReadCommit(const state::KvStore& kv, uint64_t height) {
  auto bytes = kv.Get(keyspace::CommitKey(height));
  if (!bytes) return std::unexpected(bytes.error());
  if (!bytes->has_value()) return std::optional<codec::Commit>();
  auto commit = codec::DecodeCommit(**bytes);
  if (!commit)
    return base::Wrap(commit.error(),
                      "stored commit certificate of height " + std::to_string(height));
  return std::optional<codec::Commit>(std::move(*commit));
}

base::Result<codec::ValidatorSet> ReadValidatorSet(const state::KvStore& kv, uint64_t height) {
  std::optional<base::Bytes> found;
  GPUNET_TRY(kv.Scan(keyspace::ValidatorSetKey(0), keyspace::ValidatorSetKey(height + 1),
                     [&](base::ByteSpan, base::ByteSpan value) {
                       found = base::Bytes(value.begin(), value.end());
                       return true;
                     }));
  if (!found)
    return Fail(ErrorCode::kCorrupt,
                "no validator set stored at or below height " + std::to_string(height));
  auto set = codec::DecodeValidatorSet(*found);
  if (!set) return base::Wrap(set.error(), "stored validator set");
  return std::move(*set);
}

base::Result<consensus::BftStartState> LoadBftStartState(const ledger::Application& app,
                                                         const state::KvStore& kv) {
  const ledger::AppInfo info = app.Info();
  consensus::BftStartState start;
  start.height = info.last_height + 1;
  start.validators = info.validators;
  start.last_block_hash = info.last_block_hash;
  start.last_block_time_ms = info.last_block_time_ms;
  if (info.last_height == 0) return start;  // last_commit = Commit{}, no last set
  auto last_set = ReadValidatorSet(kv, info.last_height);
  if (!last_set) return std::unexpected(last_set.error());
  start.last_validators = std::move(*last_set);
  auto commit = ReadCommit(kv, info.last_height);
  if (!commit) return std::unexpected(commit.error());
  if (!commit->has_value() || (*commit)->block_hash != info.last_block_hash)
    return Fail(ErrorCode::kCorrupt,
                "no commit certificate stored for the last committed height " +
                    std::to_string(info.last_height) +
                    "; this store was not written by the bft engine (a solo chain cannot be "
                    "continued under bft: init a new home with --engine bft)");
  start.last_commit = std::move(**commit);
  return start;
}

// ---------------------------------------------------------------- the adaptor

LedgerBftAdaptor::LedgerBftAdaptor(ledger::Application& app, state::KvStore& kv,
                                   std::string chain_id, uint64_t evidence_max_age_heights,
                                   mempool::Mempool* pool)
    : m_app(app),
      m_kv(kv),
      m_chain_id(std::move(chain_id)),
      m_evidence_max_age_heights(evidence_max_age_heights),
      m_pool(pool) {
  GPUNET_CHECK(m_evidence_max_age_heights >= 1);
}

base::Result<codec::Block> LedgerBftAdaptor::PrepareProposal(
    const consensus::BftProposalRequest& request) {
  ledger::PrepareProposalRequest prep;
  prep.height = request.height;
  prep.time_ms = request.time_ms;
  prep.proposer = request.proposer;
  if (m_pool != nullptr) {
    const ledger::ConsensusParams params = m_app.Info().consensus_params;
    prep.checked_txs =
        m_pool->ReapChecked(params.block_bytes_max, params.block_txs_max, params.block_gas_max);
  }
  prep.last_commit = request.last_commit;
  prep.last_commit_info = CommitInfoOf(request.last_commit, request.last_validators);
  prep.evidence = request.evidence;
  // The core verified the evidence against the sets of its heights; the ledger has
  // one set so far (no staking), so the current set gives the powers.
  prep.misbehavior = MisbehaviorOf(request.evidence, request.validators);
  auto prepared = m_app.PrepareProposal(prep);
  if (!prepared) return std::unexpected(prepared.error());
  std::vector<ledger::SkippedTx> invalid;
  for (const auto& s : prepared->skipped) {
    if (s.code == codec::TxCode::kOk) continue;  // valid, over the block limits
    if (m_pool != nullptr) m_pool->Remove(s.tx_hash);
    invalid.push_back(s);
  }
  if (!invalid.empty() && m_on_skipped) m_on_skipped(invalid);
  return std::move(prepared->block);
}

base::Result<std::optional<std::string>> LedgerBftAdaptor::CheckEvidence(
    const codec::Block& block) {
  for (size_t i = 0; i < block.evidence.size(); ++i) {
    const codec::Evidence& e = block.evidence[i];
    const uint64_t height = codec::EvidenceHeight(e);
    if (height == 0 || height >= block.header.height)
      return std::optional<std::string>("evidence " + std::to_string(i) + " is about height " +
                                        std::to_string(height) + ", not a finished height");
    auto set = ReadValidatorSet(m_kv, height);
    if (!set) return std::unexpected(set.error());
    codec::EvidenceContext ctx{m_chain_id, &*set, block.header.height, m_evidence_max_age_heights};
    if (auto verified = codec::VerifyEvidence(e, ctx); !verified)
      return std::optional<std::string>("evidence " + std::to_string(i) +
                                        " does not verify: " + verified.error().ToString());
  }
  return std::optional<std::string>();
}

base::Result<consensus::BftVerdict> LedgerBftAdaptor::ProcessProposal(
    const codec::Block& block, const consensus::BftBlockContext& context) {
  auto bad_evidence = CheckEvidence(block);
  if (!bad_evidence) return std::unexpected(bad_evidence.error());
  if (bad_evidence->has_value()) return consensus::BftVerdict{false, **bad_evidence};
  ledger::ProcessProposalRequest req{block,
                                     CommitInfoOf(block.last_commit, context.last_validators),
                                     MisbehaviorOf(block.evidence, context.validators)};
  auto processed = m_app.ProcessProposal(req);
  if (!processed) return std::unexpected(processed.error());
  return consensus::BftVerdict{processed->accept, processed->reason};
}

base::Status LedgerBftAdaptor::FinalizeAndCommit(const codec::Block& block,
                                                 const codec::Commit& commit,
                                                 const consensus::BftBlockContext& context) {
  GPUNET_CHECK(commit.height == block.header.height);
  GPUNET_CHECK(commit.block_hash == codec::BlockHash(block.header));
  ledger::FinalizeBlockRequest req{block, CommitInfoOf(block.last_commit, context.last_validators),
                                   MisbehaviorOf(block.evidence, context.validators)};
  auto finalized = m_app.FinalizeBlock(req);
  if (!finalized) return std::unexpected(finalized.error());
  // The certificate first (see the header: harmless if the ledger commit is lost).
  state::WriteBatch batch;
  batch.Put(keyspace::CommitKey(block.header.height), codec::EncodeCommit(commit));
  GPUNET_TRY(m_kv.Commit(batch));
  auto committed = m_app.Commit();
  if (!committed) return std::unexpected(committed.error());
  GPUNET_CHECK(committed->height == block.header.height);
  m_evidence_committed += block.evidence.size();
  std::vector<mempool::Removed> dropped;
  if (m_pool != nullptr) dropped = m_pool->Update(block, finalized->receipts);
  if (m_on_committed) m_on_committed(BftCommitted{block, commit, *finalized, *committed, dropped});
  return base::Ok();
}

base::Result<codec::ValidatorSet> LedgerBftAdaptor::ValidatorSetAt(uint64_t height) {
  const ledger::AppInfo info = m_app.Info();
  // The ledger's Info().validators signs last_height + 1; the store has the rest.
  if (height == info.last_height + 1) return info.validators;
  return ReadValidatorSet(m_kv, height);
}

}  // namespace gpunet::node
