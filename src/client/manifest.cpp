#include "client/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "crypto/hash.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

// A YAML file converted to JSON may hold no more values than this, nor more text:
// aliases could otherwise expand 64 KiB into gigabytes. A manifest at every list's
// limit holds about 450 values.
constexpr size_t kYamlValuesMax = 2048;
constexpr size_t kYamlTextBytesMax = 2 * kManifestBytesMax;

std::string FieldPath(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string ItemPath(const std::string& parent, size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

/// Text for an error message: printable ASCII as it is, anything else as \xNN, cut
/// at 64 bytes (the refused input may be hostile).
std::string Shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x20 && u < 0x7f && u != '"' && u != '\\') {
      out += static_cast<char>(u);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  if (s.size() > 64) out += "...";
  return "\"" + out + "\"";
}

/// `s` with every byte outside printable ASCII as \xNN: for the parsers' own messages,
/// which quote the input they stopped at (an error may travel as JSON to a tenant,
/// and invalid UTF-8 cannot).
std::string PrintableAscii(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

/// A key in a field path: as it is when it is a plain name, else quoted and escaped.
std::string KeyShown(std::string_view key) {
  bool plain = !key.empty() && key.size() <= 64 && std::ranges::all_of(key, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
  return plain ? std::string(key) : Shown(key);
}

// ---------------------------------------------------------------------------------
// Strict JSON: a SAX handler that builds the tree itself, so that depth, repeated
// keys and number forms are judged while parsing.

class StrictJsonBuilder final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return Add(Json(nullptr)); }
  bool boolean(bool value) override { return Add(Json(value)); }
  bool number_integer(number_integer_t value) override {
    return Refuse(ErrorCode::kInvalidArgument,
                  "must be a whole number of at least 0, got " + std::to_string(value));
  }
  bool number_unsigned(number_unsigned_t value) override { return Add(Json(value)); }
  bool number_float(number_float_t, const string_t& text) override {
    return Refuse(ErrorCode::kInvalidArgument,
                  "must be a whole number (no fraction, exponent or sign), got " + Shown(text));
  }
  bool string(string_t& value) override { return Add(Json(std::move(value))); }
  bool binary(binary_t&) override {
    return Refuse(ErrorCode::kInvalidArgument, "binary values are not JSON");
  }
  bool start_object(std::size_t) override { return Open(Json::object()); }
  bool key(string_t& key) override {
    GPUNET_CHECK(!m_frames.empty() && m_frames.back().value->is_object());
    if (m_frames.back().value->contains(key)) {
      m_pending_key = key;
      return Refuse(ErrorCode::kInvalidArgument, "is given twice; give each field once");
    }
    m_pending_key = std::move(key);
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(Json::array()); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    if (m_error.empty()) {
      // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1,
      // column 2: syntax error while parsing value - ..."; keep it from "parse error".
      std::string what = e.what();
      auto at = what.find("parse error");
      m_error = "not valid JSON at byte " + std::to_string(position) + ": " +
                PrintableAscii(at == std::string::npos ? what : what.substr(at));
      m_code = ErrorCode::kInvalidArgument;
    }
    return false;
  }

  const std::string& Error() const { return m_error; }
  ErrorCode Code() const { return m_code; }
  Json TakeRoot() { return std::move(m_root); }

 private:
  struct Frame {
    Json* value;
    std::string path;
  };

  /// Where the next value goes, as a field path ("env.X", "command[2]").
  std::string NextPath() const {
    if (m_frames.empty()) return "manifest";
    const Frame& top = m_frames.back();
    if (top.value->is_array()) return ItemPath(top.path, top.value->size());
    return FieldPath(top.path, KeyShown(m_pending_key));
  }

  bool Refuse(ErrorCode code, const std::string& message) {
    if (m_error.empty()) {
      m_error = NextPath() + ": " + message;
      m_code = code;
    }
    return false;
  }

  /// Puts `value` in its parent and returns where it now lives.
  Json* Place(Json value) {
    if (m_frames.empty()) {
      m_root = std::move(value);
      return &m_root;
    }
    Json& parent = *m_frames.back().value;
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    GPUNET_CHECK(parent.is_object());
    return &(parent[m_pending_key] = std::move(value));
  }

  bool Add(Json value) {
    Place(std::move(value));
    return true;
  }

  bool Open(Json container) {
    if (m_frames.size() + 1 > kManifestDepthMax)
      return Refuse(ErrorCode::kLimitExceeded,
                    "nested deeper than " + std::to_string(kManifestDepthMax) + " levels");
    std::string path = m_frames.empty() ? std::string() : NextPath();
    Json* placed = Place(std::move(container));
    m_frames.push_back({placed, std::move(path)});
    return true;
  }

  bool Close() {
    GPUNET_CHECK(!m_frames.empty());
    m_frames.pop_back();
    return true;
  }

  Json m_root;
  std::vector<Frame> m_frames;
  std::string m_pending_key;
  std::string m_error;
  ErrorCode m_code = ErrorCode::kInvalidArgument;
};

base::Result<Json> ParseStrictJson(std::string_view text) {
  if (text.size() > kManifestBytesMax)
    return Fail(ErrorCode::kLimitExceeded, "manifest: " + std::to_string(text.size()) +
                                               " bytes; at most " +
                                               std::to_string(kManifestBytesMax) + " are taken");
  StrictJsonBuilder builder;
  bool ok = Json::sax_parse(text.begin(), text.end(), &builder, Json::input_format_t::json,
                            /*strict=*/true, /*ignore_comments=*/false);
  if (!ok) {
    GPUNET_CHECK(!builder.Error().empty());
    return Fail(builder.Code(), builder.Error());
  }
  return builder.TakeRoot();
}

// ---------------------------------------------------------------------------------
// The schema: from a JSON tree to a Manifest, each refusal naming its field.

/// How scalars are read: from JSON exactly; from YAML a text field also takes a
/// plain all-digits scalar (converted to a number) as its digits.
enum class Origin { kJson, kYaml };

std::unexpected<base::Error> Bad(const std::string& path, const std::string& message) {
  return Fail(ErrorCode::kInvalidArgument, path + ": " + message);
}

std::unexpected<base::Error> Over(const std::string& path, const std::string& message) {
  return Fail(ErrorCode::kLimitExceeded, path + ": " + message);
}

base::Result<std::string> ReadText(const Json& v, const std::string& path, Origin origin) {
  if (v.is_string()) return v.get<std::string>();
  if (origin == Origin::kYaml && v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  return Bad(path, "must be text (a JSON string)");
}

base::Result<uint64_t> ReadWhole(const Json& v, const std::string& path, uint64_t min, uint64_t max,
                                 std::string_view unit) {
  if (!v.is_number_unsigned())
    return Bad(path, "must be a whole number of " + std::string(unit) + ", e.g. " +
                         std::to_string(std::max<uint64_t>(min, 1)));
  uint64_t n = v.get<uint64_t>();
  if (n < min || n > max)
    return Bad(path, std::to_string(n) + " is outside " + std::to_string(min) + ".." +
                         std::to_string(max) + " " + std::string(unit));
  return n;
}

/// The keys of `object` are among `allowed` (the object is known to be one).
base::Status CheckKeys(const Json& object, const std::string& path,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    if (std::ranges::find(allowed, std::string_view(key)) != allowed.end()) continue;
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return Bad(FieldPath(path, KeyShown(key)), "unknown field; the fields are: " + list);
  }
  return base::Ok();
}

bool IsNameChar(char c, bool first) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

/// Variable and secret names: [A-Za-z_][A-Za-z0-9_]*, not one the runtime sets.
base::Status CheckVariableName(const std::string& name, const std::string& path) {
  if (name.empty() || name.size() > kManifestNameBytesMax)
    return Bad(path, "a name of 1.." + std::to_string(kManifestNameBytesMax) +
                         " characters is needed, got " + std::to_string(name.size()));
  for (size_t i = 0; i < name.size(); ++i)
    if (!IsNameChar(name[i], i == 0))
      return Bad(path, Shown(name) + " is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
  if (name.starts_with("GPUNET_") || name == "CUDA_VISIBLE_DEVICES" ||
      name == "NVIDIA_VISIBLE_DEVICES" || name == "MASTER_ADDR" || name == "MASTER_PORT")
    return Bad(path, name + " is set by the provider's runtime (docs/manifest.md); remove it");
  return base::Ok();
}

/// "host", or an image reference: [A-Za-z0-9] then [A-Za-z0-9._/:@-], never an option.
base::Status CheckEnvironmentName(const std::string& name) {
  const std::string path = "environment";
  if (name.empty() || name.size() > kManifestEnvironmentBytesMax)
    return Bad(path, "give \"host\" or an image name from the provider's GET /environments (1.." +
                         std::to_string(kManifestEnvironmentBytesMax) + " characters)");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool ok = alnum || (i > 0 && std::string_view("._/:@-").find(c) != std::string_view::npos);
    if (!ok)
      return Bad(path, Shown(name) +
                           " is not an environment name: a letter or digit, then letters, "
                           "digits and ._/:@-");
  }
  return base::Ok();
}

/// An absolute, normal path inside the workload: /a/b, of [A-Za-z0-9._@+-] parts,
/// no empty, "." or ".." part.
base::Status CheckInsidePath(const std::string& p, const std::string& path) {
  if (p.empty() || p[0] != '/' || p.size() > kManifestPathBytesMax)
    return Bad(path, "must be an absolute path inside the workload of at most " +
                         std::to_string(kManifestPathBytesMax) + " bytes, got " + Shown(p));
  if (p == "/") return Bad(path, "must not be / itself");
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string_view part(p.data() + start, end - start);
    if (part.empty() || part == "." || part == "..")
      return Bad(path, Shown(p) + " has an empty, \".\" or \"..\" part; write it plainly");
    for (char c : part) {
      bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                std::string_view("._@+-").find(c) != std::string_view::npos;
      if (!ok)
        return Bad(path, Shown(p) + " holds a character other than letters, digits and ._@+-/");
    }
    start = end + 1;
  }
  return base::Ok();
}

/// Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
/// U+10FFFF), as the JSON parser on the provider's side demands. YAML text is not
/// checked by yaml-cpp, and canonical bytes must parse again.
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    uint32_t cp = 0, min = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xe0) == 0xc0) {
      extra = 1, cp = b & 0x1f, min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
      extra = 2, cp = b & 0x0f, min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
      extra = 3, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (extra >= s.size() - i) return false;  // the sequence is cut short
    for (size_t k = 1; k <= extra; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

bool HasControlOtherThanTab(std::string_view s) {
  return std::ranges::any_of(s, [](char c) {
    auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u == 0x7f;
  });
}

base::Status CheckCommand(const std::vector<std::string>& command) {
  if (command.size() > kManifestArgsMax)
    return Over("command", std::to_string(command.size()) + " arguments; at most " +
                               std::to_string(kManifestArgsMax));
  for (size_t i = 0; i < command.size(); ++i) {
    const std::string& a = command[i];
    std::string path = ItemPath("command", i);
    if (a.size() > kManifestArgBytesMax)
      return Over(path, std::to_string(a.size()) + " bytes; at most " +
                            std::to_string(kManifestArgBytesMax) + " (put long input in a file)");
    if (a.find('\0') != std::string::npos)
      return Bad(path, "holds NUL, which would cut the argument short: remove it");
    if (!IsUtf8(a)) return Bad(path, "is not UTF-8 text");
  }
  if (!command.empty() && command[0].empty())
    return Bad("command[0]", "the program to run is empty");
  return base::Ok();
}

base::Status CheckEnv(const std::map<std::string, std::string>& env) {
  if (env.size() > kManifestEnvMax)
    return Over("env", std::to_string(env.size()) + " variables; at most " +
                           std::to_string(kManifestEnvMax));
  for (const auto& [name, value] : env) {
    std::string path = FieldPath("env", KeyShown(name));
    GPUNET_TRY(CheckVariableName(name, path));
    if (value.size() > kManifestEnvValueBytesMax)
      return Over(path, std::to_string(value.size()) + " bytes; at most " +
                            std::to_string(kManifestEnvValueBytesMax));
    if (!IsUtf8(value)) return Bad(path, "is not UTF-8 text");
    if (HasControlOtherThanTab(value))
      return Bad(path,
                 "holds a line break or another control character; variables are one "
                 "line of text (put more in a file)");
  }
  return base::Ok();
}

base::Status CheckSecrets(const Manifest& m) {
  if (m.secrets.size() > kManifestSecretsMax)
    return Over("secrets", std::to_string(m.secrets.size()) + " names; at most " +
                               std::to_string(kManifestSecretsMax));
  std::set<std::string_view> seen;
  for (size_t i = 0; i < m.secrets.size(); ++i) {
    const std::string& name = m.secrets[i];
    std::string path = ItemPath("secrets", i);
    GPUNET_TRY(CheckVariableName(name, path));
    if (!seen.insert(name).second) return Bad(path, name + " is listed twice");
    if (m.env.contains(name))
      return Bad(path, name +
                           " is also in env; a secret's value is set by its own request, "
                           "never in the manifest");
  }
  return base::Ok();
}

base::Status CheckNetwork(const Manifest& m) {
  if (m.network != ManifestNetwork::kPorts && !m.ports.empty())
    return Bad("ports", "ports are only for network \"ports\"; remove them or set it");
  if (m.network == ManifestNetwork::kPorts && m.ports.empty())
    return Bad("ports", "network \"ports\" needs at least one port, e.g. [8888]");
  if (m.ports.size() > kManifestPortsMax)
    return Over("ports", std::to_string(m.ports.size()) + " ports; at most " +
                             std::to_string(kManifestPortsMax));
  std::set<uint16_t> seen;
  for (size_t i = 0; i < m.ports.size(); ++i) {
    if (m.ports[i] == 0) return Bad(ItemPath("ports", i), "0 is not a port; give 1..65535");
    if (!seen.insert(m.ports[i]).second)
      return Bad(ItemPath("ports", i), std::to_string(m.ports[i]) + " is listed twice");
  }
  return base::Ok();
}

base::Status CheckResources(const ManifestResources& r) {
  auto at_least = [](const std::optional<uint32_t>& v, uint32_t min, const char* field,
                     const char* unit) -> base::Status {
    if (v && *v < min)
      return Bad(std::string("resources.") + field, std::to_string(*v) + " " + unit +
                                                        " is under the least the runtime "
                                                        "runs with, " +
                                                        std::to_string(min) + " " + unit);
    return base::Ok();
  };
  GPUNET_TRY(at_least(r.memory_mib, kManifestMemoryMibMin, "memory_mib", "MiB"));
  GPUNET_TRY(at_least(r.cpu_millis, kManifestCpuMillisMin, "cpu_millis", "thousandths of a core"));
  GPUNET_TRY(at_least(r.disk_mib, kManifestDiskMibMin, "disk_mib", "MiB"));
  GPUNET_TRY(at_least(r.shm_mib, kManifestShmMibMin, "shm_mib", "MiB"));
  if (r.shm_mib && r.memory_mib && *r.shm_mib > *r.memory_mib)
    return Bad("resources.shm_mib",
               "/dev/shm counts in the memory limit: " + std::to_string(*r.shm_mib) +
                   " MiB is over memory_mib " + std::to_string(*r.memory_mib));
  return base::Ok();
}

// Decoders of each field of the JSON tree.

base::Result<std::vector<std::string>> DecodeTextList(const Json& v, const std::string& path,
                                                      Origin origin, size_t max) {
  if (!v.is_array()) return Bad(path, "must be a list of text, e.g. [\"a\", \"b\"]");
  if (v.size() > max)
    return Over(path, std::to_string(v.size()) + " entries; at most " + std::to_string(max));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    GPUNET_TRY_ASSIGN(auto text, ReadText(v[i], ItemPath(path, i), origin));
    out.push_back(std::move(text));
  }
  return out;
}

base::Status DecodeEnv(const Json& v, Origin origin, Manifest& m) {
  if (!v.is_object()) return Bad("env", "must be a mapping of NAME: value");
  if (v.size() > kManifestEnvMax)
    return Over(
        "env", std::to_string(v.size()) + " variables; at most " + std::to_string(kManifestEnvMax));
  for (const auto& item : v.items()) {
    GPUNET_TRY(CheckVariableName(item.key(), FieldPath("env", KeyShown(item.key()))));
    GPUNET_TRY_ASSIGN(auto value,
                      ReadText(item.value(), FieldPath("env", KeyShown(item.key())), origin));
    m.env[item.key()] = std::move(value);
  }
  return base::Ok();
}

base::Status DecodeNetwork(const Json& v, Origin origin, Manifest& m) {
  GPUNET_TRY_ASSIGN(auto name, ReadText(v, "network", origin));
  if (name == "none") {
    m.network = ManifestNetwork::kNone;
  } else if (name == "egress") {
    m.network = ManifestNetwork::kEgress;
  } else if (name == "ports") {
    m.network = ManifestNetwork::kPorts;
  } else {
    return Bad("network", Shown(name) + " is not a network mode: none, egress or ports");
  }
  return base::Ok();
}

base::Status DecodePorts(const Json& v, Manifest& m) {
  if (!v.is_array()) return Bad("ports", "must be a list of port numbers, e.g. [8888]");
  if (v.size() > kManifestPortsMax)
    return Over("ports",
                std::to_string(v.size()) + " ports; at most " + std::to_string(kManifestPortsMax));
  for (size_t i = 0; i < v.size(); ++i) {
    GPUNET_TRY_ASSIGN(auto port, ReadWhole(v[i], ItemPath("ports", i), 1, 65535, "(a port)"));
    m.ports.push_back(static_cast<uint16_t>(port));
  }
  return base::Ok();
}

base::Status DecodeResources(const Json& v, ManifestResources& r) {
  if (!v.is_object())
    return Bad("resources", "must be a mapping, e.g. {memory_mib: 8192, cpu_millis: 4000}");
  GPUNET_TRY(CheckKeys(v, "resources", {"memory_mib", "cpu_millis", "disk_mib", "shm_mib"}));
  constexpr uint64_t kMax = UINT32_MAX;
  auto read = [&](const char* key, const char* unit) -> base::Result<std::optional<uint32_t>> {
    if (!v.contains(key)) return std::optional<uint32_t>();
    GPUNET_TRY_ASSIGN(auto n, ReadWhole(v.at(key), FieldPath("resources", key), 0, kMax, unit));
    return std::optional<uint32_t>(static_cast<uint32_t>(n));
  };
  GPUNET_TRY_ASSIGN(r.memory_mib, read("memory_mib", "MiB"));
  GPUNET_TRY_ASSIGN(r.cpu_millis, read("cpu_millis", "thousandths of a core"));
  GPUNET_TRY_ASSIGN(r.disk_mib, read("disk_mib", "MiB"));
  GPUNET_TRY_ASSIGN(r.shm_mib, read("shm_mib", "MiB"));
  return base::Ok();
}

base::Result<Manifest> DecodeManifest(const Json& root, Origin origin) {
  if (!root.is_object())
    return Bad("manifest",
               "must be a mapping of fields (docs/manifest.md), e.g. "
               "{\"version\": 1, \"environment\": \"host\", ...}");
  GPUNET_TRY(CheckKeys(root, "",
                       {"version", "environment", "command", "workdir", "env", "secrets", "network",
                        "ports", "resources", "outputs_dir", "stop_grace_ms"}));
  Manifest m;
  if (!root.contains("version"))
    return Bad("version", "missing; this gpunet writes and reads version 1");
  GPUNET_TRY_ASSIGN(auto version, ReadWhole(root.at("version"), "version", 0, UINT32_MAX, ""));
  if (version != kManifestVersion)
    return Bad("version", "version " + std::to_string(version) +
                              " is not known here; this gpunet reads version 1 (upgrade gpunet "
                              "for a newer one)");
  if (!root.contains("environment"))
    return Bad("environment",
               "missing; give \"host\" or an image the provider lists at "
               "GET /environments");
  GPUNET_TRY_ASSIGN(m.environment, ReadText(root.at("environment"), "environment", origin));
  if (root.contains("command")) {
    GPUNET_TRY_ASSIGN(m.command,
                      DecodeTextList(root.at("command"), "command", origin, kManifestArgsMax));
  }
  if (root.contains("workdir")) {
    GPUNET_TRY_ASSIGN(m.workdir, ReadText(root.at("workdir"), "workdir", origin));
  }
  if (root.contains("env")) GPUNET_TRY(DecodeEnv(root.at("env"), origin, m));
  if (root.contains("secrets")) {
    GPUNET_TRY_ASSIGN(m.secrets,
                      DecodeTextList(root.at("secrets"), "secrets", origin, kManifestSecretsMax));
  }
  if (root.contains("network")) GPUNET_TRY(DecodeNetwork(root.at("network"), origin, m));
  if (root.contains("ports")) GPUNET_TRY(DecodePorts(root.at("ports"), m));
  if (root.contains("resources")) GPUNET_TRY(DecodeResources(root.at("resources"), m.resources));
  if (root.contains("outputs_dir")) {
    GPUNET_TRY_ASSIGN(m.outputs_dir, ReadText(root.at("outputs_dir"), "outputs_dir", origin));
  }
  if (root.contains("stop_grace_ms")) {
    GPUNET_TRY_ASSIGN(auto grace, ReadWhole(root.at("stop_grace_ms"), "stop_grace_ms", 0,
                                            kManifestStopGraceMsMax, "ms"));
    m.stop_grace_ms = static_cast<uint32_t>(grace);
  }
  GPUNET_TRY(ValidateManifest(m));
  return m;
}

// ---------------------------------------------------------------------------------
// Canonical JSON.

void WriteString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// Writes an object's members in the order given, which the caller keeps sorted.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : m_out(out) { m_out += '{'; }
  ~ObjectWriter() { m_out += '}'; }
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  std::string& Key(std::string_view key) {
    GPUNET_CHECK(m_last.empty() || m_last < key);  // sorted, each once
    if (!m_last.empty()) m_out += ',';
    m_last = std::string(key);
    WriteString(m_out, key);
    m_out += ':';
    return m_out;
  }
  void Number(std::string_view key, uint64_t n) { Key(key) += std::to_string(n); }
  void Text(std::string_view key, std::string_view s) { WriteString(Key(key), s); }

 private:
  std::string& m_out;
  std::string m_last;
};

