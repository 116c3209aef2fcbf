#include "node/bft_wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/check.h"

namespace gpunet::node {

using base::ErrorCode;
using base::Fail;

namespace {

base::Error Errno(const std::string& what) {
  return base::Error{ErrorCode::kIo, what + ": " + std::strerror(errno)};
}

/// fsync of the directory holding `path`, so a create or rename in it is durable.
base::Status SyncParentDir(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(1, '.') : parent.string();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Errno("cannot open directory " + dir));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return std::unexpected(Errno("cannot sync directory " + dir));
  return base::Ok();
}

base::Status WriteAll(int fd, base::ByteSpan bytes, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::unexpected(Errno("cannot write " + path));
    done += static_cast<size_t>(n);
  }
  return base::Ok();
}

base::Result<base::Bytes> ReadWholeFd(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::unexpected(Errno("cannot stat " + path));
  base::Bytes out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(Errno("cannot read " + path));
    if (n == 0) break;  // shrank under us: return what is there
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- FileWalDisk

base::Result<std::unique_ptr<FileWalDisk>> FileWalDisk::Open(const std::string& path) {
  const bool existed = std::filesystem::exists(path);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(Errno("cannot open the consensus WAL " + path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return std::unexpected(Errno("cannot stat " + path));
  }
  std::unique_ptr<FileWalDisk> disk(new FileWalDisk(fd, path, static_cast<uint64_t>(st.st_size)));
  if (!existed) GPUNET_TRY(SyncParentDir(path));
  return disk;
}

FileWalDisk::~FileWalDisk() {
  if (m_fd >= 0) ::close(m_fd);
}

base::Result<base::Bytes> FileWalDisk::ReadAll() {
  return ReadWholeFd(m_fd, m_path);
}

base::Status FileWalDisk::Append(base::ByteSpan bytes) {
  GPUNET_TRY(WriteAll(m_fd, bytes, m_size, m_path));
  m_size += bytes.size();
  return base::Ok();
}

base::Status FileWalDisk::Sync() {
  if (::fdatasync(m_fd) != 0) return std::unexpected(Errno("cannot sync " + m_path));
  return base::Ok();
}

base::Status FileWalDisk::Truncate(uint64_t size) {
  if (::ftruncate(m_fd, static_cast<off_t>(size)) != 0)
    return std::unexpected(Errno("cannot truncate " + m_path));
  m_size = size;
  return Sync();
}

// ---------------------------------------------------------------- FileGuardDisk

base::Result<std::optional<base::Bytes>> FileGuardDisk::Load() {
  int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<base::Bytes>();
    return std::unexpected(Errno("cannot open the signing guard " + m_path));
  }
  auto bytes = ReadWholeFd(fd, m_path);
  ::close(fd);
  if (!bytes) return std::unexpected(bytes.error());
  return std::optional<base::Bytes>(std::move(*bytes));
}

base::Status FileGuardDisk::Store(base::ByteSpan bytes) {
  const std::string tmp = m_path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(Errno("cannot create " + tmp));
  auto written = WriteAll(fd, bytes, 0, tmp);
  if (written && ::fsync(fd) != 0) written = std::unexpected(Errno("cannot sync " + tmp));
  ::close(fd);
  if (!written) return written;
  if (::rename(tmp.c_str(), m_path.c_str()) != 0)
    return std::unexpected(Errno("cannot rename " + tmp + " over " + m_path));
  return SyncParentDir(m_path);
}

// ---------------------------------------------------------------- BftWal

base::Result<std::pair<std::unique_ptr<BftWal>, WalOpenReport>> BftWal::Open(
    std::unique_ptr<WalDisk> disk) {
  GPUNET_CHECK(disk != nullptr);
  auto data = disk->ReadAll();
  if (!data) return std::unexpected(data.error());
  auto read = consensus::ReadWal(*data);
  if (!read)
    return base::Wrap(read.error(),
                      "the consensus WAL is damaged (not a torn tail: whole records follow the "
                      "damage); restore the node's data, or remove the WAL only if this "
                      "validator's sign_guard file is intact");
  WalOpenReport report;
  report.records = std::move(read->records);
  GPUNET_CHECK(read->valid_bytes <= data->size());
  if (read->valid_bytes < data->size()) {
    report.torn_bytes = data->size() - read->valid_bytes;
    GPUNET_TRY(disk->Truncate(read->valid_bytes));
  }
  std::unique_ptr<BftWal> wal(new BftWal(std::move(disk)));
  return std::make_pair(std::move(wal), std::move(report));
}

base::Status BftWal::Append(const consensus::WalRecord& record) {
  GPUNET_TRY(m_disk->Append(consensus::EncodeWalRecord(record)));
  ++m_appended;
  return base::Ok();
}

base::Status BftWal::Sync() {
  return m_disk->Sync();
}

base::Status BftWal::Clear() {
  return m_disk->Truncate(0);
}

}  // namespace gpunet::node
