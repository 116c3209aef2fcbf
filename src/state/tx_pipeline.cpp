#include "state/tx_pipeline.h"

#include <algorithm>
#include <optional>
#include <type_traits>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "market/apply.h"
#include "market/preflight.h"
#include "state/conservation.h"
#include "state/market_store.h"

namespace gpunet::state {

using codec::TxCode;
using codec::TxFail;

// ---------------------------------------------------------------- SignatureCache

SignatureCache::SignatureCache(size_t capacity)
    : m_shard_capacity((capacity + kShards - 1) / kShards) {
  GPUNET_CHECK(capacity > 0);
}

bool SignatureCache::Contains(const base::Hash32& tx_hash) const {
  Shard& shard = ShardOf(tx_hash);
  base::MutexLock lock(shard.mutex);
  return shard.set.contains(tx_hash);
}

void SignatureCache::Insert(const base::Hash32& tx_hash) {
  Shard& shard = ShardOf(tx_hash);
  base::MutexLock lock(shard.mutex);
  if (!shard.set.insert(tx_hash).second) return;
  shard.order.push_back(tx_hash);
  while (shard.order.size() > m_shard_capacity) {
    shard.set.erase(shard.order.front());
    shard.order.pop_front();
  }
  GPUNET_CHECK(shard.set.size() == shard.order.size());
}

size_t SignatureCache::Size() const {
  size_t n = 0;
  for (const Shard& shard : m_shards) {
    base::MutexLock lock(shard.mutex);
    n += shard.set.size();
  }
  return n;
}

// ---------------------------------------------------------------- stage 1

namespace {

// What a message moves out of the sender's balance at most (sends, bonds, deposits):
// summed with the fee for the overflow check and CheckTx's amount. 0 for the rest.
uint64_t AmountOf(const codec::Msg& msg) {
  return std::visit(
      [](const auto& m) -> uint64_t {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, codec::MsgSend> ||
                      std::is_same_v<M, codec::MsgProviderBond> ||
                      std::is_same_v<M, codec::MsgLeaseDeposit>)
          return m.amount_ugpn;
        else if constexpr (std::is_same_v<M, codec::MsgProviderRegister>)
          return m.bond_ugpn;
        else if constexpr (std::is_same_v<M, codec::MsgLeaseCreate> ||
                           std::is_same_v<M, codec::MsgOrderCreate>)
          return m.deposit_ugpn;
        else
          return 0;
      },
      msg);
}

// The fee against the tx's size and the gas bounds; sets the required fee and the
// gas limit. nullopt when the fee passes.
std::optional<codec::TxError> CheckFeeAndGas(CheckedTx& out, std::optional<uint64_t> required,
                                             const PipelineParams& params) {
  const codec::TxBody& body = out.tx.body;
  if (!required || body.fee_ugpn < *required)
    return codec::TxError{
        TxCode::kFeeTooLow,
        "fee " + std::to_string(body.fee_ugpn) + " ugpn, this tx needs at least " +
            (required ? std::to_string(*required) : std::string("more than 2^64-1")) + " ugpn (" +
            std::to_string(out.encoded_bytes) + " bytes, " + std::to_string(body.msgs.size()) +
            " messages)"};
  out.required_fee_ugpn = *required;
  const uint64_t byte_and_msg_price = *ByteAndMsgPrice(params.fees, out.encoded_bytes,
                                                       body.msgs.size());  // <= required
  const GasParams& gas = params.gas;
  out.gas_limit = GasLimitOf(body.fee_ugpn, byte_and_msg_price, gas.price_ugpn);
  if (out.gas_limit < gas.tx_base)
    return codec::TxError{
        TxCode::kFeeTooLow,
        "fee " + std::to_string(body.fee_ugpn) + " ugpn leaves " + std::to_string(out.gas_limit) +
            " gas after the byte and message price (" + std::to_string(byte_and_msg_price) +
            " ugpn); every tx needs " + std::to_string(gas.tx_base) + " gas, so at least " +
            std::to_string(FeeForGas(byte_and_msg_price, gas.tx_base, gas.price_ugpn)) +
            " ugpn plus its messages' gas (POST /tx/simulate tells how much)"};
  if (out.gas_limit > gas.block_max)
    return codec::TxError{
        TxCode::kGasOverBlockLimit,
        "fee " + std::to_string(body.fee_ugpn) + " ugpn buys " + std::to_string(out.gas_limit) +
            " gas, a block may use " + std::to_string(gas.block_max) + "; pay at most " +
            std::to_string(FeeForGas(byte_and_msg_price, gas.block_max, gas.price_ugpn)) + " ugpn"};
  return std::nullopt;
}

}  // namespace

