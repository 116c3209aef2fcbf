#include "client/task.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <set>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/file_util.h"
#include "base/limits.h"
#include "client/amount.h"
#include "codec/reader.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;

std::string InQuotes(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out + (s.size() > 80 ? "...\"" : "\"");
}

std::string JoinKey(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string Item(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

/// Reads the task document with file:line:column in every error (yaml-cpp's Mark).
class TaskReader {
 public:
  explicit TaskReader(std::string file) : m_file(std::move(file)) {}

  std::string At(const YAML::Mark& mark) const {
    if (mark.is_null()) return m_file;
    return m_file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  std::unexpected<base::Error> Err(const YAML::Node& node, const std::string& path,
                                   const std::string& msg,
                                   ErrorCode code = ErrorCode::kInvalidArgument) const {
    return Fail(code, At(node.Mark()) + ": " + (path.empty() ? "" : path + ": ") + msg);
  }

  /// A mapping's values by key, each key once and among `allowed`.
  struct Map {
    YAML::Node node;
    std::string path;
    std::map<std::string, YAML::Node> fields;
    bool Has(std::string_view key) const { return fields.contains(std::string(key)); }
    const YAML::Node& Get(std::string_view key) const { return fields.at(std::string(key)); }
  };

  base::Result<Map> OpenMap(const YAML::Node& node, const std::string& path,
                            std::initializer_list<std::string_view> allowed,
                            std::string_view example) const {
    if (!node.IsMap())
      return Err(node, path.empty() ? "the task" : path,
                 "expected a mapping of fields (key: value), e.g. " + std::string(example));
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    Map map{node, path, {}};
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) return Err(it->first, path, "a field name must be plain text");
      const std::string& key = it->first.Scalar();
      if (std::ranges::find(allowed, std::string_view(key)) == allowed.end())
        return Err(it->first, JoinKey(path, InQuotes(key)),
                   "unknown field; the fields here are: " + list + " (docs/task.md)");
      if (!map.fields.emplace(key, it->second).second)
        return Err(it->first, JoinKey(path, key), "appears twice; give each field once");
    }
    return map;
  }

  /// A scalar (possibly empty), with `hint` saying what to write when it is not one.
  base::Result<std::string> Scalar(const YAML::Node& node, const std::string& path,
                                   std::string_view hint) const {
    if (node.IsNull()) return Err(node, path, "has no value; " + std::string(hint));
    if (!node.IsScalar())
      return Err(node, path,
                 "expected one value, not a " +
                     std::string(node.IsSequence() ? "list" : "mapping") + "; " +
                     std::string(hint));
    return node.Scalar();
  }

  /// One line of non-empty text without control characters.
  base::Result<std::string> Text(const YAML::Node& node, const std::string& path,
                                 std::string_view hint) const {
    GPUNET_TRY_ASSIGN(auto s, Scalar(node, path, hint));
    if (s.empty()) return Err(node, path, "is empty; " + std::string(hint));
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return Err(node, path, InQuotes(s) + " holds a control character; " + std::string(hint));
    return s;
  }

  base::Result<uint64_t> Whole(const YAML::Node& node, const std::string& path, uint64_t min,
                               uint64_t max, std::string_view hint) const {
    GPUNET_TRY_ASSIGN(auto s, Text(node, path, hint));
    std::string range = std::to_string(min) + ".." + std::to_string(max);
    bool digits =
        s.size() <= 19 && std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; });
    if (!digits)
      return Err(node, path,
                 InQuotes(s) + " is not a whole number " + range + "; " + std::string(hint));
    uint64_t v = std::stoull(s);
    if (v < min || v > max)
      return Err(node, path, s + " is out of range " + range + "; " + std::string(hint),
                 ErrorCode::kLimitExceeded);
    return v;
  }

  base::Result<bool> Bool(const YAML::Node& node, const std::string& path) const {
    GPUNET_TRY_ASSIGN(auto s, Text(node, path, "write true or false"));
    if (s == "true") return true;
    if (s == "false") return false;
    return Err(node, path, InQuotes(s) + " is not true or false");
  }

  base::Result<std::string> OneOf(const YAML::Node& node, const std::string& path,
                                  std::initializer_list<std::string_view> allowed) const {
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    GPUNET_TRY_ASSIGN(auto s, Text(node, path, "write one of " + list));
    if (std::ranges::find(allowed, std::string_view(s)) != allowed.end()) return s;
    return Err(node, path, InQuotes(s) + " is not one of " + list);
  }

  /// A list (a single value counts as a list of one) of at most `max` items, its
  /// size checked before any item is read.
  base::Result<std::vector<YAML::Node>> List(const YAML::Node& node, const std::string& path,
                                             size_t max, std::string_view example) const {
    std::vector<YAML::Node> out;
    if (node.IsScalar()) {
      out.push_back(node);
      return out;
    }
    if (!node.IsSequence()) return Err(node, path, "expected a list, e.g. " + std::string(example));
    if (node.size() > max)
      return Err(node, path, std::to_string(node.size()) + " items; at most " + std::to_string(max),
                 ErrorCode::kLimitExceeded);
    for (auto it = node.begin(); it != node.end(); ++it) out.push_back(*it);
    return out;
  }

  /// The manifest's rule for one field (ValidateManifest over a manifest that holds
  /// only it), its message placed at `node`: one rule, in manifest.cpp.
  base::Status ManifestRule(const Manifest& probe, const YAML::Node& node) const {
    auto ok = ValidateManifest(probe);
    if (ok) return base::Ok();
    return Fail(ok.error().code, At(node.Mark()) + ": " + ok.error().message);
  }

 private:
  std::string m_file;
};

