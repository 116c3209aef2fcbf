// The Tendermint state machine. "Alg.1 l.N" refers to the line numbers of Algorithm 1
// in arXiv 1807.04938 (v3), "The latest gossip on BFT consensus". The paper's upon
// rules are evaluated by Evaluate() after every input until none fires, so the order
// in which messages arrive does not matter, only the set received.
#include "consensus/bft.h"

#include <algorithm>
#include <utility>

#include "base/check.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/evidence.h"
#include "codec/hashes.h"
#include "consensus/bft_commit.h"
#include "crypto/address.h"
#include "crypto/hash.h"

namespace gpunet::consensus {

namespace limits = base::limits;
using base::ErrorCode;
using base::Fail;
using codec::BlockId;

namespace {

uint8_t SignStepOf(codec::VoteType type) {
  return type == codec::VoteType::kPrevote ? kSignStepPrevote : kSignStepPrecommit;
}

// Lexicographic (height, round, step) order of signed messages.
int CompareHrs(uint64_t h1, uint32_t r1, uint8_t s1, uint64_t h2, uint32_t r2, uint8_t s2) {
  if (h1 != h2) return h1 < h2 ? -1 : 1;
  if (r1 != r2) return r1 < r2 ? -1 : 1;
  if (s1 != s2) return s1 < s2 ? -1 : 1;
  return 0;
}

std::string Str(uint64_t v) {
  return std::to_string(v);
}

}  // namespace

// ---------------------------------------------------------------- config, signer

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
  // base + round * delta, saturating: a huge timeout is as good as an infinite one.
  const unsigned __int128 t = static_cast<unsigned __int128>(round) * delta + base;
  return t > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(t);
}

void KeyPairSigner::SignVote(codec::Vote& vote, std::string_view chain_id) const {
  codec::SignVote(vote, chain_id, m_key);
}

void KeyPairSigner::SignProposal(codec::Proposal& proposal, std::string_view chain_id) const {
  codec::SignProposal(proposal, chain_id, m_key);
}

// ---------------------------------------------------------------- message log

/// The votes of one (round, type). `votes` holds each validator's first vote (what
/// conflicts with it becomes evidence). `by_value` holds every distinct value a
/// validator signed (at most kBftVoteValuesPerValidatorMax): Alg.1 counts messages,
/// so an equivocator counts towards each value it voted for — otherwise nodes that
/// received its votes in different orders would see different quorums, and a
/// proof-of-lock one node holds could never be shown to another. Quorum safety does
/// not suffer: any two 2f+1 sets still share f+1 honest validators.
struct VoteTally {
  std::map<codec::Address, codec::Vote> votes;
  std::map<std::pair<BlockId, codec::Address>, codec::Vote> by_value;  // address order per value
  std::map<codec::Address, size_t> values_of;  // distinct values per validator
  std::map<BlockId, uint64_t> power;           // zero hash = nil
  uint64_t total = 0;                          // power of the validators that voted, once each
  uint64_t PowerFor(const BlockId& hash) const {
    auto it = power.find(hash);
    return it == power.end() ? 0 : it->second;
  }
};

struct BftCore::RoundVotes {
  std::optional<codec::Proposal> proposal;  // the first validly signed one of proposer(h, r)
  VoteTally prevotes;
  VoteTally precommits;
  bool prevote_timeout_scheduled = false;    // Alg.1 l.34 "for the first time"
  bool precommit_timeout_scheduled = false;  // Alg.1 l.47 "for the first time"
  bool valid_value_rule_done = false;        // Alg.1 l.36 "for the first time"
  VoteTally& Of(codec::VoteType t) {
    return t == codec::VoteType::kPrevote ? prevotes : precommits;
  }
};

struct BftCore::Impl {
  explicit Impl(BftCore& core) : c(core) {}
  BftCore& c;
  std::vector<Action>* out = nullptr;  // actions of the event being handled
  bool replaying = false;              // inputs come from the WAL: do not re-record them

  codec::Address self;  // zero for an observer
  std::map<codec::Address, const codec::Validator*> members;
  uint64_t total_power = 0;
  base::Hash32 validator_set_hash;
  std::optional<ProposerSchedule> schedule;  // round 0 of the current height
  std::vector<codec::Address> proposers;     // cache: proposer of round r

  std::map<uint32_t, RoundVotes> rounds;
  std::map<BlockId, codec::Block> blocks;  // blocks of proposals of this height
  std::map<BlockId, bool> validity;        // Valid(v) results (ProcessProposal once)
  std::optional<BlockId> locked_value;
  std::optional<BlockId> valid_value;
  std::map<codec::Address, uint32_t> max_round_seen;  // Alg.1 l.55 bookkeeping

  // What this key signed at this height (own or from the WAL): never re-signed.
  std::map<std::pair<uint32_t, codec::VoteType>, codec::Vote> own_votes;
  std::map<uint32_t, WalProposal> own_proposals;

  std::map<base::Hash32, codec::Evidence> evidence;  // by hash of its encoding
  std::vector<codec::Vote> future_votes;             // height + 1
  std::vector<WalProposal> future_proposals;
  std::optional<BroadcastCommit> last_decided;
  bool started = false;

  void Emit(Action a) { out->push_back(std::move(a)); }
  void Record(WalRecord r) {
    if (!replaying) Emit(WriteWal{std::move(r)});
  }
  bool IsValidator() const { return c.m_signer != nullptr && members.contains(self); }

