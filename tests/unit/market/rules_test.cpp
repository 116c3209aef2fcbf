// The market's rules through the real tx pipeline (market_harness.h): every rule and
// failure code of docs/market.md, with the invariants (conservation by scanning,
// free + leased = inventory, indexes and counters) checked after every tx and block.
#include <gtest/gtest.h>

#include "base/limits.h"
#include "market/math.h"
#include "unit/market/market_harness.h"

namespace gpunet::market::testing {
namespace {

using codec::TxCode;
namespace limits = base::limits;

constexpr uint8_t kOwner = 1;
constexpr uint8_t kOperator = 2;
constexpr uint8_t kTenant = 3;
constexpr uint8_t kStranger = 4;
constexpr uint8_t kInvestor = 5;
constexpr uint8_t kOwner2 = 6;
constexpr uint8_t kAuditor = 7;

constexpr uint64_t kBond = 1000 * kGpn;
constexpr uint64_t kPrice = 2 * kGpn;  // per GPU-hour
constexpr uint64_t kHour = 3'600'000;

codec::MsgProviderRegister Register(Harness& h, uint8_t owner, uint64_t bond = kBond) {
  codec::MsgProviderRegister m;
  m.operator_address = h.Addr(kOperator);
  m.tenant_api_uri = "https://provider.example:8443";
  m.region = "eu";
  m.bond_ugpn = bond;
  // Owner 75%, investor 25%, in address order.
  codec::PayoutSplit a{h.Addr(owner), 7500}, b{h.Addr(kInvestor), 2500};
  m.payouts = a.payee < b.payee ? std::vector{a, b} : std::vector{b, a};
  return m;
}

codec::MsgMachineUpsert Machine(Harness& h, uint8_t owner, uint32_t id, uint32_t site,
                                uint32_t gpus = 8, std::string model = "H100") {
  return codec::MsgMachineUpsert{
      h.Addr(owner), id,    site, model, gpus, 80,  codec::GpuLink::kNvlink,
      "550.54",      12040, 90,   64,    512,  4000};
}

/// A provider (owner kOwner, operator kOperator) with site 1 (infiniband: machines
/// 1, 2), site 2 (ethernet: machine 3), all 8 x H100, and offer 1 at kPrice.
void SetUpProvider(Harness& h, uint8_t owner = kOwner) {
  ASSERT_EQ(h.Tx(owner, Register(h, owner)), 0);
  ASSERT_EQ(
      h.Tx(kOperator, {codec::MsgSiteUpsert{h.Addr(owner), 1, codec::Fabric::kInfiniband, 400},
                       codec::MsgSiteUpsert{h.Addr(owner), 2, codec::Fabric::kEthernet, 100},
                       Machine(h, owner, 1, 1), Machine(h, owner, 2, 1), Machine(h, owner, 3, 2)}),
      0);
}

uint64_t CreateOffer(Harness& h, uint8_t owner = kOwner, uint64_t price = kPrice,
                     std::vector<codec::Address> tenants = {}) {
  EXPECT_EQ(h.Tx(kOperator, codec::MsgOfferCreate{h.Addr(owner), "H100", 0, price, tenants}), 0);
  return std::stoull(h.EventAttr("market.offer_created", "offer_id"));
}

uint64_t Lease(Harness& h, uint64_t offer, uint32_t machines, uint32_t gpus, uint64_t deposit,
               uint8_t tenant = kTenant) {
  uint16_t code = h.Tx(tenant, codec::MsgLeaseCreate{offer, machines, gpus, deposit, {}});
  if (code != 0) return 0;
  return std::stoull(h.EventAttr("market.lease_created", "lease_id"));
}

// ---------------------------------------------------------------- money math

TEST(MarketMath, AccrualFloorsAndPaidUntilNeverOverpays) {
  EXPECT_EQ(Accrued(3, kHour), 3u);
  EXPECT_EQ(Accrued(3, kHour - 1), 2u);
  EXPECT_EQ(Accrued(1, 1), 0u);
  for (uint64_t rate : {1ull, 3ull, 7ull, 16'000'000ull, 999'999'937ull})
    for (uint64_t deposit : {1ull, 10ull, 12'345'678ull, 1'000'000'000'000ull}) {
      uint64_t ms = PaidMs(deposit, rate);
      EXPECT_LE(Accrued(rate, ms), deposit);
      EXPECT_GT(Accrued(rate, ms + kHour), Accrued(rate, ms) - 0) << rate << " " << deposit;
    }
  // Withdrawals in pieces sum to the accrual of the whole (remainders carried).
  uint64_t rate = 7, paid = 0;
  for (uint64_t t = 0; t <= 10 * kHour; t += 123'457) paid += Accrued(rate, t) - paid;
  EXPECT_EQ(paid, Accrued(rate, 10 * kHour / 123'457 * 123'457));
}

TEST(MarketMath, SplitsFloorPerPayeeRemainderToOwner) {
  codec::Address owner, a, b;
  owner[0] = 9;
  a[0] = 1;
  b[0] = 2;
  auto shares = SplitPayout(101, {{a, 3333}, {b, 6667}}, owner);
  ASSERT_EQ(shares.size(), 3u);
  EXPECT_EQ(shares[0].amount_ugpn, 33u);  // floor(101 * 0.3333)
  EXPECT_EQ(shares[1].amount_ugpn, 67u);  // floor(101 * 0.6667)
  EXPECT_EQ(shares[2].payee, owner);
  EXPECT_EQ(shares[2].amount_ugpn, 1u);
  // Owner among the payees: the remainder is added to its share.
  shares = SplitPayout(101, {{a, 3333}, {owner, 6667}}, owner);
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[1].amount_ugpn, 68u);
  EXPECT_FALSE(ValidSplits({{a, 5000}, {b, 4999}}));
  EXPECT_FALSE(ValidSplits({{a, 0}, {b, 10000}}));
  EXPECT_FALSE(ValidSplits({}));
  EXPECT_TRUE(ValidSplits({{a, 1}, {b, 9999}}));
  EXPECT_EQ(FaultRatePpm(0, 0), 0u);
  EXPECT_EQ(FaultRatePpm(3, 1), 250'000u);
}

// ---------------------------------------------------------------- providers

TEST(Providers, RegisterMovesTheBondAndRefusesBadInput) {
  Harness h;
  uint64_t before = h.Balance(kOwner);
  auto bad = Register(h, kOwner);
  bad.payouts[0].bp -= 1;  // 9999 bp in all
  // Malformed (the splits are judged without state): refused by the preflight before
  // inclusion, so no fee and no nonce (docs/market.md "Preflight").
  EXPECT_EQ(h.Tx(kOwner, bad), Code(TxCode::kMarketBadSplits));
  EXPECT_TRUE(h.last_refused);
  EXPECT_EQ(h.Balance(kOwner), before);
  // A rule that needs the sender's balance: an included failure, fee charged.
  EXPECT_EQ(h.Tx(kOwner, Register(h, kOwner, 1'000'000 * kGpn)),
            Code(TxCode::kMarketInsufficientFunds));
  EXPECT_FALSE(h.last_refused);
  EXPECT_EQ(h.Balance(kOwner), before - kFee);
  // The bond is the message's own: under the minimum, preflight refuses it (no fee).
  EXPECT_EQ(h.Tx(kOwner, Register(h, kOwner, kMarket.provider_bond_min_ugpn - 1)),
            Code(TxCode::kMarketBondTooLow));
  EXPECT_TRUE(h.last_refused);
  EXPECT_EQ(h.Tx(kOwner, Register(h, kOwner)), 0);
  EXPECT_EQ(h.Balance(kOwner), before - 2 * kFee - kBond);
  EXPECT_EQ(h.GetProvider(kOwner).bond_ugpn, kBond);
  EXPECT_EQ(h.Tx(kOwner, Register(h, kOwner)), Code(TxCode::kMarketProviderExists));
}

TEST(Providers, OwnerAndOperatorRoles) {
  Harness h;
  SetUpProvider(h);
  codec::MsgProviderUpdate update{
      h.Addr(kOperator), "https://x", {}, "us", h.GetProvider(kOwner).payouts, {}};
  EXPECT_EQ(h.Tx(kOperator, update), Code(TxCode::kMarketUnknownProvider));  // its own: none
  EXPECT_EQ(h.Tx(kStranger, codec::MsgSiteUpsert{h.Addr(kOwner), 3, codec::Fabric::kRoce, 1}),
            Code(TxCode::kMarketNotOperator));
  EXPECT_EQ(h.Tx(kOwner, update), 0);
  EXPECT_EQ(h.GetProvider(kOwner).region, "us");
  EXPECT_EQ(h.Tx(kOperator, codec::MsgProviderUnbond{1}), Code(TxCode::kMarketUnknownProvider));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  EXPECT_EQ(h.Tx(kStranger, codec::MsgHeartbeat{h.Addr(kOwner)}), Code(TxCode::kMarketNotOperator));
}

TEST(Providers, InventoryRulesAndLimitsOfFields) {
  Harness h;
  SetUpProvider(h);
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 9, 7)), Code(TxCode::kMarketUnknownSite));
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 0, 1)), Code(TxCode::kMarketInvalidField));
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 9, 1, 0)), Code(TxCode::kMarketInvalidField));
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 9, 1, limits::kGpusPerMachineMax + 1)),
            Code(TxCode::kMarketInvalidField));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgMachineRemove{h.Addr(kOwner), 42}),
            Code(TxCode::kMarketUnknownMachine));
  // Changing the fabric of a site with machines is refused.
  EXPECT_EQ(h.Tx(kOperator, codec::MsgSiteUpsert{h.Addr(kOwner), 1, codec::Fabric::kRoce, 1}),
            Code(TxCode::kMarketInventoryInUse));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgMachineRemove{h.Addr(kOwner), 3}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).machines, 2u);
}

