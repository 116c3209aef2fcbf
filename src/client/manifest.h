// The workload manifest (docs/manifest.md): what a tenant asks a provider to run on
// a lease — the environment, the command, its variables, the names of its secrets,
// the network, the limits and where outputs go.
//
// It travels as JSON; YAML stays on the client. The ledger carries only
// ManifestHash: BLAKE2b-256 of the manifest's canonical JSON (sorted keys, no
// whitespace, every field written, one encoding of each value). The provider takes
// a submitted manifest only when its bytes ARE that canonical form and hash to the
// lease's manifest_hash (VerifySubmittedManifest), so what the tenant paid for and
// what runs are the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::client {

// Limits (docs/manifest.md "Limits"). Each is checked with an error that names the
// field; a change is a change of the tenant API.
inline constexpr uint32_t kManifestVersion = 1;
inline constexpr size_t kManifestBytesMax = 64 * 1024;  ///< the JSON, and a YAML file
inline constexpr size_t kManifestDepthMax = 4;          ///< objects and arrays nested
inline constexpr size_t kManifestArgsMax = 256;
inline constexpr size_t kManifestArgBytesMax = 4096;
inline constexpr size_t kManifestEnvMax = 128;
inline constexpr size_t kManifestNameBytesMax = 128;  ///< a variable's or a secret's name
inline constexpr size_t kManifestEnvValueBytesMax = 4096;
inline constexpr size_t kManifestSecretsMax = 32;
inline constexpr size_t kManifestPortsMax = 16;
inline constexpr size_t kManifestEnvironmentBytesMax = 255;
inline constexpr size_t kManifestPathBytesMax = 256;  ///< workdir, outputs_dir
inline constexpr uint32_t kManifestStopGraceMsMax = 300'000;
// Smallest limits a manifest may ask (the runtime refuses less: runtime.cpp ValidateSpec).
inline constexpr uint32_t kManifestMemoryMibMin = 16;
inline constexpr uint32_t kManifestCpuMillisMin = 10;
inline constexpr uint32_t kManifestDiskMibMin = 8;
inline constexpr uint32_t kManifestShmMibMin = 1;

// Defaults written into the canonical form (so a later default never changes what a
// hash on the ledger means).
inline constexpr std::string_view kManifestDefaultWorkdir = "/work";
inline constexpr std::string_view kManifestDefaultOutputsDir = "/outputs";
inline constexpr uint32_t kManifestDefaultStopGraceMs = 10'000;
/// The environment name of the sandbox's host environment (bubblewrap over the host's
/// read-only root); any other name is a podman image the provider has loaded.
inline constexpr std::string_view kHostEnvironment = "host";

enum class ManifestNetwork : uint8_t {
  kNone,    ///< "none": loopback only
  kEgress,  ///< "egress": outbound only (host and private ranges blocked)
  kPorts,   ///< "ports": the listed ports reachable through the provider's forwarder
};
std::string_view ManifestNetworkName(ManifestNetwork network);

/// Limits the manifest asks for. Absent = the lease's machine share (memory, cpu,
/// disk) or 64 MiB (shm); present = at most that share (provider/workload_plan.h).
struct ManifestResources {
  std::optional<uint32_t> memory_mib;
  std::optional<uint32_t> cpu_millis;  ///< thousandths of a core
  std::optional<uint32_t> disk_mib;    ///< /work and /outputs together
  std::optional<uint32_t> shm_mib;     ///< /dev/shm, counted in the memory limit
  bool operator==(const ManifestResources&) const = default;
};

struct Manifest {
  uint32_t version = kManifestVersion;
  std::string environment;           ///< "host" or an image name from GET /environments
  std::vector<std::string> command;  ///< argv; empty = interactive (issue 18)
  std::string workdir = std::string(kManifestDefaultWorkdir);
  std::map<std::string, std::string> env;
  std::vector<std::string> secrets;  ///< NAMES only; values travel in their own request
  ManifestNetwork network = ManifestNetwork::kNone;
  std::vector<uint16_t> ports;  ///< with kPorts (and only then): ports listened on inside
  ManifestResources resources;
  std::string outputs_dir = std::string(kManifestDefaultOutputsDir);
  uint32_t stop_grace_ms = kManifestDefaultStopGraceMs;  ///< SIGTERM, then SIGKILL after this
  bool operator==(const Manifest&) const = default;
};

/// Parses manifest JSON strictly: at most kManifestBytesMax bytes, nesting checked
/// while parsing (before any tree deeper than kManifestDepthMax exists), unknown or
/// repeated keys refused, numbers whole, non-negative and in range, every limit
/// checked. Error messages are printable ASCII (input bytes quoted as \xNN).
/// Whitespace and key order are free here (a hand-written file); the
/// provider wants the canonical form (ParseCanonicalManifest). Errors name the field
/// ("env.HF_HOME: ..."): kLimitExceeded over a limit, kInvalidArgument otherwise.
[[nodiscard]] base::Result<Manifest> ParseManifestJson(std::string_view json);

/// Checks a Manifest built in code against the same rules, its canonical JSON within
/// kManifestBytesMax included (ParseManifestJson's result always passes).
[[nodiscard]] base::Status ValidateManifest(const Manifest& manifest);

/// The canonical JSON of a valid manifest (one ValidateManifest refuses is a bug of
/// the caller, asserted): keys sorted bytewise, no whitespace,
/// every field present (resources only those asked), strings as UTF-8 with only
/// '"', '\\' and control characters escaped (\b \f \n \r \t, else \u00xx), integers
/// in plain decimal. The same bytes as RFC 8785 (JCS) and as Python's
/// json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).
std::string CanonicalManifestJson(const Manifest& manifest);

/// BLAKE2b-256 of CanonicalManifestJson(manifest): the lease's manifest_hash (a valid
/// manifest only, as there).
base::Hash32 ManifestHash(const Manifest& manifest);

/// ParseManifestJson, then kNonCanonical unless `json` is exactly the canonical form
/// of what it parsed to.
[[nodiscard]] base::Result<Manifest> ParseCanonicalManifest(std::string_view json);

/// What the provider does with submitted bytes: ParseCanonicalManifest, then kCorrupt
/// unless BLAKE2b-256(json) equals `lease_manifest_hash` (the lease's on the ledger).
[[nodiscard]] base::Result<Manifest> VerifySubmittedManifest(
    std::string_view json, const base::Hash32& lease_manifest_hash);

/// A manifest file as the client sends it.
struct LoadedManifest {
  Manifest manifest;
  std::string canonical;  ///< the bytes to submit to the provider
  base::Hash32 hash{};    ///< the hash to put on the ledger
  std::string path;
};

/// Parses manifest text: JSON when its first non-blank byte is '{', YAML otherwise
/// (the same fields; a YAML scalar that is all digits may fill a text field, e.g.
/// OMP_NUM_THREADS: 4). `file` names it in errors.
[[nodiscard]] base::Result<LoadedManifest> ParseManifestText(std::string_view text,
                                                             std::string_view file);

/// Reads a YAML or JSON manifest file (at most kManifestBytesMax bytes) and gives the
/// manifest, its canonical bytes and their hash. kNotFound / kIo when unreadable.
[[nodiscard]] base::Result<LoadedManifest> LoadManifestFile(const std::string& path);

}  // namespace gpunet::client
