#include "runtime/podman.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "base/check.h"
#include "base/file_util.h"
#include "runtime/network.h"
#include "runtime/runtime.h"
#include "runtime/state_files.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {
namespace {

using base::ErrorCode;
using base::Fail;
namespace fs = std::filesystem;

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

struct ProcessResult {
  int exit_code = -1;  ///< shell style
  std::string out, err;
};

/// Runs argv with exactly `env`, stdin from /dev/null, stdout/stderr either captured
/// or streamed to `sink`. Only async-signal-safe calls between fork and exec.
base::Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                       const std::vector<std::string>& env,
                                       const PodmanOutputSink* sink = nullptr) {
  GPUNET_CHECK(!argv.empty());
  // Every fd owned, so none leaks on any early return (a failed fork included).
  int fds_out[2], fds_err[2];
  if (::pipe2(fds_out, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, Errno("podman: pipe"));
  UniqueFd out_r(fds_out[0]), out_w(fds_out[1]);
  if (::pipe2(fds_err, O_CLOEXEC) != 0) return Fail(ErrorCode::kIo, Errno("podman: pipe"));
  UniqueFd err_r(fds_err[0]), err_w(fds_err[1]);
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull.Valid()) return Fail(ErrorCode::kIo, Errno("podman: open /dev/null"));
  const ExecStrings args(argv);
  const ExecStrings envp(env);
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrorCode::kIo, Errno("podman: fork"));
  if (pid == 0) {
    ::dup2(devnull.Get(), 0);
    ::dup2(out_w.Get(), 1);
    ::dup2(err_w.Get(), 2);
    ::close_range(3, ~0U, 0);  // none of the caller's fds reach podman and conmon
    ::execve(args.Get()[0], args.Get(), envp.Get());
    ::_exit(127);
  }
  devnull.Reset();
  out_w.Reset();
  err_w.Reset();
  UniqueFd* readers[2] = {&out_r, &err_r};
  ProcessResult result;
  pollfd fds[2] = {{out_r.Get(), POLLIN, 0}, {err_r.Get(), POLLIN, 0}};
  int open_count = 2;
  char buf[16384];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        std::string_view data(buf, static_cast<size_t>(n));
        if (sink != nullptr) {
          (*sink)(i == 0 ? "stdout" : "stderr", data);
        } else {
          std::string& s = i == 0 ? result.out : result.err;
          if (s.size() < (1u << 20)) s.append(data);
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        readers[i]->Reset();
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

/// 1500 -> "1.500" (podman takes a decimal; no floats in our code).
std::string CpusArg(uint32_t cpu_millis) {
  std::string frac = std::to_string(cpu_millis % 1000);
  return std::to_string(cpu_millis / 1000) + "." + std::string(3 - frac.size(), '0') + frac;
}

bool SubuidHasContainersUser() {
  for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
    std::ifstream in(file);
    bool found = false;
    for (std::string line; std::getline(in, line);)
      if (line.rfind("containers:", 0) == 0) found = true;
    if (!found) return false;
  }
  return true;
}

uint64_t HardLimit(int resource, uint64_t wanted) {
  rlimit rl{};
  if (::getrlimit(resource, &rl) != 0 || rl.rlim_max == RLIM_INFINITY) return wanted;
  return std::min<uint64_t>(wanted, rl.rlim_max);
}

std::string ReadFile(const std::string& path) {
  return ReadFileToString(path).value_or("");
}

