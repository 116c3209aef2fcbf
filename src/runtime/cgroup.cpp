#include "runtime/cgroup.h"

#include <cstdio>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <string_view>

#include "base/check.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

const char* const kUsedV1[] = {"memory", "cpu", "pids", "devices", "freezer"};

base::Status MkdirP(const std::string& path) {
  std::string cur;
  std::istringstream in(path);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoFail("mkdir " + cur, errno);
  }
  return base::Ok();
}

/// Whether `parent`'s last component is a scope ScopeCgroupParents added (16 hex).
bool IsScopeTag(const std::string& parent) {
  const size_t slash = parent.rfind('/');
  const std::string_view tag = std::string_view(parent).substr(slash + 1);
  return slash != std::string::npos && tag.size() == 16 &&
         tag.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

uint64_t ReadKeyed(const std::string& path, const std::string& key) {
  auto text = ReadFileToString(path);
  if (!text) return 0;
  std::istringstream in(*text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

uint64_t ReadNumber(const std::string& path) {
  auto text = ReadFileToString(path);
  return text ? std::strtoull(text->c_str(), nullptr, 10) : 0;
}

std::vector<pid_t> ReadPids(const std::string& procs) {
  std::vector<pid_t> out;
  auto text = ReadFileToString(procs, 16 << 20);
  if (!text) return out;
  std::istringstream in(*text);
  pid_t p = 0;
  while (in >> p) out.push_back(p);
  return out;
}

/// `dir` and every cgroup below it, parents before children. A podman workload's
/// container and conmon live in child cgroups of the workload's (libpod-<id>, conmon).
std::vector<std::string> CgroupTree(const std::string& dir) {
  std::vector<std::string> out = {dir};
  for (size_t i = 0; i < out.size() && out.size() < 4096; ++i) {
    DIR* d = ::opendir(out[i].c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d))
      if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 &&
          std::strcmp(e->d_name, "..") != 0)
        out.push_back(out[i] + "/" + e->d_name);
    ::closedir(d);
  }
  return out;
}

}  // namespace

void RemoveCgroupPathEverywhere(const std::string& relative) {
  GPUNET_CHECK(!relative.empty() && relative[0] == '/' && relative.find("..") == std::string::npos);
  auto mounts = ReadFileToString("/proc/self/mounts");
  if (!mounts) return;
  std::vector<std::string> roots;
  std::istringstream in(*mounts);
  for (std::string line; std::getline(in, line);) {
    auto f = Split(line, ' ');
    if (f.size() >= 3 && (f[2] == "cgroup" || f[2] == "cgroup2")) roots.push_back(f[1] + relative);
  }
  // A cgroup whose last process is still exiting (conmon's `podman container cleanup`
  // on a loaded host) refuses rmdir with EBUSY for a moment: try again, 2 s at most.
  for (int round = 0; round < 100; ++round) {
    bool busy = false;
    for (const auto& root : roots) {
      auto tree = CgroupTree(root);
      for (auto it = tree.rbegin(); it != tree.rend(); ++it)
        if (::rmdir(it->c_str()) != 0 && errno == EBUSY) busy = true;
    }
    if (!busy) return;
    SleepMs(20);
  }
}

std::map<std::string, std::string> ScopeCgroupParents(std::map<std::string, std::string> parents,
                                                      std::string_view state_dir) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64: stable across processes and builds
  for (unsigned char c : state_dir) h = (h ^ c) * 1099511628211ull;
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016llx", static_cast<unsigned long long>(h));
  for (auto& [key, path] : parents) path += "/" + std::string(tag);
  return parents;
}

std::map<std::string, std::string> DefaultCgroupParents(const HostCapabilities& caps) {
  std::map<std::string, std::string> parents;
  auto join = [](const std::string& self) { return (self == "/" ? "" : self) + "/gpunet"; };
  for (const char* c : kUsedV1) {
    if (!caps.cgroups.v1_mounts.contains(c)) continue;
    auto it = caps.cgroups.v1_self.find(c);
    parents[c] = join(it == caps.cgroups.v1_self.end() ? "/" : it->second);
  }
  bool v2_used =
      caps.memory.how == Enforcement::kCgroupV2 || caps.cpu.how == Enforcement::kCgroupV2 ||
      caps.pids.how == Enforcement::kCgroupV2 || caps.freezer.how == Enforcement::kCgroupV2;
  if (v2_used) parents[kCgroupV2Key] = join(caps.cgroups.v2_self);
  return parents;
}

