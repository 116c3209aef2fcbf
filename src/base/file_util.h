// Writing and reading the node's and the wallet's own files: the one place that
// decides how a key, a seed, a config or a guard file reaches the disk.
//
// A file is written whole or not at all: into a fresh temporary file in the
// target's directory (O_CREAT|O_EXCL|O_NOFOLLOW, so nothing planted there is
// followed or reused), created with its final mode (never wider, not even for an
// instant) and fchmod()ed to exactly that mode (so the umask cannot narrow it
// either), written, fsynced, moved into place, and the directory fsynced, so a
// crash leaves the old file or the new one and a power cut does not lose the
// rename. A symbolic link at the target is refused, never written through.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace gpunet::base {

/// What WriteFileAtomic does when the target already exists.
enum class IfExists : uint8_t {
  kReplace,  ///< rename() over it: readers see the old bytes or the new, never a mix
  kRefuse,   ///< link() into place: kAlreadyExists, and the existing file is untouched
};

struct AtomicWriteOptions {
  /// The file's permission bits, exactly (0600 for anything secret).
  mode_t mode = 0600;
  IfExists if_exists = IfExists::kReplace;
  /// Test seam: runs after the temporary file is written and synced, before it is
  /// moved into place. An error aborts the write there (the temporary file is
  /// removed and the target is left as it was) and is returned.
  std::function<Status(const std::string& temp_path)> before_commit;
};

/// Writes `bytes` to `path` as the header describes. kCorrupt when `path` is a
/// symbolic link (remove the link, or name the real file); kAlreadyExists under
/// IfExists::kRefuse; kIo when the OS refuses (the message names the path).
[[nodiscard]] Status WriteFileAtomic(const std::string& path, std::string_view bytes,
                                     const AtomicWriteOptions& options = {});

/// WriteFileAtomic of `name` (one path component) in the directory open as `dir_fd`,
/// for callers that have checked that directory through its descriptor; `dir_path`
/// only names it in messages ("" for none). Every step is relative to `dir_fd`.
[[nodiscard]] Status WriteFileAtomicAt(int dir_fd, const std::string& dir_path,
                                       const std::string& name, std::string_view bytes,
                                       const AtomicWriteOptions& options = {});

/// Writes all of `bytes` to `fd` (retrying short writes and EINTR); `path` names it
/// in the kIo error.
[[nodiscard]] Status WriteAll(int fd, std::string_view bytes, const std::string& path);

/// Reads `fd` to its end; kLimitExceeded past `bytes_max`, kIo naming `path`.
[[nodiscard]] Result<std::string> ReadFdToString(int fd, const std::string& path, size_t bytes_max);

/// Reads a whole file without following a symbolic link at `path`. kNotFound when
/// there is none, kCorrupt for a symbolic link, kLimitExceeded when it is larger
/// than `bytes_max` (it is not read into memory whole), kIo otherwise.
[[nodiscard]] Result<std::string> ReadFileNoFollow(const std::string& path, size_t bytes_max);

/// fsync of the directory that holds `path`, so a create, link or rename in it
/// survives a power cut.
[[nodiscard]] Status SyncDirectoryOf(const std::string& path);

/// Creates directory `path` with exactly `mode` (chmod after mkdir, so the umask
/// does not change it). An existing directory is left as it is; an existing
/// non-directory is kIo.
[[nodiscard]] Status MakeDirectory(const std::string& path, mode_t mode);

/// Checks `st`, the status of `path`, a directory above something that must stay
/// ours (a node home, the sandbox state dir, named by `below`): its owner, and
/// anyone who may write it, could rename that away and put their own in its place.
/// kPermissionDenied, naming the path and the fix, when it belongs to someone other
/// than root or this process's euid, or when group or others may write it and it is
/// not sticky (as /tmp, where nobody renames an entry they do not own).
[[nodiscard]] Status CheckParentDirectory(const struct stat& st, const std::string& path,
                                          std::string_view below);

/// Checks every directory above `path` (absolute) with CheckParentDirectory, from
/// "/" down, making each missing one with exactly `mode` (MakeDirectory) once the
/// one above it passed. Links among them are followed (stat): callers that refuse
/// links check the path themselves. `path` itself is neither made nor checked.
[[nodiscard]] Status MakeParentDirectories(const std::string& path, mode_t mode,
                                           std::string_view below);

}  // namespace gpunet::base
