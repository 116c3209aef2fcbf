#include "provider/engine.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/file_util.h"
#include "base/limits.h"
#include "client/topup.h"
#include "codec/tx_result.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "server/metrics.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

namespace {

constexpr size_t kCommandArgsMax = 256;

bool IsMine(const client::LeaseInfo& lease, const std::string& provider) {
  return lease.provider == provider;
}

uint32_t GpusOnMachine(const client::LeaseInfo& lease, uint32_t machine_id) {
  uint32_t n = 0;
  for (const auto& a : lease.allocations)
    if (a.machine_id == machine_id) n += a.gpus;
  return n;
}

}  // namespace

// ---------------------------------------------------------------- the real runtime

RuntimeWorkloads::RuntimeWorkloads(runtime::RuntimeOptions options)
    : m_runtime(std::move(options)) {}

std::vector<std::string> RuntimeWorkloads::List() {
  return m_runtime.List();
}

base::Result<bool> RuntimeWorkloads::Running(const std::string& id) {
  runtime::WorkloadInfo info;
  GPUNET_TRY_ASSIGN(info, m_runtime.Attach(id));
  return info.running;
}

base::Status RuntimeWorkloads::Start(const runtime::WorkloadSpec& spec) {
  GPUNET_TRY(m_runtime.Start(spec));
  return {};
}

base::Status RuntimeWorkloads::Stop(const std::string& id) {
  GPUNET_TRY(m_runtime.Stop(id));
  return {};
}

base::Status RuntimeWorkloads::RequestStop(const std::string& id) {
  runtime::WorkloadInfo info;
  GPUNET_TRY_ASSIGN(info, m_runtime.Attach(id));
  if (!info.running || info.supervisor_pid == 0) return {};  // ended already
  // The supervisor turns its SIGTERM into Stop's steps: SIGTERM to the workload, its
  // cgroup killed after stop_grace_ms (a second SIGTERM changes nothing).
  if (::kill(info.supervisor_pid, SIGTERM) != 0 && errno != ESRCH)
    return Fail(ErrorCode::kIo,
                "SIGTERM to the supervisor of " + id + ": " + std::string(std::strerror(errno)));
  return {};
}

base::Status RuntimeWorkloads::Remove(const std::string& id) {
  return m_runtime.Remove(id);
}

bool RuntimeWorkloads::Lost(const std::string& id) {
  auto polled = m_runtime.Poll(id);
  return polled && polled->has_value() && (*polled)->reason == runtime::ExitReason::kSupervisorLost;
}

// ---------------------------------------------------------------- pure parts

base::Status VerifyManifestHash(const base::Hash32& expected, std::string_view manifest) {
  const base::Hash32 got = crypto::Blake2b256(base::AsBytes(manifest));
  if (got != expected)
    return Fail(ErrorCode::kInvalidArgument,
                "the manifest's BLAKE2b-256 is " + base::ToHex(got) +
                    " but the lease was made for " + base::ToHex(expected) +
                    "; send the manifest the lease names, byte for byte");
  return {};
}

base::Result<runtime::WorkloadSpec> MinimalWorkloadSpec(const SpecInput& in) {
  Json j = Json::parse(in.manifest, nullptr, false);
  const std::string why =
      "this daemon takes a manifest {\"command\": [\"argv0\", ...]} and nothing else until the "
      "manifest planner lands (docs/provider.md, \"What the daemon does with a lease\")";
  if (j.is_discarded() || !j.is_object() || j.size() != 1 || !j.contains("command"))
    return Fail(ErrorCode::kInvalidArgument, why);
  const Json& cmd = j["command"];
  if (!cmd.is_array() || cmd.empty() || cmd.size() > kCommandArgsMax)
    return Fail(ErrorCode::kInvalidArgument, why);
  runtime::WorkloadSpec spec;
  for (const auto& a : cmd) {
    if (!a.is_string()) return Fail(ErrorCode::kInvalidArgument, why);
    spec.command.push_back(a.get<std::string>());
  }
  spec.id = WorkloadIdOf(in.lease.lease_id);
  spec.gpu_uuids = in.gpu_uuids;
  spec.lease_id = std::to_string(in.lease.lease_id);
  spec.lease_ends_at_ms = static_cast<int64_t>(in.lease.paid_until_ms);
  return spec;
}