  void ResetForHeight() {
    members.clear();
    total_power = 0;
    for (const auto& v : c.m_validators.validators) {
      members.emplace(crypto::AddressOf(v.public_key), &v);
      total_power += v.power;
    }
    validator_set_hash = codec::ValidatorSetHash(c.m_validators);
    proposers.clear();
    rounds.clear();
    blocks.clear();
    validity.clear();
    locked_value.reset();
    valid_value.reset();
    max_round_seen.clear();
    own_votes.clear();
    own_proposals.clear();
    c.m_round = 0;
    c.m_locked_round = -1;
    c.m_valid_round = -1;
  }

  const codec::Address& ProposerAt(uint32_t round) {
    if (round >= proposers.size()) {
      const uint64_t want = std::max<uint64_t>(uint64_t{round} + 1, 2 * proposers.size());
      proposers = schedule->ProposersForRounds(want);
    }
    return proposers[round];
  }

  // ---- evidence ----
  void AddEvidence(const codec::Evidence& ev) {
    const base::Hash32 id = crypto::Blake2b256(codec::EncodeEvidence(ev));
    if (evidence.contains(id) || evidence.size() >= limits::kBftEvidencePoolMax) return;
    evidence.emplace(id, ev);
    ++c.m_counters.equivocations_detected;
  }

  std::vector<codec::Evidence> EvidenceForBlock(uint64_t height) const {
    std::vector<codec::Evidence> outv;
    for (const auto& [id, ev] : evidence) {
      const uint64_t eh = codec::EvidenceHeight(ev);
      if (eh >= height || height - eh > c.m_config.evidence_max_age_heights) continue;
      outv.push_back(ev);
      if (outv.size() == limits::kEvidencePerBlockMax) break;
    }
    return outv;
  }

  // ---- inputs: add to the log (no rule fires here) ----

  void SeeRound(const codec::Address& who, uint32_t round) {
    auto [it, fresh] = max_round_seen.emplace(who, round);
    if (!fresh) it->second = std::max(it->second, round);
  }

  // Inserts a vote whose signature is known good. A different vote of the same
  // validator for the same (round, type) becomes evidence instead.
  void InsertVote(const codec::Vote& vote) {
    SeeRound(vote.validator, vote.round);
    if (uint64_t{vote.round} > uint64_t{c.m_round} + limits::kBftRoundsAheadMax) return;
    VoteTally& tally = rounds[vote.round].Of(vote.type);
    auto [it, fresh] = tally.votes.emplace(vote.validator, vote);
    if (!fresh && it->second.block_hash != vote.block_hash) {
      auto ev = codec::MakeDuplicateVoteEvidence(it->second, vote);
      GPUNET_CHECK(ev.has_value());
      AddEvidence(codec::Evidence{*ev});
    }
    const auto key = std::make_pair(vote.block_hash, vote.validator);
    if (tally.by_value.contains(key)) return;
    size_t& values = tally.values_of[vote.validator];
    if (values >= limits::kBftVoteValuesPerValidatorMax) return;
    ++values;
    tally.by_value.emplace(key, vote);
    const uint64_t power = members.at(vote.validator)->power;
    tally.power[vote.block_hash] += power;
    if (fresh) tally.total += power;
  }

  std::string HandleVote(const codec::Vote& vote) {
    if (vote.height != c.m_height) {
      if (vote.height == c.m_height + 1) {
        if (future_votes.size() >= limits::kBftFutureVotesMax)
          return "vote for the next height: buffer full";
        future_votes.push_back(vote);
        return "";
      }
      return "vote for height " + Str(vote.height) + ", at height " + Str(c.m_height);
    }
    if (vote.round > limits::kBftRoundMax)
      return "vote round " + Str(vote.round) + " over kBftRoundMax";
    auto member = members.find(vote.validator);
    if (member == members.end())
      return "vote by " + crypto::AddressToString(vote.validator) + ", not a validator";
    // Redundant copies (gossip) are cheap to recognise before the signature check.
    if (uint64_t{vote.round} <= uint64_t{c.m_round} + limits::kBftRoundsAheadMax) {
      auto r = rounds.find(vote.round);
      if (r != rounds.end()) {
        const VoteTally& tally = r->second.Of(vote.type);
        if (tally.by_value.contains(std::make_pair(vote.block_hash, vote.validator))) return "";
      }
    }
    ++c.m_counters.votes_verified;
    auto sig = codec::VerifyVoteSignature(vote, c.m_config.chain_id, member->second->public_key);
    if (!sig) return "vote: " + sig.error().message;
    Record(WalVote{vote});
    InsertVote(vote);
    return "";
  }

  std::string HandleProposal(const codec::Proposal& p, const codec::Block& block) {
    if (p.height != c.m_height) {
      if (p.height == c.m_height + 1) {
        if (future_proposals.size() >= limits::kBftFutureProposalsMax)
          return "proposal for the next height: buffer full";
        future_proposals.push_back({p, block});
        return "";
      }
      return "proposal for height " + Str(p.height) + ", at height " + Str(c.m_height);
    }
    if (uint64_t{p.round} > uint64_t{c.m_round} + limits::kBftRoundsAheadMax)
      return "proposal for round " + Str(p.round) + ", too far ahead of round " + Str(c.m_round);
    if (p.pol_round < -1 || p.pol_round >= static_cast<int64_t>(p.round))
      return "proposal with pol_round " + std::to_string(p.pol_round) + " not in [-1, round)";
    RoundVotes& rv = rounds[p.round];
    if (rv.proposal) {
      if (*rv.proposal == p) return "";
      return "a second, different proposal of the proposer for round " + Str(p.round);
    }
    if (codec::BlockHash(block.header) != p.block_hash)
      return "proposal: the block's hash is not the proposal's block_hash";
    const codec::Address& proposer = ProposerAt(p.round);
    auto sig =
        codec::VerifyProposalSignature(p, c.m_config.chain_id, members.at(proposer)->public_key);
    if (!sig) return "proposal (not signed by the round's proposer): " + sig.error().message;
    Record(WalProposal{p, block});
    rv.proposal = p;
    blocks.emplace(p.block_hash, block);
    SeeRound(proposer, p.round);
    return "";
  }

