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
#include <string_view>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "base/limits.h"
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
  // ---- market (issue 4, docs/market.md); append new tags at the end ----
  kProviderRegister = 2,       ///< MsgProviderRegister
  kProviderUpdate = 3,         ///< MsgProviderUpdate
  kProviderDeregister = 4,     ///< MsgProviderDeregister
  kProviderBond = 5,           ///< MsgProviderBond
  kProviderUnbond = 6,         ///< MsgProviderUnbond
  kProviderClaimUnbonded = 7,  ///< MsgProviderClaimUnbonded
  kSiteUpsert = 8,             ///< MsgSiteUpsert
  kMachineUpsert = 9,          ///< MsgMachineUpsert
  kMachineRemove = 10,         ///< MsgMachineRemove
  kOfferCreate = 11,           ///< MsgOfferCreate
  kOfferClose = 12,            ///< MsgOfferClose
  kLeaseCreate = 13,           ///< MsgLeaseCreate
  kOrderCreate = 14,           ///< MsgOrderCreate
  kOrderClose = 15,            ///< MsgOrderClose
  kBidCreate = 16,             ///< MsgBidCreate
  kBidAccept = 17,             ///< MsgBidAccept
  kLeaseStarted = 18,          ///< MsgLeaseStarted
  kLeaseDeposit = 19,          ///< MsgLeaseDeposit
  kLeaseWithdraw = 20,         ///< MsgLeaseWithdraw
  kLeaseClose = 21,            ///< MsgLeaseClose
  kHeartbeat = 22,             ///< MsgHeartbeat
  kAttest = 23,                ///< MsgAttest
  kBidWithdraw = 24,           ///< MsgBidWithdraw (issue 17)
};

/// Moves amount_ugpn from the tx sender to `to`. The recipient account is created
/// when it does not exist (accounts are never deleted, architecture §2.3).
struct MsgSend {
  static constexpr MsgTag kTag = MsgTag::kSend;
  Address to;
  uint64_t amount_ugpn = 0;
  bool operator==(const MsgSend&) const = default;
};

// ---- market messages (docs/market.md has every rule and failure code) ----
//
// Ids: a provider is its owner's address; sites and machines carry ids the provider
// chooses (u32, unique within the provider, 1..); offers, orders, bids and leases get
// u64 ids from chain-wide counters (first 1), announced in the message's event.
// Messages a provider's operator key may send name the provider explicitly.
// Prices are ugpn per GPU-hour; times are consensus ms.

/// Fabric of a site (u8). 0 in Requirements means "any".
enum class Fabric : uint8_t {
  kAny = 0,
  kInfiniband = 1,
  kRoce = 2,
  kEthernet = 3,
};

/// In-machine GPU link (u8).
enum class GpuLink : uint8_t {
  kNvlink = 1,
  kPcie = 2,
};

/// Why a lease is closed by MsgLeaseClose (u8).
enum class CloseReason : uint8_t {
  kNormal = 0,      ///< tenant or provider ends the lease
  kNoManifest = 1,  ///< provider only: started, no manifest after the manifest timeout
};

/// One payee of a provider's earnings. Splits list payees in strictly ascending
/// address order; their bp sum to exactly 10,000 (checked by the market rules).
struct PayoutSplit {
  Address payee;
  uint32_t bp = 0;  ///< basis points, 1..10,000
  bool operator==(const PayoutSplit&) const = default;
};

/// Whom a provider serves. Both lists are strictly ascending (sets). A non-empty
/// allow list admits only its members; deny always refuses.
struct TenantPolicy {
  std::vector<Address> allow;  ///< <= kPolicyTenantsMax
  std::vector<Address> deny;   ///< <= kPolicyTenantsMax
  bool operator==(const TenantPolicy&) const = default;
};

/// An attested (or required) attribute: key ident <= kAttributeKeyBytesMax, value
/// text <= kAttributeValueBytesMax. Lists are strictly ascending by key.
struct Attribute {
  std::string key;
  std::string value;
  bool operator==(const Attribute&) const = default;
};

