#include "codec/hashes.h"

#include <vector>

#include "base/check.h"
#include "codec/encoding.h"
#include "codec/merkle.h"
#include "crypto/address.h"
#include "crypto/hash.h"

namespace gpunet::codec {

namespace {

base::Status VerifyOrFail(const PublicKey& key, crypto::Domain domain, std::string_view chain_id,
                          base::ByteSpan message, const Signature& sig, std::string_view what) {
  if (crypto::Verify(key, domain, chain_id, message, sig)) return base::Ok();
  return base::Fail(base::ErrorCode::kBadSignature,
                    std::string(what) + " signature does not verify for key " + base::ToHex(key) +
                        " on chain \"" + std::string(chain_id) + "\"");
}

// Everything but the trailing signature: the sign bytes of votes and proposals are
// their canonical encodings without the last field.
template <class T>
base::Bytes EncodeUnsigned(T value) {
  value.signature = Signature{};
  Writer w(192);
  Write(w, value);
  base::Bytes out = std::move(w).Take();
  GPUNET_CHECK(out.size() >= Signature::kSize);
  out.resize(out.size() - Signature::kSize);
  return out;
}

}  // namespace

Hash32 TxHash(const Tx& tx) {
  return crypto::Blake2b256(EncodeTx(tx));
}

Hash32 TxHashOfEncoded(base::ByteSpan encoded_tx) {
  return crypto::Blake2b256(encoded_tx);
}

base::Bytes TxSignBytes(const TxBody& body) {
  return EncodeTxBody(body);
}

Tx SignTx(TxBody body, const crypto::KeyPair& key) {
  GPUNET_CHECK(body.sender == key.Public());
  Tx tx;
  tx.signature = key.Sign(crypto::Domain::kTx, body.chain_id, TxSignBytes(body));
  tx.body = std::move(body);
  return tx;
}

base::Status VerifyTxSignature(const Tx& tx) {
  return VerifyOrFail(tx.body.sender, crypto::Domain::kTx, tx.body.chain_id, TxSignBytes(tx.body),
                      tx.signature, "tx");
}

BlockId BlockHash(const BlockHeader& header) {
  return crypto::Blake2b256(EncodeBlockHeader(header));
}

Hash32 ValidatorSetHash(const ValidatorSet& set) {
  return crypto::Blake2b256(EncodeValidatorSet(set));
}

Hash32 CommitHash(const Commit& commit) {
  return crypto::Blake2b256(EncodeCommit(commit));
}

Hash32 EvidenceHash(std::span<const Evidence> evidence) {
  std::vector<base::Bytes> leaves;
  leaves.reserve(evidence.size());
  for (const auto& e : evidence) leaves.push_back(EncodeEvidence(e));
  return MerkleRoot(leaves);
}

Hash32 TxRoot(std::span<const Tx> txs) {
  std::vector<Hash32> hashes;
  hashes.reserve(txs.size());
  for (const auto& tx : txs) hashes.push_back(TxHash(tx));
  return MerkleRootOfHashes(hashes);
}

Hash32 TxRootOfHashes(std::span<const Hash32> tx_hashes) {
  return MerkleRootOfHashes(tx_hashes);
}

Hash32 ReceiptsRoot(std::span<const Receipt> receipts) {
  std::vector<base::Bytes> leaves;
  leaves.reserve(receipts.size());
  for (const auto& r : receipts) leaves.push_back(EncodeReceipt(r));
  return ReceiptsRootOfEncoded(leaves);
}

Hash32 ReceiptsRootOfEncoded(std::span<const base::Bytes> encoded_receipts) {
  return MerkleRoot(encoded_receipts);
}

base::Bytes VoteSignBytes(const Vote& vote) {
  return EncodeUnsigned(vote);
}

void SignVote(Vote& vote, std::string_view chain_id, const crypto::KeyPair& key) {
  GPUNET_CHECK(vote.validator == crypto::AddressOf(key.Public()));
  vote.signature = key.Sign(crypto::Domain::kVote, chain_id, VoteSignBytes(vote));
}

base::Status VerifyVoteSignature(const Vote& vote, std::string_view chain_id,
                                 const PublicKey& key) {
  return VerifyOrFail(key, crypto::Domain::kVote, chain_id, VoteSignBytes(vote), vote.signature,
                      "vote");
}

Vote CommitSigVote(const Commit& commit, const CommitSig& sig) {
  return Vote{.type = VoteType::kPrecommit,
              .height = commit.height,
              .round = commit.round,
              .block_hash = commit.block_hash,
              .time_ms = sig.time_ms,
              .validator = sig.validator,
              .signature = sig.signature};
}

base::Bytes ProposalSignBytes(const Proposal& proposal) {
  return EncodeUnsigned(proposal);
}

void SignProposal(Proposal& proposal, std::string_view chain_id, const crypto::KeyPair& key) {
  proposal.signature = key.Sign(crypto::Domain::kProposal, chain_id, ProposalSignBytes(proposal));
}

base::Status VerifyProposalSignature(const Proposal& proposal, std::string_view chain_id,
                                     const PublicKey& key) {
  return VerifyOrFail(key, crypto::Domain::kProposal, chain_id, ProposalSignBytes(proposal),
                      proposal.signature, "proposal");
}

}  // namespace gpunet::codec
