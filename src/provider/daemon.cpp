#include "provider/daemon.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "base/check.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "client/manifest.h"
#include "client/market_client.h"
#include "client/market_tx.h"
#include "client/node_client.h"
#include "crypto/address.h"
#include "provider/api_process.h"
#include "provider/bidder.h"
#include "provider/broker_service.h"
#include "provider/chain_watch.h"
#include "provider/event_log.h"
#include "provider/lease_book.h"
#include "provider/nonce_store.h"
#include "provider/request_auth.h"
#include "provider/workload_plan.h"
#include "runtime/gpu_health.h"
#include "runtime/nvml.h"
#include "runtime/runtime.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

namespace {

constexpr int64_t kTickMs = 1'000;
constexpr int64_t kNodeBackoffMaxMs = 10'000;

base::Result<std::pair<std::string, uint16_t>> SplitHostPort(const std::string& text) {
  size_t colon = text.rfind(':');
  unsigned long port = 0;
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < text.size() &&
            text.size() - colon - 1 <= 5 &&
            text.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
            (port = std::stoul(text.substr(colon + 1))) <= 65535;
  if (!ok)
    return Fail(ErrorCode::kInvalidArgument,
                "daemon.metrics_listen \"" + text + "\" is not host:port (e.g. 127.0.0.1:9464)");
  return std::pair{text.substr(0, colon), static_cast<uint16_t>(port)};
}

/// The provider this key operates: `wanted` when given (its operator must be the
/// key), else the provider the key owns, else the one that names it as operator.
base::Result<codec::Address> ResolveProvider(const std::string& url, const crypto::KeyPair& key,
                                             const std::string& wanted) {
  client::MarketClient market(url);
  const std::string me = crypto::AddressToString(crypto::AddressOf(key.Public()));
  std::string owner = wanted;
  if (owner.empty()) {
    if (auto own = market.Provider(me); own) {
      owner = me;
    } else if (own.error().code != ErrorCode::kNotFound) {
      return std::unexpected(own.error());
    } else {
      client::MarketPage<client::ProviderInfo> page;
      GPUNET_TRY_ASSIGN(page, market.Providers(1000));
      for (const auto& p : page.entries)
        if (p.operator_address == me) owner = p.owner;
      if (owner.empty())
        return Fail(ErrorCode::kNotFound,
                    "no provider on the ledger is owned or operated by " + me +
                        "; register it first (gpunet provider register), or pass --provider");
    }
  }
  client::MarketAnswer<client::ProviderInfo> p;
  GPUNET_TRY_ASSIGN(p, market.Provider(owner));
  if (p.value.owner != me && p.value.operator_address != me)
    return Fail(ErrorCode::kPermissionDenied, "provider " + owner + " is operated by " +
                                                  p.value.operator_address + ", not by this key (" +
                                                  me + ")");
  codec::Address address;
  GPUNET_TRY_ASSIGN(address, crypto::ParseAddress(owner));
  return address;
}

std::string ModeName(GpuMode mode) {
  return mode == GpuMode::kNvml ? "nvml" : "declared";
}

}  // namespace

base::Result<client::MachineConfig> ThisMachine(const client::ProviderConfig& config) {
  std::vector<const client::MachineConfig*> all;
  for (const auto& s : config.sites)
    for (const auto& m : s.machines) all.push_back(&m);
  const uint32_t wanted = config.daemon.machine_id;
  if (wanted == 0) {
    if (all.size() == 1) return *all[0];
    return Fail(ErrorCode::kInvalidArgument,
                config.file + " lists " + std::to_string(all.size()) +
                    " machines; say which one this host is with daemon: machine_id: N");
  }
  for (const auto* m : all)
    if (m->id == wanted) return *m;
  return Fail(ErrorCode::kInvalidArgument, config.file + ": daemon.machine_id " +
                                               std::to_string(wanted) +
                                               " is not a machine of its sites");
}