TEST(Providers, CuttingInventoryOrDeregisteringUnderOpenLeasesIsRefused) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t lease = Lease(h, offer, 1, 6, 100 * kGpn);
  ASSERT_NE(lease, 0u);
  EXPECT_EQ(h.GetMachine(kOwner, 1).free_gpus, 2u);
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 1, 1, 5)), Code(TxCode::kMarketInventoryInUse));
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 1, 2, 8)), Code(TxCode::kMarketInventoryInUse));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgMachineRemove{h.Addr(kOwner), 1}),
            Code(TxCode::kMarketInventoryInUse));
  EXPECT_EQ(h.Tx(kOperator, Machine(h, kOwner, 1, 1, 12)), 0);  // growing is fine
  EXPECT_EQ(h.GetMachine(kOwner, 1).free_gpus, 6u);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderDeregister{}), Code(TxCode::kMarketOpenLeases));
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{kBond}), Code(TxCode::kMarketOpenLeases));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderDeregister{}), 0);
  EXPECT_FALSE(h.GetProvider(kOwner).active);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}),
            Code(TxCode::kMarketProviderInactive));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 1, 100 * kGpn, {}}),
            Code(TxCode::kMarketOfferClosed));
}

TEST(Providers, BondWithdrawalWaitsForTheUnbondingDelay) {
  Harness h;
  SetUpProvider(h);
  uint64_t before = h.Balance(kOwner);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{0}), Code(TxCode::kMarketZeroAmount));
  EXPECT_TRUE(h.last_refused);  // preflight: no fee
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{kBond + 1}),
            Code(TxCode::kMarketInsufficientBond));
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderClaimUnbonded{}), Code(TxCode::kMarketNothingToClaim));
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{300 * kGpn}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).bond_ugpn, kBond - 300 * kGpn);
  h.Advance(kMarket.unbonding_delay_ms - 1);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderClaimUnbonded{}), Code(TxCode::kMarketNothingToClaim));
  h.Advance(1);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderClaimUnbonded{}), 0);
  EXPECT_EQ(h.Balance(kOwner), before - 5 * kFee + 300 * kGpn);
  EXPECT_TRUE(h.GetProvider(kOwner).unbonding.empty());
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderBond{5}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).bond_ugpn, kBond - 300 * kGpn + 5);
}

// ---------------------------------------------------------------- offers and leases

TEST(Offers, LeaseCreateIsFirstFitInKeyOrder) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t a = Lease(h, offer, 1, 6, 100 * kGpn);
  uint64_t b = Lease(h, offer, 1, 4, 100 * kGpn);
  uint64_t c = Lease(h, offer, 1, 2, 100 * kGpn);
  EXPECT_EQ(h.GetLease(a).allocations, (std::vector<Allocation>{{1, 6}}));
  EXPECT_EQ(h.GetLease(b).allocations, (std::vector<Allocation>{{2, 4}}));
  EXPECT_EQ(h.GetLease(c).allocations, (std::vector<Allocation>{{1, 2}}));  // machine 1 first
  EXPECT_EQ(h.GetLease(a).rate_ugpn_per_hour, 6 * kPrice);
  // Over-commit: 8 GPUs on one machine are no longer free anywhere but machine 3.
  uint64_t d = Lease(h, offer, 1, 8, 100 * kGpn);
  EXPECT_EQ(h.GetLease(d).allocations, (std::vector<Allocation>{{3, 8}}));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 8, 100 * kGpn, {}}),
            Code(TxCode::kMarketNoCapacity));
}

TEST(Offers, ClusterTakesNMachinesOfOneSiteAtomically) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t one = Lease(h, offer, 1, 1, 100 * kGpn);  // machine 1: 7 free
  ASSERT_NE(one, 0u);
  uint64_t cluster = Lease(h, offer, 2, 7, 100 * kGpn);
  EXPECT_EQ(h.GetLease(cluster).allocations, (std::vector<Allocation>{{1, 7}, {2, 7}}));
  // Two machines with 8 free on one site: none (site 2 has one machine).
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 2, 8, 100 * kGpn, {}}),
            Code(TxCode::kMarketNoCapacity));
  EXPECT_EQ(h.GetMachine(kOwner, 3).free_gpus, 8u);  // nothing taken on failure
}

TEST(Offers, DepositPolicyAndPrivateOffers) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  // Under one hour of 2 GPUs at kPrice.
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 2, 2 * kPrice - 1, {}}),
            Code(TxCode::kMarketDepositTooLow));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 0, 2, 100 * kGpn, {}}),
            Code(TxCode::kMarketInvalidField));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{99, 1, 2, 100 * kGpn, {}}),
            Code(TxCode::kMarketUnknownOffer));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 1, 1'000'000 * kGpn, {}}),
            Code(TxCode::kMarketInsufficientFunds));
  uint64_t priv = CreateOffer(h, kOwner, kPrice, {h.Addr(kStranger)});
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{priv, 1, 1, 100 * kGpn, {}}),
            Code(TxCode::kMarketNotAllowed));
  EXPECT_NE(Lease(h, priv, 1, 1, 100 * kGpn, kStranger), 0u);
  // Deny list.
  codec::MsgProviderUpdate update{
      h.Addr(kOperator),      "https://x", {}, "eu", h.GetProvider(kOwner).payouts,
      {{}, {h.Addr(kTenant)}}};
  ASSERT_EQ(h.Tx(kOwner, update), 0);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 1, 100 * kGpn, {}}),
            Code(TxCode::kMarketNotAllowed));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgOfferClose{h.Addr(kOwner), offer}), 0);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgOfferClose{h.Addr(kOwner), offer}),
            Code(TxCode::kMarketOfferClosed));
}

TEST(Leases, LifeWithdrawBySplitsAndCloseSettleExactly) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h, kOwner, 1'000'003);  // odd price: remainders matter
  const uint64_t deposit = 10 * kGpn;
  uint64_t lease = Lease(h, offer, 1, 2, deposit);
  const uint64_t rate = 2 * 1'000'003;
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseWithdraw{lease}), Code(TxCode::kMarketLeaseState));
  EXPECT_EQ(h.Tx(kStranger, codec::MsgLeaseStarted{lease}), Code(TxCode::kMarketNotOperator));
  h.Advance(1000);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  const uint64_t started = h.Now();
  EXPECT_EQ(h.GetLease(lease).paid_until_ms, started + PaidMs(deposit, rate));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), Code(TxCode::kMarketLeaseState));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseWithdraw{lease}),
            Code(TxCode::kMarketNothingToWithdraw));

  h.Advance(1'234'567);
  uint64_t owner0 = h.Balance(kOwner), investor0 = h.Balance(kInvestor);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseWithdraw{lease}), 0);
  uint64_t due = Accrued(rate, 1'234'567);
  EXPECT_EQ(h.Balance(kInvestor) - investor0, due * 2500 / 10000);
  EXPECT_EQ(h.Balance(kOwner) - owner0, due - due * 2500 / 10000);
  h.Advance(999'999);
  uint64_t tenant0 = h.Balance(kTenant);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
  const auto l = h.GetLease(lease);
  EXPECT_EQ(l.state, LeaseState::kClosed);
  EXPECT_EQ(l.end, LeaseEnd::kTenantClosed);
  EXPECT_EQ(l.paid_ugpn, Accrued(rate, 1'234'567 + 999'999));             // carried remainder
  EXPECT_EQ(h.Balance(kTenant) - tenant0 + kFee, deposit - l.paid_ugpn);  // dust refunded
  EXPECT_EQ(h.GetMachine(kOwner, 1).free_gpus, 8u);
  EXPECT_EQ(h.GetProvider(kOwner).leases_completed, 1u);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}),
            Code(TxCode::kMarketLeaseState));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseDeposit{lease, 5}), Code(TxCode::kMarketLeaseState));
}

TEST(Leases, PaidUntilIndexClosesExactlyWhenFundsRunOutAndDepositExtends) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h, kOwner, 3);  // 3 ugpn per GPU-hour: sub-ugpn accrual
  uint64_t lease = Lease(h, offer, 1, 1, 10);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  uint64_t paid_until = h.GetLease(lease).paid_until_ms;
  EXPECT_EQ(paid_until - h.Now(), 10 * kHour / 3);  // floor: never accrues past 10
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseDeposit{lease, 0}), Code(TxCode::kMarketZeroAmount));
  ASSERT_EQ(h.Tx(kStranger, codec::MsgLeaseDeposit{lease, 2}), 0);  // anyone may top up
  paid_until = h.GetLease(lease).paid_until_ms;
  EXPECT_EQ(paid_until - h.GetLease(lease).started_ms, 12 * kHour / 3);
  auto next = NextDeadline(state::MarketStateStore(h.Db()));
  ASSERT_TRUE(next && next->has_value());
  // The provider's heartbeat deadline comes first, then the expiry.
  EXPECT_EQ(**next, h.GetProvider(kOwner).heartbeat_deadline_ms);
  EXPECT_LT(**next, paid_until);
  h.Advance(paid_until - h.Now() - 1);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
  uint64_t owner0 = h.Balance(kOwner), investor0 = h.Balance(kInvestor);
  h.Advance(1);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.state, LeaseState::kClosed);
  EXPECT_EQ(l.end, LeaseEnd::kExpired);
  EXPECT_EQ(l.paid_ugpn, 12u);
  EXPECT_EQ(h.Balance(kOwner) - owner0 + h.Balance(kInvestor) - investor0, 12u);
  auto none = NextDeadline(state::MarketStateStore(h.Db()));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST(Leases, NoManifestCloseOnlyAfterTheTimeoutAndWithoutFault) {
  Harness h;
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 1, 100 * kGpn);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNoManifest}),
            Code(TxCode::kMarketLeaseState));
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  h.Advance(kMarket.manifest_timeout_ms - 1);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNoManifest}),
            Code(TxCode::kMarketTooEarly));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNoManifest}),
            Code(TxCode::kMarketNotParty));
  EXPECT_EQ(h.Tx(kStranger, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}),
            Code(TxCode::kMarketNotParty));
  h.Advance(1);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNoManifest}), 0);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kNoManifest);
  EXPECT_EQ(l.paid_ugpn, Accrued(kPrice, kMarket.manifest_timeout_ms));  // start to close
  EXPECT_EQ(h.GetProvider(kOwner).faults, 0u);
  EXPECT_EQ(h.GetProvider(kOwner).leases_completed, 1u);
}

