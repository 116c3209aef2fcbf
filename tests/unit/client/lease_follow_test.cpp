#include "client/lease_follow.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "client/tenant_transfer.h"

namespace gpunet::client {
namespace {

/// A provider whose logs hold `out` and `err`, sent in pieces of `piece` bytes, and
/// which fails every other request (a daemon that keeps restarting) when `flaky`.
class FakeProvider {
 public:
  std::string out = "line-1\nline-2\nline-3\nline-4\nline-5\n";
  std::string err = "warning: one\nwarning: two\n";
  size_t piece = 12;
  bool flaky = false;
  bool down = false;  ///< every request fails
  bool hang = false;  ///< logs requests wait (a long-poll with nothing new) until `release`
  std::atomic<bool> release{false};
  int status = 200;  ///< the answer of every logs request (403: a stranger)
  std::string workload = R"({"workload":{"state":"exited","exit_code":3,"reason":"exited"}})";
  LeaseInfo lease;

  FakeProvider() {
    lease.lease_id = 7;
    lease.state = "started";
    lease.started_ms = 1;
    lease.paid_until_ms = UINT64_MAX / 2;
  }

  FollowSource Source() {
    FollowSource s;
    s.get = [this](const std::string& target) { return Get(target); };
    s.lease = [this]() -> base::Result<LeaseInfo> {
      std::lock_guard lock(m_mu);
      return lease;
    };
    return s;
  }

  base::Result<TenantResponse> GetForTest(const std::string& target) { return Get(target); }

