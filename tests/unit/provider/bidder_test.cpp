#include "provider/bidder.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "crypto/address.h"
#include "util/keys.h"

namespace gpunet::provider {
namespace {

constexpr uint64_t kNow = 1'000'000;

client::OrderInfo OpenOrder(uint64_t id, uint32_t gpus, uint64_t max_price) {
  client::OrderInfo o;
  o.order_id = id;
  o.tenant = crypto::AddressToString(testing::TestAddress("tenant"));
  o.state = "open";
  o.window_end_ms = kNow + 60'000;
  o.requirements.machines = 1;
  o.requirements.gpus_per_machine = gpus;
  o.max_price_ugpn_per_gpu_hour = max_price;
  o.providers.max_fault_rate_ppm = base::limits::kFaultRatePpmAny;
  return o;
}

BidderInput FourFreeH100s() {
  BidderInput in;
  in.provider = testing::TestAddress("provider");
  in.provider_info.region = "eu-west";
  in.provider_info.bond_ugpn = 1'000;
  in.machine.machine_id = 7;
  in.machine.gpu_model = "H100";
  in.machine.gpu_count = 4;
  in.machine.vram_gib = 80;
  in.machine.cuda_version = 12040;
  in.site.fabric = "infiniband";
  in.free_healthy_gpus = 4;
  in.now_ms = kNow;
  return in;
}

client::BiddingConfig Policy(uint64_t floor, uint32_t undercut_bp) {
  client::BiddingConfig p;
  p.enabled = true;
  p.floor_ugpn_per_gpu_hour["H100"] = floor;
  p.undercut_bp = undercut_bp;
  return p;
}

TEST(Bidder, BidsUnderTheMaxPriceNeverUnderTheFloorWithThisMachine) {
  BidderInput in = FourFreeH100s();
  in.open_orders = {OpenOrder(1, 2, 3'000'000), OpenOrder(2, 2, 1'000'000)};
  BidPlan plan = PlanBids(in, Policy(2'000'000, 1'000));  // 10% under
  ASSERT_EQ(plan.create.size(), 1u);                      // order 2: 900'000 is under the floor
  EXPECT_EQ(plan.create[0].order_id, 1u);
  EXPECT_EQ(plan.create[0].price_ugpn_per_gpu_hour, 2'700'000u);
  EXPECT_EQ(plan.create[0].machine_ids, (std::vector<uint32_t>{7}));
  EXPECT_EQ(plan.create[0].provider, in.provider);
  EXPECT_TRUE(plan.withdraw.empty());
}

TEST(Bidder, BidPriceHandlesHugeMaxPricesAndUnlistedModels) {
  const uint64_t max = UINT64_MAX;
  EXPECT_EQ(BidPrice(Policy(1, 0), "H100", max), max);
  EXPECT_LT(BidPrice(Policy(1, 5'000), "H100", max), max);
  EXPECT_GT(BidPrice(Policy(1, 5'000), "H100", max), max / 2 - 1);
  EXPECT_EQ(BidPrice(Policy(1, 0), "A100", 5'000), 0u);       // no floor: no bid
  EXPECT_EQ(BidPrice(Policy(1, 10'000), "H100", 5'000), 0u);  // all undercut: 0
}

TEST(Bidder, NeverBidsTwiceOnAnOrder) {
  BidderInput in = FourFreeH100s();
  in.open_orders = {OpenOrder(1, 1, 3'000'000)};
  in.own_bids = {{.bid_id = 9, .order_id = 1, .machine_ids = {7}}};
  EXPECT_TRUE(PlanBids(in, Policy(1, 0)).create.empty());
}

TEST(Bidder, SkipsOrdersThisMachineCannotServe) {
  BidderInput in = FourFreeH100s();
  std::vector<client::OrderInfo> orders;
  auto add = [&](auto change) {
    client::OrderInfo o = OpenOrder(orders.size() + 1, 1, 3'000'000);
    change(o);
    orders.push_back(o);
  };
  add([](auto& o) { o.requirements.machines = 2; });
  add([](auto& o) { o.requirements.gpus_per_machine = 5; });
  add([](auto& o) { o.requirements.gpu_models = {"A100"}; });
  add([](auto& o) { o.requirements.min_vram_gib = 141; });
  add([](auto& o) { o.requirements.min_cuda_version = 12080; });
  add([](auto& o) { o.requirements.region = "us-east"; });
  add([](auto& o) { o.requirements.fabric = "roce"; });
  add([](auto& o) { o.requirements.attributes = {{"tier", "3"}}; });
  add([](auto& o) { o.providers.min_bond_ugpn = 2'000; });
  add([](auto& o) {
    o.providers.excluded = {crypto::AddressToString(testing::TestAddress("provider"))};
  });
  add([](auto& o) { o.window_end_ms = kNow; });
  add([](auto& o) { o.state = "awarded"; });
  in.open_orders = orders;
  for (const auto& o : orders)
    EXPECT_TRUE(o.state != "open" || o.window_end_ms <= kNow || !WhyNotServe(in, o).empty())
        << o.order_id;
  EXPECT_TRUE(PlanBids(in, Policy(1, 0)).create.empty());
  // The same orders with the one thing changed back are bid on: the checks are what refused.
  in.open_orders.push_back(OpenOrder(100, 4, 3'000'000));
  in.open_orders.back().requirements.gpu_models = {"A100", "H100"};
  in.open_orders.back().requirements.fabric = "infiniband";
  in.open_orders.back().requirements.region = "eu-west";
  ASSERT_EQ(PlanBids(in, Policy(1, 0)).create.size(), 1u);
}

TEST(Bidder, RefusesWithTheLedgersOwnRulesAndReasons) {
  BidderInput in = FourFreeH100s();
  client::OrderInfo o = OpenOrder(1, 2, 3'000'000);
  o.requirements.gpu_models = {"H200", "A100"};  // the node's order, not sorted
  EXPECT_EQ(WhyNotServe(in, o), "machine 7: model H100 is not accepted");
  o.requirements.gpu_models = {"H200", "H100"};
  EXPECT_EQ(WhyNotServe(in, o), "");
  o.requirements.fabric = "roce";
  EXPECT_EQ(WhyNotServe(in, o), "machine 7: site fabric does not match");
  o.requirements.fabric = "any";
  // The fault rate is the ledger's, from completed leases and faults (1 in 4).
  in.provider_info.leases_completed = 3;
  in.provider_info.faults = 1;
  o.providers.max_fault_rate_ppm = 249'999;
  EXPECT_EQ(WhyNotServe(in, o), "provider " + crypto::AddressToString(in.provider) +
                                    " has a fault rate of 250000 ppm, the order allows 249999");
  o.providers.max_fault_rate_ppm = 250'000;
  EXPECT_EQ(WhyNotServe(in, o), "");
  // The provider's own tenant policy, as the ledger reads it.
  const std::string tenant = o.tenant;
  in.provider_info.policy_deny = {tenant};
  EXPECT_EQ(WhyNotServe(in, o), "provider " + crypto::AddressToString(in.provider) +
                                    "'s policy does not admit " + tenant);
  in.provider_info.policy_deny.clear();
  in.provider_info.policy_allow = {crypto::AddressToString(testing::TestAddress("someone"))};
  EXPECT_NE(WhyNotServe(in, o), "");
  in.provider_info.policy_allow.push_back(tenant);
  EXPECT_EQ(WhyNotServe(in, o), "") << "an allow list in the node's order, not sorted";
  in.provider_info.policy_allow = {};
  // The ledger's rules pass, this daemon's own do not: two of four GPUs are busy.
  in.free_healthy_gpus = 1;
  EXPECT_EQ(WhyNotServe(in, o), "not enough free healthy GPUs");
}

client::BidInfo Bid(uint64_t bid_id, uint64_t order_id) {
  return {.bid_id = bid_id, .order_id = order_id, .machine_ids = {7}};
}

TEST(Bidder, OwnBidsAreReadOnlyForOrdersWhoseBidsChanged) {
  OwnBids own;
  std::vector<uint64_t> fetched;
  std::map<uint64_t, std::vector<client::BidInfo>> ledger{{1, {Bid(11, 1)}}, {2, {}}};
  auto fetch = [&](uint64_t order_id) -> base::Result<std::vector<client::BidInfo>> {
    fetched.push_back(order_id);
    return ledger[order_id];
  };
  std::vector<client::OrderInfo> orders{OpenOrder(1, 1, 1), OpenOrder(2, 1, 1), OpenOrder(3, 1, 1)};
  orders[0].bids = 1;
  orders[1].bids = 2;  // two other providers' bids
  orders[2].bids = 0;  // no bids: never read
  auto first = own.Update(orders, fetch);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].bid_id, 11u);
  EXPECT_EQ(fetched, (std::vector<uint64_t>{1, 2}));
  // The next block, nothing changed: nothing is read, the same bids come back.
  fetched.clear();
  auto second = own.Update(orders, fetch);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->size(), 1u);
  EXPECT_TRUE(fetched.empty());
  // Order 2 got another bid, and this daemon bid on order 3 (Forget): only those.
  orders[1].bids = 3;
  orders[2].bids = 1;
  ledger[3] = {Bid(12, 3)};
  own.Forget(3);
  auto third = own.Update(orders, fetch);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(fetched, (std::vector<uint64_t>{2, 3}));
  ASSERT_EQ(third->size(), 2u);
  EXPECT_EQ((*third)[1].bid_id, 12u);
  // A failed read is an error, and what was read stays cached.
  fetched.clear();
  orders[0].bids = 2;
  auto failing = [&](uint64_t order_id) -> base::Result<std::vector<client::BidInfo>> {
    fetched.push_back(order_id);
    return base::Fail(base::ErrorCode::kUnavailable, "node down");
  };
  EXPECT_FALSE(own.Update(orders, failing).has_value());
  fetched.clear();
  orders[0].bids = 1;
  auto after = own.Update(orders, fetch);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(fetched.empty()) << "order 1's bids were cached before the failed read";
  EXPECT_EQ(after->size(), 2u);
  // An order no longer open leaves the cache: open again (it cannot, but the
  // cache does not assume it), it is read again.
  auto closed = own.Update({orders[1]}, fetch);
  ASSERT_TRUE(closed.has_value());
  EXPECT_TRUE(closed->empty());
  fetched.clear();
  ASSERT_TRUE(own.Update(orders, fetch).has_value());
  EXPECT_EQ(fetched, (std::vector<uint64_t>{1, 3}));
}

TEST(Bidder, WithdrawsBidsWhoseGpusWentElsewhere) {
  BidderInput in = FourFreeH100s();
  in.free_healthy_gpus = 1;  // a lease from an offer took three
  in.open_orders = {OpenOrder(1, 2, 3'000'000), OpenOrder(2, 1, 3'000'000),
                    OpenOrder(3, 2, 3'000'000)};
  in.open_orders[2].window_end_ms = kNow;  // past its window: the ledger refuses a withdrawal
  in.own_bids = {{.bid_id = 11, .order_id = 1, .machine_ids = {7}},
                 {.bid_id = 12, .order_id = 2, .machine_ids = {7}},
                 {.bid_id = 13, .order_id = 3, .machine_ids = {7}},
                 {.bid_id = 14, .order_id = 1, .machine_ids = {8}}};
  BidPlan plan = PlanBids(in, Policy(1, 0));
  EXPECT_EQ(plan.withdraw, (std::vector<uint64_t>{11}));
  EXPECT_TRUE(plan.create.empty());
}

TEST(Bidder, DrainingWithdrawsEveryBidAndBidsOnNothing) {
  BidderInput in = FourFreeH100s();
  in.draining = true;
  in.open_orders = {OpenOrder(1, 1, 3'000'000), OpenOrder(2, 1, 3'000'000)};
  in.own_bids = {{.bid_id = 11, .order_id = 1, .machine_ids = {7}}};
  EXPECT_EQ(PlanBids(in, Policy(1, 0)), (BidPlan{{}, {11}}));
}

TEST(Bidder, BiddingOffSendsNoBids) {
  BidderInput in = FourFreeH100s();
  in.open_orders = {OpenOrder(1, 1, 3'000'000)};
  client::BiddingConfig off = Policy(1, 0);
  off.enabled = false;
  EXPECT_TRUE(PlanBids(in, off).create.empty());
}

TEST(Bidder, FreeHealthyGpusCountsHealthyUnleasedOnesUpToWhatIsSold) {
  nlohmann::json status = {{"gpus",
                            {{{"uuid", "a"}, {"healthy", true}, {"lease_id", 0}},
                             {{"uuid", "b"}, {"healthy", true}, {"lease_id", 4}},
                             {{"uuid", "c"}, {"healthy", false}, {"lease_id", 0}},
                             {{"uuid", "d"}, {"healthy", true}, {"lease_id", 0}}}}};
  EXPECT_EQ(FreeHealthyGpus(status, 4), 2u);
  EXPECT_EQ(FreeHealthyGpus(status, 2), 1u);  // sells 2, one is leased
  EXPECT_EQ(FreeHealthyGpus(status, 1), 0u);
  EXPECT_EQ(FreeHealthyGpus(nlohmann::json::object(), 4), 0u);
}

}  // namespace
}  // namespace gpunet::provider
