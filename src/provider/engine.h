// The provider daemon's lease engine (issue 17 item 4; docs/provider.md).
//
// Level-triggered: its state is the durable lease book (provider/lease_book.h), the
// ledger's view of this provider's leases and the runtime's workloads. Every block
// event or timer runs Reconcile(), which reads all three and takes the next
// idempotent step per lease (NextStep, a pure function the unit tests drive):
//
//   new lease of this machine -> GPUs set aside, book written  (before any tx)
//   reserved on the ledger    -> MsgLeaseStarted               (once the tenant API answers)
//   started, no manifest      -> wait; MsgLeaseClose(no_manifest) from started + manifest_timeout
//   manifest submitted        -> hash checked, workload started with exactly the lease's GPUs
//   funds end within its grace -> SIGTERM to the workload (its supervisor kills it after
//                                the grace, at paid_until), once per paid_until
//   a GPU of the lease failed -> workload stopped, MsgLeaseClose at once (billing stops)
//   closed on the ledger      -> workload stopped, its GPUs back to the pool after the
//                                idle check; its run dir removed after outputs_retention
//                                (at once when it never ran)
//
// plus one MsgHeartbeat for all leases every heartbeat interval and batched
// MsgLeaseWithdraw on the withdraw schedule. A tx whose effect the ledger shows is
// never sent again; the ledger's "already done" answer (lease_state on a start or a
// close) counts as done. The node being unreachable never stops a workload: the
// engine logs it once, keeps everything as it is and tries again.
//
// Seams for the parts other helpers build (all optional, std::function):
// tenant_api_ready (h17-auth's API), check_gpu_idle (h17-gpu's scrub check),
// build_spec (h17-manifest's workload plan), verify_manifest (its canonical hash),
// health (h17-gpu's NVML health), event (the lease events the tenant reads). Chain
// and runtime are behind ChainPort and WorkloadPort so tests run the engine against
// fakes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/mutex.h"
#include "base/result.h"
#include "client/market_answers.h"
#include "codec/types.h"
#include "market/params.h"
#include "provider/gpu_pool.h"
#include "provider/lease_book.h"
#include "runtime/runtime.h"
#include "runtime/spec.h"

namespace gpunet::server::metrics {
class Registry;
class Counter;
class Gauge;
}  // namespace gpunet::server::metrics

namespace gpunet::provider {

/// The ledger as one reconcile sees it.
struct ChainView {
  uint64_t height = 0;
  uint64_t time_ms = 0;  ///< the latest block's time: the ledger's clock for deadlines
  market::Params params;
  /// The provider's open leases, plus every lease asked for by id that the node knows
  /// (closed ones included). A lease absent here is unknown to the node.
  std::map<uint64_t, client::LeaseInfo> leases;
};

/// What a committed tx got. code 0 = applied; otherwise the receipt's market code.
struct TxOutcome {
  uint16_t code = 0;
  std::string code_name;
  std::string message;
  uint64_t height = 0;
};

/// The chain as the engine uses it (client library in production: ChainClient in
/// provider/chain_watch.h; a fake ledger in tests).
class ChainPort {
 public:
  virtual ~ChainPort() = default;
  /// The provider's open leases and each lease of `also` (catch-up for leases the
  /// book holds but the open list no longer shows). An error = the node is unreachable
  /// or answered nonsense; the engine then changes nothing.
  virtual base::Result<ChainView> Fetch(const std::vector<uint64_t>& also) = 0;
  /// Signs `msgs` (1..kMsgsPerTxMax) with the operator key as one tx and waits for the
  /// block. An error = not known to have committed (refused, timed out, unreachable).
  virtual base::Result<TxOutcome> Send(const std::vector<codec::Msg>& msgs) = 0;
};

/// The runtime as the engine uses it (runtime::Runtime through RuntimeWorkloads in
/// production; a map in tests).
class WorkloadPort {
 public:
  virtual ~WorkloadPort() = default;
  virtual std::vector<std::string> List() = 0;
  /// true while the workload runs, false once it ended; kNotFound when there is none.
  virtual base::Result<bool> Running(const std::string& id) = 0;
  virtual base::Status Start(const runtime::WorkloadSpec& spec) = 0;
  /// Stops it, keeping its run dir (logs, outputs) until Remove. Blocks for the
  /// workload's SIGTERM grace.
  virtual base::Status Stop(const std::string& id) = 0;
  /// Starts a stop and returns at once: SIGTERM now, the kill after the workload's
  /// grace (its supervisor keeps the time). Asking again while that runs changes
  /// nothing. The default (fakes) is Stop.
  virtual base::Status RequestStop(const std::string& id) { return Stop(id); }
  virtual base::Status Remove(const std::string& id) = 0;
  /// True when the workload ended because its supervisor died: a podman container
  /// may then still run, which only Remove ends.
  virtual bool Lost(const std::string& /*id*/) { return false; }
};

/// The engine's WorkloadPort over the real runtime (the daemon's, and the
/// integration test's).
class RuntimeWorkloads final : public WorkloadPort {
 public:
  explicit RuntimeWorkloads(runtime::RuntimeOptions options);
  std::vector<std::string> List() override;
  base::Result<bool> Running(const std::string& id) override;
  base::Status Start(const runtime::WorkloadSpec& spec) override;
  base::Status Stop(const std::string& id) override;
  base::Status RequestStop(const std::string& id) override;
  base::Status Remove(const std::string& id) override;
  bool Lost(const std::string& id) override;
  const runtime::Runtime& Underlying() const { return m_runtime; }