template <class T, class Each>
void WriteList(std::string& out, const std::vector<T>& items, Each each) {
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    each(out, items[i]);
  }
  out += ']';
}

void WriteResources(std::string& out, const ManifestResources& r) {
  ObjectWriter o(out);
  if (r.cpu_millis) o.Number("cpu_millis", *r.cpu_millis);
  if (r.disk_mib) o.Number("disk_mib", *r.disk_mib);
  if (r.memory_mib) o.Number("memory_mib", *r.memory_mib);
  if (r.shm_mib) o.Number("shm_mib", *r.shm_mib);
}

/// The canonical bytes (CanonicalManifestJson) of a manifest whose fields are valid.
std::string WriteCanonical(const Manifest& m) {
  std::string out;
  out.reserve(256);
  {
    ObjectWriter o(out);
    WriteList(o.Key("command"), m.command,
              [](std::string& s, const std::string& a) { WriteString(s, a); });
    {
      ObjectWriter env(o.Key("env"));
      for (const auto& [name, value] : m.env) env.Text(name, value);
    }
    o.Text("environment", m.environment);
    o.Text("network", ManifestNetworkName(m.network));
    o.Text("outputs_dir", m.outputs_dir);
    WriteList(o.Key("ports"), m.ports, [](std::string& s, uint16_t p) { s += std::to_string(p); });
    WriteResources(o.Key("resources"), m.resources);
    WriteList(o.Key("secrets"), m.secrets,
              [](std::string& s, const std::string& a) { WriteString(s, a); });
    o.Number("stop_grace_ms", m.stop_grace_ms);
    o.Number("version", m.version);
    o.Text("workdir", m.workdir);
  }
  return out;
}

