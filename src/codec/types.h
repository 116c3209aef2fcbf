// The ledger's value types: plain structs with one canonical binary encoding each
// (docs/encoding.md, codec/encoding.h). Everything that is hashed, signed, stored or
// sent between nodes is one of these, so node, consensus, storage and client agree
// on the bytes by construction.
//
// Field order in each struct is the order of the encoding. Changing a struct is a
// protocol change: update docs/encoding.md and the golden vectors in
// tests/vectors/encoding/ together.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

namespace gpunet::codec {

using base::Hash32;
using crypto::Address;
using crypto::PublicKey;
using crypto::Signature;

// ---------------------------------------------------------------- messages

/// Tags of transaction messages on the wire (u16). Append-only: a tag, once
/// published, keeps its meaning forever; never renumber or reuse one. The
/// alternatives of Msg appear in tag order (tag N is alternative N-1), checked at
/// compile time in encoding.cpp.
enum class MsgTag : uint16_t {
  kSend = 1,  ///< MsgSend: move tokens between accounts
  // market messages come next (issue 4): append here and to Msg, in the same order.
};

/// Moves amount_ugpn from the tx sender to `to`. The recipient account is created
/// when it does not exist (accounts are never deleted, design §2).
struct MsgSend {
  static constexpr MsgTag kTag = MsgTag::kSend;
  Address to;
  uint64_t amount_ugpn = 0;
  bool operator==(const MsgSend&) const = default;
};

/// One typed message of a transaction: a tagged union whose tag table is MsgTag.
using Msg = std::variant<MsgSend>;

/// Wire tag of the message held.
MsgTag TagOf(const Msg& msg);

// ---------------------------------------------------------------- transactions

/// The signed part of a transaction (design §2 envelope). The signature covers
/// TxSignBytes(body) under crypto::Domain::kTx and body.chain_id, so a tx can be
/// neither replayed on another chain nor reinterpreted as another kind of message.
struct TxBody {
  std::string chain_id;         ///< 1..kChainIdBytesMax printable ASCII (0x21..0x7e)
  PublicKey sender;             ///< the account is AddressOf(sender)
  uint64_t nonce = 0;           ///< must equal the sender account's next nonce
  uint64_t fee_ugpn = 0;        ///< paid even when a message fails
  uint64_t timeout_height = 0;  ///< last height that may include the tx; 0 = no timeout
  std::vector<Msg> msgs;        ///< 1..kMsgsPerTxMax, applied in order, all or none
  std::string memo;             ///< <= kMemoBytesMax bytes of UTF-8 without control chars
  bool operator==(const TxBody&) const = default;
};

/// A signed transaction. Its id is TxHash(tx) = BLAKE2b-256(EncodeTx(tx)).
struct Tx {
  TxBody body;
  Signature signature;
  bool operator==(const Tx&) const = default;
};

// ---------------------------------------------------------------- state values

/// The value stored for an address in the state tree.
struct Account {
  uint64_t balance_ugpn = 0;
  uint64_t nonce = 0;  ///< the nonce the next tx of this account must carry
  bool operator==(const Account&) const = default;
};

/// One member of a validator set. Power is > 0 (a zero power means "not a member").
struct Validator {
  PublicKey public_key;
  uint64_t power = 0;
  bool operator==(const Validator&) const = default;
};

/// A validator set in its canonical order: strictly ascending public_key (so no
/// duplicates), 1..kValidatorsMax members (0 only for an empty placeholder), total
/// power <= kTotalVotingPowerMax. Consensus derives proposer order from stakes, not
/// from this order. Identified by ValidatorSetHash.
struct ValidatorSet {
  std::vector<Validator> validators;
  bool operator==(const ValidatorSet&) const = default;
};

// ---------------------------------------------------------------- consensus

/// A block's id: BlockHash(header) = BLAKE2b-256(EncodeBlockHeader(header)). The header
/// commits to the rest of the block through tx_root, evidence_hash and last_commit_hash.
using BlockId = Hash32;

/// Vote steps of Tendermint. Encoded as one byte; other values are rejected.
enum class VoteType : uint8_t {
  kPrevote = 1,
  kPrecommit = 2,
};

/// A signed prevote or precommit (Tendermint). block_hash all zero = a vote for nil.
/// The signature covers VoteSignBytes(vote) (every field but the signature) under
/// crypto::Domain::kVote and the chain id.
struct Vote {
  VoteType type = VoteType::kPrevote;
  uint64_t height = 0;
  uint32_t round = 0;
  BlockId block_hash;
  uint64_t time_ms = 0;  ///< the signer's clock; block time is the weighted median of these
  Address validator;
  Signature signature;
  bool operator==(const Vote&) const = default;
};

/// One precommit inside a Commit: the vote {kPrecommit, commit.height, commit.round,
/// commit.block_hash, time_ms, validator} reconstructed by CommitSigVote.
struct CommitSig {
  Address validator;
  uint64_t time_ms = 0;
  Signature signature;
  bool operator==(const CommitSig&) const = default;
};

/// The commit certificate of a block: precommits of > 2/3 of the voting power for
/// block_hash at (height, round). sigs are in strictly ascending validator address
/// order (no duplicates), at most kValidatorsMax. The empty Commit{} (height 0, no
/// sigs) is the last commit of the first block.
struct Commit {
  uint64_t height = 0;
  uint32_t round = 0;
  BlockId block_hash;
  std::vector<CommitSig> sigs;
  bool operator==(const Commit&) const = default;
};

/// A proposer's signed proposal of block_hash at (height, round). pol_round is the
/// Tendermint "valid round": -1 when none, otherwise 0 <= pol_round < round. The
/// signature covers ProposalSignBytes under crypto::Domain::kProposal.
struct Proposal {
  uint64_t height = 0;
  uint32_t round = 0;
  int32_t pol_round = -1;
  BlockId block_hash;
  uint64_t time_ms = 0;
  Signature signature;
  bool operator==(const Proposal&) const = default;
};

/// Tags of evidence kinds on the wire (u16). Append-only, like MsgTag.
enum class EvidenceTag : uint16_t {
  kDuplicateVote = 1,  ///< DuplicateVoteEvidence
};

/// Two votes of one validator for one (height, round, type) with different block
/// hashes (nil included). Canonical order: vote_a.block_hash < vote_b.block_hash
/// (byte-wise), so one equivocation has one encoding and one hash. Whether the two
/// votes really conflict and are correctly signed is consensus' check, not the codec's.
struct DuplicateVoteEvidence {
  static constexpr EvidenceTag kTag = EvidenceTag::kDuplicateVote;
  Vote vote_a;
  Vote vote_b;
  bool operator==(const DuplicateVoteEvidence&) const = default;
};

/// Proof of misbehaviour carried in a block: a tagged union whose tag table is
/// EvidenceTag (alternative N-1 has tag N).
using Evidence = std::variant<DuplicateVoteEvidence>;

/// Wire tag of the evidence held.
EvidenceTag TagOf(const Evidence& evidence);

// ---------------------------------------------------------------- blocks

/// Block header (design §2). Every hash field is 32 bytes; all-zero means "none"
/// (e.g. last_block_hash of the first block).
struct BlockHeader {
  std::string chain_id;            ///< same rules as TxBody::chain_id
  uint64_t app_version = 0;        ///< version of the state machine rules
  uint64_t height = 0;             ///< first block is 1
  uint64_t time_ms = 0;            ///< consensus time, ms since the Unix epoch
  BlockId last_block_hash;         ///< BlockHash of height - 1; zero at height 1
  Hash32 tx_root;                  ///< TxRoot(txs)
  Hash32 receipts_root;            ///< ReceiptsRoot(receipts of this block)
  Hash32 state_root;               ///< state tree root AFTER executing this block
  Address proposer;                ///< AddressOf(proposer's public key)
  Hash32 validator_set_hash;       ///< ValidatorSetHash of the set that signs this block
  Hash32 next_validator_set_hash;  ///< ... of the set that signs the next block
  Hash32 last_commit_hash;         ///< CommitHash(block.last_commit)
  Hash32 evidence_hash;            ///< EvidenceHash(block.evidence)
  bool operator==(const BlockHeader&) const = default;
};

/// A whole block: header, transactions in execution order, evidence, and the commit
/// certificate of the previous block (Commit{} at height 1).
struct Block {
  BlockHeader header;
  std::vector<Tx> txs;             ///< <= kTxsPerBlockMax, each <= kTxBytesMax encoded
  std::vector<Evidence> evidence;  ///< <= kEvidencePerBlockMax
  Commit last_commit;
  bool operator==(const Block&) const = default;
};

// ---------------------------------------------------------------- receipts

/// A typed record of what a tx did, for clients and indexers. Attribute keys are
/// unique and iterate in ascending byte order (std::map), which is also the encoded
/// order. type and keys: 1..kEventTypeBytesMax / kEventAttributeKeyBytesMax printable
/// ASCII; values: <= kEventAttributeValueBytesMax UTF-8 without control chars.
struct Event {
  std::string type;
  std::map<std::string, std::string> attributes;  ///< <= kEventAttributesMax entries
  bool operator==(const Event&) const = default;
};

/// The outcome of one included tx, committed to by the header's receipts_root.
/// code is the ledger's result code (0 = ok; the closed enum lives in ledger).
struct Receipt {
  Hash32 tx_hash;
  uint16_t code = 0;
  uint64_t fee_ugpn = 0;  ///< fee charged (also when code != 0)
  uint64_t height = 0;
  uint32_t index = 0;         ///< position of the tx in its block
  std::vector<Event> events;  ///< <= kEventsPerReceiptMax
  bool operator==(const Receipt&) const = default;
};

}  // namespace gpunet::codec