// ---------------------------------------------------------------- faults

/// Lets `ms` pass in one block (a deadline due then is first seen: its grace starts)
/// and then the grace blocks and one more, in which the fault fires.
void AdvancePastGrace(Harness& h, uint64_t ms) {
  h.Advance(ms);
  h.Advance(kMarket.heartbeat_grace_blocks + 1, kMarket.heartbeat_grace_blocks + 1);
}

TEST(Faults, MissedStartRefundsAndPaysThePenaltyFromTheBond) {
  Harness h;
  SetUpProvider(h);
  uint64_t tenant0 = h.Balance(kTenant);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 4, 100 * kGpn);
  h.Advance(kMarket.lease_start_timeout_ms - 1, kMarket.heartbeat_grace_blocks + 1);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kReserved);
  AdvancePastGrace(h, 1);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kMissedStart);
  EXPECT_EQ(l.paid_ugpn, 0u);
  EXPECT_EQ(l.penalty_ugpn, 4 * kPrice * kMarket.fault_penalty_hours);
  EXPECT_EQ(h.Balance(kTenant), tenant0 - kFee + l.penalty_ugpn);
  auto p = h.GetProvider(kOwner);
  EXPECT_EQ(p.bond_ugpn, kBond - l.penalty_ugpn);
  EXPECT_EQ(p.faults, 1u);
  EXPECT_EQ(h.GetMachine(kOwner, 1).free_gpus, 8u);
}

// Issue 14: what used to be "a bond running dry" (a 400 GPN penalty on a 100 GPN
// bond, mostly written off) can no longer happen: the lease is refused until the
// bond covers it, and then the whole penalty is paid.
TEST(Faults, ALeaseTheBondCannotCoverIsRefusedAndAFaultIsPaidInFull) {
  Harness h;
  SetUpProvider(h);
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{kBond - kMarket.provider_bond_min_ugpn}), 0);
  // Penalty (one hour at 8 x 50 GPN) is 400 GPN, the bond 100 GPN.
  uint64_t offer = CreateOffer(h, kOwner, 50 * kGpn);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 8, 400 * kGpn, {}}),
            Code(TxCode::kMarketBondUncovered));
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderBond{300 * kGpn}), 0);
  uint64_t tenant0 = h.Balance(kTenant);
  uint64_t lease = Lease(h, offer, 1, 8, 400 * kGpn);
  ASSERT_NE(lease, 0u);
  EXPECT_EQ(h.GetProvider(kOwner).promised_penalties_ugpn, 400 * kGpn);
  AdvancePastGrace(h, kMarket.lease_start_timeout_ms);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kMissedStart);
  EXPECT_EQ(l.penalty_ugpn, 400 * kGpn);
  EXPECT_EQ(h.Balance(kTenant), tenant0 - kFee + 400 * kGpn);  // deposit back + penalty
  auto p = h.GetProvider(kOwner);
  EXPECT_EQ(p.bond_ugpn, 0u);
  EXPECT_EQ(p.penalties_unpaid_ugpn, 0u);
  EXPECT_EQ(p.promised_penalties_ugpn, 0u);
  // Below the minimum now: out of business until it bonds again.
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 1, 100 * kGpn, {}}),
            Code(TxCode::kMarketBondTooLow));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgOfferCreate{h.Addr(kOwner), "H100", 0, 1, {}}),
            Code(TxCode::kMarketBondTooLow));
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderBond{kMarket.provider_bond_min_ugpn}), 0);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  EXPECT_NE(Lease(h, offer, 1, 1, 100 * kGpn), 0u);
}

TEST(Faults, MissingHeartbeatsFaultOnlyAfterTimeoutAndGraceBlocks) {
  Harness h;
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 2, 1000 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  const uint64_t started = h.Now();
  h.Advance(60'000);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  const uint64_t last = h.Now();
  // A long gap in ONE block (a halted chain): past the timeout, not the grace.
  h.Advance(10 * kMarket.heartbeat_timeout_ms);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
  h.Advance(kMarket.heartbeat_grace_blocks, kMarket.heartbeat_grace_blocks);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
  h.Advance(1);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kMissedHeartbeat);
  EXPECT_EQ(l.paid_ugpn, Accrued(2 * kPrice, last - started));  // stops at last proof of life
  EXPECT_EQ(l.penalty_ugpn, 2 * kPrice);
  EXPECT_EQ(h.GetProvider(kOwner).heartbeat_deadline_ms, 0u);
}

TEST(Faults, AWithdrawalAfterTheLastHeartbeatIsKeptAtAFault) {
  Harness h;
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 1, 1000 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  h.Advance(kMarket.heartbeat_timeout_ms);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseWithdraw{lease}), 0);  // paid past the start
  const uint64_t paid = h.GetLease(lease).paid_ugpn;
  EXPECT_EQ(paid, Accrued(kPrice, kMarket.heartbeat_timeout_ms));
  AdvancePastGrace(h, kMarket.heartbeat_timeout_ms);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kMissedHeartbeat);  // settled at the start (last proof of life)
  EXPECT_EQ(l.paid_ugpn, paid);                  // no claw-back
  EXPECT_EQ(l.refunded_ugpn, 1000 * kGpn - paid);
}

TEST(Faults, HeartbeatsKeepLeasesAlive) {
  Harness h;
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 1, 1000 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  for (int i = 0; i < 30; ++i) {
    h.Advance(kMarket.heartbeat_timeout_ms / 2, 5);
    ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  }
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
}

// An offer's hours (issue 17): the first deposit covers at least min_hours of the
// rate, and deposits in all never more than max_hours, even after the offer closed.
TEST(Offers, MinAndMaxHoursBoundALeasesDeposits) {
  Harness h;
  SetUpProvider(h);
  auto offer = [&](uint32_t min_hours, uint32_t max_hours) {
    codec::MsgOfferCreate m{h.Addr(kOwner), "H100", 0, kPrice, {}, min_hours, max_hours};
    return h.Tx(kOperator, m);
  };
  // max_hours under min_hours (or under the chain's deposit_min_hours) can never be
  // met: refused before inclusion.
  EXPECT_EQ(offer(3, 2), Code(TxCode::kMarketInvalidField));
  EXPECT_TRUE(h.last_refused);
  ASSERT_EQ(offer(2, 3), 0);
  EXPECT_EQ(h.EventAttr("market.offer_created", "min_hours"), "2");
  EXPECT_EQ(h.EventAttr("market.offer_created", "max_hours"), "3");
  uint64_t id = std::stoull(h.EventAttr("market.offer_created", "offer_id"));
  Offer stored = h.Get<Offer>(keys::OfferKey(id));
  EXPECT_EQ(stored.min_hours, 2u);
  EXPECT_EQ(stored.max_hours, 3u);
  // 1 GPU at kPrice: the first deposit is 2..3 hours of it.
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{id, 1, 1, 2 * kPrice - 1, {}}),
            Code(TxCode::kMarketDepositTooLow));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{id, 1, 1, 3 * kPrice + 1, {}}),
            Code(TxCode::kMarketDepositOverMax));
  uint64_t lease = Lease(h, id, 1, 1, 2 * kPrice);
  ASSERT_NE(lease, 0u);
  EXPECT_EQ(h.GetLease(lease).max_hours, 3u);
  EXPECT_EQ(h.GetLease(lease).min_hours, 2u);
  // The rule outlives the offer: top-ups stop at 3 hours in all.
  ASSERT_EQ(h.Tx(kOperator, codec::MsgOfferClose{h.Addr(kOwner), id}), 0);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseDeposit{lease, kPrice + 1}),
            Code(TxCode::kMarketDepositOverMax));
  EXPECT_NE(h.EventAttr("failure", "message")
                .find("it can take at most " + std::to_string(kPrice) + " ugpn more"),
            std::string::npos)
      << h.EventAttr("failure", "message");
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseDeposit{lease, kPrice}), 0);
  EXPECT_EQ(h.Tx(kInvestor, codec::MsgLeaseDeposit{lease, 1}), Code(TxCode::kMarketDepositOverMax));
  EXPECT_EQ(h.GetLease(lease).deposited_ugpn, 3 * kPrice);
  // No limit (0) and the chain's minimum (0): any deposit of at least one hour.
  ASSERT_EQ(offer(0, 0), 0);
  uint64_t open = std::stoull(h.EventAttr("market.offer_created", "offer_id"));
  uint64_t big = Lease(h, open, 1, 1, 100 * kPrice);
  ASSERT_NE(big, 0u);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseDeposit{big, 1000 * kPrice}), 0);
}

// ---------------------------------------------------------------- orders and bids

codec::MsgOrderCreate Order(uint32_t machines, uint32_t gpus, uint64_t max_price = kPrice,
                            uint64_t window_ms = 60'000) {
  codec::MsgOrderCreate m;
  m.requirements.gpu_models = {"H100"};
  m.requirements.machines = machines;
  m.requirements.gpus_per_machine = gpus;
  m.max_price_ugpn_per_gpu_hour = max_price;
  m.deposit_ugpn = 100 * kGpn;
  m.bid_window_ms = window_ms;
  return m;
}

uint64_t CreateOrder(Harness& h, const codec::MsgOrderCreate& m) {
  EXPECT_EQ(h.Tx(kTenant, m), 0);
  return std::stoull(h.EventAttr("market.order_created", "order_id"));
}

uint64_t Bid(Harness& h, uint8_t owner, uint64_t order, uint64_t price,
             std::vector<uint32_t> machines) {
  uint16_t code = h.Tx(kOperator, codec::MsgBidCreate{h.Addr(owner), order, price, machines});
  EXPECT_EQ(code, 0);
  return code == 0 ? std::stoull(h.EventAttr("market.bid_created", "bid_id")) : 0;
}

