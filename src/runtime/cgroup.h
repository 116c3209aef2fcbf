// The cgroups of one workload, on whatever layout the host has (v1, v2, hybrid).
//
// Layout: <parent>/<id>/workload holds bwrap and everything it starts, with the
// limits; <parent>/<id>/supervisor holds the supervisor, outside the limits so an
// OOM in the workload never kills the process that reports it. <parent> defaults
// to the caller's own cgroup + "/gpunet" (what systemd's Delegate=yes hands over).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "runtime/host_probe.h"
#include "runtime/spec.h"

namespace gpunet::runtime {

/// What the cgroups saw happen, read before teardown to name the exit reason.
struct CgroupCounters {
  uint64_t oom_kills = 0;       ///< v1 memory.oom_control oom_kill / v2 memory.events oom_kill
  uint64_t memory_failcnt = 0;  ///< v1 memory.failcnt (allocations that hit the limit)
  /// pids.events "max": forks refused at the pids limit. A podman workload on cgroup
  /// v1 has the count on its container's cgroup, gone at the end: 1 when the peak
  /// (pids.peak) reached the limit.
  uint64_t pids_max_hits = 0;
};

/// Key under which the v2 parent path is stored in a parents map.
inline constexpr const char* kCgroupV2Key = "unified";

/// The default parent per hierarchy: this process's own cgroup + "/gpunet".
std::map<std::string, std::string> DefaultCgroupParents(const HostCapabilities& caps);

/// `parents` with one more component for the runtime's state dir ("/<16 hex>", a
/// hash of the path): workload ids are unique within one state dir only (every
/// provider home has a "lease-1"), so two runtimes on one host (two homes, tests side
/// by side) must not share a workload's cgroups, whose processes a stop signals.
std::map<std::string, std::string> ScopeCgroupParents(std::map<std::string, std::string> parents,
                                                      std::string_view state_dir);

/// Removes the empty cgroups at `relative` (and below) in every mounted hierarchy.
/// podman and runc create a container's cgroup path in each, those the runtime does
/// not limit with included (blkio, cpuset, name=systemd, a hybrid host's v2 tree).
void RemoveCgroupPathEverywhere(const std::string& relative);

class WorkloadCgroups {
 public:
  WorkloadCgroups() = default;
  WorkloadCgroups(const HostCapabilities& caps, std::map<std::string, std::string> parents,
                  std::string id);

  /// Creates <parent>/<id>/{workload,supervisor} in every hierarchy in use.
  base::Status Create();
  /// Writes memory, cpu, pids and device rules. `device_allow` are v1 rules such as
  /// "c 195:0 rwm"; when empty, devices are not restricted by the cgroup. Limits that
  /// cannot be written are appended to *unenforced (and are an error when it is null).
  base::Status ApplyLimits(const Resources& res, const std::vector<std::string>& device_allow,
                           std::vector<std::string>* unenforced);
  base::Status AddWorkload(pid_t pid) const { return Add(pid, "workload"); }
  base::Status AddSupervisor(pid_t pid) const { return Add(pid, "supervisor"); }
  /// Every pid in the workload cgroup and the cgroups below it (host pid namespace view).
  std::vector<pid_t> WorkloadPids() const;
  /// Kills every process of the workload: v2 cgroup.kill, else freeze, SIGKILL, thaw,
  /// repeated until the cgroup is empty (a fork racing the kill is caught frozen).
  base::Status KillWorkload() const;
  CgroupCounters Counters() const;
  /// Removes the workload's cgroups, and any below them, and the state dir's scope
  /// (ScopeCgroupParents) once no other workload is in it. The calling process must
  /// not be inside them.
  base::Status Remove() const;
  /// The directory of `leaf` in hierarchy `key` ("memory", ..., or kCgroupV2Key).
  std::string Dir(const std::string& key, const std::string& leaf) const;
  /// `leaf`'s path relative to the root of hierarchy `key` (podman's --cgroup-parent).
  std::string Relative(const std::string& key, const std::string& leaf) const;
  /// Hierarchies in use: v1 controller names and/or kCgroupV2Key.
  std::vector<std::string> Keys() const;

 private:
  base::Status CreateOnce();
  base::Status Add(pid_t pid, const char* leaf) const;
  std::string ProcsSource() const;

  HostCapabilities m_caps;
  std::map<std::string, std::string> m_parents;
  std::string m_id;
};

}  // namespace gpunet::runtime