base::Result<std::vector<PoolGpu>> InventoryGpus(const client::ProviderConfig& config,
                                                 const client::MachineConfig& machine,
                                                 const runtime::NvmlSnapshot* nvml) {
  std::vector<PoolGpu> gpus;
  if (!config.daemon.declared_gpus.empty()) {
    for (const auto& d : config.daemon.declared_gpus)
      gpus.push_back({d.uuid, machine.gpu_model, d.minor, true, {}, 0});
    return gpus;
  }
  GPUNET_CHECK(nvml != nullptr);
  for (const auto& g : nvml->gpus) {
    if (g.uuid.empty()) continue;  // NVML could not name it: nothing can lease it
    PoolGpu p{g.uuid, machine.gpu_model, g.minor, g.problem.empty(), {}, 0};
    if (!g.problem.empty()) p.problems.push_back(g.problem);
    gpus.push_back(std::move(p));
  }
  return gpus;
}

EngineHooks WithGpuMonitor(EngineHooks hooks, std::shared_ptr<runtime::GpuMonitor> monitor,
                           uint64_t poll_ms) {
  GPUNET_CHECK(monitor != nullptr);
  // Sampled at most every poll_ms (health_poll); a reconcile in between reuses it.
  struct Cache {
    std::mutex mu;
    std::chrono::steady_clock::time_point at{};
    std::vector<GpuHealth> last;
  };
  auto cache = std::make_shared<Cache>();
  hooks.health = [monitor, cache, poll_ms] {
    std::lock_guard lock(cache->mu);
    const auto now = std::chrono::steady_clock::now();
    if (!cache->last.empty() && now - cache->at < std::chrono::milliseconds(poll_ms))
      return cache->last;
    std::vector<GpuHealth> report;
    for (const auto& g : monitor->Inventory().gpus) {
      if (g.uuid.empty()) continue;
      auto sample = monitor->ProbeGpuHealth(g.uuid);
      GpuHealth h{g.uuid, false, {}};
      if (!sample) {  // in the inventory at start and gone now: it failed
        h.problems.push_back("nvml: " + sample.error().message);
      } else {
        const runtime::GpuHealth verdict = runtime::EvaluateGpuHealth(*sample);
        h.healthy = verdict.healthy;
        for (const auto& p : verdict.problems) h.problems.push_back(p.check + ": " + p.reason);
      }
      report.push_back(std::move(h));
    }
    cache->at = now;
    cache->last = report;
    return report;
  };
  hooks.check_gpu_idle = [monitor](const std::string& uuid) -> base::Status {
    runtime::GpuIdle idle;
    GPUNET_TRY_ASSIGN(idle, monitor->CheckGpuIdle(uuid));
    if (idle.idle) return {};
    std::string why;
    for (const auto& r : idle.reasons) why += (why.empty() ? "" : "; ") + r;
    return Fail(ErrorCode::kConflict, why.empty() ? "not idle" : why);
  };
  return hooks;
}

EngineHooks WithWorkloadPlan(EngineHooks hooks,
                             std::function<base::Result<client::MachineInfo>()> machine,
                             std::function<std::vector<runtime::Environment>()> environments) {
  hooks.verify_manifest = [](const base::Hash32& expected, std::string_view bytes) -> base::Status {
    GPUNET_TRY(client::VerifySubmittedManifest(bytes, expected));
    return {};
  };
  hooks.build_spec = [machine = std::move(machine), environments = std::move(environments)](
                         const SpecInput& in) -> base::Result<runtime::WorkloadSpec> {
    WorkloadPlanInput plan_in;
    plan_in.lease = in.lease;
    GPUNET_TRY_ASSIGN(plan_in.machine, machine());
    plan_in.ends_at_ms = static_cast<int64_t>(in.lease.paid_until_ms);
    GPUNET_TRY_ASSIGN(plan_in.manifest,
                      client::VerifySubmittedManifest(in.manifest, in.lease.manifest_hash));
    plan_in.gpu_uuids = in.gpu_uuids;
    for (const auto& e : environments())
      plan_in.environments.push_back(e.backend == runtime::Backend::kPodman
                                         ? ImageEnvironment(e.name)
                                         : Environment{e.name, e.backend, ""});
    WorkloadPlan plan;
    GPUNET_TRY_ASSIGN(plan, PlanWorkload(plan_in));
    plan.spec.stop_grace_ms = std::clamp(plan.stop_grace_ms, 1u, runtime::kStopGraceMsMax);
    GateOnSecrets(plan.spec, plan.secret_names);
    return plan.spec;
  };
  return hooks;
}

