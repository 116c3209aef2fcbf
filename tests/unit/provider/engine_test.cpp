#include "provider/engine.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "client/tenant_transfer.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "unit/provider/engine_fakes.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

constexpr uint32_t kMachine = 1;
const std::string kManifest = R"({"command":["echo","hi"]})";

using gpunet::testing::FakeChain;
using gpunet::testing::FakeWorkloads;

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    chain.view.height = 10;
    chain.view.time_ms = 1'000'000;
    chain.view.params.manifest_timeout_ms = 60'000;
    chain.view.params.heartbeat_timeout_ms = 30'000;
  }
  /// An engine over the test's book, chain and runtime; GPUs GPU-00, GPU-01, ...
  std::unique_ptr<Engine> Make(EngineHooks hooks = {}, int gpu_count = 4,
                               std::string withdraw_mark = "") {
    auto book = LeaseBook::Open(dir.Path());
    EXPECT_TRUE(book.has_value());
    std::vector<PoolGpu> gpus;
    for (int i = 0; i < gpu_count; ++i) {
      std::string uuid = "GPU-" + std::string(i < 10 ? "0" : "") + std::to_string(i);
      gpus.push_back({uuid, "H100", {}, true, {}, 0});
    }
    EngineOptions o;
    o.provider = provider;
    o.machine_id = kMachine;
    o.withdraw_every_ms = 3'600'000;
    o.outputs_retention_ms = 3'600'000;
    o.withdraw_mark_path = std::move(withdraw_mark);
    hooks.log = [this](std::string_view line) { logs.emplace_back(line); };
    return std::make_unique<Engine>(o, std::move(hooks), chain, workloads, std::move(*book),
                                    std::move(gpus), clock);
  }
  client::LeaseInfo& AddLease(uint64_t id, uint32_t gpus, std::string state = "reserved") {
    client::LeaseInfo l;
    l.lease_id = id;
    l.provider = crypto::AddressToString(provider);
    l.allocations = {{kMachine, gpus}};
    l.gpus = gpus;
    l.state = std::move(state);
    l.manifest_hash = crypto::Blake2b256(base::AsBytes(kManifest));
    l.paid_until_ms = chain.view.time_ms + 3'600'000;
    return chain.view.leases[id] = l;
  }
  /// The tenant closes lease `id` on the ledger now.
  void TenantCloses(uint64_t id) {
    chain.view.leases[id].state = "closed";
    chain.view.leases[id].end = "tenant_closed";
    chain.view.leases[id].closed_ms = chain.view.time_ms;
  }
  /// An engine whose lease `id` (one GPU) started and runs its workload.
  std::unique_ptr<Engine> MakeRunning(uint64_t id) {
    AddLease(id, 1);
    auto engine = Make();
    engine->Reconcile();
    engine->Reconcile();
    EXPECT_TRUE(engine->SubmitManifest(id, kManifest).has_value());
    return engine;
  }
  void Advance(uint64_t ms) {
    chain.view.time_ms += ms;
    chain.view.height += 1;
    clock.AdvanceMs(static_cast<int64_t>(ms));
  }
  size_t LogsContaining(std::string_view words) const {
    return static_cast<size_t>(std::ranges::count_if(
        logs, [&](const std::string& l) { return l.find(words) != std::string::npos; }));
  }

  gpunet::testing::TempDir dir;
  codec::Address provider = gpunet::testing::TestAddress("provider");
  FakeChain chain;
  FakeWorkloads workloads;
  base::ManualClock clock{5'000};
  std::vector<std::string> logs;
};

// ---------------------------------------------------------------- NextStep

