#include "provider/broker_service.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/file_util.h"
#include "client/manifest.h"
#include "client/tenant_request.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "provider/lease_book.h"
#include "runtime/outputs.h"
#include "runtime/uploads.h"
#include "server/messages.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

namespace {

constexpr int64_t kPollStepMs = 100;

Json ErrorBody(std::string_view code, const std::string& message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

/// The node's mapping (server::HttpStatusFor) but for the tenant API's own: 413 over
/// a cap, 401 a bad signature (docs/tenant-api.md).
int HttpStatusOf(ErrorCode code) {
  if (code == ErrorCode::kLimitExceeded) return 413;
  if (code == ErrorCode::kBadSignature) return 401;
  return server::HttpStatusFor(code);
}

BrokerFrame ErrorReply(const base::Error& error) {
  return BrokerReply(HttpStatusOf(error.code), error.message,
                     ErrorBody(base::ErrorCodeName(error.code), error.message)
                         .dump(-1, ' ', false, Json::error_handler_t::replace));
}

BrokerFrame ErrorReply(int status, std::string_view code, const std::string& message) {
  return BrokerReply(status, message,
                     ErrorBody(code, message).dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::optional<uint64_t> ParseU64(std::string_view text) {
  uint64_t v = 0;
  if (text.empty() || text.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// %XX decoded (client::CheckRequestTarget already refused encoded '/', '\' and NUL).
std::optional<std::string> PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    int hi = HexDigit(text[i + 1]), lo = HexDigit(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

base::Result<BrokerRoute> ParseBrokerRoute(std::string_view target, uint64_t lease_id) {
  GPUNET_TRY(client::CheckRequestTarget(target));
  const size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  const std::string prefix = "/leases/" + std::to_string(lease_id);
  if (!path.starts_with(prefix) || (path.size() > prefix.size() && path[prefix.size()] != '/'))
    return Fail(ErrorCode::kInvalidArgument,
                "the request's target does not name lease " + std::to_string(lease_id));
  BrokerRoute route;
  auto decoded = PercentDecode(path.substr(prefix.size()));
  if (!decoded) return Fail(ErrorCode::kInvalidArgument, "a bad percent-escape in the target");
  route.rest = std::move(*decoded);
  if (q == std::string_view::npos) return route;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    std::string key(pair.substr(0, eq));
    std::string value(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!route.query.emplace(std::move(key), std::move(value)).second)
      return Fail(ErrorCode::kInvalidArgument, "a query parameter given twice");
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return route;
}

namespace {

using Route = BrokerRoute;

/// A numeric query parameter: `fallback` when absent, kInvalidArgument when not a number.
base::Result<uint64_t> QueryNumber(const Route& route, const std::string& key, uint64_t fallback) {
  auto it = route.query.find(key);
  if (it == route.query.end()) return fallback;
  auto v = ParseU64(it->second);
  if (!v) return Fail(ErrorCode::kInvalidArgument, "query parameter " + key + " is not a number");
  return *v;
}

struct OpRule {
  std::string_view method;
  std::string_view path;  ///< exact rest, or a prefix when it ends in '/'
  RouteKind kind;
};

std::optional<OpRule> RuleOf(BrokerOp op, std::string_view method) {
  switch (op) {
    case BrokerOp::kStatus:
      return OpRule{"GET", "", RouteKind::kRead};
    case BrokerOp::kEvents:
      return OpRule{"GET", "/events", RouteKind::kRead};
    case BrokerOp::kManifest:
      return OpRule{"POST", "/manifest", RouteKind::kWrite};
    case BrokerOp::kSecrets:
      return OpRule{"POST", "/secrets", RouteKind::kWrite};
    case BrokerOp::kUpload:  // GET asks for the resume point
      return OpRule{method == "GET" ? "GET" : "PUT", "/files/", RouteKind::kWrite};
    case BrokerOp::kLogs:
      return OpRule{"GET", "/logs", RouteKind::kRead};
    case BrokerOp::kOutputs:
      return OpRule{"GET", "/outputs", RouteKind::kRead};
    case BrokerOp::kAuthorize:
      return OpRule{"POST", "/grants/revoke", RouteKind::kWrite};
    case BrokerOp::kSession:  // a write: refused (410) once the lease closed
      return OpRule{"GET", "/session", RouteKind::kWrite};
    default:
      return std::nullopt;
  }
}

bool RouteMatches(const OpRule& rule, BrokerOp op, const std::string& rest) {
  if (op == BrokerOp::kOutputs) return rest == "/outputs" || rest.starts_with("/outputs/");
  if (rule.path.ends_with('/'))
    return rest.starts_with(rule.path) && rest.size() > rule.path.size();
  return rest == rule.path;
}

/// The file path of a /files/... or /outputs/... route ("" for /outputs).
std::string RoutePath(const std::string& rest, std::string_view head) {
  if (rest.size() <= head.size() + 1) return "";
  return rest.substr(head.size() + 1);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return base::ToHex(base::ByteSpan(digest, sizeof digest));
}

base::Result<LeaseView> LeaseViewOf(const TenantLeaseView& lease) {
  GPUNET_CHECK(lease.ledger.has_value());
  const client::LeaseInfo& l = *lease.ledger;
  LeaseView view;
  view.lease_id = l.lease_id;
  GPUNET_TRY_ASSIGN(view.tenant, crypto::ParseAddress(l.tenant));
  GPUNET_TRY_ASSIGN(view.provider, crypto::ParseAddress(l.provider));
  // Before LeaseStarted nothing is paid yet: a grant may run to the start deadline.
  view.ends_at_ms = std::max(l.paid_until_ms, l.start_deadline_ms);
  view.closed = !lease.record.end.empty() || l.state == "closed";
  view.closed_ms = lease.record.closed_ms != 0 ? lease.record.closed_ms : l.closed_ms;
  return view;
}

const char* EntryType(runtime::OutputEntry::Type type) {
  switch (type) {
    case runtime::OutputEntry::Type::kFile:
      return "file";
    case runtime::OutputEntry::Type::kDirectory:
      return "directory";
    case runtime::OutputEntry::Type::kSymlink:
      return "symlink";
    case runtime::OutputEntry::Type::kOther:
      return "other";
  }
  return "other";
}

/// Reads at most `max` bytes at `offset` of the run dir's log `name` (never through a
/// link). Offsets count in the current file: after a rotation the client's offset is
/// past its end and the read starts over at 0 (field rotated=1).
struct LogChunk {
  std::string data;
  uint64_t next_offset = 0;
  bool rotated = false;
};
base::Result<LogChunk> ReadLog(const std::string& run_dir, const std::string& name, uint64_t offset,
                               uint64_t max) {
  LogChunk chunk;
  const std::string path = run_dir + "/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) {
      chunk.next_offset = 0;
      chunk.rotated = offset != 0;
      return chunk;
    }
    return Fail(ErrorCode::kIo, "cannot open the workload's " + name);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(ErrorCode::kIo, "the workload's " + name + " is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size) {
    offset = 0;
    chunk.rotated = true;
  }
  const uint64_t n = std::min(max, size - offset);
  chunk.data.resize(n);
  ssize_t got = n == 0 ? 0 : ::pread(fd, chunk.data.data(), n, static_cast<off_t>(offset));
  ::close(fd);
  if (got < 0) return Fail(ErrorCode::kIo, "cannot read the workload's " + name);
  chunk.data.resize(static_cast<size_t>(got));
  chunk.next_offset = offset + static_cast<uint64_t>(got);
  return chunk;
}

}  // namespace

BrokerFrame BrokerReply(int status, std::string message, std::string body,
                        std::string content_type) {
  BrokerFrame f;
  f.op = BrokerOp::kReply;
  f.fields["status"] = std::to_string(status);
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  if (message.size() > kBrokerValueBytesMax) message.resize(kBrokerValueBytesMax);
  f.fields["message"] = std::move(message);
  f.fields["content_type"] = std::move(content_type);
  f.body = std::move(body);
  return f;
}

void GateOnSecrets(runtime::WorkloadSpec& spec, const std::vector<std::string>& names) {
  if (names.empty()) return;
  // The names are checked env names ([A-Za-z_][A-Za-z0-9_]*), so the loop exports
  // nothing else. $(cat) drops trailing newlines, as an env file would.
  const std::string script =
      "while [ ! -e " + std::string(kSecretsReadyInside) + " ]; do sleep 0.2; done; for f in " +
      std::string(kSecretsDirInside) +
      "/*; do [ -f \"$f\" ] || continue; export \"${f##*/}=$(cat \"$f\")\"; done; exec \"$@\"";
  std::vector<std::string> argv = {"/bin/sh", "-c", script, "gpunet-secrets-gate"};
  argv.insert(argv.end(), spec.command.begin(), spec.command.end());
  spec.command = std::move(argv);
}

BrokerService::BrokerService(BrokerDeps deps) : m_deps(std::move(deps)) {
  GPUNET_CHECK(m_deps.engine != nullptr && m_deps.verifier != nullptr);
  GPUNET_CHECK(m_deps.events != nullptr && m_deps.attach && m_deps.poll);
}

BrokerService::~BrokerService() {
  Stop();
}

namespace {
/// The connection a broker thread serves (nullptr on any other thread): its long-polls
/// check it, so retiring a connection needs no flag threaded through every handler.
thread_local const std::atomic<bool>* t_retired = nullptr;
}  // namespace

void BrokerService::Serve(const std::vector<int>& fds) {
  std::vector<std::unique_ptr<Connection>> earlier;
  {
    base::MutexLock lock(m_mu);
    GPUNET_CHECK(!m_stopping);
    earlier.swap(m_connections);
  }
  Retire(earlier);
  base::MutexLock lock(m_mu);
  for (int fd : fds) {
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    Connection* raw = c.get();
    c->thread = std::thread([this, raw] { ServeFd(*raw); });
    m_connections.push_back(std::move(c));
  }
}

void BrokerService::Stop() {
  m_stopping = true;
  std::vector<std::unique_ptr<Connection>> connections;
  {
    base::MutexLock lock(m_mu);
    connections.swap(m_connections);
  }
  Retire(connections);
}

void BrokerService::Retire(std::vector<std::unique_ptr<Connection>>& connections) {
  for (auto& c : connections) {
    c->retired = true;
    ::shutdown(c->fd, SHUT_RDWR);
  }
  for (auto& c : connections) {
    if (c->thread.joinable()) c->thread.join();
    ::close(c->fd);
  }
  connections.clear();
}

namespace {

/// Runs `end` when the scope ends (a long-poll's slot, whichever way it returns).
struct OnScopeEnd {
  std::function<void()> end;
  ~OnScopeEnd() {
    if (end) end();
  }
};

BrokerFrame LongPollRefusal(uint64_t id) {
  return ErrorReply(429, "limit_exceeded",
                    "lease " + std::to_string(id) + " has " +
                        std::to_string(kBrokerLongPollsPerLeaseMax) +
                        " long-polls waiting (events or logs with wait_ms), by its tenant and "
                        "the keys it granted together, its limit: let one end, or ask with "
                        "wait_ms=0");
}

}  // namespace

bool BrokerService::AdmitLongPoll(uint64_t id) {
  base::MutexLock lock(m_polls_mu);
  size_t& waiting = m_polls[id];
  if (waiting >= kBrokerLongPollsPerLeaseMax) return false;
  ++waiting;
  return true;
}

size_t BrokerService::LongPollsOf(uint64_t id) const {
  base::MutexLock lock(m_polls_mu);
  auto it = m_polls.find(id);
  return it == m_polls.end() ? 0 : it->second;
}

void BrokerService::EndLongPoll(uint64_t id) {
  base::MutexLock lock(m_polls_mu);
  auto it = m_polls.find(id);
  GPUNET_CHECK(it != m_polls.end() && it->second > 0);
  if (--it->second == 0) m_polls.erase(it);
}

bool BrokerService::Cancelled() const {
  return m_stopping || (t_retired != nullptr && *t_retired);
}

void BrokerService::ServeFd(Connection& connection) {
  const int fd = connection.fd;
  t_retired = &connection.retired;
  while (!Cancelled()) {
    auto request = ReadBrokerFrame(fd);
    if (!request) {
      if (request.error().code != ErrorCode::kNotFound && !Cancelled() && m_deps.log)
        m_deps.log("broker: closing a connection: " + request.error().message);
      break;
    }
    // A tenant's bytes reach the answers (file names, paths, a workload's event
    // text): nothing they hold may end the root process or this connection.
    // JSON is dumped with invalid UTF-8 replaced; anything else thrown, or an
    // answer over the frame's limits, is a 500 for this request only.
    BrokerFrame reply;
    BrokerFd session;  // a kSession's socket, closed here once passed
    try {
      reply = Handle(*request, &session);
    } catch (const std::exception& e) {
      reply = ErrorReply(500, "internal",
                         std::string("the provider failed on this request: ") + e.what());
    }
    auto written = WriteBrokerFrame(fd, reply, session.Get());
    if (!written && written.error().code == ErrorCode::kInvalidArgument) {
      written = WriteBrokerFrame(
          fd, ErrorReply(500, "internal",
                         "the answer is over the broker's size limit: ask for less (a narrower "
                         "directory, a smaller range)"));
    }
    if (!written) break;
  }
  // The peer sees the end of the stream; the fd itself is closed by Retire, so its
  // number is not reused while Retire may still shut it down.
  ::shutdown(fd, SHUT_RDWR);
  t_retired = nullptr;
}

BrokerFrame BrokerService::Handle(const BrokerFrame& request, BrokerFd* session) {
  if (request.op == BrokerOp::kEnvironments) return Environments();
  if (!RuleOf(request.op, "").has_value() || (request.op == BrokerOp::kSession && !session))
    return ErrorReply(400, "invalid_argument",
                      "the broker does not serve op " + std::string(BrokerOpName(request.op)));
  return Signed(request, session);
}

BrokerFrame BrokerService::Environments() {
  Json list = Json::array();
  if (m_deps.environments)
    for (const auto& e : m_deps.environments()) {
      Json j = {{"name", e.name},
                {"kind", e.backend == runtime::Backend::kPodman ? "podman" : "sandbox"}};
      if (!e.id.empty()) j["id"] = e.id;
      list.push_back(std::move(j));
    }
  return BrokerReply(
      200, "ok",
      Json{{"environments", std::move(list)}}.dump(-1, ' ', false, Json::error_handler_t::replace));
}

BrokerFrame BrokerService::Signed(const BrokerFrame& request, BrokerFd* session) {
  const uint64_t id = request.lease_id;
  auto lease = m_deps.engine->TenantLease(id);
  if (!lease) {
    // The ledger tells anyone that a lease closed: no signature is needed to say so.
    if (auto gone = m_deps.engine->ReleasedLeaseOf(id))
      return ErrorReply(410, "gone",
                        "lease " + std::to_string(id) + " closed (" + gone->end +
                            ") and its outputs_retention is over: its workload, logs and outputs "
                            "were deleted");
    return ErrorReply(404, "not_found", lease.error().message);
  }
  if (!lease->ledger)
    return ErrorReply(503, "unavailable",
                      "the daemon has not seen lease " + std::to_string(id) +
                          " on the ledger yet; try again in a block");
  const std::string_view method = request.Field("method").value_or("");
  const std::string_view target = request.Field("target").value_or("");
  const OpRule rule = *RuleOf(request.op, method);
  auto route = ParseBrokerRoute(target, id);
  if (!route) return ErrorReply(400, "invalid_argument", route.error().message);
  if (method != rule.method || !RouteMatches(rule, request.op, route->rest))
    return ErrorReply(400, "invalid_argument",
                      std::string(method) + " " + std::string(target) + " is not the route of " +
                          std::string(BrokerOpName(request.op)));
  client::HeaderList headers;
  const std::pair<std::string_view, std::string_view> names[] = {
      {"signer", client::kSignerHeader},
      {"timestamp", client::kTimestampHeader},
      {"nonce", client::kNonceHeader},
      {"signature", client::kSignatureHeader},
      {"grant", client::kGrantHeader}};
  for (const auto& [field, header] : names)
    if (auto v = request.Field(field)) headers.emplace_back(std::string(header), std::string(*v));
  auto view = LeaseViewOf(*lease);
  if (!view) return ErrorReply(503, "unavailable", "the ledger's lease does not parse");
  IncomingRequest incoming{method, target, &headers, client::BodyHash(request.body)};
  AuthVerdict verdict = m_deps.verifier->Verify(incoming, *view, rule.kind);
  if (!verdict.Allowed()) return ErrorReply(verdict.status, verdict.code, verdict.message);
  if (request.op == BrokerOp::kAuthorize) {
    if (verdict.grant_id)
      return ErrorReply(403, "permission_denied",
                        "only the tenant's own key revokes a grant, not a session key");
    return Revoke(request, *lease);
  }
  return Dispatch(request, *lease, session);
}

BrokerFrame BrokerService::Dispatch(const BrokerFrame& request, const TenantLeaseView& lease,
                                    BrokerFd* session) {
  switch (request.op) {
    case BrokerOp::kStatus:
      return Status(lease);
    case BrokerOp::kManifest:
      return Manifest(request, lease);
    case BrokerOp::kSecrets:
      return Secrets(request, lease);
    case BrokerOp::kUpload:
      return Upload(request, lease);
    case BrokerOp::kEvents:
      return Events(request, lease);
    case BrokerOp::kLogs:
      return Logs(request, lease);
    case BrokerOp::kOutputs:
      return Outputs(request, lease);
    case BrokerOp::kSession:
      return Session(lease, session);
    default:
      GPUNET_CHECK(false);
      return ErrorReply(500, "internal", "unreachable");
  }
}

BrokerFrame BrokerService::Status(const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  Json workload = {{"state", "none"}};
  if (lease.record.manifest_received) {
    auto polled = m_deps.poll(WorkloadIdOf(id));
    if (!polled) {
      workload["state"] = "removed";
    } else if (!polled->has_value()) {
      workload["state"] = "running";
    } else {
      workload["state"] = "exited";
      workload["exit_code"] = (*polled)->exit_code;
      workload["reason"] = runtime::ExitReasonName((*polled)->reason);
    }
  }
  Json body = {{"lease_id", id},
               {"step", lease.step},
               {"ledger_state", lease.ledger->state},
               {"workload", std::move(workload)},
               {"gpus", lease.record.gpu_uuids},
               {"ends_at_ms", lease.ledger->paid_until_ms}};
  if (!lease.record.end.empty()) body["end"] = lease.record.end;
  return BrokerReply(200, "ok", body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

base::Result<std::vector<std::string>> BrokerService::SecretNames(uint64_t lease_id) {
  std::string text;
  GPUNET_TRY_ASSIGN(
      text, base::ReadFileNoFollow(m_deps.secrets_dir + "/" + std::to_string(lease_id) + ".names",
                                   16384));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array())
    return Fail(ErrorCode::kCorrupt, "the lease's secret names file does not parse");
  std::vector<std::string> names;
  for (const auto& n : j) {
    if (!n.is_string()) return Fail(ErrorCode::kCorrupt, "a secret name is not a string");
    names.push_back(n.get<std::string>());
  }
  return names;
}

BrokerFrame BrokerService::Manifest(const BrokerFrame& request, const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  // The hash first: nothing the tenant did not commit to on the ledger is parsed.
  if (lease.record.manifest_received) {
    if (crypto::Blake2b256(base::AsBytes(request.body)) == lease.record.manifest_hash)
      return BrokerReply(200, "ok",
                         Json{{"accepted", true}, {"workload", "started"}}.dump(
                             -1, ' ', false, Json::error_handler_t::replace));
    return ErrorReply(409, "conflict", "lease " + std::to_string(id) + " already has its manifest");
  }
  auto manifest = client::VerifySubmittedManifest(request.body, lease.record.manifest_hash);
  if (!manifest) return ErrorReply(manifest.error());
  if (!manifest->secrets.empty()) {
    const std::string path = m_deps.secrets_dir + "/" + std::to_string(id) + ".names";
    if (auto s = base::WriteFileAtomic(
            path, Json(manifest->secrets).dump(-1, ' ', false, Json::error_handler_t::replace),
            {.mode = 0600});
        !s)
      return ErrorReply(500, "internal", "cannot keep the secret names: " + s.error().message);
  }
  if (auto s = m_deps.engine->SubmitManifest(id, request.body); !s) return ErrorReply(s.error());
  const bool gated = !manifest->secrets.empty();
  Json body = {{"accepted", true}, {"workload", gated ? "waiting_for_secrets" : "starting"}};
  if (gated) body["secrets"] = manifest->secrets;
  return BrokerReply(200, "ok", body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

BrokerFrame BrokerService::Secrets(const BrokerFrame& request, const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  if (!lease.record.manifest_received)
    return ErrorReply(409, "conflict", "send the manifest first: it names the secrets");
  auto names = SecretNames(id);
  if (!names)
    return ErrorReply(409, "conflict",
                      "the manifest of lease " + std::to_string(id) + " names no secrets");
  Json j = Json::parse(request.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.empty())
    return ErrorReply(400, "invalid_argument",
                      "the body must be a JSON object {\"NAME\":\"value\"}");
  for (const auto& [name, value] : j.items()) {
    if (std::ranges::find(*names, name) == names->end())
      return ErrorReply(400, "invalid_argument",
                        "the manifest names no secret " +
                            Json(name).dump(-1, ' ', false, Json::error_handler_t::replace));
    if (!value.is_string() || value.get_ref<const std::string&>().size() > kSecretValueBytesMax ||
        value.get_ref<const std::string&>().find('\0') != std::string::npos)
      return ErrorReply(
          400, "invalid_argument",
          "secret " + name + ": the value must be a string of at most 64 KiB, no NUL");
  }
  auto info = m_deps.attach(WorkloadIdOf(id));
  if (!info) return ErrorReply(409, "conflict", "the lease's workload is gone");
  const runtime::UploadTarget target{info->work_dir, info->uid, info->uid};
  base::MutexLock lock(m_secrets_mu);
  Json set = Json::array();
  std::string already;  // names set by an earlier request
  std::optional<BrokerFrame> failed;
  for (const auto& [name, value] : j.items()) {
    const std::string rel = std::string(kSecretsDirRelative) + "/" + name;
    // Whole or not at all, and once: a second value would race the gate's read.
    auto written = runtime::WriteUploadFileOnce(target, rel, value.get_ref<const std::string&>());
    if (written) {
      set.push_back(name);
    } else if (written.error().code == ErrorCode::kAlreadyExists) {
      already += (already.empty() ? "" : ", ") + name;
    } else {
      failed =
          ErrorReply(500, "internal",
                     "cannot hand secret " + name + " to the workload: " + written.error().message);
      break;
    }
  }
  // Whatever happened above: a request that finds the last secret set (a retry after
  // a crash or a failed marker) still opens the gate.
  auto complete = OpenSecretsGate(id, target, *names);
  if (failed) return *failed;
  if (!complete)
    return ErrorReply(500, "internal",
                      "cannot start the command behind the secrets: " + complete.error().message);
  if (!already.empty())
    return ErrorReply(409, "conflict",
                      "secret " + already + " is set already (a secret is set once)" +
                          (set.empty() ? "" : "; set now: " + set.dump()));
  return BrokerReply(200, "ok",
                     Json{{"set", std::move(set)}, {"complete", *complete}}.dump(
                         -1, ' ', false, Json::error_handler_t::replace));
}

base::Result<bool> BrokerService::OpenSecretsGate(uint64_t lease_id,
                                                  const runtime::UploadTarget& target,
                                                  const std::vector<std::string>& names) {
  // A secret's file appears only whole (WriteUploadFileOnce), so one that exists is set.
  for (const auto& n : names)
    if (auto size = runtime::UploadedSize(target, std::string(kSecretsDirRelative) + "/" + n);
        !size) {
      if (size.error().code == ErrorCode::kNotFound) return false;
      return std::unexpected(size.error());
    }
  auto ready = runtime::WriteUploadFileOnce(target, kSecretsReadyRelative, "1");
  if (!ready && ready.error().code == ErrorCode::kAlreadyExists) return true;
  if (!ready) return std::unexpected(ready.error());
  if (auto s =
          m_deps.events->Append(lease_id, "secrets_set", "every secret is set; the command starts",
                                base::SystemClock::Instance().NowMs());
      !s && m_deps.log)
    m_deps.log("lease " + std::to_string(lease_id) + ": event not kept: " + s.error().message);
  return true;
}

BrokerFrame BrokerService::Upload(const BrokerFrame& request, const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  auto route = ParseBrokerRoute(request.Field("target").value_or(""), id);
  GPUNET_CHECK(route.has_value());  // Signed checked it
  const std::string path = RoutePath(route->rest, "/files");
  if (auto s = runtime::ValidateUploadPath(path); !s) return ErrorReply(s.error());
  if (path == ".gpunet" || path.starts_with(".gpunet/"))
    return ErrorReply(403, "permission_denied", ".gpunet/ is the daemon's (secrets), not uploads'");
  if (!lease.record.manifest_received)
    return ErrorReply(409, "conflict",
                      "uploads go into the workload's /work, which exists once the manifest is "
                      "accepted: send the manifest first");
  auto info = m_deps.attach(WorkloadIdOf(id));
  if (!info) return ErrorReply(409, "conflict", "the lease's workload is gone");
  const runtime::UploadTarget target{info->work_dir, info->uid, info->uid};
  Json body;
  if (request.Field("method").value_or("") == "GET") {
    auto size = runtime::UploadedSize(target, path);
    if (!size) return ErrorReply(size.error());
    return BrokerReply(
        200, "ok",
        Json{{"path", path}, {"size", *size}}.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  auto offset = QueryNumber(*route, "offset", 0);
  if (!offset) return ErrorReply(offset.error());
  if (request.body.size() > kBrokerBodyBytesMax)
    return ErrorReply(413, "limit_exceeded", "a chunk is at most 8 MiB");
  if (auto sha = request.Field("chunk_sha256"); sha && *sha != Sha256Hex(request.body))
    return ErrorReply(400, "invalid_argument",
                      "the chunk's SHA-256 is not Gpunet-Chunk-Sha256: it was damaged; resend it");
  // The work dir's file-system quota (the lease's disk share) caps the total:
  // EDQUOT/ENOSPC come back as an error naming it.
  auto size = runtime::WriteUploadChunk(target, path, *offset, request.body);
  if (!size) return ErrorReply(size.error());
  return BrokerReply(
      200, "ok",
      Json{{"path", path}, {"size", *size}}.dump(-1, ' ', false, Json::error_handler_t::replace));
}

BrokerFrame BrokerService::Events(const BrokerFrame& request, const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  auto route = ParseBrokerRoute(request.Field("target").value_or(""), id);
  GPUNET_CHECK(route.has_value());
  auto after = QueryNumber(*route, "after", 0);
  auto wait = QueryNumber(*route, "wait_ms", 0);
  if (!after || !wait) return ErrorReply(400, "invalid_argument", "after and wait_ms are numbers");
  OnScopeEnd slot;
  if (*wait > 0) {
    if (!AdmitLongPoll(id)) return LongPollRefusal(id);
    slot.end = [this, id] { EndLongPoll(id); };
  }
  int64_t left = static_cast<int64_t>(std::min<uint64_t>(*wait, kBrokerWaitMsMax));
  // Waits in short steps so Stop is never held up by a long-poll.
  for (;;) {
    const int64_t step = std::min<int64_t>(left, 500);
    auto events = m_deps.events->Since(id, *after, kBrokerEventsPerReply, step);
    if (!events) return ErrorReply(events.error());
    left -= step;
    if (!events->empty() || left <= 0 || Cancelled()) {
      Json list = Json::array();
      for (const auto& e : *events)
        list.push_back(
            {{"seq", e.seq}, {"time_ms", e.time_ms}, {"kind", e.kind}, {"message", e.message}});
      return BrokerReply(
          200, "ok",
          Json{{"events", std::move(list)}}.dump(-1, ' ', false, Json::error_handler_t::replace));
    }
  }
}

BrokerFrame BrokerService::Logs(const BrokerFrame& request, const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  auto route = ParseBrokerRoute(request.Field("target").value_or(""), id);
  GPUNET_CHECK(route.has_value());
  const auto stream = route->query.contains("stream") ? route->query.at("stream") : "stdout";
  if (stream != "stdout" && stream != "stderr")
    return ErrorReply(400, "invalid_argument", "stream is stdout or stderr");
  auto offset = QueryNumber(*route, "offset", 0);
  auto max = QueryNumber(*route, "max", kBrokerLogReadMax);
  auto wait = QueryNumber(*route, "wait_ms", 0);
  if (!offset || !max || !wait)
    return ErrorReply(400, "invalid_argument", "offset, max and wait_ms are numbers");
  if (!lease.record.manifest_received)
    return ErrorReply(409, "conflict", "no workload yet: send the manifest first");
  auto info = m_deps.attach(WorkloadIdOf(id));
  if (!info) return ErrorReply(404, "not_found", "the lease's workload and its logs are gone");
  const uint64_t cap = std::clamp<uint64_t>(*max, 1, kBrokerLogReadMax);
  OnScopeEnd slot;
  if (*wait > 0) {
    if (!AdmitLongPoll(id)) return LongPollRefusal(id);
    slot.end = [this, id] { EndLongPoll(id); };
  }
  int64_t left = static_cast<int64_t>(std::min<uint64_t>(*wait, kBrokerWaitMsMax));
  for (;;) {
    auto chunk = ReadLog(info->run_dir, stream + ".log", *offset, cap);
    if (!chunk) return ErrorReply(chunk.error());
    auto polled = m_deps.poll(WorkloadIdOf(id));
    const bool ended = !polled || polled->has_value();
    if (!chunk->data.empty() || ended || left <= 0 || Cancelled()) {
      BrokerFrame reply =
          BrokerReply(200, "ok", std::move(chunk->data), "application/octet-stream");
      reply.fields["next_offset"] = std::to_string(chunk->next_offset);
      reply.fields["ended"] = ended ? "1" : "0";
      reply.fields["rotated"] = chunk->rotated ? "1" : "0";
      return reply;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollStepMs));
    left -= kPollStepMs;
  }
}

BrokerFrame BrokerService::Outputs(const BrokerFrame& request, const TenantLeaseView& lease) {
  const uint64_t id = lease.record.lease_id;
  auto route = ParseBrokerRoute(request.Field("target").value_or(""), id);
  GPUNET_CHECK(route.has_value());
  if (!lease.record.manifest_received)
    return ErrorReply(409, "conflict", "no workload yet: send the manifest first");
  auto info = m_deps.attach(WorkloadIdOf(id));
  if (!info) return ErrorReply(404, "not_found", "the lease's workload and its outputs are gone");
  // Only the workload's own files, each with one link (runtime/outputs.h). Its uid on
  // the host: info->uid, or, where podman picked the mapping (--userns=auto), the
  // container's root, to which podman gave the outputs folder (":U"). Never root.
  // Opened beneath the workload's file system root with no link followed: the
  // workload owns the folders on the way and could swap one for a link elsewhere.
  auto dir = runtime::OutputsReader::OpenIn(info->fs_dir, info->outputs_beneath);
  if (!dir) {
    if (dir.error().code == base::ErrorCode::kPermissionDenied) return ErrorReply(dir.error());
    return ErrorReply(404, "not_found", "the workload has no outputs directory");
  }
  uint32_t owner = info->uid;
  if (auto dir_owner = dir->DirOwner(); dir_owner && *dir_owner != 0 && *dir_owner != owner)
    owner = *dir_owner;
  runtime::OutputsReader reader = std::move(*dir).WithOwner(owner);
  const std::string path = RoutePath(route->rest, "/outputs");
  if (path.empty()) {
    auto tree = reader.ListTree(kBrokerOutputEntriesMax);
    if (!tree) return ErrorReply(tree.error());
    Json list = Json::array();
    for (const auto& e : tree->entries)
      list.push_back({{"name", e.name}, {"type", EntryType(e.type)}, {"size", e.size_bytes}});
    Json body = {{"entries", std::move(list)}};
    if (tree->truncated) body["truncated"] = true;
    return BrokerReply(200, "ok", body.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  auto offset = QueryNumber(*route, "offset", 0);
  auto max = QueryNumber(*route, "max", kBrokerLogReadMax);
  if (!offset || !max) return ErrorReply(400, "invalid_argument", "offset and max are numbers");
  auto fd = reader.OpenFile(path);
  if (!fd) return ErrorReply(fd.error());
  struct stat st {};
  if (::fstat(fd->Get(), &st) != 0) return ErrorReply(500, "internal", "cannot stat the output");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t start = std::min(*offset, size);
  std::string data(std::min({std::clamp<uint64_t>(*max, 1, kBrokerLogReadMax), size - start}),
                   '\0');
  ssize_t got =
      data.empty() ? 0 : ::pread(fd->Get(), data.data(), data.size(), static_cast<off_t>(start));
  if (got < 0) return ErrorReply(500, "internal", "cannot read the output");
  data.resize(static_cast<size_t>(got));
  BrokerFrame reply = BrokerReply(200, "ok", std::move(data), "application/octet-stream");
  reply.fields["next_offset"] = std::to_string(start + static_cast<uint64_t>(got));
  reply.fields["size"] = std::to_string(size);
  return reply;
}

BrokerFrame BrokerService::Revoke(const BrokerFrame& request, const TenantLeaseView& lease) {
  auto revocation = client::ParseRevocation(request.body);
  if (!revocation)
    return ErrorReply(400, "invalid_argument",
                      "the body must be the revocation (client::EncodeRevocation's hex)");
  auto view = LeaseViewOf(lease);
  GPUNET_CHECK(view.has_value());
  AuthVerdict verdict = m_deps.verifier->Revoke(*revocation, *view);
  if (!verdict.Allowed()) return ErrorReply(verdict.status, verdict.code, verdict.message);
  return BrokerReply(200, "ok",
                     Json{{"revoked", base::ToHex(revocation->grant_id)}}.dump(
                         -1, ' ', false, Json::error_handler_t::replace));
}

BrokerFrame BrokerService::Session(const TenantLeaseView& lease, BrokerFd* session) {
  GPUNET_CHECK(session != nullptr && !session->Valid());
  const uint64_t id = lease.record.lease_id;
  const std::string lease_name = "lease " + std::to_string(id);
  // The verifier refused a closed lease's write already; the book may know sooner.
  if (!lease.record.end.empty() || lease.ledger->state == "closed")
    return ErrorReply(
        410, "gone", lease_name + " is closed: its workload was stopped, and sessions end with it");
  if (lease.ledger->state != "started")
    return ErrorReply(409, "conflict",
                      lease_name + " is not started yet (ledger state: " + lease.ledger->state +
                          "); wait until the provider starts it, then open the session");
  std::string state = "none";
  if (lease.record.manifest_received) {
    auto polled = m_deps.poll(WorkloadIdOf(id));
    state = !polled ? "removed" : polled->has_value() ? "exited" : "running";
  }
  if (state != "running")
    return ErrorReply(409, "conflict",
                      "the lease's workload is not running (state: " + state + ")" +
                          (state == "none" ? "; send the manifest first" : ""));
  if (!m_deps.open_session)
    return ErrorReply(503, "unavailable", "this provider's daemon serves no interactive sessions");
  auto fd = m_deps.open_session(WorkloadIdOf(id));
  if (!fd) {
    // The workload ended between the poll and the connect, or it was started without
    // an init to serve sessions (by an older daemon).
    return ErrorReply(409, "conflict",
                      "the lease's workload takes no session now: " + fd.error().message);
  }
  GPUNET_CHECK(*fd >= 0);
  *session = BrokerFd(*fd);
  if (m_deps.session_opened) m_deps.session_opened();
  // Whose lease it is, for the tenant-facing process's per-tenant session cap.
  BrokerFrame reply = BrokerReply(200, "ok");
  reply.fields["tenant"] = lease.ledger->tenant;
  return reply;
}

}  // namespace gpunet::provider
