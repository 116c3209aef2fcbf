// The tenant's verbs of the tenant API (docs/tenant-api.md "The tenant's commands"),
// under `gpunet lease`: environments, submit, secrets, upload, status, events, logs,
// outputs, grant, revoke. Each reads the lease and its provider from the ledger (the
// provider's tenant_api_uri and the tls_fingerprint the client pins), signs with the
// tenant key (--from) or a session key it delegated (client/session_keys.h), and
// talks to the provider through client::TenantClient. The arithmetic and parsing
// live in client/tenant_transfer.h and client/tenant_secrets.h.

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/gpunet/cli.h"
#include "apps/gpunet/lease_access.h"
#include "apps/gpunet/market_send.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "client/amount.h"
#include "client/json_fields.h"
#include "client/lease_follow.h"
#include "client/manifest.h"
#include "client/market_client.h"
#include "client/market_config.h"
#include "client/market_tx.h"
#include "client/node_client.h"
#include "client/session_keys.h"
#include "client/tenant_client.h"
#include "client/tenant_request.h"
#include "client/tenant_secrets.h"
#include "client/tenant_transfer.h"
#include "client/terminal_text.h"
#include "client/topup.h"
#include "crypto/address.h"
#include "crypto/keystore.h"

namespace gpunet::apps {
namespace {

using base::ErrorCode;
using nlohmann::json;
namespace fs = std::filesystem;

struct TenantArgs {
  std::string lease, from, session, manifest, src, dest, path, out, expires, grant_id, provider;
  std::string wait = "60s";  ///< submit: how long to wait for the provider to start the lease
  std::vector<std::string> secrets, from_env;
  bool stderr_stream = false, follow = false;
  bool raw = false;            ///< logs: the workload's bytes as they are (no terminal_text)
  std::string auto_topup;      ///< watch: the cap in GPN ("" = no top-up)
  bool close_on_exit = false;  ///< watch
  std::string every = "2s";    ///< watch: how often it looks
};

}  // namespace

// ---------------------------------------------------------------- the lease and its provider

uint64_t LeaseIdOf(const std::string& text) {
  auto id = ParseDigits(text, 19);
  if (!id || *id == 0)
    FailCommand(ErrorCode::kInvalidArgument,
                "LEASE \"" + text +
                    "\" is not a lease id (a number; `gpunet lease list --from "
                    "tenant` shows yours)");
  return *id;
}

client::ProviderInfo ProviderRecord(const GlobalOptions& g, const std::string& address) {
  client::ProviderInfo p = OrFail(client::MarketClient(g.NodeUrl()).Provider(address),
                                  "reading provider " + address + " from the ledger")
                               .value;
  if (p.tenant_api_uri.empty())
    FailCommand(ErrorCode::kNotFound, "provider " + address +
                                          " registered no tenant_api_uri on the ledger: it runs "
                                          "no tenant API to reach");
  return p;
}

LeaseContext ReadLease(const GlobalOptions& g, const std::string& id_text) {
  LeaseContext c;
  c.lease = OrFail(client::MarketClient(g.NodeUrl()).Lease(LeaseIdOf(id_text)),
                   "reading lease " + id_text + " from the ledger")
                .value;
  c.provider = ProviderRecord(g, c.lease.provider);
  c.provider_address = OrFail(crypto::ParseAddress(c.lease.provider), "the lease's provider");
  c.tenant_address = OrFail(crypto::ParseAddress(c.lease.tenant), "the lease's tenant");
  c.chain_id = OrFail(client::NodeClient(g.NodeUrl()).Status(), "reading the chain id").chain_id;
  return c;
}

client::TenantClientOptions ClientOptions(const LeaseContext& c) {
  client::TenantClientOptions o;
  o.url = c.provider.tenant_api_uri;
  o.spki_sha256 = c.provider.tls_fingerprint;
  o.scope = {c.chain_id, c.provider_address, c.lease.lease_id};
  return o;
}

uint64_t WallNowMs() {
  return static_cast<uint64_t>(base::SystemClock::Instance().NowMs());
}

client::TenantClient ConnectAs(const GlobalOptions& g, const LeaseContext& c,
                               const std::string& from, const std::string& session) {
  const TenantArgs a{.from = from, .session = session};
  if (!a.from.empty()) {
    const crypto::KeyPair key = LoadKey(g, a.from);
    if (!(crypto::AddressOf(key.Public()) == c.tenant_address))
      FailCommand(ErrorCode::kPermissionDenied,
                  "key \"" + a.from + "\" is " +
                      crypto::AddressToString(crypto::AddressOf(key.Public())) + ", not lease " +
                      std::to_string(c.lease.lease_id) + "'s tenant " + c.lease.tenant +
                      ": the provider would answer 403; sign with the tenant's key");
    return client::TenantClient(ClientOptions(c), key);
  }
  const auto sessions = client::SessionKeys::AtHome(g.Home());
  auto found = OrFail(sessions.Usable(c.provider_address, c.lease.lease_id, WallNowMs(), a.session),
                      "reading session keys in " + sessions.Dir());
  if (!found) {
    const std::string lease = std::to_string(c.lease.lease_id);
    FailCommand(ErrorCode::kInvalidArgument,
                (a.session.empty() ? "no session key holds an unexpired grant for lease " + lease
                                   : "session key \"" + a.session +
                                         "\" holds no unexpired grant for lease " + lease) +
                    ": sign with the tenant key (--from KEY), or delegate once: `gpunet lease "
                    "grant " +
                    lease + " --session-key NAME --from KEY`");
  }
  return client::TenantClient(ClientOptions(c), found->key, found->grant);
}

/// The client that signs this lease's requests: the tenant key with --from, else
/// the session key named by --session (or the stored grant that lasts longest).
client::TenantClient Connect(const GlobalOptions& g, const LeaseContext& c, const TenantArgs& a) {
  return ConnectAs(g, c, a.from, a.session);
}

// ---------------------------------------------------------------- answers

/// What an answer's status means for the command: its error code and what to do.
struct StatusMeaning {
  int status;
  ErrorCode code;
  std::string_view hint;
};
constexpr StatusMeaning kStatusMeanings[] = {
    {400, ErrorCode::kInvalidArgument, ""},
    {401, ErrorCode::kPermissionDenied,
     "the provider did not accept the signature: if it speaks of the clock, set this machine's "
     "clock right (NTP)"},
    {403, ErrorCode::kPermissionDenied,
     "sign with the lease's tenant key (--from) or a session key it delegated and did not revoke "
     "(`gpunet lease grant`)"},
    {404, ErrorCode::kNotFound, ""},
    {409, ErrorCode::kConflict, ""},
    {410, ErrorCode::kConflict,
     "the lease is closed: only logs, events, status and outputs can be read, and only for the "
     "provider's outputs_retention after the close"},
    {413, ErrorCode::kLimitExceeded, ""},
    {429, ErrorCode::kUnavailable, "too many requests: try again in a minute"},
    {503, ErrorCode::kUnavailable,
     "the provider is not ready for this lease yet (its node may not have seen the block): try "
     "again shortly"},
};

/// Ends the command with the error an answer's status means, with what to do.
[[noreturn]] void FailAnswer(const client::TenantResponse& r, const std::string& what) {
  const std::string said = client::AnswerMessage(r.body);
  ErrorCode code = r.status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  std::string_view hint;
  for (const auto& m : kStatusMeanings)
    if (m.status == r.status) {
      code = m.code;
      hint = m.hint;
    }
  FailCommand(code, what + ": the provider answered " + std::to_string(r.status) +
                        (said.empty() ? "" : ": " + said) +
                        (hint.empty() ? "" : " (" + std::string(hint) + ")"));
}

/// The answer of a request that must succeed with `ok_status`.
client::TenantResponse Expect(base::Result<client::TenantResponse> r, const std::string& what,
                              int ok_status) {
  client::TenantResponse answer = OrFail(std::move(r), what);
  if (answer.status != ok_status) FailAnswer(answer, what);
  return answer;
}

json ParseJsonAnswer(const client::TenantResponse& r, const std::string& what) {
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    FailCommand(ErrorCode::kCorrupt, what + ": the provider's answer is not a JSON object");
  return j;
}

namespace {

// ---------------------------------------------------------------- environments, status

void RunEnvironments(const GlobalOptions& g, const TenantArgs& a) {
  const auto address = OrFail(
      ResolveAddressOrKey(a.provider, "PROVIDER", {crypto::Keystore::AtHome(g.Home()).Dir()}));
  const std::string text = crypto::AddressToString(address);
  const client::ProviderInfo p = ProviderRecord(g, text);
  client::TenantClientOptions o;
  o.url = p.tenant_api_uri;
  o.spki_sha256 = p.tls_fingerprint;
  o.scope.provider = address;
  // Unsigned: any key will do, none is used.
  client::TenantClient tenant(o, crypto::KeyPair::Generate());
  const std::string what = "GET /environments of provider " + text;
  const json j = ParseJsonAnswer(Expect(tenant.GetUnsigned("/environments"), what), what);
  if (g.Json()) return PrintJson(j);
  if (!j.contains("environments") || !j["environments"].is_array())
    FailCommand(ErrorCode::kCorrupt, what + ": no \"environments\" list in the answer");
  std::cout << "environments of " << text << " (the manifest's `environment`):\n";
  for (const auto& e : j["environments"]) {
    if (!e.is_object()) continue;
    std::cout << "  " << e.value("name", std::string("?")) << "  ("
              << e.value("kind", std::string("?"))
              << (e.contains("id") && e["id"].is_string() ? ", " + e["id"].get<std::string>() : "")
              << ")\n";
  }
  std::cout << std::flush;
}

/// A JSON value for people: a string without its quotes, anything else as JSON.
std::string Plain(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

void RunLeaseStatus(const GlobalOptions& g, const TenantArgs& a) {
  const LeaseContext c = ReadLease(g, a.lease);
  auto tenant = Connect(g, c, a);
  const std::string target = "/leases/" + std::to_string(c.lease.lease_id);
  const std::string what = "GET " + target;
  const json j = ParseJsonAnswer(Expect(tenant.Get(target), what), what);
  if (g.Json()) return PrintJson(j);
  std::cout << "lease " << c.lease.lease_id << " on " << c.lease.provider
            << " (ledger: " << c.lease.state << (c.lease.end == "none" ? "" : ", " + c.lease.end)
            << ")\n";
  if (j.contains("step")) std::cout << "  step       " << Plain(j["step"]) << "\n";
  if (j.contains("workload") && j["workload"].is_object()) {
    const auto& w = j["workload"];
    std::cout << "  workload   " << w.value("state", std::string("?"));
    if (w.contains("exit_code")) std::cout << ", exit " << w["exit_code"].dump();
    if (w.contains("reason") && w["reason"].is_string())
      std::cout << " (" << w["reason"].get<std::string>() << ")";
    std::cout << "\n";
  }
  if (j.contains("gpus") && j["gpus"].is_array())
    for (const auto& u : j["gpus"]) std::cout << "  gpu        " << Plain(u) << "\n";
  if (j.contains("ends_at_ms") && j["ends_at_ms"].is_number_unsigned())
    std::cout << "  ends       " << UtcText(j["ends_at_ms"].get<uint64_t>()) << "\n";
  std::cout << std::flush;
}

// ---------------------------------------------------------------- submit

/// Manifest files beside `path` and in the current folder whose canonical hash is
/// `hash`: which file the lease was created with, when it is still around.
std::vector<std::string> FilesWithHash(const std::string& path, const base::Hash32& hash) {
  std::vector<std::string> out;
  std::vector<fs::path> dirs{fs::path(path).parent_path(), fs::path(".")};
  if (dirs[0].empty()) dirs.erase(dirs.begin());
  std::error_code ec;
  size_t looked = 0;
  for (const auto& dir : dirs) {
    for (fs::directory_iterator it(dir.empty() ? "." : dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string ext = it->path().extension().string();
      if (ext != ".yaml" && ext != ".yml" && ext != ".json") continue;
      if (++looked > 200) return out;  // a folder of thousands is not searched through
      auto loaded = client::LoadManifestFile(it->path().string());
      const std::string name = it->path().lexically_normal().string();
      if (loaded && loaded->hash == hash && std::find(out.begin(), out.end(), name) == out.end())
        out.push_back(name);
    }
  }
  return out;
}

void RunSubmit(const GlobalOptions& g, const TenantArgs& a) {
  const client::LoadedManifest m = OrFail(client::LoadManifestFile(a.manifest), "--manifest");
  const LeaseContext c = ReadLease(g, a.lease);
  if (!(m.hash == c.lease.manifest_hash)) {
    const auto matches = FilesWithHash(a.manifest, c.lease.manifest_hash);
    std::string which = matches.empty() ? std::string("no manifest file in ") +
                                              (fs::path(a.manifest).parent_path().empty()
                                                   ? "this folder"
                                                   : "this folder or beside " + a.manifest) +
                                              " has that hash"
                                        : "it was created with " + matches.front();
    for (size_t i = 1; i < matches.size(); ++i) which += " (or " + matches[i] + ")";
    FailCommand(ErrorCode::kInvalidArgument,
                a.manifest + " hashes to " + base::ToHex(m.hash) + " but lease " +
                    std::to_string(c.lease.lease_id) + " was created with manifest_hash " +
                    base::ToHex(c.lease.manifest_hash) + ": " + which +
                    "; the provider runs only that manifest (nothing was sent). `gpunet manifest "
                    "check FILE` prints a file's hash");
  }
  // The provider starts the lease, and its own view of the ledger trails the ledger
  // by up to one reconcile: wait (bounded by --wait) while the lease is reserved and
  // while the provider answers that it has not seen the start.
  const uint64_t wait_ms = OrFail(client::ParseDurationMs(a.wait), "--wait");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  bool said_waiting = false;
  const auto wait_a_little = [&] {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!said_waiting)
      std::cerr << "lease " << c.lease.lease_id << ": waiting up to "
                << client::DescribeDurationMs(wait_ms) << " for provider " << c.lease.provider
                << " to start it" << std::endl;
    said_waiting = true;
    // About a devnet block: the wait ends within ~0.1 s of the start the provider saw.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return true;
  };
  client::MarketClient market(g.NodeUrl());
  for (std::string state = c.lease.state; state == "reserved" && wait_a_little();)
    state = OrFail(market.Lease(c.lease.lease_id), "reading lease " + a.lease).value.state;
  auto tenant = Connect(g, c, a);
  const std::string target = "/leases/" + std::to_string(c.lease.lease_id) + "/manifest";
  base::Result<client::TenantResponse> answer;
  do {
    answer = tenant.Post(target, m.canonical);
  } while (answer && client::SubmitTooEarly(answer->status, answer->body) && wait_a_little());
  const bool gave_up = said_waiting && std::chrono::steady_clock::now() >= deadline;
  const std::string what =
      "POST " + target +
      (gave_up ? " (after waiting " + client::DescribeDurationMs(wait_ms) + ")" : "");
  const json j = ParseJsonAnswer(Expect(std::move(answer), what), what);
  if (g.Json()) return PrintJson(j);
  const std::string id = std::to_string(c.lease.lease_id);
  const std::string state = j.value("workload", std::string("starting"));
  std::cout << "manifest " << a.manifest << " accepted for lease " << id << "; the workload is "
            << state << "\n";
  if (state == "waiting_for_secrets") {
    // The provider starts the command once every secret the manifest names is set.
    std::string names;
    for (const auto& n : j.value("secrets", json::array()))
      if (n.is_string()) names += " " + n.get<std::string>() + "=@FILE";
    std::cout << "  it starts once its secrets are set: gpunet lease secrets " << id << names
              << "\n";
  }
  std::cout << "  follow it: gpunet lease events " << id << " -f" << std::endl;
}

// ---------------------------------------------------------------- secrets

void RunSecrets(const GlobalOptions& g, const TenantArgs& a) {
  const auto specs = OrFail(client::ParseSecretArgs(a.secrets, a.from_env));
  std::map<std::string, std::string> values;
  for (const auto& s : specs) {
    if (s.source == client::SecretSource::kFile) {
      values[s.name] = OrFail(client::ReadSecretFile(s.file), "secret " + s.name);
    } else if (s.source == client::SecretSource::kEnv) {
      values[s.name] = OrFail(client::SecretFromEnv(s.name));
    } else {
      std::string value;
      if (!ReadLineFromTty("Value of secret " + s.name + ": ", false, value))
        FailCommand(ErrorCode::kInvalidArgument,
                    "secret " + s.name + " has no value and there is no terminal to ask on: give " +
                        s.name + "=@FILE or --from-env " + s.name);
      if (value.empty()) FailCommand(ErrorCode::kInvalidArgument, "secret " + s.name + " is empty");
      values[s.name] = std::move(value);
    }
  }
  std::string body = OrFail(client::SecretsBody(values));
  for (auto& [name, value] : values) sodium_memzero(value.data(), value.size());
  const LeaseContext c = ReadLease(g, a.lease);
  auto tenant = Connect(g, c, a);
  const std::string target = "/leases/" + std::to_string(c.lease.lease_id) + "/secrets";
  auto answer = tenant.Post(target, body);
  sodium_memzero(body.data(), body.size());
  const json j = ParseJsonAnswer(Expect(std::move(answer), "POST " + target), "POST " + target);
  if (g.Json()) return PrintJson(j);
  std::cout << "secrets set on lease " << c.lease.lease_id << ":";
  for (const auto& [name, value] : values) std::cout << " " << name;
  if (j.contains("complete") && j["complete"].is_boolean())
    std::cout << (j["complete"].get<bool>() ? "; every secret is set: the command starts"
                                            : "; the command waits for the others the manifest "
                                              "names");
  std::cout << std::endl;
}

}  // namespace

// ---------------------------------------------------------------- upload

/// A size for a progress line: bytes below 1 KiB, then KiB, then MiB with a tenth.
std::string SizeText(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  if (bytes < (1u << 20)) return std::to_string(bytes / 1024) + " KiB";
  const uint64_t tenths = bytes / (1u << 20) * 10 + bytes % (1u << 20) * 10 / (1u << 20);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " MiB";
}

/// What the provider holds of `remote` (nullopt: nothing yet).
std::optional<uint64_t> RemoteSize(client::TenantClient& tenant, uint64_t lease_id,
                                   const std::string& remote) {
  const std::string target = client::UploadTarget(lease_id, remote);
  const auto r = OrFail(tenant.Get(target), "GET " + target);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) FailAnswer(r, "asking how much of " + remote + " the provider holds");
  return OrFail(client::ParseSizeAnswer(r.body), "GET " + target);
}

/// Sends one file from where the provider's copy ends; a dropped connection or an
/// offset conflict asks again where it ends and goes on from there (a few times).
void UploadOne(const GlobalOptions& g, client::TenantClient& tenant, uint64_t lease_id,
               const client::UploadFile& f) {
  std::ifstream in(f.local, std::ios::binary);
  if (!in) FailCommand(ErrorCode::kIo, "cannot open " + f.local);
  int retries_left = 5;
  const std::optional<uint64_t> remote = RemoteSize(tenant, lease_id, f.remote);
  uint64_t offset = OrFail(client::UploadResumeOffset(f.size, remote), f.remote);
  if (remote && *remote == f.size) {  // an empty file too: it exists, and O_EXCL would refuse it
    if (!g.Json())
      std::cerr << f.remote << ": already there (" << SizeText(f.size) << ")" << std::endl;
    return;
  }
  std::string chunk;
  do {
    const uint64_t length = client::UploadChunkLength(f.size, offset);
    chunk.resize(length);
    in.seekg(static_cast<std::streamoff>(offset));
    if (length > 0 && !in.read(chunk.data(), static_cast<std::streamsize>(length)))
      FailCommand(ErrorCode::kIo, "cannot read " + f.local + " (did it change during the upload?)");
    const std::string target = client::UploadTarget(lease_id, f.remote, offset);
    auto r = tenant.Put(target, chunk, {{"Gpunet-Chunk-Sha256", client::Sha256Hex(chunk)}});
    const bool transient = (!r && r.error().code == ErrorCode::kUnavailable) ||
                           (r && (r->status == 409 || r->status == 502 || r->status == 503));
    if (transient && retries_left-- > 0) {
      std::cerr << f.remote << ": "
                << (r ? "the provider answered " + std::to_string(r->status) : r.error().message)
                << "; asking where to resume" << std::endl;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      offset = OrFail(client::UploadResumeOffset(f.size, RemoteSize(tenant, lease_id, f.remote)),
                      f.remote);
      continue;
    }
    const auto answer = Expect(std::move(r), "PUT " + target);
    const uint64_t size = OrFail(client::ParseSizeAnswer(answer.body), "PUT " + target);
    if (size != offset + length)
      FailCommand(ErrorCode::kCorrupt, f.remote + ": the provider holds " + std::to_string(size) +
                                           " bytes after a chunk that should end at " +
                                           std::to_string(offset + length));
    offset = size;
    if (!g.Json())
      std::cerr << "\r" << f.remote << ": " << SizeText(offset) << " / " << SizeText(f.size)
                << (f.size ? " (" + std::to_string(offset * 100 / f.size) + "%)" : "")
                << std::flush;
  } while (offset < f.size);
  if (!g.Json()) std::cerr << std::endl;
}

namespace {

void RunUpload(const GlobalOptions& g, const TenantArgs& a) {
  const auto files = OrFail(client::ListUploadFiles(a.src, a.dest), "upload");
  const LeaseContext c = ReadLease(g, a.lease);
  auto tenant = Connect(g, c, a);
  uint64_t total = 0;
  for (const auto& f : files) {
    UploadOne(g, tenant, c.lease.lease_id, f);
    total += f.size;
  }
  if (g.Json()) {
    json j = json::array();
    for (const auto& f : files) j.push_back({{"path", f.remote}, {"size", f.size}});
    return PrintJson({{"uploaded", j}});
  }
  std::cout << files.size() << " file(s), " << SizeText(total) << " uploaded to lease "
            << c.lease.lease_id << std::endl;
}

// ---------------------------------------------------------------- logs and events

/// Runs `step` until it says stop; with `follow`, a connection that drops is
/// retried (after a pause, up to a limit) from the same cursor, so nothing is
/// missed or repeated.
template <class Step>
void FollowLoop(bool follow, Step&& step) {
  int failures = 0;
  for (;;) {
    auto more = step();
    if (more) {
      failures = 0;
      if (!*more) return;
      continue;
    }
    if (!follow || more.error().code != ErrorCode::kUnavailable || ++failures > 30)
      throw CommandFailed{more.error()};
    std::cerr << "(reconnecting: " << more.error().message << ")" << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(std::min(failures, 5)));
  }
}

/// The workload's bytes as the terminal gets them: harmless (client/terminal_text.h)
/// unless --raw.
class LogWriter {
 public:
  explicit LogWriter(bool raw) : m_raw(raw) {}
  void Write(std::ostream& os, client::TerminalSanitizer& s, std::string_view bytes) {
    if (m_raw) {
      os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    } else {
      const std::string text = s.Feed(bytes);
      os.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
    os.flush();
  }
  /// The end of the streams (a character cut off at the end becomes U+FFFD).
  void Finish(std::ostream& err_os = std::cerr) {
    if (m_raw) return;
    std::cout << m_out.Finish() << std::flush;
    err_os << m_err.Finish() << std::flush;
  }
  client::TerminalSanitizer& Out() { return m_out; }
  client::TerminalSanitizer& Err() { return m_err; }

 private:
  bool m_raw;
  client::TerminalSanitizer m_out, m_err;
};

/// `logs -f`: both streams (stderr only with --stderr) as they come, the funds
/// warnings and the follow's notices on stderr, until the workload ends (exit 0) or
/// the lease closes under it (non-zero, saying why) or its provider stays away.
void FollowLogs(const GlobalOptions& g, const LeaseContext& c, const client::TenantClient& tenant,
                const TenantArgs& a) {
  client::FollowOptions o;
  o.lease_id = c.lease.lease_id;
  o.want_stdout = !a.stderr_stream;
  o.want_stderr = true;
  LogWriter writer(a.raw);
  client::FollowCallbacks cb;
  cb.data = [&](client::LogStream stream, std::string_view bytes) {
    // One stream (--stderr) goes to stdout, as without -f; both: each to its own.
    if (stream == client::LogStream::kStdout)
      writer.Write(std::cout, writer.Out(), bytes);
    else
      writer.Write(a.stderr_stream ? std::cout : std::cerr, writer.Err(), bytes);
  };
  cb.funds = [](const client::FundsWarning& w) { std::cerr << "gpunet: " << w.text << std::endl; };
  cb.notice = [](std::string_view line) { std::cerr << "gpunet: " << line << std::endl; };
  const client::FollowEnd end = OrFail(
      client::FollowLease(client::TenantFollowSource(tenant, g.NodeUrl(), c.lease.lease_id), o, cb),
      "following lease " + std::to_string(c.lease.lease_id));
  writer.Finish(a.stderr_stream ? std::cout : std::cerr);
  switch (end.kind) {
    case client::FollowEndKind::kWorkloadEnded:
    case client::FollowEndKind::kCancelled:
      std::cerr << "gpunet: " << end.message << std::endl;
      return;
    case client::FollowEndKind::kLeaseClosed:
      FailCommand(ErrorCode::kConflict, end.message);
    case client::FollowEndKind::kUnreachable:
      FailCommand(ErrorCode::kUnavailable, end.message);
  }
}

void RunLogs(const GlobalOptions& g, const TenantArgs& a) {
  const LeaseContext c = ReadLease(g, a.lease);
  auto tenant = Connect(g, c, a);
  if (a.follow) return FollowLogs(g, c, tenant, a);
  LogWriter writer(a.raw);
  uint64_t offset = 0;
  FollowLoop(false, [&]() -> base::Result<bool> {
    const std::string target = client::LogsTarget(c.lease.lease_id, a.stderr_stream, offset,
                                                  client::kLogsBytesPerRequest, 0);
    GPUNET_TRY_ASSIGN(auto r, tenant.Get(target));
    if (r.status != 200) FailAnswer(r, "GET " + target);
    writer.Write(std::cout, writer.Out(), r.body);
    GPUNET_TRY_ASSIGN(offset,
                      client::NextOffset(offset, r.body.size(), r.Header("Gpunet-Next-Offset")));
    const bool ended = r.Header("Gpunet-Ended").value_or("0") == "1";
    // Page on until caught up: a provider may send less than asked with more to come.
    return !r.body.empty() && !ended;
  });
  writer.Finish();
}

void RunEvents(const GlobalOptions& g, const TenantArgs& a) {
  const LeaseContext c = ReadLease(g, a.lease);
  auto tenant = Connect(g, c, a);
  uint64_t after = 0;
  json all = json::array();
  FollowLoop(a.follow, [&]() -> base::Result<bool> {
    const std::string target =
        client::EventsTarget(c.lease.lease_id, after, a.follow ? client::kFollowWaitMs : 0);
    GPUNET_TRY_ASSIGN(auto r, tenant.Get(target));
    if (r.status == 410 && a.follow) return false;
    if (r.status != 200) FailAnswer(r, "GET " + target);
    GPUNET_TRY_ASSIGN(const auto events, client::ParseEventsAnswer(r.body, after));
    bool closed = false;
    for (const auto& e : events) {
      after = e.seq;
      closed = closed || e.kind.find("closed") != std::string::npos;
      if (g.Json() && !a.follow) {
        all.push_back(
            {{"seq", e.seq}, {"time_ms", e.time_ms}, {"kind", e.kind}, {"message", e.message}});
      } else if (g.Json()) {
        std::cout << json{{"seq", e.seq},
                          {"time_ms", e.time_ms},
                          {"kind", e.kind},
                          {"message", e.message}}
                         .dump()
                  << std::endl;
      } else {
        std::cout << UtcText(static_cast<uint64_t>(std::max<int64_t>(e.time_ms, 0))) << "  #"
                  << e.seq << "  " << e.kind << (e.message.empty() ? "" : "  " + e.message)
                  << std::endl;
      }
    }
    if (a.follow) return !closed;
    return !events.empty();  // page until the provider has no more
  });
  if (g.Json() && !a.follow) PrintJson({{"events", all}});
}

}  // namespace

// ---------------------------------------------------------------- watch

/// `lease watch`: until the lease closes, reads it every --every; tops it up
/// (--auto-topup: up to the cap in all, client::DecideWatch) and closes it when its
/// workload exits (--close-on-exit); the funds warnings on stderr. A failed tx is said
/// and tried again at the next read: it never ends the watch. Ends 0 when the
/// lease closed, saying why.
void RunWatch(const GlobalOptions& g, const TenantArgs& a) {
  const uint64_t cap =
      a.auto_topup.empty() ? 0 : OrFail(client::ParseAmount(a.auto_topup), "--auto-topup");
  if ((cap != 0 || a.close_on_exit) && a.from.empty())
    FailCommand(ErrorCode::kInvalidArgument,
                "--auto-topup and --close-on-exit send txs: name the tenant key with --from KEY");
  const uint64_t every_ms = OrFail(client::ParseDurationMs(a.every), "--every");
  if (every_ms < 200 || every_ms > 600'000)
    FailCommand(ErrorCode::kInvalidArgument, "--every is between 200ms and 10m");
  if (cap != 0 || a.close_on_exit) {
    // The watch runs unattended: the key's passphrase is asked once, now, not at each
    // top-up (kept in this process's environment, where LoadKey reads it), and a
    // wrong one fails here rather than when the funds are about to end.
    if (const char* env = std::getenv("GPUNET_PASSPHRASE"); env == nullptr || *env == '\0') {
      std::string passphrase;
      if (ReadLineFromTty("Passphrase for key \"" + a.from + "\": ", false, passphrase))
        ::setenv("GPUNET_PASSPHRASE", passphrase.c_str(), 1);
      sodium_memzero(passphrase.data(), passphrase.size());
    }
    (void)LoadKey(g, a.from);
  }
  const LeaseContext c = ReadLease(g, a.lease);
  const uint64_t id = c.lease.lease_id;
  std::optional<client::TenantClient> tenant;
  if (a.close_on_exit) tenant.emplace(Connect(g, c, a));
  client::MarketClient market(g.NodeUrl());
  client::FundsWarner warner;
  client::TopupTally topped_up;  // a timed-out deposit counts against the cap
  std::string last_why, last_problem;
  auto problem = [&](const std::string& line) {  // said once until it changes
    if (line != last_problem) std::cerr << "gpunet: " << line << std::endl;
    last_problem = line;
  };
  std::cerr << "watching lease " << id
            << (cap ? ": auto top-up up to " + client::FormatGpn(cap) + " GPN" : std::string())
            << (a.close_on_exit
                    ? std::string(cap ? "," : ":") + " closes it when the workload exits"
                    : std::string())
            << std::endl;
  for (bool first = true;; first = false) {
    if (!first) std::this_thread::sleep_for(std::chrono::milliseconds(every_ms));
    auto answer = market.Lease(id);
    if (!answer) {
      problem("node unreachable, retrying: " + answer.error().message);
      continue;
    }
    const client::LeaseInfo& lease = answer->value;
    bool exited = false;
    if (tenant && lease.state == "started") {
      auto status = tenant->Get("/leases/" + std::to_string(id));
      if (status && status->status == 200)
        exited = client::ParseWorkloadExit(status->body).has_value();
      else if (!status)
        problem("provider unreachable, retrying: " + status.error().message);
    }
    const uint64_t now = std::max<uint64_t>(lease.as_of_ms, WallNowMs());
    if (auto w = warner.Check(lease, now); w && cap == 0)
      std::cerr << "gpunet: " << w->text << std::endl;
    ResolveTopups(g, topped_up);
    const client::WatchDecision d =
        client::DecideWatch({&lease, now, cap, topped_up.CountedUgpn(), a.close_on_exit, exited});
    switch (d.action) {
      case client::WatchAction::kDone:
        if (g.Json())
          return PrintJson({{"lease_id", id},
                            {"end", lease.end},
                            {"closed_ms", lease.closed_ms},
                            {"topped_up_ugpn", topped_up.CommittedUgpn()}});
        std::cout << d.why
                  << (topped_up.CommittedUgpn()
                          ? "; auto top-up deposited " +
                                client::FormatGpn(topped_up.CommittedUgpn()) + " GPN"
                          : std::string())
                  << std::endl;
        return;
      case client::WatchAction::kDeposit:
        std::cerr << "gpunet: " << d.why << std::endl;
        if (auto failed = SendTopup(g, {a.from, 0, ""}, id, d.deposit_ugpn, topped_up);
            !failed.empty())
          problem("auto top-up failed, trying again next time: " + failed);
        else
          last_problem.clear();
        break;
      case client::WatchAction::kClose:
        std::cerr << "gpunet: " << d.why << std::endl;
        try {
          SendMsgs(g, {a.from, 0, ""}, {codec::MsgLeaseClose{id, codec::CloseReason::kNormal}});
        } catch (const CommandFailed& f) {
          problem("closing failed, trying again next time: " + f.error.message);
        }
        break;
      case client::WatchAction::kWait:
        if (!d.why.empty() && d.why != last_why) std::cerr << "gpunet: " << d.why << std::endl;
        last_why = d.why;
        break;
    }
  }
}

// ---------------------------------------------------------------- outputs

/// Downloads output `name` to `dest` in pieces, resumable through its part file
/// (client::OutputPartPath: this lease's and this output's only), never past
/// `listed_size` (the listing's size; nullopt: the provider's first answer's).
void DownloadOutput(client::TenantClient& tenant, uint64_t lease_id, const std::string& name,
                    const std::string& dest, std::optional<uint64_t> listed_size) {
  const std::string part = client::OutputPartPath(dest, lease_id, name);
  std::error_code ec;
  if (const fs::path parent = fs::path(dest).parent_path(); !parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec)
      FailCommand(ErrorCode::kIo, "cannot make folder " + parent.string() + ": " + ec.message());
  }
  uint64_t offset = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
  std::optional<uint64_t> total = listed_size;
  // A part longer than the file is no start of it (the file was rewritten): start over.
  const auto restart_if_longer = [&] {
    if (!total || offset <= *total) return false;
    fs::resize_file(part, 0, ec);
    offset = 0;
    return true;
  };
  restart_if_longer();
  std::ofstream out(part, std::ios::binary | std::ios::app);
  if (!out) FailCommand(ErrorCode::kIo, "cannot write " + part);
  while (!total || offset < *total) {
    const uint64_t max = total ? std::min<uint64_t>(client::kUploadChunkBytes, *total - offset)
                               : client::kUploadChunkBytes;
    const std::string target = client::OutputsTarget(lease_id, name, offset, max);
    const auto r = Expect(tenant.Get(target), "GET " + target);
    if (!total) {
      const auto size = r.Header("Gpunet-Size");
      total = size ? OrFail(client::ParseDecimalU64(*size), "GET " + target + ": Gpunet-Size")
                   : offset + r.body.size();
      if (restart_if_longer()) {
        out.close();
        out.open(part, std::ios::binary | std::ios::trunc);
        if (!out) FailCommand(ErrorCode::kIo, "cannot write " + part);
        continue;
      }
    }
    OrFail(client::CheckOutputPiece(offset, r.body.size(), *total), "GET " + target);
    out.write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
    if (!out) FailCommand(ErrorCode::kIo, "cannot write " + part);
    offset = OrFail(client::NextOffset(offset, r.body.size(), r.Header("Gpunet-Next-Offset")),
                    "GET " + target);
    if (r.body.empty()) break;
  }
  out.close();
  if (std::rename(part.c_str(), dest.c_str()) != 0)
    FailCommand(ErrorCode::kIo, "cannot rename " + part + " to " + dest);
}

namespace {

void RunOutputs(const GlobalOptions& g, const TenantArgs& a) {
  const LeaseContext c = ReadLease(g, a.lease);
  auto tenant = Connect(g, c, a);
  const uint64_t id = c.lease.lease_id;
  if (!a.path.empty()) {
    OrFail(client::CheckTenantPath(a.path), "PATH");
    const std::string dest = a.out.empty() ? fs::path(a.path).filename().string() : a.out;
    DownloadOutput(tenant, id, a.path, dest, std::nullopt);
    if (g.Json()) return PrintJson({{"downloaded", {{{"path", a.path}, {"to", dest}}}}});
    std::cout << a.path << " -> " << dest << std::endl;
    return;
  }
  const std::string target = client::OutputsTarget(id);
  const auto r = Expect(tenant.Get(target), "GET " + target);
  const auto answer = OrFail(client::ParseOutputsAnswer(r.body), "GET " + target);
  // Names no request can name (a control byte, too long): reported like symlinks.
  if (!g.Json())
    for (const auto& why : answer.skipped) std::cerr << "skipped: " << why << std::endl;
  if (a.out.empty()) {
    if (g.Json()) return PrintJson(json::parse(r.body, nullptr, false));
    if (answer.entries.empty() && answer.skipped.empty()) std::cout << "no outputs yet\n";
    for (const auto& e : answer.entries)
      std::cout << e.type << "  " << e.size << "  " << e.name << "\n";
    std::cout << std::flush;
    return;
  }
  json done = json::array();
  for (const auto& e : answer.entries) {
    if (e.type == "directory") continue;  // its files are listed beneath it
    if (e.type != "file") {
      if (!g.Json()) std::cerr << "skipped " << e.name << " (a " << e.type << ")" << std::endl;
      continue;
    }
    // ParseOutputsAnswer checked the name: relative, no "..", so it stays beneath -o.
    const std::string dest = (fs::path(a.out) / e.name).string();
    DownloadOutput(tenant, id, e.name, dest, e.size);
    done.push_back({{"path", e.name}, {"to", dest}});
    if (!g.Json()) std::cout << e.name << " -> " << dest << std::endl;
  }
  if (g.Json()) PrintJson({{"downloaded", done}});
}

// ---------------------------------------------------------------- grant, revoke

}  // namespace

LeaseGrant GrantLease(const GlobalOptions& g, const LeaseContext& c, const std::string& from,
                      const std::string& session_name, const std::string& expires_text) {
  const crypto::KeyPair tenant_key = LoadKey(g, from);
  if (!(crypto::AddressOf(tenant_key.Public()) == c.tenant_address))
    FailCommand(ErrorCode::kPermissionDenied,
                "key \"" + from + "\" is not lease " + std::to_string(c.lease.lease_id) +
                    "'s tenant " + c.lease.tenant + ": only the tenant can delegate the lease");
  const uint64_t now = WallNowMs();
  // No grant may outlive the lease (the provider refuses one that does): at most its
  // paid_until, which the lease's deposits extend.
  LeaseGrant out;
  out.expires_ms = c.lease.paid_until_ms;
  if (!expires_text.empty()) {
    const uint64_t asked = now + OrFail(client::ParseDurationMs(expires_text), "--expires");
    if (asked < out.expires_ms || out.expires_ms == 0) out.expires_ms = asked;
  }
  if (out.expires_ms <= now + client::kGrantUseMarginMs)
    FailCommand(ErrorCode::kInvalidArgument,
                c.lease.paid_until_ms == 0 && expires_text.empty()
                    ? "lease " + std::to_string(c.lease.lease_id) +
                          " has not started, so it has no end yet: give "
                          "--expires DURATION (e.g. 8h)"
                    : "the grant would end within a minute (the lease's paid time ends at " +
                          UtcText(c.lease.paid_until_ms) +
                          "): deposit more or give a longer --expires");
  auto sessions = client::SessionKeys::AtHome(g.Home());
  const crypto::KeyPair session =
      OrFail(sessions.LoadOrCreate(session_name, out.created), "--session-key");
  client::GrantId grant_id;
  randombytes_buf(grant_id.data.data(), grant_id.kSize);
  const client::RequestScope scope{c.chain_id, c.provider_address, c.lease.lease_id};
  out.grant = client::SignGrant(tenant_key, scope, session.Public(), out.expires_ms, grant_id);
  OrFail(sessions.SaveGrant(session_name, out.grant), "storing the grant");
  return out;
}

namespace {

void RunGrant(const GlobalOptions& g, const TenantArgs& a) {
  if (a.from.empty())
    FailCommand(ErrorCode::kInvalidArgument,
                "--from KEY is required: the tenant key signs the grant");
  const LeaseContext c = ReadLease(g, a.lease);
  const LeaseGrant made = GrantLease(g, c, a.from, a.session, a.expires);
  const auto& grant_id = made.grant.grant_id;
  const uint64_t expires = made.expires_ms;
  const bool created = made.created;
  const auto sessions = client::SessionKeys::AtHome(g.Home());
  if (g.Json())
    return PrintJson({{"grant_id", base::ToHex(grant_id)},
                      {"session_key", a.session},
                      {"public_key", base::ToHex(made.grant.session_key)},
                      {"lease_id", c.lease.lease_id},
                      {"expires_ms", expires},
                      {"created", created}});
  std::cout << "grant " << base::ToHex(grant_id) << ": session key \"" << a.session << "\""
            << (created ? " (new, in " + sessions.Dir() + ")" : "") << " may act on lease "
            << c.lease.lease_id << " until " << UtcText(expires)
            << "\n  later `gpunet lease ...` verbs on this lease use it without --from"
            << "\n  revoke it: gpunet lease revoke " << c.lease.lease_id << " "
            << base::ToHex(grant_id) << " --from " << a.from << std::endl;
}

void RunRevoke(const GlobalOptions& g, const TenantArgs& a) {
  if (a.from.empty())
    FailCommand(ErrorCode::kInvalidArgument, "--from KEY is required: the tenant key revokes");
  const LeaseContext c = ReadLease(g, a.lease);
  auto sessions = client::SessionKeys::AtHome(g.Home());
  const auto grants = OrFail(sessions.GrantsFor(c.provider_address, c.lease.lease_id));
  const auto it = std::find_if(grants.begin(), grants.end(), [&](const client::SessionGrant& s) {
    return base::ToHex(s.grant.grant_id) == a.grant_id;
  });
  if (it == grants.end())
    FailCommand(ErrorCode::kNotFound, "no grant " + a.grant_id + " for lease " + a.lease + " in " +
                                          sessions.Dir() +
                                          " (the revocation names the grant's "
                                          "expiry, which only its file holds)");
  const crypto::KeyPair tenant_key = LoadKey(g, a.from);
  const client::RequestScope scope{c.chain_id, c.provider_address, c.lease.lease_id};
  const client::GrantRevocation revocation = client::SignRevocation(tenant_key, scope, it->grant);
  client::TenantClient tenant(ClientOptions(c), tenant_key);
  const std::string target = "/leases/" + std::to_string(c.lease.lease_id) + "/grants/revoke";
  // The body is the signed revocation itself (its hex): the provider keeps it until the
  // grant's expiry, and a request signature alone would not say when that is.
  const json j = ParseJsonAnswer(
      Expect(tenant.Post(target, client::EncodeRevocation(revocation), "text/plain"),
             "POST " + target),
      "POST " + target);
  OrFail(sessions.RemoveGrant(it->name, c.lease.lease_id), "removing the revoked grant's file");
  if (g.Json()) return PrintJson(j);
  std::cout << "grant " << a.grant_id << " of session key \"" << it->name << "\" revoked on lease "
            << c.lease.lease_id << std::endl;
}

// ---------------------------------------------------------------- registration

void AddSigner(CLI::App* cmd, TenantArgs& a) {
  cmd->add_option("--from", a.from,
                  "The tenant key (asks its passphrase); default: a session key's grant");
  cmd->add_option("--session", a.session, "Sign with this session key (`gpunet lease grant`)");
}

CLI::App* LeaseVerb(CLI::App* lease, std::string_view name, std::string_view help, TenantArgs& a,
                    bool signer = true) {
  auto* cmd = lease->add_subcommand(std::string(name), std::string(help));
  cmd->add_option("LEASE", a.lease, "Lease id")->required();
  if (signer) AddSigner(cmd, a);
  return cmd;
}

CLI::App* AddLogsVerb(CLI::App* parent, GlobalOptions& g, const std::shared_ptr<TenantArgs>& ta) {
  auto* logs =
      LeaseVerb(parent, "logs", "The workload's output (stdout; both streams with -f)", *ta);
  logs->add_flag("--stderr", ta->stderr_stream, "Standard error only (on stdout)");
  logs->add_flag("--follow,-f", ta->follow,
                 "Keep following both streams until the workload ends or the lease closes "
                 "(then exit non-zero, saying why)");
  logs->add_flag("--raw", ta->raw,
                 "The workload's bytes as they are (default: control sequences dropped, "
                 "invalid UTF-8 replaced)");
  logs->footer("Examples:\n  gpunet logs 7\n  gpunet logs 7 -f");
  logs->callback([&g, ta] { RunLogs(g, *ta); });
  return logs;
}

void RegisterReadVerbs(CLI::App* lease, GlobalOptions& g, const std::shared_ptr<TenantArgs>& ta) {
  auto* status = LeaseVerb(lease, "status", "The lease's workload as its provider sees it", *ta);
  status->footer("Example:\n  gpunet lease status 7");
  status->callback([&g, ta] { RunLeaseStatus(g, *ta); });
  auto* events = LeaseVerb(lease, "events", "The lease's lifecycle events on the provider", *ta);
  events->add_flag("--follow,-f", ta->follow, "Keep following (long-poll; reconnects)");
  events->footer("Example:\n  gpunet lease events 7 -f");
  events->callback([&g, ta] { RunEvents(g, *ta); });
  // `gpunet logs` is the verb; `gpunet lease logs` stays as a hidden alias.
  AddLogsVerb(lease, g, ta)->group("");
  auto* watch =
      LeaseVerb(lease, "watch", "Watch a lease until it closes: top it up, close it on exit", *ta);
  watch->add_option("--auto-topup", ta->auto_topup,
                    "Deposit an hour's worth when the funds end within 10 minutes, up to this "
                    "many GPN in all");
  watch->add_flag("--close-on-exit", ta->close_on_exit,
                  "Close the lease when its workload exits (the unused deposit is refunded)");
  watch->add_option("--every", ta->every, "How often it looks (default 2s)");
  watch->footer("Example:\n  gpunet lease watch 7 --auto-topup 20 --close-on-exit --from tenant");
  watch->callback([&g, ta] { RunWatch(g, *ta); });
  auto* outputs = LeaseVerb(lease, "outputs", "List the outputs; download one file, or all", *ta);
  outputs->add_option("PATH", ta->path, "An output file (relative to the outputs directory)");
  outputs->add_option("-o,--dest", ta->out,
                      "Where to: the file (with PATH), or a folder for all of them");
  outputs->footer(
      "Examples:\n  gpunet lease outputs 7\n  gpunet lease outputs 7 model.bin -o ./model.bin\n"
      "  gpunet lease outputs 7 -o ./results");
  outputs->callback([&g, ta] { RunOutputs(g, *ta); });
}

void RegisterWriteVerbs(CLI::App* lease, GlobalOptions& g, const std::shared_ptr<TenantArgs>& ta) {
  auto* submit = LeaseVerb(lease, "submit", "Send the lease's manifest: its workload starts", *ta);
  submit->add_option("--manifest", ta->manifest, "The manifest file the lease was created with")
      ->required();
  submit->add_option("--wait", ta->wait,
                     "How long to wait for the provider to start the lease (default 60s; 0s: "
                     "do not wait)");
  submit->footer("Example:\n  gpunet lease submit 7 --manifest manifest.yaml");
  submit->callback([&g, ta] { RunSubmit(g, *ta); });
  auto* secrets = LeaseVerb(lease, "secrets", "Set secrets the manifest names", *ta);
  secrets->add_option("SECRET", ta->secrets, "NAME=@FILE, or NAME to be asked (never NAME=VALUE)");
  secrets->add_option("--from-env", ta->from_env, "NAME: the value of variable NAME here");
  secrets->footer(
      "Values never go on the command line.\nExample:\n  gpunet lease secrets 7 "
      "HF_TOKEN=@~/.hf_token --from-env WANDB_API_KEY DB_PASSWORD");
  secrets->callback([&g, ta] { RunSecrets(g, *ta); });
  auto* upload = LeaseVerb(lease, "upload", "Upload a file or folder into the work directory", *ta);
  upload->add_option("SRC", ta->src, "A file or folder here")->required();
  upload->add_option("DEST", ta->dest, "Its name in the work directory (default SRC's name)");
  upload->footer(
      "Chunked (8 MiB, each hashed) and resumable: run it again after a break.\n"
      "Example:\n  gpunet lease upload 7 ./data data");
  upload->callback([&g, ta] { RunUpload(g, *ta); });
  auto* grant = LeaseVerb(lease, "grant", "Delegate the lease to a session key", *ta, false);
  grant->add_option("--session-key", ta->session, "Its name (made when new)")->required();
  grant->add_option("--expires", ta->expires, "How long (8h, 2d; default and at most: the lease)");
  grant->add_option("--from", ta->from, "The tenant key")->required();
  grant->footer("Example:\n  gpunet lease grant 7 --session-key laptop --expires 8h --from tenant");
  grant->callback([&g, ta] { RunGrant(g, *ta); });
  auto* revoke =
      LeaseVerb(lease, "revoke", "Revoke a grant (the provider refuses it after)", *ta, false);
  revoke->add_option("GRANT_ID", ta->grant_id, "What `gpunet lease grant` printed")->required();
  revoke->add_option("--from", ta->from, "The tenant key")->required();
  revoke->footer("Example:\n  gpunet lease revoke 7 3f0c... --from tenant");
  revoke->callback([&g, ta] { RunRevoke(g, *ta); });
}

}  // namespace

void RegisterLogsCommand(CLI::App& app, GlobalOptions& g) {
  AddLogsVerb(&app, g, std::make_shared<TenantArgs>());
}

void RegisterLeaseTenantCommands(CLI::App& lease, GlobalOptions& g) {
  auto ta = std::make_shared<TenantArgs>();
  auto* env = lease.add_subcommand(
      "environments", "What a provider runs (its sandbox and images): check before leasing");
  env->add_option("PROVIDER", ta->provider, "Provider key name or address")->required();
  env->footer("Example:\n  gpunet lease environments gpn1...");
  env->callback([&g, ta] { RunEnvironments(g, *ta); });
  RegisterReadVerbs(&lease, g, ta);
  RegisterWriteVerbs(&lease, g, ta);
}

}  // namespace gpunet::apps