// ---------------------------------------------------------------------------------
// YAML, converted to a JSON tree with the same limits, then decoded like JSON.

struct YamlBudget {
  size_t values = 0;
  size_t text_bytes = 0;
};

bool IsPlainDigits(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() != "?" || s.empty() || s.size() > 19) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  return std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; });
}

base::Result<Json> YamlToJson(const YAML::Node& node, const std::string& path, size_t depth,
                              YamlBudget& budget) {
  std::string where = path.empty() ? "manifest" : path;
  if (++budget.values > kYamlValuesMax)
    return Over(where,
                "more than " + std::to_string(kYamlValuesMax) + " values (aliases expanding?)");
  if (node.IsNull()) return Json(nullptr);
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    budget.text_bytes += s.size();
    if (budget.text_bytes > kYamlTextBytesMax)
      return Over(where, "more than " + std::to_string(kYamlTextBytesMax) + " bytes of text");
    if (IsPlainDigits(node)) return Json(std::stoull(s));
    return Json(s);
  }
  if (depth + 1 > kManifestDepthMax)
    return Over(where, "nested deeper than " + std::to_string(kManifestDepthMax) + " levels");
  if (node.IsSequence()) {
    Json out = Json::array();
    for (size_t i = 0; i < node.size(); ++i) {
      GPUNET_TRY_ASSIGN(auto item, YamlToJson(node[i], ItemPath(where, i), depth + 1, budget));
      out.push_back(std::move(item));
    }
    return out;
  }
  if (!node.IsMap()) return Bad(where, "is not a value YAML can hold here");
  Json out = Json::object();
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) return Bad(where, "a field name must be plain text");
    std::string key = it->first.Scalar();
    std::string child = FieldPath(path, KeyShown(key));
    if (out.contains(key)) return Bad(child, "is given twice; give each field once");
    GPUNET_TRY_ASSIGN(auto value, YamlToJson(it->second, child, depth + 1, budget));
    out[key] = std::move(value);
  }
  return out;
}

