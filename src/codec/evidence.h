// Verification of misbehaviour evidence (architecture §5.2, issue 5 item 4), kept in codec so
// that the ledger's ProcessProposal can check the evidence carried by a block without
// linking consensus (src/LAYERS): a pure function of the evidence, the chain id, the
// validator set that was in force at the evidence height and the including height.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "codec/types.h"

namespace gpunet::codec {

/// Where evidence is being checked: the chain, the set that signed at the evidence's
/// height, the height of the block that carries it and how old evidence may be.
struct EvidenceContext {
  std::string_view chain_id;
  /// The validator set in force at the evidence's height (the ledger has one fixed
  /// set until the staking issue; after that, the set of that height).
  const ValidatorSet* validators = nullptr;
  /// Height of the block that includes the evidence. Evidence must be strictly older
  /// (evidence.height < block_height): it proves misbehaviour at a finished height.
  uint64_t block_height = 0;
  /// Refuse evidence with block_height - evidence.height > max_age_heights (so a
  /// validator cannot be punished forever for an old key leak, and the check needs
  /// only recent validator sets). Consensus passes its configured age.
  uint64_t max_age_heights = 0;
};

/// Builds the canonical DuplicateVoteEvidence from two votes in either order
/// (vote_a gets the smaller block hash). Checks only the shape (same validator,
/// height, round and type; different block hashes), not the signatures.
base::Result<DuplicateVoteEvidence> MakeDuplicateVoteEvidence(const Vote& first,
                                                              const Vote& second);

/// Full check of one equivocation: the shape above, canonical order, the validator is
/// a member of ctx.validators, both signatures verify under the chain id, and the age
/// limit. Errors: kInvalidArgument (shape/order/age), kNotFound (not a member),
/// kBadSignature, each with a message naming what is wrong.
base::Status VerifyDuplicateVoteEvidence(const DuplicateVoteEvidence& evidence,
                                         const EvidenceContext& ctx);

/// Dispatch over the Evidence variant (one kind so far).
base::Status VerifyEvidence(const Evidence& evidence, const EvidenceContext& ctx);

/// The height the evidence is about (the votes' height).
uint64_t EvidenceHeight(const Evidence& evidence);

/// The validator that misbehaved.
Address EvidenceValidator(const Evidence& evidence);

/// Power of `validator` in `set`, nullopt when not a member (members have power > 0).
std::optional<uint64_t> ValidatorPower(const ValidatorSet& set, const Address& validator);

/// The member's public key, nullopt when `validator` is not in `set`.
std::optional<PublicKey> ValidatorKey(const ValidatorSet& set, const Address& validator);

}  // namespace gpunet::codec