  // ---- validity: the core's header checks, then the application ----

  std::string PreCheck(const codec::Block& block) const {
    const codec::BlockHeader& h = block.header;
    if (h.chain_id != c.m_config.chain_id) return "chain id " + h.chain_id;
    if (h.height != c.m_height) return "header height " + Str(h.height);
    if (h.last_block_hash != c.m_last_block_hash) return "last_block_hash is not our last block";
    if (!members.contains(h.proposer)) return "proposer is not a validator";
    if (h.validator_set_hash != validator_set_hash) return "validator_set_hash mismatch";
    if (h.last_commit_hash != codec::CommitHash(block.last_commit))
      return "last_commit_hash does not match last_commit";
    if (block.evidence.size() > limits::kEvidencePerBlockMax) return "too much evidence";
    if (c.m_height == 1) {
      if (!(block.last_commit == codec::Commit{})) return "height 1 must carry the empty commit";
    } else if (!(block.last_commit == c.m_last_commit)) {
      if (block.last_commit.height != c.m_height - 1) return "last_commit is for another height";
      auto ok = VerifyCommit(block.last_commit, c.m_last_validators, c.m_config.chain_id,
                             c.m_last_block_hash);
      if (!ok) return "last_commit: " + ok.error().message;
    }
    auto time =
        BlockTime(c.m_height, block.last_commit, c.m_last_validators, c.m_config.genesis_time_ms);
    if (!time) return "block time: " + time.error().message;
    if (h.time_ms != *time)
      return "time " + Str(h.time_ms) + " is not the median of last_commit (" + Str(*time) + ")";
    if (h.time_ms <= c.m_last_block_time_ms) return "time does not increase";
    return "";
  }

  BftBlockContext Context() const {
    return BftBlockContext{c.m_height, c.m_round, c.m_validators, c.m_last_validators};
  }

  // Alg.1 valid(v): evaluated once per block per height.
  base::Result<bool> Valid(const BlockId& hash) {
    if (auto it = validity.find(hash); it != validity.end()) return it->second;
    auto b = blocks.find(hash);
    GPUNET_CHECK(b != blocks.end());
    bool ok = PreCheck(b->second).empty();
    if (ok) {
      auto verdict = c.m_app.ProcessProposal(b->second, Context());
      if (!verdict) return base::Wrap(verdict.error(), "bft: ProcessProposal");
      ok = verdict->accept;
    }
    validity.emplace(hash, ok);
    return ok;
  }

  // ---- signing (sign guard + own-message record) ----

  // Whether the guard lets this key sign at (h, r, step) for `hash`: +1 sign anew,
  // 0 re-use the guard's signature (the identical message), -1 refuse.
  int GuardVerdict(uint32_t round, uint8_t step, const BlockId& hash, int32_t pol_round) const {
    const SignGuardState& g = c.m_guard;
    if (g.height == 0) return 1;
    const int cmp = CompareHrs(c.m_height, round, step, g.height, g.round, g.step);
    if (cmp > 0) return 1;
    if (cmp < 0) return -1;
    return (g.block_hash == hash && g.pol_round == pol_round) ? 0 : -1;
  }

  void SignAndSendVote(codec::VoteType type, const BlockId& hash, uint64_t now_ms) {
    if (!IsValidator()) return;
    const auto key = std::make_pair(c.m_round, type);
    if (auto it = own_votes.find(key); it != own_votes.end()) {
      if (it->second.block_hash != hash) {
        ++c.m_counters.signatures_refused;  // would equivocate with what we signed
        return;
      }
      InsertVote(it->second);
      Emit(BroadcastVote{it->second});
      return;
    }
    codec::Vote v;
    v.type = type;
    v.height = c.m_height;
    v.round = c.m_round;
    v.block_hash = hash;
    v.validator = self;
    // Vote times are after the voted block's time (after the last block for nil), so
    // the weighted median of a commit always exceeds the block it certifies.
    uint64_t min_time = c.m_last_block_time_ms + 1;
    if (!hash.IsZero()) min_time = blocks.at(hash).header.time_ms + 1;
    v.time_ms = std::max(now_ms, min_time);
    const uint8_t step = SignStepOf(type);
    const int verdict = GuardVerdict(c.m_round, step, hash, -1);
    if (verdict < 0) {
      ++c.m_counters.signatures_refused;
      return;
    }
    bool guard_changed = false;
    if (verdict == 0) {
      v.time_ms = c.m_guard.time_ms;
      v.signature = c.m_guard.signature;
    } else {
      c.m_signer->SignVote(v, c.m_config.chain_id);
      c.m_guard = SignGuardState{
          c.m_signer->PublicKey(), c.m_height, c.m_round, step, hash, -1, v.time_ms, v.signature};
      guard_changed = true;
    }
    own_votes.emplace(key, v);
    Emit(WriteWal{WalVote{v}});  // recorded before it leaves (issue 5 item 3)
    if (guard_changed) Emit(PersistSignGuard{c.m_guard});
    InsertVote(v);
    Emit(BroadcastVote{v});
  }

