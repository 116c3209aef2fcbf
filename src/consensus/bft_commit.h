// Quorum arithmetic, commit certificates and block time of the BFT engine: pure
// functions anyone can call (a light client, block sync, the ledger adaptor, tests).
//
// All power math is integer: total power <= limits::kTotalVotingPowerMax = INT64_MAX/8,
// so 3 * power never overflows uint64.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"
#include "codec/types.h"

namespace gpunet::consensus {

/// power > 2/3 of total, i.e. 3 * power > 2 * total (Tendermint's 2f + 1).
bool HasTwoThirds(uint64_t power, uint64_t total);
/// power > 1/3 of total, i.e. 3 * power > total (Tendermint's f + 1: at least one
/// honest validator when fewer than a third are faulty).
bool HasOneThird(uint64_t power, uint64_t total);

/// Sum of the powers of a set (checked against limits::kTotalVotingPowerMax).
uint64_t TotalPower(const codec::ValidatorSet& validators);

/// Checks a commit certificate for `block_hash` signed by `validators` (the set that
/// signed that block's height): block_hash matches and is not zero, sigs in strictly
/// ascending address order (so no duplicate signer), every signer a member, every
/// signature a valid precommit {commit.height, commit.round, block_hash, time_ms},
/// and the signers' power > 2/3 of the set's total. Errors name the first fault:
/// kInvalidArgument (wrong hash, order, duplicate, not enough power), kNotFound (a
/// signer not in the set), kBadSignature (a forged signature).
base::Status VerifyCommit(const codec::Commit& commit, const codec::ValidatorSet& validators,
                          std::string_view chain_id, const codec::BlockId& block_hash);

/// CometBFT MedianTime: the stake-weighted median of the commit's precommit times
/// (signers sorted by time; walk down total_signer_power / 2). The commit must have
/// been verified against `validators` (a signer outside the set is kNotFound; an
/// empty commit is kInvalidArgument).
base::Result<uint64_t> MedianTime(const codec::Commit& commit,
                                  const codec::ValidatorSet& validators);

/// The time of block `height`: genesis_time_ms + 1 at height 1 (last_commit is the
/// empty Commit{}), otherwise MedianTime(last_commit, last_validators). Never a clock.
base::Result<uint64_t> BlockTime(uint64_t height, const codec::Commit& last_commit,
                                 const codec::ValidatorSet& last_validators,
                                 uint64_t genesis_time_ms);

}  // namespace gpunet::consensus