WorkloadCgroups::WorkloadCgroups(const HostCapabilities& caps,
                                 std::map<std::string, std::string> parents, std::string id)
    : m_caps(caps), m_parents(std::move(parents)), m_id(std::move(id)) {
  GPUNET_CHECK(!m_id.empty() && m_id.find('/') == std::string::npos);
}

std::vector<std::string> WorkloadCgroups::Keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, _] : m_parents) {
    if (k == kCgroupV2Key ? !m_caps.cgroups.v2_mount.empty() : m_caps.cgroups.v1_mounts.contains(k))
      keys.push_back(k);
  }
  return keys;
}

std::string WorkloadCgroups::Dir(const std::string& key, const std::string& leaf) const {
  auto it = m_parents.find(key);
  GPUNET_CHECK(it != m_parents.end());
  std::string mount =
      key == kCgroupV2Key ? m_caps.cgroups.v2_mount : m_caps.cgroups.v1_mounts.at(key);
  std::string d = mount + it->second + "/" + m_id;
  return leaf.empty() ? d : d + "/" + leaf;
}

base::Status WorkloadCgroups::Create() {
  // The state dir's scope may vanish under a first try (its last other workload's
  // Remove took it away between two mkdirs): a second try makes it again.
  auto made = CreateOnce();
  if (!made && made.error().message.find(std::strerror(ENOENT)) != std::string::npos)
    made = CreateOnce();
  return made;
}

base::Status WorkloadCgroups::CreateOnce() {
  for (const auto& key : Keys()) {
    if (key == kCgroupV2Key) {
      // v2: controllers must be enabled in every ancestor's subtree_control.
      std::string mount = m_caps.cgroups.v2_mount;
      std::string path;
      std::string rel = m_parents.at(key) + "/" + m_id;
      std::istringstream in(rel);
      std::string part;
      while (std::getline(in, part, '/')) {
        if (part.empty()) continue;
        std::string parent = mount + path;
        path += "/" + part;
        if (::mkdir((mount + path).c_str(), 0755) != 0 && errno != EEXIST)
          return ErrnoFail("mkdir " + mount + path, errno);
        for (const char* c : {"memory", "cpu", "pids"})
          (void)WriteStringToFile(parent + "/cgroup.subtree_control", std::string("+") + c);
      }
      for (const char* c : {"memory", "cpu", "pids"})
        (void)WriteStringToFile(mount + path + "/cgroup.subtree_control", std::string("+") + c);
    }
    for (const char* leaf : {"workload", "supervisor"}) GPUNET_TRY(MkdirP(Dir(key, leaf)));
  }
  return base::Ok();
}

