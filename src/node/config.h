// The node's configuration: <home>/config/node.json as parsed (NodeConfig), its
// RPC caps (RpcLimits), and the HTTP server options they make.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "base/result.h"

namespace gpunet::server {
struct ServerOptions;
}  // namespace gpunet::server

namespace gpunet::node {

/// node.json's "rpc_limits": the RPC's caps that keep one greedy client from
/// starving the others (docs/rpc.md, "Limits per client"). Counts and times are
/// at least 1.
struct RpcLimits {
  uint64_t connections_max = 256;                  ///< all peers; beyond it 503
  uint64_t connections_per_address_max = 32;       ///< one peer address; beyond it 429
  uint64_t ws_per_address_max = 8;                 ///< websockets of one address; 429
  uint64_t pending_requests_max = 256;             ///< all peers; beyond it 503
  uint64_t pending_requests_per_address_max = 32;  ///< one address; beyond it 429
  /// POST /tx with "wait":"committed" held open at once for one address; 429. (A
  /// connection carries one request at a time, so one wait per connection.)
  uint64_t waits_per_address_max = 8;
  uint64_t idle_timeout_ms = 30'000;  ///< keep-alive connection without a request
  /// A websocket subscribed to no topic is closed after this.
  uint64_t ws_unsubscribed_timeout_ms = 30'000;
  /// Bytes queued for one websocket subscriber; beyond it the subscriber is cut
  /// (a block's txs frame can be MBs, so a frame count alone bounds nothing).
  uint64_t ws_queue_bytes_max = 32 * 1024 * 1024;
  /// Loopback peers skip the per-address caps (not the global ones): on the default
  /// listen address 127.0.0.1 every client is local and shares that address.
  bool exempt_loopback = true;
};

/// <home>/config/node.json as parsed.
struct NodeConfig {
  std::string rpc_host = "127.0.0.1";
  uint16_t rpc_port = 26657;
  uint64_t block_interval_ms = 1000;
  std::string engine = "solo";
  RpcLimits rpc_limits;
};
base::Result<NodeConfig> LoadNodeConfig(const std::string& path);
std::string NodeConfigToJson(const NodeConfig& config);

/// "host:port" (port 0..65535; 0 = any free port), as node.json's "rpc" and the
/// --rpc flag give it.
base::Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text);

/// The RPC server's options for `config`: its address and its RpcLimits.
server::ServerOptions RpcServerOptions(const NodeConfig& config);

}  // namespace gpunet::node
