#include "runtime/uploads.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>
#include <vector>

#include "runtime/sys_util.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

constexpr uint64_t kResolve =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

int OpenAt2(int dirfd, const std::string& name, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.mode = (flags & O_CREAT) != 0 ? mode : 0;
  how.resolve = kResolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how));
}

std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

/// One open failure as the tenant should read it.
std::unexpected<base::Error> OpenFailure(std::string_view path, int e) {
  const std::string quoted = "'" + std::string(path) + "'";
  switch (e) {
    case ELOOP:
      return Fail(ErrorCode::kPermissionDenied,
                  quoted + " is or passes through a symbolic link; uploads never follow links");
    case EXDEV:
      return Fail(ErrorCode::kPermissionDenied, quoted + " resolves outside the work directory");
    case ENOTDIR:
      return Fail(ErrorCode::kPermissionDenied,
                  quoted +
                      " passes through something that is not a directory (a file, or a "
                      "symbolic link: uploads never follow links)");
    case EEXIST:
      return Fail(ErrorCode::kAlreadyExists,
                  quoted + " already exists; resume it at its current size or pick another name");
    case EDQUOT:
    case ENOSPC:
      return Fail(ErrorCode::kLimitExceeded, "the lease's disk is full while writing " + quoted);
    case ENOSYS:
      return Fail(ErrorCode::kUnsupported,
                  "the kernel has no openat2 (Linux 5.6+ is needed to write uploads safely)");
    default:
      return ErrnoFail("upload " + quoted, e);
  }
}

/// Runs `fn` on a fresh thread whose file-system uid/gid are the workload's and
/// which has no supplementary groups. setfsuid, setfsgid and the raw setgroups
/// syscall act on the calling thread only (glibc's setgroups() would change every
/// thread of the daemon), and a thread whose fsuid leaves 0 loses CAP_DAC_OVERRIDE,
/// CAP_FOWNER and the other file capabilities, so the kernel judges every open as
/// the workload's own.
template <typename T, typename Fn>
base::Result<T> AsWorkload(uid_t uid, gid_t gid, Fn fn) {
  base::Result<T> result = Fail(ErrorCode::kInternal, "upload thread did not run");
  std::thread worker([&] {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) {
      result = ErrnoFail("drop supplementary groups for the upload", errno);
      return;
    }
    ::syscall(SYS_setfsgid, gid);
    ::syscall(SYS_setfsuid, uid);
    // setfsuid reports the previous value and never fails visibly: read both back.
    if (static_cast<uid_t>(::syscall(SYS_setfsuid, -1)) != uid ||
        static_cast<gid_t>(::syscall(SYS_setfsgid, -1)) != gid) {
      result = Fail(ErrorCode::kPermissionDenied,
                    "cannot take the workload's uid " + std::to_string(uid) +
                        " for the upload (the daemon must run as root)");
      return;
    }
    result = fn();
  });
  worker.join();
  return result;
}

/// Opens (creating as needed) the directory holding the last component.
base::Result<UniqueFd> OpenParent(int root, const std::vector<std::string>& parts,
                                  std::string_view path) {
  UniqueFd dir(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  if (!dir.Valid()) return ErrnoFail("dup work dir fd", errno);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int fd = OpenAt2(dir.Get(), parts[i], O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(dir.Get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) {
        return OpenFailure(path, errno);
      }
      fd = OpenAt2(dir.Get(), parts[i], O_RDONLY | O_DIRECTORY, 0);
    }
    if (fd < 0) return OpenFailure(path, errno);
    dir = UniqueFd(fd);
  }
  return dir;
}

base::Result<UniqueFd> OpenRoot(const std::string& dir) {
  UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root.Valid()) return ErrnoFail("open work dir " + dir, errno);
  return root;
}

/// The file must be what an upload of this workload leaves: a regular file of its
/// uid with a single link (a hard link would let a write land in another name).
base::Status CheckOwnedFile(int fd, uid_t uid, std::string_view path, struct stat* st) {
  if (::fstat(fd, st) != 0) return ErrnoFail("stat upload", errno);
  if (!S_ISREG(st->st_mode) || st->st_uid != uid || st->st_nlink != 1) {
    return Fail(ErrorCode::kPermissionDenied,
                "'" + std::string(path) +
                    "' is not a plain file of this workload's (a directory, device, FIFO, "
                    "link or someone else's); pick another name");
  }
  return base::Ok();
}

}  // namespace