using Map = TaskReader::Map;

/// A GPU model or region as the ledger holds it (codec's identifier rule), and one
/// word of the offer filter: no ',' (its list separator), ':' or '='.
bool IsIdent(std::string_view s, size_t max_bytes) {
  return codec::CheckString(s, max_bytes, codec::StringRule::kIdent, "").has_value() &&
         s.find_first_of(",:=") == std::string_view::npos;
}

// ------------------------------------------------------------------ resources

/// "H100:2" (2 H100 per machine) or "2" (any model).
base::Status ParseGpus(const TaskReader& r, const YAML::Node& node, TaskResources& res) {
  const std::string path = "resources.gpus";
  const std::string hint = "write gpus: H100:2 (2 H100 per machine) or gpus: 2 (any model)";
  GPUNET_TRY_ASSIGN(auto text, r.Text(node, path, hint));
  std::string count = text;
  size_t colon = text.rfind(':');
  if (colon != std::string::npos) {
    res.gpu_model = text.substr(0, colon);
    count = text.substr(colon + 1);
    if (!IsIdent(res.gpu_model, base::limits::kGpuModelBytesMax))
      return r.Err(node, path, InQuotes(res.gpu_model) + " is not a GPU model; " + hint);
  }
  bool digits = !count.empty() && count.size() <= 3 &&
                std::ranges::all_of(count, [](char c) { return c >= '0' && c <= '9'; });
  uint32_t n = digits ? static_cast<uint32_t>(std::stoul(count)) : 0;
  if (n == 0 || n > base::limits::kGpusPerMachineMax)
    return r.Err(node, path,
                 InQuotes(text) + " is not a GPU count of 1.." +
                     std::to_string(base::limits::kGpusPerMachineMax) + " per machine; " + hint);
  res.gpus_per_machine = n;
  return base::Ok();
}

base::Status ParsePrice(const TaskReader& r, const Map& q, TaskResources& res) {
  const std::string hint = "write the most you pay in GPN per GPU-hour, e.g. max_price: 2.5";
  if (!q.Has("max_price")) return r.Err(q.node, "resources.max_price", "missing; " + hint);
  const YAML::Node& node = q.Get("max_price");
  GPUNET_TRY_ASSIGN(auto text, r.Text(node, "resources.max_price", hint));
  auto price = ParseAmount(text);
  if (!price) return r.Err(node, "resources.max_price", price.error().message + "; " + hint);
  if (*price == 0) return r.Err(node, "resources.max_price", "must be more than 0; " + hint);
  res.max_price_ugpn_per_gpu_hour = *price;
  return base::Ok();
}

