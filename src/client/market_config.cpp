#include "client/market_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include "base/limits.h"
#include "client/amount.h"
#include "client/manifest.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
namespace limits = base::limits;

/// Files over this size are refused before parsing (a provider.yaml of 1,024
/// machines is well under 1 MiB).
constexpr size_t kConfigBytesMax = 4 * 1024 * 1024;

std::string Quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string Child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string Index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

/// Reads one YAML document with file:line error messages.
class Reader {
 public:
  explicit Reader(std::string file) : m_file(std::move(file)) {}

  int LineOf(const YAML::Node& node, int fallback) const {
    YAML::Mark mark = node.Mark();
    return mark.is_null() ? fallback : mark.line + 1;
  }

  ConfigPlace Place(int line, const std::string& path) const { return {m_file, line, path}; }

  std::unexpected<base::Error> Err(int line, const std::string& path,
                                   const std::string& msg) const {
    return Fail(ErrorCode::kInvalidArgument, Place(line, path).Describe() + ": " + msg);
  }

  /// A mapping's entries, each key at most once and among `allowed`.
  struct Map {
    std::map<std::string, YAML::Node> fields;
    int line = 0;
    std::string path;
    bool Has(std::string_view key) const { return fields.contains(std::string(key)); }
  };

  base::Result<Map> OpenMap(const YAML::Node& node, const std::string& path, int fallback_line,
                            std::initializer_list<std::string_view> allowed) const {
    Map map;
    map.path = path;
    map.line = LineOf(node, fallback_line);
    if (!node.IsMap())
      return Err(map.line, path.empty() ? "document" : path,
                 "expected a mapping of fields (key: value)");
    for (auto it = node.begin(); it != node.end(); ++it) {
      int line = LineOf(it->first, map.line);
      if (!it->first.IsScalar()) return Err(line, path, "a field name must be plain text");
      std::string key = it->first.Scalar();
      bool known = false;
      for (auto a : allowed) known = known || a == key;
      if (!known) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        return Err(line, Child(path, key), "unknown field; the fields here are: " + list);
      }
      if (map.fields.contains(key))
        return Err(line, Child(path, key), "appears twice; give each field once");
      map.fields.emplace(key, it->second);
    }
    return map;
  }

  /// A required field's node, or an error saying it is missing.
  base::Result<YAML::Node> Need(const Map& map, std::string_view key, std::string_view hint) const {
    auto it = map.fields.find(std::string(key));
    if (it == map.fields.end() || it->second.IsNull())
      return Err(map.line, Child(map.path, key), "missing; add it (" + std::string(hint) + ")");
    return it->second;
  }

  base::Result<std::string> Text(const YAML::Node& node, int line, const std::string& path) const {
    if (!node.IsScalar() || node.Scalar().empty())
      return Err(LineOf(node, line), path, "expected a value (plain text), not a list or mapping");
    const std::string& s = node.Scalar();
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        return Err(LineOf(node, line), path, "contains a control character");
    return s;
  }

  base::Result<uint64_t> Whole(const YAML::Node& node, int line, const std::string& path,
                               uint64_t min, uint64_t max) const {
    auto text = Text(node, line, path);
    if (!text) return std::unexpected(text.error());
    int at = LineOf(node, line);
    std::string range = "a whole number " + std::to_string(min) + ".." + std::to_string(max);
    if (text->size() > 19)
      return Err(at, path, Quoted(*text) + " is out of range; expected " + range);
    uint64_t v = 0;
    for (char c : *text) {
      if (c < '0' || c > '9')
        return Err(at, path, Quoted(*text) + " is not a whole number; expected " + range);
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v < min || v > max)
      return Err(at, path, std::to_string(v) + " is out of range; expected " + range);
    return v;
  }

  base::Result<uint32_t> U32(const YAML::Node& node, int line, const std::string& path,
                             uint32_t min = 0, uint32_t max = UINT32_MAX) const {
    auto v = Whole(node, line, path, min, max);
    if (!v) return std::unexpected(v.error());
    return static_cast<uint32_t>(*v);
  }

  base::Result<bool> Bool(const YAML::Node& node, int line, const std::string& path) const {
    auto text = Text(node, line, path);
    if (!text) return std::unexpected(text.error());
    if (*text == "true") return true;
    if (*text == "false") return false;
    return Err(LineOf(node, line), path, Quoted(*text) + " is not true or false");
  }

  base::Result<uint64_t> Amount(const YAML::Node& node, int line, const std::string& path,
                                std::string_view unit_hint) const {
    auto text = Text(node, line, path);
    if (!text) return std::unexpected(text.error());
    auto v = ParseAmount(*text);
    if (!v) return Err(LineOf(node, line), path, std::string(unit_hint) + ": " + v.error().message);
    if (*v == 0) return Err(LineOf(node, line), path, "must be more than 0");
    return *v;
  }

  base::Result<Version> Ver(const YAML::Node& node, int line, const std::string& path) const {
    auto text = Text(node, line, path);
    if (!text) return std::unexpected(text.error());
    auto v = ParseVersion(*text);
    if (!v) return Err(LineOf(node, line), path, v.error().message);
    return *v;
  }

  base::Result<std::string> OneOf(const YAML::Node& node, int line, const std::string& path,
                                  std::initializer_list<std::string_view> allowed) const {
    auto text = Text(node, line, path);
    if (!text) return std::unexpected(text.error());
    for (auto a : allowed)
      if (a == *text) return *text;
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return Err(LineOf(node, line), path, Quoted(*text) + " is not one of " + list);
  }

  /// A sequence (or one scalar, read as a list of one when `scalar_ok`) of at most
  /// `max` items: the ledger's limit, checked before any item is read, so aliases
  /// repeating a large list cannot make the parser do unbounded work.
  base::Result<std::vector<YAML::Node>> List(const YAML::Node& node, int line,
                                             const std::string& path, bool scalar_ok,
                                             size_t max) const {
    std::vector<YAML::Node> out;
    if (node.IsNull()) return out;
    if (node.IsScalar() && scalar_ok) {
      out.push_back(node);
      return out;
    }
    if (!node.IsSequence())
      return Err(LineOf(node, line), path, "expected a list (- item per line, or [a, b])");
    if (node.size() > max)
      return Err(
          LineOf(node, line), path,
          std::to_string(node.size()) + " items; at most " + std::to_string(max) + " are allowed");
    for (auto it = node.begin(); it != node.end(); ++it) out.push_back(*it);
    return out;
  }

  base::Result<std::vector<PartyText>> Parties(const YAML::Node& node, int line,
                                               const std::string& path, size_t max) const {
    auto items = List(node, line, path, true, max);
    if (!items) return std::unexpected(items.error());
    std::vector<PartyText> out;
    for (size_t i = 0; i < items->size(); ++i) {
      auto text = Text((*items)[i], line, Index(path, i));
      if (!text) return std::unexpected(text.error());
      out.push_back({*text, Place(LineOf((*items)[i], line), Index(path, i))});
    }
    return out;
  }

  const std::string& File() const { return m_file; }

 private:
  std::string m_file;
};