uint64_t ReadKey(const std::string& path, const std::string& key) {
  std::istringstream in(ReadFile(path));
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

uint64_t ReadNumber(const std::string& path) {
  std::string s = Trim(ReadFile(path));
  if (s.empty() || s == "max") return 0;
  return std::strtoull(s.c_str(), nullptr, 10);
}

/// The limits of one podman workload, on a cgroup the runtime owns and podman nests
/// the container under (--cgroup-parent). The limits sit here rather than on the
/// container's own cgroup because podman removes that one as the container exits,
/// taking with it the counters that say why it died (and v1 memory events do not
/// propagate to ancestors).
class LimitCgroup {
 public:
  LimitCgroup(std::string relative) : m_relative(std::move(relative)) {
    m_v2 = fs::exists("/sys/fs/cgroup/cgroup.controllers");
  }
  ~LimitCgroup() { Remove(); }

  const std::string& Relative() const { return m_relative; }

  base::Status Create(const Resources& res, bool allow_unenforced,
                      std::vector<std::string>* missing) {
    if (m_v2) return CreateV2(res, allow_unenforced, missing);
    struct Item {
      const char* controller;
      std::vector<std::pair<std::string, std::string>> files;
    };
    std::vector<Item> items = {
        {"memory",
         {{"memory.limit_in_bytes", std::to_string(res.memory_bytes)},
          {"memory.memsw.limit_in_bytes", std::to_string(res.memory_bytes)}}},
        {"pids", {{"pids.max", std::to_string(res.pids_max)}}},
        {"cpu",
         {{"cpu.cfs_period_us", "100000"},
          {"cpu.cfs_quota_us", std::to_string(uint64_t{res.cpu_millis} * 100)}}},
    };
    for (const auto& item : items) {
      std::string root = std::string("/sys/fs/cgroup/") + item.controller;
      std::string dir = root + m_relative;
      std::error_code ec;
      if (!fs::exists(root + "/cgroup.procs") || (fs::create_directories(dir, ec), ec)) {
        missing->push_back(std::string(item.controller) + " limit: no v1 " + item.controller +
                           " hierarchy usable at " + root +
                           (ec ? " (cannot create " + dir + ": " + ec.message() + ")" : ""));
        continue;
      }
      m_dirs.push_back(dir);
      for (const auto& [file, value] : item.files) {
        if (file == "memory.memsw.limit_in_bytes" && !fs::exists(dir + "/" + file))
          continue;  // no swap accounting
        auto st = WriteStringToFile(dir + "/" + file, value);
        if (!st) missing->push_back(st.error().message);
      }
    }
    if (!missing->empty() && !allow_unenforced)
      return Fail(ErrorCode::kUnsupported, "podman: limits cannot be enforced: " + Join(*missing));
    return base::Ok();
  }

  /// (oom kills seen or inferred, forks refused at the limit)
  std::pair<bool, bool> Counters(const Resources& res) const {
    if (m_v2) {
      std::string dir = "/sys/fs/cgroup" + m_relative;
      return {ReadKey(dir + "/memory.events", "oom_kill") > 0,
              ReadKey(dir + "/pids.events", "max") > 0};
    }
    std::string mem = "/sys/fs/cgroup/memory" + m_relative;
    std::string pids = "/sys/fs/cgroup/pids" + m_relative;
    bool oom = ReadKey(mem + "/memory.oom_control", "oom_kill") > 0;
    // v1 keeps the OOM event on the victim's cgroup (podman's, already removed) and
    // does not count it up the tree: infer it from the usage peak having reached the
    // limit (the caller also requires death by SIGKILL).
    for (const char* prefix : {"/memory.", "/memory.memsw."}) {
      uint64_t peak = ReadNumber(mem + prefix + "max_usage_in_bytes");
      if (peak != 0 && peak + res.memory_bytes / 16 >= res.memory_bytes) oom = true;
    }
    bool pids_hit = ReadKey(pids + "/pids.events", "max") > 0;
    uint64_t pids_peak = ReadNumber(pids + "/pids.peak");
    if (pids_peak != 0 && pids_peak >= res.pids_max) pids_hit = true;
    return {oom, pids_hit};
  }

  void Remove() {
    for (const auto& dir : m_dirs) {
      for (int attempt = 0; attempt < 100; ++attempt) {
        std::error_code ec;
        // Children podman/conmon left (libpod-<id>, conmon) go first, deepest first.
        std::vector<fs::path> subdirs;
        for (auto it = fs::recursive_directory_iterator(dir, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
          if (it->is_directory(ec)) subdirs.push_back(it->path());
        std::sort(subdirs.rbegin(), subdirs.rend());
        for (const auto& s : subdirs) ::rmdir(s.c_str());
        if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
        ::usleep(20000);
      }
    }
    m_dirs.clear();
  }

 private:
  static std::string Join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : "; ") + s;
    return out;
  }

  base::Status CreateV2(const Resources& res, bool allow_unenforced,
                        std::vector<std::string>* missing) {
    // Enable the controllers down the path, then write the limits at the leaf.
    std::string dir = "/sys/fs/cgroup";
    std::error_code ec;
    fs::create_directories(dir + m_relative, ec);
    if (ec)
      return Fail(ErrorCode::kIo,
                  "podman: cannot create cgroup " + dir + m_relative + ": " + ec.message());
    m_dirs.push_back(dir + m_relative);
    for (const auto& part : fs::path(m_relative)) {
      if (part == "/") continue;
      for (const char* c : {"+memory", "+pids", "+cpu"})
        (void)WriteStringToFile(dir + "/cgroup.subtree_control", c);
      dir += "/" + part.string();
    }
    for (const auto& [file, value] : std::vector<std::pair<std::string, std::string>>{
             {"memory.max", std::to_string(res.memory_bytes)},
             {"memory.swap.max", "0"},
             {"pids.max", std::to_string(res.pids_max)},
             {"cpu.max", std::to_string(uint64_t{res.cpu_millis} * 100) + " 100000"}}) {
      auto st = WriteStringToFile(dir + "/" + file, value);
      if (!st && file != "memory.swap.max") missing->push_back(st.error().message);
    }
    if (!missing->empty() && !allow_unenforced)
      return Fail(ErrorCode::kUnsupported, "podman: limits cannot be enforced: " + Join(*missing));
    return base::Ok();
  }

  std::string m_relative;
  bool m_v2 = false;
  std::vector<std::string> m_dirs;
};

}  // namespace