base::Status ParseResourceWhere(const TaskReader& r, const Map& q, TaskResources& res) {
  if (q.Has("region")) {
    const YAML::Node& node = q.Get("region");
    GPUNET_TRY_ASSIGN(res.region, r.Text(node, "resources.region", "e.g. region: eu-west"));
    if (!IsIdent(res.region, base::limits::kRegionBytesMax))
      return r.Err(node, "resources.region",
                   InQuotes(res.region) + " is not a region: 1.." +
                       std::to_string(base::limits::kRegionBytesMax) +
                       " printable ASCII characters, no space, comma, ':' or '=', e.g. eu-west");
  }
  if (q.Has("fabric")) {
    GPUNET_TRY_ASSIGN(res.fabric, r.OneOf(q.Get("fabric"), "resources.fabric",
                                          {"infiniband", "roce", "ethernet", "any"}));
    if (res.fabric == "any") res.fabric.clear();
  }
  if (q.Has("min_cuda")) {
    const YAML::Node& node = q.Get("min_cuda");
    GPUNET_TRY_ASSIGN(auto text, r.Text(node, "resources.min_cuda", "e.g. min_cuda: \"12.1\""));
    auto v = ParseVersion(text);
    if (!v) return r.Err(node, "resources.min_cuda", v.error().message);
    res.min_cuda = *v;
  }
  return base::Ok();
}

base::Status ParseResources(const TaskReader& r, const Map& m, Task& task) {
  if (!m.Has("resources"))
    return r.Err(m.node, "resources",
                 "missing; say what to rent, e.g. resources: {gpus: H100:1, max_price: 3}");
  GPUNET_TRY_ASSIGN(auto q, r.OpenMap(m.Get("resources"), "resources",
                                      {"gpus", "machines", "min_vram_gib", "region", "fabric",
                                       "min_cuda", "max_price", "hours"},
                                      "{gpus: H100:1, max_price: 3}"));
  TaskResources& res = task.resources;
  if (!q.Has("gpus"))
    return r.Err(q.node, "resources.gpus", "missing; write gpus: H100:2 or gpus: 2 (any model)");
  GPUNET_TRY(ParseGpus(r, q.Get("gpus"), res));
  if (q.Has("machines")) {
    GPUNET_TRY_ASSIGN(auto n, r.Whole(q.Get("machines"), "resources.machines", 1,
                                      base::limits::kMachinesPerLeaseMax, "e.g. machines: 2"));
    res.machines = static_cast<uint32_t>(n);
  }
  if (q.Has("min_vram_gib")) {
    GPUNET_TRY_ASSIGN(auto n, r.Whole(q.Get("min_vram_gib"), "resources.min_vram_gib", 0, 4096,
                                      "GiB of memory per GPU, e.g. min_vram_gib: 80"));
    res.min_vram_gib = static_cast<uint32_t>(n);
  }
  GPUNET_TRY(ParseResourceWhere(r, q, res));
  GPUNET_TRY(ParsePrice(r, q, res));
  if (q.Has("hours")) {
    GPUNET_TRY_ASSIGN(auto n, r.Whole(q.Get("hours"), "resources.hours", 1, kTaskHoursMax,
                                      "the hours the first deposit pays for, e.g. hours: 2"));
    res.hours = static_cast<uint32_t>(n);
  }
  return base::Ok();
}

// ------------------------------------------------------------------ the workload

/// environment, setup, run: each checked by the manifest's own rules.
base::Status ParseWorkload(const TaskReader& r, const Map& m, Task& task) {
  if (m.Has("environment")) {
    const YAML::Node& node = m.Get("environment");
    GPUNET_TRY_ASSIGN(task.environment,
                      r.Text(node, "environment",
                             "write host or an image the provider lists at GET /environments"));
    Manifest probe;
    probe.environment = task.environment;
    GPUNET_TRY(r.ManifestRule(probe, node));
  }
  for (std::string_view key : {"setup", "run"}) {
    if (!m.Has(key)) continue;
    const YAML::Node& node = m.Get(key);
    std::string path(key);
    GPUNET_TRY_ASSIGN(auto script,
                      r.Scalar(node, path, "write shell commands, e.g. " + path + ": |"));
    if (script.find_first_not_of(" \t\r\n") == std::string::npos)
      return r.Err(node, path, "is blank; write shell commands or remove it");
    (key == "setup" ? task.setup : task.run) = std::move(script);
    // The manifest's rules on an argument (UTF-8, no NUL, the size), said of this field.
    Manifest probe = TaskManifest(task);
    auto rule = ValidateManifest(probe);
    if (!rule) {
      std::string msg = rule.error().message;
      if (msg.starts_with("command[")) msg = msg.substr(msg.find(": ") + 2);
      if (rule.error().code == ErrorCode::kLimitExceeded)
        msg = "setup and run make a script of " + std::to_string(probe.command[2].size()) +
              " bytes; at most " + std::to_string(kManifestArgBytesMax) +
              " go in the manifest: put the commands in a file in the workdir and run it "
              "(run: bash train.sh)";
      return r.Err(node, path, msg, rule.error().code);
    }
  }
  return base::Ok();
}

