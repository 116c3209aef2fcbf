// Where the market's records live in the application state (state/keyspace.h
// documents the whole space and reserves 0x01 0x10..0x3f for these). Big-endian
// ids so byte order is numeric order: scans walk ids, deadlines and providers in
// order, which is what first fit, awards and the deadline indexes rely on.
//
//   0x01 0x10                                   Counters
//   0x01 0x11 owner[20]                         Provider
//   0x01 0x12 owner[20] site_id[4]              Site
//   0x01 0x13 owner[20] machine_id[4]           Machine
//   0x01 0x14 offer_id[8]                       Offer
//   0x01 0x15 order_id[8]                       Order
//   0x01 0x16 bid_id[8]                         Bid
//   0x01 0x17 order_id[8] bid_id[8]             (empty) bids of an order
//   0x01 0x18 lease_id[8]                       Lease
//   0x01 0x19 owner[20] lease_id[8]             (empty) OPEN leases of a provider
//   0x01 0x1a paid_until_ms[8] lease_id[8]      (empty) expiry index (started leases)
//   0x01 0x1b deadline_ms[8] lease_id[8]        start-deadline index (reserved)
//   0x01 0x1c deadline_ms[8] owner[20]          heartbeat-deadline index
//     (both: empty, or u64 grace_until_height once a block has seen them due)
//   0x01 0x1d window_end_ms[8] order_id[8]      (empty) bid-window index (open orders)
//   0x01 0x1e owner[20] machine_id[4] klen[1] key auditor[20]   Attestation
//   0x01 0x1f tenant[20] order_id[8]            (empty) OPEN orders of a tenant
//   0x01 0x20 owner[20] offer_id[8]             (empty) OPEN offers of a provider
//   0x01 0x21 order_id[8] owner[20]             u64 bid id: one bid per provider/order
//   0x01 0x22 tenant[20] lease_id[8]            (empty) every lease of a tenant
//   0x01 0x23 owner[20] lease_id[8]             (empty) every lease of a provider
//
// Every layout has a builder and, where anyone reads its parts back, a parser
// (keys.cpp) that checks the table and the length: code outside this file never
// reads ids out of keys by byte offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "codec/types.h"

namespace gpunet::market::keys {

inline constexpr uint8_t kAppState = 0x01;  ///< == state::keyspace::kAppState (checked there)

inline constexpr uint8_t kCounters = 0x10;
inline constexpr uint8_t kProvider = 0x11;
inline constexpr uint8_t kSite = 0x12;
inline constexpr uint8_t kMachine = 0x13;
inline constexpr uint8_t kOffer = 0x14;
inline constexpr uint8_t kOrder = 0x15;
inline constexpr uint8_t kBid = 0x16;
inline constexpr uint8_t kOrderBids = 0x17;
inline constexpr uint8_t kLease = 0x18;
inline constexpr uint8_t kProviderOpenLeases = 0x19;
inline constexpr uint8_t kExpiryIndex = 0x1a;
inline constexpr uint8_t kStartIndex = 0x1b;
inline constexpr uint8_t kHeartbeatIndex = 0x1c;
inline constexpr uint8_t kWindowIndex = 0x1d;
inline constexpr uint8_t kAttestation = 0x1e;
inline constexpr uint8_t kTenantOpenOrders = 0x1f;
inline constexpr uint8_t kProviderOpenOffers = 0x20;
inline constexpr uint8_t kOrderProviderBid = 0x21;
inline constexpr uint8_t kTenantLeases = 0x22;
inline constexpr uint8_t kProviderLeases = 0x23;
inline constexpr uint8_t kFirst = kCounters;
inline constexpr uint8_t kLast = kProviderLeases;

/// Builds a key: 0x01, table, then the parts appended in order.
class KeyBuilder {
 public:
  // push_back, not a braced init + insert: g++ 12 -O2 warns falsely (-Warray-bounds).
  explicit KeyBuilder(uint8_t table) {
    m_key.reserve(64);
    m_key.push_back(kAppState);
    m_key.push_back(table);
  }
  KeyBuilder& U64(uint64_t v) {
    base::AppendU64BE(m_key, v);
    return *this;
  }
  KeyBuilder& U32(uint32_t v) {
    base::AppendU32BE(m_key, v);
    return *this;
  }
  KeyBuilder& Addr(const codec::Address& a) {
    for (uint8_t b : a) m_key.push_back(b);
    return *this;
  }
  KeyBuilder& Str(std::string_view s) {
    m_key.push_back(static_cast<uint8_t>(s.size()));
    for (char c : s) m_key.push_back(static_cast<uint8_t>(c));
    return *this;
  }
  const base::Bytes& Get() const { return m_key; }
  operator base::Bytes() const { return m_key; }