TEST(Orders, LowestFreeBidWinsAtWindowEnd) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  uint64_t tenant0 = h.Balance(kTenant);
  uint64_t order = CreateOrder(h, Order(1, 4));
  EXPECT_EQ(h.Balance(kTenant), tenant0 - kFee - 100 * kGpn);  // deposit held by the order
  Bid(h, kOwner, order, kPrice, {1});
  uint64_t cheap = Bid(h, kOwner2, order, kPrice - 1, {2});
  // The cheap bid's machine gets busy before the window ends: the next one wins.
  uint64_t offer2 = CreateOffer(h, kOwner2);
  ASSERT_NE(Lease(h, offer2, 1, 8, 100 * kGpn), 0u);  // takes machine 1 of owner2
  ASSERT_NE(Lease(h, offer2, 1, 8, 100 * kGpn), 0u);  // and machine 2
  h.Advance(59'999);
  EXPECT_EQ(h.GetOrder(order).state, OrderState::kOpen);
  h.Advance(1);
  auto o = h.GetOrder(order);
  EXPECT_EQ(o.state, OrderState::kAwarded);
  auto l = h.GetLease(o.lease_id);
  EXPECT_EQ(l.provider, h.Addr(kOwner));
  EXPECT_EQ(l.price_ugpn_per_gpu_hour, kPrice);
  EXPECT_EQ(l.deposited_ugpn, 100 * kGpn);
  EXPECT_EQ(o.deposit_ugpn, 0u);
  (void)cheap;
}

TEST(Orders, TiesGoToTheLowerFaultRateThenTheEarlierBid) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  // Give kOwner a fault: a missed start.
  ASSERT_NE(Lease(h, CreateOffer(h, kOwner), 1, 1, 100 * kGpn), 0u);
  AdvancePastGrace(h, kMarket.lease_start_timeout_ms);
  ASSERT_EQ(h.GetProvider(kOwner).faults, 1u);
  for (uint8_t owner : {kOwner, kOwner2})  // awards go to live providers only
    ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(owner)}), 0);
  uint64_t order = CreateOrder(h, Order(1, 1));
  Bid(h, kOwner, order, kPrice, {1});   // earlier, but faulty
  Bid(h, kOwner2, order, kPrice, {1});  // same price, clean record
  h.Advance(60'000);
  EXPECT_EQ(h.GetLease(h.GetOrder(order).lease_id).provider, h.Addr(kOwner2));
}

TEST(Orders, EqualPriceAndRecordGoesToTheEarlierBid) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  uint64_t order = CreateOrder(h, Order(1, 1));
  Bid(h, kOwner2, order, kPrice, {2});
  Bid(h, kOwner, order, kPrice, {1});
  h.Advance(60'000);
  EXPECT_EQ(h.GetLease(h.GetOrder(order).lease_id).provider, h.Addr(kOwner2));
}

TEST(Orders, BadBidsAndAcceptance) {
  Harness h;
  SetUpProvider(h);
  uint64_t order = CreateOrder(h, Order(2, 4));
  auto bid = [&](uint64_t price, std::vector<uint32_t> machines) {
    return h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), order, price, machines});
  };
  EXPECT_EQ(bid(kPrice + 1, {1, 2}), Code(TxCode::kMarketBidMismatch));  // over max price
  EXPECT_EQ(bid(0, {1, 2}), Code(TxCode::kMarketZeroAmount));
  EXPECT_EQ(bid(kPrice, {1}), Code(TxCode::kMarketBidMismatch));  // too few machines
  EXPECT_EQ(bid(kPrice, {1, 9}), Code(TxCode::kMarketUnknownMachine));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), 77, kPrice, {1, 2}}),
            Code(TxCode::kMarketUnknownOrder));
  EXPECT_EQ(bid(kPrice, {1, 2}), 0);
  uint64_t bid_id = std::stoull(h.EventAttr("market.bid_created", "bid_id"));
  EXPECT_EQ(bid(kPrice, {1, 2}), Code(TxCode::kMarketDuplicateBid));
  EXPECT_EQ(h.Tx(kStranger, codec::MsgBidAccept{bid_id}), Code(TxCode::kMarketNotParty));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgBidAccept{bid_id + 1}), Code(TxCode::kMarketUnknownBid));
  ASSERT_EQ(h.Tx(kTenant, codec::MsgBidAccept{bid_id}), 0);
  auto o = h.GetOrder(order);
  EXPECT_EQ(o.state, OrderState::kAwarded);
  EXPECT_EQ(h.GetLease(o.lease_id).allocations, (std::vector<Allocation>{{1, 4}, {2, 4}}));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgBidAccept{bid_id}), Code(TxCode::kMarketOrderClosed));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgOrderClose{order}), Code(TxCode::kMarketOrderClosed));
}

TEST(Orders, LateBidsAndNoBidsCloseAndRefund) {
  Harness h;
  SetUpProvider(h);
  uint64_t tenant0 = h.Balance(kTenant);
  uint64_t order = CreateOrder(h, Order(1, 1));
  h.Advance(60'000);
  auto o = h.GetOrder(order);
  EXPECT_EQ(o.state, OrderState::kClosed);
  EXPECT_EQ(h.Balance(kTenant), tenant0 - kFee);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), order, 1, {1}}),
            Code(TxCode::kMarketOrderClosed));
  // A bid in the block that reaches the window end comes before the award: late.
  uint64_t order2 = CreateOrder(h, Order(1, 1, kPrice, 1000));
  h.BeginBlock(999);
  EXPECT_NE(Bid(h, kOwner, order2, kPrice, {1}), 0u);  // still inside the window
  h.EndBlock();
  h.BeginBlock(1);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner2), order2, 1, {1}}),
            Code(TxCode::kMarketUnknownProvider));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), order2, 1, {2}}),
            Code(TxCode::kMarketBidWindowClosed));
  h.EndBlock();  // window end: awarded to the one bid
  EXPECT_EQ(h.GetOrder(order2).state, OrderState::kAwarded);
  uint64_t order3 = CreateOrder(h, Order(1, 1));
  ASSERT_EQ(h.Tx(kTenant, codec::MsgOrderClose{order3}), 0);
  // Fees of 3 order txs + the close; order2's deposit went to its lease.
  EXPECT_EQ(h.Balance(kTenant), tenant0 - 4 * kFee - 100 * kGpn);
}

TEST(Orders, AWithdrawnBidIsGoneAndTheProviderMayBidAgain) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  uint64_t order = CreateOrder(h, Order(1, 1));
  uint64_t mine = Bid(h, kOwner, order, kPrice - 1, {1});
  uint64_t other = Bid(h, kOwner2, order, kPrice, {1});
  EXPECT_EQ(h.GetOrder(order).bids, 2u);
  // Signed by the bid's provider's operator (or owner); anyone else is refused.
  EXPECT_EQ(h.Tx(kStranger, codec::MsgBidWithdraw{mine}), Code(TxCode::kMarketNotOperator));
  EXPECT_EQ(h.Tx(kOwner2, codec::MsgBidWithdraw{mine}), Code(TxCode::kMarketNotOperator));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{other + 1}), Code(TxCode::kMarketUnknownBid));
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{0}), Code(TxCode::kMarketUnknownBid));
  EXPECT_TRUE(h.last_refused);  // bid 0 names none: the preflight refuses it
  ASSERT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{mine}), 0);
  EXPECT_EQ(h.EventAttr("market.bid_withdrawn", "bid_id"), std::to_string(mine));
  EXPECT_EQ(h.EventAttr("market.bid_withdrawn", "order_id"), std::to_string(order));
  EXPECT_EQ(h.GetOrder(order).bids, 1u);
  EXPECT_FALSE(h.Db().Get(keys::BidKey(mine)).value().has_value());
  EXPECT_FALSE(h.Db().Get(keys::OrderBidKey(order, mine)).value().has_value());
  // Gone: it can be neither withdrawn again nor accepted.
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{mine}), Code(TxCode::kMarketUnknownBid));
  EXPECT_EQ(h.Tx(kTenant, codec::MsgBidAccept{mine}), Code(TxCode::kMarketUnknownBid));
  // The provider may bid again, with other machines.
  uint64_t again = Bid(h, kOwner, order, kPrice, {2});
  EXPECT_GT(again, other);
  ASSERT_EQ(h.Tx(kOwner, codec::MsgBidWithdraw{again}), 0);  // the owner may too
  // At the window end only the bid left is ranked: the cheaper one was withdrawn.
  h.Advance(60'000);
  auto o = h.GetOrder(order);
  ASSERT_EQ(o.state, OrderState::kAwarded);
  EXPECT_EQ(h.GetLease(o.lease_id).provider, h.Addr(kOwner2));
  // Awarded: its remaining bid stays, and cannot be withdrawn.
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{other}), Code(TxCode::kMarketOrderClosed));
}

TEST(Orders, BidsOfClosedOrPastWindowOrdersCannotBeWithdrawn) {
  Harness h;
  SetUpProvider(h);
  uint64_t closed = CreateOrder(h, Order(1, 1));
  uint64_t bid = Bid(h, kOwner, closed, kPrice, {1});
  ASSERT_EQ(h.Tx(kTenant, codec::MsgOrderClose{closed}), 0);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{bid}), Code(TxCode::kMarketOrderClosed));
  // In the block that reaches the window end, before the award: the bids stand.
  uint64_t order = CreateOrder(h, Order(1, 1, kPrice, 1000));
  uint64_t late = Bid(h, kOwner, order, kPrice, {1});
  h.BeginBlock(1000);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidWithdraw{late}), Code(TxCode::kMarketBidWindowClosed));
  h.EndBlock();
  EXPECT_EQ(h.GetOrder(order).state, OrderState::kAwarded);
}