base::Result<Manifest> ParseManifestYaml(std::string_view text) {
  if (text.size() > kManifestBytesMax)
    return Over("manifest", std::to_string(text.size()) + " bytes; at most " +
                                std::to_string(kManifestBytesMax) + " are taken");
  try {
    YAML::Node doc = YAML::Load(std::string(text));
    if (!doc.IsDefined() || doc.IsNull())
      return Bad("manifest", "the file is empty; see docs/manifest.md for the fields");
    YamlBudget budget;
    GPUNET_TRY_ASSIGN(auto tree, YamlToJson(doc, "", 0, budget));
    return DecodeManifest(tree, Origin::kYaml);
  } catch (const YAML::Exception& e) {
    return Bad("line " + std::to_string(e.mark.is_null() ? 0 : e.mark.line + 1),
               "not valid YAML: " + PrintableAscii(e.msg));
  }
}

}  // namespace

std::string_view ManifestNetworkName(ManifestNetwork network) {
  switch (network) {
    case ManifestNetwork::kNone:
      return "none";
    case ManifestNetwork::kEgress:
      return "egress";
    case ManifestNetwork::kPorts:
      return "ports";
  }
  GPUNET_CHECK(false);
  return "";
}

base::Status ValidateManifest(const Manifest& m) {
  if (m.version != kManifestVersion)
    return Bad("version", "must be " + std::to_string(kManifestVersion));
  GPUNET_TRY(CheckEnvironmentName(m.environment));
  GPUNET_TRY(CheckCommand(m.command));
  GPUNET_TRY(CheckInsidePath(m.workdir, "workdir"));
  GPUNET_TRY(CheckEnv(m.env));
  GPUNET_TRY(CheckSecrets(m));
  GPUNET_TRY(CheckNetwork(m));
  GPUNET_TRY(CheckResources(m.resources));
  GPUNET_TRY(CheckInsidePath(m.outputs_dir, "outputs_dir"));
  if (m.outputs_dir != "/outputs" && !m.outputs_dir.starts_with("/outputs/") &&
      !m.outputs_dir.starts_with("/work/"))
    return Bad("outputs_dir", Shown(m.outputs_dir) +
                                  " is not on the workload's disk: give /outputs (the default) or "
                                  "a folder under /outputs or /work");
  if (m.stop_grace_ms > kManifestStopGraceMsMax)
    return Bad("stop_grace_ms", std::to_string(m.stop_grace_ms) + " is over " +
                                    std::to_string(kManifestStopGraceMsMax) + " ms");
  // What the provider takes is the canonical JSON, which escapes and the defaults
  // can make longer than the file it came from.
  size_t canonical_bytes = WriteCanonical(m).size();
  if (canonical_bytes > kManifestBytesMax)
    return Over("manifest", "its canonical JSON is " + std::to_string(canonical_bytes) +
                                " bytes; at most " + std::to_string(kManifestBytesMax) +
                                " go to a provider: shorten the command or the variables");
  return base::Ok();
}