base::Status CheckDevelopmentChain(const Json& status_json, std::string_view node_url,
                                   std::string_view what, std::string_view instead) {
  auto it = status_json.find("development");
  if (it != status_json.end() && it->is_boolean() && it->get<bool>()) return {};
  return Fail(ErrorCode::kPermissionDenied,
              std::string(what) + ", which only a development chain allows, and the chain at " +
                  std::string(node_url) + " does not say \"development\": true in its /status; " +
                  std::string(instead));
}

namespace {

/// Waits (logging once) until the node answers /status; an error when stopped first.
base::Result<client::NodeStatusInfo> WaitForNode(const std::string& url,
                                                 const std::atomic<bool>& stop,
                                                 const std::function<void(std::string_view)>& log) {
  bool said = false;
  int64_t backoff_ms = 250;
  while (!stop) {
    auto status = client::NodeClient(url).Status();
    if (status) return status;
    if (!said) log("waiting for the node: " + status.error().message);
    said = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, kNodeBackoffMaxMs);
  }
  return Fail(ErrorCode::kUnavailable, "stopped before the node answered");
}

base::Status WriteStatusFile(const ProviderHome& home, const Engine& engine, GpuMode mode) {
  Json j = engine.StatusJson();
  j["updated_ms"] = base::SystemClock::Instance().NowMs();
  j["mode"] = ModeName(mode);
  return base::WriteFileAtomic(home.StateDir() + "/daemon-status.json", j.dump(2) + "\n",
                               {.mode = 0644});
}

/// Plain-HTTP /metrics on daemon.metrics_listen.
base::Result<std::unique_ptr<server::HttpServer>> StartMetrics(
    const std::string& listen_text, const server::metrics::Registry& registry) {
  std::pair<std::string, uint16_t> listen;
  GPUNET_TRY_ASSIGN(listen, SplitHostPort(listen_text));
  server::ServerOptions so;
  so.host = listen.first;
  so.port = listen.second;
  so.worker_threads = 1;
  so.ws_topics = {};
  auto server = std::make_unique<server::HttpServer>(so);
  server->Handle("GET", "/metrics", [&registry](const server::Request&) {
    server::Response r;
    r.content_type = std::string(server::metrics::kContentType);
    r.body = registry.Render();
    return r;
  });
  GPUNET_TRY(server->Start());
  return server;
}

/// $GPUNET_PROVIDER_CRASH_AT ("" when unset): a point of kCrashPoints, else an error.
base::Result<std::string> CrashPointOfEnv() {
  const char* at = std::getenv("GPUNET_PROVIDER_CRASH_AT");
  if (at == nullptr || *at == '\0') return std::string();
  if (std::ranges::find(kCrashPoints, std::string_view(at)) != std::end(kCrashPoints))
    return std::string(at);
  std::string known;
  for (std::string_view p : kCrashPoints) known += (known.empty() ? "" : ", ") + std::string(p);
  return Fail(ErrorCode::kInvalidArgument, "GPUNET_PROVIDER_CRASH_AT=" + std::string(at) +
                                               " is no crash point; they are: " + known);
}

/// The hooks the daemon adds to the caller's: its log, and the crash point `point`
/// (crash tests only; "" = none).
EngineHooks DaemonHooks(EngineHooks hooks, const std::string& point,
                        const std::function<void(std::string_view)>& log) {
  hooks.log = log;
  if (point.empty()) return hooks;
  log("GPUNET_PROVIDER_CRASH_AT=" + point + ": this daemon kills itself there (a crash test)");
  hooks.crash_point = [point, log](std::string_view where, uint64_t lease_id) {
    if (where != point) return;
    log("lease " + std::to_string(lease_id) + ": crash point " + point + ": SIGKILL");
    ::raise(SIGKILL);
  };
  return hooks;
}

