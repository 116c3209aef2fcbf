#include "client/tx_builder.h"

#include <string>

#include "base/checked_math.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;

codec::TxBody TransferBody(const crypto::PublicKey& sender, std::string_view chain_id,
                           uint64_t nonce, const codec::Address& to, uint64_t amount_ugpn,
                           uint64_t fee_ugpn, uint64_t timeout_height, std::string_view memo) {
  codec::TxBody body;
  body.chain_id = std::string(chain_id);
  body.sender = sender;
  body.nonce = nonce;
  body.fee_ugpn = fee_ugpn;
  body.timeout_height = timeout_height;
  body.msgs.push_back(codec::MsgSend{to, amount_ugpn});
  body.memo = std::string(memo);
  return body;
}

base::Status CheckTransferInput(std::string_view chain_id, uint64_t amount_ugpn,
                                std::string_view memo) {
  if (chain_id.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "the chain id is empty; `gpunet status` shows the node's");
  if (chain_id.size() > base::limits::kChainIdBytesMax)
    return Fail(
        ErrorCode::kInvalidArgument,
        "the chain id is over " + std::to_string(base::limits::kChainIdBytesMax) + " bytes");
  if (amount_ugpn == 0)
    return Fail(ErrorCode::kInvalidArgument,
                "the amount is 0; send at least 1 ugpn (0.000001 GPN)");
  if (memo.size() > base::limits::kMemoBytesMax)
    return Fail(ErrorCode::kInvalidArgument,
                "the memo is " + std::to_string(memo.size()) + " bytes; at most " +
                    std::to_string(base::limits::kMemoBytesMax) + " are allowed");
  return base::Ok();
}

}  // namespace

std::optional<uint64_t> MinimumFee(const FeeSchedule& schedule, uint64_t tx_bytes, uint64_t msgs) {
  auto bytes_fee = base::CheckedMul(schedule.per_byte_ugpn, tx_bytes);
  auto msgs_fee = base::CheckedMul(schedule.per_msg_ugpn, msgs);
  if (!bytes_fee || !msgs_fee) return std::nullopt;
  auto sum = base::CheckedAdd(*bytes_fee, *msgs_fee);
  if (!sum) return std::nullopt;
  return *sum > schedule.min_ugpn ? *sum : schedule.min_ugpn;
}

std::optional<uint64_t> FeeWithGasMargin(const FeeSchedule& fees, const GasSchedule& gas,
                                         uint64_t tx_bytes, uint64_t msgs, uint64_t gas_used) {
  // The byte and message price without the minimum: the minimum bounds the total.
  const FeeSchedule no_minimum{fees.per_byte_ugpn, fees.per_msg_ugpn, 0};
  auto price = MinimumFee(no_minimum, tx_bytes, msgs);
  auto margin = base::CheckedMul(gas_used, kGasMarginPercent);
  if (!price || !margin) return std::nullopt;
  uint64_t with_margin = gas_used + (*margin + 99) / 100;  // <= 1.2 x a u64 / 100: fits
  if (gas.block_max != 0) with_margin = std::min(with_margin, gas.block_max);
  auto gas_fee = base::CheckedMul(with_margin, gas.price_ugpn);
  if (!gas_fee) return std::nullopt;
  auto total = base::CheckedAdd(*price, *gas_fee);
  if (!total) return std::nullopt;
  return std::max(*total, fees.min_ugpn);
}

base::Result<uint64_t> TransferFee(const FeeSchedule& schedule, std::string_view chain_id,
                                   std::string_view memo) {
  GPUNET_TRY(CheckTransferInput(chain_id, 1, memo));
  codec::Tx tx;
  tx.body = TransferBody(crypto::PublicKey{}, chain_id, 0, codec::Address{}, 1, 0, 0, memo);
  size_t bytes = codec::EncodeTx(tx).size();
  auto fee = MinimumFee(schedule, bytes, tx.body.msgs.size());
  if (!fee)
    return Fail(ErrorCode::kOverflow,
                "the node's fee schedule asks for more than 2^64-1 ugpn for a " +
                    std::to_string(bytes) + "-byte transfer; no fee can pay that");
  return *fee;
}

base::Result<codec::Tx> BuildTransfer(const crypto::KeyPair& key, std::string_view chain_id,
                                      uint64_t nonce, const codec::Address& to,
                                      uint64_t amount_ugpn, uint64_t fee_ugpn,
                                      uint64_t timeout_height, std::string_view memo) {
  GPUNET_TRY(CheckTransferInput(chain_id, amount_ugpn, memo));
  if (!base::CheckedAdd(amount_ugpn, fee_ugpn))
    return Fail(ErrorCode::kOverflow,
                "amount + fee is more than 2^64-1 ugpn; no account can pay that");
  codec::TxBody body =
      TransferBody(key.Public(), chain_id, nonce, to, amount_ugpn, fee_ugpn, timeout_height, memo);
  if (auto valid = codec::ValidateTxBody(body); !valid)
    return base::Wrap(valid.error(), "the transfer is not a valid transaction");
  return codec::SignTx(std::move(body), key);
}

}  // namespace gpunet::client