TEST(NextStep, ChoosesOneStepPerState) {
  LeaseRecord r;
  r.lease_id = 1;
  client::LeaseInfo l;
  l.state = "reserved";
  StepInput in;
  in.record = &r;
  in.ledger = &l;
  in.chain_time_ms = 1000;
  in.manifest_timeout_ms = 500;
  in.outputs_retention_ms = 100;
  EXPECT_EQ(NextStep(in), LeaseAction::kSendStarted);
  in.tenant_api_ready = false;
  EXPECT_EQ(NextStep(in), LeaseAction::kWaitTenantApi);
  in.gpu_unhealthy = true;
  EXPECT_EQ(NextStep(in), LeaseAction::kCloseUnhealthy);
  in.gpu_unhealthy = false;

  l.state = "started";
  l.started_ms = 600;
  EXPECT_EQ(NextStep(in), LeaseAction::kWaitManifest);  // deadline 1100
  r.manifest = "{}";
  EXPECT_EQ(NextStep(in), LeaseAction::kLaunchWorkload);  // crash between accept and launch
  r.manifest.clear();
  in.chain_time_ms = 1100;
  EXPECT_EQ(NextStep(in), LeaseAction::kCloseNoManifest);
  in.workload_exists = true;
  EXPECT_EQ(NextStep(in), LeaseAction::kAdoptWorkload);  // crash after Start, before the book
  r.manifest_received = true;
  EXPECT_EQ(NextStep(in), LeaseAction::kRunning);
  in.gpu_unhealthy = true;
  EXPECT_EQ(NextStep(in), LeaseAction::kCloseUnhealthy);
  in.gpu_unhealthy = false;

  l.state = "closed";
  in.workload_running = true;
  EXPECT_EQ(NextStep(in), LeaseAction::kObserveClosed);
  in.ledger = nullptr;  // the node forgot it
  EXPECT_EQ(NextStep(in), LeaseAction::kObserveClosed);
  r.end = "tenant_closed";
  r.closed_ms = 1050;
  EXPECT_EQ(NextStep(in), LeaseAction::kStopWorkload);
  in.workload_running = false;
  r.gpu_uuids = {"GPU-00"};
  EXPECT_EQ(NextStep(in), LeaseAction::kFreeGpus);  // stopped: its GPUs may go to the next
  r.gpu_uuids.clear();
  EXPECT_EQ(NextStep(in), LeaseAction::kRetain);  // until 1150
  in.chain_time_ms = 1150;
  EXPECT_EQ(NextStep(in), LeaseAction::kRelease);
  in.chain_time_ms = 1050;
  in.workload_exists = false;  // it never ran: nothing to keep, the GPUs go back at once
  EXPECT_EQ(NextStep(in), LeaseAction::kRelease);
}

// ---------------------------------------------------------------- the engine

TEST_F(EngineTest, SetsGpusAsideDurablyBeforeStartingAndStartsOnce) {
  AddLease(3, 2);
  bool book_written_first = false;
  chain.on_send = [&](const codec::Msg& m) {
    if (std::holds_alternative<codec::MsgLeaseStarted>(m))
      book_written_first = std::filesystem::exists(dir.Sub("leases/3.json"));
  };
  auto engine = Make();
  auto r = engine->Reconcile();
  EXPECT_TRUE(r.node_reachable);
  EXPECT_TRUE(book_written_first);
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 1u);
  EXPECT_EQ(chain.view.leases[3].state, "started");
  EXPECT_EQ(engine->RecordsForTest().at(3).gpu_uuids,
            (std::vector<std::string>{"GPU-00", "GPU-01"}));
  Advance(1000);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 1u);  // the ledger shows it: not again
  EXPECT_EQ(engine->RecordsForTest().at(3).started_ms, chain.view.leases[3].started_ms);
}

TEST_F(EngineTest, ALeaseOnAnotherMachineOrProviderIsNotTouched) {
  AddLease(4, 1).allocations = {{kMachine + 1, 1}};
  AddLease(5, 1).provider = crypto::AddressToString(gpunet::testing::TestAddress("other"));
  auto engine = Make();
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 0u);
  EXPECT_TRUE(engine->RecordsForTest().empty());
}

TEST_F(EngineTest, WaitsForTheTenantApiBeforeStarting) {
  AddLease(3, 1);
  bool ready = false;
  EngineHooks hooks;
  hooks.tenant_api_ready = [&](uint64_t) -> base::Status {
    if (ready) return {};
    return base::Fail(base::ErrorCode::kUnavailable, "not listening");
  };
  auto engine = Make(hooks);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 0u);
  EXPECT_EQ(engine->RecordsForTest().size(), 1u);  // GPUs already set aside
  ready = true;
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 1u);
}

