#include "client/run_plan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "client/task.h"

namespace gpunet::client {
namespace {

Task RunTask(std::string_view resources) {
  auto t = ParseTask("resources: " + std::string(resources) + "\nrun: echo hi\n", "task.yaml", ".");
  EXPECT_TRUE(t.has_value()) << t.error().message;
  return *t;
}

OfferView Offer(std::string id, std::string model, uint32_t gpus, uint32_t free,
                uint64_t price_ugpn) {
  OfferView o;
  o.id = std::move(id);
  o.provider = "gpn1p" + o.id;
  o.gpu_model = std::move(model);
  o.gpus = gpus;
  o.gpus_free = free;
  o.vram_gb = 80;
  o.price_ugpn_per_gpu_hour = price_ugpn;
  o.region = "eu-west";
  o.fabric = "ethernet";
  o.machines = 1;
  return o;
}

TEST(RunPlan, FittingOffersCheapestFirstWithoutPrivateOnes) {
  const Task t = RunTask("{gpus: H100:2, max_price: 3}");
  OfferView hidden = Offer("4", "H100", 8, 8, 500'000);
  hidden.is_private = true;
  const auto fits =
      FittingOffers(t, {Offer("1", "H100", 8, 8, 3'000'000), hidden,
                        Offer("2", "H100", 8, 8, 2'000'000), Offer("3", "A100", 8, 8, 1'000'000)});
  ASSERT_EQ(fits.size(), 2u);
  EXPECT_EQ(fits[0].id, "2");
  EXPECT_EQ(fits[1].id, "1");
}

TEST(RunPlan, NoFitNamesTheRequirementOfTheNearestOffers) {
  const Task t = RunTask("{gpus: H100:2, max_price: 3}");
  // Three H100 offers too dear, one cheap enough with one free GPU, and an A100 offer
  // that misses two requirements (model and price): not among the nearest.
  const std::vector<OfferView> offers{
      Offer("1", "H100", 8, 8, 4'000'000), Offer("2", "H100", 8, 8, 5'000'000),
      Offer("3", "H100", 8, 8, 4'500'000), Offer("4", "H100", 2, 1, 2'000'000),
      Offer("5", "A100", 8, 8, 9'000'000)};
  ASSERT_TRUE(FittingOffers(t, offers).empty());
  const std::string why = ExplainNoFit(t, offers);
  EXPECT_NE(why.find("1 offer fits the price but has at most 1 free GPU(s) < 2 needed"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("3 offers have H100 GPUs but cost from 4 GPN/GPU-h > max_price 3"),
            std::string::npos)
      << why;
  EXPECT_EQ(why.find("A100"), std::string::npos) << why;
}

TEST(RunPlan, NoFitOtherRequirements) {
  const Task t = RunTask("{gpus: H100:1, max_price: 3, region: us, min_cuda: \"12.4\"}");
  OfferView o = Offer("1", "H100", 8, 8, 1'000'000);
  o.cuda = {12, 4, 0};
  EXPECT_NE(ExplainNoFit(t, {o}).find("is in eu-west, not region us"), std::string::npos)
      << ExplainNoFit(t, {o});
  o.region = "us-east";
  o.cuda = {12, 1, 0};
  EXPECT_NE(ExplainNoFit(t, {o}).find("has CUDA 12.1 < min_cuda 12.4"), std::string::npos)
      << ExplainNoFit(t, {o});
  EXPECT_EQ(ExplainNoFit(t, {}), "no offers on the market");
  o.is_private = true;
  EXPECT_NE(ExplainNoFit(t, {o}).find("private"), std::string::npos);
}

TEST(RunPlan, OfferDepositCoversTheMostOfTheHours) {
  const Task t = RunTask("{gpus: 2, max_price: 3, hours: 2}");
  market::Params params;
  params.deposit_min_hours = 1;
  EXPECT_EQ(*OfferDepositUgpn(t, 1'500'000, 0, params), 2u * 1'500'000 * 2);
  EXPECT_EQ(*OfferDepositUgpn(t, 1'500'000, 5, params), 2u * 1'500'000 * 5);  // the offer's
  params.deposit_min_hours = 3;
  EXPECT_EQ(*OfferDepositUgpn(t, 1'500'000, 0, params), 2u * 1'500'000 * 3);  // the chain's
  EXPECT_FALSE(OfferDepositUgpn(t, UINT64_MAX / 2, 0, params).has_value());
}

TEST(RunPlan, BidWindowAndBid) {
  market::Params params;
  params.bid_window_min_ms = 1000;
  params.bid_window_max_ms = 60'000;
  EXPECT_EQ(RunBidWindowMs(params), kRunBidWindowMs);
  params.bid_window_min_ms = 30'000;
  EXPECT_EQ(RunBidWindowMs(params), 30'000u);
  params.bid_window_min_ms = 100;
  params.bid_window_max_ms = 500;
  EXPECT_EQ(RunBidWindowMs(params), 500u);

  BidInfo a{.bid_id = 3, .price_ugpn_per_gpu_hour = 2'000'000};
  BidInfo b{.bid_id = 2, .price_ugpn_per_gpu_hour = 2'000'000};
  BidInfo dear{.bid_id = 1, .price_ugpn_per_gpu_hour = 4'000'000};
  EXPECT_EQ(PickBid({a, dear, b}, 3'000'000)->bid_id, 2u);  // cheapest, then older
  EXPECT_FALSE(PickBid({dear}, 3'000'000).has_value());
  EXPECT_FALSE(PickBid({}, 3'000'000).has_value());
}

TEST(RunPlan, QuoteShowsPricePerHourDepositAndTotal) {
  RunQuote q;
  q.provider = "gpn1abc";
  q.source = "offer 3";
  q.gpu_model = "H100";
  q.machines = 1;
  q.gpus_per_machine = 2;
  q.price_ugpn_per_gpu_hour = 2'500'000;
  q.deposit_ugpn = 10'000'000;
  q.hours = 2;
  q.min_charge_ugpn = 833'333;
  q.start_timeout_ms = 600'000;
  std::string all;
  for (const auto& l : QuoteLines(q)) all += l + "\n";
  EXPECT_NE(all.find("gpn1abc (offer 3)"), std::string::npos) << all;
  EXPECT_NE(all.find("1 x 2 H100 = 2 GPU(s)"), std::string::npos) << all;
  EXPECT_NE(all.find("2.5 GPN per GPU-hour, 5 GPN per hour"), std::string::npos) << all;
  EXPECT_NE(all.find("deposit     10 GPN"), std::string::npos) << all;
  EXPECT_NE(all.find("10 GPN for 2 hours"), std::string::npos) << all;
  EXPECT_NE(all.find("minimum     0.833333 GPN: a close within 10 min"), std::string::npos) << all;
}

TEST(RunPlan, Messages) {
  const std::string funds = NoFundsText("tenant", "gpn1t", 1'000'000, 3'000'000);
  EXPECT_NE(funds.find("has 1 GPN but the deposit needs 3 GPN"), std::string::npos) << funds;
  EXPECT_NE(funds.find("gpunet send FUNDED_KEY gpn1t AMOUNT"), std::string::npos) << funds;

  LeaseInfo l;
  l.lease_id = 7;
  l.provider = "gpn1p";
  l.rate_ugpn_per_hour = 3'000'000;
  l.deposited_ugpn = 3'000'000;
  l.start_deadline_ms = 70'000;
  market::Params params;
  const std::string missed = MissedStartText(l, params, 10'000);
  EXPECT_NE(missed.find("has not started lease 7"), std::string::npos) << missed;
  EXPECT_NE(missed.find("in 1 min"), std::string::npos) << missed;
  EXPECT_NE(missed.find("the whole deposit 3 GPN comes back"), std::string::npos) << missed;
  EXPECT_NE(missed.find("waits"), std::string::npos) << missed;

  l.paid_ugpn = 1'000'000;
  l.refunded_ugpn = 2'000'000;
  l.started_ms = 1000;
  l.closed_ms = 1000 + 3'600'000;  // an hour of 1 GPN: all of it GPU time
  l.rate_ugpn_per_hour = 1'000'000;
  EXPECT_EQ(SettlementText(l),
            "paid 1 GPN to the provider, refunded 2 GPN of the 3 GPN deposited (ran 1 h)");
  l.closed_ms = 1000 + 36'000;  // 36 s: 0.01 GPN of GPU time, the rest the close charge
  EXPECT_EQ(SettlementText(l),
            "paid 1 GPN to the provider, refunded 2 GPN of the 3 GPN deposited (ran 36 s; 0.01 "
            "GPN of it for GPU time, the rest the charge of a close within the start timeout)");

  EXPECT_NE(UploadOverDiskText(5, "the lease's disk is full").find(".gpunetignore"),
            std::string::npos);
}

TEST(RunPlan, KeepOrClose) {
  EXPECT_EQ(ParseKeepOrClose("k\n"), 'k');
  EXPECT_EQ(ParseKeepOrClose(" close "), 'c');
  EXPECT_EQ(ParseKeepOrClose("C"), 'c');
  EXPECT_FALSE(ParseKeepOrClose("x").has_value());
  EXPECT_FALSE(ParseKeepOrClose("").has_value());
}

TEST(RunPlan, ComeBackSaysWhatNeedsAWatcher) {
  Task t = RunTask("{gpus: 1, max_price: 3}");
  std::string all;
  for (const auto& l : ComeBackLines(t, 9)) all += l + "\n";
  EXPECT_NE(all.find("gpunet lease close 9"), std::string::npos) << all;
  EXPECT_NE(all.find("close_on_exit now needs `gpunet lease watch 9`"), std::string::npos) << all;
  EXPECT_NE(all.find("gpunet logs 9 -f"), std::string::npos) << all;
  t.auto_topup_cap_ugpn = 5;
  all.clear();
  for (const auto& l : ComeBackLines(t, 9)) all += l + "\n";
  EXPECT_NE(all.find("auto_topup and close_on_exit"), std::string::npos) << all;
}

TEST(RunPlan, ComeBackToAnInteractiveMachineSaysHowToReachIt) {
  Task t = RunTask("{gpus: 1, max_price: 3}");
  t.run.clear();
  std::string all;
  for (const auto& l : ComeBackLines(t, 9)) all += l + "\n";
  for (const char* verb : {"gpunet shell 9", "gpunet exec 9", "gpunet ssh-config 9",
                           "gpunet forward 9 PORT[:LOCAL]", "gpunet lease close 9"})
    EXPECT_NE(all.find(verb), std::string::npos) << verb << " in\n" << all;
  EXPECT_EQ(all.find("close_on_exit"), std::string::npos) << all;
  t.ports = {8888, 6006};
  all.clear();
  for (const auto& l : ComeBackLines(t, 9)) all += l + "\n";
  EXPECT_NE(all.find("gpunet forward 9 8888 "), std::string::npos) << all;
  EXPECT_NE(all.find("gpunet forward 9 6006 "), std::string::npos) << all;
  EXPECT_EQ(all.find("PORT[:LOCAL]"), std::string::npos) << all;
}

TEST(RunPlan, TimingsLine) {
  RunTimings t{.lease_committed_ms = 1,
               .provider_noticed_ms = 2,
               .manifest_accepted_ms = 3,
               .sandbox_started_ms = 4,
               .first_output_ms = 5};
  EXPECT_EQ(TimingsLine(t),
            "timings lease_committed_ms=1 provider_noticed_ms=2 manifest_accepted_ms=3 "
            "sandbox_started_ms=4 first_output_ms=5");
}

TEST(RunPlan, OutputSelected) {
  EXPECT_TRUE(OutputSelected("anything/x", {""}));
  EXPECT_TRUE(OutputSelected("ckpt/model.pt", {"ckpt", "loss.csv"}));
  EXPECT_TRUE(OutputSelected("loss.csv", {"ckpt", "loss.csv"}));
  EXPECT_TRUE(OutputSelected("ckpt", {"ckpt/"}));
  EXPECT_FALSE(OutputSelected("ckpt2/model.pt", {"ckpt", "loss.csv"}));
  EXPECT_FALSE(OutputSelected("other.txt", {"ckpt"}));
}

}  // namespace
}  // namespace gpunet::client