std::string_view LeaseActionName(LeaseAction action) {
  switch (action) {
    case LeaseAction::kWaitTenantApi:
      return "wait_tenant_api";
    case LeaseAction::kSendStarted:
      return "send_started";
    case LeaseAction::kWaitManifest:
      return "wait_manifest";
    case LeaseAction::kCloseNoManifest:
      return "close_no_manifest";
    case LeaseAction::kLaunchWorkload:
      return "launch_workload";
    case LeaseAction::kAdoptWorkload:
      return "adopt_workload";
    case LeaseAction::kRunning:
      return "running";
    case LeaseAction::kFundsEnding:
      return "funds_ending";
    case LeaseAction::kCloseUnhealthy:
      return "close_unhealthy";
    case LeaseAction::kObserveClosed:
      return "observe_closed";
    case LeaseAction::kStopWorkload:
      return "stop_workload";
    case LeaseAction::kFreeGpus:
      return "free_gpus";
    case LeaseAction::kRetain:
      return "retain";
    case LeaseAction::kRelease:
      return "release";
  }
  GPUNET_CHECK(false);
  return "";
}

std::string_view StepName(LeaseAction action) {
  switch (action) {
    case LeaseAction::kWaitTenantApi:
    case LeaseAction::kSendStarted:
      return "reserved";
    case LeaseAction::kWaitManifest:
    case LeaseAction::kCloseNoManifest:
    case LeaseAction::kLaunchWorkload:
    case LeaseAction::kAdoptWorkload:
      return "started";
    case LeaseAction::kRunning:
    case LeaseAction::kFundsEnding:
      return "running";
    case LeaseAction::kCloseUnhealthy:
    case LeaseAction::kObserveClosed:
    case LeaseAction::kStopWorkload:
      return "closing";
    case LeaseAction::kFreeGpus:
    case LeaseAction::kRetain:
      return "retained";
    case LeaseAction::kRelease:
      return "released";
  }
  GPUNET_CHECK(false);
  return "";
}

LeaseAction NextStep(const StepInput& in) {
  GPUNET_CHECK(in.record != nullptr);
  const LeaseRecord& r = *in.record;
  if (!r.end.empty()) {  // the book knows it closed
    if (in.workload_running) return LeaseAction::kStopWorkload;
    if (!in.workload_exists) return LeaseAction::kRelease;  // no outputs to keep
    // Its supervisor died: a podman container may run on, unbilled, until removed.
    if (in.workload_lost) return LeaseAction::kRelease;
    uint64_t until = base::CheckedAdd(r.closed_ms, in.outputs_retention_ms).value_or(UINT64_MAX);
    if (in.chain_time_ms >= until) return LeaseAction::kRelease;
    // Stopped: only its run dir is kept, the GPUs may go to the next lease.
    return r.gpu_uuids.empty() ? LeaseAction::kRetain : LeaseAction::kFreeGpus;
  }
  if (in.ledger == nullptr || in.ledger->state == "closed") return LeaseAction::kObserveClosed;
  if (in.gpu_unhealthy) return LeaseAction::kCloseUnhealthy;
  if (in.ledger->state == "reserved")
    return in.tenant_api_ready ? LeaseAction::kSendStarted : LeaseAction::kWaitTenantApi;
  GPUNET_CHECK(in.ledger->state == "started");
  // The funds end within the workload's grace: SIGTERM now, so the kill at the end
  // comes after the grace the manifest asked for. Once per paid_until (a deposit
  // before it moves paid_until past the window, and nothing happens).
  const uint64_t paid_until = in.ledger->paid_until_ms;
  if (in.workload_exists && in.workload_running && r.manifest_received && paid_until != 0 &&
      r.funds_stop_ms != paid_until &&
      base::CheckedAdd(in.now_ms, in.stop_grace_ms).value_or(UINT64_MAX) >= paid_until)
    return LeaseAction::kFundsEnding;
  if (in.workload_exists)
    return r.manifest_received ? LeaseAction::kRunning : LeaseAction::kAdoptWorkload;
  if (r.manifest_received) return LeaseAction::kRunning;         // it ran and its run dir is gone
  if (!r.manifest.empty()) return LeaseAction::kLaunchWorkload;  // accepted, never launched
  uint64_t deadline =
      base::CheckedAdd(in.ledger->started_ms, in.manifest_timeout_ms).value_or(UINT64_MAX);
  return in.chain_time_ms >= deadline ? LeaseAction::kCloseNoManifest : LeaseAction::kWaitManifest;
}

// ---------------------------------------------------------------- the engine

struct Engine::Metrics {
  std::unique_ptr<server::metrics::Registry> own;
  server::metrics::Counter* txs_sent = nullptr;
  server::metrics::Counter* txs_failed = nullptr;
  server::metrics::Counter* heartbeats = nullptr;
  server::metrics::Gauge* gpus_healthy = nullptr;
  server::metrics::Gauge* gpus_total = nullptr;
  std::map<std::string, server::metrics::Gauge*, std::less<>> leases_by_step;
};