codec::TxResult<CheckedTx> CheckStateless(base::ByteSpan bytes, const PipelineParams& params,
                                          SignatureCache* cache, const StatelessOptions& options) {
  GPUNET_CHECK(params.tx_bytes_max > 0);
  GPUNET_CHECK(params.msgs_per_tx_max > 0);
  if (bytes.size() > params.tx_bytes_max)
    return TxFail(TxCode::kTooLarge, "tx is " + std::to_string(bytes.size()) +
                                         " bytes, the limit is " +
                                         std::to_string(params.tx_bytes_max));
  auto decoded = codec::DecodeTx(bytes);
  if (!decoded) return TxFail(TxCode::kMalformed, decoded.error().ToString());
  CheckedTx out;
  out.tx = std::move(*decoded);
  const codec::TxBody& body = out.tx.body;
  if (body.msgs.size() > params.msgs_per_tx_max)
    return TxFail(TxCode::kTooManyMsgs, std::to_string(body.msgs.size()) +
                                            " messages, the limit is " +
                                            std::to_string(params.msgs_per_tx_max));
  if (body.chain_id != params.chain_id)
    return TxFail(TxCode::kWrongChain,
                  "tx is for chain '" + body.chain_id + "', this is '" + params.chain_id + "'");
  uint64_t total = body.fee_ugpn;
  for (size_t i = 0; i < body.msgs.size(); ++i) {
    // A malformed market message is refused here, with the market's own code
    // (200..999, market/preflight.h): the tx never enters a block, no fee is charged.
    if (market::IsMarketMsg(body.msgs[i])) {
      if (auto pre = market::Preflight(body.msgs[i], params.market); !pre)
        return TxFail(pre.error().code,
                      "message " + std::to_string(i) + ": " + pre.error().message);
    }
    uint64_t amount = AmountOf(body.msgs[i]);
    // A send of nothing would only burn the fee (market amounts of 0: Preflight).
    if (amount == 0 && std::holds_alternative<codec::MsgSend>(body.msgs[i]))
      return TxFail(TxCode::kZeroAmount, "message " + std::to_string(i) + " sends 0 ugpn");
    auto sum = base::CheckedAdd(total, amount);
    if (!sum)
      return TxFail(TxCode::kAmountOverflow,
                    "fee plus amounts exceed 2^64-1 ugpn at message " + std::to_string(i));
    total = *sum;
  }
  out.amount_ugpn = total - body.fee_ugpn;
  out.encoded_bytes = bytes.size();
  auto required = RequiredFee(params.fees, out.encoded_bytes, body.msgs.size());
  if (options.skip_fee_and_gas) {
    if (!required) return TxFail(TxCode::kFeeTooLow, "the byte price overflows 64 bits");
    out.required_fee_ugpn = *required;
    out.gas_limit = params.gas.block_max;
  } else if (auto refused = CheckFeeAndGas(out, required, params)) {
    return std::unexpected(std::move(*refused));
  }
  out.hash = codec::TxHashOfEncoded(bytes);
  out.sender = crypto::AddressOf(body.sender);
  const bool unsigned_tx = std::all_of(out.tx.signature.begin(), out.tx.signature.end(),
                                       [](uint8_t b) { return b == 0; });
  if (options.allow_unsigned && unsigned_tx) return out;
  // Last: the most expensive check, once per tx hash.
  if (cache == nullptr || !cache->Contains(out.hash)) {
    if (auto verified = codec::VerifyTxSignature(out.tx); !verified)
      return TxFail(TxCode::kBadSignature, verified.error().message);
    if (cache != nullptr) cache->Insert(out.hash);
  }
  return out;
}

codec::TxResult<CheckedTx> CheckStateless(const codec::Tx& tx, const PipelineParams& params,
                                          SignatureCache* cache) {
  return CheckStateless(codec::EncodeTx(tx), params, cache);
}

// ---------------------------------------------------------------- stage 2

base::Result<codec::TxResult<codec::Account>> CheckStateful(const StateDb& db, const CheckedTx& tx,
                                                            uint64_t height,
                                                            const PipelineParams& params,
                                                            NonceRule rule) {
  auto account = db.GetAccount(tx.sender);
  if (!account) return std::unexpected(account.error());
  return CheckStatefulAgainst(*account, tx, height, params, rule);
}