TEST_F(EngineTest, ARestartedEngineNeitherStartsTwiceNorLosesItsGpus) {
  AddLease(3, 2);
  {
    auto engine = Make();
    engine->Reconcile();
  }
  AddLease(8, 2);
  auto engine = Make();
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 2u);  // lease 3 once, lease 8 once
  auto records = engine->RecordsForTest();
  EXPECT_EQ(records.at(3).gpu_uuids, (std::vector<std::string>{"GPU-00", "GPU-01"}));
  EXPECT_EQ(records.at(8).gpu_uuids, (std::vector<std::string>{"GPU-02", "GPU-03"}));
}

TEST_F(EngineTest, ARestartAfterReservingSendsTheStartItDidNotSend) {
  AddLease(3, 1);
  chain.reachable = false;  // the reservation is written, the tx cannot go out
  {
    auto engine = Make();
    EXPECT_FALSE(engine->Reconcile().node_reachable);
  }
  // Simulate: the record was written by a previous run, then the daemon died.
  LeaseRecord r;
  r.lease_id = 3;
  r.gpu_uuids = {"GPU-02"};
  r.manifest_hash = chain.view.leases[3].manifest_hash;
  ASSERT_TRUE(LeaseBook::Open(dir.Path())->Put(r).has_value());
  chain.reachable = true;
  auto engine = Make();
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 1u);
  EXPECT_EQ(engine->RecordsForTest().at(3).gpu_uuids, (std::vector<std::string>{"GPU-02"}));
}

TEST_F(EngineTest, AnAlreadyStartedAnswerCountsAsDone) {
  AddLease(3, 1);
  chain.on_send = [&](const codec::Msg& m) {
    // Someone (a previous run whose tx was in flight) started it first.
    if (std::holds_alternative<codec::MsgLeaseStarted>(m)) chain.view.leases[3].state = "started";
  };
  auto engine = Make();
  auto r = engine->Reconcile();
  EXPECT_EQ(r.txs_failed, 0u);
  EXPECT_EQ(LogsContaining("already done"), 1u);
}

TEST_F(EngineTest, ClosesWithNoManifestOnlyAfterTheManifestDeadline) {
  AddLease(3, 1);
  auto engine = Make();
  engine->Reconcile();
  Advance(59'999);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseClose>(), 0u);
  Advance(1);
  engine->Reconcile();
  ASSERT_EQ(chain.Count<codec::MsgLeaseClose>(), 1u);
  EXPECT_EQ(chain.view.leases[3].end, "no_manifest");
}

TEST_F(EngineTest, AManifestWithTheWrongHashIsRefusedAndTheRightOneStartsTheWorkload) {
  AddLease(3, 2);
  auto engine = Make();
  EXPECT_EQ(engine->SubmitManifest(3, kManifest).error().code, base::ErrorCode::kNotFound);
  engine->Reconcile();  // GPUs set aside, started on the ledger
  // The engine has not seen the start yet: a 409 that `gpunet lease submit` waits out
  // (client::SubmitTooEarly reads this message), unlike the 409 of a second manifest.
  auto early = engine->SubmitManifest(3, kManifest);
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().code, base::ErrorCode::kConflict);
  const auto answer = [](const std::string& message) {
    return nlohmann::json{{"error", {{"code", "conflict"}, {"message", message}}}}.dump();
  };
  EXPECT_TRUE(client::SubmitTooEarly(409, answer(early.error().message))) << early.error().message;
  engine->Reconcile();  // the book learns started_ms
  auto wrong = engine->SubmitManifest(3, R"({"command":["rm","-rf","/"]})");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_TRUE(workloads.started.empty());
  EXPECT_EQ(engine->SubmitManifest(99, kManifest).error().code, base::ErrorCode::kNotFound);
  ASSERT_TRUE(engine->SubmitManifest(3, kManifest).has_value());
  ASSERT_EQ(workloads.started.size(), 1u);
  EXPECT_EQ(workloads.started[0].id, "lease-3");
  EXPECT_EQ(workloads.started[0].gpu_uuids, (std::vector<std::string>{"GPU-00", "GPU-01"}));
  EXPECT_EQ(workloads.started[0].command, (std::vector<std::string>{"echo", "hi"}));
  auto second = engine->SubmitManifest(3, kManifest);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, base::ErrorCode::kConflict);
  EXPECT_FALSE(client::SubmitTooEarly(409, answer(second.error().message)));
  Advance(120'000);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseClose>(), 0u);  // it has its manifest
}