base::Result<YAML::Node> LoadDocument(std::string_view text, const std::string& file) {
  if (text.size() > kConfigBytesMax)
    return Fail(ErrorCode::kLimitExceeded, file + " is over " +
                                               std::to_string(kConfigBytesMax / 1024 / 1024) +
                                               " MiB; is it the right file?");
  try {
    YAML::Node doc = YAML::Load(std::string(text));
    if (!doc.IsDefined() || doc.IsNull())
      return Fail(ErrorCode::kInvalidArgument,
                  file + ": the file is empty; see docs/market-cli.md");
    return doc;
  } catch (const YAML::Exception& e) {
    return Fail(ErrorCode::kInvalidArgument,
                file + ":" + std::to_string(e.mark.is_null() ? 0 : e.mark.line + 1) +
                    ": not valid YAML: " + e.msg);
  }
}

base::Result<std::string> ReadWhole(const std::string& path, size_t max_bytes,
                                    std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Fail(ErrorCode::kNotFound, std::string(what) + " " + path + " does not exist");
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot read " + path + ": " + ec.message());
  if (size > max_bytes)
    return Fail(ErrorCode::kLimitExceeded, std::string(what) + " " + path + " is " +
                                               std::to_string(size) + " bytes; at most " +
                                               std::to_string(max_bytes) + " are read");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kIo, "cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

base::Result<MachineConfig> ParseMachine(const Reader& r, const YAML::Node& node, int line,
                                         const std::string& path, uint32_t default_id) {
  GPUNET_TRY_ASSIGN(auto m,
                    r.OpenMap(node, path, line,
                              {"id", "name", "gpu", "gpus", "vram_gib", "link", "driver", "cuda",
                               "compute_capability", "cpu_cores", "memory_gib", "disk_gib"}));
  MachineConfig mc;
  mc.place = r.Place(m.line, path);
  mc.id = default_id;
  if (m.Has("id")) {
    GPUNET_TRY_ASSIGN(mc.id, r.U32(m.fields["id"], m.line, Child(path, "id"), 1));
  }
  if (m.Has("name")) {
    GPUNET_TRY_ASSIGN(mc.name, r.Text(m.fields["name"], m.line, Child(path, "name")));
  }
  GPUNET_TRY_ASSIGN(auto gpu, r.Need(m, "gpu", "the GPU model, e.g. gpu: H100"));
  GPUNET_TRY_ASSIGN(mc.gpu_model, r.Text(gpu, m.line, Child(path, "gpu")));
  GPUNET_TRY_ASSIGN(auto gpus, r.Need(m, "gpus", "how many GPUs the machine has, e.g. gpus: 8"));
  GPUNET_TRY_ASSIGN(mc.gpu_count, r.U32(gpus, m.line, Child(path, "gpus"), 1));
  GPUNET_TRY_ASSIGN(auto vram, r.Need(m, "vram_gib", "memory per GPU in GiB, e.g. vram_gib: 80"));
  GPUNET_TRY_ASSIGN(mc.vram_gib, r.U32(vram, m.line, Child(path, "vram_gib"), 1));
  GPUNET_TRY_ASSIGN(auto link, r.Need(m, "link", "how the GPUs connect: nvlink or pcie"));
  GPUNET_TRY_ASSIGN(mc.link, r.OneOf(link, m.line, Child(path, "link"), {"nvlink", "pcie"}));
  GPUNET_TRY_ASSIGN(auto driver,
                    r.Need(m, "driver", "the NVIDIA driver version, e.g. driver: 550.54.15"));
  GPUNET_TRY_ASSIGN(mc.driver_version, r.Text(driver, m.line, Child(path, "driver")));
  GPUNET_TRY_ASSIGN(auto cuda, r.Need(m, "cuda", "the CUDA version, e.g. cuda: \"12.4\""));
  GPUNET_TRY_ASSIGN(mc.cuda, r.Ver(cuda, m.line, Child(path, "cuda")));
  GPUNET_TRY_ASSIGN(auto cc, r.Need(m, "compute_capability", "e.g. compute_capability: \"9.0\""));
  GPUNET_TRY_ASSIGN(mc.compute_capability, r.Ver(cc, m.line, Child(path, "compute_capability")));
  if (m.Has("cpu_cores")) {
    GPUNET_TRY_ASSIGN(mc.cpu_cores, r.U32(m.fields["cpu_cores"], m.line, Child(path, "cpu_cores")));
  }
  if (m.Has("memory_gib")) {
    GPUNET_TRY_ASSIGN(mc.memory_gib,
                      r.U32(m.fields["memory_gib"], m.line, Child(path, "memory_gib")));
  }
  if (m.Has("disk_gib")) {
    GPUNET_TRY_ASSIGN(mc.disk_gib, r.U32(m.fields["disk_gib"], m.line, Child(path, "disk_gib")));
  }
  return mc;
}

base::Result<SiteConfig> ParseSite(const Reader& r, const YAML::Node& node, int line,
                                   const std::string& path, uint32_t default_id,
                                   uint32_t& next_machine_id, size_t& machines_seen) {
  GPUNET_TRY_ASSIGN(
      auto m, r.OpenMap(node, path, line, {"id", "name", "fabric", "bandwidth_gbps", "machines"}));
  SiteConfig site;
  site.place = r.Place(m.line, path);
  site.id = default_id;
  if (m.Has("id")) {
    GPUNET_TRY_ASSIGN(site.id, r.U32(m.fields["id"], m.line, Child(path, "id"), 1));
  }
  if (m.Has("name")) {
    GPUNET_TRY_ASSIGN(site.name, r.Text(m.fields["name"], m.line, Child(path, "name")));
  }
  GPUNET_TRY_ASSIGN(auto fabric, r.Need(m, "fabric", "infiniband, roce or ethernet"));
  GPUNET_TRY_ASSIGN(site.fabric, r.OneOf(fabric, m.line, Child(path, "fabric"),
                                         {"infiniband", "roce", "ethernet"}));
  GPUNET_TRY_ASSIGN(auto bw, r.Need(m, "bandwidth_gbps", "the fabric's bandwidth, e.g. 400"));
  GPUNET_TRY_ASSIGN(site.bandwidth_gbps, r.U32(bw, m.line, Child(path, "bandwidth_gbps"), 1));
  GPUNET_TRY_ASSIGN(auto machines_node, r.Need(m, "machines", "a list of the site's machines"));
  GPUNET_TRY_ASSIGN(auto machines, r.List(machines_node, m.line, Child(path, "machines"), false,
                                          limits::kMachinesPerProviderMax - machines_seen));
  if (machines.empty())
    return r.Err(m.line, Child(path, "machines"), "is empty; list at least one machine");
  for (size_t i = 0; i < machines.size(); ++i) {
    GPUNET_TRY_ASSIGN(auto mc, ParseMachine(r, machines[i], m.line,
                                            Index(Child(path, "machines"), i), next_machine_id));
    next_machine_id = mc.id + 1;
    ++machines_seen;
    site.machines.push_back(std::move(mc));
  }
  return site;
}

}  // namespace

