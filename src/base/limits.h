// Every size and count limit of the protocol, in one place (design §3: "Every
// list and per-block loop has a limit in one constants file"). Decoders reject
// anything over these; changing one is a protocol change.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpunet::base::limits {

// ---- encoding ----
inline constexpr size_t kTxBytesMax = 64 * 1024;          ///< one encoded transaction
inline constexpr size_t kMsgsPerTxMax = 16;               ///< messages in one transaction
inline constexpr size_t kMemoBytesMax = 256;              ///< free-text memo
inline constexpr size_t kChainIdBytesMax = 64;            ///< chain id string
inline constexpr size_t kBlockBytesMax = 4 * 1024 * 1024; ///< one encoded block
inline constexpr size_t kTxsPerBlockMax = 10000;          ///< transactions in one block
inline constexpr size_t kValidatorsMax = 150;             ///< validator set size
inline constexpr size_t kEvidencePerBlockMax = 64;        ///< evidence items in one block
inline constexpr size_t kEventsPerReceiptMax = 64;        ///< events one receipt may carry
inline constexpr size_t kStateValueBytesMax = 64 * 1024;  ///< one value in the state tree
inline constexpr size_t kStateKeyBytesMax = 256;          ///< one key in the state tree
inline constexpr size_t kEventAttributesMax = 16;         ///< attributes of one event
inline constexpr size_t kEventTypeBytesMax = 64;          ///< event type string
inline constexpr size_t kEventAttributeKeyBytesMax = 64;  ///< event attribute key
inline constexpr size_t kEventAttributeValueBytesMax = 256;  ///< event attribute value
inline constexpr size_t kReceiptBytesMax = 64 * 1024;     ///< one encoded receipt
/// Sum of a validator set's powers (CometBFT's MaxTotalVotingPower): leaves room for
/// proposer-priority arithmetic in int64 without overflow.
inline constexpr uint64_t kTotalVotingPowerMax = static_cast<uint64_t>(INT64_MAX) / 8;
/// Encoded consensus messages (votes, proposals, commits, evidence, headers).
inline constexpr size_t kConsensusMsgBytesMax = 64 * 1024;

// ---- state tree (docs/state-tree.md) ----
/// Siblings in one state-tree proof: one per level of a 256-bit path.
inline constexpr size_t kSmtProofSiblingsMax = 256;

// ---- mempool (src/mempool; admission policy, not consensus) ----
inline constexpr size_t kMempoolTxsMax = 50000;               ///< pending txs in one node
inline constexpr size_t kMempoolBytesMax = 64u * 1024 * 1024; ///< their encoded bytes
inline constexpr size_t kMempoolSenderTxsMax = 64;            ///< pending txs per sender
inline constexpr uint64_t kMempoolNonceGapMax = 64;  ///< nonce - account's next nonce, at most
inline constexpr uint64_t kMempoolRbfBumpPercent = 10;  ///< replace-by-fee: fee +10% at least

}  // namespace gpunet::base::limits
