// The tenant API's replay guard (docs/tenant-api.md "Replay"): every signed request's
// nonce is kept until its timestamp can no longer pass the ±60 s check, and kept ON
// DISK, so a daemon restart does not reopen the window. The same store keeps the
// tenants' revocations of delegation grants until the grant could no longer be used.
//
// Why an append-only log and not RocksDB: the set is small and short-lived (at most
// kTenantNonceEntriesMax entries, each gone after a minute), needs nothing but
// "insert, then fsync" on the request path and a full replay at open, and no range
// reads. One fdatasync'd 61-byte append per request is the cheapest crash-safe
// insert there is; a second RocksDB would add its own WAL, compactions and options for
// a few thousand live entries.
//
// The file <dir>/nonces.log: an 8-byte magic "GPNNONC1", then fixed 61-byte records:
//   kind u8 (1 nonce, 2 revocation) | signer[32] (the tenant for a revocation)
//   | id[16] (the nonce or grant id) | expires_ms u64 BE | check[4]
// where check is the first 4 bytes of BLAKE2b-256 of the 57 bytes before it.
// A record is fdatasync'd before Record returns, so a request is acted on only once
// its nonce is durable. At open, a torn last record (a crash mid-append: short, or a
// bad check) is cut off, since it was never acknowledged; a bad record followed by
// good ones is corruption (kCorrupt). The log is rewritten with only the live
// entries (base::WriteFileAtomic: temporary file, fsync, rename, directory fsync) at
// open and whenever it holds more than twice the live entries plus
// compact_slack_records, so its size stays bounded by the entry cap.
//
// Thread-safe: one mutex; the fsync is inside it, so requests are recorded one at a
// time (a few hundred a second on an ordinary disk, far above what one lease's tools
// send).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "base/limits.h"
#include "base/mutex.h"
#include "base/result.h"
#include "client/tenant_request.h"
#include "crypto/ed25519.h"

namespace gpunet::provider {

struct NonceStoreOptions {
  /// Live nonces of one signer key; one more is kLimitExceeded (the API's 429), and
  /// other keys' nonces are never evicted to make room.
  size_t per_key_max = base::limits::kTenantNoncesPerKeyMax;
  /// Live nonces and revocations in all; one more is kUnavailable (503).
  size_t entries_max = base::limits::kTenantNonceEntriesMax;
  /// Records beyond 2 × live entries the log may hold before it is compacted.
  size_t compact_slack_records = 4096;
};

class NonceStore {
 public:
  /// Opens <dir>/nonces.log (creating it; `dir` must exist), replays it, drops the
  /// entries expired at `now_ms` and a torn last record, and compacts. kCorrupt for
  /// a damaged log (its message says what to do); kIo when the OS refuses.
  static base::Result<std::unique_ptr<NonceStore>> Open(const std::string& dir, uint64_t now_ms,
                                                        NonceStoreOptions options = {});
  ~NonceStore();
  NonceStore(const NonceStore&) = delete;
  NonceStore& operator=(const NonceStore&) = delete;

  /// Records `nonce` of `signer`, kept until `expires_ms`, durably before returning.
  /// kAlreadyExists when that signer used that nonce and it has not expired (a
  /// replay); kLimitExceeded when the signer has per_key_max live nonces;
  /// kUnavailable when the store is full; kIo when the disk refuses (nothing is
  /// recorded then, and the request must not be served).
  [[nodiscard]] base::Status Record(const crypto::PublicKey& signer,
                                    const client::RequestNonce& nonce, uint64_t expires_ms,
                                    uint64_t now_ms);

  /// Records that `tenant` revoked grant `grant_id`, until `expires_ms` (the grant
  /// cannot be used after it anyway). Recording it again is fine (the later expiry
  /// wins). kLimitExceeded when `tenant` has per_key_max live revocations;
  /// kUnavailable when the store is full; kIo when the disk refuses.
  [[nodiscard]] base::Status RecordRevocation(const crypto::PublicKey& tenant,
                                              const client::GrantId& grant_id, uint64_t expires_ms,
                                              uint64_t now_ms);
  /// True when `tenant` revoked `grant_id` and the revocation has not expired.
  bool IsRevoked(const crypto::PublicKey& tenant, const client::GrantId& grant_id, uint64_t now_ms);

  /// Live entries (nonces and revocations) not yet dropped; expired ones may still
  /// count until the next purge of their key or compaction.
  size_t Entries();
  /// Records in the log file now (for the compaction bound's tests).
  size_t LogRecords();
  /// <dir>/nonces.log
  const std::string& Path() const { return m_path; }

  struct Entry;

 private:
  NonceStore(std::string path, NonceStoreOptions options);
  base::Status Load(uint64_t now_ms) REQUIRES(m_mu);
  base::Status Compact(uint64_t now_ms) REQUIRES(m_mu);
  base::Status Append(const Entry& entry) REQUIRES(m_mu);
  base::Status MakeRoom(uint64_t now_ms) REQUIRES(m_mu);
  void Insert(const Entry& entry) REQUIRES(m_mu);
  void PurgeKey(const crypto::PublicKey& signer, uint64_t now_ms) REQUIRES(m_mu);
  void PurgeAll(uint64_t now_ms) REQUIRES(m_mu);

  struct KeyNonces {
    std::map<client::RequestNonce, uint64_t> by_nonce;  ///< nonce → expires_ms
    std::multimap<uint64_t, client::RequestNonce> by_expiry;
  };

  const std::string m_path;
  const NonceStoreOptions m_options;
  base::Mutex m_mu;
  int m_fd GUARDED_BY(m_mu) = -1;  ///< the log, open for appending
  std::map<crypto::PublicKey, KeyNonces> m_keys GUARDED_BY(m_mu);
  /// (tenant, grant id) → expires_ms: one tenant cannot revoke another's grant.
  std::map<std::pair<crypto::PublicKey, client::GrantId>, uint64_t> m_revoked GUARDED_BY(m_mu);
  std::map<crypto::PublicKey, size_t> m_revocations_per_tenant GUARDED_BY(m_mu);
  size_t m_entries GUARDED_BY(m_mu) = 0;
  size_t m_log_records GUARDED_BY(m_mu) = 0;
};

}  // namespace gpunet::provider
