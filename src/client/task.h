// The task file (docs/task.md): what a developer writes to rent GPUs and run
// something on them with `gpunet run task.yaml` (issue 18):
//
//   resources: {gpus: H100:2, max_price: 3, hours: 2}
//   workdir: .
//   setup: pip install -r requirements.txt
//   run: python train.py --out checkpoints/
//   outputs: [checkpoints/]
//
// The client derives everything else from it, with pure functions here: the
// workload manifest (client/manifest.h; its canonical JSON's hash goes on the
// ledger), the filter over offers (client/offer_filter.h, the `gpunet offers`
// language) and an order's requirements (client/market_config.h's OrderConfig,
// what `gpunet order create` builds from an order.yaml).
//
// Parsing is strict: an unknown key, a wrong type or an out-of-range value is
// refused with the file, line and column and what to write instead, e.g.
// `task.yaml:3:9: resources.gpus: "H100x2" is not a GPU count; write gpus: H100:2
// (2 H100 per machine) or gpus: 2 (any model)`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/manifest.h"
#include "client/market_config.h"
#include "client/offer_filter.h"

namespace gpunet::client {

// Limits (docs/task.md "Limits"); the manifest's own limits apply to what the task
// puts into it (docs/manifest.md).
inline constexpr size_t kTaskBytesMax = kManifestBytesMax;  ///< the file
inline constexpr uint32_t kTaskHoursMax = 24 * 366;         ///< a year of rent
inline constexpr size_t kTaskOutputsMax = 64;
inline constexpr size_t kTaskLocalPathBytesMax = 4096;  ///< workdir (a local path)
/// The shell of setup and run inside the sandbox (`/bin/sh -c SCRIPT`).
inline constexpr std::string_view kTaskShell = "/bin/sh";
/// With a workdir, the task's command first waits for this file in /work, which
/// `gpunet run` uploads last: the provider starts a command with its manifest, and
/// the uploads can only follow the manifest (docs/provider.md "The order of a
/// lease's requests"), so without it the job could start on half its files.
inline constexpr std::string_view kUploadDoneMarker = ".gpunet-upload-done";

/// What the machines must have and what may be paid: `resources:`.
struct TaskResources {
  std::string gpu_model;          ///< "" = any model (`gpus: 2`)
  uint32_t gpus_per_machine = 0;  ///< >= 1
  uint32_t machines = 1;
  uint32_t min_vram_gib = 0;  ///< 0 = any
  std::string region;         ///< "" = any
  std::string fabric;         ///< "" = any; else infiniband | roce | ethernet
  Version min_cuda;           ///< 0.0 = any
  uint64_t max_price_ugpn_per_gpu_hour = 0;
  uint32_t hours = 1;  ///< what the first deposit pays for
  bool operator==(const TaskResources&) const = default;
};

/// A parsed task file. Local paths stay as written (relative to the file's folder);
/// nothing here has touched the network or a key.
struct Task {
  TaskResources resources;
  std::string environment = std::string(kHostEnvironment);
  std::string workdir;  ///< local folder uploaded to /work; "" = nothing uploaded
  std::string setup;    ///< shell, run before `run`; "" = none
  std::string run;      ///< shell; "" = an interactive machine
  std::map<std::string, std::string> env;
  std::vector<std::string> secrets;  ///< names of local environment variables
  std::vector<std::string> outputs;  ///< paths inside the sandbox, relative to /work or absolute
  ManifestNetwork network = ManifestNetwork::kNone;
  std::vector<uint16_t> ports;
  bool close_on_exit = false;                   ///< default: true when there is a `run`
  std::optional<uint64_t> auto_topup_cap_ugpn;  ///< more GPN deposited at most, in all
  std::string file;                             ///< as given, for messages
  std::string base_dir;  ///< the file's folder: a relative workdir is relative to it
  bool Interactive() const { return run.empty(); }
  bool operator==(const Task&) const = default;
};

/// Parses task YAML text. `file` names it in errors ("task.yaml:LINE:COL: field: ..."),
/// `base_dir` is where a relative workdir lives. Nothing is read from disk.
/// kInvalidArgument for a wrong key, type or value; kLimitExceeded over a limit.
[[nodiscard]] base::Result<Task> ParseTask(std::string_view yaml_text, std::string_view file,
                                           const std::string& base_dir);
/// Reads a task file (at most kTaskBytesMax; kNotFound / kIo when unreadable) and parses it.
[[nodiscard]] base::Result<Task> LoadTaskFile(const std::string& path);

/// The manifest of a task (valid by ValidateManifest): environment; setup and run as
/// the command `/bin/sh -c SCRIPT` (SCRIPT = "set -e", with a workdir a wait for
/// kUploadDoneMarker, setup, then run, one per line; no run: setup then `exec sleep
/// infinity`; neither: [] = interactive);
/// workdir /work (where the task's workdir is uploaded); env; secrets by name only;
/// network and ports; outputs_dir from TaskOutputsPlan. Resources and stop grace
/// are the manifest's defaults.
[[nodiscard]] Manifest TaskManifest(const Task& task);

/// Where the outputs are read from: the manifest's outputs_dir (the deepest folder
/// holding every listed output; /outputs when none is listed) and, relative to it,
/// the names to bring back (a folder brings back everything beneath it).
struct TaskOutputsPlan {
  std::string outputs_dir;
  std::vector<std::string> selections;  ///< relative to outputs_dir; "" = all of it
};
[[nodiscard]] TaskOutputsPlan PlanTaskOutputs(const Task& task);

/// The offer filter: the words (`gpunet offers WORDS` shows the same offers) and the
/// parsed filter. An offer fits when its class has at least gpus_per_machine GPUs
/// per machine, at least gpus_per_machine x machines are free and it covers at
/// least `machines` machines, with the model, memory, region (prefix, as the
/// filter's region= does), fabric, CUDA and price asked.
struct TaskOfferFilter {
  std::vector<std::string> words;
  OfferFilter filter;
};
[[nodiscard]] TaskOfferFilter TaskFilter(const Task& task);

/// GPUs of the whole task: gpus_per_machine x machines.
uint64_t TaskGpus(const Task& task);
/// The cost of one hour at max_price: TaskGpus x max_price (kOverflow past u64).
[[nodiscard]] base::Result<uint64_t> TaskCostPerHourUgpn(const Task& task);
/// The first deposit: the cost per hour x hours (kOverflow past u64).
[[nodiscard]] base::Result<uint64_t> TaskDepositUgpn(const Task& task);

/// The order `gpunet run --order` posts: the task's requirements, max_price, the
/// deposit (TaskDepositUgpn), the manifest's hash and `bid_window_ms`; providers
/// unrestricted. The same type order.yaml parses to, so client/market_tx.h's
/// OrderCreateMsg builds and checks it.
[[nodiscard]] base::Result<OrderConfig> TaskOrder(const Task& task, uint64_t bid_window_ms);

}  // namespace gpunet::client
