#include "runtime/host_probe.h"

#include <dirent.h>
#include <grp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <sstream>

#include "base/checked_math.h"
#include "runtime/network.h"
#include "runtime/nvml.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

const char* const kV1Controllers[] = {"memory", "cpu", "cpuacct", "pids", "devices", "freezer"};

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

CgroupLayout ProbeCgroups() {
  CgroupLayout layout;
  if (auto mounts = ReadFileToString("/proc/self/mounts")) {
    std::istringstream in(*mounts);
    std::string line;
    while (std::getline(in, line)) {
      auto f = Split(line, ' ');
      if (f.size() < 4) continue;
      if (f[2] == "cgroup2" && layout.v2_mount.empty()) layout.v2_mount = f[1];
      if (f[2] != "cgroup") continue;
      for (const auto& opt : Split(f[3], ','))
        for (const char* c : kV1Controllers)
          if (opt == c) layout.v1_mounts[c] = f[1];
    }
  }
  if (auto self = ReadFileToString("/proc/self/cgroup")) {
    std::istringstream in(*self);
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find(':');
      size_t b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      std::string ctrls = line.substr(a + 1, b - a - 1);
      std::string path = line.substr(b + 1);
      if (ctrls.empty()) {
        layout.v2_self = path;
        continue;
      }
      for (const auto& c : Split(ctrls, ',')) layout.v1_self[c] = path;
    }
  }
  if (!layout.v2_mount.empty()) {
    std::string dir = layout.v2_mount + (layout.v2_self == "/" ? "" : layout.v2_self);
    if (auto ctl = ReadFileToString(dir + "/cgroup.controllers")) {
      std::istringstream in(*ctl);
      std::string c;
      while (in >> c) layout.v2_controllers.push_back(c);
    }
    if (auto ctl = ReadFileToString(layout.v2_mount + "/cgroup.controllers")) {
      std::istringstream in(*ctl);
      std::string c;
      while (in >> c) layout.v2_root_controllers.push_back(c);
    }
  }
  return layout;
}

LimitSupport Support(const CgroupLayout& l, const std::string& v1_name,
                     const std::string& v2_name) {
  if (auto it = l.v1_mounts.find(v1_name); it != l.v1_mounts.end())
    return {Enforcement::kCgroupV1, "cgroup v1 " + it->second};
  if (!v2_name.empty() && std::ranges::find(l.v2_controllers, v2_name) != l.v2_controllers.end())
    return {Enforcement::kCgroupV2, "cgroup v2 " + l.v2_mount};
  if (!v2_name.empty() &&
      std::ranges::find(l.v2_root_controllers, v2_name) != l.v2_root_controllers.end())
    return {Enforcement::kNone,
            "the cgroup v2 " + v2_name +
                " controller exists but is not enabled for this process's cgroup " + l.v2_self +
                ": run gpunet in a cgroup whose parent delegates it (systemd "
                "Delegate=yes) or in the root cgroup"};
  return {Enforcement::kNone, "no " + v1_name + " controller in cgroup v1 or v2"};
}

/// Really tries: an unprivileged process (as the workload will be) creates a user namespace.
std::pair<bool, std::string> ProbeUserNamespaces() {
  std::string detail;
  if (auto m = ReadFileToString("/proc/sys/user/max_user_namespaces"))
    detail = "max_user_namespaces=" + m->substr(0, m->find('\n'));
  if (auto u = ReadFileToString("/proc/sys/kernel/unprivileged_userns_clone"))
    detail += " unprivileged_userns_clone=" + u->substr(0, u->find('\n'));
  pid_t pid = ::fork();
  if (pid < 0) return {false, "fork failed"};
  if (pid == 0) {
    if (::geteuid() == 0) {
      gid_t none[1] = {};
      if (::setgroups(0, none) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
          ::setresuid(65534, 65534, 65534) != 0)
        ::_exit(2);
    }
    ::_exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) detail += " (an unprivileged unshare(CLONE_NEWUSER) failed)";
  return {ok, detail};
}

}  // namespace

std::string CgroupLayout::Describe() const {
  if (v1_mounts.empty() && v2_mount.empty()) return "none";
  if (v1_mounts.empty()) return "v2 (unified at " + v2_mount + ")";
  std::string s = "v1 controllers:";
  for (const auto& [c, m] : v1_mounts) s += " " + c;
  if (!v2_mount.empty()) {
    s += "; hybrid, v2 at " + v2_mount + " with:";
    for (const auto& c : v2_controllers) s += " " + c;
    if (v2_controllers.empty()) s += " (no controllers)";
  }
  return s;
}

std::vector<std::string> PathsOutside(const std::vector<std::string>& files,
                                      const std::vector<std::string>& roots) {
  std::vector<std::string> out;
  for (const auto& f : files) {
    bool covered = std::ranges::any_of(roots, [&f](const std::string& r) {
      std::string root = r;
      while (root.size() > 1 && root.back() == '/') root.pop_back();
      return f == root || (f.starts_with(root) && (root == "/" || f[root.size()] == '/'));
    });
    if (!covered) out.push_back(f);
  }
  return out;
}

