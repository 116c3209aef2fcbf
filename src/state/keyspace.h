// THE key space of the node's one RocksDB database (and of any KvStore). Every key
// that is written anywhere is built by a function of this file; nothing else
// invents key bytes. Modelled on Iroha 1's irohad/ametsuchi/impl/rocksdb_common.hpp.
//
// One flat, byte-ordered space. The first byte is the table; integers are
// big-endian, so byte order is numeric order and a range scan walks heights in
// order. Hashes are raw 32 bytes, addresses raw 20 bytes.
//
//   key                                          value
//   -------------------------------------------  -----------------------------------
//   0x00 'm' name                                meta (see kMeta* names below)
//     0x00 "m" "last_height"                       u64 BE: last committed height
//     0x00 "m" "app_version"                       u64 BE: state-machine version
//     0x00 "m" "genesis_hash"                      32 bytes
//     0x00 "m" "chain_id"                          utf-8 chain id
//     0x00 "m" "schema_version"                    u64 BE: this layout's version
//   0x01 tag ...                                 APPLICATION STATE (the state tree's
//                                                leaves: leaf = (H(key), H(value)))
//     0x01 0x01 address[20]                        account (codec-encoded)
//     0x01 0x02 0x01                               supply record (state/conservation.h)
//     0x01 0x03..0x0f                              reserved: bank / staking
//     0x01 0x10..0x23                              market records and indexes, laid out
//                                                  in market/keys.h (providers, sites,
//                                                  machines, offers, orders, bids,
//                                                  leases, attestations, deadline
//                                                  indexes by time)
//     0x01 0x24..0x3f                              reserved: market
//     0x01 0x40..0xff                              reserved
//   0x10 height[8]                               encoded block
//   0x11 block_hash[32]                          u64 BE height
//   0x12 tx_hash[32]                             u64 BE height ++ u32 BE index in block
//   0x13 height[8] index[4]                      encoded receipt of that tx
//   0x14 height[8]                               encoded validator set in force from
//                                                this height on (written where it changes)
//   0x15 height[8]                               encoded commit certificate of the block
//
// Application state lives under ONE prefix so that the authenticated tree is a
// scan of [kAppState, AppStateEnd()) and nothing else (replay compares roots).
// Table bytes are append-only: never reuse or renumber one; a change of layout
// bumps kSchemaVersion.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "market/keys.h"

