#include "ledger/block_store.h"

#include "codec/encoding.h"

namespace gpunet::ledger {

namespace keyspace = state::keyspace;
using base::ErrorCode;

base::Result<uint64_t> ReadLastHeight(const state::KvStore& kv) {
  auto value = kv.Get(keyspace::MetaKey(keyspace::kMetaLastHeight));
  if (!value) return std::unexpected(value.error());
  if (!value->has_value()) return uint64_t{0};
  return keyspace::DecodeU64(**value);
}

base::Result<std::optional<codec::Block>> ReadBlock(const state::KvStore& kv, uint64_t height) {
  auto value = kv.Get(keyspace::BlockKey(height));
  if (!value) return std::unexpected(value.error());
  if (!value->has_value()) return std::optional<codec::Block>();
  auto block = codec::DecodeBlock(**value);
  if (!block) return base::Wrap(block.error(), "stored block " + std::to_string(height));
  return std::optional<codec::Block>(std::move(*block));
}

base::Result<std::optional<uint64_t>> ReadBlockHeight(const state::KvStore& kv,
                                                      const base::Hash32& block_hash) {
  auto value = kv.Get(keyspace::BlockHashKey(block_hash));
  if (!value) return std::unexpected(value.error());
  if (!value->has_value()) return std::optional<uint64_t>();
  auto height = keyspace::DecodeU64(**value);
  if (!height) return std::unexpected(height.error());
  return std::optional<uint64_t>(*height);
}

base::Result<std::vector<codec::Receipt>> ReadReceipts(const state::KvStore& kv, uint64_t height) {
  std::vector<codec::Receipt> out;
  std::optional<base::Error> error;
  GPUNET_TRY(kv.Scan(keyspace::ReceiptKey(height, 0), keyspace::ReceiptKey(height + 1, 0),
                     [&](base::ByteSpan, base::ByteSpan value) {
                       auto receipt = codec::DecodeReceipt(value);
                       if (!receipt) {
                         error = receipt.error();
                         return false;
                       }
                       out.push_back(std::move(*receipt));
                       return true;
                     }));
  if (error) return base::Wrap(*error, "stored receipt of block " + std::to_string(height));
  return out;
}

base::Result<std::optional<TxRecord>> FindTx(const state::KvStore& kv,
                                             const base::Hash32& tx_hash) {
  auto value = kv.Get(keyspace::TxHashKey(tx_hash));
  if (!value) return std::unexpected(value.error());
  if (!value->has_value()) return std::optional<TxRecord>();
  auto location = keyspace::DecodeTxLocation(**value);
  if (!location) return std::unexpected(location.error());
  auto block = ReadBlock(kv, location->height);
  if (!block) return std::unexpected(block.error());
  if (!block->has_value() || location->index >= (*block)->txs.size())
    return base::Fail(ErrorCode::kCorrupt,
                      "tx index points at a missing block or position: " + base::ToHex(tx_hash));
  auto receipt_bytes = kv.Get(keyspace::ReceiptKey(location->height, location->index));
  if (!receipt_bytes) return std::unexpected(receipt_bytes.error());
  if (!receipt_bytes->has_value())
    return base::Fail(ErrorCode::kCorrupt, "receipt missing for tx " + base::ToHex(tx_hash));
  auto receipt = codec::DecodeReceipt(**receipt_bytes);
  if (!receipt) return std::unexpected(receipt.error());
  return std::optional<TxRecord>(
      TxRecord{*location, (*block)->txs[location->index], std::move(*receipt)});
}

}  // namespace gpunet::ledger