bool IsImageReference(const std::string& image) {
  if (image.empty() || image.size() > 255 || !std::isalnum(static_cast<unsigned char>(image[0])))
    return false;
  if (!std::ranges::all_of(image, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' ||
               c == ':' || c == '@' || c == '-';
      }))
    return false;
  // podman reads "TRANSPORT:..." as an image from elsewhere than its store (dir:/etc,
  // oci-archive:/root/x.tar, docker://...): refuse every transport name it knows...
  static constexpr std::string_view kTransports[] = {
      "containers-storage", "dir",    "docker", "docker-archive", "docker-daemon", "oci",
      "oci-archive",        "ostree", "sif",    "tarball"};
  const size_t colon = image.find(':');
  if (colon != std::string::npos) {
    std::string lower = image.substr(0, colon);
    std::ranges::transform(lower, lower.begin(),
                           [](char c) { return static_cast<char>(std::tolower(c)); });
    if (std::ranges::find(kTransports, lower) != std::end(kTransports)) return false;
  }
  // ...and any other ':' before the first '/' but a registry's host:port.
  const size_t slash = image.find('/');
  if (slash == std::string::npos || colon == std::string::npos || colon > slash) return true;
  const std::string_view port(image.data() + colon + 1, slash - colon - 1);
  return !port.empty() && std::ranges::all_of(port, [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

std::string_view PodmanEndName(PodmanEnd end) {
  switch (end) {
    case PodmanEnd::kExited:
      return "exited";
    case PodmanEnd::kSignaled:
      return "signaled";
    case PodmanEnd::kOutOfMemory:
      return "out_of_memory";
    case PodmanEnd::kPidsLimit:
      return "pids_limit";
    case PodmanEnd::kStartFailed:
      return "start_failed";
  }
  return "unknown";
}

std::string PodmanContainersConf() {
  bool systemd = fs::exists("/run/systemd/system");
  std::string nofile = std::to_string(HardLimit(RLIMIT_NOFILE, 20000));
  std::string nproc = std::to_string(HardLimit(RLIMIT_NPROC, 32768));
  return "# Written by gpunet's runtime; podman reads it through CONTAINERS_CONF.\n"
         "[containers]\n"
         "default_ulimits = [\"nofile=" +
         nofile + ":" + nofile + "\", \"nproc=" + nproc + ":" + nproc +
         "\"]\n"
         "netns = \"none\"\n"
         "log_driver = \"k8s-file\"\n"
         "[engine]\n"
         "runtime = \"runc\"\n"
         "cgroup_manager = \"" +
         std::string(systemd ? "systemd" : "cgroupfs") +
         "\"\n"
         "events_logger = \"file\"\n";
}

base::Status WritePodmanEnvFile(const std::string& path, const std::vector<std::string>& env) {
  std::string text;
  for (const auto& kv : env) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos)
      return Fail(
          ErrorCode::kInvalidArgument,
          "podman: environment entry '" + state_files::Printable(kv) + "' is not KEY=VALUE");
    GPUNET_TRY(ValidateEnvName(kv.substr(0, eq)));
    if (kv.find('\0') != std::string::npos)
      return Fail(ErrorCode::kInvalidArgument,
                  "podman: the value of " + kv.substr(0, eq) + " contains NUL: remove it");
    if (kv.find_first_of("\n\r") != std::string::npos)
      return Fail(ErrorCode::kInvalidArgument,
                  "podman: the value of " + kv.substr(0, eq) +
                      " contains a line break, which podman's env file cannot carry; remove it "
                      "or use the sandbox backend");
    text += kv + "\n";
  }
  // Root-only from its first instant, and never written through a link (base::file_util).
  return base::WriteFileAtomic(path, text, {.mode = 0600});
}

