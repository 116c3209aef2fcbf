// Transaction result codes (architecture §2.3): ONE closed enum for every outcome a
// transaction can have, from the RPC's first look at its bytes to its receipt.
//
// Numbers are part of the protocol: receipts store them and clients match on them.
// A number, once published, keeps its meaning forever; never renumber or reuse one
// (rippled's TER.h rule). New codes are appended inside their range:
//
//   0            ok
//   1..49        rejected before inclusion by the ledger's rules (never in a block,
//                no state change at all)
//   50..99       rejected before inclusion by admission (mempool, RPC)
//   100..199     included but failed, bank messages (fee charged, nonce advanced,
//                every message of the tx rolled back, code in the receipt)
//   200..999     included but failed, market messages (issue 4)
//   1000..65535  reserved
//
// The class of a code follows from its range (IsRejectedBeforeInclusion,
// IsIncludedFailure), so a code appended later is classified without a table edit.
// One exception, told by where the code comes from: a market code returned by the
// pipeline's stateless stage comes from the market's preflight (market/preflight.h)
// and means rejected before inclusion; the same code in a receipt is an included
// failure (docs/market.md "Preflight").
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace gpunet::codec {

enum class TxCode : uint16_t {
  kOk = 0,

  // ---- rejected before inclusion: ledger rules (1..49) ----
  kMalformed = 1,             ///< bytes are not a canonical, valid transaction
  kTooLarge = 2,              ///< encoded tx over the byte limit
  kBadSignature = 3,          ///< signature does not verify for the sender key
  kWrongChain = 4,            ///< chain id is not this chain's
  kStaleNonce = 5,            ///< nonce below the account's next nonce (replay or duplicate)
  kFutureNonce = 6,           ///< nonce above the account's next nonce
  kExpired = 7,               ///< timeout_height already passed
  kFeeTooLow = 8,             ///< fee below per-byte + per-message cost or the minimum
  kInsufficientFeeFunds = 9,  ///< sender balance cannot cover the fee
  kAmountOverflow = 10,       ///< fee + message amounts overflow 64 bits
  kZeroAmount = 11,           ///< a send of 0 ugpn (would only burn the fee)
  kTooManyMsgs = 12,          ///< more messages than the chain's per-tx limit
  kGasOverBlockLimit = 13,    ///< the fee buys more gas than a block may use

  // ---- rejected before inclusion: admission (50..99), used by mempool / RPC ----
  kAlreadyKnown = 50,            ///< the same tx is already pending
  kMempoolFull = 51,             ///< pool full and the fee is not high enough to evict
  kNonceGapTooLarge = 52,        ///< nonce too far ahead of the account's next nonce
  kReplacementUnderpriced = 53,  ///< replace-by-fee without the minimum fee bump
  kSenderLimitReached = 54,      ///< sender already has the maximum number of pending txs

  // ---- included but failed: bank (100..199) ----
  kInsufficientFunds = 100,  ///< sender cannot cover a message's amount after the fee
  kBalanceOverflow = 101,    ///< a recipient balance would overflow 64 bits
  kOutOfGas = 102,           ///< the messages needed more gas than the fee bought

  // ---- included but failed: market (200..999), docs/market.md ----
  kMarketUnknownProvider = 200,
  kMarketProviderExists = 201,
  kMarketNotOwner = 202,
  kMarketNotOperator = 203,
  kMarketBadSplits = 204,
  kMarketBondTooLow = 205,
  kMarketOpenLeases = 206,
  kMarketInsufficientBond = 207,
  kMarketNothingToClaim = 208,
  kMarketUnknownSite = 209,
  kMarketUnknownMachine = 210,
  kMarketInventoryInUse = 211,
  kMarketLimitReached = 212,
  kMarketZeroAmount = 213,
  kMarketUnknownOffer = 214,
  kMarketOfferClosed = 215,
  kMarketNotAllowed = 216,
  kMarketNoCapacity = 217,
  kMarketDepositTooLow = 218,
  kMarketInsufficientFunds = 219,
  kMarketUnknownOrder = 220,
  kMarketOrderClosed = 221,
  kMarketBidWindowClosed = 222,
  kMarketDuplicateBid = 223,
  kMarketBidMismatch = 224,
  kMarketUnknownBid = 225,
  kMarketUnknownLease = 226,
  kMarketLeaseState = 227,
  kMarketNotParty = 228,
  kMarketTooEarly = 229,
  kMarketAmountOverflow = 230,
  kMarketInvalidField = 231,
  kMarketProviderInactive = 232,
  kMarketNothingToWithdraw = 233,
  kMarketBondUncovered = 234,
  kMarketProviderUnqualified = 235,
  kMarketProviderOffline = 236,
  kMarketDepositOverMax = 237,  ///< issue 17: past an offer's max_hours of the rate
};

/// First and last numbers of each range (inclusive).
inline constexpr uint16_t kTxCodeRejectedFirst = 1;
inline constexpr uint16_t kTxCodeRejectedLast = 99;
inline constexpr uint16_t kTxCodeIncludedFailedFirst = 100;
inline constexpr uint16_t kTxCodeIncludedFailedLast = 999;

/// The code a stored or received number stands for; nullopt for a number no
/// published code has (a decoder refuses it, a client shows the raw number).
std::optional<TxCode> TxCodeFromU16(uint16_t value);

/// Stable snake_case name ("insufficient_funds"): used in JSON, CLI and logs.
std::string_view TxCodeName(TxCode code);
/// One line for people: what the code means and what to do about it.
std::string_view TxCodeMessage(TxCode code);

/// A tx with this code never enters a block and changes nothing.
constexpr bool IsRejectedBeforeInclusion(TxCode code) {
  auto v = static_cast<uint16_t>(code);
  return v >= kTxCodeRejectedFirst && v <= kTxCodeRejectedLast;
}
/// A tx with this code is in a block: fee charged, nonce advanced, messages undone.
constexpr bool IsIncludedFailure(TxCode code) {
  auto v = static_cast<uint16_t>(code);
  return v >= kTxCodeIncludedFailedFirst && v <= kTxCodeIncludedFailedLast;
}

/// A refused or failed tx: the code and a message with the specifics ("nonce 3,
/// account expects 5: ...").
struct TxError {
  TxCode code = TxCode::kMalformed;
  std::string message;
  /// "<name>: <message>"
  std::string ToString() const;
};

template <class T>
using TxResult = std::expected<T, TxError>;

[[nodiscard]] inline std::unexpected<TxError> TxFail(TxCode code, std::string message) {
  return std::unexpected<TxError>(TxError{code, std::move(message)});
}

}  // namespace gpunet::codec
