#include "codec/tx_result.h"

namespace gpunet::codec {

namespace {

struct CodeInfo {
  TxCode code;
  std::string_view name;
  std::string_view message;
};

// The table every name and message comes from. Order does not matter; numbers do.
constexpr CodeInfo kCodes[] = {
    {TxCode::kOk, "ok", "the transaction was applied"},
    {TxCode::kMalformed, "malformed",
     "the bytes are not a valid canonical transaction; rebuild it with a current client"},
    {TxCode::kTooLarge, "too_large",
     "the encoded transaction is over the size limit; send fewer messages or a shorter memo"},
    {TxCode::kBadSignature, "bad_signature",
     "the signature does not verify for the sender key over this chain id; sign again with the "
     "sender's key"},
    {TxCode::kWrongChain, "wrong_chain",
     "the transaction is for another chain id; sign it for this chain"},
    {TxCode::kStaleNonce, "stale_nonce",
     "the nonce was already used by this account; query the account and use its next nonce"},
    {TxCode::kFutureNonce, "future_nonce",
     "the nonce is ahead of the account's next nonce; send the missing transactions first"},
    {TxCode::kExpired, "expired",
     "the timeout height has passed; sign again with a later timeout height"},
    {TxCode::kFeeTooLow, "fee_too_low",
     "the fee is below the chain's per-byte + per-message price or its minimum; raise the fee"},
    {TxCode::kInsufficientFeeFunds, "insufficient_fee_funds",
     "the sender's balance cannot pay the fee; fund the account first"},
    {TxCode::kAmountOverflow, "amount_overflow",
     "the fee plus the amounts do not fit in 64 bits; send less"},
    {TxCode::kZeroAmount, "zero_amount", "a send of 0 ugpn is not allowed; send a positive amount"},
    {TxCode::kTooManyMsgs, "too_many_msgs",
     "more messages than the chain allows in one transaction; split it"},
    {TxCode::kGasOverBlockLimit, "gas_over_block_limit",
     "the fee buys more gas than a block may use (block_gas_max in /status); lower the fee"},
    {TxCode::kAlreadyKnown, "already_known", "this transaction is already pending; wait for it"},
    {TxCode::kMempoolFull, "mempool_full",
     "the node's pool is full; retry later or with a higher fee"},
    {TxCode::kNonceGapTooLarge, "nonce_gap_too_large",
     "the nonce is too far ahead of the account's next nonce; send the missing transactions first"},
    {TxCode::kReplacementUnderpriced, "replacement_underpriced",
     "a pending tx has this nonce; a replacement needs a higher fee by the minimum bump"},
    {TxCode::kSenderLimitReached, "sender_limit_reached",
     "this sender has too many pending transactions; wait for some to be included"},
    {TxCode::kInsufficientFunds, "insufficient_funds",
     "the sender cannot cover the amount after the fee; the fee was charged and nothing else "
     "changed"},
    {TxCode::kBalanceOverflow, "balance_overflow",
     "a balance would overflow 64 bits; the fee was charged and nothing else changed"},
    {TxCode::kOutOfGas, "out_of_gas",
     "the messages needed more gas than the fee left after the byte and message price; the fee "
     "was charged and nothing else changed: simulate the tx (POST /tx/simulate) and pay more"},
    {TxCode::kMarketUnknownProvider, "unknown_provider",
     "no provider is registered under that address; register it first or check the address"},
    {TxCode::kMarketProviderExists, "provider_exists",
     "this owner already has a provider; use provider update instead"},
    {TxCode::kMarketNotOwner, "not_owner",
     "this message must be signed by the provider's owner key"},
    {TxCode::kMarketNotOperator, "not_operator",
     "this message must be signed by the provider's owner or operator key"},
    {TxCode::kMarketBadSplits, "bad_splits",
     "payout splits need 1..16 payees with 1..10000 bp each, summing to exactly 10000 bp"},
    {TxCode::kMarketBondTooLow, "bond_too_low",
     "the provider's bond is below the minimum; add bond before offering, bidding or leasing"},
    {TxCode::kMarketOpenLeases, "open_leases",
     "refused while the provider has open leases; close or let them end first"},
    {TxCode::kMarketInsufficientBond, "insufficient_bond",
     "the bond is smaller than the amount asked for; unbond less"},
    {TxCode::kMarketNothingToClaim, "nothing_to_claim",
     "no unbonding entry has matured yet; wait for the unbonding delay"},
    {TxCode::kMarketUnknownSite, "unknown_site",
     "the provider has no site with that id; create the site first"},
    {TxCode::kMarketUnknownMachine, "unknown_machine", "the provider has no machine with that id"},
    {TxCode::kMarketInventoryInUse, "inventory_in_use",
     "GPUs of this machine are leased; inventory may not shrink or change under open leases"},
    {TxCode::kMarketLimitReached, "limit_reached",
     "a market count limit (base/limits.h) is reached; close something first"},
    {TxCode::kMarketZeroAmount, "market_zero_amount", "the amount must be positive"},
    {TxCode::kMarketUnknownOffer, "unknown_offer", "no offer has that id"},
    {TxCode::kMarketOfferClosed, "offer_closed", "the offer is closed; pick another offer"},
    {TxCode::kMarketNotAllowed, "not_allowed",
     "the provider's policy or the private offer does not admit this tenant"},
    {TxCode::kMarketNoCapacity, "no_capacity",
     "not enough free GPUs for this request right now; ask for fewer or try later"},
    {TxCode::kMarketDepositTooLow, "deposit_too_low",
     "the deposit must cover at least one hour at the lease's rate"},
    {TxCode::kMarketInsufficientFunds, "market_insufficient_funds",
     "the sender's balance after the fee cannot cover the deposit or bond"},
    {TxCode::kMarketUnknownOrder, "unknown_order", "no order has that id"},
    {TxCode::kMarketOrderClosed, "order_closed", "the order is no longer open (awarded or closed)"},
    {TxCode::kMarketBidWindowClosed, "bid_window_closed",
     "the order's bid window has ended; bids are no longer accepted"},
    {TxCode::kMarketDuplicateBid, "duplicate_bid", "this provider already bid on the order"},
    {TxCode::kMarketBidMismatch, "bid_mismatch",
     "the bid does not meet the order (price over the maximum, machines not matching the "
     "requirements)"},
    {TxCode::kMarketUnknownBid, "unknown_bid", "no bid has that id"},
    {TxCode::kMarketUnknownLease, "unknown_lease", "no lease has that id"},
    {TxCode::kMarketLeaseState, "lease_state",
     "the lease is not in a state that allows this (e.g. already started, closed or expired)"},
    {TxCode::kMarketNotParty, "not_party",
     "only the lease's tenant or its provider's owner/operator may do this"},
    {TxCode::kMarketTooEarly, "too_early", "too early: the required timeout has not passed yet"},
    {TxCode::kMarketAmountOverflow, "market_amount_overflow",
     "an amount or price product does not fit in 64 bits; use smaller values"},
    {TxCode::kMarketInvalidField, "invalid_field",
     "a field has a value the market rules do not allow; see the message for which"},
    {TxCode::kMarketProviderInactive, "provider_inactive", "the provider is deregistered"},
    {TxCode::kMarketNothingToWithdraw, "nothing_to_withdraw",
     "nothing has accrued since the last withdrawal"},
    {TxCode::kMarketBondUncovered, "bond_uncovered",
     "the provider's bond would not cover the fault penalties of its open leases; the owner "
     "must bond more (or the lease must be smaller)"},
    {TxCode::kMarketProviderUnqualified, "provider_unqualified",
     "the provider does not meet the order's provider requirements (bond, earnings from "
     "other tenants, fault rate, excluded addresses)"},
    {TxCode::kMarketProviderOffline, "provider_offline",
     "the provider has sent no heartbeat within the heartbeat timeout; its offers cannot be "
     "leased until it does"},
    {TxCode::kMarketDepositOverMax, "deposit_over_max",
     "the lease's deposits would pay for more hours than its offer's max_hours allow; the "
     "message says how much more it can take"},
};

const CodeInfo* Find(uint16_t value) {
  for (const auto& c : kCodes)
    if (static_cast<uint16_t>(c.code) == value) return &c;
  return nullptr;
}

}  // namespace

std::optional<TxCode> TxCodeFromU16(uint16_t value) {
  const CodeInfo* c = Find(value);
  if (c == nullptr) return std::nullopt;
  return c->code;
}

std::string_view TxCodeName(TxCode code) {
  const CodeInfo* c = Find(static_cast<uint16_t>(code));
  return c == nullptr ? std::string_view("unknown") : c->name;
}

std::string_view TxCodeMessage(TxCode code) {
  const CodeInfo* c = Find(static_cast<uint16_t>(code));
  return c == nullptr ? std::string_view("unknown result code") : c->message;
}

std::string TxError::ToString() const {
  return std::string(TxCodeName(code)) + ": " + message;
}

}  // namespace gpunet::codec