TEST(NextStep, SigtermWhenTheFundsEndWithinTheGraceOncePerPaidUntil) {
  LeaseRecord r;
  r.lease_id = 1;
  r.manifest_received = true;
  client::LeaseInfo l;
  l.state = "started";
  l.started_ms = 1000;
  l.paid_until_ms = 100'000;
  StepInput in;
  in.record = &r;
  in.ledger = &l;
  in.workload_exists = in.workload_running = true;
  in.stop_grace_ms = 30'000;
  in.now_ms = 69'999;
  EXPECT_EQ(NextStep(in), LeaseAction::kRunning);
  in.now_ms = 70'000;  // paid_until - grace
  EXPECT_EQ(NextStep(in), LeaseAction::kFundsEnding);
  r.funds_stop_ms = 100'000;  // sent for this end
  EXPECT_EQ(NextStep(in), LeaseAction::kRunning);
  l.paid_until_ms = 200'000;  // a deposit after it: the workload is stopping anyway
  in.workload_running = false;
  EXPECT_EQ(NextStep(in), LeaseAction::kRunning);
  r.funds_stop_ms = 0;
  in.workload_running = true;  // a deposit in time: nothing happens
  EXPECT_EQ(NextStep(in), LeaseAction::kRunning);
}

TEST_F(EngineTest, TheWorkloadGetsSigtermItsGraceBeforeTheFundsEndOnceAcrossARestart) {
  std::vector<std::string> events;
  EngineHooks hooks;
  hooks.event = [&](uint64_t, std::string_view kind, std::string_view message) {
    if (kind == "funds_ending") events.emplace_back(message);
  };
  AddLease(3, 1);
  auto engine = Make(hooks);
  engine->Reconcile();
  engine->Reconcile();
  ASSERT_TRUE(engine->SubmitManifest(3, kManifest).has_value());
  EXPECT_EQ(engine->RecordsForTest().at(3).stop_grace_ms, runtime::kStopGraceMsDefault);
  const uint64_t end = chain.view.leases[3].paid_until_ms;
  Advance(end - chain.view.time_ms - runtime::kStopGraceMsDefault - 1);
  engine->Reconcile();
  EXPECT_TRUE(workloads.stop_requests.empty());
  Advance(1);  // paid_until - grace
  engine->Reconcile();
  ASSERT_EQ(workloads.stop_requests, std::vector<std::string>{"lease-3"});
  EXPECT_TRUE(workloads.running.at("lease-3"));  // SIGTERM only: the engine did not wait
  EXPECT_EQ(engine->RecordsForTest().at(3).funds_stop_ms, end);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].find("SIGTERM sent, grace 1 s"), std::string::npos) << events[0];
  engine->Reconcile();       // within the grace, still running: not again
  auto again = Make(hooks);  // nor after a restart
  again->Reconcile();
  EXPECT_EQ(workloads.stop_requests.size(), 1u);
  EXPECT_EQ(events.size(), 1u);
  workloads.running.at("lease-3") = false;  // the supervisor killed it at the end
  Advance(1000);
  chain.view.leases[3].state = "closed";  // and the ledger expired it
  chain.view.leases[3].end = "expired";
  chain.view.leases[3].closed_ms = end;
  again->Reconcile();
  EXPECT_EQ(again->RecordsForTest().at(3).end, "expired");
  EXPECT_EQ(chain.Count<codec::MsgLeaseClose>(), 0u);  // the ledger closed it by itself
}

