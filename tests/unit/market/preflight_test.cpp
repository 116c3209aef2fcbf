// market::Preflight (docs/market.md "Preflight"): every malformed field of every
// market message kind is refused with the code the rules return for it, the good
// message of each kind passes, and ApplyMarketMsg refuses the same message with the
// same code before it reads the store.
#include "market/preflight.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "base/limits.h"
#include "market/apply.h"
#include "market_harness.h"
#include "message_examples.h"

namespace gpunet::market {
namespace {

namespace limits = base::limits;
using codec::TxCode;
using codec::testing::AllMarketMessages;
using testing::kMarket;

/// The example of one message kind (message_examples.h), to break one field of.
template <class M>
M Example() {
  for (const auto& msg : AllMarketMessages())
    if (const auto* m = std::get_if<M>(&msg)) return *m;
  ADD_FAILURE() << "no example of this message kind";
  return M{};
}

/// The code Preflight refuses `msg` with on a chain with the market rules `params`;
/// kOk when it passes.
TxCode PreflightCode(const codec::Msg& msg, const Params& params = kMarket) {
  auto result = Preflight(msg, params);
  if (result) return TxCode::kOk;
  EXPECT_FALSE(result.error().message.empty());
  return result.error().code;
}

/// The example with one change.
template <class M>
codec::Msg With(const std::function<void(M&)>& change) {
  M m = Example<M>();
  change(m);
  return m;
}

TEST(Preflight, EveryExampleMessagePasses) {
  const auto all = AllMarketMessages();
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(PreflightCode(all[i]), TxCode::kOk) << "example " << i;
}

TEST(Preflight, ProviderPayoutSplitsMustSumToTheTotal) {
  using R = codec::MsgProviderRegister;
  using U = codec::MsgProviderUpdate;
  const codec::Address a = codec::testing::Addr(5), b = codec::testing::Addr(6);
  EXPECT_EQ(PreflightCode(With<R>([&](R& m) {
              m.payouts = {{a, 2500}, {b, 7499}};
            })),
            TxCode::kMarketBadSplits);
  EXPECT_EQ(PreflightCode(With<R>([&](R& m) { m.payouts = {}; })), TxCode::kMarketBadSplits);
  EXPECT_EQ(PreflightCode(With<R>([&](R& m) {
              m.payouts = {{a, 0}, {b, 10000}};
            })),
            TxCode::kMarketBadSplits);
  EXPECT_EQ(PreflightCode(With<U>([&](U& m) {
              m.payouts = {{a, 10001}};
            })),
            TxCode::kMarketBadSplits);
  EXPECT_EQ(PreflightCode(With<U>([&](U& m) {
              m.payouts = {{a, limits::kPayoutBpTotal}};
            })),
            TxCode::kOk);
}

TEST(Preflight, ZeroAmountsAndPricesAreRefused) {
  EXPECT_EQ(PreflightCode(codec::MsgProviderBond{0}), TxCode::kMarketZeroAmount);
  EXPECT_EQ(PreflightCode(codec::MsgProviderUnbond{0}), TxCode::kMarketZeroAmount);
  EXPECT_EQ(PreflightCode(codec::MsgProviderBond{1}), TxCode::kOk);
  using O = codec::MsgOfferCreate;
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.price_ugpn_per_gpu_hour = 0; })),
            TxCode::kMarketZeroAmount);
  using B = codec::MsgBidCreate;
  EXPECT_EQ(PreflightCode(With<B>([](B& m) { m.price_ugpn_per_gpu_hour = 0; })),
            TxCode::kMarketZeroAmount);
  using D = codec::MsgLeaseDeposit;
  EXPECT_EQ(PreflightCode(With<D>([](D& m) { m.amount_ugpn = 0; })), TxCode::kMarketZeroAmount);
}

TEST(Preflight, InventoryIdsAndCounts) {
  using S = codec::MsgSiteUpsert;
  EXPECT_EQ(PreflightCode(With<S>([](S& m) { m.site_id = 0; })), TxCode::kMarketInvalidField);
  using M = codec::MsgMachineUpsert;
  EXPECT_EQ(PreflightCode(With<M>([](M& m) { m.machine_id = 0; })), TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<M>([](M& m) { m.gpu_count = 0; })), TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<M>([](M& m) { m.gpu_count = limits::kGpusPerMachineMax + 1; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<M>([](M& m) { m.gpu_count = limits::kGpusPerMachineMax; })),
            TxCode::kOk);
  using X = codec::MsgMachineRemove;
  EXPECT_EQ(PreflightCode(With<X>([](X& m) { m.machine_id = 0; })), TxCode::kMarketUnknownMachine);
}