  // ---- Alg.1 StartRound ----

  base::Status StartRound(uint32_t round) {  // Alg.1 l.11-21
    if (round > 0) ++c.m_counters.rounds_started;
    c.m_round = round;                                 // l.12
    c.m_step = TimeoutStep::kPropose;                  // l.13
    if (IsValidator() && ProposerAt(round) == self) {  // l.14
      GPUNET_TRY(Propose(round));
    }
    // l.21 (also on the proposer: if its own block is refused it still moves on).
    Emit(ScheduleTimeout{TimeoutInfo{c.m_height, round, TimeoutStep::kPropose},
                         c.m_config.TimeoutMs(TimeoutStep::kPropose, round)});
    return base::Ok();
  }

  base::Status Propose(uint32_t round) {
    if (auto it = own_proposals.find(round); it != own_proposals.end()) {
      // Already proposed (found in the WAL): the same proposal again, never another.
      WalProposal wp = it->second;
      (void)HandleOwnProposal(wp);
      Emit(BroadcastProposal{wp.proposal, wp.block});
      return base::Ok();
    }
    codec::Block block;
    int32_t pol_round = -1;
    if (valid_value) {  // l.15-16: re-propose the value that had a POL
      block = blocks.at(*valid_value);
      pol_round = static_cast<int32_t>(c.m_valid_round);
    } else {  // l.18: getValue()
      BftProposalRequest req;
      req.height = c.m_height;
      req.round = round;
      auto time =
          BlockTime(c.m_height, c.m_last_commit, c.m_last_validators, c.m_config.genesis_time_ms);
      if (!time) return base::Wrap(time.error(), "bft: block time");
      req.time_ms = *time;
      req.proposer = self;
      req.last_commit = c.m_last_commit;
      req.evidence = EvidenceForBlock(c.m_height);
      req.validators = c.m_validators;
      req.last_validators = c.m_last_validators;
      auto made = c.m_app.PrepareProposal(req);
      if (!made) return base::Wrap(made.error(), "bft: PrepareProposal");
      block = std::move(*made);
    }
    codec::Proposal p;
    p.height = c.m_height;
    p.round = round;
    p.pol_round = pol_round;
    p.block_hash = codec::BlockHash(block.header);
    p.time_ms = block.header.time_ms;
    const int verdict = GuardVerdict(round, kSignStepProposal, p.block_hash, pol_round);
    if (verdict < 0) {
      ++c.m_counters.signatures_refused;
      return base::Ok();
    }
    bool guard_changed = false;
    if (verdict == 0) {
      p.time_ms = c.m_guard.time_ms;
      p.signature = c.m_guard.signature;
    } else {
      c.m_signer->SignProposal(p, c.m_config.chain_id);
      c.m_guard = SignGuardState{c.m_signer->PublicKey(),
                                 c.m_height,
                                 round,
                                 kSignStepProposal,
                                 p.block_hash,
                                 pol_round,
                                 p.time_ms,
                                 p.signature};
      guard_changed = true;
    }
    WalProposal wp{p, std::move(block)};
    own_proposals.emplace(round, wp);
    Emit(WriteWal{wp});
    if (guard_changed) Emit(PersistSignGuard{c.m_guard});
    (void)HandleOwnProposal(wp);
    Emit(BroadcastProposal{wp.proposal, wp.block});  // l.19
    return base::Ok();
  }

  bool HandleOwnProposal(const WalProposal& wp) {
    RoundVotes& rv = rounds[wp.proposal.round];
    if (rv.proposal) return *rv.proposal == wp.proposal;
    rv.proposal = wp.proposal;
    blocks.emplace(wp.proposal.block_hash, wp.block);
    SeeRound(self, wp.proposal.round);
    return true;
  }

  // ---- deciding ----

  base::Status Decide(uint32_t round, const BlockId& hash) {  // Alg.1 l.49-54
    codec::Commit commit;
    commit.height = c.m_height;
    commit.round = round;
    commit.block_hash = hash;
    const auto& by_value = rounds.at(round).precommits.by_value;
    for (auto it = by_value.lower_bound({hash, codec::Address{}});
         it != by_value.end() && it->first.first == hash; ++it)  // address order
      commit.sigs.push_back({it->first.second, it->second.time_ms, it->second.signature});
    const codec::Block block = blocks.at(hash);  // the log is reset inside Commit
    return Commit(block, commit);
  }