Engine::Engine(EngineOptions options, EngineHooks hooks, ChainPort& chain, WorkloadPort& workloads,
               LeaseBook book, std::vector<PoolGpu> gpus, const base::Clock& clock)
    : m_options(options),
      m_hooks(std::move(hooks)),
      m_chain(chain),
      m_workloads(workloads),
      m_clock(clock),
      m_metrics(std::make_unique<Metrics>()),
      m_book(std::move(book)),
      m_pool(std::move(gpus)) {
  GPUNET_CHECK(m_options.machine_id != 0);
  server::metrics::Registry* reg = m_options.metrics;
  if (reg == nullptr) {
    m_metrics->own = std::make_unique<server::metrics::Registry>();
    reg = m_metrics->own.get();
  }
  m_metrics->txs_sent = &reg->GetCounter("gpunet_provider_txs_sent_total",
                                         "Transactions the daemon got committed (or found done)");
  m_metrics->txs_failed = &reg->GetCounter("gpunet_provider_txs_failed_total",
                                           "Transactions refused, failed or not known to commit");
  m_metrics->heartbeats =
      &reg->GetCounter("gpunet_provider_heartbeats_total", "Heartbeats committed");
  m_metrics->gpus_healthy = &reg->GetGauge("gpunet_provider_gpus_healthy", "Healthy GPUs");
  m_metrics->gpus_total = &reg->GetGauge("gpunet_provider_gpus", "GPUs of this machine");
  for (std::string_view step : {"reserved", "started", "running", "closing", "retained"})
    m_metrics->leases_by_step[std::string(step)] =
        &reg->GetGauge("gpunet_provider_leases", "Leases in the lease book by step",
                       {{"step", std::string(step)}});
  base::MutexLock lock(m_mu);
  if (!m_options.withdraw_mark_path.empty())
    if (auto text = base::ReadFileNoFollow(m_options.withdraw_mark_path, 64); text) {
      int64_t ms = 0;
      const char* end = text->data() + text->size();
      if (auto [p, ec] = std::from_chars(text->data(), end, ms);
          ec == std::errc() && ms > 0 && (p == end || *p == '\n'))
        m_last_withdraw_ms = ms;
      else
        Log(m_options.withdraw_mark_path + " holds no time; the withdraw period starts now");
    }
  for (const auto& [id, record] : m_book.Records())
    if (auto s = m_pool.Assign(id, record.gpu_uuids); !s)
      Log("lease " + std::to_string(id) + ": " + s.error().message);
  UpdateGauges();
}

Engine::~Engine() = default;

void Engine::Log(const std::string& line) {
  if (m_hooks.log) m_hooks.log(line);
}

void Engine::CrashPoint(std::string_view point, uint64_t lease_id) const {
  GPUNET_CHECK(std::ranges::find(kCrashPoints, point) != std::end(kCrashPoints));
  if (m_hooks.crash_point) m_hooks.crash_point(point, lease_id);
}

void Engine::Event(uint64_t lease_id, std::string_view kind, const std::string& message) {
  if (m_hooks.event) m_hooks.event(lease_id, kind, message);
}

void Engine::LogOnce(uint64_t lease_id, const std::string& key, const std::string& line) {
  std::string& last = m_logged[lease_id];
  if (last == key) return;
  last = key;
  Log(line);
}

bool Engine::PutRecord(const LeaseRecord& record) {
  if (auto s = m_book.Put(record); !s) {
    LogOnce(record.lease_id, "book:" + s.error().message,
            "lease " + std::to_string(record.lease_id) +
                ": cannot write the lease book, will retry: " + s.error().message);
    return false;
  }
  return true;
}

bool Engine::SendTx(const std::vector<codec::Msg>& msgs, const std::string& what,
                    ReconcileResult& result) {
  GPUNET_CHECK(!msgs.empty() && msgs.size() <= base::limits::kMsgsPerTxMax);
  auto sent = SendUnlocked(msgs);
  // A start or close the ledger already shows applied answers lease_state: the
  // effect is there, which is all the engine wanted.
  const bool done =
      sent &&
      (sent->code == 0 || (sent->code == static_cast<uint16_t>(codec::TxCode::kMarketLeaseState) &&
                           (std::holds_alternative<codec::MsgLeaseStarted>(msgs[0]) ||
                            std::holds_alternative<codec::MsgLeaseClose>(msgs[0]))));
  if (done) {
    ++result.txs_sent;
    m_metrics->txs_sent->Inc();
    Log(what + ": committed in block " + std::to_string(sent->height) +
        (sent->code == 0 ? "" : " (already done: " + sent->code_name + ")"));
    m_logged.erase(0);
    return true;
  }
  ++result.txs_failed;
  m_metrics->txs_failed->Inc();
  std::string why =
      sent ? "failed with " + sent->code_name + ": " + sent->message : sent.error().message;
  LogOnce(0, what + why, what + ": not sent, will retry: " + why);
  return false;
}

base::Result<ChainView> Engine::FetchUnlocked(const std::vector<uint64_t>& also) {
  m_mu.Unlock();
  auto view = m_chain.Fetch(also);
  m_mu.Lock();
  return view;
}

