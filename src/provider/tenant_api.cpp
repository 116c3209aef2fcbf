#include "provider/tenant_api.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/check.h"
#include "client/manifest.h"
#include "client/tenant_request.h"
#include "server/messages.h"

namespace gpunet::provider {

using base::ErrorCode;
using base::Fail;
using server::JsonError;
using server::Request;
using server::Response;

namespace {

// ---- the route parser ----

/// Plain decimal without leading zeros (a lone "0" allowed when `zero_ok`), no
/// more than 20 digits, within u64.
std::optional<uint64_t> StrictDecimal(std::string_view text, bool zero_ok) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  if (text.front() == '0' && (text.size() > 1 || !zero_ok)) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// One path segment, percent-decoded (CheckRequestTarget already refused a bad
/// escape, an encoded separator and encoded control bytes).
std::string DecodeSegment(std::string_view segment) {
  std::string out;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '%' && i + 2 < segment.size()) {
      out.push_back(static_cast<char>(HexValue(segment[i + 1]) * 16 + HexValue(segment[i + 2])));
      i += 2;
    } else {
      out.push_back(segment[i]);
    }
  }
  return out;
}

struct QueryRule {
  std::string_view name;
  uint64_t max = 0;           ///< for numbers
  std::string_view fallback;  ///< the value when absent ("" = required)
  bool stream = false;        ///< "stdout" | "stderr" instead of a number
};

/// The query's name=value pairs by `rules`: no other name, each at most once, no
/// percent escapes (nothing here needs one), values strict.
base::Status ParseQueryInto(std::string_view query, bool has_query,
                            const std::vector<QueryRule>& rules,
                            std::map<std::string, std::string>& fields) {
  std::set<std::string_view> seen;
  if (has_query) {
    size_t start = 0;
    while (true) {
      const size_t amp = query.find('&', start);
      const std::string_view pair =
          query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
      const size_t eq = pair.find('=');
      const std::string_view name = pair.substr(0, eq);
      const std::string_view value =
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      const QueryRule* rule = nullptr;
      for (const QueryRule& r : rules)
        if (r.name == name) rule = &r;
      if (rule == nullptr) {
        std::string known;
        for (const QueryRule& r : rules) known += (known.empty() ? "" : ", ") + std::string(r.name);
        return Fail(ErrorCode::kInvalidArgument,
                    "query parameter \"" + std::string(name) + "\" is not known here" +
                        (known.empty() ? std::string("; this endpoint takes none")
                                       : "; it takes " + known));
      }
      if (!seen.insert(rule->name).second) {
        return Fail(ErrorCode::kInvalidArgument,
                    "query parameter " + std::string(name) + " is given twice");
      }
      if (eq == std::string_view::npos) {
        return Fail(ErrorCode::kInvalidArgument,
                    "query parameter " + std::string(name) + " has no value (name=value)");
      }
      if (rule->stream) {
        if (value != "stdout" && value != "stderr") {
          return Fail(ErrorCode::kInvalidArgument,
                      "stream must be stdout or stderr, not \"" + std::string(value) + "\"");
        }
        fields[std::string(name)] = std::string(value);
      } else {
        const auto number = StrictDecimal(value, true);
        if (!number || *number > rule->max) {
          return Fail(ErrorCode::kInvalidArgument,
                      "query parameter " + std::string(name) +
                          " must be a decimal number from 0 to " + std::to_string(rule->max) +
                          " without leading zeros, not \"" + std::string(value) + "\"");
        }
        fields[std::string(name)] = std::to_string(*number);
      }
      if (amp == std::string_view::npos) break;
      start = amp + 1;
    }
  }
  for (const QueryRule& r : rules) {
    if (seen.contains(r.name)) continue;
    if (r.fallback.empty()) {
      return Fail(ErrorCode::kInvalidArgument,
                  "query parameter " + std::string(r.name) + " is required here");
    }
    fields[std::string(r.name)] = std::string(r.fallback);
  }
  return base::Ok();
}

std::unexpected<base::Error> WrongMethod(std::string_view method, std::string_view path,
                                         std::string_view allowed) {
  return Fail(ErrorCode::kUnsupported, std::string(method) + " is not allowed on " +
                                           std::string(path) + "; use " + std::string(allowed));
}

}  // namespace

