// `gpunet provider run`'s body: wires the lease engine (provider/engine.h) to the
// node (provider/chain_watch.h), the workload runtime, the GPUs of this machine, the
// lease book under <home>/state and Prometheus /metrics (docs/provider.md).
//
// Run() returns when `stop` becomes true (SIGTERM, SIGINT) WITHOUT stopping any
// workload: each runs under its own supervisor, and the next start re-attaches to it
// through the runtime and the lease book. The node being down at start or later is
// waited out (logged once per change), never a reason to stop.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/market_config.h"
#include "crypto/ed25519.h"
#include "provider/engine.h"
#include "provider/home.h"
#include "runtime/gpu_health.h"

namespace gpunet::provider {

struct DaemonSetup {
  ProviderHome home;
  client::ProviderConfig config;
  /// gpn1 address of the provider (owner); "" = the provider whose operator (or
  /// owner) is the operator key, looked up on the ledger.
  std::string provider;
  /// argv that starts a workload supervisor: {"/path/gpunet", "sandbox", "supervise"}.
  std::vector<std::string> supervisor_command;
  /// argv that starts the tenant-facing process: {"/path/gpunet", "provider", "api"}
  /// (provider/api_process.h adds its fds and listen address). Empty: no tenant API
  /// on this host (the engine then starts leases without waiting for one).
  std::vector<std::string> api_command;
  /// Seams the other parts of issue 17 fill (tenant API, manifest plan). In NVML
  /// mode the daemon sets health and check_gpu_idle itself (WithGpuMonitor); with
  /// declared GPUs they stay unset (device nodes have no health to read).
  EngineHooks hooks;
  /// Where log lines go (stderr with a timestamp, by cmd_provider_run.cpp).
  std::function<void(std::string_view)> log;
};

/// What daemon-status.json says of the GPUs' source.
enum class GpuMode : uint8_t { kNvml, kDeclared };

/// This host's machine in provider.yaml: daemon.machine_id, or the only machine there
/// is when it is 0. kInvalidArgument naming the fix otherwise.
base::Result<client::MachineConfig> ThisMachine(const client::ProviderConfig& config);

/// The GPUs the daemon sells on this host: daemon.declared_gpus (then the model is the
/// machine's), else what NVML listed (`nvml`, required then).
base::Result<std::vector<PoolGpu>> InventoryGpus(const client::ProviderConfig& config,
                                                 const client::MachineConfig& machine,
                                                 const runtime::NvmlSnapshot* nvml);

/// The engine's health and idle-check seams over h17-gpu's GpuMonitor (NVML mode):
/// health sampled at most every `poll_ms` (daemon.health_poll), a GPU that NVML can
/// no longer open counts as failed; the idle check is GpuMonitor::CheckGpuIdle.
EngineHooks WithGpuMonitor(EngineHooks hooks, std::shared_ptr<runtime::GpuMonitor> monitor,
                           uint64_t poll_ms);

/// Some settings are for development chains only (declared GPUs; a withdraw_every
/// under client::kWithdrawEveryMinMs): OK when `status_json` (GET /status) has
/// "development": true; otherwise kPermissionDenied saying that `what` needs one and
/// what to do instead (`instead`). An absent flag counts as false.
base::Status CheckDevelopmentChain(const nlohmann::json& status_json, std::string_view node_url,
                                   std::string_view what, std::string_view instead);

/// The engine's verify_manifest and build_spec over the tenant's manifest
/// (client::VerifySubmittedManifest, provider::PlanWorkload with this machine's record
/// on the ledger and the runtime's environments; the command gated on the
/// manifest's secrets, broker_service.h). `machine` fetches the record when asked.
EngineHooks WithWorkloadPlan(EngineHooks hooks,
                             std::function<base::Result<client::MachineInfo>()> machine,
                             std::function<std::vector<runtime::Environment>()> environments);

/// Runs the daemon until `stop` is true. An error only for what a restart would not
/// fix (no such provider, declared GPUs on a production chain, a home it cannot use).
base::Status RunDaemon(DaemonSetup setup, const crypto::KeyPair& operator_key,
                       const std::atomic<bool>& stop);

}  // namespace gpunet::provider
