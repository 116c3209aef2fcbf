#include "runtime/runtime.h"

#include <filesystem>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "base/check.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "runtime/host_probe.h"
#include "runtime/host_resources.h"
#include "runtime/network.h"
#include "runtime/session_socket.h"
#include "runtime/state_files.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;
using base::SystemClock;

std::string_view ExitReasonName(ExitReason reason) {
  switch (reason) {
    case ExitReason::kExited:
      return "exited";
    case ExitReason::kSignaled:
      return "signaled";
    case ExitReason::kOutOfMemory:
      return "out_of_memory";
    case ExitReason::kPidsLimit:
      return "pids_limit";
    case ExitReason::kStopped:
      return "stopped";
    case ExitReason::kSupervisorLost:
      return "supervisor_lost";
  }
  GPUNET_UNREACHABLE();
}

namespace {

constexpr size_t kIdBytesMax = 64;
constexpr size_t kEnvVarsMax = 256;
constexpr size_t kEnvBytesMax = 128 * 1024;
constexpr size_t kArgsMax = 4096;

bool IsEnvName(const std::string& k) {
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  return std::ranges::all_of(
      k, [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

struct SupervisorProcess {
  pid_t pid = 0;  ///< 0: none (never started, or ended)
  uint64_t start_time = 0;
};

/// The supervisor when it is still the same process that wrote the pid file and has
/// not ended (a zombie has: its status is written, its teardown done); pid 0 when
/// there is none. A pid file that is a link, or not root's, is refused: Stop signals
/// the pid it names.
base::Result<SupervisorProcess> ReadSupervisor(const state_files::StateDir& run) {
  auto text = run.Read(state_files::kPidFile);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) return SupervisorProcess{};
    return std::unexpected(text.error());
  }
  long pid = 0;
  unsigned long long start = 0;
  if (std::sscanf(text->c_str(), "%ld %llu", &pid, &start) != 2 || pid <= 0)
    return SupervisorProcess{};
  const auto p = static_cast<pid_t>(pid);
  if (ProcessStartTime(p) != start || ProcessEnded(p)) return SupervisorProcess{};
  return SupervisorProcess{p, start};
}

base::Result<pid_t> LiveSupervisor(const state_files::StateDir& run) {
  auto s = ReadSupervisor(run);
  if (!s) return std::unexpected(s.error());
  return s->pid;
}

/// Opens the workload's run dir: the id checked, the state tree checked on the way.
base::Result<state_files::StateDir> OpenRun(const RuntimeOptions& options, const std::string& id) {
  auto run = state_files::OpenRunDir(options.state_dir, id);
  if (!run && run.error().code == ErrorCode::kNotFound)
    return Fail(ErrorCode::kNotFound, "no workload " + id + " under " + options.state_dir);
  return run;
}

/// Creates <state_dir>/runs/<id> (and what is missing above it), checked all the way.
base::Result<state_files::StateDir> MakeRunDir(const std::string& state_dir,
                                               const std::string& id) {
  // The default state dir (/var/lib/gpunet/sandbox) may not have a parent yet on a
  // fresh host: parents are made 0755 whatever the umask (searchable, as bwrap needs;
  // writable by root alone, so nobody can swap the state dir).
  GPUNET_TRY(base::MakeParentDirectories(state_dir, 0755, "the sandbox state dir"));
  auto root = state_files::StateDir::Open(state_dir, state_files::Create::kIfMissing);
  if (!root) return std::unexpected(root.error());
  auto runs = root->Sub(state_files::kRunsDir, state_files::Create::kIfMissing);
  if (!runs) return std::unexpected(runs.error());
  auto run = runs->Sub(id, state_files::Create::kNew);
  if (!run && run.error().code == ErrorCode::kAlreadyExists)
    return Fail(ErrorCode::kAlreadyExists, "workload " + id + " already exists; Remove it first");
  return run;
}

/// The status file when the supervisor has written it, nullopt when not (yet).
base::Result<std::optional<ExitStatus>> ReadStatus(const state_files::StateDir& run) {
  auto text = run.Read(state_files::kStatusFile);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) return std::optional<ExitStatus>();
    return std::unexpected(text.error());
  }
  auto s = state_files::StatusFromJson(*text);
  if (!s) return std::unexpected(s.error());
  return std::optional<ExitStatus>(*s);
}