std::string ConfigPlace::Describe() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  if (!field.empty()) out += ": " + field;
  return out;
}

base::Result<uint64_t> ParseDurationMs(std::string_view text) {
  const std::string form = "write a duration with a unit: 500ms, 30s, 5m or 2h";
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12)
    return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " is not a duration; " + form);
  uint64_t n = std::stoull(std::string(text.substr(0, digits)));
  std::string_view unit = text.substr(digits);
  uint64_t scale = 0;
  if (unit == "ms")
    scale = 1;
  else if (unit == "s")
    scale = 1000;
  else if (unit == "m")
    scale = 60'000;
  else if (unit == "h")
    scale = 3'600'000;
  else
    return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " has no known unit; " + form);
  return n * scale;  // <= 10^12 * 3.6e6 < 2^64
}

base::Result<uint32_t> ParseShareBp(std::string_view text) {
  const std::string form = "write a share as a percent (70%, 12.5%) or basis points (7000bp)";
  auto digits_to = [](std::string_view d, uint64_t& out) {
    if (d.empty() || d.size() > 6) return false;
    out = 0;
    for (char c : d) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
  };
  uint64_t bp = 0;
  if (text.ends_with("bp")) {
    if (!digits_to(text.substr(0, text.size() - 2), bp))
      return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " is not a share; " + form);
  } else if (text.ends_with("%")) {
    std::string_view number = text.substr(0, text.size() - 1);
    size_t dot = number.find('.');
    uint64_t whole = 0, frac = 0;
    std::string_view frac_text = dot == std::string_view::npos ? "" : number.substr(dot + 1);
    if (!digits_to(number.substr(0, dot), whole) ||
        (dot != std::string_view::npos && (frac_text.size() > 2 || !digits_to(frac_text, frac))))
      return Fail(ErrorCode::kInvalidArgument,
                  Quoted(text) + " is not a share (a percent has at most 2 decimals); " + form);
    if (frac_text.size() == 1) frac *= 10;
    bp = whole * 100 + frac;
  } else {
    return Fail(ErrorCode::kInvalidArgument, Quoted(text) + " has no unit; " + form);
  }
  if (bp == 0 || bp > 10'000)
    return Fail(ErrorCode::kInvalidArgument,
                Quoted(text) + " is not between 0.01% (1bp) and 100% (10000bp)");
  return static_cast<uint32_t>(bp);
}

