// Every size and count limit of the protocol, in one place (architecture §3.7: every
// list and per-block loop has a limit, and every size and count limit is in this
// file). Decoders reject anything over these; changing one is a protocol change.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpunet::base::limits {

// ---- encoding ----
inline constexpr size_t kTxBytesMax = 64 * 1024;             ///< one encoded transaction
inline constexpr size_t kMsgsPerTxMax = 16;                  ///< messages in one transaction
inline constexpr size_t kMemoBytesMax = 256;                 ///< free-text memo
inline constexpr size_t kChainIdBytesMax = 64;               ///< chain id string
inline constexpr size_t kBlockBytesMax = 4 * 1024 * 1024;    ///< one encoded block
inline constexpr size_t kTxsPerBlockMax = 10000;             ///< transactions in one block
inline constexpr size_t kValidatorsMax = 150;                ///< validator set size
inline constexpr size_t kEvidencePerBlockMax = 64;           ///< evidence items in one block
inline constexpr size_t kEventsPerReceiptMax = 64;           ///< events one receipt may carry
inline constexpr size_t kStateValueBytesMax = 64 * 1024;     ///< one value in the state tree
inline constexpr size_t kStateKeyBytesMax = 256;             ///< one key in the state tree
inline constexpr size_t kEventAttributesMax = 16;            ///< attributes of one event
inline constexpr size_t kEventTypeBytesMax = 64;             ///< event type string
inline constexpr size_t kEventAttributeKeyBytesMax = 64;     ///< event attribute key
inline constexpr size_t kEventAttributeValueBytesMax = 256;  ///< event attribute value
inline constexpr size_t kReceiptBytesMax = 64 * 1024;        ///< one encoded receipt
/// A genesis file: room for a few million funded accounts (~90 bytes each in JSON).
inline constexpr size_t kGenesisFileBytesMax = 512u << 20;
/// Sum of a validator set's powers (CometBFT's MaxTotalVotingPower): leaves room for
/// proposer-priority arithmetic in int64 without overflow.
inline constexpr uint64_t kTotalVotingPowerMax = static_cast<uint64_t>(INT64_MAX) / 8;
/// Encoded consensus messages (votes, proposals, commits, evidence, headers).
inline constexpr size_t kConsensusMsgBytesMax = 64 * 1024;

// ---- state tree (docs/state-tree.md) ----
/// Siblings in one state-tree proof: one per level of a 256-bit path.
inline constexpr size_t kSmtProofSiblingsMax = 256;

// ---- mempool (src/mempool; admission policy, not consensus) ----
inline constexpr size_t kMempoolTxsMax = 50000;                ///< pending txs in one node
inline constexpr size_t kMempoolBytesMax = 64u * 1024 * 1024;  ///< their encoded bytes
inline constexpr size_t kMempoolSenderTxsMax = 64;             ///< pending txs per sender
inline constexpr uint64_t kMempoolNonceGapMax = 64;     ///< nonce - account's next nonce, at most
inline constexpr uint64_t kMempoolRbfBumpPercent = 10;  ///< replace-by-fee: fee +10% at least