 private:
  runtime::Runtime m_runtime;
};

/// What the spec builder gets: the lease on the ledger, the GPUs set aside, and the
/// tenant's manifest bytes (already checked against the lease's manifest_hash).
struct SpecInput {
  const client::LeaseInfo& lease;
  const std::vector<std::string>& gpu_uuids;
  std::string_view manifest;
};

/// The engine's minimal spec builder until h17-manifest's workload plan lands: the
/// manifest must be a JSON object {"command": ["argv0", ...]} and nothing else;
/// default resources; exactly the lease's GPUs; the lease's id and end.
base::Result<runtime::WorkloadSpec> MinimalWorkloadSpec(const SpecInput& input);

/// The default manifest check: BLAKE2b-256(manifest) == expected.
base::Status VerifyManifestHash(const base::Hash32& expected, std::string_view manifest);

/// The fixed crash points of a lease's life (docs/provider.md "Crash safety"), in
/// the order a lease meets them. Each is one call of EngineHooks::crash_point (the
/// "_sent" ones: ChainClient's after-submit seam, between the node accepting the tx
/// and the engine seeing it committed):
///   reserved           GPUs set aside, the book written, before any tx
///   started_sent       MsgLeaseStarted accepted by the node, its commit not yet seen
///   started            MsgLeaseStarted committed
///   manifest_accepted  the manifest checked and kept in the book, not yet launched
///   workload_launched  the runtime started the workload, the book does not say so
///   heartbeat_sent     a MsgHeartbeat accepted by the node, its commit not yet seen
///   withdraw_sent      a MsgLeaseWithdraw batch accepted, its commit not yet seen
///   workload_stopped   the ledger closed the lease, the workload is stopped, the
///                      book does not say so
///   gpus_idle          the closed lease's GPUs passed the idle check, not yet back
///                      in the pool (the book still holds them)
inline constexpr std::string_view kCrashPoints[] = {
    "reserved",       "started_sent",  "started",          "manifest_accepted", "workload_launched",
    "heartbeat_sent", "withdraw_sent", "workload_stopped", "gpus_idle"};

struct EngineHooks {
  /// OK when the tenant API answers for this lease (LeaseStarted means it does).
  /// Unset: this build has no tenant API yet, and nothing is checked.
  std::function<base::Status(uint64_t lease_id)> tenant_api_ready;
  /// OK when the GPU is idle and scrubbed and may go to the next lease. Unset: no
  /// check on this host (logged once per lease).
  std::function<base::Status(const std::string& uuid)> check_gpu_idle;
  /// Unset: MinimalWorkloadSpec.
  std::function<base::Result<runtime::WorkloadSpec>(const SpecInput&)> build_spec;
  /// Unset: VerifyManifestHash.
  std::function<base::Status(const base::Hash32& expected, std::string_view manifest)>
      verify_manifest;
  /// The GPUs' health now. Unset: every GPU stays as the pool was built.
  std::function<std::vector<GpuHealth>()> health;
  /// Test seam for crash tests: called at the fixed points of kCrashPoints (one call
  /// per point). The daemon SIGKILLs itself there when $GPUNET_PROVIDER_CRASH_AT
  /// names the point (tests/integration/provider_crash).
  std::function<void(std::string_view point, uint64_t lease_id)> crash_point;
  /// One line per event (the daemon writes it to stderr). Unset: discarded.
  std::function<void(std::string_view line)> log;
  /// A lifecycle event of a lease as its tenant reads it (GET /leases/{id}/events;
  /// the daemon appends it to provider/event_log.h): kind is a short stable word
  /// (reserved, started, manifest_accepted, workload_running, funds_ending, gpu_failed, closing,
  /// closed, workload_stopped, released). Called with the engine's lock held: it must
  /// not call back into the engine. Unset: discarded.
  std::function<void(uint64_t lease_id, std::string_view kind, std::string_view message)> event;
};

struct EngineOptions {
  codec::Address provider;  ///< the provider (owner) address the leases name
  uint32_t machine_id = 0;  ///< this host's machine on the ledger (>= 1)
  /// 0 = a third of the chain's heartbeat_timeout_ms.
  uint64_t heartbeat_every_ms = 0;
  uint64_t withdraw_every_ms = 60ull * 60 * 1000;
  /// Where the time of the last withdrawal (wall clock, ms) is kept across restarts
  /// ("" = in memory only: a restart starts a new period).
  std::string withdraw_mark_path;
  uint64_t outputs_retention_ms = 24ull * 60 * 60 * 1000;
  /// Where /metrics counts (nullable).
  server::metrics::Registry* metrics = nullptr;
};

/// What a lease needs next, by NextStep.
enum class LeaseAction : uint8_t {
  kWaitTenantApi,    ///< reserved; the tenant API does not answer yet
  kSendStarted,      ///< reserved; send MsgLeaseStarted
  kWaitManifest,     ///< started; no manifest yet, before the manifest deadline
  kCloseNoManifest,  ///< started; the manifest deadline passed: MsgLeaseClose(no_manifest)
  kLaunchWorkload,   ///< started; the book holds an accepted manifest, no workload (crash)
  kAdoptWorkload,    ///< started; a workload exists that the book does not know of (crash)
  kRunning,          ///< started; the workload exists (running or ended by itself)
  kFundsEnding,      ///< started; running; paid_until within its grace: SIGTERM (once)
  kCloseUnhealthy,   ///< open; a GPU of the lease failed: stop, MsgLeaseClose
  kObserveClosed,    ///< the ledger closed it; the book does not know yet
  kStopWorkload,     ///< closed; its workload still runs
  kFreeGpus,         ///< closed; workload stopped: GPUs idle-checked and back to the pool
  kRetain,           ///< closed; outputs kept until closed + outputs_retention
  kRelease,  ///< closed, retention over, no workload or a lost one: remove it, idle check, free
             ///< GPUs
};
std::string_view LeaseActionName(LeaseAction action);

struct StepInput {
  const LeaseRecord* record = nullptr;
  const client::LeaseInfo* ledger = nullptr;  ///< nullptr: the node does not know the lease
  bool workload_exists = false;
  bool workload_running = false;
  bool workload_lost = false;  ///< ended with its supervisor lost (WorkloadPort::Lost)
  bool gpu_unhealthy = false;
  bool tenant_api_ready = true;
  uint64_t chain_time_ms = 0;
  /// The later of chain_time_ms and this host's clock: when the funds end is judged
  /// (the ledger's clock only moves with blocks; the SIGTERM must not come late).
  uint64_t now_ms = 0;
  /// The workload's SIGTERM grace (the record's, else runtime::kStopGraceMsDefault).
  uint64_t stop_grace_ms = 0;
  uint64_t manifest_timeout_ms = 0;
  uint64_t outputs_retention_ms = 0;
};
/// The one step a lease needs now. Pure: the unit tests enumerate its cases.
LeaseAction NextStep(const StepInput& in);

/// The lease's step for status and metrics: reserved, started, running, closed,
/// retained ("closed" while its workload still runs).
std::string_view StepName(LeaseAction action);

/// A lease as the tenant API sees it (Engine::TenantLease).
struct TenantLeaseView {
  LeaseRecord record;
  /// The ledger's view at the last reconcile; nullopt when the node has not shown
  /// the lease yet (the API answers 503 then).
  std::optional<client::LeaseInfo> ledger;
  std::string step;  ///< StepName of its last step ("pending" before the first)
};

/// Thread-safe: one lock (m_mu) over the book, the pool and the last ledger view, and
/// a second (m_pass_mu) that keeps reconcile passes one at a time. A pass releases
/// m_mu while it talks to the node (a fetch, or a tx waiting for its block, up to
/// 20 s), so SubmitManifest and TenantLease from the tenant API's threads never wait
/// for a block. Nothing a pass holds across such a call can be changed meanwhile but
/// a record's manifest_received (SubmitManifest), which the pass reads afresh per
/// lease and never writes back stale: no step writes its record after a tx.
class Engine {
 public:
  /// `gpus` is this machine's inventory; `book` the opened lease book. The book's
  /// records are assigned their GPUs at once (a record naming a GPU this machine
  /// lacks is logged and keeps no GPU).
  Engine(EngineOptions options, EngineHooks hooks, ChainPort& chain, WorkloadPort& workloads,
         LeaseBook book, std::vector<PoolGpu> gpus, const base::Clock& clock);
  ~Engine();

