#include "provider/nonce_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "base/check.h"
#include "base/file_util.h"
#include "crypto/hash.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;

namespace {

constexpr std::string_view kMagic = "GPNNONC1";
constexpr size_t kRecordBytes = 61;
constexpr size_t kCheckedBytes = kRecordBytes - 4;
constexpr uint8_t kKindNonce = 1;
constexpr uint8_t kKindRevocation = 2;

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

struct NonceStore::Entry {
  uint8_t kind = kKindNonce;
  crypto::PublicKey signer;  ///< the tenant for a revocation
  base::FixedBytes<16> id;
  uint64_t expires_ms = 0;

  void AppendTo(std::string& out) const {
    base::Bytes b;
    b.reserve(kRecordBytes);
    b.push_back(kind);
    b.insert(b.end(), signer.begin(), signer.end());
    b.insert(b.end(), id.begin(), id.end());
    base::AppendU64BE(b, expires_ms);
    const base::Hash32 check = crypto::Blake2b256(b);
    b.insert(b.end(), check.begin(), check.begin() + 4);
    GPUNET_CHECK(b.size() == kRecordBytes);
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }

  /// The record at `p` (kRecordBytes), or nothing when its check or kind is wrong.
  static std::optional<Entry> Parse(const uint8_t* p) {
    const base::Hash32 check = crypto::Blake2b256(base::ByteSpan(p, kCheckedBytes));
    if (std::memcmp(check.begin(), p + kCheckedBytes, 4) != 0) return std::nullopt;
    Entry e;
    e.kind = p[0];
    if (e.kind != kKindNonce && e.kind != kKindRevocation) return std::nullopt;
    std::memcpy(e.signer.begin(), p + 1, 32);
    std::memcpy(e.id.begin(), p + 33, 16);
    e.expires_ms = base::ReadU64BE(p + 49);
    return e;
  }
};

NonceStore::NonceStore(std::string path, NonceStoreOptions options)
    : m_path(std::move(path)), m_options(options) {}

NonceStore::~NonceStore() {
  base::MutexLock lock(m_mu);
  if (m_fd >= 0) ::close(m_fd);
}

base::Result<std::unique_ptr<NonceStore>> NonceStore::Open(const std::string& dir, uint64_t now_ms,
                                                           NonceStoreOptions options) {
  GPUNET_CHECK(options.per_key_max > 0 && options.entries_max > 0);
  std::unique_ptr<NonceStore> store(new NonceStore(dir + "/nonces.log", options));
  base::MutexLock lock(store->m_mu);
  GPUNET_TRY(store->Load(now_ms));
  GPUNET_TRY(store->Compact(now_ms));
  return store;
}

base::Status NonceStore::Load(uint64_t now_ms) {
  // The whole log is read at open: its size is bounded by the entry cap and the slack.
  const size_t log_bytes_max = kMagic.size() + kRecordBytes * (2 * m_options.entries_max +
                                                               2 * m_options.compact_slack_records);
  auto text = base::ReadFileNoFollow(m_path, log_bytes_max);
  if (!text && text.error().code == ErrorCode::kNotFound) return base::Ok();
  if (!text) return base::Wrap(text.error(), "reading the tenant API's nonce log");
  const std::string& log = *text;
  const std::string fix = "; move " + m_path +
                          " aside and wait 60 s before serving tenants again (requests signed "
                          "before then could be replayed)";
  if (log.size() < kMagic.size()) return base::Ok();  // torn while first written: empty
  if (std::string_view(log).substr(0, kMagic.size()) != kMagic)
    return Fail(ErrorCode::kCorrupt, m_path + " is not a gpunet nonce log" + fix);
  const auto* p = reinterpret_cast<const uint8_t*>(log.data()) + kMagic.size();
  const size_t records = (log.size() - kMagic.size()) / kRecordBytes;
  for (size_t i = 0; i < records; ++i) {
    auto entry = Entry::Parse(p + i * kRecordBytes);
    if (!entry) {
      // A crash mid-append tears only the last record, which was never acknowledged.
      if (i + 1 == records) break;
      return Fail(ErrorCode::kCorrupt, m_path + " record " + std::to_string(i) +
                                           " is damaged and is not the last" + fix);
    }
    if (entry->expires_ms > now_ms) Insert(*entry);
  }
  return base::Ok();
}

base::Status NonceStore::Compact(uint64_t now_ms) {
  PurgeAll(now_ms);
  std::string out(kMagic);
  out.reserve(kMagic.size() + m_entries * kRecordBytes);
  for (const auto& [signer, nonces] : m_keys)
    for (const auto& [nonce, expires] : nonces.by_nonce)
      Entry{kKindNonce, signer, nonce, expires}.AppendTo(out);
  for (const auto& [key, expires] : m_revoked)
    Entry{kKindRevocation, key.first, key.second, expires}.AppendTo(out);
  GPUNET_TRY(base::WriteFileAtomic(m_path, out, {.mode = 0600}));
  // The old descriptor names the replaced file: appends must go to the new one.
  if (m_fd >= 0) ::close(m_fd);
  m_fd = ::open(m_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (m_fd < 0) return Fail(ErrorCode::kIo, Errno("opening", m_path));
  m_log_records = m_entries;
  return base::Ok();
}

base::Status NonceStore::Append(const Entry& entry) {
  if (m_fd < 0) return Fail(ErrorCode::kIo, m_path + " is not open (an earlier compaction failed)");
  std::string record;
  entry.AppendTo(record);
  GPUNET_TRY(base::WriteAll(m_fd, record, m_path));
  if (::fdatasync(m_fd) != 0) return Fail(ErrorCode::kIo, Errno("syncing", m_path));
  ++m_log_records;
  return base::Ok();
}

void NonceStore::Insert(const Entry& entry) {
  if (entry.kind == kKindRevocation) {
    auto [it, fresh] = m_revoked.try_emplace({entry.signer, entry.id}, entry.expires_ms);
    if (fresh) {
      ++m_entries;
      ++m_revocations_per_tenant[entry.signer];
    }
    it->second = std::max(it->second, entry.expires_ms);
    return;
  }
  KeyNonces& k = m_keys[entry.signer];
  if (k.by_nonce.try_emplace(entry.id, entry.expires_ms).second) {
    k.by_expiry.emplace(entry.expires_ms, entry.id);
    ++m_entries;
  }
}

void NonceStore::PurgeKey(const crypto::PublicKey& signer, uint64_t now_ms) {
  auto it = m_keys.find(signer);
  if (it == m_keys.end()) return;
  KeyNonces& k = it->second;
  while (!k.by_expiry.empty() && k.by_expiry.begin()->first <= now_ms) {
    GPUNET_CHECK(k.by_nonce.erase(k.by_expiry.begin()->second) == 1);
    k.by_expiry.erase(k.by_expiry.begin());
    --m_entries;
  }
  if (k.by_nonce.empty()) m_keys.erase(it);
}

void NonceStore::PurgeAll(uint64_t now_ms) {
  for (auto it = m_keys.begin(); it != m_keys.end();) {
    const crypto::PublicKey signer = it->first;
    ++it;  // PurgeKey may erase the current element
    PurgeKey(signer, now_ms);
  }
  for (auto it = m_revoked.begin(); it != m_revoked.end();) {
    if (it->second > now_ms) {
      ++it;
      continue;
    }
    auto count = m_revocations_per_tenant.find(it->first.first);
    GPUNET_CHECK(count != m_revocations_per_tenant.end() && count->second > 0);
    if (--count->second == 0) m_revocations_per_tenant.erase(count);
    it = m_revoked.erase(it);
    --m_entries;
  }
}

base::Status NonceStore::MakeRoom(uint64_t now_ms) {
  if (m_log_records > 2 * m_entries + m_options.compact_slack_records) GPUNET_TRY(Compact(now_ms));
  if (m_entries < m_options.entries_max) return base::Ok();
  PurgeAll(now_ms);
  if (m_entries < m_options.entries_max) return base::Ok();
  return Fail(ErrorCode::kUnavailable, "the provider is tracking " + std::to_string(m_entries) +
                                           " recent request nonces, its limit; retry in a minute");
}

base::Status NonceStore::Record(const crypto::PublicKey& signer, const client::RequestNonce& nonce,
                                uint64_t expires_ms, uint64_t now_ms) {
  base::MutexLock lock(m_mu);
  PurgeKey(signer, now_ms);
  auto it = m_keys.find(signer);
  if (it != m_keys.end()) {
    if (it->second.by_nonce.contains(nonce))
      return Fail(ErrorCode::kAlreadyExists,
                  "this request's nonce was already used by this key: a replayed request "
                  "(send each request with a fresh Gpunet-Nonce)");
    if (it->second.by_nonce.size() >= m_options.per_key_max)
      return Fail(ErrorCode::kLimitExceeded,
                  "this key has sent " + std::to_string(it->second.by_nonce.size()) +
                      " requests within the last minute, its limit; slow down and retry");
  }
  if (expires_ms <= now_ms) return base::Ok();  // already outside the window: nothing to keep
  GPUNET_TRY(MakeRoom(now_ms));
  const Entry entry{kKindNonce, signer, nonce, expires_ms};
  GPUNET_TRY(Append(entry));
  Insert(entry);
  return base::Ok();
}

base::Status NonceStore::RecordRevocation(const crypto::PublicKey& tenant,
                                          const client::GrantId& grant_id, uint64_t expires_ms,
                                          uint64_t now_ms) {
  base::MutexLock lock(m_mu);
  if (expires_ms <= now_ms) return base::Ok();
  auto count = m_revocations_per_tenant.find(tenant);
  if (!m_revoked.contains({tenant, grant_id}) && count != m_revocations_per_tenant.end() &&
      count->second >= m_options.per_key_max) {
    PurgeAll(now_ms);
    count = m_revocations_per_tenant.find(tenant);
    if (count != m_revocations_per_tenant.end() && count->second >= m_options.per_key_max)
      return Fail(ErrorCode::kLimitExceeded, "this tenant has revoked " +
                                                 std::to_string(count->second) +
                                                 " grants that have not expired yet, its limit");
  }
  GPUNET_TRY(MakeRoom(now_ms));
  const Entry entry{kKindRevocation, tenant, grant_id, expires_ms};
  GPUNET_TRY(Append(entry));
  Insert(entry);
  return base::Ok();
}

bool NonceStore::IsRevoked(const crypto::PublicKey& tenant, const client::GrantId& grant_id,
                           uint64_t now_ms) {
  base::MutexLock lock(m_mu);
  auto it = m_revoked.find({tenant, grant_id});
  return it != m_revoked.end() && it->second > now_ms;
}

size_t NonceStore::Entries() {
  base::MutexLock lock(m_mu);
  return m_entries;
}

size_t NonceStore::LogRecords() {
  base::MutexLock lock(m_mu);
  return m_log_records;
}

}  // namespace gpunet::provider