base::Status ParseEnv(const TaskReader& r, const Map& m, Task& task) {
  if (!m.Has("env")) return base::Ok();
  const YAML::Node& node = m.Get("env");
  if (!node.IsMap())
    return r.Err(node, "env", "expected a mapping of NAME: value, e.g. env: {OMP_NUM_THREADS: 8}");
  if (node.size() > kManifestEnvMax)
    return r.Err(
        node, "env",
        std::to_string(node.size()) + " variables; at most " + std::to_string(kManifestEnvMax),
        ErrorCode::kLimitExceeded);
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) return r.Err(it->first, "env", "a name must be plain text");
    const std::string& name = it->first.Scalar();
    std::string path = "env." + InQuotes(name);
    GPUNET_TRY_ASSIGN(auto value, r.Scalar(it->second, path, "write NAME: \"\" for empty"));
    Manifest probe;
    probe.environment = std::string(kHostEnvironment);
    probe.env.emplace(name, value);
    GPUNET_TRY(r.ManifestRule(probe, it->first));
    if (!task.env.emplace(name, value).second)
      return r.Err(it->first, path, "appears twice; give each variable once");
  }
  return base::Ok();
}

base::Status ParseSecrets(const TaskReader& r, const Map& m, Task& task) {
  if (!m.Has("secrets")) return base::Ok();
  GPUNET_TRY_ASSIGN(auto items,
                    r.List(m.Get("secrets"), "secrets", kManifestSecretsMax, "[HF_TOKEN]"));
  for (size_t i = 0; i < items.size(); ++i) {
    GPUNET_TRY_ASSIGN(auto name, r.Text(items[i], Item("secrets", i),
                                        "the NAME of a variable in your environment"));
    task.secrets.push_back(name);
    Manifest probe;
    probe.environment = std::string(kHostEnvironment);
    probe.env = task.env;
    probe.secrets = task.secrets;
    GPUNET_TRY(r.ManifestRule(probe, items[i]));
  }
  return base::Ok();
}

base::Status ParseNetwork(const TaskReader& r, const Map& m, Task& task) {
  if (m.Has("network")) {
    GPUNET_TRY_ASSIGN(auto name, r.OneOf(m.Get("network"), "network", {"none", "egress", "ports"}));
    task.network = name == "none"     ? ManifestNetwork::kNone
                   : name == "egress" ? ManifestNetwork::kEgress
                                      : ManifestNetwork::kPorts;
  }
  if (m.Has("ports")) {
    const YAML::Node& node = m.Get("ports");
    if (task.network != ManifestNetwork::kPorts)
      return r.Err(node, "ports", "ports are reachable only with network: ports; add it");
    GPUNET_TRY_ASSIGN(auto items, r.List(node, "ports", kManifestPortsMax, "[8888, 6006]"));
    for (size_t i = 0; i < items.size(); ++i) {
      GPUNET_TRY_ASSIGN(auto port, r.Whole(items[i], Item("ports", i), 1, 65535,
                                           "a port the workload listens on, e.g. 8888"));
      task.ports.push_back(static_cast<uint16_t>(port));
      Manifest probe;
      probe.environment = std::string(kHostEnvironment);
      probe.network = ManifestNetwork::kPorts;
      probe.ports = task.ports;
      GPUNET_TRY(r.ManifestRule(probe, items[i]));
    }
  } else if (task.network == ManifestNetwork::kPorts) {
    return r.Err(m.Get("network"), "ports",
                 "network: ports needs the ports the workload listens on, e.g. ports: [8888]");
  }
  return base::Ok();
}

// ------------------------------------------------------------------ files and money

