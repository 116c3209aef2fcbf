#include "node/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "server/http_server.h"

namespace gpunet::node {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;

namespace {

base::Result<std::string> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// node.json's "rpc_limits" counts and times, by name.
constexpr std::pair<const char*, uint64_t RpcLimits::*> kRpcLimitFields[] = {
    {"connections_max", &RpcLimits::connections_max},
    {"connections_per_address_max", &RpcLimits::connections_per_address_max},
    {"ws_per_address_max", &RpcLimits::ws_per_address_max},
    {"pending_requests_max", &RpcLimits::pending_requests_max},
    {"pending_requests_per_address_max", &RpcLimits::pending_requests_per_address_max},
    {"waits_per_address_max", &RpcLimits::waits_per_address_max},
    {"idle_timeout_ms", &RpcLimits::idle_timeout_ms},
    {"ws_unsubscribed_timeout_ms", &RpcLimits::ws_unsubscribed_timeout_ms},
    {"ws_queue_bytes_max", &RpcLimits::ws_queue_bytes_max},
};
// Keeps the millisecond and count values far from the int64/size_t edges.
constexpr uint64_t kRpcLimitValueMax = 1'000'000'000;

base::Result<RpcLimits> ParseRpcLimits(const std::string& path, const json& j) {
  std::string fields;
  for (const auto& [name, member] : kRpcLimitFields) fields += std::string(name) + ", ";
  fields += "exempt_loopback (true|false)";
  if (!j.is_object())
    return Fail(ErrorCode::kInvalidArgument,
                path + ": rpc_limits must be an object with some of: " + fields);
  RpcLimits limits;
  for (const auto& [k, v] : j.items()) {
    if (k == "exempt_loopback") {
      if (!v.is_boolean())
        return Fail(ErrorCode::kInvalidArgument,
                    path + ": rpc_limits.exempt_loopback must be true or false, not " + v.dump());
      limits.exempt_loopback = v.get<bool>();
      continue;
    }
    const auto* field = std::find_if(std::begin(kRpcLimitFields), std::end(kRpcLimitFields),
                                     [&](const auto& f) { return k == f.first; });
    if (field == std::end(kRpcLimitFields) || !v.is_number_unsigned() || v.get<uint64_t>() < 1 ||
        v.get<uint64_t>() > kRpcLimitValueMax)
      return Fail(ErrorCode::kInvalidArgument,
                  path + ": rpc_limits." + k + " is unknown or not an integer 1.." +
                      std::to_string(kRpcLimitValueMax) + " (fields: " + fields + ")");
    limits.*(field->second) = v.get<uint64_t>();
  }
  return limits;
}

// Only the fields that differ from the defaults: a home keeps what its operator
// set, and a default changed in a later release reaches every other field.
json RpcLimitsJson(const RpcLimits& limits) {
  const RpcLimits defaults;
  json j = json::object();
  for (const auto& [name, member] : kRpcLimitFields)
    if (limits.*member != defaults.*member) j[name] = limits.*member;
  if (limits.exempt_loopback != defaults.exempt_loopback)
    j["exempt_loopback"] = limits.exempt_loopback;
  return j;
}

}  // namespace

base::Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Fail(ErrorCode::kInvalidArgument,
                "rpc address '" + text + "' must be host:port, e.g. 127.0.0.1:26657");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port > 65535)
    return Fail(ErrorCode::kInvalidArgument,
                "rpc port '" + port_text + "' must be a number 0..65535 (0 = any free port)");
  return std::make_pair(host, static_cast<uint16_t>(port));
}

base::Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  GPUNET_TRY_ASSIGN(const std::string text, ReadConfigFile(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Fail(ErrorCode::kInvalidArgument, path + " is not a JSON object");
  NodeConfig c;
  for (const auto& [k, v] : j.items()) {
    if (k == "rpc" && v.is_string()) {
      GPUNET_TRY_ASSIGN(const auto host_port, ParseHostPort(v.get<std::string>()));
      c.rpc_host = host_port.first;
      c.rpc_port = host_port.second;
    } else if (k == "block_interval_ms" && v.is_number_unsigned() && v.get<uint64_t>() >= 1) {
      c.block_interval_ms = v.get<uint64_t>();
    } else if (k == "engine" && v.is_string()) {
      c.engine = v.get<std::string>();
      if (c.engine != "solo" && c.engine != "bft")
        return Fail(ErrorCode::kUnsupported,
                    path + ": engine '" + c.engine + "' is not available; use \"solo\" or \"bft\"");
    } else if (k == "validator_key" && v.is_string()) {
    } else if (k == "rpc_limits") {
      GPUNET_TRY_ASSIGN(c.rpc_limits, ParseRpcLimits(path, v));
    } else {
      return Fail(ErrorCode::kInvalidArgument,
                  path + ": unknown or ill-typed field '" + k +
                      "' (fields: rpc \"host:port\", block_interval_ms >= 1, engine "
                      "\"solo\"|\"bft\", rpc_limits {...})");
    }
  }
  return c;
}

std::string NodeConfigToJson(const NodeConfig& c) {
  json j = {{"rpc", c.rpc_host + ":" + std::to_string(c.rpc_port)},
            {"block_interval_ms", c.block_interval_ms},
            {"engine", c.engine}};
  if (json limits = RpcLimitsJson(c.rpc_limits); !limits.empty()) j["rpc_limits"] = limits;
  return j.dump(2) + "\n";
}

server::ServerOptions RpcServerOptions(const NodeConfig& config) {
  const RpcLimits& l = config.rpc_limits;
  server::ServerOptions so;
  so.host = config.rpc_host;
  so.port = config.rpc_port;
  so.body_bytes_max = 256 * 1024;
  so.connections_max = l.connections_max;
  so.connections_per_address_max = l.connections_per_address_max;
  so.ws_per_address_max = l.ws_per_address_max;
  so.pending_requests_max = l.pending_requests_max;
  so.pending_requests_per_address_max = l.pending_requests_per_address_max;
  so.idle_timeout_ms = static_cast<int64_t>(l.idle_timeout_ms);
  so.ws_unsubscribed_timeout_ms = static_cast<int64_t>(l.ws_unsubscribed_timeout_ms);
  so.ws_queue_bytes_max = l.ws_queue_bytes_max;
  so.per_address_exempt_loopback = l.exempt_loopback;
  return so;
}

}  // namespace gpunet::node
