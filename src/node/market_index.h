// The node's own indexes of the market's offers, orders and leases, for the list
// endpoints (docs/rpc.md, "Market"): which are open, and whose they are, where the
// application state has no index that answers the question in key order.
//
// They live in memory, outside the state root: nothing hashes, stores or replays
// them, and two nodes may hold them differently without disagreeing on anything.
// Build reads the three record tables once when the node opens; after that every
// committed block's state changes update them (IndexedKvStore below sees the
// batch), so a list answer costs the page it returns, never a walk over every
// record ever made. What the state already indexes per party in id order is read
// from the state instead (market/keys.h):
//
//   list                          source
//   open offers                   here (kOpenOffers)
//   open offers of a provider     state 0x20 kProviderOpenOffers
//   every offer of a provider     here (kProviderOffers)
//   every offer                   state 0x14, the offer table
//   open orders                   here (kOpenOrders)
//   open orders of a tenant       state 0x1f kTenantOpenOrders
//   every order of a tenant       here (kTenantOrders)
//   every order                   state 0x15, the order table
//   open leases of a tenant       here (kTenantOpenLeases)
//   open leases of a provider     state 0x19 kProviderOpenLeases
//   every lease of a tenant       state 0x22 kTenantLeases
//   every lease of a provider     state 0x23 kProviderLeases
//
// "Open" is the record's own field: an offer's `open`, an order in state open, a
// lease not closed. Records are never deleted by the market; should one be, the
// id-keyed sets drop it and the per-party sets keep a stale id that readers skip
// (they load every record they list and check it).
#pragma once

#include <absl/container/btree_set.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "codec/types.h"
#include "state/kv.h"

namespace gpunet::node {

/// The lists the index holds.
enum class MarketList : uint8_t {
  kOpenOffers,        ///< every open offer (party ignored)
  kProviderOffers,    ///< every offer of the provider `party`, open or closed
  kOpenOrders,        ///< every open order (party ignored)
  kTenantOrders,      ///< every order of the tenant `party`, in any state
  kTenantOpenLeases,  ///< the open (reserved or started) leases of the tenant `party`
};

class MarketIndex {
 public:
  /// The index of the committed records in `kv`: one scan of the offer, order and
  /// lease tables. kCorrupt when a stored record does not decode.
  static base::Result<std::unique_ptr<MarketIndex>> Build(const state::KvStore& kv);

  /// Takes in a committed batch's offer, order and lease records (every other key
  /// is skipped by a seek, not visited). The values come from the market's own
  /// encoder, so one that does not decode is a bug and stops the node.
  void Apply(const state::WriteBatch& batch) EXCLUDES(m_mutex);

  /// Up to `count` ids of `list` greater than `after`, ascending. `party` names
  /// the provider or tenant of a per-party list and is ignored by the others.
  std::vector<uint64_t> Page(MarketList list, const codec::Address& party, uint64_t after,
                             size_t count) const;

 private:
  using PartyId = std::pair<codec::Address, uint64_t>;

  // Takes in the new value (nullopt: deleted) of record `id` of `table` (kOffer,
  // kOrder or kLease); false when it does not decode as that record.
  bool Take(uint8_t table, uint64_t id, std::optional<base::ByteSpan> value) REQUIRES(m_mutex);

  mutable base::Mutex m_mutex;  ///< guards every set below
  absl::btree_set<uint64_t> m_open_offers GUARDED_BY(m_mutex);
  absl::btree_set<PartyId> m_provider_offers GUARDED_BY(m_mutex);
  absl::btree_set<uint64_t> m_open_orders GUARDED_BY(m_mutex);
  absl::btree_set<PartyId> m_tenant_orders GUARDED_BY(m_mutex);
  absl::btree_set<PartyId> m_tenant_open_leases GUARDED_BY(m_mutex);
};

/// A KvStore that forwards everything to `inner` and, after each successful
/// Commit, hands the batch to an observer: the node puts it between RocksDB and
/// the ledger so the market index follows every committed block.
class IndexedKvStore final : public state::KvStore {
 public:
  using Observer = std::function<void(const state::WriteBatch&)>;
  explicit IndexedKvStore(state::KvStore& inner) : m_inner(&inner) {}

  /// Set before any commit that should be observed; not thread-safe against Commit.
  void SetObserver(Observer observer) { m_observer = std::move(observer); }

  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    return m_inner->Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const state::KvVisitor& visit) const override {
    return m_inner->Scan(begin, end, visit);
  }
  base::Status Commit(const state::WriteBatch& batch) override;

 private:
  state::KvStore* m_inner;
  Observer m_observer;
};

}  // namespace gpunet::node
