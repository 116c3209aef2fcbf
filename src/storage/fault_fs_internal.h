// The RocksDB FileSystem behind storage::FaultInjection. Includes RocksDB
// headers: only storage's own sources and storage's tests include this file.
//
// Model of the disk (what survives a power cut):
//  - file data: the prefix up to the last Sync/Fsync of that file. RangeSync
//    (sync_file_range) does not count: it persists neither metadata nor a
//    guaranteed range, so treating it as durable would hide bugs.
//  - directory entries: a file created (NewWritableFile) or renamed into place
//    exists after the cut only if its directory was fsynced afterwards; a rename
//    over an existing durable file is undone (old content restored) unless the
//    directory was fsynced afterwards.
//  - deletions and directory creation are treated as durable at once (RocksDB
//    only deletes obsolete files, and a file that comes back is harmless to it).
// Data is written through to the real files at once, so the running process
// reads what it wrote; the bookkeeping above is what SimulatePowerLoss rolls
// back. Writing files that RocksDB never writes this way (hard links, random
// read-write files, recycled WALs) is refused with NotSupported, so nothing can
// slip past the model.
#pragma once

#include <rocksdb/file_system.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/mutex.h"
#include "storage/fault_fs.h"

namespace gpunet::storage {

class FaultFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  /// Durability state of one file written through this layer.
  struct FileState {
    uint64_t size = 0;    ///< bytes written so far
    uint64_t synced = 0;  ///< bytes made durable by Sync/Fsync
  };

  explicit FaultFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base);

  // RocksDB's Customizable convention names this kClassName (its casts call T::kClassName()).
  // NOLINTNEXTLINE(readability-identifier-naming)
  static const char* kClassName() { return "GpunetFaultFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& file_opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& file_opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& file_opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& fname, const rocksdb::FileOptions& file_opts,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;

  /// See FaultInjection::SimulatePowerLoss.
  base::Status SimulatePowerLoss();
  bool PoweredOff() const;
  FaultStats Stats() const;

  // ---- used by the file and directory wrappers ----
  /// Holds the power on (shared) for the duration of one mutating call, so the
  /// cut cannot happen in the middle of it; On() is false once it is cut.
  class SCOPED_CAPABILITY PowerGuard {
   public:
    explicit PowerGuard(const FaultFileSystem& fs) ACQUIRE_SHARED(fs.m_power);
    ~PowerGuard() RELEASE() = default;
    PowerGuard(const PowerGuard&) = delete;
    PowerGuard& operator=(const PowerGuard&) = delete;
    bool On() const { return m_on; }

   private:
    base::ReaderLock m_lock;
    bool m_on;
  };
  static rocksdb::IOStatus PowerOffError();
  void RecordAppend(FileState& state, uint64_t bytes) EXCLUDES(m_mutex);
  void RecordWriteAt(FileState& state, uint64_t end_offset) EXCLUDES(m_mutex);
  void RecordTruncate(FileState& state, uint64_t size) EXCLUDES(m_mutex);
  uint64_t WrittenSize(const FileState& state) const EXCLUDES(m_mutex);
  /// A sync succeeded that covers the first `covered_size` bytes.
  void RecordSync(FileState& state, uint64_t covered_size) EXCLUDES(m_mutex);
  void RecordDirSync(const std::string& dirname) EXCLUDES(m_mutex);

 private:
  rocksdb::IOStatus TrackNewFile(const std::string& fname, bool existed_before,
                                 std::unique_ptr<rocksdb::FSWritableFile>* result,
                                 uint64_t initial_size);

  // Power: mutating calls hold it shared; the cut takes it exclusive, so no
  // write can land on disk after the roll-back.
  mutable base::SharedMutex m_power;
  bool m_off GUARDED_BY(m_power) = false;
  // Bookkeeping; taken after m_power, never before. It also guards every
  // FileState (each file's wrapper holds one; the analysis cannot name m_mutex there).
  mutable base::Mutex m_mutex;
  std::map<std::string, std::shared_ptr<FileState>> m_files GUARDED_BY(m_mutex);
  /// Paths whose directory entry is not durable.
  std::set<std::string> m_unsynced_entries GUARDED_BY(m_mutex);
  /// Durable path → content before an unsynced rename.
  std::map<std::string, std::string> m_renamed_over GUARDED_BY(m_mutex);
  FaultStats m_stats GUARDED_BY(m_mutex);
};

}  // namespace gpunet::storage