base::Result<TxOutcome> Engine::SendUnlocked(const std::vector<codec::Msg>& msgs) {
  m_mu.Unlock();
  auto sent = m_chain.Send(msgs);
  m_mu.Lock();
  return sent;
}

Engine::ReconcileResult Engine::Reconcile() {
  base::MutexLock pass(m_pass_mu);
  base::MutexLock lock(m_mu);
  ReconcileResult result;
  if (m_hooks.health)
    for (uint64_t id : m_pool.ApplyHealth(m_hooks.health()))
      Log("lease " + std::to_string(id) + ": a GPU of the lease is unhealthy");

  std::set<std::string> workloads;
  for (auto& w : m_workloads.List()) workloads.insert(std::move(w));
  std::vector<uint64_t> also;
  for (const auto& [id, record] : m_book.Records()) also.push_back(id);
  for (const auto& w : workloads)
    if (auto id = LeaseIdOfWorkload(w); id && !m_book.Find(*id)) also.push_back(*id);

  auto view = FetchUnlocked(also);
  if (!view) {
    if (m_node_reachable || m_first_pass)
      Log("node unreachable, workloads keep running; retrying: " + view.error().message);
    m_node_reachable = false;
    m_first_pass = false;
    return result;
  }
  if (!m_node_reachable) Log("node reachable again at height " + std::to_string(view->height));
  m_node_reachable = true;
  m_first_pass = false;
  result.node_reachable = true;
  m_ledger = view->leases;

  AdoptOrphanWorkloads(*view, workloads);
  AdoptNewLeases(*view);
  std::vector<uint64_t> ids;
  for (const auto& [id, record] : m_book.Records()) ids.push_back(id);
  for (uint64_t id : ids) StepLease(id, *view, workloads, result);
  Periodic(*view, result);
  GPUNET_CHECK(m_pool.CheckInvariants().has_value());
  UpdateGauges();
  return result;
}

void Engine::AdoptOrphanWorkloads(const ChainView& view, const std::set<std::string>& workloads) {
  for (const auto& w : workloads) {
    auto id = LeaseIdOfWorkload(w);
    if (!id) {
      if (m_foreign_logged.insert(w).second) Log("workload " + w + " is not a lease's; left alone");
      continue;
    }
    if (m_book.Find(*id)) continue;
    // A workload the book does not know (its record was unreadable): kept while its
    // lease is open, removed after retention once closed. Its GPUs are not known.
    LeaseRecord r;
    r.lease_id = *id;
    r.manifest_received = true;
    auto it = view.leases.find(*id);
    if (it == view.leases.end() || it->second.state == "closed") {
      r.closed_ms = it == view.leases.end() || it->second.closed_ms == 0 ? view.time_ms
                                                                         : it->second.closed_ms;
      r.end = it == view.leases.end() ? "unknown_to_node" : it->second.end;
    } else {
      r.manifest_hash = it->second.manifest_hash;
      r.started_ms = it->second.started_ms;
    }
    if (PutRecord(r))
      Log("lease " + std::to_string(*id) + ": workload " + w + " had no lease record; adopted (" +
          (r.end.empty() ? "lease open" : "lease closed") + ")");
  }
}

void Engine::AdoptNewLeases(const ChainView& view) {
  const std::string me = crypto::AddressToString(m_options.provider);
  for (const auto& [id, lease] : view.leases) {
    if (!IsMine(lease, me) || lease.state == "closed" || m_book.Find(id)) continue;
    uint32_t count = GpusOnMachine(lease, m_options.machine_id);
    if (count == 0) continue;  // on another machine of this provider
    auto gpus = m_pool.Reserve(id, count);
    if (!gpus) {
      LogOnce(id, "nogpus", "lease " + std::to_string(id) + ": " + gpus.error().message);
      continue;
    }
    LeaseRecord r;
    r.lease_id = id;
    r.gpu_uuids = *gpus;
    r.manifest_hash = lease.manifest_hash;
    // Durable before any tx names the lease: a restart finds the same GPUs set aside.
    if (!PutRecord(r)) {
      m_pool.Release(id);
      continue;
    }
    std::string list;
    for (const auto& g : *gpus) list += (list.empty() ? "" : ",") + g;
    Log("lease " + std::to_string(id) + ": new (" + lease.state + "), GPUs set aside: " + list);
    Event(id, "reserved", "GPUs set aside: " + list);
    CrashPoint("reserved", id);
  }
}

bool Engine::CloseLease(uint64_t lease_id, codec::CloseReason reason, const std::string& why,
                        ReconcileResult& result) {
  return SendTx({codec::MsgLeaseClose{lease_id, reason}},
                "lease " + std::to_string(lease_id) + ": LeaseClose (" + why + ")", result);
}

