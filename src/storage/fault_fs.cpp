#include "storage/fault_fs.h"

#include <rocksdb/env.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <vector>

#include "base/check.h"
#include "storage/fault_fs_internal.h"

namespace gpunet::storage {

namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

/// "a//b/" → "a/b": RocksDB joins paths as dbname + "/" + file, so the same
/// directory can arrive spelled two ways.
std::string Normalize(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string Parent(const std::string& normalized_path) {
  size_t slash = normalized_path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return normalized_path.substr(0, slash);
}

// RocksDB renames only small files (CURRENT, IDENTITY, OPTIONS, LOG); keeping
// the replaced content in memory is fine up to this size.
constexpr size_t kRenamedOverBytesMax = 16 * 1024 * 1024;

/// A file being written: forwards to the real file and reports every write and
/// sync to the file system's bookkeeping.
class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> target, FaultFileSystem* fs,
                    std::shared_ptr<FaultFileSystem::FileState> state)
      : FSWritableFileOwnerWrapper(std::move(target)), m_fs(fs), m_state(std::move(state)) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) m_fs->RecordAppend(*m_state, data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) m_fs->RecordAppend(*m_state, data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) m_fs->RecordWriteAt(*m_state, offset + data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) m_fs->RecordWriteAt(*m_state, offset + data.size());
    return s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) m_fs->RecordTruncate(*m_state, size);
    return s;
  }
  IOStatus Flush(const IOOptions& options, IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    return target()->Flush(options, dbg);
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncWith(options, dbg, false);
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return SyncWith(options, dbg, true);
  }
  // sync_file_range: forwarded, never counted as durable (see fault_fs_internal.h).
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    return target()->RangeSync(offset, nbytes, options, dbg);
  }
  // No preallocation: the POSIX file would ftruncate itself back to its logical
  // size on Close, re-growing a file that a power cut has just cut back.
  void SetPreallocationBlockSize(size_t) override {}
  void PrepareWrite(size_t, size_t, const IOOptions&, IODebugContext*) override {}
  IOStatus Allocate(uint64_t, uint64_t, const IOOptions&, IODebugContext*) override {
    return IOStatus::OK();
  }

 private:
  IOStatus SyncWith(const IOOptions& options, IODebugContext* dbg, bool full) {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    // What was written before the sync started is covered by it; a concurrent
    // append may or may not be, so it does not count.
    const uint64_t covered = m_fs->WrittenSize(*m_state);
    IOStatus s = full ? target()->Fsync(options, dbg) : target()->Sync(options, dbg);
    if (s.ok()) m_fs->RecordSync(*m_state, covered);
    return s;
  }

  FaultFileSystem* m_fs;
  std::shared_ptr<FaultFileSystem::FileState> m_state;
};

/// A directory handle: its fsync makes the entries of the directory durable.
class FaultDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> target, FaultFileSystem* fs,
                 std::string name)
      : FSDirectoryWrapper(std::move(target)), m_fs(fs), m_name(std::move(name)) {}

  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = FSDirectoryWrapper::Fsync(options, dbg);
    if (s.ok()) m_fs->RecordDirSync(m_name);
    return s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& options, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& dir_options) override {
    FaultFileSystem::PowerGuard power(*m_fs);
    if (!power.On()) return FaultFileSystem::PowerOffError();
    IOStatus s = FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
    if (s.ok()) m_fs->RecordDirSync(m_name);
    return s;
  }

 private:
  FaultFileSystem* m_fs;
  std::string m_name;
};

}  // namespace

// ---- FaultFileSystem ----

FaultFileSystem::PowerGuard::PowerGuard(const FaultFileSystem& fs)
    : m_lock(fs.m_power), m_on(!fs.m_off) {}

FaultFileSystem::FaultFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base)
    : FileSystemWrapper(base) {}

IOStatus FaultFileSystem::PowerOffError() {
  return IOStatus::IOError("simulated power loss: the disk is off");
}

void FaultFileSystem::RecordAppend(FileState& state, uint64_t bytes) {
  base::MutexLock lock(m_mutex);
  state.size += bytes;
}

void FaultFileSystem::RecordWriteAt(FileState& state, uint64_t end_offset) {
  base::MutexLock lock(m_mutex);
  state.size = std::max(state.size, end_offset);
}

uint64_t FaultFileSystem::WrittenSize(const FileState& state) const {
  base::MutexLock lock(m_mutex);
  return state.size;
}

void FaultFileSystem::RecordTruncate(FileState& state, uint64_t size) {
  base::MutexLock lock(m_mutex);
  state.size = size;
  state.synced = std::min(state.synced, size);
}

void FaultFileSystem::RecordSync(FileState& state, uint64_t covered_size) {
  base::MutexLock lock(m_mutex);
  state.synced = std::max(state.synced, std::min(covered_size, state.size));
  ++m_stats.file_syncs;
}

