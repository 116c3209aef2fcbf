#include "runtime/state_files.h"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace gpunet::runtime::state {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;

namespace {

template <class F>
auto Parse(const std::string& text, const char* what, F&& f) -> decltype(f(json{})) {
  try {
    return f(json::parse(text));
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kCorrupt, std::string(what) + " is not valid: " + e.what());
  }
}

}  // namespace

std::string SpecToJson(const WorkloadSpec& s) {
  json ports = json::array();
  for (const auto& p : s.ports) ports.push_back({p.container_port, p.host_port});
  json j = {{"id", s.id},
            {"backend", static_cast<int>(s.backend)},
            {"command", s.command},
            {"image", s.image},
            {"env", s.env},
            {"memory_bytes", s.resources.memory_bytes},
            {"cpu_millis", s.resources.cpu_millis},
            {"pids_max", s.resources.pids_max},
            {"disk_bytes", s.resources.disk_bytes},
            {"shm_bytes", s.resources.shm_bytes},
            {"log_bytes_max", s.resources.log_bytes_max},
            {"network", static_cast<int>(s.network)},
            {"ports", ports},
            {"gpu_uuids", s.gpu_uuids},
            {"allow_unenforced_limits", s.allow_unenforced_limits},
            {"lease_id", s.lease_id},
            {"node_rank", s.node_rank},
            {"num_nodes", s.num_nodes},
            {"node_ips", s.node_ips},
            {"lease_ends_at_ms", s.lease_ends_at_ms},
            {"master_addr", s.master_addr},
            {"master_port", s.master_port}};
  return j.dump(2);
}

base::Result<WorkloadSpec> SpecFromJson(const std::string& text) {
  return Parse(text, "spec.json", [](const json& j) -> base::Result<WorkloadSpec> {
    WorkloadSpec s;
    s.id = j.at("id").get<std::string>();
    s.backend = static_cast<Backend>(j.at("backend").get<int>());
    s.command = j.at("command").get<std::vector<std::string>>();
    s.image = j.at("image").get<std::string>();
    s.env = j.at("env").get<std::map<std::string, std::string>>();
    s.resources.memory_bytes = j.at("memory_bytes").get<uint64_t>();
    s.resources.cpu_millis = j.at("cpu_millis").get<uint32_t>();
    s.resources.pids_max = j.at("pids_max").get<uint32_t>();
    s.resources.disk_bytes = j.at("disk_bytes").get<uint64_t>();
    s.resources.shm_bytes = j.at("shm_bytes").get<uint64_t>();
    s.resources.log_bytes_max = j.at("log_bytes_max").get<uint64_t>();
    int net = j.at("network").get<int>();
    if (net < 0 || net > 2) return Fail(ErrorCode::kCorrupt, "spec.json: bad network mode");
    s.network = static_cast<NetworkMode>(net);
    for (const auto& p : j.at("ports"))
      s.ports.push_back({p.at(0).get<uint16_t>(), p.at(1).get<uint16_t>()});
    s.gpu_uuids = j.at("gpu_uuids").get<std::vector<std::string>>();
    s.allow_unenforced_limits = j.at("allow_unenforced_limits").get<bool>();
    s.lease_id = j.at("lease_id").get<std::string>();
    s.node_rank = j.at("node_rank").get<uint32_t>();
    s.num_nodes = j.at("num_nodes").get<uint32_t>();
    s.node_ips = j.at("node_ips").get<std::vector<std::string>>();
    s.lease_ends_at_ms = j.at("lease_ends_at_ms").get<int64_t>();
    s.master_addr = j.at("master_addr").get<std::string>();
    s.master_port = j.at("master_port").get<uint16_t>();
    return s;
  });
}