TEST(Orders, RequirementsInvalidValuesAndOpenOrderLimit) {
  Harness h;
  auto m = Order(0, 1);
  EXPECT_EQ(h.Tx(kTenant, m), Code(TxCode::kMarketInvalidField));
  m = Order(1, 1, kPrice, 10);
  EXPECT_EQ(h.Tx(kTenant, m), Code(TxCode::kMarketInvalidField));  // window too short
  m = Order(1, 1);
  m.deposit_ugpn = kPrice - 1;
  EXPECT_EQ(h.Tx(kTenant, m), Code(TxCode::kMarketDepositTooLow));
  m = Order(1, 1, UINT64_MAX / 2);
  m.requirements.machines = 4;
  EXPECT_EQ(h.Tx(kTenant, m), Code(TxCode::kMarketAmountOverflow));
  m = Order(1, 1);
  m.requirements.attributes = {{"soc2", "yes"}};
  EXPECT_EQ(h.Tx(kTenant, m), Code(TxCode::kMarketInvalidField));  // no auditor named
  m = Order(1, 1);
  m.deposit_ugpn = kPrice;
  for (size_t i = 0; i < limits::kOpenOrdersPerAccountMax; ++i) ASSERT_EQ(h.Tx(kTenant, m), 0);
  EXPECT_EQ(h.Tx(kTenant, m), Code(TxCode::kMarketLimitReached));
}

TEST(Orders, ClustersNeedOneSiteAndTheFabric) {
  Harness h;
  SetUpProvider(h);
  auto m = Order(2, 8);
  m.requirements.same_site = true;
  m.requirements.fabric = codec::Fabric::kInfiniband;
  uint64_t order = CreateOrder(h, m);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), order, kPrice, {2, 3}}),
            Code(TxCode::kMarketBidMismatch));  // machine 3 is on site 2
  EXPECT_EQ(h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), order, kPrice, {1, 2}}), 0);
  // One machine of the cluster gets busy: the award can't take all N, so none.
  ASSERT_NE(Lease(h, CreateOffer(h), 1, 1, 100 * kGpn), 0u);
  h.Advance(60'000);
  EXPECT_EQ(h.GetOrder(order).state, OrderState::kClosed);
  EXPECT_EQ(h.GetMachine(kOwner, 2).free_gpus, 8u);
}

TEST(Orders, AttestedAttributesFromNamedAuditorsWithExpiry) {
  Harness h;
  SetUpProvider(h);
  auto m = Order(1, 1);
  m.requirements.auditors = {h.Addr(kAuditor)};
  m.requirements.attributes = {{"soc2", "yes"}};
  uint64_t order = CreateOrder(h, m);
  auto bid = [&] {
    return h.Tx(kOperator, codec::MsgBidCreate{h.Addr(kOwner), order, kPrice, {1}});
  };
  EXPECT_EQ(bid(), Code(TxCode::kMarketBidMismatch));
  // Attested by someone the order does not name: still no.
  ASSERT_EQ(h.Tx(kStranger, codec::MsgAttest{h.Addr(kOwner), 0, {{"soc2", "yes"}}, h.Now() + 10}),
            0);
  EXPECT_EQ(bid(), Code(TxCode::kMarketBidMismatch));
  EXPECT_EQ(h.Tx(kAuditor, codec::MsgAttest{h.Addr(kOwner), 0, {{"soc2", "yes"}}, h.Now()}),
            Code(TxCode::kMarketInvalidField));  // already expired
  EXPECT_EQ(h.Tx(kAuditor, codec::MsgAttest{h.Addr(kOwner), 42, {{"soc2", "yes"}}, h.Now() + 9}),
            Code(TxCode::kMarketUnknownMachine));
  ASSERT_EQ(h.Tx(kAuditor, codec::MsgAttest{h.Addr(kOwner), 1, {{"soc2", "yes"}}, h.Now() + 1000}),
            0);
  EXPECT_EQ(bid(), 0);
  // Expired at the window end: the award refuses the bid, the order closes.
  h.Advance(60'000);
  EXPECT_EQ(h.GetOrder(order).state, OrderState::kClosed);
}

// ---------------------------------------------------------------- invariants

TEST(Invariants, TheCheckerCatchesAPenaltyThatTheEndDoesNotAllow) {
  Harness h;
  h.SkipFinalBlockCheck();  // the test breaks the state on purpose
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t lease = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
  auto l = h.GetLease(lease);
  l.penalty_ugpn = 1;  // a tenant's close never penalises the provider
  h.Db().Put(keys::LeaseKey(lease), Encode(l));
  auto broken = state::CheckInvariants(h.Db(), kMarket);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("does not allow it"), std::string::npos);
  l.penalty_ugpn = 0;
  h.Db().Put(keys::LeaseKey(lease), Encode(l));
  // A provider's close: at most the lease's FaultPenalty.
  uint64_t dropped = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{dropped, codec::CloseReason::kNormal}), 0);
  l = h.GetLease(dropped);
  ASSERT_EQ(l.penalty_ugpn, FaultPenalty(kPrice, kMarket));
  l.penalty_ugpn += 1;
  h.Db().Put(keys::LeaseKey(dropped), Encode(l));
  EXPECT_FALSE(state::CheckInvariants(h.Db(), kMarket));
}

TEST(Invariants, TheCheckerCatchesLostMoneyAndGpus) {
  Harness h;
  h.SkipFinalBlockCheck();  // the test breaks the state on purpose
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 2, 100 * kGpn);
  ASSERT_TRUE(state::CheckInvariants(h.Db(), kMarket));
  // One ugpn less in escrow: conservation and the lease's own sum break.
  auto l = h.GetLease(lease);
  l.escrow_ugpn -= 1;
  h.Db().Put(keys::LeaseKey(lease), Encode(l));
  auto broken = state::CheckInvariants(h.Db(), kMarket);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("conservation broken"), std::string::npos);
  l.escrow_ugpn += 1;
  h.Db().Put(keys::LeaseKey(lease), Encode(l));
  ASSERT_TRUE(state::CheckInvariants(h.Db(), kMarket));
  // A GPU that is neither free nor leased.
  auto m = h.GetMachine(kOwner, 1);
  m.free_gpus -= 1;
  h.Db().Put(keys::MachineKey(h.Addr(kOwner), 1), Encode(m));
  broken = state::CheckInvariants(h.Db(), kMarket);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("!= inventory"), std::string::npos);
}

TEST(Invariants, BothChecksCatchADeadlineEntryThatNoLeaseNeeds) {
  Harness h;
  SetUpProvider(h);
  const uint64_t lease = Lease(h, CreateOffer(h), 1, 1, 100 * kGpn);
  h.Advance(1000);
  const auto l = h.GetLease(lease);
  ASSERT_EQ(l.state, LeaseState::kReserved);
  // A second start entry at another deadline, then an expiry entry of a lease
  // that has not started: the full scan and the per-block check refuse both.
  for (const auto& stray :
       {keys::DeadlineIndexKey(keys::kStartIndex, l.start_deadline_ms + 1, lease),
        keys::DeadlineIndexKey(keys::kExpiryIndex, l.start_deadline_ms, lease)}) {
    h.Db().Put(stray, {});
    auto broken = state::CheckInvariants(h.Db(), kMarket);
    ASSERT_FALSE(broken);
    EXPECT_NE(broken.error().message.find("-deadline index names lease " + std::to_string(lease)),
              std::string::npos)
        << broken.error().message;
    broken = state::CheckBlockChanges(h.Db(), kMarket);
    ASSERT_FALSE(broken);
    EXPECT_NE(broken.error().message.find("-deadline index names lease " + std::to_string(lease)),
              std::string::npos)
        << broken.error().message;
    h.Db().Clear();  // the block's writes: only the stray entry
  }
}

// A bid, its entry in the order's bids, its provider's one-bid entry and the
// order's count go together (MsgBidWithdraw removes all of them at once).
TEST(Invariants, TheCheckerCatchesABidAndItsIndexesParting) {
  Harness h;
  h.SkipFinalBlockCheck();  // the test breaks the state on purpose
  SetUpProvider(h);
  uint64_t order = CreateOrder(h, Order(1, 1));
  uint64_t bid = Bid(h, kOwner, order, kPrice, {1});
  h.Advance(0);  // commits the block: what follows is the next block's writes
  ASSERT_TRUE(state::CheckInvariants(h.Db(), kMarket));
  const std::string id = std::to_string(bid), of = std::to_string(order);
  auto expect_broken = [&](const std::string& scan, const std::string& block) {
    auto broken = state::CheckInvariants(h.Db(), kMarket);
    ASSERT_FALSE(broken) << scan;
    EXPECT_NE(broken.error().message.find(scan), std::string::npos) << broken.error().message;
    broken = state::CheckBlockChanges(h.Db(), kMarket);
    ASSERT_FALSE(broken) << block;
    EXPECT_NE(broken.error().message.find(block), std::string::npos) << broken.error().message;
    h.Db().Clear();
  };
  // The entry goes, the bid stays.
  h.Db().Delete(keys::OrderBidKey(order, bid));
  expect_broken("bid " + id + ": missing from the bids of order " + of,
                "bid " + id + " is on order " + of + " but left its bids");
  // The bid goes, its entries stay.
  h.Db().Delete(keys::BidKey(bid));
  expect_broken("order " + of + ": bids 1, scanned 0",
                "bid " + id + " is gone but still in the bids of order " + of);
  // The provider's one-bid entry names another bid.
  base::Bytes other;
  base::AppendU64BE(other, bid + 1);
  h.Db().Put(keys::OrderProviderBidKey(order, h.Addr(kOwner)), other);
  expect_broken("its provider's bid entry on order " + of + " does not name it",
                "names bid " + std::to_string(bid + 1) + ", which is not its bid there");
}