/// An output path: relative to /work, or absolute under /outputs or /work; a
/// trailing '/' marks a folder. Checked as the manifest checks its outputs_dir.
base::Status CheckOutput(const TaskReader& r, const YAML::Node& node, const std::string& path,
                         const std::string& text) {
  std::string inside = text.starts_with('/') ? text : "/work/" + text;
  while (inside.size() > 1 && inside.ends_with('/')) inside.pop_back();
  Manifest probe;
  probe.environment = std::string(kHostEnvironment);
  probe.outputs_dir = inside;
  bool on_disk = inside == "/outputs" || inside.starts_with("/outputs/") ||
                 (inside.starts_with("/work/") && inside.size() > 6);
  auto rule = r.ManifestRule(probe, node);
  if (!rule || !on_disk)
    return r.Err(node, path,
                 InQuotes(text) +
                     " is not an output path: write a path relative to the workdir (e.g. "
                     "checkpoints/ or out/model.pt) or one under /outputs, of letters, "
                     "digits and ._@+- parts (no . or ..)");
  return base::Ok();
}

base::Status ParseOutputs(const TaskReader& r, const Map& m, Task& task) {
  if (!m.Has("outputs")) return base::Ok();
  const YAML::Node& node = m.Get("outputs");
  GPUNET_TRY_ASSIGN(auto items, r.List(node, "outputs", kTaskOutputsMax, "[checkpoints/]"));
  for (size_t i = 0; i < items.size(); ++i) {
    std::string path = Item("outputs", i);
    GPUNET_TRY_ASSIGN(auto text, r.Text(items[i], path, "a path to bring back, e.g. checkpoints/"));
    GPUNET_TRY(CheckOutput(r, items[i], path, text));
    task.outputs.push_back(text);
  }
  std::string dir = PlanTaskOutputs(task).outputs_dir;
  if (dir != "/outputs" && !dir.starts_with("/outputs/") && !dir.starts_with("/work/"))
    return r.Err(node, "outputs",
                 "the outputs share no folder under /work or /outputs (they share " +
                     InQuotes(dir) +
                     "); put them in one folder, e.g. out/model.pt and out/logs/, so "
                     "that the uploaded code does not come back with them");
  return base::Ok();
}

base::Status ParseWorkdir(const TaskReader& r, const Map& m, Task& task) {
  if (!m.Has("workdir")) return base::Ok();
  const YAML::Node& node = m.Get("workdir");
  GPUNET_TRY_ASSIGN(task.workdir,
                    r.Text(node, "workdir", "a local folder to upload to /work, e.g. workdir: ."));
  if (task.workdir.size() > kTaskLocalPathBytesMax)
    return r.Err(node, "workdir", "at most " + std::to_string(kTaskLocalPathBytesMax) + " bytes",
                 ErrorCode::kLimitExceeded);
  return base::Ok();
}

base::Status ParseEnding(const TaskReader& r, const Map& m, Task& task) {
  task.close_on_exit = !task.run.empty();
  if (m.Has("close_on_exit")) {
    const YAML::Node& node = m.Get("close_on_exit");
    GPUNET_TRY_ASSIGN(task.close_on_exit, r.Bool(node, "close_on_exit"));
    if (task.close_on_exit && task.run.empty())
      return r.Err(node, "close_on_exit",
                   "an interactive machine (no run) has no exit to close on; remove it or add "
                   "a run");
  }
  if (m.Has("auto_topup")) {
    const YAML::Node& node = m.Get("auto_topup");
    const std::string hint =
        "write the most GPN to deposit beyond the first deposit, e.g. auto_topup: 50";
    GPUNET_TRY_ASSIGN(auto text, r.Text(node, "auto_topup", hint));
    auto cap = ParseAmount(text);
    if (!cap) return r.Err(node, "auto_topup", cap.error().message + "; " + hint);
    if (*cap == 0) return r.Err(node, "auto_topup", "must be more than 0, or leave it out");
    task.auto_topup_cap_ugpn = *cap;
  }
  return base::Ok();
}

