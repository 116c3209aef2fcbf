#include "client/tenant_transfer.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "base/bytes.h"
#include "base/check.h"
#include "client/json_fields.h"

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;
namespace fs = std::filesystem;

namespace {

bool Unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string Printable(std::string_view text, size_t bytes_max) {
  std::string out;
  for (char c : text.substr(0, bytes_max)) {
    if (c == '\n' || c == '\r') break;
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

}  // namespace

base::Status CheckTenantPath(std::string_view path) {
  const std::string shown = "path \"" + Printable(path, 200) + "\"";
  if (path.empty()) return Fail(ErrorCode::kInvalidArgument, "the path is empty");
  if (path.size() > kTenantPathBytesMax)
    return Fail(ErrorCode::kInvalidArgument,
                shown + " is longer than " + std::to_string(kTenantPathBytesMax) + " bytes");
  if (path.front() == '/')
    return Fail(ErrorCode::kPermissionDenied, shown + " is absolute; give a relative one");
  size_t depth = 0;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, slash - start);
    if (part.empty())
      return Fail(ErrorCode::kInvalidArgument, shown +
                                                   " has an empty component (\"//\" or a "
                                                   "trailing '/')");
    if (part == "..") return Fail(ErrorCode::kPermissionDenied, shown + " climbs out with \"..\"");
    if (part == ".") return Fail(ErrorCode::kInvalidArgument, shown + " has a \".\" component");
    if (part.size() > 255)
      return Fail(ErrorCode::kInvalidArgument, shown + " has a component over 255 bytes");
    for (unsigned char c : part)
      if (c < 0x20 || c == 0x7f)
        return Fail(ErrorCode::kInvalidArgument, shown + " holds a control byte");
    if (++depth > kTenantPathDepthMax)
      return Fail(ErrorCode::kInvalidArgument,
                  shown + " is deeper than " + std::to_string(kTenantPathDepthMax) + " components");
    start = slash + 1;
  }
  return base::Ok();
}