/// Reconciles on every block (ChainWatch) and at least every tick until `stop`.
/// Retries never wait longer than a heartbeat interval, so a node that comes back
/// gets the next heartbeat within one interval, well before the fault deadline.
void Loop(Engine& engine, Bidder& bidder, const DaemonSetup& setup, GpuMode mode,
          int64_t backoff_max_ms, server::metrics::Registry& registry,
          const std::atomic<bool>& stop) {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = true;
  auto wake = [&] {
    {
      std::lock_guard lock(mu);
      woken = true;
    }
    cv.notify_one();
  };
  ChainWatch watch({setup.config.daemon.node_url, 250, backoff_max_ms}, wake, setup.log);
  auto& reconnects = registry.GetCounter("gpunet_provider_reconnects_total",
                                         "Times the block watch reconnected to the node");
  watch.Start();
  int64_t wait_ms = 0;
  bool status_failed = false;
  while (!stop) {
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return woken || stop; });
      woken = false;
    }
    if (stop) break;
    const auto result = engine.Reconcile();
    if (result.node_reachable) (void)bidder.Reconcile(engine.StatusJson());
    wait_ms = result.node_reachable ? std::min(kTickMs, backoff_max_ms)
                                    : std::clamp(wait_ms * 2, int64_t{250}, backoff_max_ms);
    if (uint64_t n = watch.Reconnects(); n > reconnects.Value())
      reconnects.Inc(n - reconnects.Value());
    auto written = WriteStatusFile(setup.home, engine, mode);
    if (!written && !status_failed)
      setup.log("cannot write daemon-status.json: " + written.error().message);
    status_failed = !written;
  }
  setup.log(
      "stopping: workloads keep running under their supervisors; the next start "
      "re-attaches");
  watch.Stop();
}

/// Declared GPUs are health-checked when daemon.nvml_library opens and lists every
/// one of them (a development host's libfake_nvml); otherwise they are not monitored.
base::Result<std::shared_ptr<runtime::GpuMonitor>> DeclaredGpuMonitor(
    const client::DaemonConfig& dc) {
  std::shared_ptr<runtime::GpuMonitor> monitor;
  GPUNET_TRY_ASSIGN(monitor, runtime::GpuMonitor::Open(dc.nvml_library));
  for (const auto& d : dc.declared_gpus)
    if (std::ranges::none_of(monitor->Inventory().gpus,
                             [&](const auto& g) { return g.uuid == d.uuid; }))
      return Fail(ErrorCode::kNotFound,
                  dc.nvml_library + " does not list the declared GPU " + d.uuid);
  return monitor;
}