std::string OptionsToJson(const RuntimeOptions& o) {
  json j = {{"state_dir", o.state_dir},
            {"supervisor_command", o.supervisor_command},
            {"uid_first", o.uid_first},
            {"uid_count", o.uid_count},
            {"cgroup_parents", o.cgroup_parents},
            {"device_dir", o.device_dir},
            {"gpu_minors", o.gpu_minors},
            {"extra_ro_binds", o.extra_ro_binds},
            {"extra_dev_binds", o.extra_dev_binds}};
  return j.dump(2);
}

base::Result<RuntimeOptions> OptionsFromJson(const std::string& text) {
  return Parse(text, "options.json", [](const json& j) -> base::Result<RuntimeOptions> {
    RuntimeOptions o;
    o.state_dir = j.at("state_dir").get<std::string>();
    o.supervisor_command = j.at("supervisor_command").get<std::vector<std::string>>();
    o.uid_first = j.at("uid_first").get<uint32_t>();
    o.uid_count = j.at("uid_count").get<uint32_t>();
    o.cgroup_parents = j.at("cgroup_parents").get<std::map<std::string, std::string>>();
    o.device_dir = j.at("device_dir").get<std::string>();
    o.gpu_minors = j.at("gpu_minors").get<std::map<std::string, uint32_t>>();
    o.extra_ro_binds =
        j.at("extra_ro_binds").get<std::vector<std::pair<std::string, std::string>>>();
    o.extra_dev_binds =
        j.at("extra_dev_binds").get<std::vector<std::pair<std::string, std::string>>>();
    return o;
  });
}

std::string StatusToJson(const ExitStatus& s) {
  json j = {{"exit_code", s.exit_code},
            {"signal", s.signal},
            {"reason", std::string(ExitReasonName(s.reason))},
            {"reason_code", static_cast<int>(s.reason)},
            {"message", s.message},
            {"oom_kills", s.counters.oom_kills},
            {"memory_failcnt", s.counters.memory_failcnt},
            {"pids_max_hits", s.counters.pids_max_hits},
            {"started_at_ms", s.started_at_ms},
            {"ended_at_ms", s.ended_at_ms}};
  return j.dump(2);
}

base::Result<ExitStatus> StatusFromJson(const std::string& text) {
  return Parse(text, "status.json", [](const json& j) -> base::Result<ExitStatus> {
    ExitStatus s;
    s.exit_code = j.at("exit_code").get<int>();
    s.signal = j.at("signal").get<int>();
    int reason = j.at("reason_code").get<int>();
    if (reason < 0 || reason > static_cast<int>(ExitReason::kSupervisorLost))
      return Fail(ErrorCode::kCorrupt, "status.json: unknown reason");
    s.reason = static_cast<ExitReason>(reason);
    s.message = j.at("message").get<std::string>();
    s.counters.oom_kills = j.at("oom_kills").get<uint64_t>();
    s.counters.memory_failcnt = j.at("memory_failcnt").get<uint64_t>();
    s.counters.pids_max_hits = j.at("pids_max_hits").get<uint64_t>();
    s.started_at_ms = j.at("started_at_ms").get<int64_t>();
    s.ended_at_ms = j.at("ended_at_ms").get<int64_t>();
    return s;
  });
}

std::string InfoToJson(const WorkloadInfo& info) {
  json ports = json::array();
  for (const auto& p : info.ports) ports.push_back({p.container_port, p.host_port});
  json j = {{"uid", info.uid}, {"ports", ports}, {"unenforced", info.unenforced}};
  return j.dump(2);
}

base::Status InfoFromJson(const std::string& text, WorkloadInfo* info) {
  return Parse(text, "info.json", [&](const json& j) -> base::Status {
    info->uid = j.at("uid").get<uint32_t>();
    info->ports.clear();
    for (const auto& p : j.at("ports"))
      info->ports.push_back({p.at(0).get<uint16_t>(), p.at(1).get<uint16_t>()});
    info->unenforced = j.at("unenforced").get<std::vector<std::string>>();
    return base::Ok();
  });
}

// ---- messages -------------------------------------------------------------------

std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out;
}

}  // namespace gpunet::runtime::state
