#include "provider/lease_book.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/file_util.h"
#include "client/manifest.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

namespace {

/// A record holds a manifest (at most kManifestBytesMax) as a JSON string, where each
/// byte may grow to 6 (a control byte is \u00XX), plus the other fields.
constexpr size_t kRecordBytesMax = 6 * client::kManifestBytesMax + 16 * 1024;
constexpr std::string_view kSuffix = ".json";

/// A lease id as WorkloadIdOf and the record files write it: 1-19 digits, no
/// leading zero, so each id has exactly one spelling.
std::optional<uint64_t> ParseLeaseId(std::string_view digits) {
  if (digits.empty() || digits.size() > 19 || digits[0] == '0') return std::nullopt;
  uint64_t id = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  return id;
}

/// The id of "<digits>.json", nullopt for any other name.
std::optional<uint64_t> IdOfFileName(std::string_view name) {
  if (!name.ends_with(kSuffix)) return std::nullopt;
  return ParseLeaseId(name.substr(0, name.size() - kSuffix.size()));
}

base::Result<const Json*> Field(const Json& j, const char* name, Json::value_t type) {
  auto it = j.find(name);
  bool ok = it != j.end() && (it->type() == type ||
                              (type == Json::value_t::number_unsigned && it->is_number_unsigned()));
  if (!ok)
    return Fail(ErrorCode::kCorrupt, std::string("lease record: field \"") + name +
                                         "\" is missing or of the wrong type");
  return &*it;
}

}  // namespace

constexpr std::string_view kWorkloadPrefix = "lease-";

std::string WorkloadIdOf(uint64_t lease_id) {
  return std::string(kWorkloadPrefix) + std::to_string(lease_id);
}

std::optional<uint64_t> LeaseIdOfWorkload(std::string_view workload_id) {
  if (!workload_id.starts_with(kWorkloadPrefix)) return std::nullopt;
  return ParseLeaseId(workload_id.substr(kWorkloadPrefix.size()));
}

std::string EncodeLeaseRecord(const LeaseRecord& r) {
  Json j = {{"lease_id", r.lease_id},
            {"gpu_uuids", r.gpu_uuids},
            {"manifest_hash", base::ToHex(r.manifest_hash)},
            {"started_ms", r.started_ms},
            {"manifest_received", r.manifest_received},
            {"closed_ms", r.closed_ms},
            {"end", r.end},
            {"workload_stopped", r.workload_stopped}};
  if (!r.manifest.empty()) j["manifest"] = r.manifest;
  if (r.stop_grace_ms != 0) j["stop_grace_ms"] = r.stop_grace_ms;
  if (r.funds_stop_ms != 0) j["funds_stop_ms"] = r.funds_stop_ms;
  // Never throws: a string that is not UTF-8 is changed, which Put then refuses.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

base::Result<LeaseRecord> DecodeLeaseRecord(std::string_view text) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Fail(ErrorCode::kCorrupt, "lease record: not a JSON object");
  const bool has_manifest = j.contains("manifest");
  const bool has_grace = j.contains("stop_grace_ms");
  const bool has_funds_stop = j.contains("funds_stop_ms");
  if (j.size() != 8u + has_manifest + has_grace + has_funds_stop)
    return Fail(ErrorCode::kCorrupt,
                "lease record: expected exactly 8 fields (and the optional \"manifest\", "
                "\"stop_grace_ms\", \"funds_stop_ms\")");
  using T = Json::value_t;
  LeaseRecord r;
  const Json* f = nullptr;
  GPUNET_TRY_ASSIGN(f, Field(j, "lease_id", T::number_unsigned));
  r.lease_id = f->get<uint64_t>();
  GPUNET_TRY_ASSIGN(f, Field(j, "gpu_uuids", T::array));
  for (const auto& u : *f) {
    if (!u.is_string())
      return Fail(ErrorCode::kCorrupt, "lease record: gpu_uuids holds a non-string");
    r.gpu_uuids.push_back(u.get<std::string>());
  }
  GPUNET_TRY_ASSIGN(f, Field(j, "manifest_hash", T::string));
  auto hash = base::FixedFromHex<32>(f->get<std::string>());
  if (!hash) return Fail(ErrorCode::kCorrupt, "lease record: manifest_hash is not 64 hex digits");
  r.manifest_hash = *hash;
  GPUNET_TRY_ASSIGN(f, Field(j, "started_ms", T::number_unsigned));
  r.started_ms = f->get<uint64_t>();
  GPUNET_TRY_ASSIGN(f, Field(j, "manifest_received", T::boolean));
  r.manifest_received = f->get<bool>();
  GPUNET_TRY_ASSIGN(f, Field(j, "closed_ms", T::number_unsigned));
  r.closed_ms = f->get<uint64_t>();
  GPUNET_TRY_ASSIGN(f, Field(j, "end", T::string));
  r.end = f->get<std::string>();
  GPUNET_TRY_ASSIGN(f, Field(j, "workload_stopped", T::boolean));
  r.workload_stopped = f->get<bool>();
  if (has_manifest) {
    GPUNET_TRY_ASSIGN(f, Field(j, "manifest", T::string));
    r.manifest = f->get<std::string>();
    if (r.manifest.empty())
      return Fail(ErrorCode::kCorrupt,
                  "lease record: manifest is empty (it is left out when none)");
  }
  if (has_grace) {
    GPUNET_TRY_ASSIGN(f, Field(j, "stop_grace_ms", T::number_unsigned));
    if (f->get<uint64_t>() == 0 || f->get<uint64_t>() > UINT32_MAX)
      return Fail(ErrorCode::kCorrupt, "lease record: stop_grace_ms out of range");
    r.stop_grace_ms = f->get<uint32_t>();
  }
  if (has_funds_stop) {
    GPUNET_TRY_ASSIGN(f, Field(j, "funds_stop_ms", T::number_unsigned));
    r.funds_stop_ms = f->get<uint64_t>();
    if (r.funds_stop_ms == 0)
      return Fail(ErrorCode::kCorrupt, "lease record: funds_stop_ms is 0 (left out when none)");
  }
  if (r.lease_id == 0) return Fail(ErrorCode::kCorrupt, "lease record: lease_id is 0");
  return r;
}