  base::Status Commit(const codec::Block& block, const codec::Commit& commit) {
    const uint64_t height = c.m_height;
    BftBlockContext ctx = Context();
    ctx.round = commit.round;
    GPUNET_TRY(c.m_app.FinalizeAndCommit(block, commit, ctx));  // l.51 decision
    Emit(WriteWal{WalEndHeight{height}});                       // after the commit is durable
    auto next_set = c.m_app.ValidatorSetAt(height + 1);
    if (!next_set) return base::Wrap(next_set.error(), "bft: ValidatorSetAt");
    auto valid_set = codec::ValidateValidatorSet(*next_set);
    if (!valid_set || next_set->validators.empty())
      return Fail(ErrorCode::kCorrupt, "bft: the application's validator set for height " +
                                           Str(height + 1) + " is not a valid non-empty set");
    ProposerSchedule next =
        *next_set == c.m_validators ? *schedule : schedule->WithValidators(*next_set);
    next.Increment(1);

    ++c.m_counters.heights_decided;
    if (commit.round > 0) ++c.m_counters.decided_after_round0;
    for (const auto& ev : block.evidence)
      evidence.erase(crypto::Blake2b256(codec::EncodeEvidence(ev)));
    Emit(Decided{block, commit, next});
    last_decided = BroadcastCommit{block, commit};

    // l.52-53: next height, reset locks and the message log.
    c.m_last_validators = std::move(c.m_validators);
    c.m_validators = std::move(*next_set);
    c.m_last_commit = commit;
    c.m_last_block_hash = commit.block_hash;
    c.m_last_block_time_ms = block.header.time_ms;
    c.m_height = height + 1;
    schedule = std::move(next);
    ResetForHeight();
    std::erase_if(evidence, [&](const auto& kv) {
      return c.m_height - codec::EvidenceHeight(kv.second) > c.m_config.evidence_max_age_heights;
    });
    if (c.m_config.commit_wait_ms > 0) {
      c.m_step = TimeoutStep::kCommitWait;
      Emit(ScheduleTimeout{TimeoutInfo{c.m_height, 0, TimeoutStep::kCommitWait},
                           c.m_config.commit_wait_ms});
    } else {
      GPUNET_TRY(StartRound(0));  // l.54
    }
    // Messages that arrived early for this height now belong to it.
    auto votes = std::move(future_votes);
    auto props = std::move(future_proposals);
    future_votes.clear();
    future_proposals.clear();
    for (const auto& p : props) (void)HandleProposal(p.proposal, p.block);
    for (const auto& v : votes) (void)HandleVote(v);
    return base::Ok();
  }

  // Alg.1 l.55: f+1 of the power has sent messages at rounds >= r > round_p. (The
  // paper counts messages of exactly round r; counting "at r or above" is the same
  // guarantee — some honest validator reached round r — and lets a validator that
  // was cut off jump straight to where the others are.)
  uint32_t RoundSkipTarget() const {
    std::vector<std::pair<uint32_t, uint64_t>> ahead;
    for (const auto& [addr, r] : max_round_seen)
      if (r > c.m_round) ahead.emplace_back(r, members.at(addr)->power);
    std::sort(ahead.begin(), ahead.end(), std::greater<>());
    uint64_t power = 0;
    for (const auto& [r, p] : ahead) {
      power += p;
      if (HasOneThird(power, total_power)) return r;
    }
    return c.m_round;
  }

