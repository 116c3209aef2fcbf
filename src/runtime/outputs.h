// Reading a workload's outputs without following links out of them (issue 6 item 6).
//
// The outputs dir is written by an untrusted workload: any name in it may be a
// symlink to /etc/shadow or ../../, or a FIFO that blocks a reader. Every open goes
// through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV) from a directory fd, so the kernel — not string checks — keeps
// resolution inside the directory; only regular files are read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/sys_util.h"

namespace gpunet::runtime {

struct OutputEntry {
  enum class Type { kFile, kDirectory, kSymlink, kOther };
  std::string name;
  Type type = Type::kOther;
  uint64_t size_bytes = 0;  ///< regular files only
};

class OutputsReader {
 public:
  /// Opens the outputs directory itself (which must not be a symlink).
  static base::Result<OutputsReader> Open(const std::string& outputs_dir);

  /// Entries of `relative_dir` ("" = top), sorted by name; symlinks are listed as
  /// such and never followed. At most `entries_max` entries.
  base::Result<std::vector<OutputEntry>> List(const std::string& relative_dir = "",
                                              size_t entries_max = 100000) const;
  /// Opens a regular file beneath the directory for reading.
  base::Result<UniqueFd> OpenFile(const std::string& relative_path) const;
  /// Reads a whole regular file of at most max_bytes.
  base::Result<std::string> ReadFile(const std::string& relative_path, uint64_t max_bytes) const;

 private:
  explicit OutputsReader(UniqueFd dir) : m_dir(std::move(dir)) {}
  base::Result<UniqueFd> OpenBeneath(const std::string& relative, int flags) const;
  UniqueFd m_dir;
};

}  // namespace gpunet::runtime
