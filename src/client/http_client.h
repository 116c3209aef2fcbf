// Talks to a node's RPC: synchronous HTTP/1.1 requests and a websocket subscriber.
//
// Every failure to talk is a base::Error whose message names the URL and says
// what to try, e.g. "cannot reach the node at http://127.0.0.1:26657: connection
// refused — is `gpunet node` or `gpunet devnet` running?". An HTTP error status is
// not a transport failure: Get/Post return it; ErrorFromResponse turns the node's
// JSON error body into a base::Error when the caller wants one.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gpunet::client {

/// "http://host:port" split up. Only plain http: the RPC listens on loopback.
struct NodeUrl {
  std::string host;
  uint16_t port = 0;
  std::string base;  ///< "http://host:port", no trailing slash
};

/// Parses "http://127.0.0.1:26657" (port defaults to 26657, a trailing "/" is
/// allowed). Fails with a message that shows the expected form.
base::Result<NodeUrl> ParseNodeUrl(std::string_view url);

struct HttpClientOptions {
  int64_t connect_timeout_ms = 3'000;
  /// Writing the request and reading the whole response. Long for calls that wait
  /// for a commit; pass a larger value for those.
  int64_t request_timeout_ms = 30'000;
  size_t response_bytes_max = 64 * 1024 * 1024;
};

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

/// The node's JSON error body ({"error":{"code","message"}}) as a base::Error;
/// a non-JSON error body becomes kUnavailable/kInternal with the status and text.
base::Error ErrorFromResponse(const HttpResponse& response);

/// One request per connection: simple and robust against a node that restarts
/// between calls. Thread-compatible (one call at a time per object).
class HttpClient {
 public:
  /// `url` is checked by ParseNodeUrl on first use; a bad one fails every call.
  explicit HttpClient(std::string url, HttpClientOptions options = {});

  /// GET path_and_query, e.g. "/status" or "/block?height=3".
  base::Result<HttpResponse> Get(std::string_view path_and_query);
  /// POST with a JSON body (Content-Type: application/json).
  base::Result<HttpResponse> Post(std::string_view path, std::string_view json_body);
  /// Any method, body and content type.
  base::Result<HttpResponse> Request(std::string_view method, std::string_view target,
                                     std::string_view body, std::string_view content_type);

  const std::string& Url() const { return m_url; }

 private:
  std::string m_url;
  HttpClientOptions m_options;
};

/// One event as the node publishes it: {"topic":"blocks","data":{...}}.
struct WsEvent {
  std::string topic;
  std::string data_json;  ///< the "data" member, serialized
};

/// A websocket subscription to the node's /ws endpoint.
class WsSubscriber {
 public:
  /// Connects to `<url>/ws?subscribe=<topics>`: the node has subscribed the
  /// connection before Connect returns, so no event published afterwards is missed.
  static base::Result<std::unique_ptr<WsSubscriber>> Connect(std::string_view url,
                                                             const std::vector<std::string>& topics,
                                                             int64_t timeout_ms = 3'000,
                                                             std::string_view path = "/ws");
  ~WsSubscriber();
  WsSubscriber(const WsSubscriber&) = delete;
  WsSubscriber& operator=(const WsSubscriber&) = delete;

  /// Adds a topic over the open connection; returns once the node confirmed it.
  /// Events that arrive before the confirmation are kept for Next().
  base::Status Subscribe(std::string_view topic, int64_t timeout_ms = 3'000);

  /// The next event. kTimeout when none came within timeout_ms (the connection
  /// stays usable); kUnavailable with the node's close reason when it hung up.
  base::Result<WsEvent> Next(int64_t timeout_ms);

  /// Sends a raw text frame (tests, tools). Returns what the node answered next.
  base::Result<std::string> SendCommand(std::string_view text, int64_t timeout_ms = 3'000);

  struct Impl;

 private:
  explicit WsSubscriber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace gpunet::client
