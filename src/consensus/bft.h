// The Tendermint BFT engine (architecture §5.2, issue 5): a pure state machine implementing
// Algorithm 1 of Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus"
// (arXiv 1807.04938); the .cpp cites the algorithm's line numbers at each rule.
//
// Pure core: no sockets, threads, clocks, files or randomness inside. The driver (the
// node's engine thread, or the simulator) feeds events in — Start, OnProposal,
// OnVote, OnTimeout, OnCommittedBlock — each with the current time now_ms, and
// executes the returned actions IN ORDER: broadcasts, timers, and the durable writes
// WriteWal / PersistSignGuard, each of which must be synced before the next action
// runs (that is what makes "recorded before the vote leaves" true).
//
// The application is driven synchronously through BftApplication (an adaptor over
// the ledger, which consensus may not include): PrepareProposal on the proposer,
// ProcessProposal before prevoting for a block, FinalizeAndCommit once decided. A
// proposal event carries the whole block (no block parts).
//
// docs/consensus.md explains the engine, the WAL and what a driver must do.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
#include "codec/types.h"
#include "consensus/bft_proposer.h"
#include "consensus/bft_wal.h"
#include "crypto/ed25519.h"

namespace gpunet::consensus {

// ---------------------------------------------------------------- configuration

/// Timeouts grow linearly per round (base + round * delta) so that after the network
/// stabilises some round is long enough for an honest proposer (paper §4, timeouts).
struct BftConfig {
  std::string chain_id;
  uint64_t timeout_propose_ms = 3000;
  uint64_t timeout_propose_delta_ms = 500;
  uint64_t timeout_prevote_ms = 1000;
  uint64_t timeout_prevote_delta_ms = 500;
  uint64_t timeout_precommit_ms = 1000;
  uint64_t timeout_precommit_delta_ms = 500;
  /// Pause after a decision before the next height's round 0 (CometBFT
  /// timeout_commit): paces blocks and lets late precommits arrive. 0 = start at once.
  uint64_t commit_wait_ms = 1000;
  /// Evidence about height e is kept and proposed only while current height - e <=
  /// this (also the age codec::VerifyEvidence enforces). >= 1.
  uint64_t evidence_max_age_heights = 100'000;
  /// Genesis time (ms): height 1's block time is genesis_time_ms + 1.
  uint64_t genesis_time_ms = 0;

  /// timeout for `step` in `round`: base + round * delta (checked math, saturating).
  uint64_t TimeoutMs(TimeoutStep step, uint32_t round) const;
};

/// Where the core starts: the first height it must decide and what it needs from the
/// chain below it. A driver builds it from its block store at every (re)start.
struct BftStartState {
  uint64_t height = 1;             ///< last committed height + 1
  codec::ValidatorSet validators;  ///< the set that signs `height`
  /// The set that signed height - 1 (verifies block.last_commit, weights its median
  /// time). Empty at height 1.
  codec::ValidatorSet last_validators;
  /// Priorities of `validators` at round 0 of `height`; nullopt = recompute with
  /// ProposerSchedule::AtHeight (correct while the set never changed).
  std::optional<ProposerSchedule> schedule;
  codec::Commit last_commit;        ///< certificate of height - 1; Commit{} at height 1
  codec::BlockId last_block_hash;   ///< BlockHash of height - 1; zero at height 1
  uint64_t last_block_time_ms = 0;  ///< time of height - 1; genesis time at height 1
};

// ---------------------------------------------------------------- interfaces

/// What the proposer asks the application to build.
struct BftProposalRequest {
  uint64_t height = 0;
  uint32_t round = 0;
  uint64_t time_ms = 0;       ///< the block's time: BlockTime(...), set it in the header
  codec::Address proposer;    ///< our address: the header's proposer
  codec::Commit last_commit;  ///< put in block.last_commit (certificate of height - 1)
  std::vector<codec::Evidence> evidence;  ///< include all of it (already verified)
  codec::ValidatorSet validators;         ///< set of `height` (header validator_set_hash)
  codec::ValidatorSet last_validators;    ///< set of height - 1 (CommitInfo powers)
};

/// The context of a block being processed or committed.
struct BftBlockContext {
  uint64_t height = 0;
  uint32_t round = 0;  ///< the round it was proposed in / decided in
  codec::ValidatorSet validators;
  codec::ValidatorSet last_validators;
};

/// Verdict of ProcessProposal on a well-formed block.
struct BftVerdict {
  bool accept = false;
  std::string reason;  ///< why not, for logs
};

/// The application as the engine sees it (implemented by the node's adaptor over
/// ledger::Application, and by toy ledgers in tests and the simulator). Errors from
/// any call are operational (store failed): the core returns them and the driver
/// stops the node rather than continue.
class BftApplication {
 public:
  virtual ~BftApplication() = default;
  /// Proposer only: a complete block for request.height with header.time_ms =
  /// request.time_ms, proposer = request.proposer, last_commit and evidence as given.
  virtual base::Result<codec::Block> PrepareProposal(const BftProposalRequest& request) = 0;
  /// Executes and judges a block proposed by someone (also called for our own block;
  /// the app may answer from cache). Called at most once per block hash per height.
  /// The core has already checked: height, last_block_hash, time, last_commit
  /// (VerifyCommit), last_commit_hash, validator_set_hash, proposer membership.
  /// The app checks the rest, including every evidence item (codec::VerifyEvidence).
  virtual base::Result<BftVerdict> ProcessProposal(const codec::Block& block,
                                                   const BftBlockContext& context) = 0;
  /// The decided block with its certificate: execute (from cache), persist, sync.
  /// Must return only once durable. The commit is what the next block's last_commit
  /// will be when we propose, so store it with the block.
  virtual base::Status FinalizeAndCommit(const codec::Block& block, const codec::Commit& commit,
                                         const BftBlockContext& context) = 0;
  /// The validator set that signs `height`; called right after FinalizeAndCommit of
  /// height - 1 (so updates take effect at H+2 as the ledger defines).
  virtual base::Result<codec::ValidatorSet> ValidatorSetAt(uint64_t height) = 0;
};

/// Makes signatures for the validator key. The core calls it only after the sign
/// guard allowed the message; an implementation may live on another device.
class BftSigner {
 public:
  virtual ~BftSigner() = default;
  virtual const codec::PublicKey& PublicKey() const = 0;
  /// Fills vote.signature (vote.validator is already our address).
  virtual void SignVote(codec::Vote& vote, std::string_view chain_id) const = 0;
  virtual void SignProposal(codec::Proposal& proposal, std::string_view chain_id) const = 0;
};

/// BftSigner over a key held in memory.
class KeyPairSigner final : public BftSigner {
 public:
  explicit KeyPairSigner(crypto::KeyPair key) : m_key(key) {}
  const codec::PublicKey& PublicKey() const override { return m_key.Public(); }
  void SignVote(codec::Vote& vote, std::string_view chain_id) const override;
  void SignProposal(codec::Proposal& proposal, std::string_view chain_id) const override;

