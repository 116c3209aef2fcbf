// The application interface (architecture §2.6): what a consensus engine calls, shaped like
// ABCI++ (CometBFT) so the solo engine and the BFT engine drive the ledger through
// the same calls. Frozen: engines are written against this file.
//
// The order of calls for one height H (both engines):
//
//   proposer:   PrepareProposal(H)  -> a complete block (header filled: roots,
//                                      state root after the block, validator hashes)
//   everyone:   ProcessProposal(block) -> accept/reject (executes the block; the
//                                      proposer's own block is accepted from cache)
//   on decide:  FinalizeBlock(block)   -> receipts, state root, validator updates
//               Commit()               -> durable (one synced KvStore batch)
//
// Between blocks, any thread may call CheckTx and Query. Solo passes empty
// last-commit info and no misbehaviour; the BFT engine fills them.
//
// Execution results are cached per block hash: the proposer's PrepareProposal
// result is reused by its ProcessProposal and FinalizeBlock; a validator's
// ProcessProposal result is reused by FinalizeBlock. FinalizeBlock of a block never
// seen executes it (replay, block sync) and checks the header against the result.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/smt_proof.h"
#include "codec/tx_result.h"
#include "codec/types.h"
#include "state/tx_pipeline.h"

namespace gpunet::ledger {

// ---------------------------------------------------------------- CheckTx

enum class CheckTxMode {
  kNew,      ///< first admission of a tx (RPC, gossip)
  kRecheck,  ///< after a block: is a pending tx still valid against the new state?
};

/// What the mempool needs to queue a tx: its identity, its sender's queue position
/// and its priority. When code != kOk only code, message and (if decoded) tx_hash
/// are meaningful.
struct CheckTxResponse {
  codec::TxCode code = codec::TxCode::kOk;
  std::string message;   ///< specifics for people; empty when ok
  base::Hash32 tx_hash;  ///< zero when the bytes did not decode
  codec::Address sender;
  uint64_t nonce = 0;                 ///< the tx's nonce
  uint64_t account_nonce = 0;         ///< the sender's next nonce in committed state
  uint64_t account_balance_ugpn = 0;  ///< the sender's committed balance
  uint64_t fee_ugpn = 0;              ///< the tx's fee (its priority; RBF compares it)
  uint64_t required_fee_ugpn = 0;     ///< the price of the tx's size (fee >= this)
  uint64_t amount_ugpn = 0;           ///< sum of the amounts its messages move
  uint64_t bytes = 0;                 ///< encoded size (block-bytes budget)
  uint64_t msgs = 0;                  ///< message count ("gas" until messages have costs)
  uint64_t timeout_height = 0;        ///< 0 = none; the mempool expires it after this height
  /// The decoded, signature-checked tx (set when the stateless checks passed): the
  /// mempool keeps it and hands it to PrepareProposal, which then does not decode,
  /// hash or look the signature up again.
  std::shared_ptr<const state::CheckedTx> checked;
  bool Ok() const { return code == codec::TxCode::kOk; }
};

// ---------------------------------------------------------------- consensus inputs

/// One validator's part in the last commit (ABCI VoteInfo).
struct VoteInfo {
  codec::Address validator;
  uint64_t power = 0;
  bool signed_last_block = false;
  bool operator==(const VoteInfo&) const = default;
};

/// Who signed the previous block (ABCI CommitInfo). Empty under solo.
struct CommitInfo {
  uint32_t round = 0;
  std::vector<VoteInfo> votes;
  bool operator==(const CommitInfo&) const = default;
};

/// Misbehaviour found by consensus (ABCI Misbehavior); the evidence itself travels
/// in the block. Empty under solo.
struct Misbehavior {
  enum class Kind : uint8_t { kDuplicateVote = 1 };
  Kind kind = Kind::kDuplicateVote;
  codec::Address validator;
  uint64_t power = 0;
  uint64_t height = 0;
  uint64_t time_ms = 0;
  uint64_t total_voting_power = 0;
  bool operator==(const Misbehavior&) const = default;
};

/// A change of the validator set: power 0 removes the validator. Returned by
/// FinalizeBlock of height H, in force from height H + 2 (ABCI semantics).
struct ValidatorUpdate {
  codec::PublicKey public_key;
  uint64_t power = 0;
  bool operator==(const ValidatorUpdate&) const = default;
};

/// The block parameters consensus enforces. Returned by FinalizeBlock only when
/// they change (never yet: no governance).
struct ConsensusParams {
  uint64_t block_bytes_max = 0;
  uint64_t block_txs_max = 0;
  uint64_t block_interval_ms = 0;
  uint64_t block_gas_max = 0;  ///< sum of the gas limits of a block's txs (0: none)
  bool operator==(const ConsensusParams&) const = default;
};

// ---------------------------------------------------------------- proposals

struct PrepareProposalRequest {
  uint64_t height = 0;   ///< must be last committed height + 1
  uint64_t time_ms = 0;  ///< consensus time; > the previous block's time
  codec::Address proposer;
  /// Candidate txs in the mempool's priority order; the app takes a prefix-respecting
  /// subset (skips those now invalid, stops at the block limits).
  std::vector<base::Bytes> txs;
  /// More candidates, after `txs`: each exactly as this app's CheckTx returned it
  /// (CheckTxResponse::checked), so not checked statelessly again.
  std::vector<std::shared_ptr<const state::CheckedTx>> checked_txs;
  /// 0 = the chain's block_bytes_max; otherwise the smaller of both.
  uint64_t max_block_bytes = 0;
  codec::Commit last_commit;  ///< certificate of height - 1 (Commit{} under solo / at 1)
  CommitInfo last_commit_info;
  std::vector<codec::Evidence> evidence;  ///< to include in this block
  std::vector<Misbehavior> misbehavior;
};

/// A candidate the proposer left out and why (the mempool drops rejected ones).
struct SkippedTx {
  base::Hash32 tx_hash;                     ///< zero when the bytes did not decode
  codec::TxCode code = codec::TxCode::kOk;  ///< kOk: valid but over the block limits
  std::string message;
};

struct PrepareProposalResponse {
  codec::Block block;  ///< complete: sign/propose it as is
  std::vector<SkippedTx> skipped;
};

struct ProcessProposalRequest {
  codec::Block block;
  CommitInfo last_commit_info;
  std::vector<Misbehavior> misbehavior;
};

struct ProcessProposalResponse {
  bool accept = false;
  std::string reason;  ///< why it was rejected
};

// ---------------------------------------------------------------- finalize / commit

struct FinalizeBlockRequest {
  codec::Block block;
  CommitInfo last_commit_info;
  std::vector<Misbehavior> misbehavior;
};

struct FinalizeBlockResponse {
  uint64_t height = 0;
  base::Hash32 block_hash;
  base::Hash32 state_root;                         ///< == block.header.state_root (checked)
  std::vector<codec::Receipt> receipts;            ///< one per tx, in block order
  std::vector<ValidatorUpdate> validator_updates;  ///< effective at height + 2
  std::optional<ConsensusParams> consensus_param_updates;
  std::vector<codec::Event> events;  ///< block-level events (begin/end-block work)
};

struct CommitResponse {
  uint64_t height = 0;
  base::Hash32 block_hash;
  base::Hash32 state_root;
  uint64_t retain_height = 0;  ///< blocks below may be pruned (0: keep everything)
};

// ---------------------------------------------------------------- queries

/// Query paths. `data` is the path's argument; values are codec encodings.
///   "/account"  data = 20-byte address   value = codec Account (absent: never funded)
///   "/state"    data = raw state key     value = raw stored value
struct QueryRequest {
  std::string path;
  base::Bytes data;
  uint64_t height = 0;  ///< 0 = latest committed; other heights: kUnsupported (no history)
  bool prove = false;   ///< attach an SMT proof against state_root
};

struct QueryResponse {
  uint64_t height = 0;      ///< the committed height answered from
  base::Hash32 state_root;  ///< that height's header state root
  base::Bytes key;          ///< the state key looked up
  std::optional<base::Bytes> value;
  std::optional<codec::SmtProof> proof;  ///< membership or non-membership of key
};

/// Where the app stands (ABCI Info).
struct AppInfo {
  std::string chain_id;
  uint64_t app_version = 0;
  base::Hash32 genesis_hash;
  uint64_t last_height = 0;         ///< 0 before the first block
  base::Hash32 last_block_hash;     ///< zero at height 0
  uint64_t last_block_time_ms = 0;  ///< genesis time at height 0
  base::Hash32 state_root;          ///< committed state root
  ConsensusParams consensus_params;
  codec::ValidatorSet validators;  ///< the set that signs the next block
};

// ---------------------------------------------------------------- the interface

class Application {
 public:
  virtual ~Application() = default;