namespace {

constexpr std::string_view kReleasedFile = "released.json";  // not "<digits>.json"
constexpr size_t kReleasedBytesMax = kReleasedLeasesMax * 512;

std::string EncodeReleased(const std::vector<ReleasedLease>& list) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : list)
    j.push_back({{"lease_id", r.lease_id},
                 {"closed_ms", r.closed_ms},
                 {"released_ms", r.released_ms},
                 {"end", r.end}});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

base::Result<std::vector<ReleasedLease>> DecodeReleased(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.size() > kReleasedLeasesMax)
    return Fail(ErrorCode::kCorrupt, "released leases: not an array of at most " +
                                         std::to_string(kReleasedLeasesMax) + " entries");
  std::vector<ReleasedLease> out;
  for (const auto& e : j) {
    if (!e.is_object() || e.size() != 4 || !e.contains("lease_id") ||
        !e["lease_id"].is_number_unsigned() || !e.contains("closed_ms") ||
        !e["closed_ms"].is_number_unsigned() || !e.contains("released_ms") ||
        !e["released_ms"].is_number_unsigned() || !e.contains("end") || !e["end"].is_string())
      return Fail(ErrorCode::kCorrupt,
                  "released leases: an entry is not {lease_id, closed_ms, released_ms, end}");
    out.push_back({e["lease_id"].get<uint64_t>(), e["closed_ms"].get<uint64_t>(),
                   e["released_ms"].get<uint64_t>(), e["end"].get<std::string>()});
  }
  return out;
}

}  // namespace

