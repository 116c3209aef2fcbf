// Small POSIX helpers shared by the runtime's files: owned file descriptors,
// whole-file reads and atomic writes, and running a helper program. Internal to
// gpunet_runtime (other modules use the Runtime API).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace gpunet::runtime {

/// A file descriptor closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(std::exchange(o.m_fd, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }
  int Get() const { return m_fd; }
  bool Valid() const { return m_fd >= 0; }
  int Release() { return std::exchange(m_fd, -1); }
  void Reset(int fd = -1);

 private:
  int m_fd = -1;
};

/// The pieces of `s` between separators (a trailing separator adds no empty piece).
std::vector<std::string> Split(const std::string& s, char sep);

/// An Error of kind kIo carrying strerror(errno_value).
std::unexpected<base::Error> ErrnoFail(std::string_view what, int errno_value);

base::Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes = 1 << 20);
/// Writes `data` to `path` (O_TRUNC, mode), used for cgroup control files too.
base::Status WriteStringToFile(const std::string& path, std::string_view data, mode_t mode = 0644);
/// base::WriteFileAtomicAt with `mode`: `name` in the directory open as `dir_fd`,
/// never through a link; `dir_path` names the directory in errors.
base::Status WriteFileAtomicAt(int dir_fd, const std::string& dir_path, const std::string& name,
                               std::string_view data, mode_t mode);

/// Finds an executable by name in a fixed system PATH (never the caller's PATH).
std::string FindProgram(const std::string& name);

/// The whole environment of every host-side process the runtime starts: the
/// supervisor, bwrap, slirp4netns, nft, mkfs, mount, ldconfig, podman. Fixed: nothing
/// of the tenant's (whose variables are set inside the sandbox only, see
/// BwrapEnvArgs and WritePodmanEnvFile). Only the supervisor adds something, the
/// caller's LD_LIBRARY_PATH (Runtime::Start), and podman its CONTAINERS_* settings
/// (PodmanEnv). Sorted KEY=VALUE strings. docs/sandbox.md "What the host never
/// takes from the tenant".
std::vector<std::string> HostEnvironment();

/// Strings and a NULL-terminated char* array over them, for execve's argv and envp:
/// built before fork, so the child allocates nothing between fork and exec.
class ExecStrings {
 public:
  explicit ExecStrings(std::vector<std::string> strings);
  ExecStrings(const ExecStrings&) = delete;
  ExecStrings& operator=(const ExecStrings&) = delete;
  char* const* Get() const { return m_pointers.data(); }

 private:
  std::vector<std::string> m_strings;
  std::vector<char*> m_pointers;
};

/// A sealed (no write, grow or shrink), close-on-exec memfd holding `data`, read
/// position at 0: data a child reads from an inherited fd and nobody can change.
base::Result<UniqueFd> SealedMemfd(const char* name, std::string_view data);
/// Seals `fd` (a memfd made with MFD_ALLOW_SEALING) and rewinds it.
base::Status SealMemfd(int fd, std::string_view what);

/// Runs argv[0] (absolute) with argv and HostEnvironment(), no shell, stdin from
/// /dev/null; returns its exit status, stderr+stdout captured (capped) into *output.
base::Result<int> RunProgram(const std::vector<std::string>& argv, std::string* output);

/// Sleeps `ms` milliseconds, resuming after signals. (The runtime reads the time
/// through base::SystemClock: it waits on real time, in poll, nanosleep and a
/// supervisor process of its own, so no other base::Clock would do.)
void SleepMs(int ms);

/// The start time of a process (field 22 of /proc/<pid>/stat), 0 when it does not exist:
/// with the pid it identifies a process even after pid reuse.
uint64_t ProcessStartTime(pid_t pid);
/// Whether `pid` has ended: gone, or a zombie its parent has not reaped yet (a
/// double-forked supervisor's parent is init, which may reap late: Remove waited
/// ~1.4 s per workload for that on the build host before this check).
bool ProcessEnded(pid_t pid);
/// Waits until process `pid`, started at `start_time` (ProcessStartTime), has ended,
/// without polling (pidfd); true when it has, false after `timeout_ms` (< 0: forever).
bool WaitProcessEnd(pid_t pid, uint64_t start_time, int64_t timeout_ms);

}  // namespace gpunet::runtime