TEST_F(EngineTest, ADepositInTimeMovesTheSigtermAndNothingHappens) {
  auto engine = MakeRunning(3);
  Advance(chain.view.leases[3].paid_until_ms - chain.view.time_ms - 10'000);
  engine->Reconcile();
  chain.view.leases[3].paid_until_ms += 3'600'000;  // the tenant deposited an hour
  Advance(10'000);
  engine->Reconcile();
  EXPECT_TRUE(workloads.stop_requests.empty());
  EXPECT_EQ(engine->RecordsForTest().at(3).funds_stop_ms, 0u);
  Advance(3'600'000 - 1000);  // the new end comes
  engine->Reconcile();
  EXPECT_EQ(workloads.stop_requests.size(), 1u);
}

TEST_F(EngineTest, AManifestDoesNotWaitForATxInFlight) {
  AddLease(3, 1);
  auto engine = Make();
  engine->Reconcile();
  engine->Reconcile();  // started; the book knows started_ms
  // While the next heartbeat waits for its block, the tenant's manifest arrives (on the
  // node call's own thread: with the engine's lock held across the call, this would
  // deadlock instead of starting the workload).
  base::Status submitted = base::Fail(base::ErrorCode::kInternal, "not called");
  chain.on_send = [&](const codec::Msg& m) {
    if (std::holds_alternative<codec::MsgHeartbeat>(m) && workloads.started.empty())
      submitted = engine->SubmitManifest(3, kManifest);
  };
  Advance(3'600'000);
  engine->Reconcile();
  ASSERT_TRUE(submitted.has_value()) << submitted.error().ToString();
  EXPECT_EQ(workloads.started.size(), 1u);
  EXPECT_TRUE(engine->RecordsForTest().at(3).manifest_received);
  engine->Reconcile();  // the pass after sees it running and starts nothing again
  EXPECT_EQ(workloads.started.size(), 1u);
}

TEST_F(EngineTest, AWorkloadStartedBeforeACrashIsAdoptedNotStartedAgain) {
  AddLease(3, 1);
  auto engine = Make();
  engine->Reconcile();
  engine->Reconcile();
  workloads.running["lease-3"] = true;  // started, then the daemon died before the book
  auto again = Make();
  again->Reconcile();
  EXPECT_TRUE(again->RecordsForTest().at(3).manifest_received);
  EXPECT_TRUE(workloads.started.empty());
  EXPECT_EQ(again->SubmitManifest(3, kManifest).error().code, base::ErrorCode::kConflict);
}

TEST_F(EngineTest, AManifestAcceptedBeforeACrashIsLaunchedOnceByTheNextStart) {
  auto engine = MakeRunning(3);
  // The daemon died at manifest_accepted: the book as it was there, no workload.
  LeaseRecord at_crash = engine->RecordsForTest().at(3);
  engine.reset();
  at_crash.manifest_received = false;
  at_crash.manifest = kManifest;
  ASSERT_TRUE(LeaseBook::Open(dir.Path())->Put(at_crash).has_value());
  workloads.running.clear();
  workloads.started.clear();
  auto again = Make();
  again->Reconcile();
  ASSERT_EQ(workloads.started.size(), 1u);
  EXPECT_EQ(workloads.started[0].gpu_uuids, (std::vector<std::string>{"GPU-00"}));
  const LeaseRecord r = again->RecordsForTest().at(3);
  EXPECT_TRUE(r.manifest_received);
  EXPECT_TRUE(r.manifest.empty());  // kept only until the workload runs
  again->Reconcile();
  EXPECT_EQ(workloads.started.size(), 1u);
  EXPECT_EQ(again->SubmitManifest(3, kManifest).error().code, base::ErrorCode::kConflict);
}

TEST_F(EngineTest, TheTenantHearsOfAStartAndAWorkloadThatACrashHidFromTheirStep) {
  AddLease(3, 1);
  std::vector<std::string> kinds;
  EngineHooks hooks;
  hooks.event = [&](uint64_t, std::string_view kind, std::string_view) {
    kinds.emplace_back(kind);
  };
  hooks.tenant_api_ready = [](uint64_t) { return base::Fail(base::ErrorCode::kUnavailable, "x"); };
  auto engine = Make(hooks);
  engine->Reconcile();
  engine.reset();
  // A LeaseStarted and a launch of a run that died before it saw either.
  chain.view.leases[3].state = "started";
  chain.view.leases[3].started_ms = chain.view.time_ms;
  workloads.running["lease-3"] = true;
  hooks.tenant_api_ready = nullptr;
  auto again = Make(hooks);
  again->Reconcile();
  again->Reconcile();
  EXPECT_EQ(kinds, (std::vector<std::string>{"reserved", "started", "workload_running"}));
  EXPECT_EQ(chain.Count<codec::MsgLeaseStarted>(), 0u);
}

TEST_F(EngineTest, AClosedLeaseWhoseSupervisorWasLostIsRemovedAtOnce) {
  auto engine = MakeRunning(3);
  workloads.running["lease-3"] = false;  // its supervisor died; a container may run on
  workloads.lost.insert("lease-3");
  engine->Reconcile();
  EXPECT_TRUE(workloads.running.contains("lease-3"));  // open: kept, nothing stops it
  TenantCloses(3);
  engine->Reconcile();  // the book learns the close
  engine->Reconcile();  // removed well before retention's end
  EXPECT_FALSE(workloads.running.contains("lease-3"));
  EXPECT_TRUE(engine->RecordsForTest().empty());
}

TEST_F(EngineTest, AWorkloadWhoseStateCannotBeReadIsStoppedBeforeItsGpusAreFreed) {
  auto engine = MakeRunning(3);
  workloads.unreadable.insert("lease-3");
  TenantCloses(3);
  engine->Reconcile();
  engine->Reconcile();
  EXPECT_FALSE(workloads.running.at("lease-3"));  // stopped, though Running() failed
  EXPECT_TRUE(engine->RecordsForTest().at(3).workload_stopped);
  engine->Reconcile();
  EXPECT_TRUE(engine->RecordsForTest().at(3).gpu_uuids.empty());  // then its GPUs go back
}

TEST_F(EngineTest, AClosedLeasesGpusGoToTheNextLeaseAfterTheIdleCheckItsOutputsStayForRetention) {
  AddLease(3, 2);
  bool idle = false;
  EngineHooks hooks;
  hooks.check_gpu_idle = [&](const std::string& uuid) -> base::Status {
    if (idle) return {};
    return base::Fail(base::ErrorCode::kConflict, uuid + " has a process");
  };
  auto engine = Make(hooks);
  engine->Reconcile();
  engine->Reconcile();
  ASSERT_TRUE(engine->SubmitManifest(3, kManifest).has_value());
  TenantCloses(3);
  engine->Reconcile();
  EXPECT_FALSE(workloads.running.at("lease-3"));  // stopped, not removed
  EXPECT_EQ(engine->RecordsForTest().at(3).end, "tenant_closed");
  AddLease(4, 3);
  engine->Reconcile();
  EXPECT_FALSE(engine->RecordsForTest().contains(4));  // only 2 free: lease 3's are busy
  EXPECT_EQ(engine->RecordsForTest().at(3).gpu_uuids.size(), 2u);
  idle = true;
  engine->Reconcile();
  EXPECT_TRUE(engine->RecordsForTest().at(3).gpu_uuids.empty());  // back in the pool
  engine->Reconcile();
  EXPECT_EQ(engine->RecordsForTest().at(4).gpu_uuids.size(), 3u);  // long before retention's end
  Advance(3'599'999);
  engine->Reconcile();
  EXPECT_TRUE(workloads.running.contains("lease-3"));  // outputs still kept
  Advance(1);
  engine->Reconcile();
  EXPECT_FALSE(workloads.running.contains("lease-3"));
  EXPECT_FALSE(engine->RecordsForTest().contains(3));
}

TEST_F(EngineTest, AGpuThatFailsUnderARunningLeaseStopsItAndClosesTheLease) {
  AddLease(3, 1);
  std::vector<GpuHealth> health;
  EngineHooks hooks;
  hooks.health = [&] { return health; };
  auto engine = Make(hooks);
  engine->Reconcile();
  engine->Reconcile();
  ASSERT_TRUE(engine->SubmitManifest(3, kManifest).has_value());
  health = {{"GPU-00", false, {"xid 79: fallen off the bus"}}};
  engine->Reconcile();
  EXPECT_FALSE(workloads.running.at("lease-3"));
  ASSERT_EQ(chain.Count<codec::MsgLeaseClose>(), 1u);
  EXPECT_EQ(chain.view.leases[3].state, "closed");
  // The failed GPU never goes to a new lease.
  AddLease(4, 1);
  engine->Reconcile();
  EXPECT_EQ(engine->RecordsForTest().at(4).gpu_uuids, (std::vector<std::string>{"GPU-01"}));
}

TEST_F(EngineTest, AGpuThatFailsBeforeTheStartIsSwappedForAHealthyOne) {
  AddLease(3, 1);
  std::vector<GpuHealth> health;
  EngineHooks hooks;
  hooks.health = [&] { return health; };
  hooks.tenant_api_ready = [](uint64_t) -> base::Status {
    return base::Fail(base::ErrorCode::kUnavailable, "not yet");
  };
  auto engine = Make(hooks);
  engine->Reconcile();
  health = {{"GPU-00", false, {"ecc"}}};
  engine->Reconcile();
  EXPECT_EQ(engine->RecordsForTest().at(3).gpu_uuids, (std::vector<std::string>{"GPU-01"}));
  EXPECT_EQ(chain.Count<codec::MsgLeaseClose>(), 0u);
}

TEST_F(EngineTest, AnUnreachableNodeStopsNothingAndIsLoggedOnce) {
  AddLease(3, 1);
  auto engine = Make();
  engine->Reconcile();
  engine->Reconcile();
  ASSERT_TRUE(engine->SubmitManifest(3, kManifest).has_value());
  chain.reachable = false;
  for (int i = 0; i < 5; ++i) {
    Advance(100'000);  // past the manifest and heartbeat timeouts, as the daemon sees it
    EXPECT_FALSE(engine->Reconcile().node_reachable);
  }
  EXPECT_TRUE(workloads.running.at("lease-3"));
  EXPECT_EQ(LogsContaining("node unreachable"), 1u);
  chain.reachable = true;
  engine->Reconcile();
  EXPECT_EQ(LogsContaining("node reachable again"), 1u);
  EXPECT_TRUE(workloads.running.at("lease-3"));
}

TEST_F(EngineTest, OneHeartbeatPerIntervalForAllLeases) {
  AddLease(3, 1);
  AddLease(4, 1);
  auto engine = Make();
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgHeartbeat>(), 1u);
  Advance(9'999);  // a third of 30 s
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgHeartbeat>(), 1u);
  Advance(1);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgHeartbeat>(), 2u);
}

TEST_F(EngineTest, WithdrawsBatchedOnTheScheduleOnlyWhatAccrued) {
  for (uint64_t id = 1; id <= 4; ++id) AddLease(id, 1);
  chain.view.params.manifest_timeout_ms = 10'000'000;
  auto engine = Make();
  engine->Reconcile();
  for (uint64_t id = 1; id <= 4; ++id) chain.view.leases[id].withdrawable_ugpn = id == 2 ? 0 : 10;
  Advance(3'599'999);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseWithdraw>(), 0u);
  Advance(1);
  size_t before = chain.sent.size();
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseWithdraw>(), 3u);  // lease 2 had nothing
  EXPECT_GT(chain.sent.size(), before);
}

