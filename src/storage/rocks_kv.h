// The node's persistent KvStore: one RocksDB database in one directory.
//
// Durability contract (docs/storage.md): Commit writes the whole batch as one
// RocksDB WriteBatch with WriteOptions::sync, i.e. one WAL append and one fsync
// per commit. When Commit returns Ok the batch survives a killed process and a
// power cut; when the process or the power dies inside Commit, the batch is
// there entirely or not at all after the next Open.
//
// RocksDB's headers stay out of this file (pimpl): everything above storage
// includes it without paying their compile cost.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "state/kv.h"
#include "storage/fault_fs.h"

namespace gpunet::storage {

struct RocksKvOptions {
  /// Create an empty database when the directory holds none (the directory's
  /// parent must exist). When false, a missing database is kNotFound.
  bool create_if_missing = true;
  /// Block cache for data, index and filter blocks: the bound on read memory.
  size_t block_cache_bytes = 256u << 20;
  /// One memtable; at most two exist (one being flushed), so the write-side
  /// memory bound is twice this.
  size_t write_buffer_bytes = 64u << 20;
  /// Table files kept open (each holds a file descriptor and its metadata).
  int max_open_files = 512;
  /// Route every file through a storage::FaultInjection layer so a test can cut
  /// the power (RocksKvStore::SimulatePowerLoss). Off in production.
  bool fault_injection = false;
};

class RocksKvStore final : public state::KvStore {
 public:
  /// Opens (or creates) the database in directory `path`. Errors:
  /// kConflict when another process (or this one) has it open,
  /// kCorrupt when its files fail their checks, kNotFound when there is no
  /// database and create_if_missing is false, kIo when the OS refuses.
  static base::Result<std::unique_ptr<RocksKvStore>> Open(const std::string& path,
                                                          const RocksKvOptions& options = {});
  ~RocksKvStore() override;
  RocksKvStore(const RocksKvStore&) = delete;
  RocksKvStore& operator=(const RocksKvStore&) = delete;

  /// Thread-safe: Get, Scan and Commit may run concurrently (a Scan sees one
  /// consistent snapshot of committed data).
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override;
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const state::KvVisitor& visit) const override;
  /// One WriteBatch, one fsync. An empty batch writes nothing. After an I/O
  /// error the store refuses further commits (RocksDB's background-error
  /// state): the node must stop rather than diverge.
  base::Status Commit(const state::WriteBatch& batch) override;

  /// TEST HOOK: the batch reaches the OS (WAL appended) but is not fsynced.
  /// Survives a killed process, not a power cut. Never used by the node.
  base::Status CommitUnsyncedForTest(const state::WriteBatch& batch);

  /// The fault-injection layer, when opened with fault_injection; else nullopt.
  std::optional<FaultInjection> Faults() const;

  /// Cuts the power (FaultInjection::SimulatePowerLoss) and closes the
  /// database; every later call returns kUnavailable. Reopen the directory
  /// with Open to see what survived. kUnsupported without fault_injection.
  /// Safe while other threads commit: their commits fail.
  base::Status SimulatePowerLoss();

  const std::string& Path() const;

 private:
  struct Impl;
  explicit RocksKvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace gpunet::storage
