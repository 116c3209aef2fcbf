// The tenant's side of moving bytes through the tenant API (docs/tenant-api.md
// "Endpoints"): the request targets of uploads, logs and outputs, the chunk and
// resume arithmetic of an upload, the files a directory upload sends, and the path
// checks that keep a download inside the folder it was asked into (and a `gpunet cp`
// download to plain files and folders). Pure functions over values and the local file
// system; `gpunet lease ...` (cmd_lease_tenant.cpp) does the requests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace gpunet::client {

/// One upload request's body at most (the broker's frame body, provider/broker_wire.h).
inline constexpr uint64_t kUploadChunkBytes = 8u << 20;
/// A relative path of an upload or output: at most this many bytes and components
/// (the provider's runtime/uploads.h rules, checked here first so nothing is sent).
inline constexpr size_t kTenantPathBytesMax = 1024;
inline constexpr size_t kTenantPathDepthMax = 16;
/// One logs request asks for at most this much (the API's `max` cap).
inline constexpr uint64_t kLogsBytesPerRequest = 1u << 20;
/// A follow's long-poll (the API's cap on wait_ms).
inline constexpr uint32_t kFollowWaitMs = 25'000;

/// kInvalidArgument (kPermissionDenied for ".." or an absolute path) unless `path` is
/// a relative path the provider accepts: components of 1..255 bytes, none "." or
/// "..", no NUL or control byte, no empty component, at most kTenantPathDepthMax
/// components and kTenantPathBytesMax bytes. Used on what is sent (upload names)
/// and on what comes back (output names, before anything is written locally).
[[nodiscard]] base::Status CheckTenantPath(std::string_view path);

/// `path` (CheckTenantPath-valid) as request-target bytes: each component
/// percent-encoded except A-Z a-z 0-9 - . _ ~, joined by raw '/' (the API refuses
/// an encoded one).
std::string EncodeTenantPath(std::string_view path);

/// "/leases/7/files/data/a.bin?offset=8388608", and without `offset` the resume query.
std::string UploadTarget(uint64_t lease_id, std::string_view path,
                         std::optional<uint64_t> offset = std::nullopt);
/// "/leases/7/logs?stream=stdout&offset=0&max=1048576[&wait_ms=25000]".
std::string LogsTarget(uint64_t lease_id, bool stderr_stream, uint64_t offset, uint64_t max,
                       uint32_t wait_ms);
/// "/leases/7/events?after=3[&wait_ms=25000]".
std::string EventsTarget(uint64_t lease_id, uint64_t after, uint32_t wait_ms);
/// "/leases/7/outputs" (list) or "/leases/7/outputs/a/b.txt?offset=0&max=8388608".
std::string OutputsTarget(uint64_t lease_id, std::string_view path = {}, uint64_t offset = 0,
                          uint64_t max = kUploadChunkBytes);

/// Where an upload of a file `local_size` bytes long starts, given what the provider
/// already holds (nullopt: nothing). kConflict when the provider holds more than
/// the file (another file of that name was uploaded: pick another DEST).
[[nodiscard]] base::Result<uint64_t> UploadResumeOffset(uint64_t local_size,
                                                        std::optional<uint64_t> remote_size);

/// The length of the chunk that starts at `offset` of a `size`-byte file
/// (0 at or past the end).
uint64_t UploadChunkLength(uint64_t size, uint64_t offset,
                           uint64_t chunk_bytes = kUploadChunkBytes);

/// Lower-case hex SHA-256 of `bytes` (the Gpunet-Chunk-Sha256 header).
std::string Sha256Hex(std::string_view bytes);

/// One file of an upload: where it is here and the name it gets on the provider.
struct UploadFile {
  std::string local;
  std::string remote;
  uint64_t size = 0;
};

/// What `gpunet lease upload SRC [DEST]` sends: SRC itself when a regular file (to
/// DEST, default its base name), or every regular file beneath SRC when a directory
/// (to DEST/<relative path>, default SRC's base name), sorted by remote name.
/// Symbolic links, devices and sockets are refused (kInvalidArgument naming them), so
/// an upload sends exactly what is in the folder; every remote name is checked.
[[nodiscard]] base::Result<std::vector<UploadFile>> ListUploadFiles(const std::string& src,
                                                                    const std::string& dest);

