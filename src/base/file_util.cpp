#include "base/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "base/check.h"

namespace gpunet::base {
namespace {

// How often a fresh temporary name is tried before giving up: a clash needs
// someone to have guessed 64 random bits, so more than one retry means a bug or
// an attack, and both deserve an error rather than a loop.
constexpr int kTempNameAttempts = 8;

Error Errno(int err, const std::string& what) {
  return Error{ErrorCode::kIo, what + ": " + std::strerror(err)};
}

// The directory part of path ("." for a bare name, "/" for a file in the root).
std::string DirOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// ".<name>.tmp-<16 hex>": beside the target (a rename cannot cross file systems),
// hidden, and unguessable.
std::string TempNameFor(const std::string& name) {
  std::random_device rd;
  const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(r));
  return "." + name + ".tmp-" + suffix;
}

// A directory fd and the path to show for it in messages.
struct Dir {
  int fd;
  const std::string& shown;
  std::string Show(const std::string& name) const {
    return shown.empty() ? name : shown == "/" ? "/" + name : shown + "/" + name;
  }
};

// Creates the temporary file: its final mode from the first instant (the umask
// can only take bits away, and the fchmod gives them back).
Result<int> CreateTemp(Dir dir, const std::string& name, mode_t mode, std::string& temp) {
  for (int attempt = 0; attempt < kTempNameAttempts; ++attempt) {
    temp = TempNameFor(name);
    int fd =
        ::openat(dir.fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) return std::unexpected(Errno(errno, "cannot create " + dir.Show(temp)));
    if (::fchmod(fd, mode) != 0) {
      const int err = errno;
      ::close(fd);
      ::unlinkat(dir.fd, temp.c_str(), 0);
      return std::unexpected(Errno(err, "cannot set the mode of " + dir.Show(temp)));
    }
    return fd;
  }
  return Fail(ErrorCode::kIo, "cannot create a temporary file beside " + dir.Show(name) +
                                  ": every name tried was taken (is something racing us?)");
}

// Writes and syncs the temporary file; closes fd in every case.
Status FillTemp(int fd, const std::string& temp, std::string_view bytes) {
  Status s = WriteAll(fd, bytes, temp);
  if (s && ::fsync(fd) != 0) s = std::unexpected(Errno(errno, "cannot sync " + temp));
  if (::close(fd) != 0 && s) s = std::unexpected(Errno(errno, "cannot close " + temp));
  return s;
}

Status MoveIntoPlace(Dir dir, const std::string& temp, const std::string& name,
                     IfExists if_exists) {
  if (if_exists == IfExists::kReplace) {
    if (::renameat(dir.fd, temp.c_str(), dir.fd, name.c_str()) != 0)
      return std::unexpected(
          Errno(errno, "cannot rename " + dir.Show(temp) + " to " + dir.Show(name)));
    return Ok();
  }
  // link() fails with EEXIST rather than replacing: an existing file is never lost.
  if (::linkat(dir.fd, temp.c_str(), dir.fd, name.c_str(), 0) != 0) {
    const int err = errno;
    if (err == EEXIST) return Fail(ErrorCode::kAlreadyExists, dir.Show(name) + " already exists");
    return std::unexpected(Errno(err, "cannot create " + dir.Show(name)));
  }
  ::unlinkat(dir.fd, temp.c_str(), 0);
  return Ok();
}

Status SyncDirFd(Dir dir) {
  if (::fsync(dir.fd) != 0)
    return std::unexpected(
        Errno(errno, "cannot sync directory " + (dir.shown.empty() ? "." : dir.shown)));
  return Ok();
}

}  // namespace

Status WriteFileAtomicAt(int dir_fd, const std::string& dir_path, const std::string& name,
                         std::string_view bytes, const AtomicWriteOptions& options) {
  GPUNET_CHECK(!name.empty() && name.find('/') == std::string::npos);
  GPUNET_CHECK((options.mode & ~mode_t{07777}) == 0);
  const Dir dir{dir_fd, dir_path};
  // rename() would replace a link rather than follow it, but a link where one of
  // our files should be means someone else has been in the directory: refuse.
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
    return Fail(ErrorCode::kCorrupt, dir.Show(name) +
                                         " is a symbolic link; refusing to write through it "
                                         "(remove the link, or name the real file)");
  std::string temp;
  auto fd = CreateTemp(dir, name, options.mode, temp);
  if (!fd) return std::unexpected(fd.error());
  Status s = FillTemp(*fd, dir.Show(temp), bytes);
  if (s && options.before_commit) s = options.before_commit(dir.Show(temp));
  if (s) s = MoveIntoPlace(dir, temp, name, options.if_exists);
  if (!s) {
    ::unlinkat(dir_fd, temp.c_str(), 0);
    return s;
  }
  return SyncDirFd(dir);
}