namespace {

using Map = Reader::Map;

// The parts of provider.yaml and order.yaml, each read into the config; a
// YAML::Exception they throw is caught by the Parse function that calls them.

/// operator, tenant_api, tls_fingerprint, region and bond.
base::Status ParseProviderTerms(const Reader& r, Map& m, ProviderConfig& pc) {
  if (m.Has("operator")) {
    GPUNET_TRY_ASSIGN(pc.operator_key.text, r.Text(m.fields["operator"], m.line, "operator"));
    pc.operator_key.place = r.Place(r.LineOf(m.fields["operator"], m.line), "operator");
    pc.has_operator = true;
  }
  GPUNET_TRY_ASSIGN(auto api, r.Need(m, "tenant_api",
                                     "the URI tenants reach, e.g. https://gpu.example.com:8443"));
  GPUNET_TRY_ASSIGN(pc.tenant_api_uri, r.Text(api, m.line, "tenant_api"));
  if (!pc.tenant_api_uri.starts_with("https://") && !pc.tenant_api_uri.starts_with("http://"))
    return r.Err(r.LineOf(api, m.line), "tenant_api",
                 Quoted(pc.tenant_api_uri) + " must start with https:// (or http:// on a devnet)");
  GPUNET_TRY_ASSIGN(
      auto fp, r.Need(m, "tls_fingerprint",
                      "64 hex characters: the SHA-256 of the tenant API's TLS key (DER SPKI)"));
  GPUNET_TRY_ASSIGN(auto fp_text, r.Text(fp, m.line, "tls_fingerprint"));
  auto fp_bytes = base::FixedFromHex<32>(fp_text);
  if (!fp_bytes)
    return r.Err(r.LineOf(fp, m.line), "tls_fingerprint",
                 "must be 64 hex characters (32 bytes): " + fp_bytes.error().message);
  pc.tls_fingerprint = *fp_bytes;
  GPUNET_TRY_ASSIGN(auto region, r.Need(m, "region", "where the machines are, e.g. eu-west"));
  GPUNET_TRY_ASSIGN(pc.region, r.Text(region, m.line, "region"));
  GPUNET_TRY_ASSIGN(auto bond, r.Need(m, "bond", "GPN staked as a guarantee, e.g. bond: 1000"));
  GPUNET_TRY_ASSIGN(pc.bond_ugpn, r.Amount(bond, m.line, "bond", "the bond is in GPN"));
  return base::Ok();
}

/// payouts: each payee once, the shares adding up to 100%.
base::Status ParsePayouts(const Reader& r, Map& m, ProviderConfig& pc) {
  GPUNET_TRY_ASSIGN(auto payouts_node,
                    r.Need(m, "payouts", "who is paid what share, e.g. - to: me / share: 100%"));
  GPUNET_TRY_ASSIGN(auto payouts,
                    r.List(payouts_node, m.line, "payouts", false, limits::kPayoutSplitsMax));
  if (payouts.empty()) return r.Err(m.line, "payouts", "is empty; list at least one payee");
  uint64_t total_bp = 0;
  std::set<std::string> payees;
  for (size_t i = 0; i < payouts.size(); ++i) {
    std::string path = Index("payouts", i);
    GPUNET_TRY_ASSIGN(auto p, r.OpenMap(payouts[i], path, m.line, {"to", "share"}));
    GPUNET_TRY_ASSIGN(auto to, r.Need(p, "to", "a key name or gpn1... address"));
    PayoutConfig pay;
    GPUNET_TRY_ASSIGN(pay.payee.text, r.Text(to, p.line, Child(path, "to")));
    pay.payee.place = r.Place(r.LineOf(to, p.line), Child(path, "to"));
    if (!payees.insert(pay.payee.text).second)
      return r.Err(r.LineOf(to, p.line), Child(path, "to"),
                   Quoted(pay.payee.text) + " is listed twice; give each payee one share");
    GPUNET_TRY_ASSIGN(auto share,
                      r.Need(p, "share", "a percent like 70% or basis points like 7000bp"));
    GPUNET_TRY_ASSIGN(auto share_text, r.Text(share, p.line, Child(path, "share")));
    auto bp = ParseShareBp(share_text);
    if (!bp) return r.Err(r.LineOf(share, p.line), Child(path, "share"), bp.error().message);
    pay.bp = *bp;
    total_bp += *bp;
    pc.payouts.push_back(std::move(pay));
  }
  if (total_bp != 10'000)
    return r.Err(r.LineOf(payouts_node, m.line), "payouts",
                 "the shares add up to " + std::to_string(total_bp / 100) + "." +
                     std::to_string(100 + total_bp % 100).substr(1) +
                     "%; they must add up to exactly 100% (10000bp)");
  return base::Ok();
}

/// policy: allow and deny.
base::Status ParsePolicy(const Reader& r, Map& m, ProviderConfig& pc) {
  if (!m.Has("policy")) return base::Ok();
  GPUNET_TRY_ASSIGN(auto p, r.OpenMap(m.fields["policy"], "policy", m.line, {"allow", "deny"}));
  if (p.Has("allow")) {
    GPUNET_TRY_ASSIGN(
        pc.allow, r.Parties(p.fields["allow"], p.line, "policy.allow", limits::kPolicyTenantsMax));
  }
  if (p.Has("deny")) {
    GPUNET_TRY_ASSIGN(
        pc.deny, r.Parties(p.fields["deny"], p.line, "policy.deny", limits::kPolicyTenantsMax));
  }
  return base::Ok();
}

/// sites with their machines, each site id and machine id used once; returns where
/// each site id is used.
base::Result<std::map<uint32_t, std::string>> ParseSites(const Reader& r, Map& m,
                                                         ProviderConfig& pc) {
  GPUNET_TRY_ASSIGN(auto sites_node, r.Need(m, "sites", "a list of sites, each with its machines"));
  GPUNET_TRY_ASSIGN(auto sites,
                    r.List(sites_node, m.line, "sites", false, limits::kSitesPerProviderMax));
  if (sites.empty()) return r.Err(m.line, "sites", "is empty; list at least one site");
  uint32_t next_site_id = 1, next_machine_id = 1;
  size_t machines_seen = 0;
  std::map<uint32_t, std::string> site_ids, machine_ids;
  for (size_t i = 0; i < sites.size(); ++i) {
    GPUNET_TRY_ASSIGN(auto site, ParseSite(r, sites[i], m.line, Index("sites", i), next_site_id,
                                           next_machine_id, machines_seen));
    next_site_id = site.id + 1;
    if (auto [it, fresh] = site_ids.emplace(site.id, site.place.Describe()); !fresh)
      return r.Err(site.place.line, site.place.field,
                   "site id " + std::to_string(site.id) + " is also used at " + it->second +
                       "; give each site its own id");
    for (const auto& mc : site.machines)
      if (auto [it, fresh] = machine_ids.emplace(mc.id, mc.place.Describe()); !fresh)
        return r.Err(mc.place.line, mc.place.field,
                     "machine id " + std::to_string(mc.id) + " is also used at " + it->second +
                         "; give each machine its own id");
    pc.sites.push_back(std::move(site));
  }
  return site_ids;
}

/// offers[i]: a model some machine of pc.sites has, on a site of `site_ids`.
base::Result<OfferConfig> ParseOffer(const Reader& r, const YAML::Node& node, int line,
                                     const std::string& path, const ProviderConfig& pc,
                                     const std::map<uint32_t, std::string>& site_ids) {
  GPUNET_TRY_ASSIGN(
      auto o,
      r.OpenMap(node, path, line, {"gpu", "site", "price", "tenants", "min_hours", "max_hours"}));
  OfferConfig oc;
  oc.place = r.Place(o.line, path);
  GPUNET_TRY_ASSIGN(auto gpu, r.Need(o, "gpu", "the GPU model the offer sells, e.g. H100"));
  GPUNET_TRY_ASSIGN(oc.gpu_model, r.Text(gpu, o.line, Child(path, "gpu")));
  bool model_listed = false;
  for (const auto& s : pc.sites)
    for (const auto& mc : s.machines) model_listed = model_listed || mc.gpu_model == oc.gpu_model;
  if (!model_listed)
    return r.Err(r.LineOf(gpu, o.line), Child(path, "gpu"),
                 "no machine in sites has gpu " + Quoted(oc.gpu_model) +
                     "; an offer sells GPUs of machines listed above");
  if (o.Has("site")) {
    GPUNET_TRY_ASSIGN(oc.site_id, r.U32(o.fields["site"], o.line, Child(path, "site"), 1));
    if (!site_ids.contains(oc.site_id))
      return r.Err(r.LineOf(o.fields["site"], o.line), Child(path, "site"),
                   "no site has id " + std::to_string(oc.site_id));
  }
  GPUNET_TRY_ASSIGN(auto price, r.Need(o, "price", "GPN per GPU-hour, e.g. price: 2.5"));
  GPUNET_TRY_ASSIGN(oc.price_ugpn_per_gpu_hour,
                    r.Amount(price, o.line, Child(path, "price"), "the price is GPN per GPU-hour"));
  if (o.Has("tenants")) {
    GPUNET_TRY_ASSIGN(oc.tenants, r.Parties(o.fields["tenants"], o.line, Child(path, "tenants"),
                                            limits::kOfferTenantsMax));
  }
  if (o.Has("min_hours")) {
    GPUNET_TRY_ASSIGN(oc.min_hours, r.U32(o.fields["min_hours"], o.line, Child(path, "min_hours")));
  }
  if (o.Has("max_hours")) {
    GPUNET_TRY_ASSIGN(oc.max_hours, r.U32(o.fields["max_hours"], o.line, Child(path, "max_hours")));
    // The chain also refuses a max_hours under its deposit_min_hours (docs/market.md).
    if (oc.max_hours != 0 && oc.max_hours < std::max<uint32_t>(oc.min_hours, 1))
      return r.Err(r.LineOf(o.fields["max_hours"], o.line), Child(path, "max_hours"),
                   "max_hours " + std::to_string(oc.max_hours) + " is under min_hours " +
                       std::to_string(oc.min_hours) +
                       ": no lease could be funded; raise it, or 0 (or leave it out) for no limit");
  }
  return oc;
}

/// A duration field of the daemon section ("30s"), at least `min_ms`.
base::Result<uint64_t> DaemonDuration(const Reader& r, Map& d, std::string_view key,
                                      uint64_t min_ms, std::string_view min_text) {
  const std::string path = Child("daemon", key);
  GPUNET_TRY_ASSIGN(auto text, r.Text(d.fields[std::string(key)], d.line, path));
  int line = r.LineOf(d.fields[std::string(key)], d.line);
  auto ms = ParseDurationMs(text);
  if (!ms) return r.Err(line, path, ms.error().message);
  if (*ms < min_ms)
    return r.Err(line, path, Quoted(text) + " is too short; at least " + std::string(min_text));
  return *ms;
}

/// "host:port" with a port 1..65535 (an IPv6 host in brackets: [::1]:8443).
base::Result<std::string> ListenAddress(const Reader& r, Map& d, std::string_view key) {
  const std::string path = Child("daemon", key);
  GPUNET_TRY_ASSIGN(auto text, r.Text(d.fields[std::string(key)], d.line, path));
  size_t colon = text.rfind(':');
  std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  bool ok = colon != std::string::npos && colon > 0 && !port.empty() && port.size() <= 5;
  for (char c : port) ok = ok && c >= '0' && c <= '9';
  if (ok) ok = std::stoul(port) >= 1 && std::stoul(port) <= 65535;
  if (!ok)
    return r.Err(r.LineOf(d.fields[std::string(key)], d.line), path,
                 Quoted(text) + " is not host:port (e.g. 0.0.0.0:8443, 127.0.0.1:9464)");
  return text;
}

/// daemon.declared_gpus: GPUs backed by device nodes on a host without NVIDIA GPUs.
base::Status ParseDeclaredGpus(const Reader& r, Map& d, DaemonConfig& dc) {
  GPUNET_TRY_ASSIGN(auto items, r.List(d.fields["declared_gpus"], d.line, "daemon.declared_gpus",
                                       false, limits::kGpusPerMachineMax));
  std::set<std::string> uuids;
  std::set<uint32_t> minors;
  for (size_t i = 0; i < items.size(); ++i) {
    std::string path = Index("daemon.declared_gpus", i);
    GPUNET_TRY_ASSIGN(auto g, r.OpenMap(items[i], path, d.line, {"uuid", "minor"}));
    DeclaredGpuConfig gpu;
    gpu.place = r.Place(g.line, path);
    GPUNET_TRY_ASSIGN(auto uuid, r.Need(g, "uuid", "the GPU's name, e.g. GPU-dev-0"));
    GPUNET_TRY_ASSIGN(gpu.uuid, r.Text(uuid, g.line, Child(path, "uuid")));
    if (!gpu.uuid.starts_with("GPU-") || gpu.uuid.size() > 96)
      return r.Err(r.LineOf(uuid, g.line), Child(path, "uuid"),
                   Quoted(gpu.uuid) +
                       " must start with GPU- (as CUDA_VISIBLE_DEVICES names "
                       "GPUs), at most 96 characters");
    if (!uuids.insert(gpu.uuid).second)
      return r.Err(r.LineOf(uuid, g.line), Child(path, "uuid"),
                   Quoted(gpu.uuid) + " is declared twice");
    GPUNET_TRY_ASSIGN(auto minor, r.Need(g, "minor", "N of <device_dir>/nvidiaN, e.g. minor: 0"));
    GPUNET_TRY_ASSIGN(gpu.minor, r.U32(minor, g.line, Child(path, "minor"), 0, 255));
    if (!minors.insert(gpu.minor).second)
      return r.Err(r.LineOf(minor, g.line), Child(path, "minor"),
                   "minor " + std::to_string(gpu.minor) + " is used by two declared GPUs");
    dc.declared_gpus.push_back(std::move(gpu));
  }
  return base::Ok();
}

/// daemon.bidding: the pricing policy for open orders.
base::Status ParseBidding(const Reader& r, Map& d, const ProviderConfig& pc, DaemonConfig& dc) {
  GPUNET_TRY_ASSIGN(auto b, r.OpenMap(d.fields["bidding"], "daemon.bidding", d.line,
                                      {"enabled", "floor", "undercut"}));
  BiddingConfig& bc = dc.bidding;
  if (b.Has("enabled")) {
    GPUNET_TRY_ASSIGN(bc.enabled, r.Bool(b.fields["enabled"], b.line, "daemon.bidding.enabled"));
  }
  if (b.Has("floor")) {
    const YAML::Node& floor = b.fields["floor"];
    int line = r.LineOf(floor, b.line);
    if (!floor.IsMap())
      return r.Err(line, "daemon.bidding.floor",
                   "expected a mapping of GPU model: GPN per GPU-hour, e.g. {H100: 2.5}");
    for (auto it = floor.begin(); it != floor.end(); ++it) {
      GPUNET_TRY_ASSIGN(auto model, r.Text(it->first, line, "daemon.bidding.floor"));
      std::string path = Child("daemon.bidding.floor", model);
      bool listed = false;
      for (const auto& s : pc.sites)
        for (const auto& mc : s.machines) listed = listed || mc.gpu_model == model;
      if (!listed)
        return r.Err(r.LineOf(it->first, line), path,
                     "no machine in sites has gpu " + Quoted(model) + "; bid only on your models");
      GPUNET_TRY_ASSIGN(auto price, r.Amount(it->second, line, path, "GPN per GPU-hour"));
      if (!bc.floor_ugpn_per_gpu_hour.emplace(model, price).second)
        return r.Err(r.LineOf(it->first, line), path, "appears twice");
    }
  }
  if (b.Has("undercut")) {
    GPUNET_TRY_ASSIGN(auto text, r.Text(b.fields["undercut"], b.line, "daemon.bidding.undercut"));
    if (text == "0%" || text == "0bp") {
      bc.undercut_bp = 0;
    } else {
      auto bp = ParseShareBp(text);
      if (!bp || *bp >= 10'000)
        return r.Err(r.LineOf(b.fields["undercut"], b.line), "daemon.bidding.undercut",
                     Quoted(text) + " is not a share under 100% (e.g. 5% or 500bp)");
      bc.undercut_bp = *bp;
    }
  }
  if (bc.enabled && bc.floor_ugpn_per_gpu_hour.empty())
    return r.Err(b.line, "daemon.bidding.floor",
                 "bidding is enabled but no model has a floor; the daemon bids only on models "
                 "listed here, e.g. floor: {H100: 2.5}");
  return base::Ok();
}

/// daemon: how `gpunet provider run` operates this host (every field optional).
base::Status ParseDaemon(const Reader& r, Map& m, ProviderConfig& pc) {
  if (!m.Has("daemon")) return base::Ok();
  GPUNET_TRY_ASSIGN(
      auto d, r.OpenMap(m.fields["daemon"], "daemon", m.line,
                        {"node", "listen", "metrics_listen", "machine", "heartbeat_every",
                         "withdraw_every", "outputs_retention", "health_poll", "nvml_library",
                         "passphrase_file", "api_user", "device_dir", "declared_gpus", "bidding"}));
  DaemonConfig& dc = pc.daemon;
  dc.place = r.Place(d.line, "daemon");
  if (d.Has("node")) {
    GPUNET_TRY_ASSIGN(dc.node_url, r.Text(d.fields["node"], d.line, "daemon.node"));
    if (!dc.node_url.starts_with("http://") && !dc.node_url.starts_with("https://"))
      return r.Err(r.LineOf(d.fields["node"], d.line), "daemon.node",
                   Quoted(dc.node_url) + " must be a URL, e.g. http://127.0.0.1:26657");
  }
  if (d.Has("listen")) {
    GPUNET_TRY_ASSIGN(dc.listen, ListenAddress(r, d, "listen"));
  }
  if (d.Has("metrics_listen")) {
    GPUNET_TRY_ASSIGN(dc.metrics_listen, ListenAddress(r, d, "metrics_listen"));
  }
  if (d.Has("machine")) {
    GPUNET_TRY_ASSIGN(dc.machine_id, r.U32(d.fields["machine"], d.line, "daemon.machine", 1));
    bool found = false;
    for (const auto& s : pc.sites)
      for (const auto& mc : s.machines) found = found || mc.id == dc.machine_id;
    if (!found)
      return r.Err(r.LineOf(d.fields["machine"], d.line), "daemon.machine",
                   "no machine in sites has id " + std::to_string(dc.machine_id));
  }
  if (d.Has("heartbeat_every")) {
    GPUNET_TRY_ASSIGN(dc.heartbeat_every_ms, DaemonDuration(r, d, "heartbeat_every", 1000, "1s"));
  }
  if (d.Has("withdraw_every")) {
    // Under kWithdrawEveryMinMs only on a development chain: `provider run` checks.
    GPUNET_TRY_ASSIGN(dc.withdraw_every_ms, DaemonDuration(r, d, "withdraw_every", 1000, "1s"));
  }
  if (d.Has("outputs_retention")) {
    GPUNET_TRY_ASSIGN(dc.outputs_retention_ms,
                      DaemonDuration(r, d, "outputs_retention", 3'600'000,
                                     "1h (tenants must have time to fetch their outputs)"));
  }
  if (d.Has("health_poll")) {
    GPUNET_TRY_ASSIGN(dc.health_poll_ms, DaemonDuration(r, d, "health_poll", 100, "100ms"));
  }
  if (d.Has("nvml_library")) {
    GPUNET_TRY_ASSIGN(dc.nvml_library,
                      r.Text(d.fields["nvml_library"], d.line, "daemon.nvml_library"));
  }
  if (d.Has("passphrase_file")) {
    GPUNET_TRY_ASSIGN(dc.passphrase_file,
                      r.Text(d.fields["passphrase_file"], d.line, "daemon.passphrase_file"));
  }
  if (d.Has("api_user")) {
    GPUNET_TRY_ASSIGN(dc.api_user, r.Text(d.fields["api_user"], d.line, "daemon.api_user"));
  }
  if (d.Has("device_dir")) {
    GPUNET_TRY_ASSIGN(dc.device_dir, r.Text(d.fields["device_dir"], d.line, "daemon.device_dir"));
  }
  if (d.Has("declared_gpus")) GPUNET_TRY(ParseDeclaredGpus(r, d, dc));
  if (d.Has("bidding")) GPUNET_TRY(ParseBidding(r, d, pc, dc));
  return base::Ok();
}

}  // namespace

base::Result<ProviderConfig> ParseProviderConfig(std::string_view yaml_text,
                                                 std::string_view file) {
  Reader r{std::string(file)};
  GPUNET_TRY_ASSIGN(auto doc, LoadDocument(yaml_text, r.File()));
  try {
    GPUNET_TRY_ASSIGN(
        auto m, r.OpenMap(doc, "", 1,
                          {"operator", "tenant_api", "tls_fingerprint", "region", "bond", "payouts",
                           "policy", "sites", "offers", "daemon"}));
    ProviderConfig pc;
    pc.file = r.File();
    GPUNET_TRY(ParseProviderTerms(r, m, pc));
    GPUNET_TRY(ParsePayouts(r, m, pc));
    GPUNET_TRY(ParsePolicy(r, m, pc));
    GPUNET_TRY_ASSIGN(auto site_ids, ParseSites(r, m, pc));
    if (m.Has("offers")) {
      GPUNET_TRY_ASSIGN(auto offers, r.List(m.fields["offers"], m.line, "offers", false,
                                            limits::kOffersPerProviderMax));
      for (size_t i = 0; i < offers.size(); ++i) {
        GPUNET_TRY_ASSIGN(auto oc,
                          ParseOffer(r, offers[i], m.line, Index("offers", i), pc, site_ids));
        pc.offers.push_back(std::move(oc));
      }
    }
    GPUNET_TRY(ParseDaemon(r, m, pc));
    return pc;
  } catch (const YAML::Exception& e) {
    return Fail(ErrorCode::kInvalidArgument, r.File() + ": " + e.what());
  }
}

base::Result<ProviderConfig> LoadProviderConfig(const std::string& path) {
  GPUNET_TRY_ASSIGN(auto text, ReadWhole(path, kConfigBytesMax, "the provider config"));
  return ParseProviderConfig(text, path);
}

namespace {

/// requirements.attributes: a mapping of attribute: value.
base::Status ParseRequiredAttributes(const Reader& r, const Map& q, const YAML::Node& attrs,
                                     OrderConfig& oc) {
  int line = r.LineOf(attrs, q.line);
  if (!attrs.IsMap())
    return r.Err(line, "requirements.attributes",
                 "expected a mapping of attribute: value, e.g. tier: \"3\"");
  if (attrs.size() > limits::kAttributesMax)
    return r.Err(line, "requirements.attributes",
                 "at most " + std::to_string(limits::kAttributesMax) + " attributes");
  for (auto it = attrs.begin(); it != attrs.end(); ++it) {
    std::string path = "requirements.attributes";
    GPUNET_TRY_ASSIGN(auto key, r.Text(it->first, line, path));
    GPUNET_TRY_ASSIGN(auto value, r.Text(it->second, line, Child(path, key)));
    if (!oc.attributes.emplace(key, value).second)
      return r.Err(r.LineOf(it->first, line), Child(path, key), "appears twice");
  }
  return base::Ok();
}

/// requirements: what the machines must have.
base::Status ParseRequirements(const Reader& r, const Map& m, const YAML::Node& req_node,
                               OrderConfig& oc) {
  GPUNET_TRY_ASSIGN(
      auto q, r.OpenMap(req_node, "requirements", m.line,
                        {"gpu", "gpus_per_machine", "machines", "min_vram_gib", "region", "fabric",
                         "same_site", "min_cuda", "auditors", "attributes"}));
  if (q.Has("gpu")) {
    GPUNET_TRY_ASSIGN(auto models, r.List(q.fields["gpu"], q.line, "requirements.gpu", true,
                                          limits::kOrderGpuModelsMax));
    std::set<std::string> seen;
    for (size_t i = 0; i < models.size(); ++i) {
      GPUNET_TRY_ASSIGN(auto model, r.Text(models[i], q.line, Index("requirements.gpu", i)));
      if (seen.insert(model).second) oc.gpu_models.push_back(model);
    }
  }
  GPUNET_TRY_ASSIGN(auto gpm, r.Need(q, "gpus_per_machine", "GPUs on each machine, e.g. 2"));
  GPUNET_TRY_ASSIGN(oc.gpus_per_machine, r.U32(gpm, q.line, "requirements.gpus_per_machine", 1));
  if (q.Has("machines")) {
    GPUNET_TRY_ASSIGN(oc.machines, r.U32(q.fields["machines"], q.line, "requirements.machines", 1));
  }
  if (q.Has("min_vram_gib")) {
    GPUNET_TRY_ASSIGN(oc.min_vram_gib,
                      r.U32(q.fields["min_vram_gib"], q.line, "requirements.min_vram_gib"));
  }
  if (q.Has("region")) {
    GPUNET_TRY_ASSIGN(oc.region, r.Text(q.fields["region"], q.line, "requirements.region"));
  }
  if (q.Has("fabric")) {
    GPUNET_TRY_ASSIGN(oc.fabric, r.OneOf(q.fields["fabric"], q.line, "requirements.fabric",
                                         {"infiniband", "roce", "ethernet", "any"}));
  }
  if (oc.fabric == "any") oc.fabric.clear();
  if (q.Has("same_site")) {
    GPUNET_TRY_ASSIGN(oc.same_site,
                      r.Bool(q.fields["same_site"], q.line, "requirements.same_site"));
  }
  if (q.Has("min_cuda")) {
    GPUNET_TRY_ASSIGN(oc.min_cuda, r.Ver(q.fields["min_cuda"], q.line, "requirements.min_cuda"));
  }
  if (q.Has("auditors")) {
    GPUNET_TRY_ASSIGN(oc.auditors, r.Parties(q.fields["auditors"], q.line, "requirements.auditors",
                                             limits::kOrderAuditorsMax));
  }
  if (q.Has("attributes")) GPUNET_TRY(ParseRequiredAttributes(r, q, q.fields["attributes"], oc));
  if (!oc.attributes.empty() && oc.auditors.empty())
    return r.Err(q.line, "requirements.auditors",
                 "attributes need at least one auditor whose attestation counts");
  return base::Ok();
}

/// providers: who may bid and be awarded.
base::Status ParseProviderRequirements(const Reader& r, Map& m, OrderConfig& oc) {
  if (!m.Has("providers")) return base::Ok();
  GPUNET_TRY_ASSIGN(auto pq,
                    r.OpenMap(m.fields["providers"], "providers", m.line,
                              {"min_bond", "min_earned", "max_fault_rate_ppm", "exclude"}));
  if (pq.Has("min_bond")) {
    GPUNET_TRY_ASSIGN(
        oc.min_provider_bond_ugpn,
        r.Amount(pq.fields["min_bond"], pq.line, "providers.min_bond", "the bond is in GPN"));
  }
  if (pq.Has("min_earned")) {
    GPUNET_TRY_ASSIGN(oc.min_provider_earned_ugpn,
                      r.Amount(pq.fields["min_earned"], pq.line, "providers.min_earned",
                               "GPN earned from other tenants"));
  }
  if (pq.Has("max_fault_rate_ppm")) {
    GPUNET_TRY_ASSIGN(oc.max_provider_fault_rate_ppm,
                      r.U32(pq.fields["max_fault_rate_ppm"], pq.line,
                            "providers.max_fault_rate_ppm", 0, limits::kFaultRatePpmAny));
  }
  if (pq.Has("exclude")) {
    GPUNET_TRY_ASSIGN(
        oc.excluded_providers,
        r.Parties(pq.fields["exclude"], pq.line, "providers.exclude", limits::kOrderExclusionsMax));
  }
  return base::Ok();
}

/// manifest (a file, parsed and its canonical form hashed here; relative to `base_dir`)
/// or manifest_hash.
base::Status ParseManifest(const Reader& r, Map& m, const std::string& base_dir, OrderConfig& oc) {
  bool has_file = m.Has("manifest"), has_hash = m.Has("manifest_hash");
  if (has_file == has_hash)
    return r.Err(m.line, "manifest",
                 has_file ? "give manifest or manifest_hash, not both"
                          : "missing; give manifest: FILE (hashed for you) or manifest_hash: HEX");
  if (has_hash) {
    GPUNET_TRY_ASSIGN(auto hex, r.Text(m.fields["manifest_hash"], m.line, "manifest_hash"));
    auto hash = base::FixedFromHex<32>(hex);
    if (!hash)
      return r.Err(
          r.LineOf(m.fields["manifest_hash"], m.line), "manifest_hash",
          "must be 64 hex characters (the BLAKE2b-256 of the manifest): " + hash.error().message);
    oc.manifest_hash = *hash;
    return base::Ok();
  }
  GPUNET_TRY_ASSIGN(auto path, r.Text(m.fields["manifest"], m.line, "manifest"));
  std::filesystem::path p(path);
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  // The hash of the manifest's canonical JSON, which the provider checks the
  // submitted bytes against (docs/manifest.md), never of the file's own bytes.
  auto loaded = LoadManifestFile(p.string());
  if (!loaded)
    return r.Err(r.LineOf(m.fields["manifest"], m.line), "manifest", loaded.error().message);
  oc.manifest_path = p.string();
  oc.manifest_hash = loaded->hash;
  return base::Ok();
}

}  // namespace

base::Result<OrderConfig> ParseOrderConfig(std::string_view yaml_text, std::string_view file,
                                           const std::string& base_dir) {
  Reader r{std::string(file)};
  GPUNET_TRY_ASSIGN(auto doc, LoadDocument(yaml_text, r.File()));
  try {
    GPUNET_TRY_ASSIGN(auto m, r.OpenMap(doc, "", 1,
                                        {"requirements", "max_price", "deposit", "manifest",
                                         "manifest_hash", "bid_window", "providers"}));
    OrderConfig oc;
    oc.file = r.File();
    GPUNET_TRY_ASSIGN(auto req_node, r.Need(m, "requirements", "what the machines must have"));
    GPUNET_TRY(ParseRequirements(r, m, req_node, oc));
    GPUNET_TRY_ASSIGN(auto price,
                      r.Need(m, "max_price", "the most you pay, GPN per GPU-hour, e.g. 3"));
    GPUNET_TRY_ASSIGN(oc.max_price_ugpn_per_gpu_hour,
                      r.Amount(price, m.line, "max_price", "max_price is GPN per GPU-hour"));
    GPUNET_TRY_ASSIGN(auto deposit, r.Need(m, "deposit", "GPN put in escrow, e.g. 100"));
    GPUNET_TRY_ASSIGN(oc.deposit_ugpn,
                      r.Amount(deposit, m.line, "deposit", "the deposit is in GPN"));
    GPUNET_TRY_ASSIGN(auto window, r.Need(m, "bid_window", "how long providers may bid, e.g. 30s"));
    GPUNET_TRY_ASSIGN(auto window_text, r.Text(window, m.line, "bid_window"));
    auto window_ms = ParseDurationMs(window_text);
    if (!window_ms) return r.Err(r.LineOf(window, m.line), "bid_window", window_ms.error().message);
    oc.bid_window_ms = *window_ms;
    GPUNET_TRY(ParseProviderRequirements(r, m, oc));
    GPUNET_TRY(ParseManifest(r, m, base_dir, oc));
    return oc;
  } catch (const YAML::Exception& e) {
    return Fail(ErrorCode::kInvalidArgument, r.File() + ": " + e.what());
  }
}

base::Result<OrderConfig> LoadOrderConfig(const std::string& path) {
  GPUNET_TRY_ASSIGN(auto text, ReadWhole(path, kConfigBytesMax, "the order file"));
  return ParseOrderConfig(text, path, std::filesystem::path(path).parent_path().string());
}

}  // namespace gpunet::client
