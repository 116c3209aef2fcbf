// A power switch for the storage layer: a file system between RocksDB and the
// disk that remembers what has NOT been made durable (file data not yet
// fsynced, directory entries of created or renamed files whose directory was
// not yet fsynced) and can throw all of it away, as a power cut would.
//
// A killed process loses nothing the kernel already has; a power cut loses
// everything not fsynced. Tests of "nothing lost" must survive the second, so
// they run the store on this layer (RocksKvOptions::fault_injection) and call
// SimulatePowerLoss(). Usable outside unit tests too: the node enables it from
// an option in its power-loss integration test and triggers the cut itself.
//
// The RocksDB FileSystem class behind this handle is in fault_fs_internal.h,
// which includes RocksDB headers and is only for storage's own sources and tests.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"

namespace gpunet::storage {

class FaultFileSystem;

/// What the layer has seen; for tests and for logging after a simulated cut.
struct FaultStats {
  uint64_t file_syncs = 0;        ///< Sync/Fsync calls on files that made data durable
  uint64_t dir_syncs = 0;         ///< directory fsyncs
  uint64_t unsynced_bytes = 0;    ///< bytes written but not yet synced, right now
  uint64_t unsynced_entries = 0;  ///< created/renamed files whose directory is not synced
  uint64_t dropped_bytes = 0;     ///< bytes cut off by SimulatePowerLoss
  uint64_t dropped_files = 0;     ///< files removed or restored by SimulatePowerLoss
};

/// Handle to one fault-injecting file system. Cheap to copy; every copy
/// controls the same file system.
class FaultInjection {
 public:
  /// A fresh layer over the operating system's file system.
  FaultInjection();
  explicit FaultInjection(std::shared_ptr<FaultFileSystem> fs);
  ~FaultInjection();
  FaultInjection(const FaultInjection&);
  FaultInjection& operator=(const FaultInjection&);

  /// Cuts the power: from now on every write, sync, create, rename and delete
  /// through this layer fails, and on disk every file is cut back to what was
  /// last synced, files whose directory entry was never synced are removed, and
  /// files replaced by an unsynced rename get their old content back. Reads keep
  /// working. After this, close the database and reopen the directory (without
  /// fault injection, or with a fresh layer) to see what a reboot would see.
  /// Returns an error only when the disk refused to be rolled back.
  base::Status SimulatePowerLoss();

  bool PoweredOff() const;
  FaultStats Stats() const;

  /// The RocksDB FileSystem itself (storage internals and tests).
  const std::shared_ptr<FaultFileSystem>& FileSystem() const { return m_fs; }

 private:
  std::shared_ptr<FaultFileSystem> m_fs;
};

/// For power-loss tests of a whole process (the node's integration test): when
/// the process receives `signo`, cut the power of `faults` and _exit(exit_code)
/// at once, so nothing after the cut reaches the disk through this layer.
/// Installs a signal handler that only writes to a pipe (async-signal-safe) and
/// one thread that does the cut, so it works whatever the other threads' signal
/// masks. Call at most once per process; kInvalidArgument for a bad signal,
/// kConflict when already armed.
base::Status CutPowerOnSignal(const FaultInjection& faults, int signo, int exit_code);

}  // namespace gpunet::storage