bool IsDriverLibraryName(std::string_view n) {
  return n.starts_with("libcuda.so") || n.starts_with("libcudadebugger.so") ||
         n.starts_with("libnvidia-") || n.starts_with("libnvcuvid");
}

std::vector<LdCacheEntry> ParseLdconfigOutput(std::string_view text) {
  std::vector<LdCacheEntry> out;
  for (const std::string& text_line : Split(std::string(text), '\n')) {
    std::string_view line = text_line;
    size_t arrow = line.find(" => ");
    size_t start = line.find_first_not_of(" \t");
    if (arrow == std::string_view::npos || start == std::string_view::npos || start >= arrow)
      continue;
    std::string_view left = line.substr(start, arrow - start);
    std::string_view path = line.substr(arrow + 4);
    while (!path.empty() && (path.back() == '\r' || path.back() == ' ')) path.remove_suffix(1);
    size_t space = left.find(' ');
    std::string_view soname = left.substr(0, space);
    if (soname.empty() || path.empty() || path[0] != '/') continue;
    out.push_back({std::string(soname), std::string(path)});
  }
  return out;
}

std::vector<std::string> WithLibraryDirs(std::vector<std::string> env,
                                         const std::vector<std::string>& dirs) {
  if (dirs.empty()) return env;
  std::string joined;
  for (const auto& d : dirs) joined += (joined.empty() ? "" : ":") + d;
  for (auto& kv : env) {
    if (!kv.starts_with("LD_LIBRARY_PATH=")) continue;
    std::string value = kv.substr(16);
    kv = "LD_LIBRARY_PATH=" + (value.empty() ? joined : value + ":" + joined);
    return env;
  }
  env.push_back("LD_LIBRARY_PATH=" + joined);
  std::ranges::sort(env);
  return env;
}

namespace {

std::string Canonical(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : "";
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

/// Directories the loader searches without being told (after ld.so.cache).
bool IsDefaultLibraryDir(const std::string& dir) {
  for (const char* d :
       {"/lib", "/usr/lib", "/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"})
    if (dir == d || Canonical(d) == dir) return true;
  return false;
}

}  // namespace

DriverLibraries DiscoverDriverLibraries() {
  // Candidate directories, canonical and in a stable order: the fixed ones first.
  std::vector<std::string> dirs;
  auto add_dir = [&dirs](const std::string& dir) {
    std::string c = Canonical(dir);
    if (!c.empty() && std::ranges::find(dirs, c) == dirs.end()) dirs.push_back(c);
  };
  for (const char* dir :
       {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu", "/usr/lib"})
    add_dir(dir);
  // What /etc/ld.so.cache lists: the directories the sandbox's loader finds too,
  // since the cache file is bound into the sandbox.
  std::vector<std::string> cached_dirs;
  if (std::string ldconfig = FindProgram("ldconfig"); !ldconfig.empty()) {
    std::string out;
    if (auto rc = RunProgram({ldconfig, "-p"}, &out); rc && *rc == 0) {
      for (const auto& e : ParseLdconfigOutput(out)) {
        std::string dir = Canonical(DirName(e.path));
        if (dir.empty()) continue;
        if (std::ranges::find(cached_dirs, dir) == cached_dirs.end()) cached_dirs.push_back(dir);
        if (IsDriverLibraryName(e.soname)) add_dir(dir);
      }
    }
  }
  // Where this process's loader resolves the driver (LD_LIBRARY_PATH included).
  for (const char* soname : {kNvmlLibrary, "libcuda.so.1"})
    if (std::string dir = LoadedLibraryDir(soname); !dir.empty()) add_dir(dir);

  DriverLibraries found;
  for (const auto& dir : dirs) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    bool any = false;
    while (dirent* e = ::readdir(d)) {
      if (!IsDriverLibraryName(e->d_name)) continue;
      found.files.push_back(dir + "/" + e->d_name);
      any = true;
    }
    ::closedir(d);
    if (any && !IsDefaultLibraryDir(dir) &&
        std::ranges::find(cached_dirs, dir) == cached_dirs.end())
      found.unlisted_dirs.push_back(dir);
  }
  std::ranges::sort(found.files);
  return found;
}

std::vector<std::string> FindDriverLibraries() {
  return DiscoverDriverLibraries().files;
}

HostCapabilities Probe() {
  HostCapabilities caps;
  caps.is_root = ::geteuid() == 0;
  caps.cgroups = ProbeCgroups();
  caps.memory = Support(caps.cgroups, "memory", "memory");
  caps.cpu = Support(caps.cgroups, "cpu", "cpu");
  caps.pids = Support(caps.cgroups, "pids", "pids");
  caps.freezer = Support(caps.cgroups, "freezer", "");
  if (caps.freezer.how == Enforcement::kNone && !caps.cgroups.v2_mount.empty() &&
      caps.cgroups.v1_mounts.empty())
    caps.freezer = {Enforcement::kCgroupV2, "cgroup.freeze / cgroup.kill"};
  caps.devices = Support(caps.cgroups, "devices", "");
  if (caps.devices.how == Enforcement::kNone && !caps.cgroups.v2_mount.empty())
    caps.devices = {Enforcement::kOther,
                    "cgroup v2 has no devices file (BPF only): GPUs are isolated by binding only "
                    "the allocated device nodes, and the seccomp filter forbids mknod-capable "
                    "namespaces"};
  auto [userns, detail] = ProbeUserNamespaces();
  caps.user_namespaces = userns;
  caps.user_namespaces_detail = detail;
  caps.seccomp = ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
  caps.loop_devices = Exists("/dev/loop-control");
  caps.bwrap = FindProgram("bwrap");
  caps.slirp4netns = FindProgram("slirp4netns");
  caps.podman = FindProgram("podman");
  caps.runc = FindProgram("runc");
  caps.mkfs_ext4 = FindProgram("mkfs.ext4");
  caps.mount = FindProgram("mount");
  caps.egress_unavailable = EgressUnavailableReason();
  if (DIR* d = ::opendir("/dev")) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.starts_with("nvidia") && n.size() > 6 && std::isdigit(static_cast<unsigned char>(n[6])))
        caps.gpu_devices.push_back("/dev/" + n);
    }
    ::closedir(d);
  }
  std::ranges::sort(caps.gpu_devices);
  DriverLibraries driver = DiscoverDriverLibraries();
  caps.driver_libraries = std::move(driver.files);
  caps.driver_library_dirs_unlisted = std::move(driver.unlisted_dirs);
  if (auto nvml = ProbeNvml())
    caps.nvml = std::move(*nvml);
  else
    caps.nvml_unavailable = nvml.error().message;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) caps.nofile_hard = rl.rlim_max;
  if (::getrlimit(RLIMIT_NPROC, &rl) == 0) caps.nproc_hard = rl.rlim_max;
  return caps;
}

