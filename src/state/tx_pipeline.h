// The transaction pipeline (architecture §2.5; rippled Transactor, Bitcoin Core tx_check vs
// tx_verify): three stages, each a pure function of its inputs.
//
//  1. CheckStateless: size, strict decode, per-tx message limit, chain id, the
//     market's preflight of each market message (market/preflight.h), amounts, fee
//     against the size-based price, signature. Needs no state. The signature is
//     verified ONCE per tx hash: a verified hash goes into a SignatureCache shared by
//     CheckTx and block execution, so a tx admitted to the mempool is not verified
//     again when its block executes.
//  2. CheckStateful: timeout height, nonce, the sender can pay the fee.
//  3. ApplyTx: runs 2 with the exact-nonce rule, then charges the fee (burned share
//     + proposer share, fees.h), advances the nonce, and applies the messages in
//     order under a checkpoint; when one fails, all of them are rolled back, the fee
//     and nonce stay, and the receipt carries the code. A GasMeter (gas.h) with the
//     tx's gas limit is attached to the StateDb for the whole stage: the tx base is
//     charged first and prepays the checks and the fee bookkeeping; the meter is
//     looked at after every message, and an exhausted one is out_of_gas (an
//     included failure like the others).
//
// Any refusal of stages 1-2 is a codec::TxError: such a tx changes nothing and may
// not be in a block. Its code is "rejected before inclusion" (1..99), except a
// preflight refusal, which carries the market's code (200..999) so that the submitter
// sees the same code the rules would have put in a receipt (docs/market.md
// "Preflight"): a refusal is told by where it comes from, not by its number. base::Error
// results are operational (the store could not be read): the caller stops.
#pragma once

#include <absl/container/flat_hash_set.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "base/bytes.h"
#include "base/mutex.h"
#include "base/result.h"
#include "codec/tx_result.h"
#include "codec/types.h"
#include "state/fees.h"
#include "state/gas.h"
#include "state/state_db.h"

namespace gpunet::state {

/// The chain's rules for transactions, from genesis.
struct PipelineParams {
  std::string chain_id;
  FeeParams fees;
  size_t tx_bytes_max = 0;       ///< <= limits::kTxBytesMax
  size_t msgs_per_tx_max = 0;    ///< <= limits::kMsgsPerTxMax
  uint64_t nonce_ahead_max = 0;  ///< CheckTx (kAllowAhead) accepts nonces up to next + this
  GasParams gas;
};

/// Tx hashes whose signature verified, so each tx is verified once (architecture §6).
/// A tx hash covers body and signature, so a hit proves the same signature
/// verified before. Bounded: about `capacity` entries, the oldest of a shard
/// forgotten first. Thread-safe.
class SignatureCache {
 public:
  explicit SignatureCache(size_t capacity);
  bool Contains(const base::Hash32& tx_hash) const;
  void Insert(const base::Hash32& tx_hash);
  size_t Size() const;

 private:
  // Only probed, never iterated, so the sets' order cannot leak into any result.
  // Flat tables: a tree of a million hashes cost a cache miss per level on every
  // lookup. Shards, each with its own lock: the RPC threads insert and the engine
  // thread probes per tx, and one lock between them was a queue (the RPC threads
  // run at a lower priority).
  struct Shard {
    mutable base::Mutex mutex;
    absl::flat_hash_set<base::Hash32> set GUARDED_BY(mutex);
    std::deque<base::Hash32> order GUARDED_BY(mutex);  ///< oldest first
  };
  static constexpr size_t kShards = 16;
  Shard& ShardOf(const base::Hash32& h) const { return m_shards[h[31] % kShards]; }

  size_t m_shard_capacity;
  mutable std::array<Shard, kShards> m_shards;
};

/// A tx that passed stage 1, with what later stages need.
struct CheckedTx {
  codec::Tx tx;
  base::Hash32 hash;
  codec::Address sender;
  uint64_t encoded_bytes = 0;
  uint64_t required_fee_ugpn = 0;  ///< the price of this tx's size (<= tx.body.fee_ugpn)
  uint64_t amount_ugpn = 0;        ///< sum of the message amounts
  /// What the fee buys after the byte and message price (gas.h GasLimitOf);
  /// >= the tx base and <= the block gas limit.
  uint64_t gas_limit = 0;
};

/// What stage 1 leaves out for a simulation (POST /tx/simulate), which runs a tx
/// before its fee and signature exist; everything else is the one same check.
struct StatelessOptions {
  /// An all-zero signature is not checked (a signature that is not all zero is).
  bool allow_unsigned = false;
  /// The fee is not checked against the required fee or the gas bounds; the tx
  /// gets the most gas one tx can buy (the block's limit).
  bool skip_fee_and_gas = false;
};

/// Stage 1 over received bytes. `cache` may be null (always verify).
codec::TxResult<CheckedTx> CheckStateless(base::ByteSpan bytes, const PipelineParams& params,
                                          SignatureCache* cache,
                                          const StatelessOptions& options = {});
/// Stage 1 over a tx already decoded (a block's): checks its canonical encoding.
codec::TxResult<CheckedTx> CheckStateless(const codec::Tx& tx, const PipelineParams& params,
                                          SignatureCache* cache);

enum class NonceRule {
  kExact,       ///< block execution: nonce == the account's next nonce
  kAllowAhead,  ///< CheckTx: next <= nonce <= next + nonce_ahead_max (mempool queues)
};

/// Stage 2 at block `height` (CheckTx uses the next height). Ok: the sender's
/// account as it is now.
base::Result<codec::TxResult<codec::Account>> CheckStateful(const StateDb& db, const CheckedTx& tx,
                                                            uint64_t height,
                                                            const PipelineParams& params,
                                                            NonceRule rule);
/// Stage 2 against the sender's account as the caller already read it.
codec::TxResult<codec::Account> CheckStatefulAgainst(const codec::Account& account,
                                                     const CheckedTx& tx, uint64_t height,
                                                     const PipelineParams& params, NonceRule rule);

/// Where a tx executes.
struct BlockContext {
  uint64_t height = 0;
  uint64_t time_ms = 0;
  codec::Address proposer;  ///< all zero: fees go to the fee pool
};

/// What a tx's meter counted: the gas used (also when it failed) and its operations.
struct GasUsed {
  uint64_t gas = 0;
  GasCounts ops;
};

/// Stage 3. A TxError means the tx was refused (stage 2) and `db` is unchanged;
/// otherwise the tx is included and the receipt says whether its messages applied.
/// `used` (optional) receives what its meter counted.
base::Result<codec::TxResult<codec::Receipt>> ApplyTx(StateDb& db, const CheckedTx& tx,
                                                      const BlockContext& block, uint32_t index,
                                                      const PipelineParams& params,
                                                      GasUsed* used = nullptr);

}  // namespace gpunet::state