TEST_F(EngineTest, TheWithdrawScheduleSurvivesARestart) {
  for (uint64_t id = 1; id <= 2; ++id) AddLease(id, 1, "started").withdrawable_ugpn = 10;
  chain.view.params.manifest_timeout_ms = 10'000'000;
  const std::string mark = dir.Path() + "/last-withdraw-ms";
  auto engine = Make({}, 4, mark);
  engine->Reconcile();
  Advance(3'599'999);
  engine->Reconcile();
  engine.reset();  // restarted just before the period ends
  auto again = Make({}, 4, mark);
  again->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseWithdraw>(), 0u);
  Advance(1);
  again->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseWithdraw>(), 2u);  // one period after the first start
  auto third = Make({}, 4, mark);
  third->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseWithdraw>(), 2u);  // and not again at the next start
}

TEST_F(EngineTest, WithdrawalsGoInTxsOfAtMostTheMessageLimit) {
  for (uint64_t id = 1; id <= 20; ++id) AddLease(id, 1, "started").withdrawable_ugpn = 5;
  chain.view.params.manifest_timeout_ms = 10'000'000;
  auto engine = Make({}, 20);
  engine->Reconcile();
  EXPECT_EQ(engine->RecordsForTest().size(), 20u);
  chain.tx_sizes.clear();
  Advance(3'600'000);
  engine->Reconcile();
  EXPECT_EQ(chain.Count<codec::MsgLeaseWithdraw>(), 20u);
  EXPECT_EQ(chain.tx_sizes, (std::vector<size_t>{1, 16, 4}));  // heartbeat, then 16 + 4
}