void FaultFileSystem::RecordDirSync(const std::string& dirname) {
  base::MutexLock lock(m_mutex);
  const std::string dir = Normalize(dirname);
  std::erase_if(m_unsynced_entries, [&](const std::string& p) { return Parent(p) == dir; });
  std::erase_if(m_renamed_over, [&](const auto& kv) { return Parent(kv.first) == dir; });
  ++m_stats.dir_syncs;
}

IOStatus FaultFileSystem::TrackNewFile(const std::string& fname, bool existed_before,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       uint64_t initial_size) {
  const std::string path = Normalize(fname);
  std::shared_ptr<FileState> state;
  {
    base::MutexLock lock(m_mutex);
    auto it = m_files.find(path);
    if (initial_size > 0 && it != m_files.end()) {
      state = it->second;  // reopened for append: keep what we know
    } else {
      state = std::make_shared<FileState>();
      state->size = initial_size;
      state->synced = initial_size;  // content that was there before we saw it is durable
      m_files[path] = state;
    }
    if (!existed_before) m_unsynced_entries.insert(path);
  }
  *result = std::make_unique<FaultWritableFile>(std::move(*result), this, std::move(state));
  return IOStatus::OK();
}

IOStatus FaultFileSystem::NewWritableFile(const std::string& fname,
                                          const rocksdb::FileOptions& file_opts,
                                          std::unique_ptr<rocksdb::FSWritableFile>* result,
                                          IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  const bool existed = target()->FileExists(fname, IOOptions(), nullptr).ok();
  IOStatus s = target()->NewWritableFile(fname, file_opts, result, dbg);
  if (!s.ok()) return s;
  return TrackNewFile(fname, existed, result, 0);
}

IOStatus FaultFileSystem::ReopenWritableFile(const std::string& fname,
                                             const rocksdb::FileOptions& file_opts,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  const bool existed = target()->FileExists(fname, IOOptions(), nullptr).ok();
  IOStatus s = target()->ReopenWritableFile(fname, file_opts, result, dbg);
  if (!s.ok()) return s;
  uint64_t size = 0;
  if (existed) {
    s = target()->GetFileSize(fname, IOOptions(), &size, dbg);
    if (!s.ok()) return s;
  }
  return TrackNewFile(fname, existed, result, size);
}

IOStatus FaultFileSystem::ReuseWritableFile(const std::string&, const std::string&,
                                            const rocksdb::FileOptions&,
                                            std::unique_ptr<rocksdb::FSWritableFile>*,
                                            IODebugContext*) {
  return IOStatus::NotSupported("fault-injection file system: recycled WAL files are not modelled");
}

IOStatus FaultFileSystem::NewRandomRWFile(const std::string&, const rocksdb::FileOptions&,
                                          std::unique_ptr<rocksdb::FSRandomRWFile>*,
                                          IODebugContext*) {
  return IOStatus::NotSupported(
      "fault-injection file system: random read-write files are not modelled");
}

IOStatus FaultFileSystem::LinkFile(const std::string&, const std::string&, const IOOptions&,
                                   IODebugContext*) {
  return IOStatus::NotSupported("fault-injection file system: hard links are not modelled");
}

IOStatus FaultFileSystem::NewDirectory(const std::string& name, const IOOptions& io_opts,
                                       std::unique_ptr<rocksdb::FSDirectory>* result,
                                       IODebugContext* dbg) {
  IOStatus s = target()->NewDirectory(name, io_opts, result, dbg);
  if (!s.ok()) return s;
  *result = std::make_unique<FaultDirectory>(std::move(*result), this, Normalize(name));
  return s;
}

IOStatus FaultFileSystem::DeleteFile(const std::string& fname, const IOOptions& options,
                                     IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (s.ok()) {
    base::MutexLock lock(m_mutex);
    const std::string path = Normalize(fname);
    m_files.erase(path);
    m_unsynced_entries.erase(path);
  }
  return s;
}

IOStatus FaultFileSystem::Truncate(const std::string& fname, size_t size, const IOOptions& options,
                                   IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  IOStatus s = target()->Truncate(fname, size, options, dbg);
  if (s.ok()) {
    std::shared_ptr<FileState> state;
    {
      base::MutexLock lock(m_mutex);
      auto it = m_files.find(Normalize(fname));
      if (it != m_files.end()) state = it->second;
    }
    if (state) RecordTruncate(*state, size);
  }
  return s;
}