StepInput Engine::InputFor(const LeaseRecord& r, const client::LeaseInfo* ledger,
                           const ChainView& view, const std::set<std::string>& workloads) {
  StepInput in;
  in.record = &r;
  in.ledger = ledger;
  const std::string wid = WorkloadIdOf(r.lease_id);
  in.workload_exists = workloads.contains(wid);
  if (in.workload_exists) {
    auto running = m_workloads.Running(wid);
    // A workload whose state cannot be read counts as running until the engine has
    // stopped it: never taken for gone while it may still use GPUs the next lease gets.
    if (!running)
      LogOnce(
          r.lease_id, "attachfail",
          "lease " + std::to_string(r.lease_id) +
              ": cannot read its workload's state, taken as running: " + running.error().message);
    in.workload_running = running ? *running : !r.workload_stopped;
    in.workload_lost = !in.workload_running && !r.end.empty() && m_workloads.Lost(wid);
  }
  const auto unhealthy = m_pool.LeasesOnUnhealthy();
  in.gpu_unhealthy = std::ranges::binary_search(unhealthy, r.lease_id);
  if (m_hooks.tenant_api_ready && ledger && ledger->state == "reserved")
    in.tenant_api_ready = m_hooks.tenant_api_ready(r.lease_id).has_value();
  in.chain_time_ms = view.time_ms;
  in.now_ms = std::max<uint64_t>(view.time_ms,
                                 static_cast<uint64_t>(std::max<int64_t>(m_clock.NowMs(), 0)));
  in.stop_grace_ms = r.stop_grace_ms != 0 ? r.stop_grace_ms : runtime::kStopGraceMsDefault;
  in.manifest_timeout_ms = view.params.manifest_timeout_ms;
  in.outputs_retention_ms = m_options.outputs_retention_ms;
  return in;
}

bool Engine::StopWorkload(LeaseRecord& r) {
  const std::string name = "lease " + std::to_string(r.lease_id);
  if (auto s = m_workloads.Stop(WorkloadIdOf(r.lease_id)); !s) {
    LogOnce(r.lease_id, "stopfail", name + ": cannot stop its workload: " + s.error().message);
    return false;
  }
  CrashPoint("workload_stopped", r.lease_id);
  r.workload_stopped = true;
  if (PutRecord(r)) {
    Log(name + ": workload stopped; outputs kept for retention");
    Event(r.lease_id, "workload_stopped", "workload stopped; outputs and logs kept for retention");
  }
  return true;
}

void Engine::StopForFunds(LeaseRecord& r, const client::LeaseInfo& ledger, uint64_t grace_ms) {
  const std::string name = "lease " + std::to_string(r.lease_id);
  if (auto s = m_workloads.RequestStop(WorkloadIdOf(r.lease_id)); !s) {
    LogOnce(r.lease_id, "fundsstopfail",
            name + ": cannot send its workload SIGTERM, will retry: " + s.error().message);
    return;
  }
  // A crash before this record sends the SIGTERM again at the next start, which the
  // stop under way ignores; the event comes once, with the record.
  r.funds_stop_ms = ledger.paid_until_ms;
  if (!PutRecord(r)) return;
  const std::string grace = grace_ms % 1000 == 0 ? std::to_string(grace_ms / 1000) + " s"
                                                 : std::to_string(grace_ms) + " ms";
  const std::string text = "funds end at " + client::UtcTimeText(ledger.paid_until_ms) +
                           ": SIGTERM sent, grace " + grace;
  Log(name + ": " + text);
  Event(r.lease_id, "funds_ending", text);
}

void Engine::CloseUnhealthy(LeaseRecord& r, const client::LeaseInfo* ledger, bool running,
                            ReconcileResult& result) {
  const uint64_t id = r.lease_id;
  if (ledger && ledger->state == "reserved") {
    // Not started: other healthy GPUs can take the failed one's place.
    const uint32_t count = static_cast<uint32_t>(r.gpu_uuids.size());
    m_pool.Release(id);
    if (auto swapped = m_pool.Reserve(id, count)) {
      r.gpu_uuids = *swapped;
      if (PutRecord(r))
        Log("lease " + std::to_string(id) + ": a GPU failed before the start; took other GPUs");
      return;
    }
    GPUNET_CHECK(m_pool.Assign(id, r.gpu_uuids).has_value());
  }
  LogOnce(id, "gpufailed", "lease " + std::to_string(id) + ": a GPU of the lease failed");
  if (running) StopWorkload(r);  // billing stops with the close whatever the stop did
  if (CloseLease(id, codec::CloseReason::kNormal, "a GPU of the lease is unhealthy", result))
    Event(id, "gpu_failed", "a GPU of the lease failed: workload stopped, lease closed");
}