std::string PodmanUnavailableReason() {
  if (::geteuid() != 0) return "the podman backend runs rootful: needs root";
  if (FindProgram("podman").empty()) return "podman not found (Debian package podman)";
  if (FindProgram("runc").empty())
    return "runc not found (Debian package runc; crun refuses hybrid cgroups)";
  return {};
}

base::Result<PodmanBackend> PodmanBackend::Create(PodmanOptions options) {
  if (auto why = PodmanUnavailableReason(); !why.empty())
    return Fail(ErrorCode::kUnsupported, "podman: " + why);
  PodmanBackend b;
  if (options.podman.empty()) options.podman = FindProgram("podman");
  b.m_runc = FindProgram("runc");
  if (options.cgroup_parent.empty() || options.cgroup_parent[0] != '/' ||
      options.cgroup_parent.find("..") != std::string::npos)
    return Fail(ErrorCode::kInvalidArgument,
                "podman: cgroup_parent must be an absolute cgroup path without '..'");
  std::error_code ec;
  fs::create_directories(options.config_dir, ec);
  if (ec)
    return Fail(ErrorCode::kIo,
                "podman: cannot create " + options.config_dir + ": " + ec.message());
  if (::chmod(options.config_dir.c_str(), 0700) != 0)
    return ErrnoFail("podman: chmod 0700 " + options.config_dir, errno);
  {
    std::ofstream out(options.config_dir + "/containers.conf", std::ios::trunc);
    out << PodmanContainersConf();
    if (!out)
      return Fail(ErrorCode::kIo,
                  "podman: cannot write " + options.config_dir + "/containers.conf");
  }
  b.m_auto_userns = SubuidHasContainersUser();
  if (!b.m_auto_userns && options.userns_base == 0)
    return Fail(ErrorCode::kUnsupported,
                "podman: --userns=auto needs a range for user \"containers\" in /etc/subuid and "
                "/etc/subgid "
                "(e.g. containers:2147483647:2147483648); add one, or give userns_base for a fixed "
                "mapping");
  if (!b.m_auto_userns && options.userns_base < 65536)
    return Fail(ErrorCode::kInvalidArgument,
                "podman: userns_base must be >= 65536 (never map onto host system uids)");
  b.m_options = std::move(options);
  return b;
}

