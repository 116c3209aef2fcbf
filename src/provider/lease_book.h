// The daemon's durable lease book: what this provider has done for each lease, so a
// daemon that was SIGKILLed or restarted takes the next step instead of repeating one
// (docs/provider.md, "What the daemon does with a lease").
//
// One small JSON file per lease, <home>/state/leases/<lease_id>.json, each written
// whole with base::WriteFileAtomic (temp file, fsync, rename, directory fsync). Why
// files and not a journal: a record changes a handful of times in a lease's life and
// is read back only at start, so a rename per change costs nothing that matters; a
// crash leaves the old record or the new one, never a torn one, with no replay or
// compaction code to get wrong; and a closed lease's record is deleted as a file.
//
// The book holds only what the ledger and the runtime cannot tell: which GPUs were
// set aside (written BEFORE any tx names the lease), whether the manifest arrived,
// when the ledger was first seen to close the lease. The rest is read again on every
// reconcile (the engine is level-triggered, provider/engine.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::provider {

struct LeaseRecord {
  uint64_t lease_id = 0;
  /// The GPUs of this machine set aside for the lease (UUIDs, sorted).
  std::vector<std::string> gpu_uuids;
  base::Hash32 manifest_hash{};
  /// The ledger's started_ms once seen (0 = not started on the ledger yet).
  uint64_t started_ms = 0;
  /// The workload was started with a manifest whose hash matched.
  bool manifest_received = false;
  /// The ledger's closed_ms once the daemon saw the lease closed (0 = open).
  uint64_t closed_ms = 0;
  std::string end;  ///< the ledger's end reason once closed ("tenant_closed", ...)
  bool workload_stopped = false;
  /// The tenant's manifest bytes, kept from its acceptance until the workload is
  /// known to run (then ""), so a daemon that dies between the two launches it at the
  /// next start instead of losing it. An optional field: older records lack it.
  std::string manifest;
  /// The workload's SIGTERM grace (its spec's stop_grace_ms, kept at launch; 0 =
  /// unknown, an adopted workload: the runtime's default). An optional field.
  uint32_t stop_grace_ms = 0;
  /// The lease's paid_until_ms for which the daemon sent the workload SIGTERM because
  /// the funds end (0 = none; docs/provider.md "When the funds end"): once per end,
  /// across restarts. An optional field.
  uint64_t funds_stop_ms = 0;
  bool operator==(const LeaseRecord&) const = default;
};

/// The runtime's workload id of a lease ("lease-<id>"): ValidateWorkloadId accepts it.
std::string WorkloadIdOf(uint64_t lease_id);
/// The lease of a workload id WorkloadIdOf made; nullopt for any other id.
std::optional<uint64_t> LeaseIdOfWorkload(std::string_view workload_id);

/// The record as the file holds it, and back. Decode refuses anything but the exact
/// fields with their types (kCorrupt naming the field).
std::string EncodeLeaseRecord(const LeaseRecord& record);
base::Result<LeaseRecord> DecodeLeaseRecord(std::string_view text);

/// A lease the book released: its retention ended and its record and workload are
/// gone. Kept (the newest kReleasedLeasesMax, in <state_dir>/leases/released.json) so
/// a late request for it is told it is gone (410) rather than unknown (404).
struct ReleasedLease {
  uint64_t lease_id = 0;
  uint64_t closed_ms = 0;    ///< the ledger's close
  uint64_t released_ms = 0;  ///< when the daemon released it (wall clock)
  std::string end;           ///< the ledger's end reason
  bool operator==(const ReleasedLease&) const = default;
};
inline constexpr size_t kReleasedLeasesMax = 1024;

/// What Open found that it could not use (a record that does not decode is moved
/// aside to <id>.json.corrupt, so the daemon starts and the operator can look).
struct BookProblem {
  std::string file;
  std::string message;
};

class LeaseBook {
 public:
  /// Reads every record under <state_dir>/leases (made 0700 when missing). Files
  /// that are not "<digits>.json" (WriteFileAtomic's leftover temp files) are
  /// ignored; a record that does not decode is moved aside and reported.
  static base::Result<LeaseBook> Open(const std::string& state_dir,
                                      std::vector<BookProblem>* problems = nullptr);

  const std::map<uint64_t, LeaseRecord>& Records() const { return m_records; }
  const LeaseRecord* Find(uint64_t lease_id) const;

  /// Writes the record durably, then keeps it in memory (an error changes neither).
  /// Refuses (writing nothing) a record Open could not read back: one whose file
  /// would pass the size Open reads (room for a kManifestBytesMax manifest of bytes
  /// JSON escapes to 6) or whose strings are not UTF-8.
  [[nodiscard]] base::Status Put(const LeaseRecord& record);
  /// Deletes the record's file (and the directory entry durably).
  [[nodiscard]] base::Status Erase(uint64_t lease_id);
  /// Keeps `released` durably among the released leases (the oldest dropped past
  /// kReleasedLeasesMax; a lease kept already is not kept twice), then erases its
  /// record. An error before the erase leaves the record, so the caller retries.
  [[nodiscard]] base::Status Release(const ReleasedLease& released);
  /// The released lease `lease_id`, or nullptr.
  const ReleasedLease* FindReleased(uint64_t lease_id) const;

  std::string PathOf(uint64_t lease_id) const;
  /// Test seam: passed to WriteFileAtomic as before_commit (a torn or failed write).
  void SetBeforeCommitForTest(std::function<base::Status(const std::string&)> hook) {
    m_before_commit = std::move(hook);
  }

 private:
  std::string m_dir;
  std::map<uint64_t, LeaseRecord> m_records;
  std::vector<ReleasedLease> m_released;  ///< oldest first, at most kReleasedLeasesMax
  std::function<base::Status(const std::string&)> m_before_commit;
};

}  // namespace gpunet::provider