 private:
  crypto::KeyPair m_key;
};

// ---------------------------------------------------------------- actions

/// Send to every peer: our proposal (or, from Gossip, one we hold) with its block.
struct BroadcastProposal {
  codec::Proposal proposal;
  codec::Block block;
};
/// Send to every peer: a vote (ours, or from Gossip one we hold).
struct BroadcastVote {
  codec::Vote vote;
};
/// Send to peers that are behind (from Gossip only): a decided block and its
/// certificate; they feed it to OnCommittedBlock.
struct BroadcastCommit {
  codec::Block block;
  codec::Commit commit;
};
/// Call OnTimeout(timeout) after duration_ms. Timers are never cancelled: a stale one
/// is ignored by the core, so the driver may keep them all.
struct ScheduleTimeout {
  TimeoutInfo timeout;
  uint64_t duration_ms = 0;
};
/// Append the record to the WAL and sync it BEFORE executing the next action.
struct WriteWal {
  WalRecord record;
};
/// Replace the sign guard file with this state (write new, fsync, rename, fsync the
/// directory) BEFORE executing the next action.
struct PersistSignGuard {
  SignGuardState state;
};
/// Informational: height `commit.height` was decided and FinalizeAndCommit has
/// already returned. The sim checks agreement on it; the node may log or publish it.
struct Decided {
  codec::Block block;
  codec::Commit commit;
  /// Round-0 schedule of the next height (persist it to skip AtHeight on restart).
  ProposerSchedule next_schedule;
};

using Action = std::variant<BroadcastProposal, BroadcastVote, BroadcastCommit, ScheduleTimeout,
                            WriteWal, PersistSignGuard, Decided>;

/// The answer to one event.
struct BftStep {
  std::vector<Action> actions;
  /// Empty when the input was used (or harmlessly redundant); otherwise why it was
  /// ignored: bad signature, not a member, wrong height, malformed... The core's state
  /// is unchanged by an ignored input; a node may score the peer that sent it.
  std::string ignored;
};

/// Counters for tests, the simulator's "did the hard cases happen" and metrics.
struct BftCounters {
  uint64_t heights_decided = 0;
  uint64_t rounds_started = 0;         ///< StartRound calls beyond round 0
  uint64_t round_skips = 0;            ///< Alg.1 l.55 jumps
  uint64_t decided_after_round0 = 0;   ///< heights decided in a round > 0
  uint64_t locks_taken = 0;            ///< l.38-39 (lockedRound set)
  uint64_t locks_changed = 0;          ///< a lock replaced by one for another value
  uint64_t prevotes_against_lock = 0;  ///< l.26/l.32 nil prevotes because of a lock
  uint64_t pol_unlocks = 0;  ///< l.29-30: prevoted a value other than the lock on a newer POL
  uint64_t equivocations_detected = 0;  ///< DuplicateVoteEvidence created
  uint64_t signatures_refused = 0;      ///< sign guard / own-record refusals
  uint64_t votes_verified = 0;          ///< signature checks of incoming votes
  uint64_t messages_ignored = 0;        ///< inputs answered with BftStep::ignored
  uint64_t catchup_commits = 0;         ///< heights committed through OnCommittedBlock
};

// ---------------------------------------------------------------- the core

/// One validator's (or observer's) consensus instance. Single-threaded: the driver
/// serialises all calls. Not copyable (it holds the application by reference).
class BftCore {
 public:
  /// Checks the start state (canonical non-empty set, heights, last commit verifies
  /// against last_validators unless height 1) and that guard.public_key is the
  /// signer's key (or zero for a fresh guard). signer == nullptr: an observer that
  /// follows and commits but never signs. `app` and `signer` must outlive the core.
  static base::Result<std::unique_ptr<BftCore>> Create(BftConfig config, BftStartState start,
                                                       BftApplication& app, const BftSigner* signer,
                                                       SignGuardState guard);