TEST(Preflight, LeaseCreateCounts) {
  using L = codec::MsgLeaseCreate;
  EXPECT_EQ(PreflightCode(With<L>([](L& m) { m.machines = 0; })), TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<L>([](L& m) { m.machines = limits::kMachinesPerLeaseMax + 1; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<L>([](L& m) { m.gpus_per_machine = 0; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(
      PreflightCode(With<L>([](L& m) { m.gpus_per_machine = limits::kGpusPerMachineMax + 1; })),
      TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<L>([](L& m) { m.offer_id = 0; })), TxCode::kMarketUnknownOffer);
}

TEST(Preflight, OrderCreateFields) {
  using O = codec::MsgOrderCreate;
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.requirements.machines = 0; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(
                With<O>([](O& m) { m.requirements.machines = limits::kMachinesPerLeaseMax + 1; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.requirements.gpus_per_machine = 0; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.requirements.auditors.clear(); })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) {
              m.requirements.auditors.clear();
              m.requirements.attributes.clear();
            })),
            TxCode::kOk);  // no attributes: no auditor needed
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.max_price_ugpn_per_gpu_hour = 0; })),
            TxCode::kMarketZeroAmount);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.bid_window_ms = kMarket.bid_window_min_ms - 1; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.bid_window_ms = kMarket.bid_window_max_ms + 1; })),
            TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.bid_window_ms = kMarket.bid_window_max_ms; })),
            TxCode::kOk);
  // The deposit is judged against the order's own maximum price: 3 ugpn x 16 GPUs.
  EXPECT_EQ(PreflightCode(With<O>([](O& m) {
              m.max_price_ugpn_per_gpu_hour = 3;
              m.deposit_ugpn = 3 * 16 * kMarket.deposit_min_hours - 1;
            })),
            TxCode::kMarketDepositTooLow);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) {
              m.max_price_ugpn_per_gpu_hour = 3;
              m.deposit_ugpn = 3 * 16 * kMarket.deposit_min_hours;
            })),
            TxCode::kOk);
  EXPECT_EQ(PreflightCode(With<O>([](O& m) { m.max_price_ugpn_per_gpu_hour = UINT64_MAX / 2; })),
            TxCode::kMarketAmountOverflow);
}