/// podman nests a container under one --cgroup-parent path in every v1 hierarchy, but
/// the caller may sit in different cgroups per controller (the build host's memory
/// cgroup is its own): the default parents then become the path most controllers
/// share, in each v1 hierarchy.
void UniteV1Parents(std::map<std::string, std::string>* parents) {
  std::map<std::string, int> count;
  for (const auto& [key, path] : *parents)
    if (key != kCgroupV2Key) ++count[path];
  if (count.size() < 2) return;
  const auto common = std::ranges::max_element(
      count, [](const auto& a, const auto& b) { return a.second < b.second; });
  for (auto& [key, path] : *parents)
    if (key != kCgroupV2Key) path = common->first;
}

/// The container of a podman workload whose supervisor is gone (killed): conmon keeps
/// it running, so it is removed through podman before the cgroups are swept.
void RemoveLostContainer(const PodmanOptions& options, const std::string& id) {
  if (!PodmanUnavailableReason().empty()) return;
  if (auto backend = PodmanBackend::Create(options)) (void)backend->RemoveContainer(id);
}

base::Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return errno == ENOENT ? base::Ok() : ErrnoFail("lstat " + path, errno);
  if (S_ISDIR(st.st_mode)) {
    if (IsMountPoint(path)) GPUNET_TRY(UnmountQuotaFs(path));
    DIR* d = ::opendir(path.c_str());
    if (!d) return ErrnoFail("opendir " + path, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        names.push_back(e->d_name);
    ::closedir(d);
    for (const auto& n : names) GPUNET_TRY(RemoveTree(path + "/" + n));
    if (::rmdir(path.c_str()) != 0) return ErrnoFail("rmdir " + path, errno);
  } else if (::unlink(path.c_str()) != 0) {
    return ErrnoFail("unlink " + path, errno);
  }
  return base::Ok();
}

}  // namespace

base::Status ValidateWorkloadId(std::string_view id) {
  if (id.empty() || id.size() > kIdBytesMax ||
      !std::ranges::all_of(
          id,
          [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }) ||
      id[0] == '-')
    return Fail(ErrorCode::kInvalidArgument,
                "workload id '" + state_files::Printable(id) +
                    "' must be 1-64 characters of [a-z0-9-], not starting with '-'");
  return base::Ok();
}

base::Status ValidateEnvName(const std::string& name) {
  if (!IsEnvName(name))
    return Fail(ErrorCode::kInvalidArgument, "environment variable name '" +
                                                 state_files::Printable(name) +
                                                 "' is not [A-Za-z_][A-Za-z0-9_]*");
  return base::Ok();
}

