// The market's key parsers (market/keys.h): each gives back what its builder put
// in, and refuses a key of another table, a key one byte short or long, and a key
// outside the application state.
#include <gtest/gtest.h>

#include <functional>
#include <optional>

#include "market/keys.h"

namespace gpunet::market::keys {
namespace {

codec::Address Filled(uint8_t byte) {
  codec::Address a;
  a.data.fill(byte);
  return a;
}

/// `parse` refuses every damaged form of the good key `key`: one byte short, one
/// byte more, another table, and the app-state byte changed.
template <class T>
void RefusesDamaged(const base::Bytes& key,
                    const std::function<std::optional<T>(base::ByteSpan)>& parse) {
  ASSERT_TRUE(parse(key).has_value());
  base::Bytes shorter(key.begin(), key.end() - 1);
  EXPECT_FALSE(parse(shorter).has_value()) << base::ToHex(key);
  base::Bytes longer = key;
  longer.push_back(0);
  EXPECT_FALSE(parse(longer).has_value()) << base::ToHex(key);
  base::Bytes other_table = key;
  other_table[1] = other_table[1] == kLast ? kFirst : static_cast<uint8_t>(other_table[1] + 1);
  EXPECT_FALSE(parse(other_table).has_value()) << base::ToHex(key);
  base::Bytes other_space = key;
  other_space[0] = 0x02;
  EXPECT_FALSE(parse(other_space).has_value()) << base::ToHex(key);
  EXPECT_FALSE(parse(base::Bytes{}).has_value());
  EXPECT_FALSE(parse(base::Bytes{kAppState}).has_value());
}

TEST(MarketKeys, ProviderRoundTrips) {
  const auto owner = Filled(0x11);
  EXPECT_EQ(ParseProviderKey(ProviderKey(owner)), owner);
  RefusesDamaged<codec::Address>(ProviderKey(owner), ParseProviderKey);
}

TEST(MarketKeys, SiteAndMachineRoundTrip) {
  const auto owner = Filled(0x22);
  EXPECT_EQ(ParseSiteKey(SiteKey(owner, 7)), (OwnedId{owner, 7}));
  EXPECT_EQ(ParseMachineKey(MachineKey(owner, 0xfffffffe)), (OwnedId{owner, 0xfffffffe}));
  // The two layouts are the same length: the table tells them apart.
  EXPECT_FALSE(ParseSiteKey(MachineKey(owner, 7)).has_value());
  EXPECT_FALSE(ParseMachineKey(SiteKey(owner, 7)).has_value());
  RefusesDamaged<OwnedId>(SiteKey(owner, 7), ParseSiteKey);
  RefusesDamaged<OwnedId>(MachineKey(owner, 7), ParseMachineKey);
}

TEST(MarketKeys, RecordIdsRoundTrip) {
  for (uint8_t table : {kOffer, kOrder, kBid, kLease}) {
    auto parse = [table](base::ByteSpan key) { return ParseIdKey(table, key); };
    EXPECT_EQ(parse(IdKey(table, 1)), 1u);
    EXPECT_EQ(parse(IdKey(table, UINT64_MAX)), UINT64_MAX);
    RefusesDamaged<uint64_t>(IdKey(table, 42), parse);
  }
  EXPECT_EQ(OfferKey(5), IdKey(kOffer, 5));
  EXPECT_EQ(OrderKey(5), IdKey(kOrder, 5));
  EXPECT_EQ(BidKey(5), IdKey(kBid, 5));
  EXPECT_EQ(LeaseKey(5), IdKey(kLease, 5));
  // A table that is not keyed by an id is refused even when the length fits.
  EXPECT_FALSE(ParseIdKey(kCounters, KeyBuilder(kCounters).U64(1).Get()).has_value());
}

TEST(MarketKeys, DeadlineIndexesRoundTrip) {
  for (uint8_t table : {kExpiryIndex, kStartIndex, kWindowIndex}) {
    auto parse = [table](base::ByteSpan key) { return ParseDeadlineIndexKey(table, key); };
    auto key = DeadlineIndexKey(table, 1'700'000'000'000, 9);
    EXPECT_EQ(parse(key), (DeadlineEntry{1'700'000'000'000, 9}));
    EXPECT_EQ(ParseIndexDeadline(key), 1'700'000'000'000u);
    RefusesDamaged<DeadlineEntry>(key, parse);
  }
  EXPECT_FALSE(IsDeadlineIndex(kHeartbeatIndex));
  EXPECT_FALSE(ParseDeadlineIndexKey(kOrderBids, OrderBidKey(1, 2)).has_value());
  EXPECT_FALSE(ParseIndexDeadline(OrderBidKey(1, 2)).has_value());
}

TEST(MarketKeys, HeartbeatIndexRoundTrips) {
  const auto owner = Filled(0x33);
  auto key = HeartbeatIndexKey(123, owner);
  EXPECT_EQ(ParseHeartbeatIndexKey(key), (HeartbeatEntry{123, owner}));
  EXPECT_EQ(ParseIndexDeadline(key), 123u);
  RefusesDamaged<HeartbeatEntry>(key, ParseHeartbeatIndexKey);
}

TEST(MarketKeys, PartyIndexesRoundTrip) {
  const auto party = Filled(0x44);
  for (uint8_t table : {kProviderOpenLeases, kProviderOpenOffers, kTenantOpenOrders, kTenantLeases,
                        kProviderLeases}) {
    auto parse = [table](base::ByteSpan key) { return ParsePartyIndexKey(table, key); };
    auto key = PartyIndexKey(table, party, 77);
    EXPECT_EQ(parse(key), (PartyEntry{party, 77}));
    RefusesDamaged<PartyEntry>(key, parse);
  }
  EXPECT_FALSE(IsPartyIndex(kProvider));
}

TEST(MarketKeys, OrderBidsRoundTrip) {
  const auto provider = Filled(0x55);
  EXPECT_EQ(ParseOrderBidKey(OrderBidKey(3, 4)), (OrderBid{3, 4}));
  RefusesDamaged<OrderBid>(OrderBidKey(3, 4), ParseOrderBidKey);
  EXPECT_EQ(ParseOrderProviderBidKey(OrderProviderBidKey(3, provider)),
            (OrderProviderBid{3, provider}));
  RefusesDamaged<OrderProviderBid>(OrderProviderBidKey(3, provider), ParseOrderProviderBidKey);
}

TEST(MarketKeys, AttestationRoundTrips) {
  const auto owner = Filled(0x66), auditor = Filled(0x77);
  auto key = AttestationKey(owner, 2, "tier", auditor);
  EXPECT_EQ(ParseAttestationKey(key), (AttestationRef{owner, 2, "tier", auditor}));
  EXPECT_EQ(ParseAttestationKey(AttestationKey(owner, 0, "", auditor)),
            (AttestationRef{owner, 0, "", auditor}));
  RefusesDamaged<AttestationRef>(key, ParseAttestationKey);
  // An attribute length that overruns the key, or leaves the auditor short.
  base::Bytes overrun = key;
  overrun[2 + 20 + 4] = 200;
  EXPECT_FALSE(ParseAttestationKey(overrun).has_value());
  base::Bytes shifted = key;
  shifted[2 + 20 + 4] = 5;
  EXPECT_FALSE(ParseAttestationKey(shifted).has_value());
}

}  // namespace
}  // namespace gpunet::market::keys
