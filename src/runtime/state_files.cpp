#include "runtime/state_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/file_util.h"

namespace gpunet::runtime::state_files {

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
            {"stop_grace_ms", s.stop_grace_ms},
            {"workdir", s.workdir},
            {"outputs_dir", s.outputs_dir},
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
    const int backend = j.at("backend").get<int>();
    if (backend < 0 || backend > static_cast<int>(Backend::kPodman))
      return Fail(ErrorCode::kCorrupt, "spec.json: bad backend");
    s.backend = static_cast<Backend>(backend);
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
    // Absent in the spec.json of a run started before the grace existed.
    s.stop_grace_ms = j.value("stop_grace_ms", kStopGraceMsDefault);
    // Absent in the spec.json of a run started before the spec had them.
    s.workdir = j.value("workdir", std::string(kWorkdirDefault));
    s.outputs_dir = j.value("outputs_dir", std::string(kOutputsDirDefault));
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
            {"init_path", o.init_path},
            {"uid_first", o.uid_first},
            {"uid_count", o.uid_count},
            {"cgroup_parents", o.cgroup_parents},
            {"device_dir", o.device_dir},
            {"gpu_minors", o.gpu_minors},
            {"extra_ro_binds", o.extra_ro_binds},
            {"extra_dev_binds", o.extra_dev_binds},
            {"podman",
             {{"podman", o.podman.podman},
              {"config_dir", o.podman.config_dir},
              {"storage_conf", o.podman.storage_conf},
              {"userns_base", o.podman.userns_base}}}};
  return j.dump(2);
}

base::Result<RuntimeOptions> OptionsFromJson(const std::string& text) {
  return Parse(text, "options.json", [](const json& j) -> base::Result<RuntimeOptions> {
    RuntimeOptions o;
    o.state_dir = j.at("state_dir").get<std::string>();
    o.supervisor_command = j.at("supervisor_command").get<std::vector<std::string>>();
    // Absent in the options.json of a run started before gpunet-init.
    if (j.contains("init_path")) o.init_path = j.at("init_path").get<std::string>();
    o.uid_first = j.at("uid_first").get<uint32_t>();
    o.uid_count = j.at("uid_count").get<uint32_t>();
    o.cgroup_parents = j.at("cgroup_parents").get<std::map<std::string, std::string>>();
    o.device_dir = j.at("device_dir").get<std::string>();
    o.gpu_minors = j.at("gpu_minors").get<std::map<std::string, uint32_t>>();
    o.extra_ro_binds =
        j.at("extra_ro_binds").get<std::vector<std::pair<std::string, std::string>>>();
    o.extra_dev_binds =
        j.at("extra_dev_binds").get<std::vector<std::pair<std::string, std::string>>>();
    // Absent in the options.json of a run started before the podman backend.
    if (j.contains("podman")) {
      const json& p = j.at("podman");
      o.podman.podman = p.at("podman").get<std::string>();
      o.podman.config_dir = p.at("config_dir").get<std::string>();
      o.podman.storage_conf = p.at("storage_conf").get<std::string>();
      o.podman.userns_base = p.at("userns_base").get<uint32_t>();
    }
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

// ---- the state dir's trust rules ----------------------------------------------------

namespace {

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

/// A directory or file of the state tree: ours, and nobody else may write it.
base::Status CheckOwned(const struct stat& st, const std::string& path) {
  const uid_t euid = ::geteuid();
  const std::string owner = euid == 0 ? "root" : std::to_string(euid);
  if (st.st_uid != euid)
    return Fail(ErrorCode::kPermissionDenied,
                path + " is owned by uid " + std::to_string(st.st_uid) +
                    ", but the sandbox state must belong to " + owner +
                    ", who runs the runtime: if you made it, chown " + owner + " " + path +
                    "; if you did not, another user could write into the state dir, so check "
                    "what is in it before you trust it");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return Fail(ErrorCode::kPermissionDenied,
                path + " is writable by group or others (mode " + Octal(st.st_mode) +
                    "); only the runtime's user may write the sandbox state: chmod go-w " + path);
  return base::Ok();
}

/// A link in the state dir's path: refused, naming the real path to give instead.
std::unexpected<base::Error> LinkInPath(const std::string& link, const std::string& state_dir) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(state_dir.c_str(), nullptr),
                                                   &std::free);
  return Fail(ErrorCode::kPermissionDenied,
              link + ", in the path of the sandbox state dir " + Printable(state_dir) +
                  ", is a symbolic link; the root supervisor acts on the state dir by path, so "
                  "it is never reached through links: give the real path" +
                  (real ? std::string(": ") + Printable(real.get()) : std::string()));
}

/// Opens `name` in `dir_fd` as a directory, never following a link, and checks it.
base::Result<UniqueFd> OpenCheckedDir(int dir_fd, const std::string& name, const std::string& path,
                                      Create create) {
  if (create != Create::kNo && ::mkdirat(dir_fd, name.c_str(), 0711) != 0) {
    if (errno != EEXIST) return ErrnoFail("mkdir " + path, errno);
    if (create == Create::kNew) return Fail(ErrorCode::kAlreadyExists, path + " already exists");
  }
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.Valid()) {
    const int e = errno;
    struct stat st {};
    if (e == ENOENT) return Fail(ErrorCode::kNotFound, path + " does not exist");
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      return Fail(ErrorCode::kPermissionDenied,
                  path +
                      " is a symbolic link; the sandbox state is never reached through links: "
                      "give the real path, or remove the link if you did not make it");
    if (e == ENOTDIR) return Fail(ErrorCode::kPermissionDenied, path + " is not a directory");
    return ErrnoFail("open " + path, e);
  }
  struct stat st {};
  if (::fstat(fd.Get(), &st) != 0) return ErrnoFail("fstat " + path, errno);
  GPUNET_TRY(CheckOwned(st, path));
  // bwrap resolves its bind sources as the workload's uid: the tree must be searchable.
  if (create != Create::kNo && ::fchmod(fd.Get(), 0711) != 0)
    return ErrnoFail("chmod " + path, errno);
  return fd;
}

}  // namespace