/// What an order asks of the machines of a bid.
struct Requirements {
  std::vector<std::string> gpu_models;  ///< accepted models, ascending; empty = any
  uint32_t gpus_per_machine = 0;        ///< >= 1
  uint32_t machines = 0;                ///< 1..kMachinesPerLeaseMax
  uint32_t min_vram_gib = 0;            ///< per GPU; 0 = any
  std::string region;                   ///< empty = any (ident otherwise)
  Fabric fabric = Fabric::kAny;         ///< site fabric; kAny = any
  bool same_site = false;               ///< all machines on one site
  uint32_t min_cuda_version = 0;        ///< e.g. 12010 = 12.1; 0 = any
  std::vector<Address> auditors;        ///< ascending; attributes must be attested by one
  std::vector<Attribute> attributes;    ///< ascending by key; each attested on the provider
                                        ///< or on every machine of the bid, unexpired
  bool operator==(const Requirements&) const = default;
};

/// What an order asks of the provider of a bid (issue 14): checked at the bid and
/// again at the award. Defaults admit every provider.
struct ProviderRequirements {
  uint64_t min_bond_ugpn = 0;    ///< the provider's bond at least this
  uint64_t min_earned_ugpn = 0;  ///< lifetime ugpn earned from tenants other than itself
  uint32_t max_fault_rate_ppm = base::limits::kFaultRatePpmAny;  ///< FaultRatePpm at most this
  std::vector<Address> excluded;  ///< ascending set <= kOrderExclusionsMax: never these
  bool operator==(const ProviderRequirements&) const = default;
};

/// Sender = the owner key. Creates the provider (id = owner address) with the bond
/// moved from the owner's balance.
struct MsgProviderRegister {
  static constexpr MsgTag kTag = MsgTag::kProviderRegister;
  Address operator_address;          ///< the key for daily txs (may equal the owner)
  std::string tenant_api_uri;        ///< printable ASCII, 1..kUriBytesMax
  Hash32 tls_fingerprint;            ///< SHA-256 of the tenant API's DER SPKI (docs/tenant-api.md)
  std::string region;                ///< ident, 1..kRegionBytesMax
  uint64_t bond_ugpn = 0;            ///< >= provider_bond_min_ugpn (genesis)
  std::vector<PayoutSplit> payouts;  ///< 1..kPayoutSplitsMax, sum 10,000 bp
  TenantPolicy policy;
  bool operator==(const MsgProviderRegister&) const = default;
};

/// Sender = the owner key. Replaces every field below on the provider.
struct MsgProviderUpdate {
  static constexpr MsgTag kTag = MsgTag::kProviderUpdate;
  Address operator_address;
  std::string tenant_api_uri;
  Hash32 tls_fingerprint;
  std::string region;
  std::vector<PayoutSplit> payouts;
  TenantPolicy policy;
  bool operator==(const MsgProviderUpdate&) const = default;
};

/// Sender = the owner key. Refused while leases are open; the bond starts unbonding.
struct MsgProviderDeregister {
  static constexpr MsgTag kTag = MsgTag::kProviderDeregister;
  bool operator==(const MsgProviderDeregister&) const = default;
};

/// Sender = the owner key. Adds amount_ugpn from the owner's balance to the bond.
struct MsgProviderBond {
  static constexpr MsgTag kTag = MsgTag::kProviderBond;
  uint64_t amount_ugpn = 0;
  bool operator==(const MsgProviderBond&) const = default;
};

/// Sender = the owner key. Moves amount_ugpn of the bond to unbonding; claimable
/// after unbonding_delay_ms (genesis).
struct MsgProviderUnbond {
  static constexpr MsgTag kTag = MsgTag::kProviderUnbond;
  uint64_t amount_ugpn = 0;
  bool operator==(const MsgProviderUnbond&) const = default;
};

/// Sender = the owner key. Pays every matured unbonding entry to the owner.
struct MsgProviderClaimUnbonded {
  static constexpr MsgTag kTag = MsgTag::kProviderClaimUnbonded;
  bool operator==(const MsgProviderClaimUnbonded&) const = default;
};

/// Sender = owner or operator. Creates or updates a site (a fabric).
struct MsgSiteUpsert {
  static constexpr MsgTag kTag = MsgTag::kSiteUpsert;
  Address provider;
  uint32_t site_id = 0;               ///< >= 1
  Fabric fabric = Fabric::kEthernet;  ///< not kAny
  uint32_t bandwidth_gbps = 0;
  bool operator==(const MsgSiteUpsert&) const = default;
};