/// The name `gpunet cp LEASE:SRC DEST` stores (as the lease's `basename` does):
/// SRC's last component with trailing '/' ignored ("data/" and "data//" are "data").
/// kInvalidArgument when that names no file or folder ("", "/", ".", "..", "x/..").
[[nodiscard]] base::Result<std::string> CopyDownloadName(std::string_view src);

/// Checks what `tar -x` unpacked at `root` (a file or a folder, in a temporary folder
/// of ours) before it is moved into place: the lease's archive is the provider's and
/// the workload's, so anything but regular files and folders (a symbolic link that
/// would turn a later write into one to ~/.bashrc, a device node, a FIFO, a socket)
/// is kPermissionDenied naming it, and every setuid, setgid and sticky bit is cleared.
[[nodiscard]] base::Status CheckUnpackedDownload(const std::string& root);

/// An answer with {"size": N} (GET /leases/{id}/files/{path}, and an upload chunk's).
[[nodiscard]] base::Result<uint64_t> ParseSizeAnswer(std::string_view body);

/// One lifecycle event (GET /leases/{id}/events).
struct TenantEvent {
  uint64_t seq = 0;
  int64_t time_ms = 0;
  std::string kind;
  std::string message;
};

/// Parses {"events":[{"seq","time_ms","kind","message"}]}: seqs must be above
/// `after` and increasing (a follow then never repeats or skips back); kCorrupt otherwise.
[[nodiscard]] base::Result<std::vector<TenantEvent>> ParseEventsAnswer(std::string_view body,
                                                                       uint64_t after);

/// One entry of GET /leases/{id}/outputs.
struct OutputEntry {
  std::string name;  ///< relative to the outputs directory (CheckTenantPath-valid)
  std::string type;  ///< "file", "dir", ...
  uint64_t size = 0;
};
/// GET /leases/{id}/outputs as the client can use it.
struct OutputsAnswer {
  std::vector<OutputEntry> entries;  ///< each name CheckTenantPath-valid
  /// One printable line per entry left out: a name the workload made that no request
  /// can name (over kTenantPathBytesMax, a control byte, deeper than kTenantPathDepthMax).
  std::vector<std::string> skipped;
};
/// Parses {"entries":[{"name","type","size"}]}; an entry whose name would escape the
/// destination or that no file system holds (absolute, "..", ".", an empty component)
/// is kCorrupt (a provider cannot make the client write outside DEST); an entry whose
/// name is merely odd is skipped, so one odd file does not hide the others.
[[nodiscard]] base::Result<OutputsAnswer> ParseOutputsAnswer(std::string_view body);

/// The part file a download of output `name` of lease `lease_id` to `dest` grows in
/// and resumes from: "<dest>.<lease>-<12 hex of SHA-256(name)>.part", so a part that
/// another lease's or another output's download left at that DEST is never taken as
/// this one's start.
std::string OutputPartPath(std::string_view dest, uint64_t lease_id, std::string_view name);

/// kCorrupt unless `piece` bytes at `offset` stay within `total`, the output's size
/// as its listing gave it (or the provider's first answer): a provider cannot make a
/// download write more than the size it announced.
[[nodiscard]] base::Status CheckOutputPiece(uint64_t offset, uint64_t piece, uint64_t total);

/// Where a logs or outputs read continues: the answer's Gpunet-Next-Offset when it
/// sent one, else offset + body size. The header may skip forward (a log rotated
/// under the reader dropped bytes) but never back into what was read: kCorrupt.
[[nodiscard]] base::Result<uint64_t> NextOffset(uint64_t offset, uint64_t body_size,
                                                std::optional<std::string_view> header);

/// Whether the answer to a manifest submission (POST /leases/{id}/manifest) means
/// only that the provider has not seen the lease start yet: its view of the ledger
/// trails the ledger by up to one reconcile, so right after `lease show` says
/// started it may answer 409 with a message that the lease "has not started", or
/// 503 while its node has not seen the block. `gpunet lease submit` waits and sends
/// the manifest again; any other answer is final.
bool SubmitTooEarly(int status, std::string_view body);

/// A secret-free error line out of an answer's {"error":{"code","message"}} body, or
/// the body's first line when it is not that (cut to 300 printable bytes).
std::string AnswerMessage(std::string_view body);

}  // namespace gpunet::client