std::vector<std::string> PodmanBackend::PodmanEnv() const {
  std::vector<std::string> env = HostEnvironment();
  env.push_back("CONTAINERS_CONF=" + m_options.config_dir + "/containers.conf");
  if (!m_options.storage_conf.empty())
    env.push_back("CONTAINERS_STORAGE_CONF=" + m_options.storage_conf);
  std::ranges::sort(env);
  return env;
}

base::Result<std::string> PodmanBackend::ImportRootfs(const std::string& tarball,
                                                      const std::string& name) const {
  auto r = RunProcess({m_options.podman, "import", "--quiet", tarball, name}, PodmanEnv());
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0)
    return Fail(ErrorCode::kIo, "podman import " + tarball + " failed: " + Trim(r->err));
  return Trim(r->out);
}

base::Status PodmanBackend::RemoveImage(const std::string& name) const {
  auto r = RunProcess({m_options.podman, "rmi", "--force", name}, PodmanEnv());
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0)
    return Fail(ErrorCode::kIo, "podman rmi " + name + " failed: " + Trim(r->err));
  return base::Ok();
}

bool PodmanBackend::ImageExists(const std::string& name) const {
  auto r = RunProcess({m_options.podman, "image", "exists", name}, PodmanEnv());
  return r && r->exit_code == 0;
}

std::vector<std::string> PodmanBackend::CreateArgs(const WorkloadSpec& spec,
                                                   const std::string& env_file,
                                                   const std::string& outputs_dir,
                                                   const std::string& run_dir) const {
  return CreateArgs(spec, env_file,
                    PodmanContainerPlan{.outputs_dir = outputs_dir, .run_dir = run_dir});
}

std::vector<std::string> PodmanBackend::CreateArgs(const WorkloadSpec& spec,
                                                   const std::string& env_file,
                                                   const PodmanContainerPlan& plan) const {
  const Resources& res = spec.resources;
  std::string nofile = std::to_string(HardLimit(RLIMIT_NOFILE, 20000));
  std::string nproc = std::to_string(HardLimit(RLIMIT_NPROC, 32768));
  const std::string chown = plan.chown_volumes ? ",U" : "";
  std::vector<std::string> a = {
      "create",
      "--name",
      ContainerName(spec.id),
      "--pull=never",
      "--runtime",
      m_runc,
      "--cap-drop=all",
      "--security-opt",
      "no-new-privileges",
      // The runtime attaches its own network modes to this namespace (network.h).
      "--network",
      "none",
      "--ulimit",
      "nofile=" + nofile + ":" + nofile,
      "--ulimit",
      "nproc=" + nproc + ":" + nproc,
      // Memory and pids limits live on the runtime's cgroup above the container (see
      // LimitCgroup, and the workload cgroup of a supervised one); the CPU quota is
      // given to podman as well.
      "--cgroup-parent",
      plan.cgroup_parent.empty() ? m_options.cgroup_parent + "/" + spec.id : plan.cgroup_parent,
      "--pids-limit",
      "-1",
      "--cpus",
      CpusArg(res.cpu_millis),
      "--read-only",
      "--shm-size",
      std::to_string(res.shm_bytes),
      // :U chowns the outputs dir to the container's root as mapped on the host.
      "--volume",
      plan.outputs_dir + ":/outputs:rw" + chown,
      "--log-driver",
      "k8s-file",
      "--log-opt",
      "max-size=" + std::to_string(res.log_bytes_max),
  };
  if (plan.tmp_dir.empty())
    a.insert(a.end(), {"--tmpfs", "/tmp:rw,nosuid,nodev,size=" + std::to_string(res.disk_bytes)});
  else
    a.insert(a.end(), {"--volume", plan.tmp_dir + ":/tmp:rw" + chown});
  if (!plan.work_dir.empty()) a.insert(a.end(), {"--volume", plan.work_dir + ":/work:rw" + chown});
  if (!plan.work_dir.empty() || spec.workdir != kWorkdirDefault)
    a.insert(a.end(), {"--workdir", spec.workdir});
  AppendUsersAndDevices(plan, &a);
  // The name service the network mode allows (network.h), not the host's resolver.
  a.insert(a.end(), {"--volume", plan.run_dir + "/resolv.conf:/etc/resolv.conf:ro"});
  a.insert(a.end(), {"--env-host=false", "--env-file", env_file});
  a.push_back(spec.image);
  a.insert(a.end(), spec.command.begin(), spec.command.end());
  return a;
}