  // Fires every upon rule of Alg.1 that holds, until none does.
  base::Status Evaluate(uint64_t now_ms) {
    for (;;) {
      if (c.m_step == TimeoutStep::kCommitWait) return base::Ok();

      // l.49: PROPOSAL(h, r, v) and 2f+1 PRECOMMIT(h, r, id(v)) for any round r.
      // (The block may come from any proposal of this height: the certificate
      // names it by hash.)
      bool decided = false;
      for (auto& [r, rv] : rounds) {
        for (const auto& [hash, power] : rv.precommits.power) {
          if (hash.IsZero() || !HasTwoThirds(power, total_power) || !blocks.contains(hash))
            continue;
          auto valid = Valid(hash);  // l.50
          if (!valid) return std::unexpected(valid.error());
          if (!*valid) continue;
          GPUNET_TRY(Decide(r, hash));
          decided = true;
          break;
        }
        if (decided) break;
      }
      if (decided) continue;

      // l.55-56: round skip.
      if (const uint32_t target = RoundSkipTarget(); target > c.m_round) {
        ++c.m_counters.round_skips;
        GPUNET_TRY(StartRound(target));
        continue;
      }

      RoundVotes& rv = rounds[c.m_round];
      const BlockId nil{};

      if (c.m_step == TimeoutStep::kPropose && rv.proposal) {
        const codec::Proposal& p = *rv.proposal;
        const BlockId v = p.block_hash;
        if (p.pol_round == -1) {  // l.22: PROPOSAL(h, round_p, v, -1) while step = propose
          auto valid = Valid(v);
          if (!valid) return std::unexpected(valid.error());
          // l.23: valid(v) and (lockedRound = -1 or lockedValue = v)
          if (*valid && (c.m_locked_round == -1 || locked_value == v)) {
            SignAndSendVote(codec::VoteType::kPrevote, v, now_ms);  // l.24
          } else {
            if (*valid) ++c.m_counters.prevotes_against_lock;
            SignAndSendVote(codec::VoteType::kPrevote, nil, now_ms);  // l.26
          }
          c.m_step = TimeoutStep::kPrevote;  // l.27
          continue;
        }
        // l.28: PROPOSAL(h, round_p, v, vr) and 2f+1 PREVOTE(h, vr, id(v)), vr < round_p
        const uint32_t vr = static_cast<uint32_t>(p.pol_round);
        auto pol = rounds.find(vr);
        if (vr < c.m_round && pol != rounds.end() &&
            HasTwoThirds(pol->second.prevotes.PowerFor(v), total_power)) {
          auto valid = Valid(v);
          if (!valid) return std::unexpected(valid.error());
          // l.29: valid(v) and (lockedRound <= vr or lockedValue = v)
          if (*valid && (c.m_locked_round <= static_cast<int64_t>(vr) || locked_value == v)) {
            if (c.m_locked_round >= 0 && locked_value != v) ++c.m_counters.pol_unlocks;
            SignAndSendVote(codec::VoteType::kPrevote, v, now_ms);  // l.30
          } else {
            if (*valid) ++c.m_counters.prevotes_against_lock;
            SignAndSendVote(codec::VoteType::kPrevote, nil, now_ms);  // l.32
          }
          c.m_step = TimeoutStep::kPrevote;  // l.33
          continue;
        }
      }

      // l.34-35: 2f+1 PREVOTE(h, round_p, *) while step = prevote, first time.
      if (c.m_step == TimeoutStep::kPrevote && !rv.prevote_timeout_scheduled &&
          HasTwoThirds(rv.prevotes.total, total_power)) {
        rv.prevote_timeout_scheduled = true;
        Emit(ScheduleTimeout{TimeoutInfo{c.m_height, c.m_round, TimeoutStep::kPrevote},
                             c.m_config.TimeoutMs(TimeoutStep::kPrevote, c.m_round)});
      }

      // l.36: PROPOSAL(h, round_p, v, *) and 2f+1 PREVOTE(h, round_p, id(v)) while
      // valid(v) and step >= prevote, for the first time.
      if (c.m_step != TimeoutStep::kPropose && rv.proposal && !rv.valid_value_rule_done &&
          HasTwoThirds(rv.prevotes.PowerFor(rv.proposal->block_hash), total_power)) {
        const BlockId v = rv.proposal->block_hash;
        auto valid = Valid(v);
        if (!valid) return std::unexpected(valid.error());
        if (*valid) {
          rv.valid_value_rule_done = true;
          if (c.m_step == TimeoutStep::kPrevote) {  // l.37
            if (c.m_locked_round >= 0 && locked_value != v) ++c.m_counters.locks_changed;
            locked_value = v;              // l.38
            c.m_locked_round = c.m_round;  // l.39
            ++c.m_counters.locks_taken;
            SignAndSendVote(codec::VoteType::kPrecommit, v, now_ms);  // l.40
            c.m_step = TimeoutStep::kPrecommit;                       // l.41
          }
          valid_value = v;              // l.42
          c.m_valid_round = c.m_round;  // l.43
          continue;
        }
      }

      // l.44-46: 2f+1 PREVOTE(h, round_p, nil) while step = prevote.
      if (c.m_step == TimeoutStep::kPrevote &&
          HasTwoThirds(rv.prevotes.PowerFor(nil), total_power)) {
        SignAndSendVote(codec::VoteType::kPrecommit, nil, now_ms);  // l.45
        c.m_step = TimeoutStep::kPrecommit;                         // l.46
        continue;
      }

      // l.47-48: 2f+1 PRECOMMIT(h, round_p, *) for the first time.
      if (!rv.precommit_timeout_scheduled && HasTwoThirds(rv.precommits.total, total_power)) {
        rv.precommit_timeout_scheduled = true;
        Emit(ScheduleTimeout{TimeoutInfo{c.m_height, c.m_round, TimeoutStep::kPrecommit},
                             c.m_config.TimeoutMs(TimeoutStep::kPrecommit, c.m_round)});
      }
      return base::Ok();
    }
  }

  // Alg.1 l.57-67 (and the commit-wait timer). Returns whether it changed state.
  base::Result<bool> HandleTimeout(const TimeoutInfo& t, uint64_t now_ms) {
    if (t.height != c.m_height) return false;
    switch (t.step) {
      case TimeoutStep::kCommitWait:
        if (c.m_step != TimeoutStep::kCommitWait || t.round != 0) return false;
        GPUNET_TRY(StartRound(0));  // Alg.1 l.54, after the pause
        return true;
      case TimeoutStep::kPropose:  // l.57-60
        if (t.round != c.m_round || c.m_step != TimeoutStep::kPropose) return false;
        Record(WalTimeout{t});
        SignAndSendVote(codec::VoteType::kPrevote, BlockId{}, now_ms);  // l.59
        c.m_step = TimeoutStep::kPrevote;                               // l.60
        return true;
      case TimeoutStep::kPrevote:  // l.61-64
        if (t.round != c.m_round || c.m_step != TimeoutStep::kPrevote) return false;
        Record(WalTimeout{t});
        SignAndSendVote(codec::VoteType::kPrecommit, BlockId{}, now_ms);  // l.63
        c.m_step = TimeoutStep::kPrecommit;                               // l.64
        return true;
      case TimeoutStep::kPrecommit:  // l.65-67
        if (t.round != c.m_round || c.m_step == TimeoutStep::kCommitWait) return false;
        if (c.m_round >= limits::kBftRoundMax) return false;
        Record(WalTimeout{t});
        GPUNET_TRY(StartRound(c.m_round + 1));
        return true;
    }
    return false;
  }
};

// ---------------------------------------------------------------- BftCore

BftCore::BftCore(BftConfig config, BftApplication& app, const BftSigner* signer,
                 SignGuardState guard)
    : m_config(std::move(config)),
      m_app(app),
      m_signer(signer),
      m_guard(guard),
      m_impl(std::make_unique<Impl>(*this)) {}

BftCore::~BftCore() = default;