base::Result<Task> ParseTaskDocument(const TaskReader& r, const YAML::Node& doc) {
  GPUNET_TRY_ASSIGN(
      auto m, r.OpenMap(doc, "",
                        {"resources", "environment", "workdir", "setup", "run", "env", "secrets",
                         "outputs", "network", "ports", "close_on_exit", "auto_topup"},
                        "resources: {gpus: H100:1, max_price: 3}"));
  Task task;
  GPUNET_TRY(ParseResources(r, m, task));
  GPUNET_TRY(ParseWorkload(r, m, task));
  GPUNET_TRY(ParseEnv(r, m, task));
  GPUNET_TRY(ParseSecrets(r, m, task));
  GPUNET_TRY(ParseNetwork(r, m, task));
  GPUNET_TRY(ParseWorkdir(r, m, task));
  GPUNET_TRY(ParseOutputs(r, m, task));
  GPUNET_TRY(ParseEnding(r, m, task));
  // What the parts allowed must make one manifest (its canonical size, above all).
  GPUNET_TRY(r.ManifestRule(TaskManifest(task), doc));
  GPUNET_TRY(TaskDepositUgpn(task));
  return task;
}

/// "dir/" and "dir" name the same folder; a file's folder is its parent.
std::vector<std::string> OutputParts(const std::string& output, bool& folder) {
  std::string inside = output.starts_with('/') ? output : "/work/" + output;
  folder = inside.ends_with('/');
  std::vector<std::string> parts;
  size_t start = 1;
  while (start < inside.size()) {
    size_t end = inside.find('/', start);
    if (end == std::string::npos) end = inside.size();
    if (end > start) parts.emplace_back(inside.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string JoinParts(const std::vector<std::string>& parts, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) out += (out.empty() ? "" : "/") + parts[i];
  return out;
}

}  // namespace

base::Result<Task> ParseTask(std::string_view yaml_text, std::string_view file,
                             const std::string& base_dir) {
  TaskReader r{std::string(file)};
  if (yaml_text.size() > kTaskBytesMax)
    return Fail(ErrorCode::kLimitExceeded,
                std::string(file) + ": " + std::to_string(yaml_text.size()) +
                    " bytes; a task file is at most " + std::to_string(kTaskBytesMax));
  try {
    YAML::Node doc = YAML::Load(std::string(yaml_text));
    if (!doc.IsDefined() || doc.IsNull())
      return Fail(ErrorCode::kInvalidArgument,
                  std::string(file) + ": the file is empty; see docs/task.md for an example");
    GPUNET_TRY_ASSIGN(auto task, ParseTaskDocument(r, doc));
    task.file = std::string(file);
    task.base_dir = base_dir;
    return task;
  } catch (const YAML::Exception& e) {
    return Fail(ErrorCode::kInvalidArgument, r.At(e.mark) + ": not valid YAML: " + InQuotes(e.msg));
  }
}

base::Result<Task> LoadTaskFile(const std::string& path) {
  // The user named the file: a link to it is fine, so resolve it, then read it once.
  std::error_code ec;
  auto real = std::filesystem::canonical(path, ec);
  if (ec)
    return Fail(ec == std::errc::no_such_file_or_directory ? ErrorCode::kNotFound : ErrorCode::kIo,
                "the task file " + path + ": " + ec.message());
  GPUNET_TRY_ASSIGN(auto text, base::ReadFileNoFollow(real.string(), kTaskBytesMax));
  return ParseTask(text, path, std::filesystem::path(path).parent_path().string());
}

TaskOutputsPlan PlanTaskOutputs(const Task& task) {
  TaskOutputsPlan plan;
  if (task.outputs.empty()) {
    plan.outputs_dir = std::string(kManifestDefaultOutputsDir);
    return plan;
  }
  // The deepest folder that holds every output.
  std::vector<std::vector<std::string>> all;
  std::vector<size_t> dir_parts;
  for (const auto& o : task.outputs) {
    bool folder = false;
    all.push_back(OutputParts(o, folder));
    // "/outputs" is the outputs folder itself, with or without its '/'.
    folder = folder || all.back() == std::vector<std::string>{"outputs"};
    dir_parts.push_back(folder || all.back().empty() ? all.back().size() : all.back().size() - 1);
  }
  size_t common = dir_parts.front();
  for (size_t i = 1; i < all.size(); ++i) {
    size_t same = 0;
    while (same < std::min(common, dir_parts[i]) && all[i][same] == all.front()[same]) ++same;
    common = same;
  }
  plan.outputs_dir = "/" + JoinParts(all.front(), 0, common);
  for (const auto& parts : all) plan.selections.push_back(JoinParts(parts, common, parts.size()));
  return plan;
}

Manifest TaskManifest(const Task& task) {
  Manifest m;
  m.environment = task.environment;
  if (!task.setup.empty() || !task.run.empty()) {
    // set -e: a failing setup ends the job rather than running on a broken machine.
    std::string script = "set -e\n";
    // The upload follows the manifest that starts the command: wait for all of it.
    if (!task.workdir.empty())
      script += "while [ ! -e " + std::string(kUploadDoneMarker) + " ]; do sleep 0.1; done\n";
    if (!task.setup.empty()) script += task.setup + (task.setup.ends_with('\n') ? "" : "\n");
    script += task.run.empty() ? "exec sleep infinity\n" : task.run;
    m.command = {std::string(kTaskShell), "-c", script};
  }
  m.workdir = std::string(kManifestDefaultWorkdir);
  m.env = task.env;
  m.secrets = task.secrets;
  m.network = task.network;
  m.ports = task.ports;
  m.outputs_dir = PlanTaskOutputs(task).outputs_dir;
  return m;
}

uint64_t TaskGpus(const Task& task) {
  return uint64_t{task.resources.gpus_per_machine} * task.resources.machines;
}

base::Result<uint64_t> TaskCostPerHourUgpn(const Task& task) {
  auto cost = base::CheckedMul(TaskGpus(task), task.resources.max_price_ugpn_per_gpu_hour);
  if (!cost)
    return Fail(ErrorCode::kOverflow, "resources: " + std::to_string(TaskGpus(task)) +
                                          " GPUs at max_price cost more per hour than an "
                                          "amount can hold; lower max_price");
  return *cost;
}

base::Result<uint64_t> TaskDepositUgpn(const Task& task) {
  GPUNET_TRY_ASSIGN(auto per_hour, TaskCostPerHourUgpn(task));
  auto total = base::CheckedMul(per_hour, task.resources.hours);
  if (!total)
    return Fail(ErrorCode::kOverflow,
                "resources: " + std::to_string(task.resources.hours) +
                    " hours at max_price cost more than an amount can hold; lower hours");
  return *total;
}

TaskOfferFilter TaskFilter(const Task& task) {
  const TaskResources& res = task.resources;
  TaskOfferFilter out;
  auto& w = out.words;
  if (!res.gpu_model.empty()) w.push_back("gpu=" + res.gpu_model);
  w.push_back("gpus>=" + std::to_string(res.gpus_per_machine));
  w.push_back("free>=" + std::to_string(TaskGpus(task)));
  if (res.machines > 1) w.push_back("machines>=" + std::to_string(res.machines));
  if (res.min_vram_gib > 0) w.push_back("vram>=" + std::to_string(res.min_vram_gib));
  w.push_back("price<=" + FormatGpn(res.max_price_ugpn_per_gpu_hour));
  if (!res.region.empty()) w.push_back("region=" + res.region);
  if (!res.fabric.empty()) w.push_back("fabric=" + res.fabric);
  if (res.min_cuda != Version{}) w.push_back("cuda>=" + FormatVersion(res.min_cuda));
  auto filter = ParseOfferFilter(w);
  // Every word comes from a value ParseTask checked; one the filter refuses is a bug.
  GPUNET_CHECK(filter.has_value());
  out.filter = std::move(*filter);
  return out;
}

base::Result<OrderConfig> TaskOrder(const Task& task, uint64_t bid_window_ms) {
  GPUNET_CHECK(task.resources.gpus_per_machine >= 1);
  const TaskResources& res = task.resources;
  OrderConfig oc;
  if (!res.gpu_model.empty()) oc.gpu_models = {res.gpu_model};
  oc.gpus_per_machine = res.gpus_per_machine;
  oc.machines = res.machines;
  oc.min_vram_gib = res.min_vram_gib;
  oc.region = res.region;
  oc.fabric = res.fabric;
  oc.min_cuda = res.min_cuda;
  oc.max_price_ugpn_per_gpu_hour = res.max_price_ugpn_per_gpu_hour;
  GPUNET_TRY_ASSIGN(oc.deposit_ugpn, TaskDepositUgpn(task));
  oc.manifest_hash = ManifestHash(TaskManifest(task));
  oc.manifest_path = task.file;
  oc.bid_window_ms = bid_window_ms;
  oc.file = task.file;
  return oc;
}

}  // namespace gpunet::client