TEST_F(EngineTest, AnOrphanWorkloadIsKeptWhileItsLeaseIsOpenAndRemovedAfterRetention) {
  AddLease(5, 1, "started").started_ms = chain.view.time_ms;
  client::LeaseInfo& gone = AddLease(6, 1, "closed");
  gone.closed_ms = chain.view.time_ms;
  gone.end = "expired";
  workloads.running["lease-5"] = true;  // their records were lost
  workloads.running["lease-6"] = true;
  workloads.running["scratch"] = true;  // not a lease's: never touched
  auto engine = Make();
  engine->Reconcile();
  EXPECT_TRUE(workloads.running.at("lease-5"));
  EXPECT_FALSE(workloads.running.at("lease-6"));  // stopped at once, kept for its outputs
  EXPECT_TRUE(engine->RecordsForTest().at(5).manifest_received);
  EXPECT_EQ(chain.Count<codec::MsgLeaseClose>(), 0u);
  Advance(3'600'000);
  engine->Reconcile();
  EXPECT_FALSE(workloads.running.contains("lease-6"));
  EXPECT_TRUE(workloads.running.contains("lease-5"));
  EXPECT_TRUE(workloads.running.at("scratch"));
  EXPECT_EQ(LogsContaining("scratch is not a lease's"), 1u);
}