  struct ReconcileResult {
    bool node_reachable = false;
    size_t txs_sent = 0;
    size_t txs_failed = 0;
  };
  /// One pass: health, ledger, book, workloads; the next step of each lease.
  ReconcileResult Reconcile() EXCLUDES(m_mu, m_pass_mu);

  /// The tenant's manifest for a started lease of this machine: its hash must be the
  /// lease's manifest_hash; then the workload starts with exactly the lease's GPUs.
  /// kNotFound (not a lease of this machine), kConflict (not started, closed, or a
  /// manifest already taken), kInvalidArgument (hash or content refused).
  base::Status SubmitManifest(uint64_t lease_id, std::string_view manifest) EXCLUDES(m_mu);

  /// The lease `lease_id` of this machine's book: kNotFound when the book has none
  /// (another provider's, another machine's, or released).
  base::Result<TenantLeaseView> TenantLease(uint64_t lease_id) const EXCLUDES(m_mu);
  /// The lease `lease_id` when this machine released it (its retention over), among the
  /// newest kReleasedLeasesMax; nullopt otherwise.
  std::optional<ReleasedLease> ReleasedLeaseOf(uint64_t lease_id) const EXCLUDES(m_mu);

  /// {"gpus":[{uuid,model,healthy,problems,lease_id}],"leases":[{lease_id,step,workload}]}
  /// as docs/provider.md gives daemon-status.json (the daemon adds updated_ms, mode).
  nlohmann::json StatusJson() const EXCLUDES(m_mu);