std::string EncodeTenantPath(std::string_view path) {
  GPUNET_CHECK(CheckTenantPath(path).has_value());
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size() * 3);
  for (unsigned char c : path) {
    if (c == '/' || Unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string UploadTarget(uint64_t lease_id, std::string_view path, std::optional<uint64_t> offset) {
  std::string t = "/leases/" + std::to_string(lease_id) + "/files/" + EncodeTenantPath(path);
  if (offset) t += "?offset=" + std::to_string(*offset);
  return t;
}

std::string LogsTarget(uint64_t lease_id, bool stderr_stream, uint64_t offset, uint64_t max,
                       uint32_t wait_ms) {
  std::string t = "/leases/" + std::to_string(lease_id) +
                  "/logs?stream=" + (stderr_stream ? "stderr" : "stdout") +
                  "&offset=" + std::to_string(offset) + "&max=" + std::to_string(max);
  if (wait_ms > 0) t += "&wait_ms=" + std::to_string(wait_ms);
  return t;
}

std::string EventsTarget(uint64_t lease_id, uint64_t after, uint32_t wait_ms) {
  std::string t = "/leases/" + std::to_string(lease_id) + "/events?after=" + std::to_string(after);
  if (wait_ms > 0) t += "&wait_ms=" + std::to_string(wait_ms);
  return t;
}

std::string OutputsTarget(uint64_t lease_id, std::string_view path, uint64_t offset, uint64_t max) {
  std::string t = "/leases/" + std::to_string(lease_id) + "/outputs";
  if (path.empty()) return t;
  return t + "/" + EncodeTenantPath(path) + "?offset=" + std::to_string(offset) +
         "&max=" + std::to_string(max);
}

std::string OutputPartPath(std::string_view dest, uint64_t lease_id, std::string_view name) {
  return std::string(dest) + "." + std::to_string(lease_id) + "-" + Sha256Hex(name).substr(0, 12) +
         ".part";
}

base::Status CheckOutputPiece(uint64_t offset, uint64_t piece, uint64_t total) {
  if (offset <= total && piece <= total - offset) return base::Ok();
  return Fail(ErrorCode::kCorrupt, "the provider sent more of the output than its " +
                                       std::to_string(total) + " bytes (up to byte " +
                                       std::to_string(offset) + " + " + std::to_string(piece) +
                                       "): nothing more was written");
}

base::Result<uint64_t> UploadResumeOffset(uint64_t local_size,
                                          std::optional<uint64_t> remote_size) {
  if (!remote_size) return uint64_t{0};
  if (*remote_size > local_size)
    return Fail(ErrorCode::kConflict,
                "the provider already holds " + std::to_string(*remote_size) +
                    " bytes under that name, more than the file's " + std::to_string(local_size) +
                    ": another file was uploaded there; upload to another DEST");
  return *remote_size;
}

uint64_t UploadChunkLength(uint64_t size, uint64_t offset, uint64_t chunk_bytes) {
  GPUNET_CHECK(chunk_bytes > 0);
  if (offset >= size) return 0;
  return std::min(chunk_bytes, size - offset);
}

std::string Sha256Hex(std::string_view bytes) {
  base::Hash32 out;
  unsigned int out_len = 0;
  GPUNET_CHECK(
      EVP_Digest(bytes.data(), bytes.size(), out.begin(), &out_len, EVP_sha256(), nullptr) == 1);
  GPUNET_CHECK(out_len == base::Hash32::kSize);
  return base::ToHex(out);
}

namespace {

base::Status AddUploadFile(const fs::path& local, const std::string& remote,
                           std::vector<UploadFile>& out) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(local, ec);
  if (ec) return Fail(ErrorCode::kNotFound, "cannot read " + local.string() + ": " + ec.message());
  if (fs::is_symlink(st))
    return Fail(ErrorCode::kInvalidArgument,
                local.string() +
                    " is a symbolic link: uploads send regular files only; copy "
                    "what it points to into the folder");
  if (!fs::is_regular_file(st))
    return Fail(ErrorCode::kInvalidArgument,
                local.string() + " is not a regular file (a device, socket or pipe)");
  GPUNET_TRY(CheckTenantPath(remote));
  const uint64_t size = fs::file_size(local, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot read " + local.string() + ": " + ec.message());
  out.push_back({local.string(), remote, size});
  return base::Ok();
}

}  // namespace

base::Result<std::vector<UploadFile>> ListUploadFiles(const std::string& src,
                                                      const std::string& dest) {
  std::error_code ec;
  const fs::path root(src);
  const fs::file_status st = fs::symlink_status(root, ec);
  if (ec || !fs::exists(st)) return Fail(ErrorCode::kNotFound, "no file or folder " + src);
  std::string base_name = root.filename().string();
  if (base_name.empty() || base_name == "." || base_name == "..")
    base_name = fs::absolute(root, ec).lexically_normal().parent_path().filename().string();
  std::string prefix = dest.empty() ? base_name : dest;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  std::vector<UploadFile> out;
  if (!fs::is_directory(st)) {
    GPUNET_TRY(AddUploadFile(root, prefix, out));
    return out;
  }
  GPUNET_TRY(CheckTenantPath(prefix));
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) return Fail(ErrorCode::kIo, "cannot list " + src + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Fail(ErrorCode::kIo, "cannot list " + src + ": " + ec.message());
    // A directory is walked (never a link to one: the iterator does not follow them);
    // everything else must be a regular file.
    if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
    const std::string rel = it->path().lexically_relative(root).generic_string();
    GPUNET_TRY(AddUploadFile(it->path(), prefix + "/" + rel, out));
  }
  std::sort(out.begin(), out.end(),
            [](const UploadFile& a, const UploadFile& b) { return a.remote < b.remote; });
  return out;
}

base::Result<std::string> CopyDownloadName(std::string_view src) {
  while (!src.empty() && src.back() == '/') src.remove_suffix(1);
  const size_t slash = src.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? src : src.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return Fail(ErrorCode::kInvalidArgument,
                "\"" + std::string(src) +
                    "\" names no file or folder on the lease: LEASE:PATH, e.g. 7:outputs");
  return std::string(name);
}

namespace {

/// One unpacked entry: a regular file or a folder, its special bits cleared.
base::Status CheckUnpackedEntry(const fs::path& path, const fs::path& shown) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return Fail(ErrorCode::kIo, "cannot read " + shown.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return Fail(ErrorCode::kPermissionDenied,
                "the lease sent " + shown.string() + " as " +
                    (S_ISLNK(st.st_mode)    ? "a symbolic link"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "a device node") +
                    ", not a file or folder: nothing was stored (copy the file it points to, "
                    "or pack it yourself with `gpunet exec`)");
  // The temporary folder is ours (0700): nothing can swap the entry after lstat.
  if ((st.st_mode & (S_ISUID | S_ISGID | S_ISVTX)) != 0 &&
      ::chmod(path.c_str(), st.st_mode & 0777) != 0)
    return Fail(ErrorCode::kIo, "cannot chmod " + shown.string() + ": " + std::strerror(errno));
  return base::Ok();
}

}  // namespace

base::Status CheckUnpackedDownload(const std::string& root) {
  const fs::path top(root);
  const fs::path name = top.filename();
  GPUNET_TRY(CheckUnpackedEntry(top, name));
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(top, ec))) return base::Ok();
  // The iterator never follows a link; each entry is checked before it is descended.
  fs::recursive_directory_iterator it(top, fs::directory_options::none, ec), end;
  if (ec) return Fail(ErrorCode::kIo, "cannot list " + name.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Fail(ErrorCode::kIo, "cannot list " + name.string() + ": " + ec.message());
    GPUNET_TRY(CheckUnpackedEntry(it->path(), name / it->path().lexically_relative(top)));
  }
  return base::Ok();
}