TEST_F(EngineTest, StatusNamesGpusLeasesAndSteps) {
  AddLease(3, 1);
  auto engine = Make();
  engine->Reconcile();
  engine->Reconcile();
  auto j = engine->StatusJson();
  ASSERT_EQ(j["gpus"].size(), 4u);
  EXPECT_EQ(j["gpus"][0]["lease_id"], 3);
  ASSERT_EQ(j["leases"].size(), 1u);
  EXPECT_EQ(j["leases"][0]["step"], "started");
  EXPECT_EQ(j["leases"][0]["workload"], "");
}

TEST(MinimalWorkloadSpec, TakesOnlyACommand) {
  client::LeaseInfo l;
  l.lease_id = 9;
  std::vector<std::string> gpus = {"GPU-x"};
  EXPECT_TRUE(MinimalWorkloadSpec({l, gpus, R"({"command":["a"]})"}).has_value());
  EXPECT_FALSE(MinimalWorkloadSpec({l, gpus, R"({"command":[]})"}).has_value());
  EXPECT_FALSE(MinimalWorkloadSpec({l, gpus, R"({"command":["a"],"env":{}})"}).has_value());
  EXPECT_FALSE(MinimalWorkloadSpec({l, gpus, R"({"command":[1]})"}).has_value());
  EXPECT_FALSE(MinimalWorkloadSpec({l, gpus, "not json"}).has_value());
}

}  // namespace
}  // namespace gpunet::provider