/// This host's GPUs for the engine. In NVML mode it opens h17-gpu's GpuMonitor and
/// gives the engine its health and idle seams (the hooks keep the monitor alive).
/// Refuses a machine that sells more GPUs than the host has: the ledger would lease
/// GPUs that are not here.
base::Result<std::vector<PoolGpu>> OpenGpus(DaemonSetup& setup,
                                            const client::MachineConfig& machine, GpuMode mode) {
  const client::DaemonConfig& dc = setup.config.daemon;
  std::shared_ptr<runtime::GpuMonitor> monitor;
  if (mode == GpuMode::kNvml) {
    auto opened = runtime::GpuMonitor::Open(dc.nvml_library);
    if (!opened)
      return Fail(opened.error().code,
                  opened.error().message +
                      "; on a development chain without NVIDIA GPUs, declare them in "
                      "daemon.declared_gpus (docs/provider.md)");
    monitor = std::move(*opened);
    if (std::string xid = monitor->XidMonitoring(); !xid.empty()) setup.log("GPU health: " + xid);
    setup.hooks = WithGpuMonitor(std::move(setup.hooks), monitor, dc.health_poll_ms);
  } else if (auto declared = DeclaredGpuMonitor(dc); declared) {
    setup.log("GPU health: declared GPUs monitored through " + dc.nvml_library);
    setup.hooks = WithGpuMonitor(std::move(setup.hooks), *declared, dc.health_poll_ms);
  } else {
    setup.log("GPU health: not monitored (" + declared.error().message + ")");
  }
  std::vector<PoolGpu> gpus;
  GPUNET_TRY_ASSIGN(
      gpus, InventoryGpus(setup.config, machine, monitor ? &monitor->Inventory() : nullptr));
  if (gpus.size() < machine.gpu_count)
    return Fail(ErrorCode::kInvalidArgument,
                setup.config.file + ": machine " + std::to_string(machine.id) + " sells " +
                    std::to_string(machine.gpu_count) + " GPUs but this host has " +
                    std::to_string(gpus.size()) +
                    (mode == GpuMode::kDeclared ? " declared" : " that NVML lists") +
                    "; the ledger would lease GPUs that are not here: correct its gpus (and "
                    "provider apply) or the GPUs");
  if (gpus.size() > machine.gpu_count)
    setup.log("this host has " + std::to_string(gpus.size()) + " GPUs, machine " +
              std::to_string(machine.id) + " sells " + std::to_string(machine.gpu_count) +
              ": at most that many are leased at once");
  return gpus;
}

/// This machine's MsgMachineUpsert of provider.yaml (nullopt when it cannot be made:
/// then `provider apply` says why, and the record is left alone).
std::optional<codec::MsgMachineUpsert> MachineUpsertOf(const client::ProviderConfig& config,
                                                       const codec::Address& provider,
                                                       uint32_t machine_id) {
  auto msgs = client::InventoryMsgs(config, provider);
  if (!msgs) return std::nullopt;
  for (const auto& m : *msgs)
    if (const auto* mu = std::get_if<codec::MsgMachineUpsert>(&m);
        mu && mu->machine_id == machine_id)
      return *mu;
  return std::nullopt;
}

/// The tenant API's root side (docs/provider.md "Two processes"): the lease events,
/// the nonce store, the verifier, the broker and the tenant-facing process.
struct TenantSide {
  std::unique_ptr<EventLog> events;
  std::unique_ptr<NonceStore> nonces;
  std::unique_ptr<RequestVerifier> verifier;
  std::unique_ptr<BrokerService> broker;
  std::unique_ptr<ApiProcess> api;
  void Stop() {
    if (api) api->Stop();  // first: no new frames
    if (broker) broker->Stop();
  }
};

/// <state>/events, <state>/nonces, <state>/secrets (names only), all root's.
base::Status OpenTenantSide(const DaemonSetup& setup, TenantSide& tenant) {
  const std::string state = setup.home.StateDir();
  for (const char* d : {"/nonces", "/secrets"})
    if (auto s = base::MakeDirectory(state + d, 0700);
        !s && s.error().code != ErrorCode::kAlreadyExists)
      return s;
  GPUNET_TRY_ASSIGN(tenant.events, EventLog::Open(state + "/events"));
  GPUNET_TRY_ASSIGN(tenant.nonces,
                    NonceStore::Open(state + "/nonces",
                                     static_cast<uint64_t>(base::SystemClock::Instance().NowMs())));
  return {};
}

/// Every lifecycle event of the engine into the event log (a refused append is
/// logged: the event limit of a lease, or the disk).
EngineHooks WithEvents(EngineHooks hooks, EventLog& events,
                       const std::function<void(std::string_view)>& log) {
  hooks.event = [&events, log](uint64_t id, std::string_view kind, std::string_view message) {
    if (auto s = events.Append(id, kind, message, base::SystemClock::Instance().NowMs()); !s)
      log("lease " + std::to_string(id) + ": event " + std::string(kind) +
          " not kept: " + s.error().message);
  };
  return hooks;
}