base::Result<TenantRoute> ParseTenantRoute(std::string_view method, std::string_view target) {
  if (auto ok = client::CheckRequestMethod(method); !ok) return std::unexpected(ok.error());
  if (auto ok = client::CheckRequestTarget(target); !ok) return std::unexpected(ok.error());
  const size_t qpos = target.find('?');
  const bool has_query = qpos != std::string_view::npos;
  const std::string_view path = target.substr(0, qpos);
  const std::string_view query = has_query ? target.substr(qpos + 1) : std::string_view();
  std::vector<std::string_view> segments;
  for (size_t start = 1;;) {
    const size_t slash = path.find('/', start);
    segments.push_back(path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  // CheckRequestTarget lets a trailing '/' through; here it would name a file "".
  if (segments.back().empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "the path " + std::string(path) + " ends with '/'; name the endpoint without it");
  }
  const auto not_found = [&] {
    return Fail(ErrorCode::kNotFound,
                "no endpoint " + std::string(path) +
                    "; the tenant API serves /environments and /leases/{id}/... "
                    "(docs/tenant-api.md \"Endpoints\")");
  };
  TenantRoute route;
  std::vector<QueryRule> rules;
  if (segments.size() == 1 && segments[0] == "environments") {
    if (method != "GET") return WrongMethod(method, path, "GET");
    route.op = BrokerOp::kEnvironments;
    route.signed_request = false;
    GPUNET_TRY(ParseQueryInto(query, has_query, rules, route.fields));
    return route;
  }
  if (segments.size() < 2 || segments[0] != "leases") return not_found();
  const auto id = StrictDecimal(segments[1], false);
  if (!id) {
    return Fail(ErrorCode::kInvalidArgument,
                "lease id \"" + std::string(segments[1]) +
                    "\" must be a decimal number from 1 to 18446744073709551615 without "
                    "leading zeros");
  }
  route.lease_id = *id;
  const std::string_view what = segments.size() > 2 ? segments[2] : std::string_view();
  const auto expect = [&](std::string_view want) -> base::Status {
    if (method != want) return WrongMethod(method, path, want);
    return base::Ok();
  };
  const auto rest_path = [&] {
    std::string joined;
    for (size_t i = 3; i < segments.size(); ++i) {
      if (i > 3) joined.push_back('/');
      joined += DecodeSegment(segments[i]);
    }
    return joined;
  };
  if (segments.size() == 2) {
    GPUNET_TRY(expect("GET"));
    route.op = BrokerOp::kStatus;
  } else if (what == "events" && segments.size() == 3) {
    GPUNET_TRY(expect("GET"));
    route.op = BrokerOp::kEvents;
    rules = {{"after", std::numeric_limits<uint64_t>::max(), "0", false},
             {"wait_ms", kTenantWaitMsMax, "0", false}};
  } else if (what == "manifest" && segments.size() == 3) {
    GPUNET_TRY(expect("POST"));
    route.op = BrokerOp::kManifest;
    route.body_bytes_max = client::kManifestBytesMax;
  } else if (what == "secrets" && segments.size() == 3) {
    GPUNET_TRY(expect("POST"));
    route.op = BrokerOp::kSecrets;
    route.body_bytes_max = kTenantSecretsBytesMax;
  } else if (what == "files" && segments.size() >= 4) {
    route.op = BrokerOp::kUpload;
    route.fields["path"] = rest_path();
    if (method == "PUT") {
      route.body_bytes_max = kTenantChunkBytesMax;
      rules = {{"offset", std::numeric_limits<uint64_t>::max(), "", false}};
    } else if (method == "GET") {
      route.fields["query"] = "1";
    } else {
      return WrongMethod(method, path, "PUT (a chunk) or GET (the resume point)");
    }
  } else if (what == "logs" && segments.size() == 3) {
    GPUNET_TRY(expect("GET"));
    route.op = BrokerOp::kLogs;
    rules = {{"stream", 0, "stdout", true},
             {"offset", std::numeric_limits<uint64_t>::max(), "0", false},
             {"max", kTenantLogReadBytesMax, "1048576", false},
             {"wait_ms", kTenantWaitMsMax, "0", false}};
  } else if (what == "outputs" && segments.size() >= 3) {
    GPUNET_TRY(expect("GET"));
    route.op = BrokerOp::kOutputs;
    route.fields["path"] = rest_path();
    if (segments.size() > 3) {
      rules = {{"offset", std::numeric_limits<uint64_t>::max(), "0", false},
               {"max", kTenantOutputReadBytesMax, "8388608", false}};
    }
  } else if (what == "session" && segments.size() == 3) {
    GPUNET_TRY(expect("GET"));
    route.op = BrokerOp::kSession;
  } else if (what == "grants" && segments.size() == 4 && segments[3] == "revoke") {
    GPUNET_TRY(expect("POST"));
    route.op = BrokerOp::kAuthorize;
    route.body_bytes_max = kTenantRevokeBytesMax;
  } else {
    return not_found();
  }
  GPUNET_TRY(ParseQueryInto(query, has_query, rules, route.fields));
  return route;
}

namespace {

// ---- answering ----

std::string_view CodeForStatus(int status) {
  switch (status) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 410:
      return "gone";
    case 413:
      return "limit_exceeded";
    case 422:
      return "invalid_manifest";
    case 426:
      return "upgrade_required";
    case 429:
      return "too_many_requests";
    case 502:
      return "bad_gateway";
    case 503:
      return "unavailable";
    case 504:
      return "timeout";
    default:
      return status >= 500 ? "internal" : "failed";
  }
}

Response Refuse(int status, std::string_view message) {
  return JsonError(status, CodeForStatus(status), message);
}

bool SameHeaderName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// The value of a header (names compare case-insensitively); nullopt when absent.
/// Repeats are for ParseRequestAuthHeaders to refuse.
std::optional<std::string_view> HeaderValue(const Request& request, std::string_view name) {
  for (const auto& [key, value] : request.headers)
    if (SameHeaderName(key, name)) return std::string_view(value);
  return std::nullopt;
}

size_t HeaderCount(const Request& request, std::string_view name) {
  return static_cast<size_t>(
      std::count_if(request.headers.begin(), request.headers.end(),
                    [&](const auto& h) { return SameHeaderName(h.first, name); }));
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  const int ok = EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  GPUNET_CHECK(ok == 1 && size == 32);
  return base::ToHex(base::ByteSpan(digest, size));
}

bool LowerHex(std::string_view text, size_t size) {
  if (text.size() != size) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

/// The auth headers: each present (401 naming the missing one), well-formed
/// (ParseRequestAuthHeaders, into *auth), then copied verbatim into the frame's fields.
std::optional<Response> AddAuthFields(const Request& request, BrokerFrame& frame,
                                      client::RequestAuthHeaders* auth) {
  for (std::string_view name : {client::kSignerHeader, client::kTimestampHeader,
                                client::kNonceHeader, client::kSignatureHeader}) {
    if (!HeaderValue(request, name)) {
      return Refuse(401, "the request is not signed: header " + std::string(name) +
                             " is missing (every endpoint but GET /environments needs "
                             "Gpunet-Signer, Gpunet-Timestamp, Gpunet-Nonce and Gpunet-Signature; "
                             "docs/tenant-api.md \"Signed requests\")");
    }
  }
  // Gpunet-Chunk-Sha256 is an upload's own header, not a signature header (the body
  // hash in the signature covers the chunk already); the strict parser knows only the
  // signature's, so it reads the rest.
  client::HeaderList auth_headers = request.headers;
  if (frame.op == BrokerOp::kUpload) {
    std::erase_if(auth_headers,
                  [](const auto& h) { return SameHeaderName(h.first, kChunkSha256Header); });
  }
  auto parsed = client::ParseRequestAuthHeaders(auth_headers);
  if (!parsed) return Refuse(401, parsed.error().message);
  *auth = std::move(*parsed);
  frame.fields["method"] = request.method;
  frame.fields["target"] = request.target;
  frame.fields["signer"] = std::string(*HeaderValue(request, client::kSignerHeader));
  frame.fields["timestamp"] = std::string(*HeaderValue(request, client::kTimestampHeader));
  frame.fields["nonce"] = std::string(*HeaderValue(request, client::kNonceHeader));
  frame.fields["signature"] = std::string(*HeaderValue(request, client::kSignatureHeader));
  if (auto grant = HeaderValue(request, client::kGrantHeader)) frame.fields["grant"] = *grant;
  return std::nullopt;
}

/// What only the front can check of a body before the agent sees it.
std::optional<Response> CheckBody(const Request& request, BrokerFrame& frame) {
  switch (frame.op) {
    case BrokerOp::kManifest: {
      auto manifest = client::ParseCanonicalManifest(request.body);
      if (manifest) return std::nullopt;
      const base::Error& e = manifest.error();
      if (e.code == ErrorCode::kLimitExceeded) return Refuse(413, "manifest refused: " + e.message);
      if (e.code == ErrorCode::kNonCanonical) {
        return Refuse(422, "manifest refused: " + e.message +
                               " (send the canonical JSON whose hash the lease carries: "
                               "docs/manifest.md)");
      }
      return Refuse(400, "manifest refused: " + e.message);
    }
    case BrokerOp::kSecrets: {
      // Never quote the body: it holds secret values.
      const auto json = nlohmann::json::parse(request.body, nullptr, false);
      if (!json.is_object()) {
        return Refuse(400, "secrets must be a JSON object of names to string values");
      }
      if (json.size() > client::kManifestSecretsMax) {
        return Refuse(413, "at most " + std::to_string(client::kManifestSecretsMax) +
                               " secrets (a manifest names no more)");
      }
      for (const auto& [name, value] : json.items()) {
        if (!value.is_string()) {
          return Refuse(400, "secret values must be strings (one is not)");
        }
        if (name.empty() || name.size() > client::kManifestNameBytesMax) {
          return Refuse(400, "a secret's name must be 1 to " +
                                 std::to_string(client::kManifestNameBytesMax) + " bytes");
        }
      }
      return std::nullopt;
    }
    case BrokerOp::kAuthorize: {
      // The tenant-signed revocation itself, as the agent's broker service reads it (it
      // checks the signature and keeps it until the grant's expiry).
      if (!client::ParseRevocation(request.body))
        return Refuse(400, "the body must be the revocation, client::EncodeRevocation's hex");
      return std::nullopt;
    }
    case BrokerOp::kUpload: {
      if (frame.fields.contains("query")) {
        if (!request.body.empty()) return Refuse(400, "GET of an upload's size takes no body");
        return std::nullopt;
      }
      const size_t count = HeaderCount(request, kChunkSha256Header);
      if (count != 1) {
        return Refuse(400, "an upload chunk needs exactly one " + std::string(kChunkSha256Header) +
                               " header: the SHA-256 of the chunk, 64 lower-case hex");
      }
      const std::string_view given = *HeaderValue(request, kChunkSha256Header);
      if (!LowerHex(given, 64)) {
        return Refuse(400, std::string(kChunkSha256Header) + " must be 64 lower-case hex");
      }
      const std::string actual = Sha256Hex(request.body);
      if (actual != given) {
        return Refuse(400, "the chunk's SHA-256 is " + actual + ", not " + std::string(given) +
                               " as " + std::string(kChunkSha256Header) +
                               " says: it was damaged on the way; send it again");
      }
      frame.fields["chunk_sha256"] = actual;
      return std::nullopt;
    }
    default:
      if (!request.body.empty()) return Refuse(400, "this endpoint takes no body");
      return std::nullopt;
  }
}

/// Whether the request asks to switch to kSessionProtocol: `Connection: Upgrade` and
/// the protocol among the Upgrade header's entries (names compare without case).
bool AsksForSession(const Request& request) {
  const auto lower = [](std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const auto has_entry = [&](std::string_view header, std::string_view want) {
    for (const auto& [name, value] : request.headers) {
      if (!SameHeaderName(name, header)) continue;
      const std::string list = lower(value);
      size_t start = 0;
      while (start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        std::string_view entry = std::string_view(list).substr(start, comma - start);
        while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t'))
          entry.remove_prefix(1);
        while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t'))
          entry.remove_suffix(1);
        if (entry == want) return true;
        start = comma + 1;
      }
    }
    return false;
  };
  return has_entry("Connection", "upgrade") && has_entry("Upgrade", kSessionProtocol);
}

/// Header-safe: printable ASCII only.
bool HeaderSafe(std::string_view text) {
  for (char c : text)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

/// The agent's kReply as the HTTP answer.
Response FromReply(const BrokerFrame& reply) {
  const auto status_text = reply.Field("status");
  const auto status = status_text ? StrictDecimal(*status_text, false) : std::optional<uint64_t>();
  if (!status || *status < 200 || *status > 599) {
    return Refuse(502, "the provider's agent gave no valid status");
  }
  Response response;
  response.status = static_cast<int>(*status);
  const auto content_type = reply.Field("content_type");
  if (content_type && !content_type->empty() && HeaderSafe(*content_type)) {
    response.content_type = std::string(*content_type);
  }
  if (response.status >= 400 && reply.body.empty()) {
    const auto message = reply.Field("message");
    return Refuse(response.status,
                  message && !message->empty() ? *message : std::string_view("refused"));
  }
  response.body = reply.body;
  const std::pair<std::string_view, std::string_view> kForwarded[] = {
      {"next_offset", kNextOffsetHeader}, {"ended", kEndedHeader}, {"size", kSizeHeader}};
  for (const auto& [field, header] : kForwarded) {
    const auto value = reply.Field(field);
    if (value && StrictDecimal(*value, true)) {
      response.headers.emplace_back(std::string(header), std::string(*value));
    }
  }
  return response;
}

}  // namespace

server::ServerOptions TenantApiServerDefaults(size_t broker_fds) {
  server::ServerOptions o;
  o.host = "0.0.0.0";
  o.port = 8443;
  o.body_bytes_max = kTenantChunkBytesMax;
  o.header_bytes_max = 16 * 1024;
  o.read_timeout_ms = 60'000;  // an 8 MiB chunk over a slow link
  o.idle_timeout_ms = 30'000;
  // A silent connection holds one of an address's 16 for this long, not a minute.
  o.first_bytes_timeout_ms = 10'000;
  o.write_timeout_ms = 30'000;
  o.connections_max = 256;
  // Plain connections only, signed or not: a session's connection stops counting once
  // it is relayed (its caps are the API's own: SessionCap).
  o.connections_per_address_max = 16;
  o.io_threads = 1;
  // A worker per broker descriptor for long-polls, and a few that wait for one.
  o.worker_threads = broker_fds + 4;
  o.pending_requests_max = 256;
  o.pending_requests_per_address_max = 16;
  o.per_address_exempt_loopback = false;  // tenants are strangers, wherever they are
  o.ws_path = "";                         // no websocket endpoint
  o.ws_topics = {};
  o.ws_per_address_max = 1;  // the server wants one; ws_path "" matches no upgrade
  return o;
}

TenantApi::TenantApi(TenantApiOptions options, BrokerClient& broker)
    : m_chain_id(std::move(options.chain_id)), m_provider(options.provider), m_broker(broker) {
  GPUNET_CHECK(!m_chain_id.empty());  // the scope every signature is checked in
  options.server.tls = server::TlsOptions{options.cert_file, "(inherited key descriptor)",
                                          std::move(options.key_pem)};
  m_server = std::make_unique<server::HttpServer>(std::move(options.server));
  for (const char* method : {"GET", "POST", "PUT"}) {
    m_server->HandlePrefix(method, "/", [this](const Request& request) { return Serve(request); });
  }
}

TenantApi::~TenantApi() {
  Stop();
}

base::Status TenantApi::Start() {
  return m_server->Start();
}

uint16_t TenantApi::Port() const {
  return m_server->Port();
}

void TenantApi::Stop() {
  m_server->Stop();
}

server::ServerStats TenantApi::Stats() const {
  return m_server->Stats();
}

size_t TenantApi::SessionsOf(uint64_t lease_id) const {
  base::MutexLock lock(m_polls_mu);
  auto it = m_sessions.find(lease_id);
  return it == m_sessions.end() ? 0 : it->second;
}

size_t TenantApi::Sessions() const {
  base::MutexLock lock(m_polls_mu);
  return m_sessions_total;
}

Response TenantApi::Serve(const Request& request) {
  auto route = ParseTenantRoute(request.method, request.target);
  if (!route) {
    const base::Error& e = route.error();
    const int status = e.code == ErrorCode::kNotFound      ? 404
                       : e.code == ErrorCode::kUnsupported ? 405
                                                           : 400;
    return Refuse(status, e.message);
  }
  if (request.body.size() > route->body_bytes_max) {
    return Refuse(413, route->body_bytes_max == 0
                           ? std::string("this endpoint takes no body")
                           : "the body is over this endpoint's " +
                                 std::to_string(route->body_bytes_max) + "-byte limit");
  }
  if (route->op == BrokerOp::kSession && !AsksForSession(request)) {
    const std::string protocol(kSessionProtocol);
    Response refusal =
        Refuse(426, "GET /leases/{id}/session switches the connection to " + protocol +
                        ": send it with Connection: Upgrade and Upgrade: " + protocol +
                        " (gpunet exec, shell, forward and ssh do; docs/tenant-api.md "
                        "\"Sessions\")");
    refusal.headers.emplace_back("Upgrade", protocol);
    return refusal;
  }
  BrokerFrame frame;
  frame.op = route->op;
  frame.lease_id = route->lease_id;
  frame.fields = std::move(route->fields);
  client::RequestAuthHeaders auth;
  if (route->signed_request) {
    if (auto refused = AddAuthFields(request, frame, &auth)) return *refused;
  }
  if (auto refused = CheckBody(request, frame)) return *refused;
  if (route->signed_request) {
    // Before anything is counted for it: a request that does not verify holds no slot.
    // Who may act on the lease is the agent's to say (it verifies everything again).
    const client::RequestScope scope{m_chain_id, m_provider, frame.lease_id};
    const client::RequestLine line{request.method, request.target, client::BodyHash(request.body)};
    if (auto ok = client::VerifyTenantRequestSignature(scope, line, auth); !ok)
      return Refuse(401, ok.error().message);
  }
  frame.body = request.body;
  if (frame.op == BrokerOp::kSession) return OpenSession(frame);
  // A long-poll holds its broker descriptor while it waits: capped, so that waiting
  // requests never leave none for the rest.
  const bool long_poll = (frame.op == BrokerOp::kEvents || frame.op == BrokerOp::kLogs) &&
                         frame.Field("wait_ms").value_or("0") != "0";
  const PollKey poll_key{frame.lease_id, base::ToHex(auth.signer)};
  if (long_poll) {
    if (auto refused = AdmitLongPoll(poll_key)) return *refused;
  }
  auto reply = m_broker.Call(frame);
  if (long_poll) EndLongPoll(poll_key);
  if (!reply) {
    return Refuse(reply.error().code == ErrorCode::kInvalidArgument ? 400 : 502,
                  reply.error().message);
  }
  return FromReply(*reply);
}

Response TenantApi::OpenSession(const BrokerFrame& frame) {
  const uint64_t id = frame.lease_id;
  // Not counted yet (only the agent's yes is), but no use asking it when full.
  if (auto refused = SessionCap(id, nullptr)) return *refused;
  BrokerFd socket;
  auto reply = m_broker.Call(frame, &socket);
  if (!reply) {
    return Refuse(reply.error().code == ErrorCode::kInvalidArgument ? 400 : 502,
                  reply.error().message);
  }
  // The broker connection is free again already; a session never holds one.
  if (!socket.Valid()) return FromReply(*reply);  // the agent's refusal
  // Over a cap after all (sessions racing, or the tenant's other leases): the socket
  // closes here, and init ends that session when it reads the end. The agent names the
  // lease's tenant on the ledger (an agent that does not is one tenant, "").
  const std::string tenant(reply->Field("tenant").value_or(""));
  if (auto refused = SessionCap(id, &tenant)) return *refused;
  return server::UpgradeResponse(socket.Release(), std::string(kSessionProtocol),
                                 [this, id, tenant] { EndSession(id, tenant); });
}

std::optional<Response> TenantApi::SessionCap(uint64_t lease_id, const std::string* tenant) {
  base::MutexLock lock(m_polls_mu);
  auto it = m_sessions.find(lease_id);
  const size_t on_lease = it == m_sessions.end() ? 0 : it->second;
  if (on_lease >= kTenantSessionsPerLeaseMax) {
    return Refuse(429, "lease " + std::to_string(lease_id) + " has " +
                           std::to_string(kTenantSessionsPerLeaseMax) +
                           " sessions open, its limit: end one (exit a shell, stop a forward or "
                           "an ssh connection) and try again");
  }
  if (tenant != nullptr) {
    auto t = m_tenant_sessions.find(*tenant);
    if (t != m_tenant_sessions.end() && t->second >= kTenantSessionsPerTenantMax) {
      return Refuse(429, "lease " + std::to_string(lease_id) + "'s tenant has " +
                             std::to_string(kTenantSessionsPerTenantMax) +
                             " sessions open on this provider across its leases, its limit: end "
                             "one and try again");
    }
  }
  if (m_sessions_total >= kTenantSessionsMax) {
    return Refuse(503, "the provider has " + std::to_string(kTenantSessionsMax) +
                           " sessions open, all it relays at once: try again later");
  }
  if (tenant != nullptr) {
    ++m_sessions[lease_id];
    ++m_tenant_sessions[*tenant];
    ++m_sessions_total;
  }
  return std::nullopt;
}

void TenantApi::EndSession(uint64_t lease_id, const std::string& tenant) {
  base::MutexLock lock(m_polls_mu);
  auto it = m_sessions.find(lease_id);
  auto t = m_tenant_sessions.find(tenant);
  GPUNET_CHECK(it != m_sessions.end() && it->second > 0 && t != m_tenant_sessions.end() &&
               t->second > 0 && m_sessions_total > 0);
  if (--it->second == 0) m_sessions.erase(it);
  if (--t->second == 0) m_tenant_sessions.erase(t);
  --m_sessions_total;
}

std::optional<Response> TenantApi::AdmitLongPoll(const PollKey& key) {
  // Every descriptor but one; with a single one, that one (short requests then wait).
  const size_t alive = m_broker.Alive();
  const size_t total_max = alive > 1 ? alive - 1 : 1;
  base::MutexLock lock(m_polls_mu);
  size_t& on_lease = m_polls[key];
  if (on_lease >= kTenantLongPollsPerLeaseMax) {
    return Refuse(429, "lease " + std::to_string(key.first) + " has " +
                           std::to_string(kTenantLongPollsPerLeaseMax) +
                           " long-polls waiting (events or logs with wait_ms) signed by this key, "
                           "its limit: let one end, or ask with wait_ms=0");
  }
  if (m_polls_total >= total_max) {
    if (on_lease == 0) m_polls.erase(key);
    return Refuse(503, "the provider has " + std::to_string(m_polls_total) +
                           " long-polls waiting (events or logs with wait_ms), all it serves at "
                           "once: retry shortly, or ask with wait_ms=0");
  }
  ++on_lease;
  ++m_polls_total;
  return std::nullopt;
}

void TenantApi::EndLongPoll(const PollKey& key) {
  base::MutexLock lock(m_polls_mu);
  auto it = m_polls.find(key);
  GPUNET_CHECK(it != m_polls.end() && it->second > 0 && m_polls_total > 0);
  if (--it->second == 0) m_polls.erase(it);
  --m_polls_total;
}

base::Result<std::string> ReadKeyFromFd(int fd) {
  constexpr size_t kKeyBytesMax = 64 * 1024;
  std::string pem;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Fail(ErrorCode::kIo, "reading the TLS key from descriptor " + std::to_string(fd) +
                                      ": " + std::strerror(err));
    }
    if (n == 0) break;
    pem.append(buffer, static_cast<size_t>(n));
    if (pem.size() > kKeyBytesMax) {
      ::close(fd);
      return Fail(ErrorCode::kLimitExceeded, "the TLS key on descriptor " + std::to_string(fd) +
                                                 " is over 64 KiB: not a PEM key");
    }
  }
  ::close(fd);
  if (pem.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "descriptor " + std::to_string(fd) + " gave no TLS key (empty)");
  }
  return pem;
}

base::Status RunTenantApi(RunTenantApiOptions options,
                          const std::function<void(uint16_t)>& on_started) {
  GPUNET_TRY_ASSIGN(options.api.key_pem, ReadKeyFromFd(options.key_fd));
  if (options.broker_fds.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no broker descriptor given (--broker-fds)");
  }
  BrokerClient broker(std::move(options.broker_fds));
  TenantApi api(std::move(options.api), broker);
  GPUNET_TRY(api.Start());
  if (on_started) on_started(api.Port());
  broker.WaitAllGone();
  api.Stop();
  return base::Ok();
}

}  // namespace gpunet::provider