base::Status ValidateUploadPath(std::string_view path) {
  if (path.empty()) return Fail(ErrorCode::kInvalidArgument, "the upload path is empty");
  if (path.size() > kUploadPathBytesMax) {
    return Fail(ErrorCode::kLimitExceeded,
                "the upload path is over " + std::to_string(kUploadPathBytesMax) + " bytes");
  }
  if (path.front() == '/') {
    return Fail(ErrorCode::kPermissionDenied,
                "the upload path is absolute; give one relative to the work directory");
  }
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f) {
      return Fail(ErrorCode::kInvalidArgument, "the upload path holds a NUL or control byte (0x" +
                                                   std::string(1, "0123456789abcdef"[c >> 4]) +
                                                   std::string(1, "0123456789abcdef"[c & 15]) +
                                                   ")");
    }
  }
  const auto parts = Components(path);
  if (parts.size() > kUploadDepthMax) {
    return Fail(ErrorCode::kLimitExceeded,
                "the upload path has more than " + std::to_string(kUploadDepthMax) + " components");
  }
  for (const auto& part : parts) {
    if (part == "..") {
      return Fail(ErrorCode::kPermissionDenied,
                  "the upload path leaves the work directory ('..' is refused)");
    }
    if (part.empty() || part == ".") {
      return Fail(ErrorCode::kInvalidArgument,
                  "the upload path has an empty or '.' component; write it plainly, e.g. "
                  "data/train.bin");
    }
    if (part.size() > 255) {
      return Fail(ErrorCode::kLimitExceeded, "a component of the upload path is over 255 bytes");
    }
  }
  return base::Ok();
}