/// The verifier and the broker over the engine, and the tenant-facing process when
/// setup.api_command names one.
base::Status StartTenantSide(const DaemonSetup& setup, const std::string& chain_id,
                             const codec::Address& provider, Engine& engine,
                             const runtime::Runtime& rt, server::metrics::Registry& registry,
                             TenantSide& tenant) {
  const client::DaemonConfig& dc = setup.config.daemon;
  VerifierConfig vc;
  vc.chain_id = chain_id;
  vc.provider = provider;
  vc.outputs_retention_ms = dc.outputs_retention_ms;
  tenant.verifier =
      std::make_unique<RequestVerifier>(vc, base::SystemClock::Instance(), *tenant.nonces);
  BrokerDeps deps;
  deps.engine = &engine;
  deps.verifier = tenant.verifier.get();
  deps.events = tenant.events.get();
  deps.attach = [&rt](const std::string& id) { return rt.Attach(id); };
  deps.poll = [&rt](const std::string& id) { return rt.Poll(id); };
  deps.environments = [&rt] { return rt.Environments(); };
  deps.open_session = [&rt](const std::string& id) -> base::Result<int> {
    GPUNET_TRY_ASSIGN(auto fd, rt.OpenSession(id));
    return fd.Release();
  };
  server::metrics::Counter* sessions =
      &registry.GetCounter("gpunet_provider_sessions_opened_total",
                           "Interactive sessions (exec, shell, forward, ssh) handed to the tenant "
                           "API to relay.");
  deps.session_opened = [sessions] { sessions->Inc(); };
  deps.secrets_dir = setup.home.StateDir() + "/secrets";
  deps.log = setup.log;
  tenant.broker = std::make_unique<BrokerService>(std::move(deps));
  if (setup.api_command.empty()) {
    setup.log("no tenant API process on this host (no api command): leases start without one");
    return {};
  }
  ApiProcessOptions ao;
  ao.command = setup.api_command;
  ao.listen = dc.listen;
  ao.chain_id = chain_id;
  ao.provider = crypto::AddressToString(provider);
  ao.key_path = setup.home.TlsKeyPath();
  ao.cert_path = setup.home.TlsCertPath();
  GPUNET_TRY_ASSIGN(ao.user, LookupUser(dc.api_user));
  BrokerService* broker = tenant.broker.get();
  ao.on_spawn = [broker](std::vector<int> fds) { broker->Serve(fds); };
  ao.log = setup.log;
  tenant.api = std::make_unique<ApiProcess>(std::move(ao));
  tenant.api->Start();
  return {};
}

}  // namespace