void PodmanBackend::AppendUsersAndDevices(const PodmanContainerPlan& plan,
                                          std::vector<std::string>* args) const {
  auto& a = *args;
  if (m_auto_userns) {
    a.push_back("--userns=auto");
  } else {
    const uint32_t base = plan.userns_base != 0 ? plan.userns_base : m_options.userns_base;
    std::string map = "0:" + std::to_string(base) + ":65536";
    a.insert(a.end(), {"--uidmap", map, "--gidmap", map});
  }
  // Exactly the workload's GPUs. --device in a user namespace makes runc bind the
  // node at the host path equal to the path inside (/dev/nvidiaN only), and podman 4.3
  // drops --device-cgroup-rule there: with bind_devices the nodes are bound and the
  // caller allows them in the container's v1 device cgroup (AllowDevices).
  for (const auto& [host, inside] : plan.devices) {
    if (plan.bind_devices)
      a.insert(a.end(), {"--volume", host + ":" + inside + ":rw,dev"});
    else
      a.insert(a.end(), {"--device", host + ":" + inside + ":rwm"});
  }
  for (const auto& file : plan.ro_files) a.insert(a.end(), {"--volume", file + ":" + file + ":ro"});
}

base::Status PodmanBackend::CheckSpec(const WorkloadSpec& spec) const {
  if (spec.image.empty())
    return Fail(ErrorCode::kInvalidArgument, "podman: the spec names no image");
  if (!IsImageReference(spec.image))
    return Fail(ErrorCode::kInvalidArgument,
                "podman: image '" + state_files::Printable(spec.image) +
                    "' is not an image reference (a letter or digit, then letters, digits and "
                    "._/:@-, at most 255; no transport such as dir: or oci-archive:, and a ':' "
                    "before the first '/' only as a registry's host:port): podman would read "
                    "it as an option or an image from outside its store");
  // The id names the container and its cgroup path: the runtime's one id rule.
  if (auto valid = ValidateWorkloadId(spec.id); !valid) return base::Wrap(valid.error(), "podman");
  if (auto valid = ValidateWorkloadStrings(spec); !valid)
    return base::Wrap(valid.error(), "podman");
  GPUNET_TRY(ValidateNetworkSpec(spec));
  if (!ImageExists(spec.image))
    return Fail(ErrorCode::kNotFound,
                "podman: image " + spec.image +
                    " is not in the local store (images are never pulled: podman load/import it)");
  return base::Ok();
}

