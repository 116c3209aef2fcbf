#include "provider/bidder.h"

#include <gtest/gtest.h>

#include "crypto/address.h"
#include "util/keys.h"

namespace gpunet::provider {
namespace {

constexpr uint64_t kNow = 1'000'000;

client::OrderInfo OpenOrder(uint64_t id, uint32_t gpus, uint64_t max_price) {
  client::OrderInfo o;
  o.order_id = id;
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