void Engine::StepLease(uint64_t id, const ChainView& view, const std::set<std::string>& workloads,
                       ReconcileResult& result) {
  LeaseRecord r = *m_book.Find(id);
  const std::string name = "lease " + std::to_string(id);
  auto ledger_it = view.leases.find(id);
  const client::LeaseInfo* ledger = ledger_it == view.leases.end() ? nullptr : &ledger_it->second;
  const StepInput in = InputFor(r, ledger, view, workloads);
  const LeaseAction action = NextStep(in);
  m_actions[id] = action;
  LogOnce(id, std::string(LeaseActionName(action)),
          name + ": " + std::string(StepName(action)) +
              ", next: " + std::string(LeaseActionName(action)));
  if (ledger && r.started_ms == 0 && ledger->started_ms != 0) {
    r.started_ms = ledger->started_ms;
    // Whichever run first sees the start on the ledger tells the tenant, once: a
    // crash between the tx and its block, or right after it, loses no event.
    if (PutRecord(r))
      Event(id, "started", "LeaseStarted committed: the reservation is live and billed");
  }
  switch (action) {
    case LeaseAction::kWaitTenantApi:
    case LeaseAction::kWaitManifest:
    case LeaseAction::kRunning:
    case LeaseAction::kRetain:
      return;
    case LeaseAction::kFundsEnding:
      StopForFunds(r, *ledger, in.stop_grace_ms);
      return;
    case LeaseAction::kSendStarted:
      if (SendTx({codec::MsgLeaseStarted{id}}, name + ": LeaseStarted", result))
        CrashPoint("started", id);  // its event comes with the record's started_ms
      return;
    case LeaseAction::kCloseNoManifest:
      if (CloseLease(id, codec::CloseReason::kNoManifest, "no manifest", result))
        Event(id, "closing", "no manifest before the manifest deadline: LeaseClose(no_manifest)");
      return;
    case LeaseAction::kLaunchWorkload: {
      const std::string manifest = r.manifest;
      if (auto s = LaunchWorkload(r, *ledger, manifest); !s)
        LogOnce(id, "launchfail:" + s.error().message,
                name + ": cannot launch the workload of its accepted manifest, will retry: " +
                    s.error().message);
      return;
    }
    case LeaseAction::kAdoptWorkload:
      r.manifest_received = true;
      r.manifest.clear();
      if (PutRecord(r)) {
        Log(name + ": re-attached to its running workload " + WorkloadIdOf(id));
        Event(id, "workload_running", "workload " + WorkloadIdOf(id) + " running");
      }
      return;
    case LeaseAction::kCloseUnhealthy:
      CloseUnhealthy(r, ledger, in.workload_running, result);
      return;
    case LeaseAction::kObserveClosed:
      r.closed_ms = ledger && ledger->closed_ms != 0 ? ledger->closed_ms : view.time_ms;
      r.end = ledger ? ledger->end : "unknown_to_node";
      if (PutRecord(r)) {
        Log(name + ": closed on the ledger (" + r.end + ")");
        Event(id, "closed", "closed on the ledger (" + r.end + ")");
      }
      [[fallthrough]];
    case LeaseAction::kStopWorkload:
      if (in.workload_running) StopWorkload(r);
      return;
    case LeaseAction::kFreeGpus:
      FreeGpus(r);
      return;
    case LeaseAction::kRelease:
      ReleaseLease(id, in.workload_exists);
      return;
  }
}

void Engine::ReleaseLease(uint64_t id, bool workload_exists) {
  const std::string name = "lease " + std::to_string(id);
  if (workload_exists) {
    if (auto s = m_workloads.Remove(WorkloadIdOf(id)); !s) {
      LogOnce(id, "removefail",
              name + ": cannot remove its workload, will retry: " + s.error().message);
      return;
    }
  }
  const std::vector<std::string> gpus = m_pool.GpusOf(id);
  if (m_hooks.check_gpu_idle) {
    for (const auto& g : gpus)
      if (auto s = m_hooks.check_gpu_idle(g); !s) {
        LogOnce(id, "busy:" + g,
                name + ": GPU " + g + " not idle, kept out of the pool: " + s.error().message);
        return;
      }
  } else if (!gpus.empty()) {
    Log(name + ": no GPU idle check on this host; GPUs go back to the pool unchecked");
  }
  // A tombstone stays, so a late request is told the lease is gone (410), not unknown.
  const LeaseRecord* r = m_book.Find(id);
  GPUNET_CHECK(r != nullptr);  // StepLease steps the book's leases only
  if (auto s = m_book.Release({id, r->closed_ms, static_cast<uint64_t>(m_clock.NowMs()), r->end});
      !s) {
    LogOnce(id, "erasefail", name + ": cannot delete its record: " + s.error().message);
    return;
  }
  m_pool.Release(id);
  m_actions.erase(id);
  m_logged.erase(id);
  Log(name + ": released (workload removed, GPUs back in the pool)");
}

