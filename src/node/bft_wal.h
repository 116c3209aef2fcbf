// Durable storage for the BFT engine (architecture §5.2, issue 5 item 3): the write-ahead
// log of consensus records and the signing guard file.
//
// The consensus core decides WHAT is logged and how a record is framed
// (consensus/bft_wal.h); this file makes the bytes durable and gives them back:
//
//   * The WAL is the core's framed records, appended and synced (fdatasync)
//     BEFORE the vote or proposal they cover leaves the node. A crash may leave a
//     torn last frame (a partial write, or bytes the disk never synced); Open
//     drops that tail and truncates the file there, so the log again ends on a
//     whole record. A bad frame in the middle is not a torn tail: kCorrupt.
//   * The guard file holds the core's last-signed (height, round, step) record. It
//     is replaced atomically (write tmp, fsync, rename, fsync dir), so a crash
//     leaves either the old or the new guard, never a mix: it survives a lost WAL.
//
// Both sit on a small disk interface (WalDisk, GuardDisk) so that the simulator
// (tests/sim) runs this exact framing and truncation code over a fake disk that
// loses unsynced writes on a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "consensus/bft_wal.h"

namespace gpunet::node {

// ---------------------------------------------------------------- disks

/// An append-only byte file. Appended bytes are durable only after Sync.
class WalDisk {
 public:
  virtual ~WalDisk() = default;
  /// Every byte the file holds now (synced or not, as the OS/disk sees it).
  virtual base::Result<base::Bytes> ReadAll() = 0;
  virtual base::Status Append(base::ByteSpan bytes) = 0;
  /// Makes every appended byte durable.
  virtual base::Status Sync() = 0;
  /// Cuts the file to `size` bytes and makes that durable.
  virtual base::Status Truncate(uint64_t size) = 0;
};

/// A small file replaced as a whole, atomically.
class GuardDisk {
 public:
  virtual ~GuardDisk() = default;
  /// nullopt when the file was never written.
  virtual base::Result<std::optional<base::Bytes>> Load() = 0;
  /// Replaces the content; durable when it returns.
  virtual base::Status Store(base::ByteSpan bytes) = 0;
};

/// WalDisk over a real file (created 0600 when missing, its directory synced).
class FileWalDisk final : public WalDisk {
 public:
  static base::Result<std::unique_ptr<FileWalDisk>> Open(const std::string& path);
  ~FileWalDisk() override;
  FileWalDisk(const FileWalDisk&) = delete;
  FileWalDisk& operator=(const FileWalDisk&) = delete;

  base::Result<base::Bytes> ReadAll() override;
  base::Status Append(base::ByteSpan bytes) override;
  base::Status Sync() override;
  base::Status Truncate(uint64_t size) override;

 private:
  FileWalDisk(int fd, std::string path, uint64_t size)
      : m_fd(fd), m_path(std::move(path)), m_size(size) {}
  int m_fd;
  std::string m_path;
  uint64_t m_size;  ///< where the next append goes
};

/// GuardDisk over a real file, written with base::WriteFileAtomic (0600, whole or
/// not at all, directory synced) and read without following links.
class FileGuardDisk final : public GuardDisk {
 public:
  explicit FileGuardDisk(std::string path) : m_path(std::move(path)) {}
  base::Result<std::optional<base::Bytes>> Load() override;
  base::Status Store(base::ByteSpan bytes) override;

 private:
  std::string m_path;
};

// ---------------------------------------------------------------- the log

/// What Open found.
struct WalOpenReport {
  std::vector<consensus::WalRecord> records;  ///< whole records, in append order
  uint64_t torn_bytes = 0;                    ///< bytes of a torn tail that were cut off
};

/// The core's WAL records (consensus/bft_wal.h: frame, checksum, torn-tail rules) over
/// a WalDisk. Single-threaded.
class BftWal {
 public:
  /// Reads every whole record (consensus::ReadWal), cuts a torn tail off the disk
  /// so the log again ends on a whole record, and positions the log for appends.
  /// kCorrupt when a damaged record is followed by good ones (disk damage, not a
  /// crash): the node must not start, since replaying a log with a hole could make
  /// the core forget a vote it signed.
  static base::Result<std::pair<std::unique_ptr<BftWal>, WalOpenReport>> Open(
      std::unique_ptr<WalDisk> disk);

  /// Appends one record (not yet durable).
  base::Status Append(const consensus::WalRecord& record);
  /// Makes every appended record durable. Call before a signed message leaves.
  base::Status Sync();
  /// Drops every record (durably): once a height is committed to the block store
  /// its records are no longer needed (the core skips them on replay anyway).
  base::Status Clear();
  /// Records appended since Open (tests, metrics).
  uint64_t Appended() const { return m_appended; }

 private:
  explicit BftWal(std::unique_ptr<WalDisk> disk) : m_disk(std::move(disk)) {}
  std::unique_ptr<WalDisk> m_disk;
  uint64_t m_appended = 0;
};

}  // namespace gpunet::node
