#include "market/keys.h"

#include <algorithm>

#include "base/check.h"

namespace gpunet::market::keys {

namespace {

/// Reads a key's parts in order after checking its first two bytes, the mirror of
/// KeyBuilder. A part past the end marks the read failed; Done() is true only when
/// every part was there and nothing is left over.
class KeyReader {
 public:
  KeyReader(base::ByteSpan key, uint8_t table)
      : m_key(key), m_ok(key.size() >= 2 && key[0] == kAppState && key[1] == table) {}

  uint64_t U64() {
    const uint8_t* p = Take(8);
    return p != nullptr ? base::ReadU64BE(p) : 0;
  }
  uint32_t U32() {
    const uint8_t* p = Take(4);
    return p != nullptr ? base::ReadU32BE(p) : 0;
  }
  codec::Address Addr() {
    codec::Address a;
    if (const uint8_t* p = Take(codec::Address::kSize))
      std::copy(p, p + codec::Address::kSize, a.begin());
    return a;
  }
  std::string Str() {
    const uint8_t* size = Take(1);
    if (size == nullptr) return {};
    const uint8_t* p = Take(*size);
    return p != nullptr ? std::string(p, p + *size) : std::string();
  }
  bool Done() const { return m_ok && m_at == m_key.size(); }

 private:
  const uint8_t* Take(size_t n) {
    if (!m_ok || m_key.size() - m_at < n) {
      m_ok = false;
      return nullptr;
    }
    const uint8_t* p = m_key.data() + m_at;
    m_at += n;
    return p;
  }

  base::ByteSpan m_key;
  bool m_ok;
  size_t m_at = 2;  ///< after 0x01 table
};

template <class T>
std::optional<T> IfDone(const KeyReader& r, T value) {
  if (!r.Done()) return std::nullopt;
  return value;
}

/// owner[20] id[4]: a site or a machine.
std::optional<OwnedId> ParseOwnedId(uint8_t table, base::ByteSpan key) {
  KeyReader r(key, table);
  const OwnedId v{r.Addr(), r.U32()};
  return IfDone(r, v);
}

bool IsIdTable(uint8_t table) {
  return table == kOffer || table == kOrder || table == kBid || table == kLease;
}

}  // namespace

base::Bytes IdKey(uint8_t table, uint64_t id) {
  GPUNET_CHECK(IsIdTable(table));
  return KeyBuilder(table).U64(id);
}

bool IsDeadlineIndex(uint8_t table) {
  return table == kExpiryIndex || table == kStartIndex || table == kWindowIndex;
}

bool IsPartyIndex(uint8_t table) {
  return table == kProviderOpenLeases || table == kProviderOpenOffers ||
         table == kTenantOpenOrders || table == kTenantLeases || table == kProviderLeases;
}

base::Bytes DeadlineIndexKey(uint8_t table, uint64_t deadline_ms, uint64_t id) {
  GPUNET_CHECK(IsDeadlineIndex(table));
  return KeyBuilder(table).U64(deadline_ms).U64(id);
}

base::Bytes HeartbeatIndexKey(uint64_t deadline_ms, const codec::Address& owner) {
  return KeyBuilder(kHeartbeatIndex).U64(deadline_ms).Addr(owner);
}

base::Bytes PartyIndexKey(uint8_t table, const codec::Address& party, uint64_t id) {
  GPUNET_CHECK(IsPartyIndex(table));
  return KeyBuilder(table).Addr(party).U64(id);
}

base::Bytes OrderBidKey(uint64_t order_id, uint64_t bid_id) {
  return KeyBuilder(kOrderBids).U64(order_id).U64(bid_id);
}

base::Bytes OrderProviderBidKey(uint64_t order_id, const codec::Address& provider) {
  return KeyBuilder(kOrderProviderBid).U64(order_id).Addr(provider);
}

// The parts are read in braced initialisers, which evaluate left to right: the
// order of the key.

std::optional<codec::Address> ParseProviderKey(base::ByteSpan key) {
  KeyReader r(key, kProvider);
  const codec::Address owner = r.Addr();
  return IfDone(r, owner);
}

std::optional<OwnedId> ParseSiteKey(base::ByteSpan key) {
  return ParseOwnedId(kSite, key);
}

std::optional<OwnedId> ParseMachineKey(base::ByteSpan key) {
  return ParseOwnedId(kMachine, key);
}

std::optional<uint64_t> ParseIdKey(uint8_t table, base::ByteSpan key) {
  if (!IsIdTable(table)) return std::nullopt;
  KeyReader r(key, table);
  const uint64_t id = r.U64();
  return IfDone(r, id);
}

std::optional<DeadlineEntry> ParseDeadlineIndexKey(uint8_t table, base::ByteSpan key) {
  if (!IsDeadlineIndex(table)) return std::nullopt;
  KeyReader r(key, table);
  const DeadlineEntry v{r.U64(), r.U64()};
  return IfDone(r, v);
}

std::optional<HeartbeatEntry> ParseHeartbeatIndexKey(base::ByteSpan key) {
  KeyReader r(key, kHeartbeatIndex);
  const HeartbeatEntry v{r.U64(), r.Addr()};
  return IfDone(r, v);
}

std::optional<PartyEntry> ParsePartyIndexKey(uint8_t table, base::ByteSpan key) {
  if (!IsPartyIndex(table)) return std::nullopt;
  KeyReader r(key, table);
  const PartyEntry v{r.Addr(), r.U64()};
  return IfDone(r, v);
}

std::optional<OrderBid> ParseOrderBidKey(base::ByteSpan key) {
  KeyReader r(key, kOrderBids);
  const OrderBid v{r.U64(), r.U64()};
  return IfDone(r, v);
}

std::optional<OrderProviderBid> ParseOrderProviderBidKey(base::ByteSpan key) {
  KeyReader r(key, kOrderProviderBid);
  const OrderProviderBid v{r.U64(), r.Addr()};
  return IfDone(r, v);
}

std::optional<AttestationRef> ParseAttestationKey(base::ByteSpan key) {
  KeyReader r(key, kAttestation);
  const AttestationRef v{r.Addr(), r.U32(), r.Str(), r.Addr()};
  return IfDone(r, v);
}

std::optional<uint64_t> ParseIndexDeadline(base::ByteSpan key) {
  if (auto h = ParseHeartbeatIndexKey(key)) return h->deadline_ms;
  if (key.size() < 2) return std::nullopt;
  auto d = ParseDeadlineIndexKey(key[1], key);
  if (!d) return std::nullopt;
  return d->deadline_ms;
}

}  // namespace gpunet::market::keys
