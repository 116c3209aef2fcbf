#include "runtime/outputs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/check.h"

namespace gpunet::runtime {

using base::ErrorCode;
using base::Fail;

namespace {

/// glibc 2.36 has no openat2 wrapper: call the syscall.
int OpenAt2(int dirfd, const char* path, const open_how& how) {
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

base::Status CheckRelative(const std::string& p) {
  if (!p.empty() && p[0] == '/')
    return Fail(ErrorCode::kPermissionDenied,
                "'" + p + "' is absolute; give a path relative to the outputs dir");
  if (p.find('\0') != std::string::npos)
    return Fail(ErrorCode::kInvalidArgument, "path contains a NUL byte");
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    if (p.compare(start, end - start, "..") == 0)
      return Fail(ErrorCode::kPermissionDenied,
                  "'" + p + "' leaves the outputs dir ('..' is refused)");
    start = end + 1;
  }
  return base::Ok();
}

}  // namespace

base::Result<OutputsReader> OutputsReader::Open(const std::string& outputs_dir,
                                                std::optional<uint32_t> owner) {
  UniqueFd fd(::open(outputs_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.Valid()) return ErrnoFail("open outputs dir " + outputs_dir, errno);
  return OutputsReader(std::move(fd), owner);
}

base::Result<OutputsReader> OutputsReader::OpenIn(const std::string& base_dir,
                                                  const std::string& relative_dir,
                                                  std::optional<uint32_t> owner) {
  auto base = Open(base_dir);
  if (!base) return std::unexpected(base.error());
  auto dir = base->OpenBeneath(relative_dir, O_RDONLY | O_DIRECTORY);
  if (!dir) return std::unexpected(dir.error());
  return OutputsReader(std::move(*dir), owner);
}

base::Result<uint32_t> OutputsReader::DirOwner() const {
  struct stat st {};
  if (::fstat(m_dir.Get(), &st) != 0) return ErrnoFail("stat the outputs dir", errno);
  return static_cast<uint32_t>(st.st_uid);
}

OutputsReader OutputsReader::WithOwner(uint32_t owner) && {
  return OutputsReader(std::move(m_dir), owner);
}

base::Result<UniqueFd> OutputsReader::OpenBeneath(const std::string& relative, int flags) const {
  GPUNET_TRY(CheckRelative(relative));
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  std::string path = relative.empty() ? "." : relative;
  int fd = OpenAt2(m_dir.Get(), path.c_str(), how);
  if (fd >= 0) return UniqueFd(fd);
  int e = errno;
  switch (e) {
    case ELOOP:
      return Fail(ErrorCode::kPermissionDenied,
                  "'" + relative +
                      "' is or passes through a symbolic link; links in outputs are not followed");
    case EXDEV:
      return Fail(ErrorCode::kPermissionDenied,
                  "'" + relative + "' resolves outside the outputs dir");
    case ENOENT:
      return Fail(ErrorCode::kNotFound, "'" + relative + "' does not exist in the outputs dir");
    case ENOSYS:
      return Fail(ErrorCode::kUnsupported,
                  "the kernel has no openat2 (Linux 5.6+ needed to read outputs safely)");
    default:
      return ErrnoFail("open '" + relative + "' in outputs", e);
  }
}

base::Result<std::vector<OutputEntry>> OutputsReader::List(const std::string& relative_dir,
                                                           size_t entries_max) const {
  auto fd = OpenBeneath(relative_dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return std::unexpected(fd.error());
  int dfd = fd->Release();
  DIR* d = ::fdopendir(dfd);
  if (!d) {
    int e = errno;
    ::close(dfd);
    return ErrnoFail("fdopendir", e);
  }
  std::vector<OutputEntry> out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (out.size() >= entries_max) {
      ::closedir(d);
      return Fail(ErrorCode::kLimitExceeded, "more than " + std::to_string(entries_max) +
                                                 " entries in '" + relative_dir + "'");
    }
    struct stat st {};
    OutputEntry entry{name, OutputEntry::Type::kOther, 0};
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISREG(st.st_mode)) {
        entry.type = OutputEntry::Type::kFile;
        entry.size_bytes = static_cast<uint64_t>(st.st_size);
      } else if (S_ISDIR(st.st_mode)) {
        entry.type = OutputEntry::Type::kDirectory;
      } else if (S_ISLNK(st.st_mode)) {
        entry.type = OutputEntry::Type::kSymlink;
      }
    }
    out.push_back(std::move(entry));
  }
  ::closedir(d);
  std::ranges::sort(out, {}, &OutputEntry::name);
  return out;
}

base::Result<OutputTree> OutputsReader::ListTree(size_t entries_max) const {
  // The top must open; below it, a directory that does not is only listed.
  GPUNET_TRY(OpenBeneath("", O_RDONLY | O_DIRECTORY));
  OutputTree tree;
  Walk("", 1, entries_max, tree);
  return tree;
}

void OutputsReader::Walk(const std::string& relative_dir, size_t depth, size_t entries_max,
                         OutputTree& tree) const {
  GPUNET_CHECK(depth >= 1 && depth <= kOutputsListDepthMax);
  auto list = List(relative_dir, entries_max - tree.entries.size() + 1);
  if (!list) {
    if (list.error().code == ErrorCode::kLimitExceeded) tree.truncated = true;
    return;
  }
  for (auto& entry : *list) {
    if (tree.entries.size() >= entries_max) {
      tree.truncated = true;
      return;
    }
    const std::string path = relative_dir.empty() ? entry.name : relative_dir + "/" + entry.name;
    const bool walk = entry.type == OutputEntry::Type::kDirectory && depth < kOutputsListDepthMax;
    entry.name = path;
    tree.entries.push_back(std::move(entry));
    if (walk) Walk(path, depth + 1, entries_max, tree);
    if (tree.truncated) return;
  }
}

base::Result<UniqueFd> OutputsReader::OpenFile(const std::string& relative_path) const {
  if (relative_path.empty()) return Fail(ErrorCode::kInvalidArgument, "empty file name");
  auto fd = OpenBeneath(relative_path, O_RDONLY);
  if (!fd) return fd;
  struct stat st {};
  if (::fstat(fd->Get(), &st) != 0) return ErrnoFail("fstat", errno);
  if (!S_ISREG(st.st_mode))
    return Fail(ErrorCode::kPermissionDenied, "'" + relative_path + "' is not a regular file");
  if (m_owner && (st.st_uid != *m_owner || st.st_nlink != 1))
    return Fail(ErrorCode::kPermissionDenied,
                "'" + relative_path +
                    "' is not a file the workload wrote: it has another owner or more than one "
                    "link (a hard link), and only the workload's own files are served");
  // Reads block normally from here on.
  int flags = ::fcntl(fd->Get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd->Get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

base::Result<std::string> OutputsReader::ReadFile(const std::string& relative_path,
                                                  uint64_t max_bytes) const {
  auto fd = OpenFile(relative_path);
  if (!fd) return std::unexpected(fd.error());
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd->Get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoFail("read '" + relative_path + "'", errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<uint64_t>(n) > max_bytes)
      return Fail(ErrorCode::kLimitExceeded,
                  "'" + relative_path + "' is larger than " + std::to_string(max_bytes) + " bytes");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace gpunet::runtime