  /// The book as the engine holds it (tests).
  std::map<uint64_t, LeaseRecord> RecordsForTest() const EXCLUDES(m_mu);

 private:
  struct Metrics;
  struct Pass;
  void Log(const std::string& line) REQUIRES(m_mu);
  /// The node calls, made with m_mu released (see the class comment).
  base::Result<ChainView> FetchUnlocked(const std::vector<uint64_t>& also) REQUIRES(m_mu);
  base::Result<TxOutcome> SendUnlocked(const std::vector<codec::Msg>& msgs) REQUIRES(m_mu);
  void Event(uint64_t lease_id, std::string_view kind, const std::string& message) REQUIRES(m_mu);
  void LogOnce(uint64_t lease_id, const std::string& key, const std::string& line) REQUIRES(m_mu);
  bool SendTx(const std::vector<codec::Msg>& msgs, const std::string& what, ReconcileResult& result)
      REQUIRES(m_mu);
  void AdoptNewLeases(const ChainView& view) REQUIRES(m_mu);
  void AdoptOrphanWorkloads(const ChainView& view, const std::set<std::string>& workloads)
      REQUIRES(m_mu);
  void StepLease(uint64_t lease_id, const ChainView& view, const std::set<std::string>& workloads,
                 ReconcileResult& result) REQUIRES(m_mu);
  StepInput InputFor(const LeaseRecord& record, const client::LeaseInfo* ledger,
                     const ChainView& view, const std::set<std::string>& workloads) REQUIRES(m_mu);
  /// Stops the lease's workload and records it; false (logged once) when it cannot.
  bool StopWorkload(LeaseRecord& record) REQUIRES(m_mu);
  /// kFundsEnding: SIGTERM now (RequestStop: the engine's loop does not wait for the
  /// grace), then the record and the event, once per paid_until.
  void StopForFunds(LeaseRecord& record, const client::LeaseInfo& ledger, uint64_t grace_ms)
      REQUIRES(m_mu);
  void CloseUnhealthy(LeaseRecord& record, const client::LeaseInfo* ledger, bool running,
                      ReconcileResult& result) REQUIRES(m_mu);
  bool CloseLease(uint64_t lease_id, codec::CloseReason reason, const std::string& why,
                  ReconcileResult& result) REQUIRES(m_mu);
  void ReleaseLease(uint64_t lease_id, bool workload_exists) REQUIRES(m_mu);
  /// The closed lease's GPUs through the idle check and back to the pool, the
  /// record's gpu_uuids emptied first; false (logged once) when a GPU is not idle.
  bool FreeGpus(LeaseRecord& record) REQUIRES(m_mu);
  /// Checks the manifest, keeps it in the record, starts the workload with exactly
  /// the lease's GPUs and records that it runs (SubmitManifest, and kLaunchWorkload
  /// after a crash between the two).
  base::Status LaunchWorkload(LeaseRecord& record, const client::LeaseInfo& lease,
                              std::string_view manifest) REQUIRES(m_mu);
  void CrashPoint(std::string_view point, uint64_t lease_id) const;
  void Periodic(const ChainView& view, ReconcileResult& result) REQUIRES(m_mu);
  void UpdateGauges() REQUIRES(m_mu);
  void WriteWithdrawMark() REQUIRES(m_mu);
  bool PutRecord(const LeaseRecord& record) REQUIRES(m_mu);