TEST(Invariants, TheCheckerCatchesAnUncoveredBondAndAWrongPromise) {
  Harness h;
  h.SkipFinalBlockCheck();  // the test breaks the state on purpose
  SetUpProvider(h);
  ASSERT_NE(Lease(h, CreateOffer(h, kOwner, 50 * kGpn), 1, 8, 400 * kGpn), 0u);
  ASSERT_TRUE(state::CheckInvariants(h.Db(), kMarket));
  const auto p = h.GetProvider(kOwner);
  ASSERT_EQ(p.promised_penalties_ugpn, 400 * kGpn);
  // The sum kept on the provider must equal its open leases' penalties.
  auto wrong = p;
  wrong.promised_penalties_ugpn -= 1;
  h.Db().Put(keys::ProviderKey(h.Addr(kOwner)), Encode(wrong));
  auto broken = state::CheckInvariants(h.Db(), kMarket);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("promised_penalties"), std::string::npos);
  // A bond below the promise (the difference moved to the owner: money is conserved).
  auto thin = p;
  thin.bond_ugpn = 400 * kGpn - 1;
  h.Db().Put(keys::ProviderKey(h.Addr(kOwner)), Encode(thin));
  auto owner = h.Db().GetAccount(h.Addr(kOwner));
  ASSERT_TRUE(owner);
  owner->balance_ugpn += p.bond_ugpn - thin.bond_ugpn;
  h.Db().PutAccount(h.Addr(kOwner), *owner);
  broken = state::CheckInvariants(h.Db(), kMarket);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("below the open leases' penalties"), std::string::npos)
      << broken.error().message;
}

// ---------------------------------------------------------------- limits

TEST(Limits, SitesPerProvider) {
  Harness h;
  ASSERT_EQ(h.Tx(kOwner, Register(h, kOwner)), 0);
  for (uint32_t first = 1; first <= limits::kSitesPerProviderMax; first += 16) {
    std::vector<codec::Msg> sites;
    for (uint32_t id = first; id < first + 16; ++id)
      sites.push_back(codec::MsgSiteUpsert{h.Addr(kOwner), id, codec::Fabric::kRoce, 1});
    ASSERT_EQ(h.Tx(kOperator, sites), 0);
  }
  EXPECT_EQ(h.Tx(kOperator, codec::MsgSiteUpsert{h.Addr(kOwner), 999, codec::Fabric::kRoce, 1}),
            Code(TxCode::kMarketLimitReached));
  // An update of an existing site is not a new one.
  EXPECT_EQ(h.Tx(kOperator, codec::MsgSiteUpsert{h.Addr(kOwner), 1, codec::Fabric::kRoce, 9}), 0);
}

TEST(Faults, ALiveProviderLeaseRunningOutOfFundsIsAnExpiryNotAFault) {
  Harness h;
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h, kOwner, 3), 1, 1, 3);  // one hour of funds
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  // Heartbeats every timeout (one block each: the grace never passes) until the
  // funds run out.
  for (int i = 0; i < 13; ++i) {
    h.Advance(0);
    ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
    if (h.GetLease(lease).state == LeaseState::kClosed) break;
    h.Advance(kMarket.heartbeat_timeout_ms);  // time passes in one block: no grace yet
  }
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.state, LeaseState::kClosed);
  EXPECT_EQ(l.end, LeaseEnd::kExpired);
  EXPECT_EQ(l.paid_ugpn, 3u);
  EXPECT_EQ(h.GetProvider(kOwner).faults, 0u);
}

TEST(EndBlock, WorkOverTheLimitCarriesOverWithExactAccrual) {
  Harness h(8, 1'000'000 * kGpn);
  ASSERT_EQ(h.Tx(kOwner, Register(h, kOwner)), 0);
  std::vector<codec::Msg> inventory{
      codec::MsgSiteUpsert{h.Addr(kOwner), 1, codec::Fabric::kEthernet, 1}};
  for (uint32_t id = 1; id <= 5; ++id) inventory.push_back(Machine(h, kOwner, id, 1, 64));
  ASSERT_EQ(h.Tx(kOperator, inventory), 0);
  uint64_t offer = CreateOffer(h, kOwner, 3);
  const size_t n = limits::kEndBlockWorkMax + 10;
  std::vector<uint64_t> leases;
  for (size_t i = 0; i < n; i += 8) {
    std::vector<codec::Msg> creates;
    for (size_t j = i; j < std::min(n, i + 8); ++j)
      creates.push_back(codec::MsgLeaseCreate{offer, 1, 1, 3, {}});
    ASSERT_EQ(h.Tx(kTenant, creates), 0);
  }
  for (uint64_t id = 1; id <= n; id += 8) {
    std::vector<codec::Msg> starts;
    for (uint64_t j = id; j < std::min<uint64_t>(n + 1, id + 8); ++j)
      starts.push_back(codec::MsgLeaseStarted{j});
    ASSERT_EQ(h.Tx(kOperator, starts), 0);
  }
  for (int i = 0; i < 3; ++i) ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  const uint64_t paid_until = h.GetLease(1).paid_until_ms;
  h.Advance(paid_until - h.Now() + 5000);
  size_t closed = 0;
  for (uint64_t id = 1; id <= n; ++id) closed += h.GetLease(id).state == LeaseState::kClosed;
  // One work item went to the provider's (not yet graced) heartbeat deadline.
  EXPECT_EQ(closed, limits::kEndBlockWorkMax - 1);
  h.Advance(1);
  for (uint64_t id = 1; id <= n; ++id) {
    auto l = h.GetLease(id);
    EXPECT_EQ(l.state, LeaseState::kClosed);
    EXPECT_EQ(l.paid_ugpn, 3u) << id;  // settled at paid_until, not later
    EXPECT_EQ(l.end, LeaseEnd::kExpired);
  }
}

// ---------------------------------------------------------------- issue 14: bonds and attacks

/// Starts `lease` now, lets an hour pass in one block (no grace lost) and withdraws.
void StartHourWithdraw(Harness& h, uint64_t lease) {
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  h.Advance(kHour);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseWithdraw{lease}), 0);
}

TEST(Bonds, TheBondMustCoverEveryOpenLeasesPenalty) {
  Harness h;
  SetUpProvider(h);
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{kBond - kMarket.provider_bond_min_ugpn}), 0);
  // 2 GPUs at 25 GPN: penalty 50 GPN a lease; the 100 GPN bond covers two.
  uint64_t offer = CreateOffer(h, kOwner, 25 * kGpn);
  uint64_t first = Lease(h, offer, 1, 2, 100 * kGpn);
  ASSERT_NE(first, 0u);
  ASSERT_NE(Lease(h, offer, 1, 2, 100 * kGpn), 0u);
  EXPECT_EQ(h.GetProvider(kOwner).promised_penalties_ugpn, 100 * kGpn);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 2, 100 * kGpn, {}}),
            Code(TxCode::kMarketBondUncovered));
  // The award path is held to the same rule.
  auto m = Order(1, 2, 25 * kGpn);
  uint64_t order = CreateOrder(h, m);
  uint64_t bid = Bid(h, kOwner, order, 25 * kGpn, {2});
  EXPECT_EQ(h.Tx(kTenant, codec::MsgBidAccept{bid}), Code(TxCode::kMarketBondUncovered));
  // Bonding more makes room; unbonding may not take it back while leases are open.
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderBond{50 * kGpn}), 0);
  ASSERT_NE(Lease(h, offer, 1, 2, 100 * kGpn), 0u);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{1}), Code(TxCode::kMarketBondUncovered));
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{first, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).promised_penalties_ugpn, 100 * kGpn);
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{50 * kGpn + 1}),
            Code(TxCode::kMarketOpenLeases));  // below the minimum
  EXPECT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{50 * kGpn}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).bond_ugpn, 100 * kGpn);
}

TEST(Bonds, PenaltiesDrawOnUnbondingStakeUntilItMatures) {
  Provider p;
  p.bond_ugpn = 30;
  p.unbonding = {{100, 1000}, {50, 2000}};
  PenaltyDraw d = DrawPenalty(p, 100, 500);
  EXPECT_EQ(d.from_bond_ugpn, 30u);
  EXPECT_EQ(d.from_unbonding_ugpn, 70u);  // 50 of the latest entry, then 20
  EXPECT_EQ(d.unpaid_ugpn, 0u);
  EXPECT_EQ(p.bond_ugpn, 0u);
  EXPECT_EQ(p.unbonding, (std::vector<Unbonding>{{80, 1000}}));
  // Matured stake is the owner's: not touched.
  d = DrawPenalty(p, 200, 1000);
  EXPECT_EQ(d.Paid(), 0u);
  EXPECT_EQ(d.unpaid_ugpn, 200u);
  EXPECT_EQ(p.unbonding, (std::vector<Unbonding>{{80, 1000}}));
}

TEST(Faults, AProviderThatWinsAt1UgpnAndNeverStartsLosesMoreThanTheTenantPaid) {
  Harness h;
  SetUpProvider(h);
  uint64_t tenant0 = h.Balance(kTenant);
  uint64_t order = CreateOrder(h, Order(1, 1));
  Bid(h, kOwner, order, 1, {1});
  h.Advance(60'000);
  uint64_t lease = h.GetOrder(order).lease_id;
  ASSERT_NE(lease, 0u);
  EXPECT_EQ(h.GetLease(lease).rate_ugpn_per_hour, 1u);
  AdvancePastGrace(h, kMarket.lease_start_timeout_ms);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kMissedStart);
  EXPECT_EQ(l.penalty_ugpn, kMarket.fault_penalty_floor_ugpn);
  // The tenant paid one fee and waited; the provider paid the floor.
  EXPECT_GT(h.Balance(kTenant), tenant0);
  EXPECT_EQ(h.Balance(kTenant), tenant0 - kFee + kMarket.fault_penalty_floor_ugpn);
  EXPECT_EQ(h.GetProvider(kOwner).bond_ugpn, kBond - kMarket.fault_penalty_floor_ugpn);
}

TEST(Faults, TheStartDeadlineHasTheHeartbeatGraceInBlocks) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t lease = Lease(h, offer, 1, 1, 100 * kGpn);
  // The chain halts past the deadline and resumes: one block, no fault yet...
  h.Advance(2 * kMarket.lease_start_timeout_ms);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kReserved);
  // ...and the provider's start in the next block is accepted.
  h.BeginBlock(1000);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  h.EndBlock();
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
  // A provider that stays silent faults once the grace blocks have passed too.
  uint64_t silent = Lease(h, offer, 1, 1, 100 * kGpn);
  uint64_t late = Lease(h, offer, 1, 1, 100 * kGpn);
  h.Advance(kMarket.lease_start_timeout_ms);  // the deadline comes due: the grace starts
  h.Advance(kMarket.heartbeat_grace_blocks, kMarket.heartbeat_grace_blocks);
  EXPECT_EQ(h.GetLease(silent).state, LeaseState::kReserved);  // deadline, not the grace
  // A tenant giving up on a provider past its start deadline pays no charge.
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{late, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(late).paid_ugpn, 0u);
  EXPECT_EQ(h.GetLease(late).refunded_ugpn, 100 * kGpn);
  h.Advance(1);
  EXPECT_EQ(h.GetLease(silent).end, LeaseEnd::kMissedStart);
}