base::Result<std::unique_ptr<BftCore>> BftCore::Create(BftConfig config, BftStartState start,
                                                       BftApplication& app, const BftSigner* signer,
                                                       SignGuardState guard) {
  if (config.chain_id.empty() || config.chain_id.size() > limits::kChainIdBytesMax)
    return Fail(ErrorCode::kInvalidArgument, "bft: config.chain_id must be 1..64 bytes");
  if (config.evidence_max_age_heights == 0)
    return Fail(ErrorCode::kInvalidArgument, "bft: evidence_max_age_heights must be >= 1");
  if (start.height == 0) return Fail(ErrorCode::kInvalidArgument, "bft: heights start at 1");
  if (start.validators.validators.empty())
    return Fail(ErrorCode::kInvalidArgument, "bft: the validator set is empty");
  if (auto ok = codec::ValidateValidatorSet(start.validators); !ok)
    return base::Wrap(ok.error(), "bft: validator set");
  if (start.height == 1) {
    if (!(start.last_commit == codec::Commit{}) || !start.last_block_hash.IsZero())
      return Fail(ErrorCode::kInvalidArgument,
                  "bft: at height 1 the last commit is empty and the last block hash zero");
  } else {
    if (start.last_validators.validators.empty())
      return Fail(ErrorCode::kInvalidArgument, "bft: last_validators is empty above height 1");
    if (start.last_commit.height != start.height - 1)
      return Fail(ErrorCode::kInvalidArgument, "bft: last_commit is not for height - 1");
    if (auto ok = VerifyCommit(start.last_commit, start.last_validators, config.chain_id,
                               start.last_block_hash);
        !ok)
      return base::Wrap(ok.error(), "bft: start state's last commit");
  }
  if (signer != nullptr) {
    if (guard.public_key.IsZero() && guard.height == 0) {
      guard.public_key = signer->PublicKey();
    } else if (guard.public_key != signer->PublicKey()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "bft: the sign guard belongs to another key; use the guard file of this "
                  "validator key (never a copy from another node)");
    }
  }
  ProposerSchedule schedule =
      start.schedule ? *start.schedule : ProposerSchedule::AtHeight(start.validators, start.height);
  {
    const auto& e = schedule.Entries();
    ProposerSchedule fresh(start.validators);  // same members and powers?
    bool same = e.size() == fresh.Entries().size();
    for (size_t i = 0; same && i < e.size(); ++i)
      same = e[i].public_key == fresh.Entries()[i].public_key &&
             e[i].power == fresh.Entries()[i].power;
    if (!same)
      return Fail(ErrorCode::kInvalidArgument,
                  "bft: the proposer schedule is for another validator set");
  }

  std::unique_ptr<BftCore> core(new BftCore(std::move(config), app, signer, guard));
  core->m_height = start.height;
  core->m_validators = std::move(start.validators);
  core->m_last_validators = std::move(start.last_validators);
  core->m_last_commit = std::move(start.last_commit);
  core->m_last_block_hash = start.last_block_hash;
  core->m_last_block_time_ms = start.last_block_time_ms;
  if (signer != nullptr) core->m_impl->self = crypto::AddressOf(signer->PublicKey());
  core->m_impl->schedule = std::move(schedule);
  core->m_impl->ResetForHeight();
  return core;
}

base::Result<BftStep> BftCore::Start(uint64_t now_ms, std::span<const WalRecord> wal) {
  GPUNET_CHECK(!m_impl->started);
  m_impl->started = true;
  Impl& im = *m_impl;
  BftStep step;
  im.out = &step.actions;
  for (const auto& rec : wal) {
    const uint64_t h = WalRecordHeight(rec);
    if (h > m_height || (h == m_height && std::holds_alternative<WalEndHeight>(rec)))
      return Fail(ErrorCode::kCorrupt, "bft: the WAL has records of height " + Str(h) +
                                           " but the application has committed only up to " +
                                           Str(m_height - 1) +
                                           "; the application lost a synced commit");
  }
  // What this key already signed at this height is re-used, never signed anew.
  if (im.IsValidator()) {
    for (const auto& rec : wal) {
      if (const auto* v = std::get_if<WalVote>(&rec);
          v && v->vote.height == m_height && v->vote.validator == im.self)
        im.own_votes.emplace(std::make_pair(v->vote.round, v->vote.type), v->vote);
      if (const auto* p = std::get_if<WalProposal>(&rec);
          p && p->proposal.height == m_height && im.ProposerAt(p->proposal.round) == im.self)
        im.own_proposals.emplace(p->proposal.round, *p);
    }
  }
  GPUNET_TRY(im.StartRound(0));  // Alg.1 l.10
  GPUNET_TRY(im.Evaluate(now_ms));
  im.replaying = true;
  for (const auto& rec : wal) {
    if (WalRecordHeight(rec) != m_height) continue;
    if (const auto* p = std::get_if<WalProposal>(&rec)) {
      (void)im.HandleProposal(p->proposal, p->block);
    } else if (const auto* v = std::get_if<WalVote>(&rec)) {
      (void)im.HandleVote(v->vote);
    } else if (const auto* t = std::get_if<WalTimeout>(&rec)) {
      auto changed = im.HandleTimeout(t->timeout, now_ms);
      if (!changed) {
        im.replaying = false;
        return std::unexpected(changed.error());
      }
    }
    auto ok = im.Evaluate(now_ms);
    if (!ok) {
      im.replaying = false;
      return std::unexpected(ok.error());
    }
  }
  im.replaying = false;
  im.out = nullptr;
  return step;
}

