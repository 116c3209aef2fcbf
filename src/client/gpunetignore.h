// What `gpunet run` uploads of a task's workdir (docs/task.md "The workdir"): every
// regular file beneath it, less what its `.gpunetignore` names, never following a
// symbolic link out of it.
//
// `.gpunetignore` is a small subset of gitignore syntax, one pattern per line:
//   # comment          blank lines and lines starting with # are skipped
//   *.ckpt             no '/' but a trailing one: the name at any depth
//   /data              a leading '/' (or a '/' inside): relative to the workdir
//   build/             a trailing '/': folders only
//   logs/**            ** as a whole part: any number of folders (also **/x, a/**/b)
//   !keep.ckpt         ! takes a name back out of what earlier lines ignored
// `*` matches within one name (never a '/'), `?` one character; the last matching
// line decides. As in git, a file inside an ignored folder cannot be taken back:
// the folder is not read at all. Character classes ([a-z]) and backslash escapes
// are refused with the line, so a pattern never means something else than it says.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/tenant_transfer.h"

namespace gpunet::client {

inline constexpr std::string_view kIgnoreFileName = ".gpunetignore";
inline constexpr size_t kIgnoreBytesMax = 64 * 1024;
inline constexpr size_t kIgnoreRulesMax = 1024;
/// Files and folders one workdir walk looks at, at most.
inline constexpr size_t kWorkdirEntriesMax = 100'000;

/// One line of a .gpunetignore.
struct IgnoreRule {
  std::vector<std::string> parts;  ///< the pattern split at '/'; "**" a part of its own
  bool negated = false;            ///< "!pattern"
  bool folders_only = false;       ///< "pattern/"
  int line = 0;
};

class IgnoreRules {
 public:
  /// Parses .gpunetignore text; `file` names it in errors (kInvalidArgument with the
  /// line; kLimitExceeded over kIgnoreBytesMax or kIgnoreRulesMax).
  [[nodiscard]] static base::Result<IgnoreRules> Parse(std::string_view text,
                                                       std::string_view file);
  /// Whether `path` (relative to the workdir, '/'-separated, no leading '/') is
  /// ignored; `is_folder` says whether it names a folder.
  bool Ignored(std::string_view path, bool is_folder) const;
  size_t size() const { return m_rules.size(); }

 private:
  std::vector<IgnoreRule> m_rules;
};

/// `*` and `?` over one name (no '/').
bool GlobMatchName(std::string_view pattern, std::string_view name);

struct SkippedEntry {
  std::string path;    ///< relative to the workdir
  std::string reason;  ///< e.g. "a symbolic link out of the workdir (not followed)"
};

/// What a workdir upload sends.
struct WorkdirFiles {
  std::vector<UploadFile> files;  ///< sorted by remote name, which is relative to /work
  std::vector<SkippedEntry> skipped;
  size_t ignored = 0;  ///< files and folders .gpunetignore named
  uint64_t bytes = 0;
};

/// Walks `root` (a folder), reading `root/.gpunetignore` when present. Symbolic
/// links are never followed out of the workdir: one to a regular file inside is
/// sent as that file's bytes under the link's name; one to a folder, one that
/// points outside or nowhere, one to a file .gpunetignore leaves out (the target's
/// path is matched too), and sockets, FIFOs and devices are skipped and listed. A name the provider
/// would refuse (client::CheckTenantPath) is an error naming it, as are an unreadable folder (kIo)
/// and more than kWorkdirEntriesMax entries (kLimitExceeded).
[[nodiscard]] base::Result<WorkdirFiles> ListWorkdirFiles(const std::string& root);

}  // namespace gpunet::client