TEST(Faults, TheStartGraceCountsFromTheBlockThatFirstSawTheDeadline) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t started = Lease(h, offer, 1, 1, 100 * kGpn);
  uint64_t silent = Lease(h, offer, 1, 1, 100 * kGpn);
  // Ordinary blocks for longer than the grace, then a halt past the deadline.
  h.Advance(kMarket.heartbeat_grace_blocks + 1, kMarket.heartbeat_grace_blocks + 1);
  h.Advance(2 * kMarket.lease_start_timeout_ms);
  EXPECT_EQ(h.GetLease(started).state, LeaseState::kReserved);
  EXPECT_EQ(h.GetLease(silent).state, LeaseState::kReserved);
  // The provider gets its start in within the grace blocks after the resumption.
  h.Advance(1000 * (kMarket.heartbeat_grace_blocks - 1), kMarket.heartbeat_grace_blocks - 1);
  h.BeginBlock(1000);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{started}), 0);
  h.EndBlock();
  EXPECT_EQ(h.GetLease(started).state, LeaseState::kStarted);
  EXPECT_EQ(h.GetLease(silent).state, LeaseState::kReserved);  // the last grace block
  h.Advance(1000);
  EXPECT_EQ(h.GetLease(silent).end, LeaseEnd::kMissedStart);
}

TEST(Faults, TheHeartbeatGraceCountsFromTheBlockThatFirstSawTheDeadline) {
  Harness h;
  SetUpProvider(h);
  uint64_t lease = Lease(h, CreateOffer(h), 1, 1, 1000 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  h.Advance(kMarket.heartbeat_grace_blocks + 1, kMarket.heartbeat_grace_blocks + 1);
  h.Advance(2 * kMarket.heartbeat_timeout_ms);  // a halt past the heartbeat deadline
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
  h.BeginBlock(1000);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  h.EndBlock();
  h.Advance(1000 * (kMarket.heartbeat_grace_blocks + 1), kMarket.heartbeat_grace_blocks + 1);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kStarted);
  EXPECT_EQ(h.GetProvider(kOwner).faults, 0u);
}

TEST(Offers, AnOfferOfAProviderThatWentAwayCannotBeLeased) {
  Harness h;
  SetUpProvider(h);  // registration counts as the first heartbeat
  uint64_t offer = CreateOffer(h);
  h.Advance(kMarket.heartbeat_timeout_ms);
  EXPECT_NE(Lease(h, offer, 1, 1, 100 * kGpn), 0u);  // within the timeout
  h.Advance(1);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 1, 100 * kGpn, {}}),
            Code(TxCode::kMarketProviderOffline));
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  EXPECT_NE(Lease(h, offer, 1, 1, 100 * kGpn), 0u);
}

TEST(Leases, ClosingAReservedLeaseChargesTheTenantForTheHeldCapacity) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  uint64_t lease = Lease(h, offer, 1, 6, 100 * kGpn);  // 12 GPN per hour
  uint64_t tenant0 = h.Balance(kTenant), owner0 = h.Balance(kOwner),
           investor0 = h.Balance(kInvestor);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
  const uint64_t charge = Accrued(12 * kGpn, kMarket.reserved_close_charge_ms);  // 2 GPN
  EXPECT_EQ(charge, 2 * kGpn);
  EXPECT_EQ(h.EventAttr("market.lease_closed", "charge_ugpn"), std::to_string(charge));
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.paid_ugpn, charge);
  EXPECT_EQ(l.refunded_ugpn, 100 * kGpn - charge);
  EXPECT_EQ(h.Balance(kTenant), tenant0 - kFee + 100 * kGpn - charge);
  EXPECT_EQ(h.Balance(kOwner) - owner0 + h.Balance(kInvestor) - investor0, charge);
  auto p = h.GetProvider(kOwner);
  EXPECT_EQ(p.earned_ugpn, 0u);  // a charge is not GPU time sold
  EXPECT_EQ(p.faults, 0u);
  EXPECT_EQ(p.leases_completed, 0u);
  // A cheap lease pays the floor; a tiny one at most its escrow.
  uint64_t cheap_offer = CreateOffer(h, kOwner, 3);
  uint64_t cheap = Lease(h, cheap_offer, 1, 1, kGpn);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{cheap, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(cheap).paid_ugpn, kMarket.reserved_close_charge_floor_ugpn);
  uint64_t tiny = Lease(h, cheap_offer, 1, 1, 3);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{tiny, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(tiny).paid_ugpn, 3u);
  // The provider walking away from a reservation refunds it all (and pays the penalty).
  uint64_t dropped = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{dropped, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(dropped).refunded_ugpn, 100 * kGpn);
  EXPECT_EQ(h.GetLease(dropped).penalty_ugpn, FaultPenalty(kPrice, kMarket));
}

TEST(Leases, WaitingForTheStartDoesNotAvoidTheCloseCharge) {
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);  // 2 GPN per GPU-hour
  const uint64_t charge = Accrued(kPrice, kMarket.reserved_close_charge_ms);
  // Started, then closed a block later: one block of GPU time plus the rest of the
  // charge, so the provider gets the charge in all.
  uint64_t run = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{run}), 0);
  h.Advance(1000);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{run, codec::CloseReason::kNormal}), 0);
  const uint64_t accrued = Accrued(kPrice, 1000);
  EXPECT_EQ(h.EventAttr("market.lease_closed", "charge_ugpn"), std::to_string(charge - accrued));
  EXPECT_EQ(h.GetLease(run).paid_ugpn, charge);
  EXPECT_EQ(h.GetProvider(kOwner).earned_ugpn, accrued);  // the charge is not GPU time
  // Past the start deadline a close pays the GPU time only.
  uint64_t later = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{later}), 0);
  h.Advance(kMarket.lease_start_timeout_ms);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{later, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.EventAttr("market.lease_closed", "charge_ugpn"), "0");
  EXPECT_EQ(h.GetLease(later).paid_ugpn, Accrued(kPrice, kMarket.lease_start_timeout_ms));
}

TEST(Orders, ProviderRequirementsFilterBidsAndAwards) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  auto bid = [&](uint8_t owner, uint64_t order) {
    return h.Tx(kOperator, codec::MsgBidCreate{h.Addr(owner), order, kPrice, {1}});
  };
  auto m = Order(1, 1);
  m.providers.excluded = {h.Addr(kOwner)};
  uint64_t order = CreateOrder(h, m);
  EXPECT_EQ(bid(kOwner, order), Code(TxCode::kMarketProviderUnqualified));
  EXPECT_EQ(bid(kOwner2, order), 0);
  m = Order(1, 1);
  m.providers.min_bond_ugpn = kBond + 1;
  order = CreateOrder(h, m);
  EXPECT_EQ(bid(kOwner, order), Code(TxCode::kMarketProviderUnqualified));
  // Earnings count only what OTHER tenants paid: kOwner renting its own GPUs (a
  // lease count could be farmed that way) earns nothing towards the requirement.
  uint64_t self_lease = Lease(h, CreateOffer(h, kOwner), 1, 1, 100 * kGpn, kOwner);
  uint64_t real_lease = Lease(h, CreateOffer(h, kOwner2), 1, 1, 100 * kGpn, kTenant);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{self_lease}), 0);
  StartHourWithdraw(h, real_lease);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseWithdraw{self_lease}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).earned_ugpn, 0u);
  EXPECT_EQ(h.GetProvider(kOwner2).earned_ugpn, kPrice);
  m = Order(1, 1);
  m.providers.min_earned_ugpn = kPrice;
  order = CreateOrder(h, m);
  EXPECT_EQ(bid(kOwner, order), Code(TxCode::kMarketProviderUnqualified));
  EXPECT_EQ(bid(kOwner2, order), 0);
  // A fault rate over the maximum.
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{self_lease, codec::CloseReason::kNormal}), 0);
  ASSERT_EQ(h.GetProvider(kOwner).faults, 1u);  // a provider close is a fault
  m = Order(1, 1);
  m.providers.max_fault_rate_ppm = 0;
  order = CreateOrder(h, m);
  EXPECT_EQ(bid(kOwner, order), Code(TxCode::kMarketProviderUnqualified));
  EXPECT_EQ(bid(kOwner2, order), 0);
}

TEST(Orders, AnAwardPassesOverAProviderThatWentQuiet) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  uint64_t order = CreateOrder(h, Order(1, 1, kPrice, 2 * kMarket.heartbeat_timeout_ms));
  uint64_t cheap = Bid(h, kOwner, order, kPrice - 1, {1});
  Bid(h, kOwner2, order, kPrice, {1});
  // kOwner2's daemon keeps sending heartbeats; kOwner's went away after its bid.
  h.Advance(kMarket.heartbeat_timeout_ms);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner2)}), 0);
  h.Advance(1);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgBidAccept{cheap}), Code(TxCode::kMarketProviderOffline));
  h.Advance(kMarket.heartbeat_timeout_ms - 1);  // the window ends: kOwner2 is still online
  auto o = h.GetOrder(order);
  ASSERT_EQ(o.state, OrderState::kAwarded);
  EXPECT_EQ(h.GetLease(o.lease_id).provider, h.Addr(kOwner2));
  EXPECT_EQ(h.GetProvider(kOwner).open_leases, 0u);
}

