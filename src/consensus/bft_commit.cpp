#include "consensus/bft_commit.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/limits.h"
#include "codec/hashes.h"
#include "crypto/address.h"

namespace gpunet::consensus {

using base::ErrorCode;
using base::Fail;

namespace {
// Address -> member, built once per call so a 150-member commit hashes each key once.
std::map<codec::Address, const codec::Validator*> IndexByAddress(const codec::ValidatorSet& set) {
  std::map<codec::Address, const codec::Validator*> out;
  for (const auto& v : set.validators) out.emplace(crypto::AddressOf(v.public_key), &v);
  return out;
}
}  // namespace

bool HasTwoThirds(uint64_t power, uint64_t total) {
  GPUNET_CHECK(total <= base::limits::kTotalVotingPowerMax && power <= total);
  return 3 * power > 2 * total;
}

bool HasOneThird(uint64_t power, uint64_t total) {
  GPUNET_CHECK(total <= base::limits::kTotalVotingPowerMax && power <= total);
  return 3 * power > total;
}

uint64_t TotalPower(const codec::ValidatorSet& validators) {
  uint64_t total = 0;
  for (const auto& v : validators.validators) {
    // A canonical set is bounded by kTotalVotingPowerMax; one that is not is a bug of
    // whoever built it (decoders reject it).
    GPUNET_CHECK(v.power <= base::limits::kTotalVotingPowerMax - total);
    total += v.power;
  }
  return total;
}

base::Status VerifyCommit(const codec::Commit& commit, const codec::ValidatorSet& validators,
                          std::string_view chain_id, const codec::BlockId& block_hash) {
  if (block_hash.IsZero())
    return Fail(ErrorCode::kInvalidArgument, "commit: a certificate must be for a block, not nil");
  if (commit.block_hash != block_hash)
    return Fail(ErrorCode::kInvalidArgument, "commit: certifies block " +
                                                 base::ToHex(commit.block_hash) + ", expected " +
                                                 base::ToHex(block_hash));
  if (commit.sigs.size() > validators.validators.size())
    return Fail(
        ErrorCode::kInvalidArgument,
        "commit: more signatures (" + std::to_string(commit.sigs.size()) + ") than validators");
  const uint64_t total = TotalPower(validators);
  const auto members = IndexByAddress(validators);
  uint64_t signed_power = 0;
  for (size_t i = 0; i < commit.sigs.size(); ++i) {
    const codec::CommitSig& sig = commit.sigs[i];
    if (i > 0 && !(commit.sigs[i - 1].validator < sig.validator))
      return Fail(ErrorCode::kInvalidArgument, "commit: signature " + std::to_string(i) + " by " +
                                                   crypto::AddressToString(sig.validator) +
                                                   (commit.sigs[i - 1].validator == sig.validator
                                                        ? " is a duplicate signer"
                                                        : " is out of ascending address order"));
    auto member = members.find(sig.validator);
    if (member == members.end())
      return Fail(ErrorCode::kNotFound, "commit: signer " + crypto::AddressToString(sig.validator) +
                                            " is not in the validator set");
    auto ok = codec::VerifyVoteSignature(codec::CommitSigVote(commit, sig), chain_id,
                                         member->second->public_key);
    if (!ok)
      return base::Wrap(ok.error(),
                        "commit: signature of " + crypto::AddressToString(sig.validator));
    signed_power += member->second->power;
  }
  if (!HasTwoThirds(signed_power, total))
    return Fail(ErrorCode::kInvalidArgument,
                "commit: signers hold " + std::to_string(signed_power) + " of " +
                    std::to_string(total) + " voting power, not more than 2/3");
  return base::Ok();
}

base::Result<uint64_t> MedianTime(const codec::Commit& commit,
                                  const codec::ValidatorSet& validators) {
  if (commit.sigs.empty())
    return Fail(ErrorCode::kInvalidArgument, "median time of an empty commit");
  struct Weighted {
    uint64_t time_ms;
    uint64_t power;
  };
  std::vector<Weighted> times;
  times.reserve(commit.sigs.size());
  uint64_t total = 0;
  const auto members = IndexByAddress(validators);
  for (const auto& sig : commit.sigs) {
    auto member = members.find(sig.validator);
    if (member == members.end())
      return Fail(ErrorCode::kNotFound, "median time: signer " +
                                            crypto::AddressToString(sig.validator) +
                                            " is not in the validator set");
    times.push_back({sig.time_ms, member->second->power});
    total += member->second->power;
  }
  // CometBFT types/block.go weightedMedian: sort by time, walk down total/2. (Equal
  // times are interchangeable: the result is a time, so sort needs no stability.)
  std::sort(times.begin(), times.end(),
            [](const Weighted& a, const Weighted& b) { return a.time_ms < b.time_ms; });
  uint64_t median = total / 2;
  for (const auto& t : times) {
    if (median <= t.power) return t.time_ms;
    median -= t.power;
  }
  GPUNET_UNREACHABLE();  // the powers sum to total > total / 2
}

base::Result<uint64_t> BlockTime(uint64_t height, const codec::Commit& last_commit,
                                 const codec::ValidatorSet& last_validators,
                                 uint64_t genesis_time_ms) {
  if (height == 0) return Fail(ErrorCode::kInvalidArgument, "block time: heights start at 1");
  if (height == 1) {
    if (!(last_commit == codec::Commit{}))
      return Fail(ErrorCode::kInvalidArgument, "block time: height 1 has the empty last commit");
    return genesis_time_ms + 1;
  }
  return MedianTime(last_commit, last_validators);
}

}  // namespace gpunet::consensus
