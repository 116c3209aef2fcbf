// Small POSIX helpers of gpunet-init, the in-sandbox init (docs/sandbox.md
// "Interactive sessions"). The init is statically linked with libc and libstdc++
// only: nothing here may need NSS, a shared library or a gpunet library but the
// pure session codec.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/session_wire.h"

namespace gpunet::init {

/// A file descriptor closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(Fd&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) Reset(std::exchange(o.m_fd, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int Get() const { return m_fd; }
  bool Valid() const { return m_fd >= 0; }
  void Reset(int fd = -1);

 private:
  int m_fd = -1;
};

/// Writes all of `data` (blocking; EINTR retried). False when the peer is gone.
bool WriteAll(int fd, std::string_view data);

/// The session socket's side of the frames: blocking sends, frame by frame.
class FrameSocket {
 public:
  explicit FrameSocket(int fd) : m_fd(fd) {}
  int Fd() const { return m_fd; }
  /// Sends one frame (bytes over kSessionPayloadMax go as several). False when the
  /// client is gone.
  bool Send(base::SessionFrameType type, std::string_view payload = {});
  bool SendError(std::string_view message) { return Send(base::SessionFrameType::kError, message); }
  bool SendExit(int wait_status);
  /// Reads until one whole frame is there (blocking): nullopt at a clean end of the
  /// stream, the decoder's error for a malformed one.
  base::Result<std::optional<base::SessionFrame>> ReadFrame();
  /// Reads what is available now (the socket polled readable) into the decoder:
  /// false at the end of the stream or on an error.
  bool ReadSome();
  base::SessionFrameDecoder& Decoder() { return m_decoder; }

 private:
  int m_fd;
  base::SessionFrameDecoder m_decoder;
};

/// The exit code of a wait status, shell style (a signal N gives 128 + N).
int ExitCodeOf(int wait_status);

/// The signal mask and dispositions a new process starts with: all unblocked, all
/// default. Every child init starts (workload, session, command) calls it first, so
/// nothing of init's own signal handling leaks into it.
void ResetSignals();

/// Closes every fd from `first` up, but `keep` (-1 = none).
void CloseFdsFrom(int first, int keep = -1);

/// init's own environment (the workload's, as the runtime set it), plus `extra`
/// (NAME=value; each replaces a variable of that name).
std::vector<std::string> EnvironmentWith(const std::vector<std::string>& extra);

/// execve with `envp`, the program found through PATH as execvp does. Returns only on
/// failure (errno set).
void ExecWithEnv(const std::vector<std::string>& argv, const std::vector<std::string>& envp);

/// The login shell of the calling uid from the sandbox's /etc/passwd (read as a file:
/// no NSS in a static binary), else /bin/bash, else /bin/sh.
std::string LoginShell();

/// pidfd_open(2): a descriptor that polls readable once `pid` has exited.
Fd OpenPidFd(pid_t pid);

}  // namespace gpunet::init