  /// Thread-safe (any number of callers, concurrently with the block calls).
  virtual AppInfo Info() const = 0;
  /// Stateless + stateful checks against committed state, the nonce rule relaxed
  /// to next <= nonce <= next + nonce_ahead_max so the mempool can queue. Verifies
  /// the signature at most once per tx hash (shared with block execution).
  /// Thread-safe. Changes nothing.
  virtual CheckTxResponse CheckTx(base::ByteSpan tx_bytes, CheckTxMode mode) = 0;
  /// CheckTx's stateful part again, for a pending tx after a block: `tx` is a
  /// CheckTxResponse::checked of this app, so nothing stateless is redone.
  /// Thread-safe. Changes nothing.
  virtual CheckTxResponse RecheckTx(std::shared_ptr<const state::CheckedTx> tx) = 0;

  /// Builds and executes the next block. Errors are operational (store unreadable)
  /// or a request that is not for the next height.
  virtual base::Result<PrepareProposalResponse> PrepareProposal(
      const PrepareProposalRequest& request) = 0;
  /// Validates and executes a proposed block. Errors are operational only; a bad
  /// block is accept = false with the reason.
  virtual base::Result<ProcessProposalResponse> ProcessProposal(
      const ProcessProposalRequest& request) = 0;
  /// The decided block: results (cached from Prepare/Process, else executed now).
  /// An error means the block is invalid for this state (it cannot be committed)
  /// or the store failed; the engine must stop rather than continue.
  virtual base::Result<FinalizeBlockResponse> FinalizeBlock(
      const FinalizeBlockRequest& request) = 0;
  /// Persists the last finalized block: block, receipts, state changes, tx index,
  /// meta, in ONE synced KvStore::Commit; then updates the in-memory state tree.
  /// Returns only after the sync, so "committed" may be reported.
  virtual base::Result<CommitResponse> Commit() = 0;

  /// Reads committed state, with an SMT proof against the committed state root
  /// when asked. Thread-safe.
  virtual base::Result<QueryResponse> Query(const QueryRequest& request) const = 0;

  /// Time (ms, consensus clock) by which the app needs a block even without txs;
  /// nullopt = no deadline (market deadlines come with issue 4).
  virtual std::optional<uint64_t> NextDeadline() const = 0;
};

}  // namespace gpunet::ledger