// ---- market (issue 4, docs/market.md) ----
// Sizes of market message fields (decoders reject more).
inline constexpr size_t kPayoutSplitsMax = 16;         ///< payees of one provider
inline constexpr size_t kPolicyTenantsMax = 64;        ///< allow or deny list entries
inline constexpr size_t kOfferTenantsMax = 32;         ///< tenants of a private offer
inline constexpr size_t kUriBytesMax = 256;            ///< tenant-API URI
inline constexpr size_t kRegionBytesMax = 32;          ///< region ident
inline constexpr size_t kGpuModelBytesMax = 32;        ///< GPU model ident
inline constexpr size_t kVersionBytesMax = 32;         ///< driver version ident
inline constexpr size_t kOrderGpuModelsMax = 8;        ///< accepted models of one order
inline constexpr size_t kOrderAuditorsMax = 8;         ///< named auditors of one order
inline constexpr size_t kOrderExclusionsMax = 16;      ///< providers one order excludes
inline constexpr size_t kAttributesMax = 16;           ///< attributes per attestation/order
inline constexpr size_t kAttributeKeyBytesMax = 32;    ///< attribute key ident
inline constexpr size_t kAttributeValueBytesMax = 64;  ///< attribute value text
inline constexpr size_t kMachinesPerLeaseMax = 64;     ///< machines of one lease or bid
inline constexpr uint32_t kGpusPerMachineMax = 64;     ///< GPUs one machine may report
// Counts the rules enforce (included failures when exceeded).
inline constexpr size_t kBidsPerOrderMax = 64;             ///< bids on one order
inline constexpr size_t kOpenOrdersPerAccountMax = 16;     ///< open orders of one tenant
inline constexpr size_t kSitesPerProviderMax = 64;         ///< sites of one provider
inline constexpr size_t kMachinesPerProviderMax = 1024;    ///< machines of one provider
inline constexpr size_t kOffersPerProviderMax = 64;        ///< open offers of one provider
inline constexpr size_t kOpenLeasesPerProviderMax = 4096;  ///< open leases of one provider
inline constexpr size_t kUnbondingEntriesMax = 16;         ///< pending unbondings per provider
/// Machines one LeaseCreate may inspect for first fit (the offer's class on the
/// provider): bounds the work of one message.
inline constexpr size_t kOfferScanMachinesMax = 1024;
/// End-of-block work items (awards, faults, expiries, each lease closed counts one)
/// per block; the rest waits for the next block, settled at its own deadline so
/// accrual stays exact.
inline constexpr size_t kEndBlockWorkMax = 256;
// Units of the market rules (its timing and bond rules are genesis parameters,
// market/params.h).
inline constexpr uint32_t kPayoutBpTotal = 10'000;  ///< splits sum to exactly this
inline constexpr uint64_t kMsPerHour = 3'600'000;   ///< accrual divisor
/// An order's max_fault_rate_ppm that admits every provider.
inline constexpr uint32_t kFaultRatePpmAny = 1'000'000;

// ---- consensus (bft) (src/consensus/bft.h; docs/consensus.md) ----
/// Default for BftConfig::evidence_max_age_heights: equivocation evidence older
/// than this many heights is neither proposed nor accepted (codec/evidence.h).
inline constexpr uint64_t kBftEvidenceMaxAgeHeightsDefault = 100'000;
/// Evidence items one core keeps waiting for a block (more are dropped: the first
/// ones already prove the misbehaviour).
inline constexpr size_t kBftEvidencePoolMax = 1024;
/// Rounds above the current one whose messages a core stores; a message further
/// ahead only counts towards the round skip (Alg.1 l.55) and is not kept.
inline constexpr uint32_t kBftRoundsAheadMax = 10;
/// Highest round a message may name (timeouts grow per round, so honest validators
/// never get near it); bounds the proposer-schedule work a message can cause.
inline constexpr uint32_t kBftRoundMax = 100'000;
/// Distinct values one validator's votes are counted for in one (round, type). An
/// equivocator's votes count for each value it signed, as Alg.1 counts messages, so
/// every honest node sees the same quorums whichever vote reached it first.
inline constexpr size_t kBftVoteValuesPerValidatorMax = 4;
// Messages for the next height, buffered until it starts.
inline constexpr size_t kBftFutureVotesMax = 4 * kValidatorsMax;  ///< votes
inline constexpr size_t kBftFutureProposalsMax = 4;               ///< proposals

// ---- tenant API (issue 17; docs/tenant-api.md) ----
/// A signed request's target (path and query, as sent): longer ones are refused.
inline constexpr size_t kTenantTargetBytesMax = 2048;
/// A signed request's method token ("GET", "POST", ...).
inline constexpr size_t kTenantMethodBytesMax = 16;
/// How far a signed request's timestamp may be from the provider's clock, either way.
inline constexpr uint64_t kTenantClockSkewMsMax = 60'000;
/// Nonces one signer key may have in the replay window at once (beyond: 429).
inline constexpr size_t kTenantNoncesPerKeyMax = 10'000;
/// Nonces and revocations the provider keeps in all (beyond: 503); bounds the disk.
inline constexpr size_t kTenantNonceEntriesMax = 1'000'000;

}  // namespace gpunet::base::limits
