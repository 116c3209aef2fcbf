#include "client/topup.h"

#include <gtest/gtest.h>

namespace gpunet::client {
namespace {

constexpr uint64_t kMin = 60'000;
constexpr uint64_t kHour = 3'600'000;
constexpr uint64_t kT0 = 1'800'000'000'000;  // started_ms

LeaseInfo Started(uint64_t paid_ms, uint64_t rate = 2'000'000) {
  LeaseInfo l;
  l.lease_id = 7;
  l.state = "started";
  l.end = "none";
  l.started_ms = kT0;
  l.paid_until_ms = kT0 + paid_ms;
  l.rate_ugpn_per_hour = rate;
  l.deposited_ugpn = rate * paid_ms / kHour;
  return l;
}

TEST(FundsWarning, TenMinutesOrATenthThenOneMinute) {
  const LeaseInfo l = Started(10 * kHour);
  const uint64_t end = l.paid_until_ms;
  EXPECT_EQ(FundsWarningLevel(l, end - 10 * kMin - 1, 0), 0);
  EXPECT_EQ(FundsWarningLevel(l, end - 10 * kMin, 0), 1);
  EXPECT_EQ(FundsWarningLevel(l, end - kMin - 1, 0), 1);
  EXPECT_EQ(FundsWarningLevel(l, end - kMin, 0), 2);
  EXPECT_EQ(FundsWarningLevel(l, end + 5, 0), 2);
  // A 30 s lease: a tenth (3 s) is the only threshold, no one-minute warning.
  const LeaseInfo s = Started(30'000);
  EXPECT_EQ(FundsWarningLevel(s, s.started_ms + 26'999, 0), 0);
  EXPECT_EQ(FundsWarningLevel(s, s.started_ms + 27'000, 0), 1);
  EXPECT_EQ(FundsWarningLevel(s, s.paid_until_ms, 0), 1);
  LeaseInfo reserved = l;
  reserved.state = "reserved";
  EXPECT_EQ(FundsWarningLevel(reserved, end, 0), 0);
}

// The warnings count to the SIGTERM (the stop grace before the end): a deposit after
// it does not save the workload, so they say to deposit before it.
TEST(FundsWarning, ComeTheGraceEarlierAndSayToDepositBeforeTheSigterm) {
  const LeaseInfo l = Started(10 * kHour);
  const uint64_t end = l.paid_until_ms, grace = 30'000;
  EXPECT_EQ(FundsWarningLevel(l, end - grace - 10 * kMin - 1, grace), 0);
  EXPECT_EQ(FundsWarningLevel(l, end - grace - 10 * kMin, grace), 1);
  EXPECT_EQ(FundsWarningLevel(l, end - grace - kMin - 1, grace), 1);
  EXPECT_EQ(FundsWarningLevel(l, end - grace - kMin, grace), 2);
  FundsWarner w(StopGrace{grace, true});
  auto first = w.Check(l, end - grace - 9 * kMin);
  ASSERT_TRUE(first);
  EXPECT_NE(first->text.find("deposit before " + UtcTimeText(end - grace)), std::string::npos)
      << first->text;
  EXPECT_NE(first->text.find("its stop grace (30 s)"), std::string::npos) << first->text;
  // Past the SIGTERM, it no longer says to deposit.
  const std::string late = FundsWarningText(l, end - 10'000, true, {grace, true});
  EXPECT_EQ(late.find("gpunet lease deposit"), std::string::npos) << late;
  EXPECT_NE(late.find("no longer saves it"), std::string::npos) << late;
  // A client that does not know the manifest assumes the most a manifest may ask.
  FundsWarner unknown;
  EXPECT_FALSE(unknown.Check(l, end - 5 * kMin - 10 * kMin - 1));
  auto guessed = unknown.Check(l, end - 5 * kMin - 10 * kMin);
  ASSERT_TRUE(guessed);
  EXPECT_NE(guessed->text.find("deposit before " + UtcTimeText(end - 5 * kMin)), std::string::npos)
      << guessed->text;
  EXPECT_NE(guessed->text.find("at most 5 min"), std::string::npos) << guessed->text;
}

TEST(LateDepositText, WarnsOnlyWithinTheGrace) {
  const LeaseInfo l = Started(kHour);
  const uint64_t end = l.paid_until_ms;
  EXPECT_FALSE(LateDepositText(l, end - 5 * kMin - 1, {}));
  const auto late = LateDepositText(l, end - 5 * kMin, {});
  ASSERT_TRUE(late);
  EXPECT_NE(late->find("funds_ending"), std::string::npos) << *late;
  EXPECT_NE(late->find("keeps billing"), std::string::npos) << *late;
  EXPECT_FALSE(LateDepositText(l, end - 11'000, {10'000, true}));
  EXPECT_TRUE(LateDepositText(l, end - 10'000, {10'000, true}));
  LeaseInfo reserved = l;
  reserved.state = "reserved";
  EXPECT_FALSE(LateDepositText(reserved, end, {}));
}

TEST(FundsWarning, OncePerLevelAndADepositRearmsIt) {
  LeaseInfo l = Started(2 * kHour);
  FundsWarner w(StopGrace{0, true});
  EXPECT_FALSE(w.Check(l, l.paid_until_ms - 11 * kMin));
  auto first = w.Check(l, l.paid_until_ms - 9 * kMin);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->last);
  EXPECT_EQ(first->lease_id, 7u);
  EXPECT_NE(first->text.find("gpunet lease deposit 7"), std::string::npos);
  EXPECT_FALSE(w.Check(l, l.paid_until_ms - 5 * kMin));
  auto last = w.Check(l, l.paid_until_ms - 30'000);
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->last);
  EXPECT_FALSE(w.Check(l, l.paid_until_ms - 10'000));
  const uint64_t now = l.paid_until_ms - 10'000;
  l.paid_until_ms += kHour;  // a deposit
  EXPECT_FALSE(w.Check(l, now));
  EXPECT_TRUE(w.Check(l, l.paid_until_ms - 9 * kMin));
}

TEST(DecideWatch, TopsUpAnHourWithinTenMinutesNeverPastTheCap) {
  LeaseInfo l = Started(kHour, 2'000'000);
  WatchInput in{&l, l.paid_until_ms - 11 * kMin, 5'000'000, 0, false, false};
  EXPECT_EQ(DecideWatch(in).action, WatchAction::kWait);
  in.now_ms = l.paid_until_ms - 10 * kMin;
  auto d = DecideWatch(in);
  EXPECT_EQ(d.action, WatchAction::kDeposit);
  EXPECT_EQ(d.deposit_ugpn, 2'000'000u);
  in.topped_up_ugpn = 4'000'000;  // what is left of the cap
  d = DecideWatch(in);
  EXPECT_EQ(d.action, WatchAction::kDeposit);
  EXPECT_EQ(d.deposit_ugpn, 1'000'000u);
  in.topped_up_ugpn = 5'000'000;  // the cap is used up
  d = DecideWatch(in);
  EXPECT_EQ(d.action, WatchAction::kWait);
  EXPECT_NE(d.why.find("cap"), std::string::npos);
  in.topped_up_ugpn = 0;
  in.cap_ugpn = 0;  // no auto top-up
  EXPECT_EQ(DecideWatch(in).action, WatchAction::kWait);
  in.cap_ugpn = 5'000'000;
  in.now_ms = l.paid_until_ms;  // ended: the ledger refuses a deposit now
  EXPECT_EQ(DecideWatch(in).action, WatchAction::kWait);
}

// A top-up whose tx timed out may still commit: it counts against the cap until the
// node shows it failed, so a late commit never takes the top-up past its cap.
TEST(TopupTally, ATimedOutDepositCountsUntilTheNodeSaysItFailed) {
  const uint64_t rate = 2'000'000, cap = 3'000'000;
  const LeaseInfo l = Started(kHour, rate);
  const uint64_t now = l.paid_until_ms - 5 * kMin;
  TopupTally tally;
  auto d = DecideWatch({&l, now, cap, tally.CountedUgpn(), false, false});
  ASSERT_EQ(d.action, WatchAction::kDeposit);
  EXPECT_EQ(d.deposit_ugpn, rate);
  tally.Uncertain("aa", d.deposit_ugpn);  // the wait timed out
  // The ledger does not show it yet: the next tick tops up only what the cap leaves.
  d = DecideWatch({&l, now + 1000, cap, tally.CountedUgpn(), false, false});
  ASSERT_EQ(d.action, WatchAction::kDeposit);
  EXPECT_EQ(d.deposit_ugpn, cap - rate);
  tally.Committed(d.deposit_ugpn);
  EXPECT_EQ(tally.CountedUgpn(), cap);
  EXPECT_EQ(tally.CommittedUgpn(), cap - rate);
  EXPECT_EQ(DecideWatch({&l, now + 2000, cap, tally.CountedUgpn(), false, false}).deposit_ugpn, 0u);
  EXPECT_EQ(tally.UncertainTxs(), std::vector<std::string>{"aa"});
  // Included and failed: it deposited nothing, the cap has room again.
  TopupTally failed = tally;
  failed.Resolved("aa", 5);
  EXPECT_EQ(failed.CountedUgpn(), cap - rate);
  EXPECT_TRUE(failed.UncertainTxs().empty());
  // Included and succeeded: committed.
  tally.Resolved("aa", 0);
  tally.Resolved("bb", 0);  // unknown: ignored
  EXPECT_EQ(tally.CommittedUgpn(), cap);
  EXPECT_EQ(tally.CountedUgpn(), cap);
  EXPECT_TRUE(tally.UncertainTxs().empty());
}

TEST(DecideWatch, TheOffersMaxHoursLimitsTheTopUp) {
  LeaseInfo l = Started(kHour, 2'000'000);
  l.max_hours = 1;  // deposited 1 h already
  WatchInput in{&l, l.paid_until_ms - kMin, 10'000'000, 0, false, false};
  auto d = DecideWatch(in);
  EXPECT_EQ(d.action, WatchAction::kWait);
  EXPECT_NE(d.why.find("max"), std::string::npos);
  l.max_hours = 2;
  l.deposited_ugpn = 3'000'000;  // 1.5 h deposited: room for half an hour
  d = DecideWatch(in);
  EXPECT_EQ(d.action, WatchAction::kDeposit);
  EXPECT_EQ(d.deposit_ugpn, 1'000'000u);
}

TEST(DecideWatch, ClosesOnExitAndIsDoneWhenClosed) {
  LeaseInfo l = Started(kHour);
  WatchInput in{&l, l.started_ms + kMin, 0, 0, true, true};
  EXPECT_EQ(DecideWatch(in).action, WatchAction::kClose);
  in.close_on_exit = false;
  EXPECT_EQ(DecideWatch(in).action, WatchAction::kWait);
  l.state = "closed";
  l.end = "expired";
  l.closed_ms = l.paid_until_ms;
  auto d = DecideWatch(in);
  EXPECT_EQ(d.action, WatchAction::kDone);
  EXPECT_NE(d.why.find("lease 7 closed: its funds ran out at"), std::string::npos);
  EXPECT_NE(d.why.find("(expired)"), std::string::npos);
}

TEST(LeaseClosedText, SaysWhyForEachEnd) {
  LeaseInfo l = Started(kHour);
  l.state = "closed";
  l.closed_ms = l.started_ms + kMin;
  for (const auto& [end, words] : std::initializer_list<std::pair<const char*, const char*>>{
           {"tenant_closed", "the tenant closed it"},
           {"provider_closed", "the provider closed it"},
           {"no_manifest", "no manifest"},
           {"missed_start", "never started"},
           {"missed_heartbeat", "fault"}}) {
    l.end = end;
    const std::string text = LeaseClosedText(l);
    EXPECT_NE(text.find(words), std::string::npos) << text;
    EXPECT_NE(text.find(std::string("(") + end + ")"), std::string::npos) << text;
  }
  EXPECT_EQ(UtcTimeText(0), "1970-01-01 00:00:00 UTC");
}

}  // namespace
}  // namespace gpunet::client
