// Reading the block store: blocks, receipts and the tx index that LedgerApp::Commit
// writes (key layout in state/keyspace.h). Free functions over a KvStore so the
// RPC, replay and tests read the same records the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "codec/types.h"
#include "state/keyspace.h"
#include "state/kv.h"

namespace gpunet::ledger {

/// The last committed height (0 before the first block, or for an empty store).
base::Result<uint64_t> ReadLastHeight(const state::KvStore& kv);
/// The block at height; nullopt when there is none.
base::Result<std::optional<codec::Block>> ReadBlock(const state::KvStore& kv, uint64_t height);
/// The height of a block hash; nullopt when unknown.
base::Result<std::optional<uint64_t>> ReadBlockHeight(const state::KvStore& kv,
                                                      const base::Hash32& block_hash);
/// The receipts of the block at height, in tx order.
base::Result<std::vector<codec::Receipt>> ReadReceipts(const state::KvStore& kv, uint64_t height);

/// An included tx with its receipt.
struct TxRecord {
  state::keyspace::TxLocation location;
  codec::Tx tx;
  codec::Receipt receipt;
};
/// The included tx with this hash; nullopt when no committed block has it.
base::Result<std::optional<TxRecord>> FindTx(const state::KvStore& kv, const base::Hash32& tx_hash);

}  // namespace gpunet::ledger