codec::TxResult<codec::Account> CheckStatefulAgainst(const codec::Account& account,
                                                     const CheckedTx& tx, uint64_t height,
                                                     const PipelineParams& params, NonceRule rule) {
  const codec::TxBody& body = tx.tx.body;
  if (body.timeout_height != 0 && height > body.timeout_height)
    return TxFail(TxCode::kExpired, "timeout height " + std::to_string(body.timeout_height) +
                                        " is before block height " + std::to_string(height));
  const uint64_t next = account.nonce;
  if (body.nonce < next)
    return TxFail(TxCode::kStaleNonce, "nonce " + std::to_string(body.nonce) +
                                           ", the account's next nonce is " + std::to_string(next));
  uint64_t ahead = rule == NonceRule::kExact ? 0 : params.nonce_ahead_max;
  if (body.nonce - next > ahead)
    return TxFail(TxCode::kFutureNonce, "nonce " + std::to_string(body.nonce) +
                                            ", the account's next nonce is " +
                                            std::to_string(next));
  if (account.balance_ugpn < body.fee_ugpn)
    return TxFail(TxCode::kInsufficientFeeFunds,
                  "fee " + std::to_string(body.fee_ugpn) + " ugpn, balance " +
                      std::to_string(account.balance_ugpn) + " ugpn");
  return account;
}

// ---------------------------------------------------------------- stage 3