  const EngineOptions m_options;
  const EngineHooks m_hooks;
  ChainPort& m_chain;
  WorkloadPort& m_workloads;
  const base::Clock& m_clock;
  std::unique_ptr<Metrics> m_metrics;

  base::Mutex m_pass_mu;  ///< taken before m_mu
  mutable base::Mutex m_mu;
  LeaseBook m_book GUARDED_BY(m_mu);
  GpuPool m_pool GUARDED_BY(m_mu);
  std::map<uint64_t, client::LeaseInfo> m_ledger GUARDED_BY(m_mu);  ///< last view's leases
  std::map<uint64_t, LeaseAction> m_actions GUARDED_BY(m_mu);       ///< last step per lease
  /// Last logged state per lease (0: the txs that name none), so a state is
  /// logged when it changes, not on every retry.
  std::map<uint64_t, std::string> m_logged GUARDED_BY(m_mu);
  std::set<std::string> m_foreign_logged GUARDED_BY(m_mu);  ///< workloads not of a lease
  bool m_node_reachable GUARDED_BY(m_mu) = true;
  bool m_first_pass GUARDED_BY(m_mu) = true;
  int64_t m_last_heartbeat_ms GUARDED_BY(m_mu) = 0;  ///< local clock; 0 = never
  int64_t m_last_withdraw_ms GUARDED_BY(m_mu) = 0;   ///< wall clock; 0 = no period yet
};

}  // namespace gpunet::provider
