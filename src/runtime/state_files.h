// The files of a run dir, written by one process and read by another (the
// runtime and its supervisor, possibly across restarts). Internal to gpunet_runtime.
//
// The root supervisor acts on what it reads here (options name the cgroups it kills
// and the uids it takes; a pid file names the process Stop signals), so the state
// dir is trusted only as far as nobody but root can write it (docs/sandbox.md,
// "The state directory"): its path holds no symbolic link, and StateDir opens each
// directory and state file of it relative to a checked directory fd, one component
// at a time with O_NOFOLLOW (so openat2's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS adds
// nothing), and checks owner and mode with fstat on what it opened, never stat on a
// path. The logs and the sandbox's etc/ and fs/ dirs go through these fds too; what
// is still reached by path (disk image, mount, nft and slirp files, uid locks) is
// listed in docs/sandbox.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"
#include "runtime/runtime.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime::state_files {

inline constexpr const char* kSpecFile = "spec.json";
inline constexpr const char* kOptionsFile = "options.json";
inline constexpr const char* kPidFile = "supervisor.pid";
inline constexpr const char* kInfoFile = "info.json";
inline constexpr const char* kStatusFile = "status.json";
inline constexpr const char* kSupervisorLog = "supervisor.log";
inline constexpr const char* kFsDir = "fs";
inline constexpr const char* kRunsDir = "runs";

/// `text` with every byte outside printable ASCII written as \xNN, for error
/// messages that quote what a caller gave.
std::string Printable(std::string_view text);

/// What StateDir::Open and Sub do when the directory is missing.
enum class Create : uint8_t {
  kNo,         ///< missing: kNotFound
  kIfMissing,  ///< make it (0711); an existing one must pass the checks, then gets 0711
  kNew,        ///< make it (0711); an existing one: kAlreadyExists
};

/// A directory of the state tree, open and checked: a real directory (not a link),
/// owned by this process's euid (root) and writable by nobody else. Files in it are
/// read and written by name, never through a link.
class StateDir {
 public:
  /// Opens the state dir. Its path must hold no symbolic link (kPermissionDenied
  /// naming the real path: the supervisor later acts on the path as a string), and
  /// every directory above it must belong to root or to us and be writable by nobody
  /// else unless it is sticky (as /tmp): otherwise its owner could swap the state dir.
  static base::Result<StateDir> Open(const std::string& state_dir, Create create);
  /// A subdirectory (runs/, a run dir) under the same rules.
  base::Result<StateDir> Sub(const std::string& name, Create create) const;
  /// A whole file: a regular file, ours, writable by nobody else, not a link.
  /// kNotFound when absent, kPermissionDenied (naming the path and the fix) otherwise.
  base::Result<std::string> Read(const std::string& name) const;
  /// Writes `name` atomically (base::WriteFileAtomicAt), never through a link.
  base::Status Write(const std::string& name, std::string_view data, mode_t mode) const;
  /// Whether `name` exists (as anything, links included).
  bool Has(const std::string& name) const;
  int Fd() const { return m_fd.Get(); }
  const std::string& Path() const { return m_path; }

 private:
  StateDir(UniqueFd fd, std::string path) : m_fd(std::move(fd)), m_path(std::move(path)) {}
  UniqueFd m_fd;
  std::string m_path;
};

/// <state_dir>/runs/<id>, opened and checked all the way down (the id too).
base::Result<StateDir> OpenRunDir(const std::string& state_dir, const std::string& id);

/// Splits a run dir path exactly as Runtime builds it, <state_dir>/runs/<id> (absolute,
/// no "." or ".." or empty components, a valid id), into (state_dir, id).
base::Result<std::pair<std::string, std::string>> ParseRunDir(const std::string& run_dir);

std::string SpecToJson(const WorkloadSpec& spec);
base::Result<WorkloadSpec> SpecFromJson(const std::string& text);
/// Options plus the resolved cgroup parents the supervisor must use.
std::string OptionsToJson(const RuntimeOptions& options);
base::Result<RuntimeOptions> OptionsFromJson(const std::string& text);
std::string StatusToJson(const ExitStatus& status);
base::Result<ExitStatus> StatusFromJson(const std::string& text);
/// info.json: uid, ports, unenforced limits (written once the workload runs).
std::string InfoToJson(const WorkloadInfo& info);
base::Status InfoFromJson(const std::string& text, WorkloadInfo* info);

}  // namespace gpunet::runtime::state_files