namespace {

bool HasControl(std::string_view text) {
  return std::ranges::any_of(text, [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

/// A lease field that becomes a GPUNET_* variable: no NUL (BwrapEnvArgs asserts
/// there is none) and no control character.
base::Status CheckLeaseField(std::string_view value, const char* field) {
  if (HasControl(value))
    return Fail(ErrorCode::kInvalidArgument,
                std::string("the spec's ") + field + " '" + state_files::Printable(value) +
                    "' holds NUL or a control character; give it as printable text");
  return base::Ok();
}

}  // namespace

namespace {

base::Status CheckInsideDir(const std::string& path, std::string_view what) {
  auto bad = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument,
                std::string(what) + " '" + state_files::Printable(path) + "' " + why);
  };
  if (path.empty() || path[0] != '/') return bad("is not an absolute path");
  if (path.size() > kInsideDirBytesMax)
    return bad("is over " + std::to_string(kInsideDirBytesMax) + " bytes");
  if (path == "/") return base::Ok();
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string_view part(path.data() + start, end - start);
    if (part.empty() || part == "." || part == "..") return bad("has an empty, '.' or '..' part");
    for (char c : part)
      if (!std::isalnum(static_cast<unsigned char>(c)) &&
          std::string_view("._@+-").find(c) == std::string_view::npos)
        return bad("holds a character other than [A-Za-z0-9._@+-]");
    start = end + 1;
  }
  return base::Ok();
}

bool IsAtOrBeneath(std::string_view path, std::string_view dir) {
  return path == dir ||
         (path.starts_with(dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

}  // namespace

base::Status ValidateInsideDirs(const WorkloadSpec& spec) {
  GPUNET_TRY(CheckInsideDir(spec.workdir, "workdir"));
  GPUNET_TRY(CheckInsideDir(spec.outputs_dir, "outputs_dir"));
  if (!IsAtOrBeneath(spec.outputs_dir, kOutputsDirDefault) &&
      !(IsAtOrBeneath(spec.outputs_dir, kWorkdirDefault) && spec.outputs_dir != kWorkdirDefault))
    return Fail(ErrorCode::kInvalidArgument,
                "outputs_dir '" + spec.outputs_dir +
                    "' is neither /outputs nor a folder beneath /outputs or /work (the "
                    "workload's disk, which the tenant API reads back)");
  return base::Ok();
}

std::optional<std::string> HostPathOfInside(const std::string& fs_dir, std::string_view inside) {
  for (std::string_view top : {kWorkdirDefault, kOutputsDirDefault})
    if (IsAtOrBeneath(inside, top)) return fs_dir + std::string(inside);
  return std::nullopt;
}

base::Status ValidateWorkloadStrings(const WorkloadSpec& spec) {
  GPUNET_TRY(ValidateInsideDirs(spec));
  for (size_t i = 0; i < spec.command.size(); ++i)
    if (spec.command[i].find('\0') != std::string::npos)
      return Fail(ErrorCode::kInvalidArgument,
                  "command argument " + std::to_string(i) + " ('" +
                      state_files::Printable(spec.command[i]) +
                      "') contains NUL, which execve would cut short: remove it");
  for (const auto& [k, v] : spec.env) {
    GPUNET_TRY(ValidateEnvName(k));
    if (v.find('\0') != std::string::npos)
      return Fail(ErrorCode::kInvalidArgument,
                  "the value of environment variable " + k + " contains NUL: remove it");
  }
  GPUNET_TRY(CheckLeaseField(spec.lease_id, "lease_id"));
  GPUNET_TRY(CheckLeaseField(spec.master_addr, "master_addr"));
  for (const auto& ip : spec.node_ips) {
    GPUNET_TRY(CheckLeaseField(ip, "node_ips entry"));
    if (ip.empty() || ip.find(',') != std::string::npos)
      return Fail(ErrorCode::kInvalidArgument,
                  "the spec's node_ips entry '" + state_files::Printable(ip) +
                      "' is empty or holds ',' (GPUNET_NODE_IPS joins them with ',')");
  }
  for (const auto& g : spec.gpu_uuids)
    if (g.empty() || g.find(',') != std::string::npos || g.find('/') != std::string::npos ||
        HasControl(g))
      return Fail(ErrorCode::kInvalidArgument,
                  "GPU UUID '" + state_files::Printable(g) +
                      "' is malformed (empty, or holds ',', '/' or a control character)");
  return base::Ok();
}

base::Status ValidateSpec(const WorkloadSpec& spec) {
  GPUNET_TRY(ValidateWorkloadId(spec.id));
  if (spec.backend == Backend::kPodman) {
    if (spec.image.empty())
      return Fail(ErrorCode::kInvalidArgument,
                  "a podman workload needs an image (its environment)");
    if (!IsImageReference(spec.image))
      return Fail(ErrorCode::kInvalidArgument,
                  "image '" + state_files::Printable(spec.image) +
                      "' is not the name of an image in podman's local store");
    // podman's env file holds one variable a line.
    for (const auto& [k, v] : spec.env)
      if (v.find_first_of("\n\r") != std::string::npos)
        return Fail(ErrorCode::kInvalidArgument,
                    "the value of environment variable " + k +
                        " holds a line break, which the podman backend cannot pass; remove it");
  } else if (spec.backend != Backend::kSandbox) {
    return Fail(ErrorCode::kInvalidArgument, "unknown backend");
  }
  // A podman workload without a command runs its image's own (CMD/ENTRYPOINT); a
  // sandbox without one is an interactive machine: its init serves sessions only.
  if (!spec.command.empty() && spec.command[0].empty())
    return Fail(ErrorCode::kInvalidArgument, "workload has an empty command name");
  if (spec.command.size() > kArgsMax)
    return Fail(ErrorCode::kLimitExceeded, "more than 4096 command arguments");
  if (spec.env.size() > kEnvVarsMax)
    return Fail(ErrorCode::kLimitExceeded, "more than 256 environment variables");
  GPUNET_TRY(ValidateWorkloadStrings(spec));
  size_t env_bytes = 0;
  for (const auto& [k, v] : spec.env) {
    if (k.starts_with("GPUNET_") || k == "CUDA_VISIBLE_DEVICES" || k == "MASTER_ADDR" ||
        k == "MASTER_PORT")
      return Fail(ErrorCode::kInvalidArgument,
                  "environment variable " + k + " is set by the runtime; remove it from the spec");
    env_bytes += k.size() + v.size() + 2;
  }
  if (env_bytes > kEnvBytesMax)
    return Fail(ErrorCode::kLimitExceeded, "environment is larger than 128 KiB");
  const auto& r = spec.resources;
  if (r.memory_bytes < (16ull << 20))
    return Fail(ErrorCode::kInvalidArgument, "memory limit below 16M");
  if (r.cpu_millis < 10) return Fail(ErrorCode::kInvalidArgument, "cpu quota below 0.01 cores");
  if (r.pids_max < 4) return Fail(ErrorCode::kInvalidArgument, "pids limit below 4");
  if (r.disk_bytes < (8ull << 20)) return Fail(ErrorCode::kInvalidArgument, "disk quota below 8M");
  if (r.shm_bytes < 4096) return Fail(ErrorCode::kInvalidArgument, "/dev/shm size below 4K");
  if (r.log_bytes_max < 4096) return Fail(ErrorCode::kInvalidArgument, "log cap below 4K");
  if (spec.stop_grace_ms > kStopGraceMsMax)
    return Fail(ErrorCode::kInvalidArgument, "stop grace above 300 s");
  return ValidateNetworkSpec(spec);
}

std::vector<std::string> WorkloadEnvironment(const WorkloadSpec& spec,
                                             const std::string& cuda_visible_devices) {
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", "/work"},
      {"TMPDIR", "/tmp"},
      {"LANG", "C.UTF-8"},
      {"USER", "gpunet"},
  };
  for (const auto& [k, v] : spec.env) env[k] = v;
  std::string ips;
  for (const auto& ip : spec.node_ips) ips += (ips.empty() ? "" : ",") + ip;
  env["GPUNET_LEASE_ID"] = spec.lease_id;
  env["GPUNET_NODE_RANK"] = std::to_string(spec.node_rank);
  env["GPUNET_NUM_NODES"] = std::to_string(spec.num_nodes);
  env["GPUNET_NODE_IPS"] = ips;
  env["GPUNET_GPUS_PER_NODE"] = std::to_string(spec.gpu_uuids.size());
  env["GPUNET_OUTPUT_DIR"] = spec.outputs_dir;
  env["GPUNET_LEASE_ENDS_AT"] = std::to_string(spec.lease_ends_at_ms);
  if (!spec.master_addr.empty()) env["MASTER_ADDR"] = spec.master_addr;
  if (spec.master_port != 0) env["MASTER_PORT"] = std::to_string(spec.master_port);
  // One machine is rank 0 of 1 (issue 18 item 5): its own loopback is the rendezvous,
  // at torch's default port, so `torchrun` and init_process_group need nothing more.
  if (spec.num_nodes == 1 && spec.master_addr.empty()) env["MASTER_ADDR"] = "127.0.0.1";
  if (spec.num_nodes == 1 && spec.master_port == 0) env["MASTER_PORT"] = "29500";
  if (!cuda_visible_devices.empty()) env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Runtime::Runtime(RuntimeOptions options) : m_options(std::move(options)) {
  GPUNET_CHECK(!m_options.state_dir.empty() && m_options.state_dir[0] == '/');
  // One spelling of the state dir, so that the supervisor can check that the run dir
  // it is given and the options it reads name the same one (state_files::ParseRunDir).
  std::string normal = std::filesystem::path(m_options.state_dir).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  m_options.state_dir = normal;
}

base::Result<std::string> Runtime::RunDir(const std::string& id) const {
  GPUNET_TRY(ValidateWorkloadId(id));
  return m_options.state_dir + "/runs/" + id;
}

// Over 70 lines: everything the supervisor needs is prepared
// before fork (the caller may be threaded); one ordered sequence
// NOLINTNEXTLINE(readability-function-size)
base::Result<WorkloadInfo> Runtime::Start(const WorkloadSpec& spec) {
  GPUNET_TRY(ValidateSpec(spec));
  if (m_options.supervisor_command.empty() || m_options.supervisor_command[0].empty() ||
      m_options.supervisor_command[0][0] != '/')
    return Fail(ErrorCode::kInvalidArgument,
                "RuntimeOptions::supervisor_command must start with an absolute path");
  // The state dir first: nothing is probed or created for a tree others control.
  if (auto existing = state_files::StateDir::Open(m_options.state_dir, state_files::Create::kNo);
      !existing && existing.error().code != ErrorCode::kNotFound)
    return std::unexpected(existing.error());
  HostCapabilities caps = Probe();
  if (spec.backend == Backend::kPodman) {
    if (auto why = PodmanUnavailableReason(); !why.empty())
      return Fail(ErrorCode::kUnsupported, "the podman backend cannot run here: " + why);
  } else if (caps.bwrap.empty()) {
    return Fail(ErrorCode::kUnsupported, "bwrap not found: apt-get install bubblewrap");
  } else if (!caps.user_namespaces) {
    return Fail(ErrorCode::kUnsupported,
                "user namespaces are not available (" + caps.user_namespaces_detail + ")");
  }
  auto missing = UnenforceableLimits(caps, spec);
  if (!missing.empty() && !spec.allow_unenforced_limits) {
    std::string msg = "this host cannot enforce:";
    for (const auto& m : missing) msg += "\n  - " + m;
    msg += "\nfix the host (see gpunet sandbox check) or allow unenforced limits explicitly";
    return Fail(ErrorCode::kUnsupported, msg);
  }
  RuntimeOptions resolved = m_options;
  if (spec.backend == Backend::kSandbox) {
    GPUNET_TRY_ASSIGN(resolved.init_path, ResolveInitPath(m_options.init_path));
  }
  if (resolved.cgroup_parents.empty()) {
    resolved.cgroup_parents = DefaultCgroupParents(caps);
    if (spec.backend == Backend::kPodman) UniteV1Parents(&resolved.cgroup_parents);
    resolved.cgroup_parents = ScopeCgroupParents(resolved.cgroup_parents, m_options.state_dir);
  }

  auto run = MakeRunDir(m_options.state_dir, spec.id);
  if (!run) return std::unexpected(run.error());
  const std::string run_dir = run->Path();
  auto fail_cleanup = [&](const base::Error& e) -> std::unexpected<base::Error> {
    (void)RemoveTree(run_dir);
    return std::unexpected(e);
  };
  if (auto s = run->Write(state_files::kSpecFile, state_files::SpecToJson(spec), 0600); !s)
    return fail_cleanup(s.error());
  if (auto s = run->Write(state_files::kOptionsFile, state_files::OptionsToJson(resolved), 0600);
      !s)
    return fail_cleanup(s.error());

  // Everything the children need is prepared before fork: the caller may be threaded.
  std::vector<std::string> argv_s = m_options.supervisor_command;
  argv_s.insert(argv_s.end(), {"--run-dir", run_dir, "--ready-fd", "3"});
  const ExecStrings argv(std::move(argv_s));
  // HostEnvironment, plus the caller's LD_LIBRARY_PATH: the caller is the provider
  // (never the tenant), and where it finds the GPU driver (NVML, libcuda) is where the
  // supervisor must look too (host_probe.h DriverLibraries). The supervisor's own
  // children get HostEnvironment only.
  std::vector<std::string> env_s = HostEnvironment();
  if (const char* ld_path = ::getenv("LD_LIBRARY_PATH"))
    env_s.push_back(std::string("LD_LIBRARY_PATH=") + ld_path);
  std::ranges::sort(env_s);
  const ExecStrings envp(std::move(env_s));

  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return fail_cleanup(ErrnoFail("pipe", errno).error());
  pid_t child = ::fork();
  if (child < 0) {
    int e = errno;
    ::close(ready[0]);
    ::close(ready[1]);
    return fail_cleanup(ErrnoFail("fork", e).error());
  }
  if (child == 0) {
    // Double fork + setsid: the supervisor is nobody's child and in no terminal's
    // session, so the caller's death or a Ctrl-C does not reach it.
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::dup2(ready[1], 3);
    ::close_range(4, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv.Get()[0], argv.Get(), envp.Get());
    ::_exit(127);
  }
  ::close(ready[1]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  std::string reply;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(ready[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(ready[0]);
  if (!reply.starts_with("ok")) {
    std::string msg = reply.starts_with("error ")
                          ? reply.substr(6)
                          : "the supervisor exited before the workload started (" +
                                m_options.supervisor_command[0] + ")";
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    auto log = run->Read(state_files::kSupervisorLog);
    // Its last lines, escaped: the log quotes the tenant's command and env names.
    constexpr size_t kLogTailBytes = 2048;
    if (reply.empty() && log && !log->empty())
      msg += ": " + state_files::Printable(std::string_view(*log).substr(
                        log->size() > kLogTailBytes ? log->size() - kLogTailBytes : 0));
    return fail_cleanup(
        base::Error{ErrorCode::kUnavailable, "starting workload " + spec.id + ": " + msg});
  }
  return Attach(spec.id);
}

base::Result<WorkloadInfo> Runtime::Attach(const std::string& id) const {
  auto run = OpenRun(m_options, id);
  if (!run) return std::unexpected(run.error());
  WorkloadInfo info;
  info.id = id;
  info.run_dir = run->Path();
  info.work_dir = info.run_dir + "/" + state_files::kFsDir + "/work";
  info.outputs_dir = info.run_dir + "/" + state_files::kFsDir + "/outputs";
  info.fs_dir = info.run_dir + "/" + state_files::kFsDir;
  // The spec's outputs_dir, where the workload leaves them (validated at the start).
  if (auto spec_text = run->Read(state_files::kSpecFile))
    if (auto spec = state_files::SpecFromJson(*spec_text))
      if (auto host = HostPathOfInside(info.fs_dir, spec->outputs_dir)) {
        info.outputs_dir = *host;
        info.outputs_beneath = spec->outputs_dir.substr(1);
      }
  if (auto text = run->Read(state_files::kInfoFile))
    GPUNET_TRY(state_files::InfoFromJson(*text, &info));
  else if (text.error().code != ErrorCode::kNotFound)
    return std::unexpected(text.error());
  auto pid = LiveSupervisor(*run);
  if (!pid) return std::unexpected(pid.error());
  info.supervisor_pid = *pid;
  info.running = info.supervisor_pid != 0 && !run->Has(state_files::kStatusFile);
  return info;
}

base::Result<std::optional<ExitStatus>> Runtime::Poll(const std::string& id) const {
  auto run = OpenRun(m_options, id);
  if (!run) return std::unexpected(run.error());
  auto status = ReadStatus(*run);
  if (!status || status->has_value()) return status;
  auto pid = LiveSupervisor(*run);
  if (!pid) return std::unexpected(pid.error());
  if (*pid != 0) return std::optional<ExitStatus>();
  // The supervisor may have written the status between the two reads.
  status = ReadStatus(*run);
  if (!status || status->has_value()) return status;
  ExitStatus lost;
  lost.exit_code = 137;
  lost.reason = ExitReason::kSupervisorLost;
  lost.message = "the supervisor of " + id + " died without recording an exit status";
  return std::optional<ExitStatus>(lost);
}

base::Result<ExitStatus> Runtime::Wait(const std::string& id, int64_t timeout_ms) const {
  int64_t deadline =
      timeout_ms < 0 ? INT64_MAX : SystemClock::Instance().MonotonicMs() + timeout_ms;
  while (true) {
    auto p = Poll(id);
    if (!p) return std::unexpected(p.error());
    if (p->has_value()) return **p;
    const int64_t now = SystemClock::Instance().MonotonicMs();
    if (now >= deadline) return Fail(ErrorCode::kTimeout, "workload " + id + " still running");
    // The supervisor writes status.json last and then exits: wait for its end (a pidfd,
    // no polling), at most a second at a time.
    auto run = OpenRun(m_options, id);
    if (!run) return std::unexpected(run.error());
    auto sup = ReadSupervisor(*run);
    if (!sup) return std::unexpected(sup.error());
    if (sup->pid == 0 ||
        !WaitProcessEnd(sup->pid, sup->start_time, std::min<int64_t>(deadline - now, 1000)))
      SleepMs(1);
  }
}

namespace {

/// Follows one log file of a run dir across rotation (log -> log.1): drains the old
/// file before switching to the new one. Only a regular file is read, never a link.
class LogTail {
 public:
  LogTail(const state_files::StateDir& run, std::string name)
      : m_dir(run.Fd()), m_name(std::move(name)) {}
  void Pump(std::string_view stream, const Runtime::LogSink& sink) {
    if (!m_fd.Valid()) m_fd = Open(&m_ino);
    Drain(stream, sink);
    // Rotated (log -> log.1): the old file is drained, then the new one is followed.
    ino_t ino = 0;
    if (UniqueFd now = Open(&ino); now.Valid() && ino != m_ino) {
      m_fd = std::move(now);
      m_ino = ino;
      Drain(stream, sink);
    }
  }

 private:
  void Drain(std::string_view stream, const Runtime::LogSink& sink) {
    char buf[65536];
    while (m_fd.Valid()) {
      ssize_t n = ::read(m_fd.Get(), buf, sizeof buf);
      if (n <= 0) break;
      sink(stream, std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  /// The log, opened relative to the run dir's fd without following a link, and used
  /// only when fstat on the opened fd shows a regular file of ours that nobody else
  /// may write (O_NONBLOCK: a FIFO planted there cannot stall the open).
  UniqueFd Open(ino_t* ino) const {
    UniqueFd fd(::openat(m_dir, m_name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!fd.Valid() || ::fstat(fd.Get(), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
      return UniqueFd();
    *ino = st.st_ino;
    return fd;
  }
  int m_dir;  ///< the run dir, open for the whole Follow
  std::string m_name;
  UniqueFd m_fd;
  ino_t m_ino = 0;
};

}  // namespace

base::Result<ExitStatus> Runtime::Follow(const std::string& id, const LogSink& sink) const {
  auto run = OpenRun(m_options, id);
  if (!run) return std::unexpected(run.error());
  LogTail out(*run, "stdout.log"), err(*run, "stderr.log");
  while (true) {
    auto p = Poll(id);
    if (!p) return std::unexpected(p.error());
    out.Pump("stdout", sink);
    err.Pump("stderr", sink);
    if (p->has_value()) {
      // The supervisor writes the status after the last log byte: one more drain.
      out.Pump("stdout", sink);
      err.Pump("stderr", sink);
      return **p;
    }
    SleepMs(20);
  }
}

base::Result<ExitStatus> Runtime::Stop(const std::string& id) const {
  auto run = OpenRun(m_options, id);
  if (!run) return std::unexpected(run.error());
  auto pid = LiveSupervisor(*run);
  if (!pid) return std::unexpected(pid.error());
  if (*pid != 0) ::kill(*pid, SIGTERM);
  return Wait(id);
}

base::Status Runtime::Remove(const std::string& id) const {
  auto info = Attach(id);
  if (!info) return std::unexpected(info.error());
  auto run = OpenRun(m_options, id);
  if (!run) return std::unexpected(run.error());
  if (auto sup = ReadSupervisor(*run); sup && sup->pid != 0) {
    auto s = Stop(id);
    if (!s) return std::unexpected(s.error());
    // Its status is written after its teardown (cgroups, network); its uid lock goes
    // with its exit, right after.
    (void)WaitProcessEnd(sup->pid, sup->start_time, 5000);
  }
  // A supervisor that died (or was killed) leaves its cgroups behind: clean them.
  // The options name those cgroups: a forged file is refused, never used. One that
  // wrote its status had finished its teardown: nothing to clean (and no host probe).
  auto text = run->Has(state_files::kStatusFile)
                  ? base::Result<std::string>(Fail(ErrorCode::kNotFound, "torn down"))
                  : run->Read(state_files::kOptionsFile);
  if (!text && text.error().code != ErrorCode::kNotFound) return std::unexpected(text.error());
  if (text) {
    auto live = LiveSupervisor(*run);
    if (!live) return std::unexpected(live.error());
    if (auto opts = state_files::OptionsFromJson(*text); opts && *live == 0) {
      // A podman container outlives its supervisor (conmon holds it): removed first.
      auto spec_text = run->Read(state_files::kSpecFile);
      auto spec = spec_text ? state_files::SpecFromJson(*spec_text)
                            : base::Result<WorkloadSpec>(std::unexpected(spec_text.error()));
      const bool podman = spec && spec->backend == Backend::kPodman;
      if (podman) RemoveLostContainer(opts->podman, id);
      WorkloadCgroups cgroups(Probe(), opts->cgroup_parents, id);
      GPUNET_TRY(cgroups.KillWorkload());
      (void)cgroups.Remove();
      if (podman)
        for (const auto& key : cgroups.Keys())
          RemoveCgroupPathEverywhere(cgroups.Relative(key, ""));
    }
  }
  GPUNET_TRY(UnmountQuotaFs(info->run_dir + "/" + state_files::kFsDir));
  return RemoveTree(info->run_dir);
}

std::vector<std::string> Runtime::List() const {
  std::vector<std::string> out;
  auto root = state_files::StateDir::Open(m_options.state_dir, state_files::Create::kNo);
  if (!root) return out;
  auto runs = root->Sub(state_files::kRunsDir, state_files::Create::kNo);
  if (!runs) return out;
  UniqueFd fd(::dup(runs->Fd()));
  DIR* d = fd.Valid() ? ::fdopendir(fd.Get()) : nullptr;
  if (!d) return out;
  fd.Release();  // closedir closes it
  while (dirent* e = ::readdir(d))
    if (ValidateWorkloadId(e->d_name)) out.push_back(e->d_name);
  ::closedir(d);
  std::ranges::sort(out);
  return out;
}

std::vector<Environment> Runtime::Environments(std::vector<std::string>* notes) const {
  std::vector<Environment> out;
  auto note = [&](std::string line) {
    if (notes != nullptr) notes->push_back(std::move(line));
  };
  const HostCapabilities caps = Probe();
  if (caps.bwrap.empty())
    note("host: bwrap not found (apt-get install bubblewrap)");
  else if (!caps.user_namespaces)
    note("host: user namespaces are not available (" + caps.user_namespaces_detail + ")");
  else
    out.push_back({kHostEnvironment, Backend::kSandbox, ""});
  if (auto why = PodmanUnavailableReason(); !why.empty()) {
    note("podman images: " + why);
    return out;
  }
  auto backend = PodmanBackend::Create(m_options.podman);
  auto images = backend ? backend->ListImages()
                        : base::Result<std::vector<PodmanImage>>(std::unexpected(backend.error()));
  if (!images) {
    note("podman images: " + images.error().message);
    return out;
  }
  std::vector<Environment> listed;
  for (const auto& image : *images)
    listed.push_back({image.name.empty() ? image.id : image.name, Backend::kPodman, image.id});
  std::ranges::sort(listed, {}, &Environment::name);
  out.insert(out.end(), listed.begin(), listed.end());
  return out;
}

base::Result<OutputsReader> Runtime::Outputs(const std::string& id) const {
  auto info = Attach(id);
  if (!info) return std::unexpected(info.error());
  return OutputsReader::OpenIn(info->fs_dir, info->outputs_beneath);
}

}  // namespace gpunet::runtime
