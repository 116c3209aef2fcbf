// `gpunet provider gpus`: the GPUs as the provider daemon sees them through NVML —
// inventory, health and the idle check between leases (runtime/gpu_health.h) — for an
// operator checking a host before `provider run`, and for scripts/device-gpu-check.sh.
#include <iostream>
#include <memory>

#include "apps/gpunet/cli.h"
#include "runtime/gpu_health.h"
#include "runtime/nvml.h"

namespace gpunet::apps {
namespace {

struct GpusFlags {
  std::string nvml_library = runtime::kNvmlLibrary;
};

/// A raw NVML answer as JSON: null when the driver lacks the entry point, else the
/// return code and, on success, the value.
template <class T, class ToJson>
nlohmann::json Raw(const runtime::NvmlAnswer<T>& a, ToJson to_json) {
  if (!a.asked) return nullptr;
  nlohmann::json j = {{"nvml_return", a.code}};
  if (a.Ok()) j["value"] = to_json(a.value);
  return j;
}
template <class T>
nlohmann::json Raw(const runtime::NvmlAnswer<T>& a) {
  return Raw(a, [](const T& v) { return nlohmann::json(v); });
}

nlohmann::json SampleJson(const runtime::GpuHealthSample& s) {
  return {{"handle_nvml_return", s.handle_code},
          {"ecc_uncorrected_volatile", Raw(s.ecc_uncorrected_volatile)},
          {"ecc_uncorrected_aggregate", Raw(s.ecc_uncorrected_aggregate)},
          {"retired_pages_pending", Raw(s.retired_pages_pending)},
          {"remapped_rows", Raw(s.remapped_rows,
                                [](const runtime::RemappedRows& r) {
                                  return nlohmann::json{{"corrected", r.corrected},
                                                        {"uncorrected", r.uncorrected},
                                                        {"pending", r.pending},
                                                        {"failure", r.failure}};
                                })},
          {"temperature_c", Raw(s.temperature_c)},
          {"slowdown_threshold_c", Raw(s.slowdown_threshold_c)},
          {"clocks_event_reasons", Raw(s.clocks_event_reasons)},
          {"xid_events", Raw(s.xid_events)},
          {"xids", s.xids},
          {"xids_dropped", s.xids_dropped}};
}

nlohmann::json HealthJson(const runtime::GpuHealth& h) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : h.problems)
    problems.push_back(
        {{"check", p.check},
         {"severity", p.severity == runtime::GpuProblemSeverity::kFailed ? "failed" : "degraded"},
         {"reason", p.reason}});
  return {{"healthy", h.healthy},
          {"problems", std::move(problems)},
          {"not_monitored", h.not_monitored},
          {"notes", h.notes}};
}

nlohmann::json IdleJson(const base::Result<runtime::GpuIdle>& idle,
                        std::optional<uint64_t> baseline) {
  if (!idle) return {{"error", idle.error().message}};
  return {{"idle", idle->idle},
          {"pids", idle->pids},
          {"reasons", idle->reasons},
          {"baseline_used_bytes", baseline ? nlohmann::json(*baseline) : nlohmann::json()}};
}

std::string CcText(const runtime::GpuInfo& gpu) {
  if (!gpu.compute_capability) return "?";
  return std::to_string(gpu.compute_capability->major_version) + "." +
         std::to_string(gpu.compute_capability->minor_version);
}

nlohmann::json GpuJson(const runtime::GpuInfo& gpu) {
  nlohmann::json j = {
      {"index", gpu.index},
      {"uuid", gpu.uuid},
      {"name", gpu.name},
      {"memory_total_bytes", gpu.memory_total_bytes},
      {"minor", gpu.minor ? nlohmann::json(*gpu.minor) : nlohmann::json()},
      {"compute_capability", gpu.compute_capability ? nlohmann::json(CcText(gpu)) : nullptr},
      {"pci_bus_id", gpu.pci_bus_id},
      {"nvlink_active_links",
       gpu.nvlink_active_links ? nlohmann::json(*gpu.nvlink_active_links) : nlohmann::json()},
      {"interconnect", runtime::GpuInterconnect(gpu)}};
  if (!gpu.problem.empty()) j["problem"] = gpu.problem;
  return j;
}