IOStatus FaultFileSystem::RenameFile(const std::string& src, const std::string& target_name,
                                     const IOOptions& options, IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  const std::string from = Normalize(src);
  const std::string to = Normalize(target_name);
  base::MutexLock lock(m_mutex);
  const bool to_exists = target()->FileExists(target_name, options, dbg).ok();
  const bool to_durable =
      to_exists && !m_unsynced_entries.contains(to) && !m_renamed_over.contains(to);
  std::string old_content;
  if (to_durable) {
    uint64_t size = 0;
    IOStatus s = target()->GetFileSize(target_name, options, &size, dbg);
    if (!s.ok()) return s;
    if (size > kRenamedOverBytesMax)
      return IOStatus::NotSupported(
          "fault-injection file system: rename over a file larger than 16 MiB");
    s = rocksdb::ReadFileToString(target(), target_name, &old_content);
    if (!s.ok()) return s;
  }
  IOStatus s = target()->RenameFile(src, target_name, options, dbg);
  if (!s.ok()) return s;
  if (to_durable)
    m_renamed_over.emplace(to, std::move(old_content));
  else
    m_unsynced_entries.insert(to);
  m_unsynced_entries.erase(from);
  auto it = m_files.find(from);
  m_files.erase(to);
  if (it != m_files.end()) {
    m_files[to] = it->second;
    m_files.erase(it);
  }
  return s;
}

IOStatus FaultFileSystem::CreateDir(const std::string& dirname, const IOOptions& options,
                                    IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  return target()->CreateDir(dirname, options, dbg);
}

IOStatus FaultFileSystem::CreateDirIfMissing(const std::string& dirname, const IOOptions& options,
                                             IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  return target()->CreateDirIfMissing(dirname, options, dbg);
}

IOStatus FaultFileSystem::DeleteDir(const std::string& dirname, const IOOptions& options,
                                    IODebugContext* dbg) {
  PowerGuard power(*this);
  if (!power.On()) return PowerOffError();
  return target()->DeleteDir(dirname, options, dbg);
}

base::Status FaultFileSystem::SimulatePowerLoss() {
  base::WriterLock power(m_power);  // waits for writes in flight, blocks new ones
  if (m_off) return base::Ok();
  m_off = true;
  base::MutexLock lock(m_mutex);
  std::string first_error;
  auto note = [&](const IOStatus& s, const std::string& what) {
    if (!s.ok() && first_error.empty()) first_error = what + ": " + s.ToString();
  };
  const IOOptions io;
  // 1. File data: back to the last sync.
  for (const auto& [path, state] : m_files) {
    uint64_t real_size = 0;
    if (!target()->GetFileSize(path, io, &real_size, nullptr).ok()) continue;  // gone already
    if (real_size <= state->synced) continue;
    // POSIX truncate(2): RocksDB's POSIX FileSystem does not implement Truncate.
    if (::truncate(path.c_str(), static_cast<off_t>(state->synced)) != 0)
      note(IOStatus::IOError(std::strerror(errno)), "truncating " + path);
    m_stats.dropped_bytes += real_size - state->synced;
  }
  // 2. Directory entries never made durable.
  for (const std::string& path : m_unsynced_entries) {
    IOStatus s = target()->DeleteFile(path, io, nullptr);
    if (s.ok()) ++m_stats.dropped_files;
    if (!s.IsNotFound() && !s.IsPathNotFound()) note(s, "removing " + path);
  }
  // 3. Durable files replaced by a rename that was never made durable.
  for (const auto& [path, content] : m_renamed_over) {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    IOStatus s = target()->NewWritableFile(path, rocksdb::FileOptions(), &file, nullptr);
    if (s.ok()) s = file->Append(content, io, nullptr);
    if (s.ok()) s = file->Sync(io, nullptr);
    if (s.ok()) s = file->Close(io, nullptr);
    note(s, "restoring " + path);
    ++m_stats.dropped_files;
  }
  m_files.clear();
  m_unsynced_entries.clear();
  m_renamed_over.clear();
  if (!first_error.empty())
    return base::Fail(base::ErrorCode::kIo,
                      "simulated power loss could not roll the disk back: " + first_error);
  return base::Ok();
}

bool FaultFileSystem::PoweredOff() const {
  base::ReaderLock power(m_power);
  return m_off;
}

FaultStats FaultFileSystem::Stats() const {
  base::MutexLock lock(m_mutex);
  FaultStats stats = m_stats;
  stats.unsynced_bytes = 0;
  for (const auto& [path, state] : m_files)
    stats.unsynced_bytes += state->size - std::min(state->size, state->synced);
  stats.unsynced_entries = m_unsynced_entries.size() + m_renamed_over.size();
  return stats;
}

// ---- FaultInjection ----

FaultInjection::FaultInjection()
    : m_fs(std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default())) {}
FaultInjection::FaultInjection(std::shared_ptr<FaultFileSystem> fs) : m_fs(std::move(fs)) {
  GPUNET_CHECK(m_fs);
}
FaultInjection::~FaultInjection() = default;
FaultInjection::FaultInjection(const FaultInjection&) = default;
FaultInjection& FaultInjection::operator=(const FaultInjection&) = default;

base::Status FaultInjection::SimulatePowerLoss() {
  return m_fs->SimulatePowerLoss();
}
bool FaultInjection::PoweredOff() const {
  return m_fs->PoweredOff();
}
FaultStats FaultInjection::Stats() const {
  return m_fs->Stats();
}

}  // namespace gpunet::storage