namespace {

using MsgResult = base::Result<std::optional<codec::TxError>>;

// `from_text` is `from` in bech32, made once per tx (the fee event has it too).
MsgResult ApplySend(StateDb& db, const codec::Address& from, const std::string& from_text,
                    const codec::MsgSend& msg, std::vector<codec::Event>& events) {
  auto sender = db.GetAccount(from);
  if (!sender) return std::unexpected(sender.error());
  if (sender->balance_ugpn < msg.amount_ugpn)
    return codec::TxError{TxCode::kInsufficientFunds, "send of " + std::to_string(msg.amount_ugpn) +
                                                          " ugpn, balance after the fee is " +
                                                          std::to_string(sender->balance_ugpn) +
                                                          " ugpn"};
  sender->balance_ugpn -= msg.amount_ugpn;
  db.PutAccount(from, *sender);
  // Read the recipient after writing the sender: a send to oneself sees the debit.
  auto recipient = db.GetAccount(msg.to);
  if (!recipient) return std::unexpected(recipient.error());
  auto credited = base::CheckedAdd(recipient->balance_ugpn, msg.amount_ugpn);
  if (!credited)
    return codec::TxError{TxCode::kBalanceOverflow, "recipient " + crypto::AddressToString(msg.to) +
                                                        " would exceed 2^64-1 ugpn"};
  recipient->balance_ugpn = *credited;
  db.PutAccount(msg.to, *recipient);
  events.push_back(codec::Event{"transfer",
                                {{"amount_ugpn", std::to_string(msg.amount_ugpn)},
                                 {"from", from_text},
                                 {"to", crypto::AddressToString(msg.to)}}});
  return std::nullopt;
}

MsgResult ApplyMsg(StateDb& db, const BlockContext& block, const market::Params& market_params,
                   const codec::Address& from, const std::string& from_text, const codec::Msg& msg,
                   std::vector<codec::Event>& events) {
  if (const auto* send = std::get_if<codec::MsgSend>(&msg))
    return ApplySend(db, from, from_text, *send, events);
  MarketStateStore store(db);
  return market::ApplyMarketMsg(store, market_params,
                                market::BlockTime{block.height, block.time_ms}, from, msg, events);
}

// The fee event carries the tx's gas: what the fee bought and what it used.
void AddGas(codec::Receipt& receipt, const GasMeter& meter) {
  GPUNET_CHECK(!receipt.events.empty());
  GPUNET_CHECK(receipt.events[0].type == "fee");
  receipt.events[0].attributes["gas_limit"] = std::to_string(meter.Limit());
  receipt.events[0].attributes["gas_used"] = std::to_string(meter.Used());
}

// Over 70 lines: fee and nonce, the messages, and the receipt's event cap are one ordered
// sequence over one state snapshot; each step decides what the next may do.
// NOLINTNEXTLINE(readability-function-size)
base::Result<codec::TxResult<codec::Receipt>> ApplyFeeAndMessages(StateDb& db, const CheckedTx& tx,
                                                                  const BlockContext& block,
                                                                  uint32_t index,
                                                                  const PipelineParams& params,
                                                                  GasMeter& meter) {
  auto stateful = CheckStateful(db, tx, block.height, params, NonceRule::kExact);
  if (!stateful) return std::unexpected(stateful.error());
  if (!*stateful) return codec::TxResult<codec::Receipt>(std::unexpect, stateful->error());
  const codec::TxBody& body = tx.tx.body;
  codec::Account sender = **stateful;

  // Fee and nonce first: they stay whatever the messages do.
  GPUNET_CHECK(sender.balance_ugpn >= body.fee_ugpn);
  GPUNET_CHECK(sender.nonce == body.nonce);
  sender.balance_ugpn -= body.fee_ugpn;
  sender.nonce += 1;
  db.PutAccount(tx.sender, sender);
  FeeSplit split = SplitFee(body.fee_ugpn, params.fees.burn_bp);
  auto supply = GetSupply(db);
  if (!supply) return std::unexpected(supply.error());
  auto burned = base::CheckedAdd(supply->burned_ugpn, split.burned_ugpn);
  GPUNET_CHECK(burned.has_value());  // burned <= genesis + minted, which fits
  supply->burned_ugpn = *burned;
  if (block.proposer.IsZero()) {
    auto pool = base::CheckedAdd(supply->fee_pool_ugpn, split.to_proposer_ugpn);
    GPUNET_CHECK(pool.has_value());
    supply->fee_pool_ugpn = *pool;
  } else {
    auto proposer = db.GetAccount(block.proposer);
    if (!proposer) return std::unexpected(proposer.error());
    auto credited = base::CheckedAdd(proposer->balance_ugpn, split.to_proposer_ugpn);
    // Every balance is part of a supply that fits in 64 bits (conservation).
    GPUNET_CHECK(credited.has_value());
    proposer->balance_ugpn = *credited;
    db.PutAccount(block.proposer, *proposer);
  }
  PutSupply(db, *supply);

  const std::string sender_text = crypto::AddressToString(tx.sender);
  codec::Receipt receipt;
  receipt.tx_hash = tx.hash;
  receipt.fee_ugpn = body.fee_ugpn;
  receipt.height = block.height;
  receipt.index = index;
  receipt.events.push_back(codec::Event{"fee",
                                        {{"burned_ugpn", std::to_string(split.burned_ugpn)},
                                         {"fee_ugpn", std::to_string(body.fee_ugpn)},
                                         {"payer", sender_text}}});

  // The fee is paid whatever the messages do; from here on every operation costs.
  GPUNET_CHECK(!meter.Exhausted());
  meter.SetPrepaid(false);
  const size_t checkpoint = db.Checkpoint();
  std::vector<codec::Event> events;
  for (size_t i = 0; i < body.msgs.size(); ++i) {
    auto result = ApplyMsg(db, block, params.market, tx.sender, sender_text, body.msgs[i], events);
    if (meter.Exhausted()) {
      // The meter refused a read (an error) or a write went over (a result that
      // must not stand): the same included failure either way.
      result = codec::TxError{TxCode::kOutOfGas, "message " + std::to_string(i) +
                                                     " ran out of gas: the tx's limit is " +
                                                     std::to_string(meter.Limit()) + " gas"};
    }
    if (!result) return std::unexpected(result.error());
    if (result->has_value()) {
      db.RevertTo(checkpoint);
      db.Release(checkpoint);
      GPUNET_CHECK(codec::IsIncludedFailure((*result)->code));
      AddGas(receipt, meter);
      receipt.code = static_cast<uint16_t>((*result)->code);
      receipt.events.push_back(
          codec::Event{"failure",
                       {{"code", std::string(codec::TxCodeName((*result)->code))},
                        {"message", (*result)->message.substr(0, 200)},
                        {"msg_index", std::to_string(i)}}});
      return codec::TxResult<codec::Receipt>(std::move(receipt));
    }
  }
  db.Release(checkpoint);
  // A receipt holds at most kEventsPerReceiptMax events: a tx whose messages emit
  // more (16 market messages with payouts) keeps the first ones and says so.
  for (auto& e : events) {
    if (receipt.events.size() + 1 >= base::limits::kEventsPerReceiptMax) {
      receipt.events.push_back(codec::Event{"events_truncated",
                                            {{"emitted", std::to_string(events.size())},
                                             {"kept", std::to_string(receipt.events.size() - 1)}}});
      break;
    }
    receipt.events.push_back(std::move(e));
  }
  AddGas(receipt, meter);
  receipt.code = static_cast<uint16_t>(TxCode::kOk);
  return codec::TxResult<codec::Receipt>(std::move(receipt));
}

}  // namespace

base::Result<codec::TxResult<codec::Receipt>> ApplyTx(StateDb& db, const CheckedTx& tx,
                                                      const BlockContext& block, uint32_t index,
                                                      const PipelineParams& params, GasUsed* used) {
  // Stage 1 guarantees the base fits; the base prepays the checks and the fee
  // bookkeeping (a fixed handful of reads and writes), so they are counted, not priced.
  GPUNET_CHECK(tx.gas_limit >= params.gas.tx_base);
  GasMeter meter(params.gas, tx.gas_limit);
  MeterScope metered(db, &meter);
  const bool base_charged = meter.Charge(params.gas.tx_base);
  GPUNET_CHECK(base_charged);  // the limit is at least the base (above)
  meter.SetPrepaid(true);
  auto receipt = ApplyFeeAndMessages(db, tx, block, index, params, meter);
  if (used != nullptr) *used = GasUsed{meter.Used(), meter.Counts()};
  return receipt;
}

}  // namespace gpunet::state
