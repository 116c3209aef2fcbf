// Hashes and signatures over canonical encodings (architecture §2.2): tx ids, block ids,
// the roots a header commits to, and the bytes each consensus signature covers.
// All hashes are BLAKE2b-256; all signatures are crypto::KeyPair::Sign over a
// domain tag and the chain id (crypto/domains.h), so none can be replayed as another.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"
#include "crypto/ed25519.h"

namespace gpunet::codec {

// ---- transactions ----

/// The tx id: BLAKE2b-256 of EncodeTx(tx) (signature included, so it is final only
/// once signed).
Hash32 TxHash(const Tx& tx);
/// The same id computed from bytes already known to be a canonical encoding (saves
/// re-encoding on the CheckTx path).
Hash32 TxHashOfEncoded(base::ByteSpan encoded_tx);
/// The bytes a tx signature covers (before the domain/chain prefix that
/// crypto::KeyPair::Sign adds): exactly EncodeTxBody(body).
base::Bytes TxSignBytes(const TxBody& body);
/// Signs body with key under Domain::kTx and body.chain_id. The caller ensures
/// body.sender == key.Public() (checked: signing for another key is a bug) and that
/// the body is valid (ValidateTxBody).
Tx SignTx(TxBody body, const crypto::KeyPair& key);
/// kBadSignature unless tx.signature is body.sender's signature of the body under
/// Domain::kTx and body.chain_id.
base::Status VerifyTxSignature(const Tx& tx);

// ---- consensus ----

/// BlockHash = BLAKE2b-256(EncodeBlockHeader(header)): the block id.
BlockId BlockHash(const BlockHeader& header);
/// BLAKE2b-256(EncodeValidatorSet(set)).
Hash32 ValidatorSetHash(const ValidatorSet& set);
/// BLAKE2b-256(EncodeCommit(commit)).
Hash32 CommitHash(const Commit& commit);
/// MerkleRoot of the encoded evidence items, in block order (empty list: the
/// MerkleRoot of no leaves).
Hash32 EvidenceHash(std::span<const Evidence> evidence);
/// MerkleRoot whose leaves are the 32-byte tx hashes, in block order, so a client
/// can prove inclusion knowing only the tx id.
Hash32 TxRoot(std::span<const Tx> txs);
Hash32 TxRootOfHashes(std::span<const Hash32> tx_hashes);
/// MerkleRoot whose leaves are the encoded receipts, in block order.
Hash32 ReceiptsRoot(std::span<const Receipt> receipts);
/// The same over receipts already encoded (EncodeReceipt), for a caller that keeps
/// the encodings.
Hash32 ReceiptsRootOfEncoded(std::span<const base::Bytes> encoded_receipts);

/// Every field of the vote except the signature, canonically encoded; signed under
/// Domain::kVote and the chain id.
base::Bytes VoteSignBytes(const Vote& vote);
/// Fills vote.signature. The caller ensures vote.validator == AddressOf(key.Public()).
void SignVote(Vote& vote, std::string_view chain_id, const crypto::KeyPair& key);
/// kBadSignature unless vote.signature is key's signature of the vote.
/// Checking that key belongs to vote.validator is the caller's (it holds the set).
base::Status VerifyVoteSignature(const Vote& vote, std::string_view chain_id, const PublicKey& key);
/// The precommit a CommitSig stands for, with its signature, so it verifies with
/// VerifyVoteSignature.
Vote CommitSigVote(const Commit& commit, const CommitSig& sig);

/// Every field of the proposal except the signature; signed under Domain::kProposal.
base::Bytes ProposalSignBytes(const Proposal& proposal);
void SignProposal(Proposal& proposal, std::string_view chain_id, const crypto::KeyPair& key);
base::Status VerifyProposalSignature(const Proposal& proposal, std::string_view chain_id,
                                     const PublicKey& key);

}  // namespace gpunet::codec
