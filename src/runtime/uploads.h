// Writing a tenant's uploaded files into a running (or not yet started) workload's
// work directory (issue 17 item 5).
//
// The work dir belongs to the workload: while it runs, it may replace any name in
// it with a symlink to /etc/shadow, a hard link, a FIFO or a directory, at any
// moment. So the writer
//   - opens every component with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//     RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from a directory fd, never by path
//     string, so the kernel keeps resolution inside the directory;
//   - creates the file with O_EXCL (a name that already exists is never written
//     through) and resumes only a regular file owned by the workload's uid with one
//     link, whose size is exactly the resume offset;
//   - does all of it on a thread whose file-system uid and gid are the workload's
//     (setfsuid/setfsgid, which also drop that thread's CAP_DAC_OVERRIDE and
//     friends), so the kernel checks permissions as the workload: an upload can do
//     nothing the workload could not do itself, and files are owned by it.
// The quota of the work dir's file system still applies (EDQUOT/ENOSPC is a clear
// error); the caller also caps the total per lease.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace gpunet::runtime {

/// The limits on an upload's relative path: components of 1..255 bytes, none "."
/// or "..", no NUL or control byte, at most kUploadDepthMax components and
/// kUploadPathBytesMax bytes, not absolute, no empty component ("a//b").
inline constexpr size_t kUploadPathBytesMax = 1024;
inline constexpr size_t kUploadDepthMax = 16;

/// Checks an upload path against the rules above; kInvalidArgument or
/// kPermissionDenied (for "..", absolute) with the reason.
base::Status ValidateUploadPath(std::string_view relative_path);

struct UploadTarget {
  std::string dir;  ///< host path of the directory uploads go beneath (the workload's work dir)
  uid_t uid = 0;    ///< the workload's uid and gid: files are written as them
  gid_t gid = 0;
};

/// Writes `data` at `offset` of `relative_path` beneath target.dir, creating the
/// parent directories (as the workload's uid, mode 0755) and, at offset 0, the file
/// itself (O_EXCL, mode 0644). At offset > 0 the file must exist, be a regular file
/// owned by the uid with one link, and be exactly `offset` bytes long: otherwise
/// kConflict saying where to resume. Data is fsynced before returning.
/// Returns the file's size after the write.
base::Result<uint64_t> WriteUploadChunk(const UploadTarget& target, std::string_view relative_path,
                                        uint64_t offset, std::string_view data);

/// Writes `data` as the whole file `relative_path` beneath target.dir, all at once, as
/// the workload's uid (parents created as in WriteUploadChunk): into a temporary name
/// beside it first (".<name>.part", O_EXCL, fsynced), then renamed into place with
/// RENAME_NOREPLACE and the directory fsynced. So the name exists only with all its
/// bytes, whatever crash or full disk cuts the write short (the daemon's secrets and
/// their gate rely on it). kAlreadyExists when the name exists (a file is set once).
/// Returns the file's size.
base::Result<uint64_t> WriteUploadFileOnce(const UploadTarget& target,
                                           std::string_view relative_path, std::string_view data);

/// The size of an upload in progress (or done): kNotFound when there is none, and
/// kPermissionDenied when the name is not a plain file of the workload's (a link,
/// a directory, another owner).
base::Result<uint64_t> UploadedSize(const UploadTarget& target, std::string_view relative_path);

}  // namespace gpunet::runtime