void Engine::Periodic(const ChainView& view, ReconcileResult& result) {
  const int64_t now = m_clock.MonotonicMs();
  const uint64_t every = m_options.heartbeat_every_ms != 0
                             ? m_options.heartbeat_every_ms
                             : std::max<uint64_t>(1, view.params.heartbeat_timeout_ms / 3);
  if (m_last_heartbeat_ms == 0 || static_cast<uint64_t>(now - m_last_heartbeat_ms) >= every) {
    if (SendTx({codec::MsgHeartbeat{m_options.provider}}, "heartbeat", result)) {
      m_last_heartbeat_ms = now;
      m_metrics->heartbeats->Inc();
    }
  }
  // The withdraw schedule runs on the wall clock and survives restarts (the mark
  // file): a daemon restarted more often than withdraw_every still withdraws.
  const int64_t wall = m_clock.NowMs();
  if (m_last_withdraw_ms == 0 || wall < m_last_withdraw_ms) {  // first period, or time went back
    m_last_withdraw_ms = wall;
    WriteWithdrawMark();
  }
  if (static_cast<uint64_t>(wall - m_last_withdraw_ms) < m_options.withdraw_every_ms) return;
  m_last_withdraw_ms = wall;
  WriteWithdrawMark();  // before the txs: a crash in them waits a period, never repeats at once
  const std::string me = crypto::AddressToString(m_options.provider);
  std::vector<codec::Msg> msgs;
  for (const auto& [id, lease] : view.leases)
    if (IsMine(lease, me) && lease.state == "started" && lease.withdrawable_ugpn > 0 &&
        m_book.Find(id))
      msgs.push_back(codec::MsgLeaseWithdraw{id});
  for (size_t i = 0; i < msgs.size(); i += base::limits::kMsgsPerTxMax) {
    size_t end = std::min(msgs.size(), i + base::limits::kMsgsPerTxMax);
    SendTx({msgs.begin() + static_cast<std::ptrdiff_t>(i),
            msgs.begin() + static_cast<std::ptrdiff_t>(end)},
           "withdraw of " + std::to_string(end - i) + " leases", result);
  }
}

void Engine::WriteWithdrawMark() {
  if (m_options.withdraw_mark_path.empty()) return;
  if (auto s = base::WriteFileAtomic(m_options.withdraw_mark_path,
                                     std::to_string(m_last_withdraw_ms) + "\n", {.mode = 0600});
      !s)
    LogOnce(0, "mark:" + s.error().message,
            "cannot write " + m_options.withdraw_mark_path + ": " + s.error().message);
}

void Engine::UpdateGauges() {
  m_metrics->gpus_total->Set(static_cast<double>(m_pool.Gpus().size()));
  m_metrics->gpus_healthy->Set(m_pool.Healthy());
  std::map<std::string, double, std::less<>> counts;
  for (const auto& [id, action] : m_actions) counts[std::string(StepName(action))] += 1;
  for (auto& [step, gauge] : m_metrics->leases_by_step) {
    auto it = counts.find(step);
    gauge->Set(it == counts.end() ? 0 : it->second);
  }
}

base::Status Engine::SubmitManifest(uint64_t lease_id, std::string_view manifest) {
  base::MutexLock lock(m_mu);
  const std::string name = "lease " + std::to_string(lease_id);
  const LeaseRecord* found = m_book.Find(lease_id);
  if (found == nullptr) return Fail(ErrorCode::kNotFound, name + " is not a lease of this machine");
  LeaseRecord r = *found;
  if (!r.end.empty()) return Fail(ErrorCode::kConflict, name + " is closed (" + r.end + ")");
  auto ledger = m_ledger.find(lease_id);
  if (r.started_ms == 0 || ledger == m_ledger.end())
    return Fail(ErrorCode::kConflict,
                name +
                    " has not started yet as this provider sees the ledger (its view trails "
                    "the ledger by up to one block): send the manifest again shortly");
  if (r.manifest_received)
    return Fail(ErrorCode::kConflict, name + " already has its manifest and workload");
  return LaunchWorkload(r, ledger->second, manifest);
}