  /// Begins the current height. `wal` are the records read back after a crash (all of
  /// them; records of lower heights are skipped, of higher heights: kCorrupt — the
  /// application lost a commit). They are replayed in order without re-recording
  /// them; own votes/proposals found there are re-used, never re-signed differently.
  /// Call exactly once, before any other event.
  base::Result<BftStep> Start(uint64_t now_ms, std::span<const WalRecord> wal = {});

  /// A proposal and its block from the network (or our own, looped back: ignored).
  /// Proposals for height + 1 are buffered (bounded) until that height starts.
  base::Result<BftStep> OnProposal(const codec::Proposal& proposal, const codec::Block& block,
                                   uint64_t now_ms);
  /// A prevote or precommit from the network. A second, different vote of a validator
  /// for the same height/round/type becomes DuplicateVoteEvidence in the pool.
  base::Result<BftStep> OnVote(const codec::Vote& vote, uint64_t now_ms);
  /// A timer set by ScheduleTimeout fired. Stale timers are ignored.
  base::Result<BftStep> OnTimeout(const TimeoutInfo& timeout, uint64_t now_ms);
  /// Catch-up (block sync): a decided block of the current height with its
  /// certificate, verified with VerifyCommit against the current set, processed and
  /// committed as if decided here.
  base::Result<BftStep> OnCommittedBlock(const codec::Block& block, const codec::Commit& commit,
                                         uint64_t now_ms);

  /// Re-broadcasts for lossy networks: the proposals of the current height we hold,
  /// our own votes of the current height, and the last decided block with its
  /// certificate. Changes nothing; call it on a gossip timer.
  std::vector<Action> Gossip() const;

  /// Adds externally received evidence (gossip) after codec::VerifyEvidence against
  /// the current set; ignored (with the reason) when invalid, too old or known.
  BftStep OnEvidence(const codec::Evidence& evidence);

  // ---- observers (tests, simulator, RPC) ----
  uint64_t Height() const { return m_height; }
  uint32_t Round() const { return m_round; }
  /// Tendermint step of the current round: kPropose, kPrevote, kPrecommit, or
  /// kCommitWait after a decision while waiting for the next height.
  TimeoutStep Step() const { return m_step; }
  int64_t LockedRound() const { return m_locked_round; }
  std::optional<codec::BlockId> LockedValue() const;
  int64_t ValidRound() const { return m_valid_round; }
  std::optional<codec::BlockId> ValidValue() const;
  /// The address of the proposer of (current height, round).
  codec::Address ProposerOf(uint32_t round) const;
  const codec::ValidatorSet& Validators() const { return m_validators; }
  const codec::Commit& LastCommit() const { return m_last_commit; }
  const SignGuardState& Guard() const { return m_guard; }
  /// Evidence waiting for a block, in canonical (hash) order.
  std::vector<codec::Evidence> PendingEvidence() const;
  const BftCounters& Counters() const { return m_counters; }
  const BftConfig& Config() const { return m_config; }
  bool IsValidator() const;

  BftCore(const BftCore&) = delete;
  BftCore& operator=(const BftCore&) = delete;
  ~BftCore();

 private:
  struct RoundVotes;
  struct Impl;
  BftCore(BftConfig config, BftApplication& app, const BftSigner* signer, SignGuardState guard);

  BftConfig m_config;
  BftApplication& m_app;
  const BftSigner* m_signer;
  SignGuardState m_guard;
  BftCounters m_counters;

  uint64_t m_height = 0;
  uint32_t m_round = 0;
  TimeoutStep m_step = TimeoutStep::kPropose;
  int64_t m_locked_round = -1;
  int64_t m_valid_round = -1;
  codec::ValidatorSet m_validators;
  codec::ValidatorSet m_last_validators;
  codec::Commit m_last_commit;
  codec::BlockId m_last_block_hash;
  uint64_t m_last_block_time_ms = 0;
  std::unique_ptr<Impl> m_impl;  // message log, evidence pool, caches
};

}  // namespace gpunet::consensus
