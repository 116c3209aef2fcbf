// `gpunet task check TASK.yaml`: reads a task file (docs/task.md), checks it and
// shows what `gpunet run` derives from it: the manifest and its hash (what goes on
// the ledger), the offer filter, the cost per hour at max_price, the workdir files
// to upload and the outputs to bring back. No node, key or money involved.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "apps/gpunet/cli.h"
#include "base/bytes.h"
#include "client/amount.h"
#include "client/gpunetignore.h"
#include "client/manifest.h"
#include "client/task.h"

namespace gpunet::apps {
namespace {

struct TaskCheck {
  client::Task task;
  client::Manifest manifest;
  std::string canonical;
  base::Hash32 hash{};
  client::TaskOfferFilter filter;
  client::TaskOutputsPlan outputs;
  uint64_t cost_per_hour_ugpn = 0;
  uint64_t deposit_ugpn = 0;
  std::optional<client::WorkdirFiles> workdir;
  std::string workdir_path;  ///< the local folder, relative to the task file's
};

TaskCheck Derive(const std::string& file) {
  TaskCheck c;
  c.task = OrFail(client::LoadTaskFile(file));
  c.manifest = client::TaskManifest(c.task);
  c.canonical = client::CanonicalManifestJson(c.manifest);
  c.hash = client::ManifestHash(c.manifest);
  c.filter = client::TaskFilter(c.task);
  c.outputs = client::PlanTaskOutputs(c.task);
  c.cost_per_hour_ugpn = OrFail(client::TaskCostPerHourUgpn(c.task));
  c.deposit_ugpn = OrFail(client::TaskDepositUgpn(c.task));
  if (!c.task.workdir.empty()) {
    std::filesystem::path p(c.task.workdir);
    if (p.is_relative() && !c.task.base_dir.empty()) p = std::filesystem::path(c.task.base_dir) / p;
    c.workdir_path = p.string();
    c.workdir = OrFail(client::ListWorkdirFiles(c.workdir_path), file);
  }
  return c;
}

std::string Words(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

void PrintResources(const TaskCheck& c) {
  const client::TaskResources& r = c.task.resources;
  std::cout << "  gpus         " << r.gpus_per_machine << " x "
            << (r.gpu_model.empty() ? "any model" : r.gpu_model) << " per machine, " << r.machines
            << " machine(s)\n"
            << "  max_price    " << client::FormatGpn(r.max_price_ugpn_per_gpu_hour)
            << " GPN per GPU-hour\n"
            << "  cost         at most " << client::FormatGpn(c.cost_per_hour_ugpn)
            << " GPN per hour (" << client::TaskGpus(c.task) << " GPU(s) at max_price)\n"
            << "  deposit      " << client::FormatGpn(c.deposit_ugpn) << " GPN for " << r.hours
            << " hour(s)";
  if (c.task.auto_topup_cap_ugpn)
    std::cout << "; auto_topup adds up to " << client::FormatGpn(*c.task.auto_topup_cap_ugpn)
              << " GPN while gpunet watches";
  std::cout << "\n  offers       gpunet offers " << Words(c.filter.words) << "\n";
}

void PrintWorkload(const TaskCheck& c) {
  const client::Task& t = c.task;
  std::cout << "  environment  " << t.environment << "\n"
            << "  runs         "
            << (t.Interactive() ? "nothing: an interactive machine (gpunet shell, ssh)"
                                : "setup and run under /bin/sh -c in /work")
            << (t.close_on_exit ? "; the lease closes when it exits" : "") << "\n";
  std::cout << "  secrets     ";
  if (t.secrets.empty()) std::cout << " none";
  for (const auto& s : t.secrets)
    std::cout << " " << s << (std::getenv(s.c_str()) ? "" : " (NOT set here)");
  std::cout << "\n  network      " << client::ManifestNetworkName(t.network);
  for (uint16_t p : t.ports) std::cout << " " << p;
  std::cout << "\n  outputs      ";
  if (t.outputs.empty()) std::cout << "none listed (" << c.outputs.outputs_dir << " is kept)";
  std::string sep;
  for (const auto& s : c.outputs.selections) {
    std::cout << sep << c.outputs.outputs_dir << (s.empty() ? "" : "/" + s);
    sep = " ";
  }
  std::cout << "\n";
}

void PrintWorkdir(const TaskCheck& c) {
  if (!c.workdir) {
    std::cout << "  workdir      none (nothing is uploaded)\n";
    return;
  }
  const client::WorkdirFiles& w = *c.workdir;
  std::cout << "  workdir      " << c.workdir_path << " -> /work: " << w.files.size()
            << " file(s), " << w.bytes << " bytes; " << w.ignored << " ignored by "
            << client::kIgnoreFileName << "\n";
  for (const auto& s : w.skipped) std::cout << "    skipped " << s.path << ": " << s.reason << "\n";
}

nlohmann::json CheckJson(const TaskCheck& c) {
  nlohmann::json j;
  j["path"] = c.task.file;
  j["manifest_hash"] = base::ToHex(c.hash);
  j["canonical"] = c.canonical;
  j["manifest"] = nlohmann::json::parse(c.canonical);
  j["filter"] = c.filter.words;
  j["cost_per_hour_ugpn"] = c.cost_per_hour_ugpn;
  j["deposit_ugpn"] = c.deposit_ugpn;
  j["hours"] = c.task.resources.hours;
  j["interactive"] = c.task.Interactive();
  j["close_on_exit"] = c.task.close_on_exit;
  j["auto_topup_cap_ugpn"] =
      c.task.auto_topup_cap_ugpn ? nlohmann::json(*c.task.auto_topup_cap_ugpn) : nullptr;
  j["secrets"] = c.task.secrets;
  j["outputs"] = {{"outputs_dir", c.outputs.outputs_dir}, {"selections", c.outputs.selections}};
  if (c.workdir) {
    nlohmann::json files = nlohmann::json::array(), skipped = nlohmann::json::array();
    for (const auto& f : c.workdir->files) files.push_back({{"name", f.remote}, {"size", f.size}});
    for (const auto& s : c.workdir->skipped)
      skipped.push_back({{"path", s.path}, {"reason", s.reason}});
    j["workdir"] = {{"path", c.workdir_path},
                    {"files", files},
                    {"bytes", c.workdir->bytes},
                    {"ignored", c.workdir->ignored},
                    {"skipped", skipped}};
  } else {
    j["workdir"] = nullptr;
  }
  return j;
}

void RunCheck(const GlobalOptions& g, const std::string& file) {
  TaskCheck c = Derive(file);
  if (g.Json()) return PrintJson(CheckJson(c));
  std::cout << "task " << file << " is valid\n";
  PrintResources(c);
  PrintWorkload(c);
  PrintWorkdir(c);
  std::cout << "  manifest     " << base::ToHex(c.hash)
            << " (BLAKE2b-256 of its canonical JSON: the lease's manifest_hash)\n"
            << "  " << c.canonical << std::endl;
}

}  // namespace

void RegisterTaskCommands(CLI::App& app, GlobalOptions& g) {
  CLI::App* task = app.add_subcommand("task", "Check a task file and show what gpunet run derives");
  task->require_subcommand(1);
  task->fallthrough();
  task->footer(
      "A task file says what to rent and what to run on it: resources, environment,\n"
      "workdir, setup, run, env, secrets, outputs, network (docs/task.md).");
  auto file = std::make_shared<std::string>();
  CLI::App* check = task->add_subcommand(
      "check", "Check a task file; print its manifest and hash, offer filter and cost");
  check->fallthrough();
  check->add_option("file", *file, "The task file, e.g. task.yaml")->required();
  check->footer(
      "Examples:\n"
      "  gpunet task check task.yaml            what runs, what it costs, what is uploaded\n"
      "  gpunet task check task.yaml -o json    {manifest_hash, manifest, filter, "
      "cost_per_hour_ugpn, ...}");
  check->callback([&g, file] { RunCheck(g, *file); });
}

}  // namespace gpunet::apps
