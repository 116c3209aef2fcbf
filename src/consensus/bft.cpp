#include "consensus/bft.h"

#include "base/check.h"
#include "codec/hashes.h"

namespace gpunet::consensus {

// Work in progress: the engine follows in the next commits; the API above is the
// contract the adaptor and the simulator are written against.

struct BftCore::Impl {};

uint64_t BftConfig::TimeoutMs(TimeoutStep step, uint32_t round) const {
  uint64_t base = 0, delta = 0;
  switch (step) {
    case TimeoutStep::kPropose:
      base = timeout_propose_ms;
      delta = timeout_propose_delta_ms;
      break;
    case TimeoutStep::kPrevote:
      base = timeout_prevote_ms;
      delta = timeout_prevote_delta_ms;
      break;
    case TimeoutStep::kPrecommit:
      base = timeout_precommit_ms;
      delta = timeout_precommit_delta_ms;
      break;
    case TimeoutStep::kCommitWait:
      return commit_wait_ms;
  }
  return base + static_cast<uint64_t>(round) * delta;
}

void KeyPairSigner::SignVote(codec::Vote& vote, std::string_view chain_id) const {
  codec::SignVote(vote, chain_id, m_key);
}
void KeyPairSigner::SignProposal(codec::Proposal& proposal, std::string_view chain_id) const {
  codec::SignProposal(proposal, chain_id, m_key);
}

BftCore::BftCore(BftConfig config, BftApplication& app, const BftSigner* signer,
                 SignGuardState guard)
    : m_config(std::move(config)),
      m_app(app),
      m_signer(signer),
      m_guard(guard),
      m_impl(std::make_unique<Impl>()) {}
BftCore::~BftCore() = default;

base::Result<std::unique_ptr<BftCore>> BftCore::Create(BftConfig, BftStartState, BftApplication&,
                                                       const BftSigner*, SignGuardState) {
  return base::Fail(base::ErrorCode::kUnsupported, "bft engine: not implemented yet");
}
base::Result<BftStep> BftCore::Start(uint64_t, std::span<const WalRecord>) {
  return BftStep{};
}
base::Result<BftStep> BftCore::OnProposal(const codec::Proposal&, const codec::Block&, uint64_t) {
  return BftStep{};
}
base::Result<BftStep> BftCore::OnVote(const codec::Vote&, uint64_t) {
  return BftStep{};
}
base::Result<BftStep> BftCore::OnTimeout(const TimeoutInfo&, uint64_t) {
  return BftStep{};
}
base::Result<BftStep> BftCore::OnCommittedBlock(const codec::Block&, const codec::Commit&,
                                                uint64_t) {
  return BftStep{};
}
std::vector<Action> BftCore::Gossip() const {
  return {};
}
BftStep BftCore::OnEvidence(const codec::Evidence&) {
  return BftStep{};
}
std::optional<codec::BlockId> BftCore::LockedValue() const {
  return std::nullopt;
}
std::optional<codec::BlockId> BftCore::ValidValue() const {
  return std::nullopt;
}
codec::Address BftCore::ProposerOf(uint32_t) const {
  return {};
}
std::vector<codec::Evidence> BftCore::PendingEvidence() const {
  return {};
}
bool BftCore::IsValidator() const {
  return false;
}

}  // namespace gpunet::consensus