base::Result<uint64_t> WriteUploadChunk(const UploadTarget& target, std::string_view path,
                                        uint64_t offset, std::string_view data) {
  GPUNET_TRY(ValidateUploadPath(path));
  const auto parts = Components(path);
  return AsWorkload<uint64_t>(target.uid, target.gid, [&]() -> base::Result<uint64_t> {
    GPUNET_TRY_ASSIGN(auto root, OpenRoot(target.dir));
    GPUNET_TRY_ASSIGN(auto dir, OpenParent(root.Get(), parts, path));
    const int flags = offset == 0 ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY | O_NONBLOCK;
    UniqueFd file(OpenAt2(dir.Get(), parts.back(), flags, 0644));
    // An upload whose first chunk was empty left an empty file: offset 0 is still its
    // resume point, so it is opened like any resumed one (and checked the same way).
    // Anything else under the name (a link, a FIFO, someone else's file, one with
    // bytes) stays "already exists", as the O_EXCL create reported.
    const bool existed = offset == 0 && !file.Valid() && errno == EEXIST;
    if (existed) {
      struct stat st {};
      file = UniqueFd(OpenAt2(dir.Get(), parts.back(), O_WRONLY | O_NONBLOCK, 0));
      if (!file.Valid() || !CheckOwnedFile(file.Get(), target.uid, path, &st) || st.st_size != 0)
        return OpenFailure(path, EEXIST);
    }
    if (!file.Valid()) {
      if (errno == ENOENT) {
        return Fail(ErrorCode::kConflict,
                    "'" + std::string(path) + "' has no upload in progress; start it at offset 0");
      }
      return OpenFailure(path, errno);
    }
    struct stat st {};
    GPUNET_TRY(CheckOwnedFile(file.Get(), target.uid, path, &st));
    if (static_cast<uint64_t>(st.st_size) != offset) {
      return Fail(ErrorCode::kConflict,
                  "'" + std::string(path) + "' holds " + std::to_string(st.st_size) +
                      " bytes; resume at offset " + std::to_string(st.st_size) + ", not " +
                      std::to_string(offset));
    }
    // A refused chunk (the disk full midway, an I/O error) leaves nothing behind: the
    // file goes back to `offset`, and a first chunk's file goes away, so the tenant
    // resumes (or starts again) exactly where the last accepted chunk ended.
    const auto undo = [&](int err) {
      [[maybe_unused]] const int truncated = ::ftruncate(file.Get(), static_cast<off_t>(offset));
      struct stat now {};
      if (offset == 0 &&
          ::fstatat(dir.Get(), parts.back().c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
          now.st_ino == st.st_ino && now.st_dev == st.st_dev) {
        ::unlinkat(dir.Get(), parts.back().c_str(), 0);
      }
      return OpenFailure(path, err);
    };
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(file.Get(), data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return undo(errno);
      done += static_cast<size_t>(n);
    }
    if (::fsync(file.Get()) != 0) return undo(errno);
    return offset + data.size();
  });
}

base::Result<uint64_t> WriteUploadFileOnce(const UploadTarget& target, std::string_view path,
                                           std::string_view data) {
  GPUNET_TRY(ValidateUploadPath(path));
  const auto parts = Components(path);
  const std::string temp = "." + parts.back() + ".part";
  if (temp.size() > 255)
    return Fail(ErrorCode::kLimitExceeded, "a component of the upload path is over 250 bytes");
  return AsWorkload<uint64_t>(target.uid, target.gid, [&]() -> base::Result<uint64_t> {
    GPUNET_TRY_ASSIGN(auto root, OpenRoot(target.dir));
    GPUNET_TRY_ASSIGN(auto dir, OpenParent(root.Get(), parts, path));
    struct stat st {};
    if (::fstatat(dir.Get(), parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      return OpenFailure(path, EEXIST);
    // A temporary file an earlier, interrupted write left behind.
    if (::unlinkat(dir.Get(), temp.c_str(), 0) != 0 && errno != ENOENT)
      return OpenFailure(path, errno);
    UniqueFd file(OpenAt2(dir.Get(), temp, O_WRONLY | O_CREAT | O_EXCL, 0644));
    if (!file.Valid()) return OpenFailure(path, errno);
    auto drop_temp = [&](std::unexpected<base::Error> error) {
      ::unlinkat(dir.Get(), temp.c_str(), 0);
      return error;
    };
    // The workload may link the temporary name elsewhere meanwhile: checked, not assumed.
    if (auto owned = CheckOwnedFile(file.Get(), target.uid, path, &st); !owned)
      return drop_temp(std::unexpected(owned.error()));
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(file.Get(), data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return drop_temp(OpenFailure(path, errno));
      done += static_cast<size_t>(n);
    }
    if (::fsync(file.Get()) != 0) return drop_temp(OpenFailure(path, errno));
    if (::renameat2(dir.Get(), temp.c_str(), dir.Get(), parts.back().c_str(), RENAME_NOREPLACE) !=
        0)
      return drop_temp(OpenFailure(path, errno));
    if (::fsync(dir.Get()) != 0) return OpenFailure(path, errno);
    return static_cast<uint64_t>(data.size());
  });
}

base::Result<uint64_t> UploadedSize(const UploadTarget& target, std::string_view path) {
  GPUNET_TRY(ValidateUploadPath(path));
  const auto parts = Components(path);
  return AsWorkload<uint64_t>(target.uid, target.gid, [&]() -> base::Result<uint64_t> {
    GPUNET_TRY_ASSIGN(auto root, OpenRoot(target.dir));
    UniqueFd dir(::fcntl(root.Get(), F_DUPFD_CLOEXEC, 0));
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      UniqueFd next(OpenAt2(dir.Get(), parts[i], O_RDONLY | O_DIRECTORY, 0));
      if (!next.Valid()) {
        if (errno == ENOENT) {
          return Fail(ErrorCode::kNotFound, "no upload named '" + std::string(path) + "'");
        }
        return OpenFailure(path, errno);
      }
      dir = std::move(next);
    }
    UniqueFd file(OpenAt2(dir.Get(), parts.back(), O_RDONLY | O_NONBLOCK, 0));
    if (!file.Valid()) {
      if (errno == ENOENT) {
        return Fail(ErrorCode::kNotFound, "no upload named '" + std::string(path) + "'");
      }
      return OpenFailure(path, errno);
    }
    struct stat st {};
    GPUNET_TRY(CheckOwnedFile(file.Get(), target.uid, path, &st));
    return static_cast<uint64_t>(st.st_size);
  });
}

}  // namespace gpunet::runtime