TEST(Orders, TheAwardChecksTheProviderRequirementsAgain) {
  Harness h;
  SetUpProvider(h, kOwner);
  SetUpProvider(h, kOwner2);
  auto m = Order(1, 1);
  m.providers.min_bond_ugpn = kBond;
  uint64_t order = CreateOrder(h, m);
  uint64_t cheap = Bid(h, kOwner, order, kPrice - 1, {1});
  Bid(h, kOwner2, order, kPrice, {1});
  // The cheaper provider unbonds below the order's minimum before the window ends.
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{1}), 0);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgBidAccept{cheap}), Code(TxCode::kMarketProviderUnqualified));
  h.Advance(60'000);
  auto o = h.GetOrder(order);
  EXPECT_EQ(o.state, OrderState::kAwarded);
  EXPECT_EQ(h.GetLease(o.lease_id).provider, h.Addr(kOwner2));
}

TEST(Faults, AProviderClosingItsReservationPaysThePenaltyLikeAMissedStart) {
  // The cheap attack: win every award at 1 ugpn, then close before the start.
  Harness h;
  SetUpProvider(h);
  uint64_t order = CreateOrder(h, Order(1, 1));
  Bid(h, kOwner, order, 1, {1});
  h.Advance(60'000);
  uint64_t lease = h.GetOrder(order).lease_id;
  ASSERT_NE(lease, 0u);
  uint64_t tenant0 = h.Balance(kTenant), bond0 = h.GetProvider(kOwner).bond_ugpn;
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
  auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kProviderClosed);
  EXPECT_EQ(l.penalty_ugpn, kMarket.fault_penalty_floor_ugpn);
  EXPECT_EQ(h.EventAttr("market.lease_closed", "penalty_ugpn"),
            std::to_string(kMarket.fault_penalty_floor_ugpn));
  EXPECT_GE(h.Balance(kTenant) - tenant0, 100 * kGpn + kMarket.fault_penalty_floor_ugpn);
  auto p = h.GetProvider(kOwner);
  EXPECT_EQ(p.bond_ugpn, bond0 - kMarket.fault_penalty_floor_ugpn);
  EXPECT_EQ(p.penalties_paid_ugpn, kMarket.fault_penalty_floor_ugpn);
  EXPECT_EQ(p.faults, 1u);
  // Starting first and closing at once costs the floor too (the tenant had no GPU
  // time to speak of); a rate-based penalty it does not pay: the tenant was served.
  uint64_t offer = CreateOffer(h, kOwner, 20 * kGpn);  // 20 GPN per hour
  uint64_t run = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{run}), 0);
  h.Advance(kHour / 2);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{run, codec::CloseReason::kNormal}), 0);
  l = h.GetLease(run);
  EXPECT_EQ(l.paid_ugpn, 10 * kGpn);
  EXPECT_EQ(l.penalty_ugpn, kMarket.fault_penalty_floor_ugpn);
  EXPECT_LT(l.penalty_ugpn, FaultPenalty(20 * kGpn, kMarket));
  EXPECT_EQ(h.GetProvider(kOwner).faults, 2u);
}

TEST(Providers, LifetimeCountersSaturateInsteadOfHaltingTheChain) {
  // earned_ugpn can outgrow the supply (a sybil cycles the same ugpn through
  // deposits and withdrawals); a checked add on it would stop every validator.
  Harness h;
  SetUpProvider(h);
  auto p = h.GetProvider(kOwner);
  p.earned_ugpn = UINT64_MAX - 1;
  p.penalties_paid_ugpn = UINT64_MAX - 1;
  h.Db().Put(keys::ProviderKey(h.Addr(kOwner)), Encode(p));
  uint64_t offer = CreateOffer(h);
  uint64_t lease = Lease(h, offer, 1, 1, 100 * kGpn);
  StartHourWithdraw(h, lease);
  EXPECT_EQ(h.GetProvider(kOwner).earned_ugpn, UINT64_MAX);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  uint64_t dropped = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{dropped, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(dropped).penalty_ugpn, FaultPenalty(kPrice, kMarket));
  EXPECT_EQ(h.GetProvider(kOwner).penalties_paid_ugpn, UINT64_MAX);
}

TEST(Faults, AProviderLeasingFromItselfTakesNoPenaltyOutOfItsBond) {
  // Otherwise a lease from its own key and a close would move bond to the owner's
  // balance at once, past the unbonding delay.
  Harness h;
  SetUpProvider(h);
  uint64_t offer = CreateOffer(h);
  // (The operator closing a lease it is the tenant of closes as the tenant.)
  for (uint8_t self : {kOwner, kInvestor}) {  // the owner, a payee
    uint64_t lease = Lease(h, offer, 1, 1, 100 * kGpn, self);
    ASSERT_NE(lease, 0u);
    uint64_t balance0 = h.Balance(self);
    ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}), 0);
    EXPECT_EQ(h.GetLease(lease).penalty_ugpn, 0u);
    EXPECT_EQ(h.Balance(self), balance0 + 100 * kGpn);
  }
  uint64_t missed = Lease(h, offer, 1, 1, 100 * kGpn, kOperator);
  AdvancePastGrace(h, kMarket.lease_start_timeout_ms);
  EXPECT_EQ(h.GetLease(missed).end, LeaseEnd::kMissedStart);
  EXPECT_EQ(h.GetLease(missed).penalty_ugpn, 0u);
  auto p = h.GetProvider(kOwner);
  EXPECT_EQ(p.bond_ugpn, kBond);
  EXPECT_EQ(p.faults, 3u);  // it still counts against its reputation
}

// ---------------------------------------------------------------- genesis parameters
// A chain whose genesis has other market rules (market/params.h) runs by them: each
// of these fails if the rules read the defaults instead.

TEST(GenesisParams, AHigherBondMinimumRefusesARegisterBeforeInclusion) {
  Params market;
  market.provider_bond_min_ugpn = 2 * kBond;
  Harness h(8, 100'000 * kGpn, market);
  const uint64_t before = h.Balance(kOwner);
  EXPECT_EQ(h.Tx(kOwner, Register(h, kOwner)), Code(TxCode::kMarketBondTooLow));
  EXPECT_TRUE(h.last_refused);  // preflight: no fee, no nonce
  EXPECT_EQ(h.Balance(kOwner), before);
  ASSERT_EQ(h.Tx(kOwner, Register(h, kOwner, 2 * kBond)), 0);
  // In business only while the bond is at the chain's minimum: under it, no offer.
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{kBond}), 0);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgOfferCreate{h.Addr(kOwner), "H100", 0, kPrice, {}}),
            Code(TxCode::kMarketBondTooLow));
}

TEST(GenesisParams, AShorterStartTimeoutAndGraceCloseALeaseEarlier) {
  Params market;
  market.lease_start_timeout_ms = 60'000;
  market.heartbeat_grace_blocks = 2;
  market.fault_penalty_hours = 2;
  Harness h(8, 100'000 * kGpn, market);
  SetUpProvider(h);
  const uint64_t lease = Lease(h, CreateOffer(h), 1, 4, 100 * kGpn);
  EXPECT_EQ(h.GetLease(lease).start_deadline_ms, h.Now() + 60'000);
  h.Advance(60'000);  // the deadline comes due: 2 grace blocks
  h.Advance(2, 2);
  EXPECT_EQ(h.GetLease(lease).state, LeaseState::kReserved);
  h.Advance(1);
  const auto l = h.GetLease(lease);
  EXPECT_EQ(l.end, LeaseEnd::kMissedStart);
  EXPECT_EQ(l.penalty_ugpn, 4 * kPrice * 2);  // 2 penalty hours
}

TEST(GenesisParams, UnbondingHeartbeatAndManifestTimesFollowTheChain) {
  Params market;
  market.unbonding_delay_ms = kHour;
  market.heartbeat_timeout_ms = 60'000;
  market.manifest_timeout_ms = 120'000;
  Harness h(8, 100'000 * kGpn, market);
  SetUpProvider(h);
  ASSERT_EQ(h.Tx(kOwner, codec::MsgProviderUnbond{kGpn}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).unbonding.back().release_ms, h.Now() + kHour);
  const uint64_t offer = CreateOffer(h);
  // Silent for longer than the chain's heartbeat timeout (5 minutes by default).
  h.Advance(60'001);
  EXPECT_EQ(h.Tx(kTenant, codec::MsgLeaseCreate{offer, 1, 1, 100 * kGpn, {}}),
            Code(TxCode::kMarketProviderOffline));
  ASSERT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  const uint64_t lease = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_NE(lease, 0u);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{lease}), 0);
  EXPECT_EQ(h.GetProvider(kOwner).heartbeat_deadline_ms, h.Now() + 60'001);
  h.Advance(119'999, 4);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgHeartbeat{h.Addr(kOwner)}), 0);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNoManifest}),
            Code(TxCode::kMarketTooEarly));
  h.Advance(1);
  EXPECT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{lease, codec::CloseReason::kNoManifest}), 0);
}

TEST(GenesisParams, ChargesAndFloorsFollowTheChain) {
  Params market;
  market.reserved_close_charge_ms = 2 * kHour;
  market.reserved_close_charge_floor_ugpn = 0;
  market.fault_penalty_floor_ugpn = 50 * kGpn;
  Harness h(8, 100'000 * kGpn, market);
  SetUpProvider(h);
  const uint64_t offer = CreateOffer(h);
  // A tenant closing before the start: 2 hours of the rate (1 GPU at kPrice).
  const uint64_t reserved = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kTenant, codec::MsgLeaseClose{reserved, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(reserved).paid_ugpn, 2 * kPrice);
  // A provider closing a started lease pays the floor: min(promised, floor) where
  // promised = max(rate x 1 hour, floor) = the floor.
  const uint64_t started = Lease(h, offer, 1, 1, 100 * kGpn);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseStarted{started}), 0);
  ASSERT_EQ(h.Tx(kOperator, codec::MsgLeaseClose{started, codec::CloseReason::kNormal}), 0);
  EXPECT_EQ(h.GetLease(started).penalty_ugpn, 50 * kGpn);
  EXPECT_EQ(FaultPenalty(kPrice, market), 50 * kGpn);
  EXPECT_EQ(FaultPenalty(kPrice, kMarket), kPrice);
}

}  // namespace
}  // namespace gpunet::market::testing