 private:
  base::Result<TenantResponse> Get(const std::string& target) {
    while (hang && !release && target != "/leases/7")
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard lock(m_mu);
    if (down || (flaky && (++m_calls % 2) == 0))
      return base::Fail(base::ErrorCode::kUnavailable, "connection refused");
    TenantResponse r;
    if (target == "/leases/7") {
      r.status = 200;
      r.body = workload;
      return r;
    }
    r.status = status;
    if (status != 200) return r;
    const bool is_err = target.find("stream=stderr") != std::string::npos;
    const std::string& all = is_err ? err : out;
    const size_t at = target.find("offset=") + 7;
    const uint64_t offset = std::stoull(target.substr(at));
    r.body = all.substr(std::min<size_t>(offset, all.size()), piece);
    r.headers.push_back({"Gpunet-Next-Offset", std::to_string(offset + r.body.size())});
    if (offset + r.body.size() >= all.size()) r.headers.push_back({"Gpunet-Ended", "1"});
    return r;
  }
  std::mutex m_mu;
  int m_calls = 0;
};

struct Seen {
  std::string out, err;
  std::vector<std::string> notices;
  FollowCallbacks Callbacks() {
    FollowCallbacks cb;
    cb.data = [this](LogStream s, std::string_view b) {
      (s == LogStream::kStdout ? out : err) += std::string(b);
    };
    cb.notice = [this](std::string_view line) { notices.emplace_back(line); };
    return cb;
  }
};

FollowOptions Options() {
  FollowOptions o;
  o.lease_id = 7;
  o.wait_ms = 0;
  o.ledger_every_ms = 50;
  return o;
}

TEST(LeaseFollow, BothStreamsWholeAndOnceThroughFailuresThenTheExitCode) {
  FakeProvider p;
  p.flaky = true;
  Seen seen;
  auto end = FollowLease(p.Source(), Options(), seen.Callbacks());
  ASSERT_TRUE(end.has_value()) << end.error().message;
  EXPECT_EQ(seen.out, p.out);
  EXPECT_EQ(seen.err, p.err);
  EXPECT_EQ(end->kind, FollowEndKind::kWorkloadEnded);
  EXPECT_EQ(end->exit_code, 3);
  EXPECT_EQ(end->offsets.stdout_offset, p.out.size());
  EXPECT_EQ(end->offsets.stderr_offset, p.err.size());
  EXPECT_NE(end->message.find("exited with code 3"), std::string::npos) << end->message;
  ASSERT_FALSE(seen.notices.empty());
  EXPECT_NE(seen.notices[0].find("provider unreachable, retrying"), std::string::npos);
}

TEST(LeaseFollow, ResumesFromTheOffsetsItIsGiven) {
  FakeProvider p;
  Seen seen;
  FollowOptions o = Options();
  o.want_stderr = false;
  o.from.stdout_offset = 14;  // "line-1\nline-2\n" was shown before
  auto end = FollowLease(p.Source(), o, seen.Callbacks());
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(seen.out, p.out.substr(14));
  EXPECT_TRUE(seen.err.empty());
}

TEST(LeaseFollow, ALeaseClosedOnTheLedgerEndsItWithTheReason) {
  FakeProvider p;
  p.lease.state = "closed";
  p.lease.end = "expired";
  p.lease.closed_ms = p.lease.paid_until_ms = 1'800'000'000'000;
  p.workload = R"({"workload":{"state":"exited","exit_code":143,"reason":"stopped"}})";
  Seen seen;
  auto end = FollowLease(p.Source(), Options(), seen.Callbacks());
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(seen.out, p.out);  // drained first
  EXPECT_EQ(end->kind, FollowEndKind::kLeaseClosed);
  EXPECT_NE(end->message.find("lease 7 closed: its funds ran out at"), std::string::npos)
      << end->message;
  EXPECT_NE(end->message.find("(expired)"), std::string::npos);
}

TEST(LeaseFollow, AProviderAwayPastTheBoundEndsItAfterOneNotice) {
  FakeProvider p;
  p.down = true;
  Seen seen;
  FollowOptions o = Options();
  o.unreachable_ms = 300;
  auto end = FollowLease(p.Source(), o, seen.Callbacks());
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->kind, FollowEndKind::kUnreachable);
  EXPECT_EQ(seen.notices.size(), 1u);
  EXPECT_TRUE(seen.out.empty());
}

TEST(LeaseFollow, ACancelReturnsWithoutWaitingForALongPollInFlight) {
  auto p = std::make_shared<FakeProvider>();
  p->hang = true;
  std::atomic<bool> cancel{true};
  Seen seen;
  FollowOptions o = Options();
  o.cancel = &cancel;
  FollowSource source = p->Source();
  // The source outlives the follow here as the real one does (it holds its own
  // copies); the threads still in a request end once it returns.
  source.get = [p](const std::string& target) { return p->GetForTest(target); };
  auto end = FollowLease(source, o, seen.Callbacks());
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->kind, FollowEndKind::kCancelled);
  EXPECT_TRUE(seen.out.empty());
  p->release = true;
}

TEST(LeaseFollow, ARefusalNoRetryChangesIsAnError) {
  FakeProvider p;
  p.status = 403;
  Seen seen;
  auto end = FollowLease(p.Source(), Options(), seen.Callbacks());
  ASSERT_FALSE(end.has_value());
  EXPECT_EQ(end.error().code, base::ErrorCode::kPermissionDenied);
}

TEST(LeaseFollow, ParseWorkloadExit) {
  EXPECT_FALSE(ParseWorkloadExit(R"({"workload":{"state":"running"}})"));
  EXPECT_FALSE(ParseWorkloadExit("not json"));
  auto e = ParseWorkloadExit(R"({"workload":{"state":"exited","exit_code":2,"reason":"oom"}})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exit_code, 2);
  EXPECT_EQ(e->reason, "oom");
  // The provider's reason ends up in our end message: no escape sequence of it does.
  e = ParseWorkloadExit(
      R"({"workload":{"state":"exited","exit_code":2,"reason":"oom\u001b]52;c;ZWNobw==\u0007\r\nok"}})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->reason, "oom  ok");
}

}  // namespace
}  // namespace gpunet::client
