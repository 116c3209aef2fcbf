// Reading a workload's outputs without following links out of them (issue 6 item 6).
//
// The outputs dir is written by an untrusted workload: any name in it may be a
// symlink to /etc/shadow or ../../, or a FIFO that blocks a reader. Every open goes
// through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV) from a directory fd, so the kernel — not string checks — keeps
// resolution inside the directory; only regular files are read. A reader opened with
// the workload's uid (the tenant API's) serves only files that uid owns with a single
// link: a hard link is another name of a file the workload could merely read (another
// lease's, or root's in its view), and reading it as root would hand it out.
#pragma once

#include <cstdint>
#include <optional>
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

/// The bounds of OutputsReader::ListTree: how deep it walks (the top is depth 1).
inline constexpr size_t kOutputsListDepthMax = 16;

struct OutputTree {
  std::vector<OutputEntry> entries;  ///< names are paths relative to the outputs dir
  bool truncated = false;            ///< more entries than entries_max: the rest left out
};

class OutputsReader {
 public:
  /// Opens the outputs directory itself (which must not be a symlink). With `owner`,
  /// OpenFile and ReadFile serve only regular files of that uid with one link.
  static base::Result<OutputsReader> Open(const std::string& outputs_dir,
                                          std::optional<uint32_t> owner = std::nullopt);
  /// Opens the outputs directory at `relative_dir` beneath `base_dir` (the workload's
  /// file system root, whose own path is root's): no component of `relative_dir` may be
  /// a symbolic link or leave `base_dir` (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
  /// The workload owns the folders inside, so it may swap any of them for a link; a
  /// plain path would follow such a link, as root, anywhere on the host.
  static base::Result<OutputsReader> OpenIn(const std::string& base_dir,
                                            const std::string& relative_dir,
                                            std::optional<uint32_t> owner = std::nullopt);
  /// The owner of the opened directory (fstat on its fd).
  base::Result<uint32_t> DirOwner() const;
  /// The same directory, serving only files of `owner` (see Open).
  OutputsReader WithOwner(uint32_t owner) &&;

  /// Entries of `relative_dir` ("" = top), sorted by name; symlinks are listed as
  /// such and never followed. At most `entries_max` entries.
  base::Result<std::vector<OutputEntry>> List(const std::string& relative_dir = "",
                                              size_t entries_max = 100000) const;
  /// Every entry beneath the directory, depth first in name order, as paths relative
  /// to it ("logs/train.log"): directories are listed and walked down to
  /// kOutputsListDepthMax levels, symlinks listed and never followed, and a directory
  /// that cannot be opened (swapped for a link meanwhile) is listed but not walked.
  /// At most `entries_max` entries (then `truncated`).
  base::Result<OutputTree> ListTree(size_t entries_max) const;
  /// Opens a regular file beneath the directory for reading (checked on the opened fd:
  /// a regular file, and with an owner, of that uid with one link).
  base::Result<UniqueFd> OpenFile(const std::string& relative_path) const;
  /// Reads a whole regular file of at most max_bytes.
  base::Result<std::string> ReadFile(const std::string& relative_path, uint64_t max_bytes) const;

 private:
  OutputsReader(UniqueFd dir, std::optional<uint32_t> owner)
      : m_dir(std::move(dir)), m_owner(owner) {}
  base::Result<UniqueFd> OpenBeneath(const std::string& relative, int flags) const;
  void Walk(const std::string& relative_dir, size_t depth, size_t entries_max,
            OutputTree& tree) const;
  UniqueFd m_dir;
  std::optional<uint32_t> m_owner;
};

}  // namespace gpunet::runtime