/// Sender = owner or operator. Creates or updates a machine (self-reported). An
/// update may not take gpu_count below the GPUs leased on it now, nor change its
/// site, model or other attributes while any GPU is leased (only the count may grow).
struct MsgMachineUpsert {
  static constexpr MsgTag kTag = MsgTag::kMachineUpsert;
  Address provider;
  uint32_t machine_id = 0;  ///< >= 1
  uint32_t site_id = 0;     ///< an existing site of the provider
  std::string gpu_model;    ///< ident, e.g. "H100"
  uint32_t gpu_count = 0;   ///< 1..kGpusPerMachineMax
  uint32_t vram_gib = 0;    ///< per GPU
  GpuLink link = GpuLink::kPcie;
  std::string driver_version;       ///< ident, e.g. "550.54.15"
  uint32_t cuda_version = 0;        ///< major*1000 + minor*10 (12.1 -> 12010)
  uint32_t compute_capability = 0;  ///< major*10 + minor (9.0 -> 90)
  uint32_t cpu_cores = 0;
  uint32_t memory_gib = 0;
  uint32_t disk_gib = 0;
  bool operator==(const MsgMachineUpsert&) const = default;
};

/// Sender = owner or operator. Refused while any GPU of the machine is leased.
struct MsgMachineRemove {
  static constexpr MsgTag kTag = MsgTag::kMachineRemove;
  Address provider;
  uint32_t machine_id = 0;
  bool operator==(const MsgMachineRemove&) const = default;
};

/// Sender = owner or operator. A standing price for the provider's machines of one
/// GPU model (on one site, or any when site_id = 0), optionally private, with the
/// least and the most hours of the rate a lease from it is funded for.
struct MsgOfferCreate {
  static constexpr MsgTag kTag = MsgTag::kOfferCreate;
  Address provider;
  std::string gpu_model;                 ///< ident
  uint32_t site_id = 0;                  ///< 0 = any site of the provider
  uint64_t price_ugpn_per_gpu_hour = 0;  ///< >= 1
  std::vector<Address> tenants;          ///< ascending; empty = public, else only these may lease
  uint32_t min_hours = 0;  ///< a lease's first deposit covers this; 0 = deposit_min_hours
  uint32_t max_hours = 0;  ///< deposits in total cover at most this; 0 = no limit

  bool operator==(const MsgOfferCreate&) const = default;
};

/// Sender = owner or operator. Closes the offer (open leases are unaffected).
struct MsgOfferClose {
  static constexpr MsgTag kTag = MsgTag::kOfferClose;
  Address provider;
  uint64_t offer_id = 0;
  bool operator==(const MsgOfferClose&) const = default;
};

/// Sender = the tenant. Leases `machines` machines with `gpus_per_machine` free GPUs
/// each from the offer, now (first fit in key order; machines > 1: one site). The
/// deposit moves to the lease's escrow; it must cover at least one hour of the rate.
struct MsgLeaseCreate {
  static constexpr MsgTag kTag = MsgTag::kLeaseCreate;
  uint64_t offer_id = 0;
  uint32_t machines = 0;          ///< 1..kMachinesPerLeaseMax
  uint32_t gpus_per_machine = 0;  ///< >= 1
  uint64_t deposit_ugpn = 0;
  Hash32 manifest_hash;  ///< BLAKE2b-256 of the manifest the tenant will send
  bool operator==(const MsgLeaseCreate&) const = default;
};

/// Sender = the tenant. Opens a reverse auction; the deposit is held by the order
/// until award (then the lease's) or close (refunded).
struct MsgOrderCreate {
  static constexpr MsgTag kTag = MsgTag::kOrderCreate;
  Requirements requirements;
  uint64_t max_price_ugpn_per_gpu_hour = 0;  ///< >= 1
  uint64_t deposit_ugpn = 0;                 ///< >= one hour at max price for all GPUs
  Hash32 manifest_hash;
  uint64_t bid_window_ms = 0;      ///< bid_window_min_ms..bid_window_max_ms (genesis)
  ProviderRequirements providers;  ///< who may bid and be awarded
  bool operator==(const MsgOrderCreate&) const = default;
};

/// Sender = the tenant. Closes an order not yet awarded and refunds its deposit.
struct MsgOrderClose {
  static constexpr MsgTag kTag = MsgTag::kOrderClose;
  uint64_t order_id = 0;
  bool operator==(const MsgOrderClose&) const = default;
};

/// Sender = owner or operator of `provider`. Offers the named machines (one per
/// machine the order asks for) at a price; reserves nothing.
struct MsgBidCreate {
  static constexpr MsgTag kTag = MsgTag::kBidCreate;
  Address provider;
  uint64_t order_id = 0;
  uint64_t price_ugpn_per_gpu_hour = 0;  ///< 1..order's max price
  std::vector<uint32_t> machine_ids;     ///< strictly ascending, == order's machines
  bool operator==(const MsgBidCreate&) const = default;
};