base::Result<Manifest> ParseManifestJson(std::string_view json) {
  GPUNET_TRY_ASSIGN(auto tree, ParseStrictJson(json));
  return DecodeManifest(tree, Origin::kJson);
}

std::string CanonicalManifestJson(const Manifest& m) {
  GPUNET_CHECK(ValidateManifest(m).has_value());
  return WriteCanonical(m);
}

base::Hash32 ManifestHash(const Manifest& manifest) {
  return crypto::Blake2b256(base::AsBytes(CanonicalManifestJson(manifest)));
}

base::Result<Manifest> ParseCanonicalManifest(std::string_view json) {
  GPUNET_TRY_ASSIGN(auto m, ParseManifestJson(json));
  std::string canonical = CanonicalManifestJson(m);
  if (canonical != json) {
    size_t at = 0;
    while (at < canonical.size() && at < json.size() && canonical[at] == json[at]) ++at;
    return Fail(ErrorCode::kNonCanonical,
                "manifest: valid but not in canonical form (it differs at byte " +
                    std::to_string(at) +
                    "); send the bytes gpunet's client writes (sorted keys, no whitespace, "
                    "every field; docs/manifest.md \"Canonical form\")");
  }
  return m;
}

base::Result<Manifest> VerifySubmittedManifest(std::string_view json,
                                               const base::Hash32& lease_manifest_hash) {
  GPUNET_TRY_ASSIGN(auto m, ParseCanonicalManifest(json));
  base::Hash32 got = crypto::Blake2b256(base::AsBytes(json));
  if (got != lease_manifest_hash)
    return Fail(ErrorCode::kCorrupt, "manifest: its BLAKE2b-256 " + base::ToHex(got) +
                                         " is not the lease's manifest_hash " +
                                         base::ToHex(lease_manifest_hash) +
                                         " on the ledger; send the manifest the lease was "
                                         "created with");
  return m;
}

base::Result<LoadedManifest> ParseManifestText(std::string_view text, std::string_view file) {
  size_t first = text.find_first_not_of(" \t\r\n");
  bool json = first != std::string_view::npos && text[first] == '{';
  auto m = json ? ParseManifestJson(text) : ParseManifestYaml(text);
  if (!m) return base::Wrap(m.error(), std::string(file));
  LoadedManifest out;
  out.manifest = std::move(*m);
  out.canonical = CanonicalManifestJson(out.manifest);
  out.hash = crypto::Blake2b256(base::AsBytes(out.canonical));
  out.path = std::string(file);
  return out;
}

base::Result<LoadedManifest> LoadManifestFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Fail(ErrorCode::kNotFound, "the manifest " + path + " does not exist");
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot read " + path + ": " + ec.message());
  if (size > kManifestBytesMax)
    return Fail(ErrorCode::kLimitExceeded, "the manifest " + path + " is " + std::to_string(size) +
                                               " bytes; at most " +
                                               std::to_string(kManifestBytesMax));
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kIo, "cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ParseManifestText(ss.str(), path);
}

}  // namespace gpunet::client