base::Status Engine::LaunchWorkload(LeaseRecord& r, const client::LeaseInfo& lease,
                                    std::string_view manifest) {
  const uint64_t lease_id = r.lease_id;
  const std::string name = "lease " + std::to_string(lease_id);
  GPUNET_TRY(m_hooks.verify_manifest ? m_hooks.verify_manifest(r.manifest_hash, manifest)
                                     : VerifyManifestHash(r.manifest_hash, manifest));
  SpecInput input{lease, r.gpu_uuids, manifest};
  runtime::WorkloadSpec spec;
  GPUNET_TRY_ASSIGN(spec,
                    m_hooks.build_spec ? m_hooks.build_spec(input) : MinimalWorkloadSpec(input));
  // Whatever the builder did: this workload id, and exactly the lease's GPUs.
  spec.id = WorkloadIdOf(lease_id);
  spec.gpu_uuids = r.gpu_uuids;
  r.stop_grace_ms = spec.stop_grace_ms;  // written with the record below
  const bool kept_before = !r.manifest.empty();
  if (!kept_before) {
    // Durable before the launch: a crash from here on launches it at the next start.
    r.manifest = std::string(manifest);
    if (auto s = m_book.Put(r); !s) {
      r.manifest.clear();
      return s;
    }
    Event(lease_id, "manifest_accepted", "manifest accepted (its hash is the lease's)");
  }
  CrashPoint("manifest_accepted", lease_id);
  if (auto s = m_workloads.Start(spec); !s) {
    // Refused at once (the tenant hears why): the book forgets the manifest again,
    // unless a crash had kept it, whose launch the reconcile retries.
    if (!kept_before) {
      r.manifest.clear();
      (void)PutRecord(r);
    }
    return s;
  }
  CrashPoint("workload_launched", lease_id);
  r.manifest_received = true;
  r.manifest.clear();
  GPUNET_TRY(m_book.Put(r));
  Log(name + ": manifest accepted, workload " + spec.id + " started" +
      (kept_before ? " (kept across a restart)" : ""));
  Event(lease_id, "workload_running", "workload " + spec.id + " started");
  return {};
}

bool Engine::FreeGpus(LeaseRecord& r) {
  const std::string name = "lease " + std::to_string(r.lease_id);
  if (m_hooks.check_gpu_idle) {
    for (const auto& g : r.gpu_uuids)
      if (auto s = m_hooks.check_gpu_idle(g); !s) {
        LogOnce(r.lease_id, "busy:" + g,
                name + ": GPU " + g + " not idle, kept out of the pool: " + s.error().message);
        return false;
      }
  } else {
    Log(name + ": no GPU idle check on this host; GPUs go back to the pool unchecked");
  }
  CrashPoint("gpus_idle", r.lease_id);
  const std::vector<std::string> gpus = std::move(r.gpu_uuids);
  r.gpu_uuids.clear();
  // Its stop was not recorded when a crash came between the stop and the record.
  const bool tell_stopped = !r.workload_stopped;
  r.workload_stopped = true;
  if (!PutRecord(r)) return false;
  if (tell_stopped)
    Event(r.lease_id, "workload_stopped", "workload stopped; outputs and logs kept for retention");
  m_pool.Release(r.lease_id);
  std::string list;
  for (const auto& g : gpus) list += (list.empty() ? "" : ",") + g;
  Log(name + ": workload stopped, GPUs " + list +
      " idle and back in the pool; outputs kept for retention");
  return true;
}

base::Result<TenantLeaseView> Engine::TenantLease(uint64_t lease_id) const {
  base::MutexLock lock(m_mu);
  const LeaseRecord* record = m_book.Find(lease_id);
  if (record == nullptr)
    return Fail(ErrorCode::kNotFound,
                "lease " + std::to_string(lease_id) + " is not a lease of this machine");
  TenantLeaseView view;
  view.record = *record;
  if (auto it = m_ledger.find(lease_id); it != m_ledger.end()) view.ledger = it->second;
  auto action = m_actions.find(lease_id);
  view.step = action == m_actions.end() ? "pending" : std::string(StepName(action->second));
  return view;
}

std::optional<ReleasedLease> Engine::ReleasedLeaseOf(uint64_t lease_id) const {
  base::MutexLock lock(m_mu);
  const ReleasedLease* released = m_book.FindReleased(lease_id);
  if (released == nullptr) return std::nullopt;
  return *released;
}

Json Engine::StatusJson() const {
  base::MutexLock lock(m_mu);
  Json gpus = Json::array();
  for (const auto& g : m_pool.Gpus())
    gpus.push_back({{"uuid", g.uuid},
                    {"model", g.model},
                    {"healthy", g.healthy},
                    {"problems", g.problems},
                    {"lease_id", g.lease_id}});
  Json leases = Json::array();
  for (const auto& [id, record] : m_book.Records()) {
    auto it = m_actions.find(id);
    leases.push_back({{"lease_id", id},
                      {"step", it == m_actions.end() ? "pending" : StepName(it->second)},
                      {"next", it == m_actions.end() ? "" : LeaseActionName(it->second)},
                      {"gpus", record.gpu_uuids},
                      {"workload", record.manifest_received ? WorkloadIdOf(id) : ""}});
  }
  return {{"gpus", std::move(gpus)}, {"leases", std::move(leases)}};
}

std::map<uint64_t, LeaseRecord> Engine::RecordsForTest() const {
  base::MutexLock lock(m_mu);
  return m_book.Records();
}

}  // namespace gpunet::provider