std::vector<std::string> UnenforceableLimits(const HostCapabilities& caps,
                                             const WorkloadSpec& spec) {
  std::vector<std::string> missing;
  if (!caps.is_root) missing.push_back("cgroups, uid and disk quota: the runtime must run as root");
  if (caps.memory.how == Enforcement::kNone)
    missing.push_back("memory limit: " + caps.memory.detail);
  if (caps.cpu.how == Enforcement::kNone) missing.push_back("cpu limit: " + caps.cpu.detail);
  if (caps.pids.how == Enforcement::kNone) missing.push_back("pids limit: " + caps.pids.detail);
  if (caps.freezer.how == Enforcement::kNone)
    missing.push_back("teardown: no freezer controller to stop forks while killing");
  if (!spec.gpu_uuids.empty() && caps.devices.how == Enforcement::kNone)
    missing.push_back("GPU device isolation: no devices controller");
  if (caps.mkfs_ext4.empty() || caps.mount.empty() || !caps.loop_devices)
    missing.push_back("disk quota: needs mkfs.ext4 (e2fsprogs), mount and /dev/loop-control");
  return missing;
}

base::Result<uint64_t> ParseByteSize(const std::string& text) {
  if (text.empty())
    return Fail(ErrorCode::kInvalidArgument, "empty size; write e.g. 2G, 512M or 1048576");
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    auto v = base::CheckedMul(value, 10);
    if (!v) return Fail(ErrorCode::kOverflow, "size " + text + " is too large");
    auto w = base::CheckedAdd(*v, uint64_t(text[i] - '0'));
    if (!w) return Fail(ErrorCode::kOverflow, "size " + text + " is too large");
    value = *w;
    ++i;
  }
  if (i == 0)
    return Fail(ErrorCode::kInvalidArgument, "size " + text + " does not start with a number");
  std::string unit = text.substr(i);
  uint64_t mult = 1;
  if (unit == "" || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "k" || unit == "KiB")
    mult = 1ull << 10;
  else if (unit == "M" || unit == "m" || unit == "MiB")
    mult = 1ull << 20;
  else if (unit == "G" || unit == "g" || unit == "GiB")
    mult = 1ull << 30;
  else if (unit == "T" || unit == "t" || unit == "TiB")
    mult = 1ull << 40;
  else
    return Fail(ErrorCode::kInvalidArgument, "size " + text + " has an unknown unit '" + unit +
                                                 "'; use K, M, G or T (powers of 1024)");
  auto r = base::CheckedMul(value, mult);
  if (!r) return Fail(ErrorCode::kOverflow, "size " + text + " is too large");
  return *r;
}

std::string FormatByteSize(uint64_t bytes) {
  const char* units[] = {"T", "G", "M", "K"};
  int shifts[] = {40, 30, 20, 10};
  for (int i = 0; i < 4; ++i)
    if (bytes != 0 && bytes % (1ull << shifts[i]) == 0)
      return std::to_string(bytes >> shifts[i]) + units[i];
  return std::to_string(bytes) + "B";
}

}  // namespace gpunet::runtime