Status WriteFileAtomic(const std::string& path, std::string_view bytes,
                       const AtomicWriteOptions& options) {
  GPUNET_CHECK(!path.empty() && path.back() != '/');
  const std::string dir = DirOf(path);
  const size_t slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return std::unexpected(Errno(errno, "cannot open the directory of " + path));
  const std::string shown = slash == std::string::npos ? std::string() : dir;
  Status s = WriteFileAtomicAt(dir_fd, shown, name, bytes, options);
  ::close(dir_fd);
  return s;
}

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(Errno(errno, "cannot write " + path));
    GPUNET_CHECK(n > 0);
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<std::string> ReadFdToString(int fd, const std::string& path, size_t bytes_max) {
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(Errno(errno, "cannot read " + path));
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > bytes_max)
      return Fail(ErrorCode::kLimitExceeded,
                  path + " is larger than " + std::to_string(bytes_max) + " bytes");
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

Result<std::string> ReadFileNoFollow(const std::string& path, size_t bytes_max) {
  // O_NONBLOCK: a FIFO planted at path must not hang the open; regular files ignore it.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Fail(ErrorCode::kNotFound, "no file " + path);
    if (err == ELOOP)
      return Fail(ErrorCode::kCorrupt, path + " is a symbolic link; refusing to follow it");
    return std::unexpected(Errno(err, "cannot open " + path));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return std::unexpected(Errno(err, "cannot stat " + path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(ErrorCode::kCorrupt, path + " is not a regular file");
  }
  auto text = ReadFdToString(fd, path, bytes_max);
  ::close(fd);
  return text;
}

Status SyncDirectoryOf(const std::string& path) {
  const std::string dir = DirOf(path);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Errno(errno, "cannot open directory " + dir));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return std::unexpected(Errno(err, "cannot sync directory " + dir));
  return Ok();
}

Status MakeDirectory(const std::string& path, mode_t mode) {
  GPUNET_CHECK((mode & ~mode_t{07777}) == 0);
  if (::mkdir(path.c_str(), mode) != 0) {
    const int err = errno;
    if (err != EEXIST) return std::unexpected(Errno(err, "cannot create directory " + path));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Fail(ErrorCode::kIo, path + " exists and is not a directory");
    return Ok();
  }
  // Just made: set the exact mode through a descriptor that cannot be a link.
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Errno(errno, "cannot open directory " + path));
  const int rc = ::fchmod(fd, mode);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return std::unexpected(Errno(err, "cannot set the mode of " + path));
  return Ok();
}

Status CheckParentDirectory(const struct stat& st, const std::string& path,
                            std::string_view below) {
  const uid_t euid = ::geteuid();
  const std::string us = euid == 0 ? "root" : "uid " + std::to_string(euid);
  if (st.st_uid != 0 && st.st_uid != euid)
    return Fail(ErrorCode::kPermissionDenied,
                path + ", above " + std::string(below) + ", is owned by uid " +
                    std::to_string(st.st_uid) + ", who could replace what is below it: chown " +
                    (euid == 0 ? std::string("root") : std::to_string(euid)) + " " + path +
                    ", or put it under directories only " + us + " or root can write");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Fail(ErrorCode::kPermissionDenied,
                path + ", above " + std::string(below) + ", is writable by group or others (mode " +
                    mode + ") and not sticky, so they could replace what is below it: chmod go-w " +
                    path + ", or put it under directories only " + us + " or root can write");
  }
  return Ok();
}

Status MakeParentDirectories(const std::string& path, mode_t mode, std::string_view below) {
  GPUNET_CHECK(!path.empty() && path[0] == '/');
  std::string walked;
  for (const auto& part : std::filesystem::path(path).parent_path()) {
    if (part == "/")
      walked = "/";
    else
      walked += (walked == "/" ? "" : "/") + part.string();
    struct stat st {};
    if (::stat(walked.c_str(), &st) != 0) {
      if (errno != ENOENT) return std::unexpected(Errno(errno, "cannot stat " + walked));
      GPUNET_TRY(MakeDirectory(walked, mode));
      if (::stat(walked.c_str(), &st) != 0)
        return std::unexpected(Errno(errno, "cannot stat " + walked));
    }
    if (!S_ISDIR(st.st_mode))
      return Fail(ErrorCode::kIo,
                  walked + ", above " + std::string(below) + ", exists and is not a directory");
    GPUNET_TRY(CheckParentDirectory(st, walked, below));
  }
  return Ok();
}

}  // namespace gpunet::base