base::Result<LeaseBook> LeaseBook::Open(const std::string& state_dir,
                                        std::vector<BookProblem>* problems) {
  LeaseBook book;
  book.m_dir = state_dir + "/leases";
  GPUNET_TRY(base::MakeDirectory(state_dir, 0700));
  GPUNET_TRY(base::MakeDirectory(book.m_dir, 0700));
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(book.m_dir.c_str()), ::closedir);
  if (!d) return Fail(ErrorCode::kIo, "cannot read " + book.m_dir + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d.get())) names.emplace_back(e->d_name);
  for (const auto& name : names) {
    auto id = IdOfFileName(name);
    if (!id) continue;
    const std::string path = book.m_dir + "/" + name;
    auto text = base::ReadFileNoFollow(path, kRecordBytesMax);
    base::Result<LeaseRecord> record =
        text ? DecodeLeaseRecord(*text) : base::Result<LeaseRecord>(std::unexpected(text.error()));
    if (record && record->lease_id != *id)
      record =
          Fail(ErrorCode::kCorrupt, "lease record names lease " + std::to_string(record->lease_id) +
                                        ", not " + std::to_string(*id));
    if (!record) {
      // Kept for the operator, out of the way of the next Put of this lease.
      std::string aside = path + ".corrupt";
      if (::rename(path.c_str(), aside.c_str()) != 0)
        return Fail(ErrorCode::kIo, "cannot move the unreadable lease record " + path +
                                        " aside: " + std::strerror(errno));
      if (problems) problems->push_back({aside, record.error().message});
      continue;
    }
    book.m_records.emplace(*id, std::move(*record));
  }
  const std::string released = book.m_dir + "/" + std::string(kReleasedFile);
  auto text = base::ReadFileNoFollow(released, kReleasedBytesMax);
  if (!text && text.error().code != ErrorCode::kNotFound) return std::unexpected(text.error());
  if (text) {
    if (auto list = DecodeReleased(*text)) {
      book.m_released = std::move(*list);
    } else {
      // Only what a late request is told is lost: 404 instead of 410.
      const std::string aside = released + ".corrupt";
      if (::rename(released.c_str(), aside.c_str()) != 0)
        return Fail(ErrorCode::kIo,
                    "cannot move the unreadable " + released + " aside: " + std::strerror(errno));
      if (problems) problems->push_back({aside, list.error().message});
    }
  }
  return book;
}

base::Status LeaseBook::Release(const ReleasedLease& released) {
  GPUNET_CHECK(released.lease_id != 0);
  if (FindReleased(released.lease_id) == nullptr) {
    std::vector<ReleasedLease> next = m_released;
    next.push_back(released);
    if (next.size() > kReleasedLeasesMax)
      next.erase(next.begin(),
                 next.begin() + static_cast<std::ptrdiff_t>(next.size() - kReleasedLeasesMax));
    base::AtomicWriteOptions options;
    options.mode = 0600;
    GPUNET_TRY(base::WriteFileAtomic(m_dir + "/" + std::string(kReleasedFile), EncodeReleased(next),
                                     options));
    m_released = std::move(next);
  }
  GPUNET_CHECK(m_released.size() <= kReleasedLeasesMax);
  return Erase(released.lease_id);
}

const ReleasedLease* LeaseBook::FindReleased(uint64_t lease_id) const {
  for (const auto& r : m_released)
    if (r.lease_id == lease_id) return &r;
  return nullptr;
}

const LeaseRecord* LeaseBook::Find(uint64_t lease_id) const {
  auto it = m_records.find(lease_id);
  return it == m_records.end() ? nullptr : &it->second;
}

std::string LeaseBook::PathOf(uint64_t lease_id) const {
  return m_dir + "/" + std::to_string(lease_id) + std::string(kSuffix);
}

base::Status LeaseBook::Put(const LeaseRecord& record) {
  GPUNET_CHECK(record.lease_id != 0);
  base::AtomicWriteOptions options;
  options.mode = 0600;
  options.before_commit = m_before_commit;
  // Nothing is written that Open would set aside as unreadable (the manifest lost).
  const std::string text = EncodeLeaseRecord(record);
  if (text.size() > kRecordBytesMax)
    return Fail(ErrorCode::kLimitExceeded, "lease record of lease " +
                                               std::to_string(record.lease_id) + " would be " +
                                               std::to_string(text.size()) + " bytes, over " +
                                               std::to_string(kRecordBytesMax));
  if (auto back = DecodeLeaseRecord(text); !back || *back != record)
    return Fail(ErrorCode::kInvalidArgument,
                "lease record of lease " + std::to_string(record.lease_id) +
                    " does not read back as written (a string that is not UTF-8?)");
  GPUNET_TRY(base::WriteFileAtomic(PathOf(record.lease_id), text, options));
  m_records[record.lease_id] = record;
  return {};
}

base::Status LeaseBook::Erase(uint64_t lease_id) {
  const std::string path = PathOf(lease_id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Fail(ErrorCode::kIo, "cannot delete " + path + ": " + std::strerror(errno));
  GPUNET_TRY(base::SyncDirectoryOf(path));
  m_records.erase(lease_id);
  return {};
}

}  // namespace gpunet::provider