namespace gpunet::state::keyspace {

/// Version of this layout, stored at MetaKey(kMetaSchemaVersion) by the node.
inline constexpr uint64_t kSchemaVersion = 1;

// ---- tables (first key byte) ----
inline constexpr uint8_t kMeta = 0x00;
inline constexpr uint8_t kAppState = 0x01;
inline constexpr uint8_t kBlockByHeight = 0x10;
inline constexpr uint8_t kHeightByBlockHash = 0x11;
inline constexpr uint8_t kTxLocationByHash = 0x12;
inline constexpr uint8_t kReceiptByLocation = 0x13;
inline constexpr uint8_t kValidatorSetByHeight = 0x14;
inline constexpr uint8_t kCommitByHeight = 0x15;

// ---- application state sub-tables (second key byte under kAppState) ----
inline constexpr uint8_t kAppAccount = 0x01;
inline constexpr uint8_t kAppSupply = 0x02;       ///< bank-wide records (the supply)
inline constexpr uint8_t kAppMarketFirst = 0x10;  ///< first byte reserved for market objects
inline constexpr uint8_t kAppMarketLast = 0x3f;   ///< last byte reserved for market objects

static_assert(market::keys::kAppState == kAppState, "market keys live in the app state");
static_assert(market::keys::kFirst >= kAppMarketFirst && market::keys::kLast <= kAppMarketLast,
              "market tables stay inside the bytes reserved for them");

// ---- meta names (key = kMeta 'm' name) ----
inline constexpr std::string_view kMetaLastHeight = "last_height";
inline constexpr std::string_view kMetaAppVersion = "app_version";
inline constexpr std::string_view kMetaGenesisHash = "genesis_hash";
inline constexpr std::string_view kMetaChainId = "chain_id";
inline constexpr std::string_view kMetaSchemaVersion = "schema_version";

inline constexpr size_t kHeightKeyBytes = 1 + 8;
inline constexpr size_t kHashKeyBytes = 1 + 32;
inline constexpr size_t kReceiptKeyBytes = 1 + 8 + 4;
inline constexpr size_t kTxLocationBytes = 8 + 4;

/// Key of a meta entry; `name` is one of the kMeta* names.
inline base::Bytes MetaKey(std::string_view name) {
  // push_back, not insert: g++ 12 -O2 warns falsely (-Warray-bounds) on a
  // range insert into a freshly braced vector.
  base::Bytes key;
  key.reserve(2 + name.size());
  key.push_back(kMeta);
  key.push_back(static_cast<uint8_t>('m'));
  for (char c : name) key.push_back(static_cast<uint8_t>(c));
  return key;
}

/// Key of an application-state entry: kAppState, sub-table tag, then `rest`.
inline base::Bytes AppStateKey(uint8_t tag, base::ByteSpan rest) {
  base::Bytes key;
  key.reserve(2 + rest.size());
  key.push_back(kAppState);
  key.push_back(tag);
  for (uint8_t b : rest) key.push_back(b);
  return key;
}

/// Account of a 20-byte address (crypto::Address).
inline base::Bytes AccountKey(const base::FixedBytes<20>& address) {
  return AppStateKey(kAppAccount, address.Span());
}

/// `table` followed by the big-endian height: blocks, validator sets, commits.
inline base::Bytes HeightKey(uint8_t table, uint64_t height) {
  base::Bytes key{table};
  base::AppendU64BE(key, height);
  return key;
}
inline base::Bytes BlockKey(uint64_t height) {
  return HeightKey(kBlockByHeight, height);
}
inline base::Bytes ValidatorSetKey(uint64_t height) {
  return HeightKey(kValidatorSetByHeight, height);
}
inline base::Bytes CommitKey(uint64_t height) {
  return HeightKey(kCommitByHeight, height);
}

inline base::Bytes BlockHashKey(const base::Hash32& block_hash) {
  base::Bytes key{kHeightByBlockHash};
  key.insert(key.end(), block_hash.begin(), block_hash.end());
  return key;
}

inline base::Bytes TxHashKey(const base::Hash32& tx_hash) {
  base::Bytes key{kTxLocationByHash};
  key.insert(key.end(), tx_hash.begin(), tx_hash.end());
  return key;
}

/// Receipts of one block are contiguous and in tx order: scan
/// [ReceiptKey(h, 0), ReceiptKey(h + 1, 0)).
inline base::Bytes ReceiptKey(uint64_t height, uint32_t index) {
  base::Bytes key{kReceiptByLocation};
  base::AppendU64BE(key, height);
  base::AppendU32BE(key, index);
  return key;
}

/// Where a transaction sits: the value of TxHashKey.
struct TxLocation {
  uint64_t height = 0;
  uint32_t index = 0;
  bool operator==(const TxLocation&) const = default;
};

inline base::Bytes EncodeTxLocation(const TxLocation& location) {
  base::Bytes out;
  base::AppendU64BE(out, location.height);
  base::AppendU32BE(out, location.index);
  return out;
}

inline base::Result<TxLocation> DecodeTxLocation(base::ByteSpan value) {
  if (value.size() != kTxLocationBytes)
    return base::Fail(base::ErrorCode::kCorrupt,
                      "tx location value must be 12 bytes, got " + std::to_string(value.size()));
  return TxLocation{base::ReadU64BE(value.data()), base::ReadU32BE(value.data() + 8)};
}

/// Big-endian u64 values (meta heights, block-hash index).
inline base::Bytes EncodeU64(uint64_t v) {
  base::Bytes out;
  base::AppendU64BE(out, v);
  return out;
}

inline base::Result<uint64_t> DecodeU64(base::ByteSpan value) {
  if (value.size() != 8)
    return base::Fail(base::ErrorCode::kCorrupt,
                      "u64 value must be 8 bytes, got " + std::to_string(value.size()));
  return base::ReadU64BE(value.data());
}

/// The height in a HeightKey of `table`; an error when the key is not one.
inline base::Result<uint64_t> HeightFromKey(uint8_t table, base::ByteSpan key) {
  if (key.size() != kHeightKeyBytes || key[0] != table)
    return base::Fail(base::ErrorCode::kCorrupt,
                      "not a height key of table " + std::to_string(table));
  return base::ReadU64BE(key.data() + 1);
}

/// The smallest key greater than every key starting with `prefix`: the exclusive
/// end of a prefix scan. Empty (= "to the end" for KvStore::Scan) when the
/// prefix is all 0xff or empty.
inline base::Bytes PrefixEnd(base::ByteSpan prefix) {
  base::Bytes end(prefix.begin(), prefix.end());
  while (!end.empty()) {
    if (end.back() != 0xff) {
      ++end.back();
      return end;
    }
    end.pop_back();
  }
  return end;
}

/// [begin, end) of the whole application state (the authenticated tree's leaves).
inline base::Bytes AppStateBegin() {
  return base::Bytes{kAppState};
}
inline base::Bytes AppStateEnd() {
  return base::Bytes{kAppState + 1};
}

}  // namespace gpunet::state::keyspace