/// Sender = the order's tenant. Awards the order to this bid now (its machines must
/// be free).
struct MsgBidAccept {
  static constexpr MsgTag kTag = MsgTag::kBidAccept;
  uint64_t bid_id = 0;
  bool operator==(const MsgBidAccept&) const = default;
};

/// Sender = owner or operator of the bid's provider. Takes back a bid on an order
/// still open and in its bid window (its machines went elsewhere): the bid is
/// removed and can no longer be accepted or awarded; the provider may bid again.
struct MsgBidWithdraw {
  static constexpr MsgTag kTag = MsgTag::kBidWithdraw;
  uint64_t bid_id = 0;
  bool operator==(const MsgBidWithdraw&) const = default;
};

/// Sender = owner or operator of the lease's provider: the reservation is live and
/// the tenant API answers. Billing starts at this block's time.
struct MsgLeaseStarted {
  static constexpr MsgTag kTag = MsgTag::kLeaseStarted;
  uint64_t lease_id = 0;
  bool operator==(const MsgLeaseStarted&) const = default;
};

/// Any sender. Adds amount_ugpn to an open lease's escrow (extends paid_until).
struct MsgLeaseDeposit {
  static constexpr MsgTag kTag = MsgTag::kLeaseDeposit;
  uint64_t lease_id = 0;
  uint64_t amount_ugpn = 0;
  bool operator==(const MsgLeaseDeposit&) const = default;
};

/// Sender = owner or operator of the lease's provider. Pays what accrued and was
/// not yet paid, by the provider's payout splits.
struct MsgLeaseWithdraw {
  static constexpr MsgTag kTag = MsgTag::kLeaseWithdraw;
  uint64_t lease_id = 0;
  bool operator==(const MsgLeaseWithdraw&) const = default;
};

/// Sender = the tenant, or owner/operator of the provider. Settles and refunds now.
struct MsgLeaseClose {
  static constexpr MsgTag kTag = MsgTag::kLeaseClose;
  uint64_t lease_id = 0;
  CloseReason reason = CloseReason::kNormal;
  bool operator==(const MsgLeaseClose&) const = default;
};

/// Sender = owner or operator: proof of life for every started lease of `provider`.
struct MsgHeartbeat {
  static constexpr MsgTag kTag = MsgTag::kHeartbeat;
  Address provider;
  bool operator==(const MsgHeartbeat&) const = default;
};

/// Any sender (the auditor): attests attributes of a provider (machine_id 0) or of
/// one of its machines until expires_at_ms. Re-attesting a key replaces it.
struct MsgAttest {
  static constexpr MsgTag kTag = MsgTag::kAttest;
  Address provider;
  uint32_t machine_id = 0;            ///< 0 = the provider itself
  std::vector<Attribute> attributes;  ///< 1..kAttributesMax, ascending by key
  uint64_t expires_at_ms = 0;         ///< after the block time
  bool operator==(const MsgAttest&) const = default;
};

/// One typed message of a transaction: a tagged union whose tag table is MsgTag.
using Msg = std::variant<MsgSend, MsgProviderRegister, MsgProviderUpdate, MsgProviderDeregister,
                         MsgProviderBond, MsgProviderUnbond, MsgProviderClaimUnbonded,
                         MsgSiteUpsert, MsgMachineUpsert, MsgMachineRemove, MsgOfferCreate,
                         MsgOfferClose, MsgLeaseCreate, MsgOrderCreate, MsgOrderClose, MsgBidCreate,
                         MsgBidAccept, MsgLeaseStarted, MsgLeaseDeposit, MsgLeaseWithdraw,
                         MsgLeaseClose, MsgHeartbeat, MsgAttest, MsgBidWithdraw>;

/// Wire tag of the message held.
MsgTag TagOf(const Msg& msg);

/// The message's name as docs/market.md, the RPC and the CLI spell it ("send",
/// "lease_create"): one table, in tag order.
std::string_view MsgName(const Msg& msg);

/// Names of the market's enums as docs/market.md, the RPC and the CLI spell them.
std::string_view FabricName(Fabric fabric);  ///< "any", "infiniband", "roce", "ethernet"
std::string_view GpuLinkName(GpuLink link);  ///< "nvlink", "pcie"

// ---------------------------------------------------------------- transactions

/// The signed part of a transaction (architecture §2.3 envelope). The signature covers
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

/// Block header (architecture §2.6). Every hash field is 32 bytes; all-zero means "none"
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