base::Status RunDaemon(DaemonSetup setup, const crypto::KeyPair& operator_key,
                       const std::atomic<bool>& stop) {
  GPUNET_CHECK(setup.log != nullptr);
  const auto& log = setup.log;
  const client::DaemonConfig& dc = setup.config.daemon;
  std::string crash_point;
  GPUNET_TRY_ASSIGN(crash_point, CrashPointOfEnv());
  client::MachineConfig machine;
  GPUNET_TRY_ASSIGN(machine, ThisMachine(setup.config));
  const GpuMode mode = dc.declared_gpus.empty() ? GpuMode::kNvml : GpuMode::kDeclared;
  std::vector<PoolGpu> gpus;
  GPUNET_TRY_ASSIGN(gpus, OpenGpus(setup, machine, mode));
  std::vector<BookProblem> problems;
  LeaseBook book;
  GPUNET_TRY_ASSIGN(book, LeaseBook::Open(setup.home.StateDir(), &problems));
  for (const auto& p : problems) log("lease book: " + p.file + " set aside: " + p.message);
  server::metrics::Registry registry;
  std::unique_ptr<server::HttpServer> metrics;
  GPUNET_TRY_ASSIGN(metrics, StartMetrics(dc.metrics_listen, registry));
  log("metrics: " + metrics->Url() + "/metrics");

  client::NodeStatusInfo status;
  auto waited = WaitForNode(dc.node_url, stop, log);
  if (!waited && stop) return {};  // SIGTERM while the node was down: a clean stop
  GPUNET_TRY_ASSIGN(status, std::move(waited));
  if (mode == GpuMode::kDeclared)
    GPUNET_TRY(CheckDevelopmentChain(status.raw, dc.node_url,
                                     "daemon.declared_gpus sells GPUs backed by device nodes",
                                     "remove declared_gpus to sell the GPUs NVML finds"));
  if (dc.withdraw_every_ms < client::kWithdrawEveryMinMs)
    GPUNET_TRY(CheckDevelopmentChain(status.raw, dc.node_url,
                                     "daemon.withdraw_every is under 1m (a tx every period)",
                                     "set it to 1m or more"));
  codec::Address provider;
  GPUNET_TRY_ASSIGN(provider, ResolveProvider(dc.node_url, operator_key, setup.provider));
  log("provider " + crypto::AddressToString(provider) + ", machine " + std::to_string(machine.id) +
      ", " + std::to_string(gpus.size()) + " GPUs (" + ModeName(mode) + "), chain " +
      status.chain_id + " at " + dc.node_url);

  runtime::RuntimeOptions ro;
  ro.state_dir = setup.home.SandboxDir();
  ro.supervisor_command = setup.supervisor_command;
  ro.device_dir = dc.device_dir;
  for (const auto& d : dc.declared_gpus) ro.gpu_minors[d.uuid] = d.minor;
  // NVML's minors are the driver's own answer: the runtime binds exactly those nodes.
  for (const auto& g : gpus)
    if (g.minor) ro.gpu_minors.emplace(g.uuid, *g.minor);
  ChainClient chain(dc.node_url, provider, operator_key);
  RuntimeWorkloads workloads(ro);
  TenantSide tenant;
  GPUNET_TRY(OpenTenantSide(setup, tenant));
  const runtime::Runtime& rt = workloads.Underlying();
  auto hooks = WithWorkloadPlan(
      WithEvents(DaemonHooks(setup.hooks, crash_point, log), *tenant.events, log),
      [url = dc.node_url, owner = crypto::AddressToString(provider),
       id = machine.id]() -> base::Result<client::MachineInfo> {
        client::MarketAnswer<client::ProviderInfo> p;
        GPUNET_TRY_ASSIGN(p, client::MarketClient(url).Provider(owner));
        for (const auto& m : p.value.machine_list)
          if (m.machine_id == id) return m;
        return Fail(ErrorCode::kNotFound,
                    "machine " + std::to_string(id) + " is not on the ledger; run provider apply");
      },
      [&rt] { return rt.Environments(); });
  if (!crash_point.empty()) chain.SetCrashAfterSubmit(crash_point, hooks.crash_point);
  if (!setup.api_command.empty())
    hooks.tenant_api_ready = [&tenant](uint64_t) { return tenant.api->Ready(); };
  EngineOptions eo;
  eo.provider = provider;
  eo.machine_id = machine.id;
  eo.heartbeat_every_ms = dc.heartbeat_every_ms;
  eo.withdraw_every_ms = dc.withdraw_every_ms;
  eo.withdraw_mark_path = setup.home.StateDir() + "/last-withdraw-ms";
  eo.outputs_retention_ms = dc.outputs_retention_ms;
  eo.metrics = &registry;
  Engine engine(eo, std::move(hooks), chain, workloads, std::move(book), std::move(gpus),
                base::SystemClock::Instance());
  GPUNET_TRY(StartTenantSide(setup, status.chain_id, provider, engine, rt, registry, tenant));
  const uint64_t heartbeat_every =
      dc.heartbeat_every_ms != 0 ? dc.heartbeat_every_ms : status.market.heartbeat_timeout_ms / 3;
  Bidder bidder({dc.node_url, provider, machine.id, dc.bidding, setup.home.StateDir(),
                 MachineUpsertOf(setup.config, provider, machine.id)},
                chain, log);
  Loop(engine, bidder, setup, mode,
       std::clamp<int64_t>(static_cast<int64_t>(heartbeat_every), 250, kNodeBackoffMaxMs), registry,
       stop);
  tenant.Stop();
  metrics->Stop();
  return {};
}

}  // namespace gpunet::provider