 private:
  base::Bytes m_key;
};

inline base::Bytes CountersKey() {
  return KeyBuilder(kCounters);
}
inline base::Bytes ProviderKey(const codec::Address& owner) {
  return KeyBuilder(kProvider).Addr(owner);
}
inline base::Bytes SiteKey(const codec::Address& owner, uint32_t site_id) {
  return KeyBuilder(kSite).Addr(owner).U32(site_id);
}
inline base::Bytes MachineKey(const codec::Address& owner, uint32_t machine_id) {
  return KeyBuilder(kMachine).Addr(owner).U32(machine_id);
}
inline base::Bytes OfferKey(uint64_t id) {
  return KeyBuilder(kOffer).U64(id);
}
inline base::Bytes OrderKey(uint64_t id) {
  return KeyBuilder(kOrder).U64(id);
}
inline base::Bytes BidKey(uint64_t id) {
  return KeyBuilder(kBid).U64(id);
}
inline base::Bytes LeaseKey(uint64_t id) {
  return KeyBuilder(kLease).U64(id);
}
inline base::Bytes AttestationKey(const codec::Address& owner, uint32_t machine_id,
                                  std::string_view attribute, const codec::Address& auditor) {
  return KeyBuilder(kAttestation).Addr(owner).U32(machine_id).Str(attribute).Addr(auditor);
}

/// 0x01 table id[8] of the tables keyed by a chain-wide id: kOffer, kOrder, kBid,
/// kLease (checked).
base::Bytes IdKey(uint8_t table, uint64_t id);

/// The indexes keyed by a deadline then a lease or order id: kExpiryIndex
/// (paid_until_ms, lease), kStartIndex (start_deadline_ms, lease), kWindowIndex
/// (window_end_ms, order).
bool IsDeadlineIndex(uint8_t table);
/// The lists keyed by a party then an id: kProviderOpenLeases, kProviderOpenOffers,
/// kTenantOpenOrders, kTenantLeases, kProviderLeases.
bool IsPartyIndex(uint8_t table);

/// 0x01 table deadline_ms[8] id[8] of a deadline index (IsDeadlineIndex, checked).
base::Bytes DeadlineIndexKey(uint8_t table, uint64_t deadline_ms, uint64_t id);
/// 0x01 0x1c deadline_ms[8] owner[20]: a provider's heartbeat deadline.
base::Bytes HeartbeatIndexKey(uint64_t deadline_ms, const codec::Address& owner);
/// 0x01 table party[20] id[8] of a party index (IsPartyIndex, checked).
base::Bytes PartyIndexKey(uint8_t table, const codec::Address& party, uint64_t id);
/// 0x01 0x17 order_id[8] bid_id[8]: a bid of an order.
base::Bytes OrderBidKey(uint64_t order_id, uint64_t bid_id);
/// 0x01 0x21 order_id[8] provider[20]: the bid a provider made on an order.
base::Bytes OrderProviderBidKey(uint64_t order_id, const codec::Address& provider);

// ---------------------------------------------------------------- parsers
//
// Each takes a whole application-state key and gives back its parts, or nullopt
// when the key is not of that layout (another table, a wrong length, an attribute
// length that does not match). Nobody else reads ids out of keys by byte offset.

/// A site or machine: owner[20] then its 4-byte id.
struct OwnedId {
  codec::Address owner;
  uint32_t id = 0;
  bool operator==(const OwnedId&) const = default;
};
/// A deadline-index entry: the deadline and the lease or order it is for.
struct DeadlineEntry {
  uint64_t deadline_ms = 0;
  uint64_t id = 0;
  bool operator==(const DeadlineEntry&) const = default;
};
struct HeartbeatEntry {
  uint64_t deadline_ms = 0;
  codec::Address owner;
  bool operator==(const HeartbeatEntry&) const = default;
};
struct PartyEntry {
  codec::Address party;
  uint64_t id = 0;
  bool operator==(const PartyEntry&) const = default;
};
struct OrderBid {
  uint64_t order_id = 0;
  uint64_t bid_id = 0;
  bool operator==(const OrderBid&) const = default;
};
struct OrderProviderBid {
  uint64_t order_id = 0;
  codec::Address provider;
  bool operator==(const OrderProviderBid&) const = default;
};
struct AttestationRef {
  codec::Address owner;
  uint32_t machine_id = 0;
  std::string attribute;
  codec::Address auditor;
  bool operator==(const AttestationRef&) const = default;
};

std::optional<codec::Address> ParseProviderKey(base::ByteSpan key);
std::optional<OwnedId> ParseSiteKey(base::ByteSpan key);
std::optional<OwnedId> ParseMachineKey(base::ByteSpan key);
/// The id of an IdKey of `table` (kOffer, kOrder, kBid, kLease).
std::optional<uint64_t> ParseIdKey(uint8_t table, base::ByteSpan key);
std::optional<DeadlineEntry> ParseDeadlineIndexKey(uint8_t table, base::ByteSpan key);
std::optional<HeartbeatEntry> ParseHeartbeatIndexKey(base::ByteSpan key);
std::optional<PartyEntry> ParsePartyIndexKey(uint8_t table, base::ByteSpan key);
std::optional<OrderBid> ParseOrderBidKey(base::ByteSpan key);
std::optional<OrderProviderBid> ParseOrderProviderBidKey(base::ByteSpan key);
std::optional<AttestationRef> ParseAttestationKey(base::ByteSpan key);
/// The deadline of an entry of any of the four deadline-keyed indexes (the three
/// of IsDeadlineIndex and the heartbeat index); nullopt for any other key.
std::optional<uint64_t> ParseIndexDeadline(base::ByteSpan key);

/// The smallest key after every key starting with `prefix` (exclusive scan end).
inline base::Bytes PrefixEnd(base::Bytes prefix) {
  while (!prefix.empty()) {
    if (prefix.back() != 0xff) {
      ++prefix.back();
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

}  // namespace gpunet::market::keys
