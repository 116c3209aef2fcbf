// What readers compute (market/query.h): a lease's accrual at a time, checked on
// records and against what the ledger actually pays when it withdraws, closes and
// expires leases (market_harness.h), and the free capacity of machines and offers.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/limits.h"
#include "crypto/address.h"
#include "market/keys.h"
#include "market/math.h"
#include "market/query.h"
#include "unit/market/market_harness.h"

namespace gpunet::market::testing {
namespace {

constexpr uint8_t kProviderOwner = 1;
constexpr uint8_t kProviderOperator = 2;
constexpr uint8_t kLeaseTenant = 3;
constexpr uint64_t kMsPerHour = 3'600'000;
// Odd amounts, so that every accrual below rounds down.
constexpr uint64_t kOddPrice = 1'234'567;     // ugpn per GPU-hour
constexpr uint64_t kOddRate = 2 * kOddPrice;  // a 2-GPU lease

Lease StartedLease() {
  Lease l;
  l.state = LeaseState::kStarted;
  l.rate_ugpn_per_hour = kOddRate;
  l.started_ms = 10'000;
  l.deposited_ugpn = 3 * kOddRate + 17;
  l.escrow_ugpn = l.deposited_ugpn;
  l.paid_until_ms = l.started_ms + PaidMs(l.deposited_ugpn, l.rate_ugpn_per_hour);
  return l;
}

TEST(MarketQuery, AccrualRunsFromTheStartToPaidUntil) {
  Lease l = StartedLease();
  // Before the start (a block time cannot be, but a reader may ask): nothing.
  EXPECT_EQ(AccrualAt(l, 0), (LeaseAccrual{0, l.started_ms, 0, 0, l.escrow_ugpn}));
  const uint64_t mid = l.started_ms + kMsPerHour + 1234;
  const uint64_t accrued = Accrued(kOddRate, kMsPerHour + 1234);
  EXPECT_EQ(accrued, kOddRate + kOddRate * 1234 / kMsPerHour);
  EXPECT_EQ(AccrualAt(l, mid), (LeaseAccrual{mid, mid, accrued, accrued, l.escrow_ugpn - accrued}));
  // Past paid_until: capped there, never more than was deposited.
  const LeaseAccrual end = AccrualAt(l, UINT64_MAX);
  EXPECT_EQ(end.settle_ms, l.paid_until_ms);
  EXPECT_EQ(end.accrued_ugpn, Accrued(kOddRate, l.paid_until_ms - l.started_ms));
  EXPECT_LE(end.accrued_ugpn, l.deposited_ugpn);
  EXPECT_EQ(end.escrow_left_ugpn, l.deposited_ugpn - end.accrued_ugpn);
  EXPECT_EQ(AccrualEnd(l, UINT64_MAX), l.paid_until_ms);
  EXPECT_EQ(AccrualEnd(l, 0), l.started_ms);
}

TEST(MarketQuery, WhatWasPaidIsKeptAndOnlyTheRestIsDue) {
  Lease l = StartedLease();
  const uint64_t at = l.started_ms + kMsPerHour;
  // Withdrawn up to a later time than asked (a heartbeat fault settles at the last
  // proof of life): accrued stays what was paid, nothing more is due.
  l.paid_ugpn = 2 * kOddRate;
  l.escrow_ugpn -= l.paid_ugpn;
  EXPECT_EQ(AccrualAt(l, at), (LeaseAccrual{at, at, l.paid_ugpn, 0, l.escrow_ugpn}));
  EXPECT_EQ(AccruedUnpaid(l, at), 0u);
  EXPECT_EQ(AccruedUnpaid(l, at + 2 * kMsPerHour), Accrued(kOddRate, 3 * kMsPerHour) - l.paid_ugpn);
}

TEST(MarketQuery, LeasesNotRunningAccrueNothing) {
  Lease l = StartedLease();
  l.state = LeaseState::kReserved;
  l.started_ms = 0;
  EXPECT_EQ(AccrualAt(l, 99 * kMsPerHour), (LeaseAccrual{99 * kMsPerHour, 0, 0, 0, l.escrow_ugpn}));
  l = StartedLease();
  l.state = LeaseState::kClosed;
  l.paid_ugpn = 5;
  l.refunded_ugpn = l.deposited_ugpn - 5;
  l.escrow_ugpn = 0;
  EXPECT_EQ(AccrualAt(l, 99 * kMsPerHour), (LeaseAccrual{99 * kMsPerHour, 0, 5, 0, 0}));
}

TEST(MarketQuery, AmountsSaturateOnABrokenRecord) {
  Lease l = StartedLease();
  l.escrow_ugpn = 1;  // less than is due: breaks deposited == paid + refunded + escrow
  EXPECT_EQ(AccrualAt(l, UINT64_MAX).escrow_left_ugpn, 0u);
  Machine m;
  m.gpu_count = 4;
  m.free_gpus = 6;  // more free than it has
  EXPECT_EQ(LeasedGpus(m), 0u);
}

TEST(MarketQuery, MachineCapacity) {
  Machine m;
  m.gpu_model = "H100";
  m.site_id = 2;
  m.gpu_count = 8;
  m.free_gpus = 3;
  EXPECT_EQ(LeasedGpus(m), 5u);
  EXPECT_TRUE(HasFreeGpus(m, 3));
  EXPECT_FALSE(HasFreeGpus(m, 4));
  Offer o;
  o.gpu_model = "H100";
  EXPECT_TRUE(InOfferClass(o, m));  // site 0: any site
  o.site_id = 2;
  EXPECT_TRUE(InOfferClass(o, m));
  o.site_id = 1;
  EXPECT_FALSE(InOfferClass(o, m));
  o.site_id = 0;
  o.gpu_model = "A100";
  EXPECT_FALSE(InOfferClass(o, m));
}

// ---------------------------------------------------------------- against the ledger

codec::MsgMachineUpsert MachineMsg(Harness& h, uint32_t id, uint32_t site, std::string model,
                                   uint32_t gpus, codec::GpuLink link, std::string driver) {
  codec::MsgMachineUpsert m;
  m.provider = h.Addr(kProviderOwner);
  m.machine_id = id;
  m.site_id = site;
  m.gpu_model = std::move(model);
  m.gpu_count = gpus;
  m.vram_gib = 40 + id;
  m.link = link;
  m.driver_version = std::move(driver);
  m.cuda_version = 12000 + id;
  m.compute_capability = 80 + id;
  return m;
}

/// A provider with site 1 (infiniband: H100 machines 1 (8, nvlink) and 2 (4,
/// pcie)), site 2 (ethernet: A100 machine 3) and an offer of H100s on any site.
/// Returns the offer id.
uint64_t SetUpMarket(Harness& h) {
  codec::MsgProviderRegister reg;
  reg.operator_address = h.Addr(kProviderOperator);
  reg.tenant_api_uri = "https://provider.example:8443";
  reg.region = "eu";
  reg.bond_ugpn = 200 * kGpn;
  reg.payouts = {{h.Addr(kProviderOwner), 10'000}};
  EXPECT_EQ(h.Tx(kProviderOwner, reg), 0);
  const codec::Address owner = h.Addr(kProviderOwner);
  EXPECT_EQ(
      h.Tx(kProviderOperator, {codec::MsgSiteUpsert{owner, 1, codec::Fabric::kInfiniband, 400},
                               codec::MsgSiteUpsert{owner, 2, codec::Fabric::kEthernet, 100},
                               MachineMsg(h, 1, 1, "H100", 8, codec::GpuLink::kNvlink, "550.54"),
                               MachineMsg(h, 2, 1, "H100", 4, codec::GpuLink::kPcie, "535.10"),
                               MachineMsg(h, 3, 2, "A100", 8, codec::GpuLink::kPcie, "470.1")}),
      0);
  EXPECT_EQ(h.Tx(kProviderOperator, codec::MsgOfferCreate{owner, "H100", 0, kOddPrice, {}}), 0);
  return std::stoull(h.EventAttr("market.offer_created", "offer_id"));
}

/// A started 2-GPU lease on `offer` holding `deposit`.
uint64_t StartLease(Harness& h, uint64_t offer, uint64_t deposit) {
  EXPECT_EQ(h.Tx(kLeaseTenant, codec::MsgLeaseCreate{offer, 1, 2, deposit, {}}), 0);
  const uint64_t id = std::stoull(h.EventAttr("market.lease_created", "lease_id"));
  h.Advance(1000);
  EXPECT_EQ(h.Tx(kProviderOperator, codec::MsgLeaseStarted{id}), 0);
  return id;
}

/// `ms` later, with a heartbeat so the lease keeps running.
void Later(Harness& h, uint64_t ms) {
  h.Advance(ms);
  EXPECT_EQ(h.Tx(kProviderOperator, codec::MsgHeartbeat{h.Addr(kProviderOwner)}), 0);
}

TEST(MarketQuery, AccrualIsWhatTheLedgerPaysOnWithdrawalAndClose) {
  Harness h;
  const uint64_t id = StartLease(h, SetUpMarket(h), 3 * kOddRate + 17);
  for (uint64_t step : {123'457ull, 200'001ull, 1ull, 299'999ull, 77'777ull}) {
    Later(h, step);
    const Lease before = h.GetLease(id);
    const LeaseAccrual due = AccrualAt(before, h.Now());
    ASSERT_GT(due.unpaid_ugpn, 0u) << step;
    // The rules pay through query.h too: pin it to the formula as well.
    EXPECT_EQ(due.accrued_ugpn, Accrued(kOddRate, h.Now() - before.started_ms));
    ASSERT_EQ(h.Tx(kProviderOperator, codec::MsgLeaseWithdraw{id}), 0) << step;
    EXPECT_EQ(h.EventAttr("market.lease_withdrawn", "amount_ugpn"),
              std::to_string(due.unpaid_ugpn));
    const Lease after = h.GetLease(id);
    EXPECT_EQ(after.paid_ugpn, due.accrued_ugpn);
    EXPECT_EQ(after.escrow_ugpn, due.escrow_left_ugpn);
    EXPECT_EQ(AccruedUnpaid(after, h.Now()), 0u);
  }
  // Past the start deadline (no reserved-close charge), the tenant closes: the
  // provider gets what is due, the tenant what is left.
  for (uint64_t waited = 0; waited < kMarket.lease_start_timeout_ms; waited += 200'000)
    Later(h, 200'000);  // heartbeats well inside heartbeat_timeout_ms
  const Lease before = h.GetLease(id);
  ASSERT_EQ(before.state, LeaseState::kStarted);
  ASSERT_GT(h.Now(), before.start_deadline_ms);
  const LeaseAccrual due = AccrualAt(before, h.Now());
  ASSERT_GT(due.unpaid_ugpn, 0u);
  const uint64_t tenant_before = h.Balance(kLeaseTenant);
  ASSERT_EQ(h.Tx(kLeaseTenant, codec::MsgLeaseClose{id, codec::CloseReason::kNormal}), 0);
  const Lease closed = h.GetLease(id);
  EXPECT_EQ(closed.paid_ugpn, due.accrued_ugpn);
  EXPECT_EQ(closed.refunded_ugpn, due.escrow_left_ugpn);
  EXPECT_EQ(h.Balance(kLeaseTenant), tenant_before - kFee + due.escrow_left_ugpn);
  EXPECT_EQ(h.EventAttr("market.lease_closed", "settled_at_ms"), std::to_string(due.settle_ms));
  // Closed: nothing more is due, whenever asked.
  EXPECT_EQ(AccrualAt(closed, h.Now() + kMsPerHour).unpaid_ugpn, 0u);
}

TEST(MarketQuery, AccrualIsWhatTheLedgerPaysAtExpiry) {
  Harness h;
  const uint64_t id = StartLease(h, SetUpMarket(h), kOddRate + 1);  // about an hour
  const Lease started = h.GetLease(id);
  const LeaseAccrual at_end = AccrualAt(started, UINT64_MAX);
  EXPECT_EQ(at_end.settle_ms, started.paid_until_ms);
  EXPECT_EQ(at_end.accrued_ugpn, Accrued(kOddRate, started.paid_until_ms - started.started_ms));
  for (int i = 0; i < 100 && h.GetLease(id).state == LeaseState::kStarted; ++i) Later(h, 240'000);
  const Lease expired = h.GetLease(id);
  EXPECT_EQ(expired.end, LeaseEnd::kExpired);
  EXPECT_EQ(expired.paid_ugpn, at_end.accrued_ugpn);
  EXPECT_EQ(expired.refunded_ugpn, at_end.escrow_left_ugpn);
  EXPECT_EQ(expired.refunded_ugpn, started.deposited_ugpn - at_end.accrued_ugpn);
}

TEST(MarketQuery, OfferClassSumsTheMachinesTheOfferSells) {
  Harness h;
  const uint64_t offer_id = SetUpMarket(h);
  state::MarketStateStore view(h.Db());
  const Offer offer = h.Get<Offer>(keys::OfferKey(offer_id));
  auto c = OfferClassOf(view, offer);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->machines, 2u);
  EXPECT_EQ(c->sites, 1u);
  EXPECT_EQ(c->gpus_per_machine_max, 8u);
  EXPECT_EQ(c->free_gpus, 12u);
  EXPECT_EQ(c->vram_gib_min, 41u);
  EXPECT_EQ(c->cuda_version_min, 12001u);
  EXPECT_EQ(c->compute_capability_min, 81u);
  EXPECT_EQ(c->driver_version_min, "535.10");
  EXPECT_EQ(c->links, (std::set{codec::GpuLink::kNvlink, codec::GpuLink::kPcie}));
  EXPECT_EQ(c->fabrics, std::set{codec::Fabric::kInfiniband});
  EXPECT_EQ(c->records_read, 5u);  // 2 sites, 3 machines
  // A lease takes its GPUs out of the class's free capacity, from the first fit.
  StartLease(h, offer_id, 3 * kOddRate);
  c = OfferClassOf(view, offer);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->free_gpus, 10u);
  EXPECT_EQ(LeasedGpus(h.GetMachine(kProviderOwner, 1)), 2u);
  // An offer on the A100 site sells nothing of the H100 model.
  Offer on_site_two = offer;
  on_site_two.site_id = 2;
  c = OfferClassOf(view, on_site_two);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->machines, 0u);
  EXPECT_TRUE(c->links.empty());
  EXPECT_EQ(c->records_read, 5u);
}

// A StoreView over a map: just the records a test puts there.
class MapView : public StoreView {
 public:
  void Put(base::Bytes key, base::Bytes value) { m_records[std::move(key)] = std::move(value); }
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    auto it = m_records.find(base::Bytes(key.begin(), key.end()));
    if (it == m_records.end()) return std::optional<base::Bytes>();
    return std::optional<base::Bytes>(it->second);
  }
  base::Status Scan(base::ByteSpan, base::ByteSpan, const Visitor&) const override {
    ADD_FAILURE() << "RankBids reads records by key only";
    return base::Ok();
  }
  base::Result<codec::Account> GetAccount(const codec::Address&) const override {
    return codec::Account{};
  }

 private:
  std::map<base::Bytes, base::Bytes> m_records;
};

TEST(MarketQuery, BidsRankAsTheAuctionTriesThem) {
  // Provider 1 has faulted on one lease in two; provider 2 never has.
  Provider faulty;
  faulty.owner = TestAddress(1);
  faulty.leases_completed = 1;
  faulty.faults = 1;
  Provider reliable;
  reliable.owner = TestAddress(2);
  reliable.leases_completed = 5;
  MapView view;
  view.Put(keys::ProviderKey(faulty.owner), Encode(faulty));
  view.Put(keys::ProviderKey(reliable.owner), Encode(reliable));
  ASSERT_GT(FaultRatePpm(1, 1), FaultRatePpm(5, 0));
  auto bid = [](uint64_t id, const Provider& p, uint64_t price) {
    Bid b;
    b.bid_id = id;
    b.order_id = 7;
    b.provider = p.owner;
    b.price_ugpn_per_gpu_hour = price;
    return b;
  };
  // Equal prices: the lower fault rate first although its bid came later; the
  // cheapest first whatever its provider; equal price and rate: the earlier bid.
  Provider reliable_too = reliable;
  reliable_too.owner = TestAddress(3);
  view.Put(keys::ProviderKey(reliable_too.owner), Encode(reliable_too));
  auto ranked = RankBids(view, {bid(1, faulty, 100), bid(2, reliable, 100), bid(3, faulty, 90),
                                bid(5, reliable_too, 100), bid(4, reliable, 100)});
  ASSERT_TRUE(ranked) << ranked.error().ToString();
  std::vector<uint64_t> ids;
  for (const auto& r : *ranked) ids.push_back(r.bid.bid_id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{3, 2, 4, 5, 1}));
  EXPECT_EQ((*ranked)[0].fault_rate_ppm, FaultRatePpm(1, 1));
  EXPECT_EQ((*ranked)[1].fault_rate_ppm, FaultRatePpm(5, 0));
  EXPECT_TRUE(AuctionRanksBefore((*ranked)[1], (*ranked)[4]));
  EXPECT_FALSE(AuctionRanksBefore((*ranked)[4], (*ranked)[1]));
  // A bid whose provider has no record is a broken state, said so.
  auto broken = RankBids(view, {bid(9, Provider{}, 100)});
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(broken.error().message.find("bid 9"), std::string::npos);
}

// The bid rules (MachineMismatch, FabricMismatch, RegionMismatch,
// ProviderUnqualified): the ledger's bid and award and the daemon's bidder share
// them, so each rule is checked here once, at its edge.
codec::Requirements OneH100() {
  codec::Requirements q;
  q.gpu_models = {"A100", "H100"};
  q.gpus_per_machine = 2;
  q.machines = 1;
  q.min_vram_gib = 80;
  q.min_cuda_version = 12040;
  return q;
}

Machine TwoH100s() {
  Machine m;
  m.gpu_model = "H100";
  m.gpu_count = 2;
  m.free_gpus = 0;  // free GPUs are the award's business, not these rules'
  m.vram_gib = 80;
  m.cuda_version = 12040;
  return m;
}

TEST(MarketQuery, AMachineMismatchNamesTheFirstRuleItBreaks) {
  const codec::Requirements q = OneH100();
  EXPECT_EQ(MachineMismatch(q, 7, TwoH100s()), std::nullopt);
  auto broken = [&](auto change) {
    Machine m = TwoH100s();
    change(m);
    return MachineMismatch(q, 7, m).value_or("");
  };
  EXPECT_EQ(broken([](Machine& m) { m.gpu_count = 1; }),
            "machine 7: 1 GPUs, the order wants 2 per machine");
  EXPECT_EQ(broken([](Machine& m) { m.gpu_model = "L4"; }), "machine 7: model L4 is not accepted");
  EXPECT_EQ(broken([](Machine& m) { m.vram_gib = 79; }), "machine 7: VRAM below the minimum");
  EXPECT_EQ(broken([](Machine& m) { m.cuda_version = 12039; }),
            "machine 7: CUDA version below the minimum");
  EXPECT_EQ(broken([](Machine& m) { m.gpu_count = 1, m.gpu_model = "L4"; }),
            "machine 7: 1 GPUs, the order wants 2 per machine");
  codec::Requirements any = q;
  any.gpu_models.clear();
  Machine l4 = TwoH100s();
  l4.gpu_model = "L4";
  EXPECT_EQ(MachineMismatch(any, 7, l4), std::nullopt) << "no models listed: any model";
}

TEST(MarketQuery, FabricAndRegionMatchOnlyWhatTheOrderNames) {
  codec::Requirements q = OneH100();
  EXPECT_EQ(FabricMismatch(q, 3, codec::Fabric::kEthernet), std::nullopt);  // kAny
  q.fabric = codec::Fabric::kInfiniband;
  EXPECT_EQ(FabricMismatch(q, 3, codec::Fabric::kInfiniband), std::nullopt);
  EXPECT_EQ(FabricMismatch(q, 3, codec::Fabric::kRoce), "machine 3: site fabric does not match");
  Provider p;
  p.region = "eu-west";
  EXPECT_EQ(RegionMismatch(q, p), std::nullopt);  // empty: any region
  q.region = "eu-west";
  EXPECT_EQ(RegionMismatch(q, p), std::nullopt);
  q.region = "us-east";
  EXPECT_EQ(RegionMismatch(q, p), "provider region 'eu-west', the order wants 'us-east'");
}

TEST(MarketQuery, AProvidersPolicyAdmitsTenantsNotDeniedAndOnItsAllowListIfAny) {
  Provider p;
  p.owner = TestAddress("bidder");
  const codec::Address tenant = TestAddress("tenant");
  const codec::Address other = TestAddress("other");
  EXPECT_EQ(TenantNotAdmitted(p, tenant), std::nullopt);
  p.policy.deny = {tenant};
  EXPECT_EQ(TenantNotAdmitted(p, tenant), "provider " + crypto::AddressToString(p.owner) +
                                              "'s policy does not admit " +
                                              crypto::AddressToString(tenant));
  EXPECT_EQ(TenantNotAdmitted(p, other), std::nullopt);
  p.policy.deny.clear();
  p.policy.allow = {other};
  EXPECT_NE(TenantNotAdmitted(p, tenant), std::nullopt);
  EXPECT_EQ(TenantNotAdmitted(p, other), std::nullopt);
}

TEST(MarketQuery, AProviderQualifiesByBondEarningsFaultRateAndNotBeingExcluded) {
  Provider p;
  p.owner = TestAddress("bidder");
  p.bond_ugpn = 1'000;
  p.earned_ugpn = 500;
  p.leases_completed = 99;
  p.faults = 1;  // 10'000 ppm
  codec::ProviderRequirements q;
  q.min_bond_ugpn = 1'000;
  q.min_earned_ugpn = 500;
  q.max_fault_rate_ppm = 10'000;
  EXPECT_EQ(ProviderUnqualified(p, q), std::nullopt);
  const std::string at = "provider " + crypto::AddressToString(p.owner);
  auto refused = [&](auto change) {
    codec::ProviderRequirements r = q;
    change(r);
    return ProviderUnqualified(p, r).value_or("");
  };
  EXPECT_EQ(refused([](auto& r) { r.min_bond_ugpn = 1'001; }),
            at + " has a bond of 1000 ugpn, the order asks for 1001");
  EXPECT_EQ(refused([](auto& r) { r.min_earned_ugpn = 501; }),
            at + " earned 500 ugpn from other tenants, the order asks for 501");
  EXPECT_EQ(refused([](auto& r) { r.max_fault_rate_ppm = 9'999; }),
            at + " has a fault rate of 10000 ppm, the order allows 9999");
  std::vector<codec::Address> excluded{TestAddress("a"), TestAddress("z"), p.owner};
  std::sort(excluded.begin(), excluded.end());
  EXPECT_EQ(refused([&](auto& r) { r.excluded = excluded; }), at + " is excluded by the order");
  EXPECT_EQ(refused([](auto& r) { r.excluded = {TestAddress("someone else")}; }), "");
}

}  // namespace
}  // namespace gpunet::market::testing