void PrintGpuText(const runtime::GpuInfo& gpu, const runtime::GpuHealth* health,
                  const base::Result<runtime::GpuIdle>* idle) {
  std::string link = runtime::GpuInterconnect(gpu);
  std::cout << "GPU " << gpu.index << "  " << (gpu.uuid.empty() ? "?" : gpu.uuid) << "  "
            << gpu.name << ", " << gpu.memory_total_bytes / (1ull << 20) << " MiB, compute "
            << CcText(gpu) << ", PCI " << (gpu.pci_bus_id.empty() ? "?" : gpu.pci_bus_id) << ", "
            << (gpu.minor ? "/dev/nvidia" + std::to_string(*gpu.minor) : "minor unknown") << ", "
            << (link.empty() ? "interconnect unknown"
                             : link + " (" + std::to_string(*gpu.nvlink_active_links) +
                                   " active NVLink links)")
            << "\n";
  if (!gpu.problem.empty()) std::cout << "  NVML refused: " << gpu.problem << "\n";
  if (!health) return;
  bool degraded = !health->problems.empty();
  std::cout << "  health: "
            << (!health->healthy
                    ? "FAILED (the daemon offers it to no lease and stops the one it has)"
                : degraded ? "degraded (still offered)"
                           : "healthy")
            << "\n";
  for (const auto& p : health->problems)
    std::cout << "    "
              << (p.severity == runtime::GpuProblemSeverity::kFailed ? "failed" : "degraded")
              << ": " << p.check << ": " << p.reason << "\n";
  for (const auto& n : health->not_monitored) std::cout << "    not monitored: " << n << "\n";
  for (const auto& n : health->notes) std::cout << "    note: " << n << "\n";
  if (!*idle) {
    std::cout << "  idle check: " << idle->error().message << "\n";
    return;
  }
  std::cout << "  idle check: " << ((*idle)->idle ? "idle" : "NOT idle") << "\n";
  for (const auto& r : (*idle)->reasons) std::cout << "    " << r << "\n";
}

void RunGpus(const GlobalOptions& g, const GpusFlags& f) {
  auto monitor = OrFail(runtime::GpuMonitor::Open(f.nvml_library));
  const runtime::NvmlSnapshot& inv = monitor->Inventory();
  std::vector<runtime::GpuHealthSample> samples = monitor->ProbeGpuHealth();
  nlohmann::json gpus = nlohmann::json::array();
  if (!g.Json())
    std::cout << "NVML: driver " << inv.driver_version << ", CUDA "
              << (inv.cuda_driver_version.empty() ? "?" : inv.cuda_driver_version) << ", "
              << inv.gpus.size() << " GPU(s) (" << inv.library_path << ")\n"
              << "Xid events: "
              << (monitor->XidMonitoring().empty() ? "monitored" : monitor->XidMonitoring())
              << "\n";
  for (const runtime::GpuInfo& gpu : inv.gpus) {
    auto sample = std::ranges::find(samples, gpu.uuid, &runtime::GpuHealthSample::uuid);
    std::optional<runtime::GpuHealth> health;
    base::Result<runtime::GpuIdle> idle = base::Fail(base::ErrorCode::kNotFound, "no UUID");
    if (!gpu.uuid.empty() && sample != samples.end()) {
      health = runtime::EvaluateGpuHealth(*sample);
      idle = monitor->CheckGpuIdle(gpu.uuid);
    }
    if (!g.Json()) {
      PrintGpuText(gpu, health ? &*health : nullptr, &idle);
      continue;
    }
    nlohmann::json j = GpuJson(gpu);
    if (health) {
      j["health"] = HealthJson(*health);
      j["health"]["raw"] = SampleJson(*sample);
      j["idle"] = IdleJson(idle, monitor->IdleBaseline(gpu.uuid));
    }
    gpus.push_back(std::move(j));
  }
  if (!g.Json()) {
    if (!inv.problem.empty()) std::cout << "NVML refused: " << inv.problem << "\n";
    if (!inv.absent.empty()) {
      std::cout << "Not in this driver (those fields and checks are absent):";
      for (const auto& a : inv.absent) std::cout << " " << a;
      std::cout << "\n";
    }
    return;
  }
  PrintJson({{"library", inv.library_path},
             {"driver_version", inv.driver_version},
             {"cuda_driver_version", inv.cuda_driver_version},
             {"absent", inv.absent},
             {"problem", inv.problem},
             {"xid_monitoring", monitor->XidMonitoring()},
             {"gpus", std::move(gpus)}});
}

}  // namespace

void RegisterProviderGpusCommands(CLI::App& provider, GlobalOptions& g) {
  auto flags = std::make_shared<GpusFlags>();
  auto* gpus = provider.add_subcommand(
      "gpus", "Show this host's GPUs as the provider daemon sees them: inventory, health, idle");
  gpus->add_option("--nvml-library", flags->nvml_library,
                   "The NVML library to load (default libnvidia-ml.so.1, found by the loader)");
  gpus->footer(
      "Reads NVML, changes nothing. For each GPU: UUID, model, memory, compute capability, PCI\n"
      "bus id, device node and NVLink; its health (uncorrected ECC errors, pending page\n"
      "retirement or row remapping, Xid events seen while this command ran, temperature against\n"
      "the slowdown threshold, clock slowdowns) and whether it is idle (no process, memory at\n"
      "its baseline), the check the daemon makes between leases. \"not monitored\" means NVML\n"
      "cannot answer that check on this GPU or driver; it is not a fault. See docs/sandbox.md\n"
      "\"GPUs and the driver\". Without an NVIDIA driver it says so and exits 1.\n"
      "Examples:\n"
      "  gpunet provider gpus\n"
      "  gpunet provider gpus --output json");
  gpus->callback([&g, flags] { RunGpus(g, *flags); });
}

}  // namespace gpunet::apps