base::Result<BftStep> BftCore::OnProposal(const codec::Proposal& proposal,
                                          const codec::Block& block, uint64_t now_ms) {
  GPUNET_CHECK(m_impl->started);
  BftStep step;
  m_impl->out = &step.actions;
  step.ignored = m_impl->HandleProposal(proposal, block);
  if (!step.ignored.empty()) {
    ++m_counters.messages_ignored;
  } else {
    GPUNET_TRY(m_impl->Evaluate(now_ms));
  }
  m_impl->out = nullptr;
  return step;
}

base::Result<BftStep> BftCore::OnVote(const codec::Vote& vote, uint64_t now_ms) {
  GPUNET_CHECK(m_impl->started);
  BftStep step;
  m_impl->out = &step.actions;
  step.ignored = m_impl->HandleVote(vote);
  if (!step.ignored.empty()) {
    ++m_counters.messages_ignored;
  } else {
    GPUNET_TRY(m_impl->Evaluate(now_ms));
  }
  m_impl->out = nullptr;
  return step;
}

base::Result<BftStep> BftCore::OnTimeout(const TimeoutInfo& timeout, uint64_t now_ms) {
  GPUNET_CHECK(m_impl->started);
  BftStep step;
  m_impl->out = &step.actions;
  auto changed = m_impl->HandleTimeout(timeout, now_ms);
  if (!changed) return std::unexpected(changed.error());
  if (!*changed) {
    step.ignored = "stale timeout";
  } else {
    GPUNET_TRY(m_impl->Evaluate(now_ms));
  }
  m_impl->out = nullptr;
  return step;
}

base::Result<BftStep> BftCore::OnCommittedBlock(const codec::Block& block,
                                                const codec::Commit& commit, uint64_t now_ms) {
  GPUNET_CHECK(m_impl->started);
  Impl& im = *m_impl;
  BftStep step;
  im.out = &step.actions;
  const BlockId hash = codec::BlockHash(block.header);
  if (block.header.height != m_height || commit.height != m_height) {
    step.ignored =
        "committed block of height " + Str(block.header.height) + ", at height " + Str(m_height);
    return step;
  }
  if (auto ok = VerifyCommit(commit, m_validators, m_config.chain_id, hash); !ok) {
    ++m_counters.messages_ignored;
    step.ignored = "committed block: " + ok.error().message;
    return step;
  }
  im.blocks.emplace(hash, block);
  auto valid = im.Valid(hash);
  if (!valid) return std::unexpected(valid.error());
  if (!*valid)
    return Fail(ErrorCode::kCorrupt,
                "bft: block " + base::ToHex(hash) + " at height " + Str(m_height) +
                    " carries a valid commit certificate but fails validation here (" +
                    im.PreCheck(block) +
                    "); more than a third of the validators are faulty or this node's state "
                    "diverged: stopping");
  ++m_counters.catchup_commits;
  GPUNET_TRY(im.Commit(block, commit));
  GPUNET_TRY(im.Evaluate(now_ms));
  im.out = nullptr;
  return step;
}

std::vector<Action> BftCore::Gossip() const {
  std::vector<Action> out;
  const Impl& im = *m_impl;
  for (const auto& [r, rv] : im.rounds) {
    if (rv.proposal)
      out.push_back(BroadcastProposal{*rv.proposal, im.blocks.at(rv.proposal->block_hash)});
    const bool recent = r + 1 >= m_round;  // the current and the previous round
    // A proof-of-lock (> 2/3 prevotes for a value) of an older round must reach
    // everyone too: a proposal re-proposing that value names the round (pol_round)
    // and Alg.1 l.28 accepts it only where those prevotes are in the log. Without
    // them, a validator locked in a round the others missed blocks progress forever
    // (CometBFT gossips POL prevotes for the same reason).
    bool pol = false;
    for (const auto& [hash, power] : rv.prevotes.power)
      if (!hash.IsZero() && HasTwoThirds(power, im.total_power)) pol = true;
    if (recent || pol)
      for (const auto& [a, v] : rv.prevotes.by_value) out.push_back(BroadcastVote{v});
    if (recent)
      for (const auto& [a, v] : rv.precommits.by_value) out.push_back(BroadcastVote{v});
  }
  for (const auto& [k, v] : im.own_votes)
    if (k.first + 1 < m_round) out.push_back(BroadcastVote{v});
  if (im.last_decided) out.push_back(*im.last_decided);
  return out;
}

BftStep BftCore::OnEvidence(const codec::Evidence& evidence) {
  BftStep step;
  codec::EvidenceContext ctx{m_config.chain_id, &m_validators, m_height,
                             m_config.evidence_max_age_heights};
  if (auto ok = codec::VerifyEvidence(evidence, ctx); !ok) {
    ++m_counters.messages_ignored;
    step.ignored = ok.error().message;
    return step;
  }
  const uint64_t before = m_counters.equivocations_detected;
  m_impl->AddEvidence(evidence);
  if (m_counters.equivocations_detected == before)
    step.ignored = "evidence already known (or pool full)";
  return step;
}

std::optional<codec::BlockId> BftCore::LockedValue() const {
  return m_impl->locked_value;
}
std::optional<codec::BlockId> BftCore::ValidValue() const {
  return m_impl->valid_value;
}
codec::Address BftCore::ProposerOf(uint32_t round) const {
  return m_impl->ProposerAt(round);
}

std::vector<codec::Evidence> BftCore::PendingEvidence() const {
  std::vector<codec::Evidence> out;
  for (const auto& [id, ev] : m_impl->evidence) out.push_back(ev);
  return out;
}

bool BftCore::IsValidator() const {
  return m_impl->IsValidator();
}

}  // namespace gpunet::consensus