base::Result<uint64_t> ParseSizeAnswer(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  const JsonFields f(j, "the provider's size answer");
  GPUNET_TRY(f.IsObject());
  return f.U64("size");
}

base::Result<std::vector<TenantEvent>> ParseEventsAnswer(std::string_view body, uint64_t after) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  const JsonFields f(j, "GET /leases/{id}/events");
  GPUNET_TRY(f.IsObject());
  GPUNET_TRY_ASSIGN(const nlohmann::json* list, f.Array("events"));
  std::vector<TenantEvent> out;
  uint64_t last = after;
  for (size_t i = 0; i < list->size(); ++i) {
    const JsonFields e = f.Item((*list)[i], "events", i);
    GPUNET_TRY(e.IsObject());
    TenantEvent ev;
    GPUNET_TRY_ASSIGN(ev.seq, e.U64("seq"));
    GPUNET_TRY_ASSIGN(const uint64_t time_ms, e.Number<int64_t>("time_ms"));
    ev.time_ms = static_cast<int64_t>(time_ms);
    GPUNET_TRY_ASSIGN(ev.kind, e.Str("kind"));
    GPUNET_TRY_ASSIGN(ev.message, e.Str("message"));
    if (ev.seq <= last)
      return e.Bad("seq", "is " + std::to_string(ev.seq) + ", not above " + std::to_string(last) +
                              " (events must come in order, each once)");
    last = ev.seq;
    out.push_back(std::move(ev));
  }
  return out;
}

namespace {

/// A name a file system can hold beneath the outputs folder: relative, and no
/// component empty, "." or "..". A provider that lists another one is broken.
bool CouldBeAFileName(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t slash = std::min(name.find('/', start), name.size());
    const std::string_view part = name.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

}  // namespace

base::Result<OutputsAnswer> ParseOutputsAnswer(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  const JsonFields f(j, "GET /leases/{id}/outputs");
  GPUNET_TRY(f.IsObject());
  GPUNET_TRY_ASSIGN(const nlohmann::json* list, f.Array("entries"));
  OutputsAnswer out;
  for (size_t i = 0; i < list->size(); ++i) {
    const JsonFields e = f.Item((*list)[i], "entries", i);
    GPUNET_TRY(e.IsObject());
    OutputEntry entry;
    GPUNET_TRY_ASSIGN(entry.name, e.Str("name"));
    GPUNET_TRY_ASSIGN(entry.type, e.Str("type"));
    GPUNET_TRY_ASSIGN(entry.size, e.U64("size"));
    if (auto ok = CheckTenantPath(entry.name); !ok) {
      if (!CouldBeAFileName(entry.name))
        return e.Bad("name", "is not a safe relative path: " + ok.error().message);
      // A file the workload named oddly: no request can name it, the others still can.
      out.skipped.push_back(ok.error().message);
      continue;
    }
    out.entries.push_back(std::move(entry));
  }
  return out;
}

base::Result<uint64_t> NextOffset(uint64_t offset, uint64_t body_size,
                                  std::optional<std::string_view> header) {
  const uint64_t end = offset + body_size;
  if (!header) return end;
  auto next = ParseDecimalU64(*header);
  // A log rotated under the reader may move the offset forward past what was sent
  // (bytes dropped), never backward, and never into what this answer carried only partly.
  if (!next || *next < end)
    return Fail(ErrorCode::kCorrupt, "the provider's Gpunet-Next-Offset \"" +
                                         Printable(*header, 40) + "\" is not a number at or past " +
                                         std::to_string(end));
  return *next;
}

std::string AnswerMessage(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& e = j["error"];
    if (e.contains("message") && e["message"].is_string())
      return Printable(e["message"].get<std::string>(), 300);
  }
  return Printable(body, 300);
}

bool SubmitTooEarly(int status, std::string_view body) {
  if (status == 503) return true;
  // The provider's engine says "lease N has not started ..." (provider/engine.cpp,
  // SubmitManifest) for a lease it has not seen start; every other 409 is final.
  return status == 409 && AnswerMessage(body).find("has not started") != std::string::npos;
}

}  // namespace gpunet::client