base::Result<pid_t> PodmanBackend::CreateContainer(const WorkloadSpec& spec,
                                                   const std::vector<std::string>& env,
                                                   const PodmanContainerPlan& plan) const {
  const std::string& podman = m_options.podman;
  const std::string name = ContainerName(spec.id);
  const auto env_p = PodmanEnv();
  auto remove = [&] { (void)RemoveContainer(spec.id); };
  if (auto written =
          base::WriteFileAtomic(plan.run_dir + "/resolv.conf", SandboxResolvConf(spec.network),
                                {.mode = 0644, .if_exists = {}, .before_commit = {}});
      !written)
    return base::Wrap(written.error(), "podman");
  // podman copies the variables into the container's configuration (in its root-only
  // store) at create: the file lives only as long as that.
  const std::string env_file = plan.run_dir + "/env";
  GPUNET_TRY(WritePodmanEnvFile(env_file, env));
  std::vector<std::string> create = CreateArgs(spec, env_file, plan);
  create.insert(create.begin(), podman);
  auto created = RunProcess(create, env_p);
  // The tenant's variables must not outlive the create: a file left behind is an error.
  if (::unlink(env_file.c_str()) != 0 && errno != ENOENT) {
    const std::string why = Errno("podman: delete " + env_file);
    if (created && created->exit_code == 0) remove();
    return Fail(ErrorCode::kIo, why + " (it holds the workload's environment: delete it)");
  }
  if (!created) return std::unexpected(created.error());
  if (created->exit_code != 0) {
    remove();
    return Fail(created->err.find("already in use") != std::string::npos ? ErrorCode::kAlreadyExists
                                                                         : ErrorCode::kIo,
                "podman create failed: " + Trim(created->err));
  }
  // init: runc creates the container process in its namespaces but holds the
  // command back, so the network is in place before anything of the tenant runs.
  auto init = RunProcess({podman, "init", name}, env_p);
  auto inspect = init && init->exit_code == 0
                     ? RunProcess({podman, "inspect", "--format", "{{.State.Pid}}", name}, env_p)
                     : base::Result<ProcessResult>(ProcessResult{});
  const pid_t pid =
      inspect ? static_cast<pid_t>(std::strtol(inspect->out.c_str(), nullptr, 10)) : 0;
  if (!init || init->exit_code != 0 || !inspect || inspect->exit_code != 0 || pid <= 0) {
    remove();
    if (!init) return std::unexpected(init.error());
    if (init->exit_code != 0) return Fail(ErrorCode::kIo, "podman init failed: " + Trim(init->err));
    if (!inspect) return std::unexpected(inspect.error());
    return Fail(ErrorCode::kIo, "podman: cannot read the container's pid: " + Trim(inspect->err));
  }
  return pid;
}

base::Status AllowDevicesInContainer(pid_t container_pid, const std::vector<std::string>& rules,
                                     const std::map<std::string, std::string>& v1_mounts) {
  auto mount = v1_mounts.find("devices");
  if (mount == v1_mounts.end())
    return Fail(ErrorCode::kUnsupported, "podman: no v1 devices hierarchy to allow GPUs in");
  auto text = ReadFileToString("/proc/" + std::to_string(container_pid) + "/cgroup");
  if (!text) return std::unexpected(text.error());
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    bool devices = false;
    for (const auto& c : Split(line.substr(a + 1, b - a - 1), ',')) devices |= c == "devices";
    if (!devices) continue;
    const std::string dir = mount->second + line.substr(b + 1);
    for (const auto& rule : rules) GPUNET_TRY(WriteStringToFile(dir + "/devices.allow", rule));
    return base::Ok();
  }
  return Fail(ErrorCode::kNotFound, "podman: the container is in no v1 devices cgroup");
}

std::vector<std::string> PodmanBackend::StartArgv(const std::string& id) const {
  return {m_options.podman, "start", "--attach", ContainerName(id)};
}

base::Result<PodmanState> PodmanBackend::State(const std::string& id) const {
  auto r = RunProcess({m_options.podman, "inspect", "--format",
                       "{{.State.ExitCode}} {{.State.OOMKilled}}", ContainerName(id)},
                      PodmanEnv());
  if (!r) return std::unexpected(r.error());
  PodmanState state;
  std::istringstream ss(r->out);
  std::string oom_word;
  if (r->exit_code != 0 || !(ss >> state.exit_code >> oom_word))
    return Fail(ErrorCode::kIo, "podman inspect " + ContainerName(id) + ": " + Trim(r->err));
  state.oom_killed = oom_word == "true";
  return state;
}

