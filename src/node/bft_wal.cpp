#include "node/bft_wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/check.h"
#include "base/file_util.h"

namespace gpunet::node {

using base::ErrorCode;
using base::Fail;

namespace {

// A sign guard record is about 200 bytes; anything much larger is not one.
constexpr size_t kGuardFileBytesMax = 64 * 1024;

base::Error Errno(const std::string& what) {
  return base::Error{ErrorCode::kIo, what + ": " + std::strerror(errno)};
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
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 && errno == ELOOP)
    return Fail(ErrorCode::kCorrupt,
                "the consensus WAL " + path + " is a symbolic link; refusing to follow it");
  if (fd < 0) return std::unexpected(Errno("cannot open the consensus WAL " + path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return std::unexpected(Errno("cannot stat " + path));
  }
  std::unique_ptr<FileWalDisk> disk(new FileWalDisk(fd, path, static_cast<uint64_t>(st.st_size)));
  if (!existed) GPUNET_TRY(base::SyncDirectoryOf(path));
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
  auto text = base::ReadFileNoFollow(m_path, kGuardFileBytesMax);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) return std::optional<base::Bytes>();
    return base::Wrap(text.error(), "the signing guard");
  }
  return std::optional<base::Bytes>(base::Bytes(text->begin(), text->end()));
}

base::Status FileGuardDisk::Store(base::ByteSpan bytes) {
  return base::WriteFileAtomic(
      m_path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
      {.mode = 0600});
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
