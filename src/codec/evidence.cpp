#include "codec/evidence.h"

#include <string>

#include "base/bytes.h"
#include "base/check.h"
#include "codec/hashes.h"
#include "crypto/address.h"

namespace gpunet::codec {

namespace {

using base::ErrorCode;
using base::Fail;

const char* TypeName(VoteType t) {
  return t == VoteType::kPrevote ? "prevote" : "precommit";
}

base::Status CheckShape(const Vote& a, const Vote& b) {
  if (a.validator != b.validator)
    return Fail(ErrorCode::kInvalidArgument,
                "duplicate-vote evidence: the two votes are by different validators (" +
                    crypto::AddressToString(a.validator) + ", " +
                    crypto::AddressToString(b.validator) + ")");
  if (a.height != b.height || a.round != b.round || a.type != b.type)
    return Fail(ErrorCode::kInvalidArgument,
                "duplicate-vote evidence: the votes are for different height/round/type (" +
                    std::to_string(a.height) + "/" + std::to_string(a.round) + "/" +
                    TypeName(a.type) + " vs " + std::to_string(b.height) + "/" +
                    std::to_string(b.round) + "/" + TypeName(b.type) + ")");
  if (a.block_hash == b.block_hash)
    return Fail(ErrorCode::kInvalidArgument,
                "duplicate-vote evidence: both votes are for the same block hash, which is "
                "not a conflict");
  return base::Ok();
}

}  // namespace

base::Result<DuplicateVoteEvidence> MakeDuplicateVoteEvidence(const Vote& first,
                                                              const Vote& second) {
  GPUNET_TRY(CheckShape(first, second));
  DuplicateVoteEvidence ev;
  if (first.block_hash < second.block_hash) {
    ev.vote_a = first;
    ev.vote_b = second;
  } else {
    ev.vote_a = second;
    ev.vote_b = first;
  }
  return ev;
}

std::optional<uint64_t> ValidatorPower(const ValidatorSet& set, const Address& validator) {
  for (const auto& v : set.validators)
    if (crypto::AddressOf(v.public_key) == validator) return v.power;
  return std::nullopt;
}

std::optional<PublicKey> ValidatorKey(const ValidatorSet& set, const Address& validator) {
  for (const auto& v : set.validators)
    if (crypto::AddressOf(v.public_key) == validator) return v.public_key;
  return std::nullopt;
}

base::Status VerifyDuplicateVoteEvidence(const DuplicateVoteEvidence& evidence,
                                         const EvidenceContext& ctx) {
  GPUNET_CHECK(ctx.validators != nullptr);
  const Vote& a = evidence.vote_a;
  const Vote& b = evidence.vote_b;
  GPUNET_TRY(CheckShape(a, b));
  if (!(a.block_hash < b.block_hash))
    return Fail(ErrorCode::kInvalidArgument,
                "duplicate-vote evidence: votes not in canonical order (vote_a.block_hash "
                "must be the smaller); build it with MakeDuplicateVoteEvidence");
  if (a.height >= ctx.block_height)
    return Fail(ErrorCode::kInvalidArgument,
                "duplicate-vote evidence about height " + std::to_string(a.height) +
                    " cannot be included at height " + std::to_string(ctx.block_height) +
                    ": evidence must be about an earlier height");
  if (ctx.block_height - a.height > ctx.max_age_heights)
    return Fail(ErrorCode::kInvalidArgument,
                "duplicate-vote evidence about height " + std::to_string(a.height) +
                    " is too old at height " + std::to_string(ctx.block_height) + " (max age " +
                    std::to_string(ctx.max_age_heights) + " heights)");
  auto key = ValidatorKey(*ctx.validators, a.validator);
  if (!key)
    return Fail(ErrorCode::kNotFound, "duplicate-vote evidence names " +
                                          crypto::AddressToString(a.validator) +
                                          ", which is not in the validator set");
  auto sa = VerifyVoteSignature(a, ctx.chain_id, *key);
  if (!sa) return base::Wrap(sa.error(), "duplicate-vote evidence vote_a");
  auto sb = VerifyVoteSignature(b, ctx.chain_id, *key);
  if (!sb) return base::Wrap(sb.error(), "duplicate-vote evidence vote_b");
  return base::Ok();
}

base::Status VerifyEvidence(const Evidence& evidence, const EvidenceContext& ctx) {
  return std::visit([&](const auto& e) { return VerifyDuplicateVoteEvidence(e, ctx); }, evidence);
}

uint64_t EvidenceHeight(const Evidence& evidence) {
  return std::visit([](const auto& e) { return e.vote_a.height; }, evidence);
}

Address EvidenceValidator(const Evidence& evidence) {
  return std::visit([](const auto& e) { return e.vote_a.validator; }, evidence);
}

}  // namespace gpunet::codec
