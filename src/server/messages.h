// What a route handler sees (Request) and returns (Response), and the JSON helpers
// that build answers: every error the server or a handler sends has the one shape
//   {"error":{"code":"not_found","message":"no route for GET /nope; ..."}}
// with the HTTP status following the code (docs/rpc.md).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"

namespace gpunet::server {

/// One parsed HTTP request, as handlers see it.
struct Request {
  std::string method;  ///< "GET", "POST", ...
  std::string path;    ///< target without the query string, not percent-decoded
  /// For prefix routes, what follows the prefix ("/tx/ab12" on "/tx/" → "ab12").
  std::string path_rest;
  std::map<std::string, std::string> query;  ///< percent-decoded; each key at most once
  /// The request-target exactly as received (path and query, nothing decoded): what
  /// a signed tenant-API request's signature covers (client/tenant_request.h).
  std::string target;
  /// Every header as received, in order, duplicates kept (names as the client wrote
  /// them): for handlers that must refuse a repeated header rather than pick one.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;
  /// The peer's IP address as text ("127.0.0.1", "2001:db8::1"; IPv4-mapped IPv6
  /// addresses as IPv4). Handlers key their own per-client limits on it.
  std::string remote_address;
  /// True when the server exempts this peer from its per-address caps (a loopback
  /// peer with ServerOptions::per_address_exempt_loopback): handlers with their own
  /// per-address caps should exempt it too.
  bool per_address_exempt = false;
};

/// A connection a handler hands over to a byte relay (an HTTP/1.1 upgrade to a
/// protocol the server does not speak): the server answers `101 Switching
/// Protocols` with `Upgrade: <protocol>` and `Connection: Upgrade`, then copies bytes
/// both ways, verbatim and unparsed, between the client's stream (TLS or plain) and
/// the descriptor, with half-close, until both directions ended (see
/// src/server/README.md "Relays"). Owns the descriptor: closed when the relay ends,
/// or when the answer never goes out (the client left, the server stops). `on_end`
/// runs exactly once, at that moment, on whichever thread dropped the last reference:
/// the handler's way to release what it counted for the relay.
class UpgradeTarget {
 public:
  /// `fd`: a connected stream socket (AF_UNIX or TCP), blocking or not. `protocol`:
  /// the Upgrade token, 1..64 bytes of [A-Za-z0-9./_-].
  UpgradeTarget(int fd, std::string protocol, std::function<void()> on_end = {});
  ~UpgradeTarget();
  UpgradeTarget(const UpgradeTarget&) = delete;
  UpgradeTarget& operator=(const UpgradeTarget&) = delete;

  const std::string& Protocol() const { return m_protocol; }
  /// The descriptor, now the caller's to close (the relay's); -1 once taken.
  int TakeFd();

 private:
  int m_fd = -1;
  std::string m_protocol;
  std::function<void()> m_on_end;
};

/// What a handler returns.
struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Further headers to send (the tenant API's Gpunet-Next-Offset on a log read);
  /// names and values must be valid header text (the handler's to ensure).
  std::vector<std::pair<std::string, std::string>> headers = {};
  /// Set (by UpgradeResponse): switch the connection to a byte relay instead of
  /// answering. Only for a request that asked for that protocol (HTTP/1.1,
  /// `Connection: Upgrade`, `Upgrade: <protocol>`); any other gets 426 and the
  /// target is dropped. The other fields are then ignored (status is 101).
  std::shared_ptr<UpgradeTarget> upgrade = nullptr;
};

/// Status 101 with an UpgradeTarget over `fd` (see there).
Response UpgradeResponse(int fd, std::string protocol, std::function<void()> on_end = {});
// ---- JSON helpers ----

/// {"error":{"code":code,"message":message}} with the given status.
Response JsonError(int status, std::string_view code, std::string_view message);
/// A base::Error as a JSON error; the HTTP status follows the code (see docs/rpc.md).
Response ErrorResponse(const base::Error& error);
/// HTTP status for an error code: 400, 404, 409, 403, 504, 503 or 500.
int HttpStatusFor(base::ErrorCode code);
/// Status 200 (or `status`) with a serialized JSON value.
Response JsonResponse(const nlohmann::json& value, int status = 200);
/// Parses the body as a JSON object; the error names what is wrong and where.
base::Result<nlohmann::json> ParseJsonBody(const Request& request);

/// The text of {"error":{"code":code,"message":message}}; for the server's own
/// answers that are not a Response (websocket replies, refusals before a session).
std::string JsonErrorText(std::string_view code, std::string_view message);
/// A JSON value as text; never throws on bad UTF-8 in strings (messages may quote
/// client bytes), it replaces them.
std::string DumpJson(const nlohmann::json& value);

}  // namespace gpunet::server
