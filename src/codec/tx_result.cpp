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