base::Result<StateDir> StateDir::Open(const std::string& state_dir, Create create) {
  const std::filesystem::path p(state_dir);
  const std::string name = p.filename().string();
  if (!p.is_absolute() || name.empty() || name == "." || name == "..")
    return Fail(ErrorCode::kInvalidArgument, "the sandbox state dir '" + Printable(state_dir) +
                                                 "' must be an absolute path to a directory");
  // The path is walked as given, one component at a time with O_NOFOLLOW, each checked
  // on the fd that was opened. A link anywhere in it is refused rather than resolved:
  // the supervisor and Remove later act on the path as a string (mount, mkfs, rm -r),
  // and whoever may write the directory holding a link could re-point it.
  UniqueFd dir(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.Valid()) return ErrnoFail("open /", errno);
  std::string walked;
  std::optional<base::Error> parent_error;
  for (const auto& part : p.parent_path()) {
    if (part == "/") {
      walked = "/";
    } else {
      walked += (walked == "/" ? "" : "/") + part.string();
      if (part == "." || part == "..")
        return Fail(ErrorCode::kInvalidArgument,
                    "the sandbox state dir '" + Printable(state_dir) +
                        "' has a '.' or '..' component: give it without them");
      struct stat lst {};
      if (::fstatat(dir.Get(), part.c_str(), &lst, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
          return Fail(ErrorCode::kNotFound, walked + ", above the sandbox state dir " +
                                                Printable(state_dir) + ", does not exist");
        return ErrnoFail("stat " + walked, errno);
      }
      if (S_ISLNK(lst.st_mode)) return LinkInPath(walked, state_dir);
      UniqueFd next(
          ::openat(dir.Get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next.Valid()) return ErrnoFail("open " + walked, errno);
      dir = std::move(next);
    }
    struct stat st {};
    if (::fstat(dir.Get(), &st) != 0) return ErrnoFail("fstat " + walked, errno);
    // Swapped for a link between fstatat and openat: O_PATH | O_NOFOLLOW opened the link.
    if (S_ISLNK(st.st_mode)) return LinkInPath(walked, state_dir);
    // A link further down is reported before a parent others control: its fix (the
    // real path) is the one to give.
    if (auto checked = base::CheckParentDirectory(st, walked, "the sandbox state dir");
        !checked && !parent_error)
      parent_error = checked.error();
  }
  if (parent_error) return std::unexpected(*parent_error);
  auto fd = OpenCheckedDir(dir.Get(), name, state_dir, create);
  if (!fd) return std::unexpected(fd.error());
  return StateDir(std::move(*fd), state_dir);
}

base::Result<StateDir> StateDir::Sub(const std::string& name, Create create) const {
  GPUNET_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..");
  const std::string path = m_path + "/" + name;
  auto fd = OpenCheckedDir(m_fd.Get(), name, path, create);
  if (!fd) return std::unexpected(fd.error());
  return StateDir(std::move(*fd), path);
}

base::Result<std::string> StateDir::Read(const std::string& name) const {
  GPUNET_CHECK(!name.empty() && name.find('/') == std::string::npos);
  const std::string path = m_path + "/" + name;
  // O_NONBLOCK: a FIFO cannot stall the reader before fstat says what it is.
  UniqueFd fd(::openat(m_fd.Get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.Valid()) {
    const int e = errno;
    if (e == ENOENT) return Fail(ErrorCode::kNotFound, path + " does not exist");
    if (e == ELOOP)
      return Fail(ErrorCode::kPermissionDenied,
                  path +
                      " is a symbolic link; sandbox state files are never followed: "
                      "someone other than the runtime wrote into the run dir; remove it");
    return ErrnoFail("open " + path, e);
  }
  struct stat st {};
  if (::fstat(fd.Get(), &st) != 0) return ErrnoFail("fstat " + path, errno);
  if (!S_ISREG(st.st_mode))
    return Fail(ErrorCode::kPermissionDenied, path + " is not a regular file; remove it");
  GPUNET_TRY(CheckOwned(st, path));
  return base::ReadFdToString(fd.Get(), path, 1 << 20);
}

base::Status StateDir::Write(const std::string& name, std::string_view data, mode_t mode) const {
  GPUNET_CHECK(!name.empty() && name.find('/') == std::string::npos);
  return WriteFileAtomicAt(m_fd.Get(), m_path, name, data, mode);
}

bool StateDir::Has(const std::string& name) const {
  struct stat st {};
  return ::fstatat(m_fd.Get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

base::Result<StateDir> OpenRunDir(const std::string& state_dir, const std::string& id) {
  GPUNET_TRY(ValidateWorkloadId(id));
  auto root = StateDir::Open(state_dir, Create::kNo);
  if (!root) return std::unexpected(root.error());
  auto runs = root->Sub(kRunsDir, Create::kNo);
  if (!runs) return std::unexpected(runs.error());
  return runs->Sub(id, Create::kNo);
}

base::Result<std::pair<std::string, std::string>> ParseRunDir(const std::string& run_dir) {
  const std::filesystem::path p(run_dir);
  const std::string runs = p.parent_path().filename().string();
  if (run_dir.empty() || run_dir[0] != '/' || run_dir.back() == '/' ||
      p.lexically_normal().string() != run_dir || runs != kRunsDir)
    return Fail(ErrorCode::kInvalidArgument,
                "run dir '" + Printable(run_dir) +
                    "' is not <state_dir>/runs/<id> as the runtime names it (absolute, without "
                    "'.', '..', '//' or a trailing '/')");
  const std::string id = p.filename().string();
  GPUNET_TRY(ValidateWorkloadId(id));
  return std::pair<std::string, std::string>(p.parent_path().parent_path().string(), id);
}

}  // namespace gpunet::runtime::state_files
