#include "node/market_index.h"

#include <string>

#include "base/check.h"
#include "market/keys.h"
#include "market/records.h"

namespace gpunet::node {
namespace {

using base::ErrorCode;
using base::Fail;
namespace keys = market::keys;

/// 0x01 table: the start of one record table (and, for table + 1, its end; built
/// with KeyBuilder, not PrefixEnd, which g++ 12 -O2 warns about falsely here).
base::Bytes TableKey(int table) {
  GPUNET_CHECK(table > 0 && table < 0xff);
  return keys::KeyBuilder(static_cast<uint8_t>(table));
}

/// Ids of `set` above `after`, at most `count`.
std::vector<uint64_t> IdsAfter(const absl::btree_set<uint64_t>& set, uint64_t after, size_t count) {
  std::vector<uint64_t> out;
  if (after == UINT64_MAX) return out;
  for (auto it = set.lower_bound(after + 1); it != set.end() && out.size() < count; ++it)
    out.push_back(*it);
  return out;
}

/// Ids of `party`'s entries of `set` above `after`, at most `count`.
std::vector<uint64_t> IdsAfter(const absl::btree_set<std::pair<codec::Address, uint64_t>>& set,
                               const codec::Address& party, uint64_t after, size_t count) {
  std::vector<uint64_t> out;
  if (after == UINT64_MAX) return out;
  for (auto it = set.lower_bound({party, after + 1});
       it != set.end() && it->first == party && out.size() < count; ++it)
    out.push_back(it->second);
  return out;
}

template <class Set, class Entry>
void SetMember(Set& set, const Entry& entry, bool member) {
  if (member)
    set.insert(entry);
  else
    set.erase(entry);
}

}  // namespace

base::Result<std::unique_ptr<MarketIndex>> MarketIndex::Build(const state::KvStore& kv) {
  auto index = std::make_unique<MarketIndex>();
  for (uint8_t table : {keys::kOffer, keys::kOrder, keys::kLease}) {
    base::Status bad = base::Ok();
    const base::Bytes begin = TableKey(table);
    GPUNET_TRY(kv.Scan(begin, TableKey(table + 1), [&](base::ByteSpan key, base::ByteSpan v) {
      auto id = keys::ParseIdKey(table, key);
      base::MutexLock lock(index->m_mutex);  // no one else sees the index yet
      if (id && index->Take(table, *id, v)) return true;
      // Build is the one place the bytes come from disk rather than the encoder.
      bad = Fail(ErrorCode::kCorrupt, "the market index cannot read the stored record at " +
                                          base::ToHex(key) + "; the store is damaged");
      return false;
    }));
    GPUNET_TRY(bad);
  }
  return index;
}

void MarketIndex::Apply(const state::WriteBatch& batch) {
  const state::KeyOps& ops = batch.Ops();
  base::MutexLock lock(m_mutex);
  for (uint8_t table : {keys::kOffer, keys::kOrder, keys::kLease}) {
    const base::Bytes begin = TableKey(table), end = TableKey(table + 1);
    for (auto it = ops.lower_bound(base::ByteSpan(begin));
         it != ops.end() && state::BytesLess{}(it->first, end); ++it) {
      auto id = keys::ParseIdKey(table, it->first);
      GPUNET_CHECK(id.has_value());  // every key of these tables is 0x01 table id[8]
      std::optional<base::ByteSpan> value;
      if (it->second) value = base::ByteSpan(*it->second);
      GPUNET_CHECK(Take(table, *id, value));  // the market's own encoding
    }
  }
}

bool MarketIndex::Take(uint8_t table, uint64_t id, std::optional<base::ByteSpan> value) {
  if (table == keys::kOffer) {
    if (!value) {
      m_open_offers.erase(id);  // the per-party set keeps a stale id; readers skip it
      return true;
    }
    auto o = market::DecodeOffer(*value);
    if (!o || o->offer_id != id) return false;
    SetMember(m_open_offers, id, o->open);
    m_provider_offers.insert({o->provider, id});
    return true;
  }
  if (table == keys::kOrder) {
    if (!value) {
      m_open_orders.erase(id);
      return true;
    }
    auto o = market::DecodeOrder(*value);
    if (!o || o->order_id != id) return false;
    SetMember(m_open_orders, id, o->state == market::OrderState::kOpen);
    m_tenant_orders.insert({o->tenant, id});
    return true;
  }
  GPUNET_CHECK(table == keys::kLease);
  if (!value) return true;  // the per-party set keeps a stale id; readers skip it
  auto l = market::DecodeLease(*value);
  if (!l || l->lease_id != id) return false;
  SetMember(m_tenant_open_leases, PartyId{l->tenant, id}, l->state != market::LeaseState::kClosed);
  return true;
}

std::vector<uint64_t> MarketIndex::Page(MarketList list, const codec::Address& party,
                                        uint64_t after, size_t count) const {
  base::MutexLock lock(m_mutex);
  switch (list) {
    case MarketList::kOpenOffers:
      return IdsAfter(m_open_offers, after, count);
    case MarketList::kProviderOffers:
      return IdsAfter(m_provider_offers, party, after, count);
    case MarketList::kOpenOrders:
      return IdsAfter(m_open_orders, after, count);
    case MarketList::kTenantOrders:
      return IdsAfter(m_tenant_orders, party, after, count);
    case MarketList::kTenantOpenLeases:
      return IdsAfter(m_tenant_open_leases, party, after, count);
  }
  GPUNET_UNREACHABLE();  // the switch returns for every MarketList
}

base::Status IndexedKvStore::Commit(const state::WriteBatch& batch) {
  GPUNET_TRY(m_inner->Commit(batch));
  if (m_observer) m_observer(batch);
  return base::Ok();
}

}  // namespace gpunet::node