// Over 70 lines: one table of what each controller (memory,
// cpu, pids, devices) writes under cgroup v1 and v2, read top to bottom as one
// NOLINTNEXTLINE(readability-function-size)
base::Status WorkloadCgroups::ApplyLimits(const Resources& res,
                                          const std::vector<std::string>& device_allow,
                                          std::vector<std::string>* unenforced) {
  auto need = [&](bool ok, const std::string& what) -> base::Status {
    if (ok) return base::Ok();
    if (!unenforced) return Fail(ErrorCode::kUnsupported, what);
    unenforced->push_back(what);
    return base::Ok();
  };
  auto write = [](const std::string& path, const std::string& value) {
    return WriteStringToFile(path, value).has_value();
  };
  const std::string mem = std::to_string(res.memory_bytes);
  const uint64_t period_us = 100000;
  const uint64_t quota_us = std::max<uint64_t>(1000, uint64_t(res.cpu_millis) * period_us / 1000);
  const std::string pids = std::to_string(res.pids_max);
  // A hierarchy the caps offer but the parents map leaves out is not enforced.
  auto how = [&](Enforcement e, const char* v1_key) {
    if (e == Enforcement::kCgroupV1 && !m_parents.contains(v1_key)) return Enforcement::kNone;
    if (e == Enforcement::kCgroupV2 && !m_parents.contains(kCgroupV2Key)) return Enforcement::kNone;
    return e;
  };
  switch (how(m_caps.memory.how, "memory")) {
    case Enforcement::kCgroupV1: {
      std::string d = Dir("memory", "workload");
      GPUNET_TRY(need(write(d + "/memory.limit_in_bytes", mem),
                      "memory limit: cannot write " + d + "/memory.limit_in_bytes"));
      // Without this the workload could push its pages to swap past the limit.
      if (::access((d + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0)
        GPUNET_TRY(need(write(d + "/memory.memsw.limit_in_bytes", mem),
                        "memory+swap limit: cannot write memory.memsw.limit_in_bytes"));
      GPUNET_TRY(need(ReadNumber(d + "/memory.limit_in_bytes") <= res.memory_bytes,
                      "memory limit: the kernel did not keep memory.limit_in_bytes"));
      break;
    }
    case Enforcement::kCgroupV2: {
      std::string d = Dir(kCgroupV2Key, "workload");
      GPUNET_TRY(
          need(write(d + "/memory.max", mem), "memory limit: cannot write " + d + "/memory.max"));
      (void)write(d + "/memory.swap.max", "0");
      break;
    }
    default:
      GPUNET_TRY(
          need(false, "memory limit: no memory cgroup in use (" + m_caps.memory.detail + ")"));
  }
  switch (how(m_caps.cpu.how, "cpu")) {
    case Enforcement::kCgroupV1: {
      std::string d = Dir("cpu", "workload");
      bool ok = write(d + "/cpu.cfs_period_us", std::to_string(period_us)) &&
                write(d + "/cpu.cfs_quota_us", std::to_string(quota_us));
      GPUNET_TRY(need(ok, "cpu limit: cannot write cpu.cfs_quota_us in " + d));
      break;
    }
    case Enforcement::kCgroupV2:
      GPUNET_TRY(need(write(Dir(kCgroupV2Key, "workload") + "/cpu.max",
                            std::to_string(quota_us) + " " + std::to_string(period_us)),
                      "cpu limit: cannot write cpu.max"));
      break;
    default:
      GPUNET_TRY(need(false, "cpu limit: no cpu cgroup in use (" + m_caps.cpu.detail + ")"));
  }
  switch (how(m_caps.pids.how, "pids")) {
    case Enforcement::kCgroupV1:
      GPUNET_TRY(need(write(Dir("pids", "workload") + "/pids.max", pids),
                      "pids limit: cannot write pids.max"));
      break;
    case Enforcement::kCgroupV2:
      GPUNET_TRY(need(write(Dir(kCgroupV2Key, "workload") + "/pids.max", pids),
                      "pids limit: cannot write pids.max"));
      break;
    default:
      GPUNET_TRY(need(false, "pids limit: no pids cgroup in use (" + m_caps.pids.detail + ")"));
  }
  if (!device_allow.empty()) {
    if (m_caps.devices.how == Enforcement::kCgroupV1 && !m_parents.contains("devices")) {
      GPUNET_TRY(need(false, "device rules: no devices cgroup in use"));
    } else if (m_caps.devices.how == Enforcement::kCgroupV1) {
      std::string d = Dir("devices", "workload");
      bool ok = write(d + "/devices.deny", "a");
      for (const auto& rule : device_allow) ok = ok && write(d + "/devices.allow", rule);
      GPUNET_TRY(need(ok, "device rules: cannot write devices.allow/deny in " + d));
    } else if (m_caps.devices.how == Enforcement::kNone) {
      GPUNET_TRY(need(false, "device rules: " + m_caps.devices.detail));
    }
    // kOther (v2): isolation comes from binding only the allocated nodes.
  }
  return base::Ok();
}

base::Status WorkloadCgroups::Add(pid_t pid, const char* leaf) const {
  for (const auto& key : Keys()) {
    std::string procs = Dir(key, leaf) + "/cgroup.procs";
    GPUNET_TRY(WriteStringToFile(procs, std::to_string(pid)));
  }
  return base::Ok();
}

std::string WorkloadCgroups::ProcsSource() const {
  for (const char* k : {"freezer", "pids", "memory", kCgroupV2Key, "cpu", "devices"})
    if (m_parents.contains(k)) return Dir(k, "workload") + "/cgroup.procs";
  return "";
}

std::vector<pid_t> WorkloadCgroups::WorkloadPids() const {
  std::string src = ProcsSource();
  if (src.empty()) return {};
  std::vector<pid_t> out;
  const std::string dir = src.substr(0, src.size() - std::strlen("/cgroup.procs"));
  for (const auto& d : CgroupTree(dir)) {
    auto pids = ReadPids(d + "/cgroup.procs");
    out.insert(out.end(), pids.begin(), pids.end());
  }
  return out;
}

std::string WorkloadCgroups::Relative(const std::string& key, const std::string& leaf) const {
  auto it = m_parents.find(key);
  GPUNET_CHECK(it != m_parents.end());
  return it->second + "/" + m_id + (leaf.empty() ? "" : "/" + leaf);
}

base::Status WorkloadCgroups::KillWorkload() const {
  if (m_parents.empty()) return base::Ok();
  const bool v1_freezer =
      m_parents.contains("freezer") && m_caps.cgroups.v1_mounts.contains("freezer");
  const bool v2 = m_parents.contains(kCgroupV2Key);
  std::string v2_dir = v2 ? Dir(kCgroupV2Key, "workload") : "";
  if (v2 && ::access((v2_dir + "/cgroup.kill").c_str(), F_OK) == 0)
    (void)WriteStringToFile(v2_dir + "/cgroup.kill", "1");
  for (int round = 0; round < 500; ++round) {
    auto pids = WorkloadPids();
    if (pids.empty()) return base::Ok();
    std::string state;
    if (v1_freezer) {
      state = Dir("freezer", "workload") + "/freezer.state";
      (void)WriteStringToFile(state, "FROZEN");
      for (int i = 0; i < 100; ++i) {
        auto s = ReadFileToString(state);
        if (s && s->starts_with("FROZEN")) break;
        SleepMs(1);
      }
      pids = WorkloadPids();
    } else if (v2) {
      (void)WriteStringToFile(v2_dir + "/cgroup.freeze", "1");
    }
    for (pid_t p : pids) ::kill(p, SIGKILL);
    if (v1_freezer) (void)WriteStringToFile(state, "THAWED");
    if (v2) (void)WriteStringToFile(v2_dir + "/cgroup.freeze", "0");
    SleepMs(round < 10 ? 2 : 20);
  }
  return Fail(ErrorCode::kInternal,
              "processes survive in " + ProcsSource() + " after 500 kill rounds");
}

CgroupCounters WorkloadCgroups::Counters() const {
  CgroupCounters c;
  if (m_caps.memory.how == Enforcement::kCgroupV1 && m_parents.contains("memory")) {
    std::string d = Dir("memory", "workload");
    c.oom_kills = ReadKeyed(d + "/memory.oom_control", "oom_kill");
    c.memory_failcnt = ReadNumber(d + "/memory.failcnt");
  } else if (m_caps.memory.how == Enforcement::kCgroupV2 && m_parents.contains(kCgroupV2Key)) {
    c.oom_kills = ReadKeyed(Dir(kCgroupV2Key, "workload") + "/memory.events", "oom_kill");
  }
  if (m_caps.pids.how == Enforcement::kCgroupV1 && m_parents.contains("pids"))
    c.pids_max_hits = ReadKeyed(Dir("pids", "workload") + "/pids.events", "max");
  else if (m_caps.pids.how == Enforcement::kCgroupV2 && m_parents.contains(kCgroupV2Key))
    c.pids_max_hits = ReadKeyed(Dir(kCgroupV2Key, "workload") + "/pids.events", "max");
  return c;
}

base::Status WorkloadCgroups::Remove() const {
  std::string failed;
  for (const auto& key : Keys()) {
    // Children (a podman container's libpod-<id> and conmon cgroups) deepest first.
    auto below = CgroupTree(Dir(key, "workload"));
    for (auto it = below.rbegin(); it != below.rend() && it + 1 != below.rend(); ++it)
      if (::rmdir(it->c_str()) != 0 && errno != ENOENT)
        failed += " " + *it + " (" + std::strerror(errno) + ")";
    for (const char* leaf : {"workload", "supervisor", ""}) {
      std::string d = Dir(key, leaf);
      if (::rmdir(d.c_str()) != 0 && errno != ENOENT)
        failed += " " + d + " (" + std::strerror(errno) + ")";
    }
  }
  // The state dir's scope (ScopeCgroupParents) goes with its last workload, so a
  // host running many state dirs one after another (tests) keeps no empty cgroups;
  // while another workload is in it, rmdir refuses (Create retries a vanished scope).
  for (const auto& key : Keys())
    if (IsScopeTag(m_parents.at(key))) {
      const std::string mine = Dir(key, "");
      (void)::rmdir(mine.substr(0, mine.size() - m_id.size() - 1).c_str());
    }
  if (!failed.empty()) return Fail(ErrorCode::kIo, "cannot remove cgroups:" + failed);
  return base::Ok();
}

}  // namespace gpunet::runtime