base::Status PodmanBackend::RemoveContainer(const std::string& id) const {
  // conmon runs `podman container cleanup` as its container exits; an rm racing it can
  // find the container's shm mount still busy ("device or resource busy"): try again.
  constexpr int kAttempts = 5;
  std::string last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) SleepMs(50 * attempt);
    auto r = RunProcess(
        {m_options.podman, "rm", "--force", "--ignore", "--time", "0", ContainerName(id)},
        PodmanEnv());
    if (!r) return std::unexpected(r.error());
    if (r->exit_code == 0) return base::Ok();
    last = Trim(r->err);
  }
  return Fail(ErrorCode::kIo, "podman rm " + ContainerName(id) + ": " + last);
}

base::Result<std::vector<PodmanImage>> PodmanBackend::ListImages() const {
  auto r = RunProcess({m_options.podman, "images", "--noheading", "--no-trunc", "--format",
                       "{{.Repository}}:{{.Tag}} {{.ID}}"},
                      PodmanEnv());
  if (!r) return std::unexpected(r.error());
  if (r->exit_code != 0) return Fail(ErrorCode::kIo, "podman images: " + Trim(r->err));
  std::vector<PodmanImage> out;
  std::istringstream in(r->out);
  for (std::string name, id; in >> name >> id;) {
    if (id.starts_with("sha256:")) id = id.substr(7);
    out.push_back({name == "<none>:<none>" ? "" : name, id});
  }
  return out;
}

base::Result<PodmanExit> PodmanBackend::Run(const WorkloadSpec& spec,
                                            const std::vector<std::string>& env,
                                            const std::string& outputs_dir,
                                            const std::string& run_dir,
                                            const PodmanOutputSink& sink) const {
  GPUNET_TRY(CheckSpec(spec));
  if (!spec.gpu_uuids.empty())
    return Fail(ErrorCode::kUnsupported,
                "podman: Run gives no GPUs; start the workload through Runtime::Start");
  LimitCgroup cgroup(m_options.cgroup_parent + "/" + spec.id);
  std::vector<std::string> missing;
  GPUNET_TRY(cgroup.Create(spec.resources, spec.allow_unenforced_limits, &missing));

  auto pid = CreateContainer(spec, env, {.outputs_dir = outputs_dir, .run_dir = run_dir});
  if (!pid) return std::unexpected(pid.error());
  // Whatever happens from here on, the container goes away before we return.
  std::unique_ptr<void, std::function<void(void*)>> guard(
      reinterpret_cast<void*>(1), [&](void*) { (void)RemoveContainer(spec.id); });
  auto network = AttachNetwork(spec, *pid, run_dir);
  if (!network) return base::Wrap(network.error(), "podman");

  auto started = RunProcess(StartArgv(spec.id), PodmanEnv(), &sink);
  if (!started) return std::unexpected(started.error());
  auto state = State(spec.id);
  network->reset();

  PodmanExit exit;
  if (!state) {
    exit.exit_code = started->exit_code;
    exit.end = PodmanEnd::kStartFailed;
    exit.message = "podman start failed (exit " + std::to_string(started->exit_code) + ")";
    return exit;
  }
  exit.exit_code = state->exit_code;
  auto [oom, pids_hit] = cgroup.Counters(spec.resources);
  if (state->oom_killed) oom = true;
  if (exit.exit_code == 128 + SIGKILL && oom) {
    exit.end = PodmanEnd::kOutOfMemory;
    exit.message =
        "killed: out of memory (limit " + std::to_string(spec.resources.memory_bytes) + " bytes)";
  } else if (exit.exit_code != 0 && pids_hit) {
    exit.end = PodmanEnd::kPidsLimit;
    exit.message = "failed with exit " + std::to_string(exit.exit_code) +
                   " after forks were refused at the pids limit (" +
                   std::to_string(spec.resources.pids_max) + ")";
  } else if (exit.exit_code > 128) {
    exit.end = PodmanEnd::kSignaled;
    exit.message = "killed by signal " + std::to_string(exit.exit_code - 128);
  } else {
    exit.message = "exited with " + std::to_string(exit.exit_code);
  }
  return exit;
}

}  // namespace gpunet::runtime