// The rules that come from genesis (market/params.h) are the chain's, not the defaults.
TEST(Preflight, FollowsTheChainsMarketParams) {
  Params chain;
  chain.provider_bond_min_ugpn = 500'000'000;
  chain.bid_window_min_ms = 60'000;
  chain.bid_window_max_ms = 120'000;
  chain.deposit_min_hours = 24;
  using R = codec::MsgProviderRegister;
  const codec::Msg reg = With<R>([](R& m) { m.bond_ugpn = 400'000'000; });
  EXPECT_EQ(PreflightCode(reg), TxCode::kOk);
  EXPECT_EQ(PreflightCode(reg, chain), TxCode::kMarketBondTooLow);
  EXPECT_EQ(PreflightCode(With<R>([](R& m) { m.bond_ugpn = 500'000'000; }), chain), TxCode::kOk);
  using O = codec::MsgOrderCreate;
  auto order = [](uint64_t window_ms, uint64_t deposit_ugpn) {
    return With<O>([=](O& m) {
      m.max_price_ugpn_per_gpu_hour = 3;
      m.requirements.machines = 1;
      m.requirements.gpus_per_machine = 1;
      m.bid_window_ms = window_ms;
      m.deposit_ugpn = deposit_ugpn;
    });
  };
  EXPECT_EQ(PreflightCode(order(1000, 3)), TxCode::kOk);
  EXPECT_EQ(PreflightCode(order(1000, 3 * 24), chain), TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(order(120'001, 3 * 24), chain), TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(order(60'000, 3 * 24 - 1), chain), TxCode::kMarketDepositTooLow);
  EXPECT_EQ(PreflightCode(order(120'000, 3 * 24), chain), TxCode::kOk);
}

TEST(Preflight, AnOffersMaxHoursMustLeaveRoomForTheFirstDeposit) {
  using O = codec::MsgOfferCreate;
  auto hours = [](uint32_t min_hours, uint32_t max_hours) {
    return With<O>([=](O& m) {
      m.min_hours = min_hours;
      m.max_hours = max_hours;
    });
  };
  EXPECT_EQ(PreflightCode(hours(0, 0)), TxCode::kOk);
  EXPECT_EQ(PreflightCode(hours(5, 0)), TxCode::kOk);  // 0: no limit
  EXPECT_EQ(PreflightCode(hours(5, 5)), TxCode::kOk);
  EXPECT_EQ(PreflightCode(hours(5, 4)), TxCode::kMarketInvalidField);
  Params chain;
  chain.deposit_min_hours = 24;  // the chain's minimum counts when higher
  EXPECT_EQ(PreflightCode(hours(0, 23), chain), TxCode::kMarketInvalidField);
  EXPECT_EQ(PreflightCode(hours(0, 24), chain), TxCode::kOk);
}

TEST(Preflight, IdsThatNoRecordHas) {
  // Offers, orders, bids and leases are numbered from 1.
  EXPECT_EQ(PreflightCode(codec::MsgOfferClose{codec::testing::Addr(2), 0}),
            TxCode::kMarketUnknownOffer);
  EXPECT_EQ(PreflightCode(codec::MsgOrderClose{0}), TxCode::kMarketUnknownOrder);
  using B = codec::MsgBidCreate;
  EXPECT_EQ(PreflightCode(With<B>([](B& m) { m.order_id = 0; })), TxCode::kMarketUnknownOrder);
  EXPECT_EQ(PreflightCode(codec::MsgBidAccept{0}), TxCode::kMarketUnknownBid);
  EXPECT_EQ(PreflightCode(codec::MsgBidWithdraw{0}), TxCode::kMarketUnknownBid);
  EXPECT_EQ(PreflightCode(codec::MsgBidWithdraw{1}), TxCode::kOk);
  EXPECT_EQ(PreflightCode(codec::MsgLeaseStarted{0}), TxCode::kMarketUnknownLease);
  EXPECT_EQ(PreflightCode(codec::MsgLeaseDeposit{0, 5}), TxCode::kMarketUnknownLease);
  EXPECT_EQ(PreflightCode(codec::MsgLeaseWithdraw{0}), TxCode::kMarketUnknownLease);
  EXPECT_EQ(PreflightCode(codec::MsgLeaseClose{0, codec::CloseReason::kNormal}),
            TxCode::kMarketUnknownLease);
}

TEST(Preflight, AttestationNeedsAnAttribute) {
  using A = codec::MsgAttest;
  EXPECT_EQ(PreflightCode(With<A>([](A& m) { m.attributes.clear(); })),
            TxCode::kMarketInvalidField);
  // Whether it has expired needs the block time: not the preflight's.
  EXPECT_EQ(PreflightCode(With<A>([](A& m) { m.expires_at_ms = 1; })), TxCode::kOk);
}

TEST(Preflight, MessagesThatNeedStateAlwaysPass) {
  EXPECT_EQ(PreflightCode(codec::MsgProviderDeregister{}), TxCode::kOk);
  EXPECT_EQ(PreflightCode(codec::MsgProviderClaimUnbonded{}), TxCode::kOk);
  EXPECT_EQ(PreflightCode(codec::MsgHeartbeat{codec::testing::Addr(2)}), TxCode::kOk);
}

// ApplyMarketMsg runs the preflight first: a caller that skips stage 1 (the fuzzer)
// gets the same code, and nothing is written.
TEST(Preflight, ApplyRefusesTheSameMessageWithTheSameCodeBeforeAnyWrite) {
  testing::Harness h;
  const std::vector<codec::Msg> bad = {
      codec::MsgProviderBond{0},
      codec::MsgSiteUpsert{h.Addr(1), 0, codec::Fabric::kRoce, 1},
      With<codec::MsgOrderCreate>([](codec::MsgOrderCreate& m) { m.bid_window_ms = 0; }),
      codec::MsgLeaseClose{0, codec::CloseReason::kNormal},
  };
  for (const auto& msg : bad) {
    auto pre = Preflight(msg, kMarket);
    ASSERT_FALSE(pre);
    state::MarketStateStore store(h.Db());
    std::vector<codec::Event> events;
    auto applied = ApplyMarketMsg(store, kMarket, BlockTime{1, 1000}, h.Addr(1), msg, events);
    ASSERT_TRUE(applied);
    ASSERT_TRUE(applied->has_value());
    EXPECT_EQ((*applied)->code, pre.error().code);
    EXPECT_EQ((*applied)->message, pre.error().message);
    EXPECT_TRUE(events.empty());
    EXPECT_TRUE(h.Db().Pending().empty());
  }
}

}  // namespace
}  // namespace gpunet::market
