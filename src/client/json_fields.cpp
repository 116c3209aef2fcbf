#include "client/json_fields.h"

#include <utility>

#include "base/checked_math.h"
#include "crypto/address.h"

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;
using Json = nlohmann::json;

base::Result<uint64_t> ParseDecimalU64(std::string_view s) {
  if (s.empty() || s.size() > 20) return Fail(ErrorCode::kCorrupt, "not a decimal integer");
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Fail(ErrorCode::kCorrupt, "not a decimal integer");
    auto t = base::CheckedMul(v, 10);
    if (t) t = base::CheckedAdd(*t, static_cast<uint64_t>(c - '0'));
    if (!t) return Fail(ErrorCode::kCorrupt, "over 2^64-1");
    v = *t;
  }
  return v;
}

JsonFields::JsonFields(const Json& j, std::string what, std::string path)
    : m_json(j), m_what(std::move(what)), m_path(std::move(path)) {}

base::Status JsonFields::IsObject() const {
  if (!m_json.is_object()) return Bad("", "is not a JSON object");
  return base::Ok();
}

bool JsonFields::Has(std::string_view name) const {
  return m_json.is_object() && m_json.contains(name);
}

base::Result<const Json*> JsonFields::Get(std::string_view name) const {
  if (!m_json.is_object()) return Bad("", "is not a JSON object");
  auto it = m_json.find(name);
  if (it == m_json.end()) return Bad(name, "is missing");
  return &*it;
}

base::Result<std::string> JsonFields::Str(std::string_view name) const {
  const Json* v = nullptr;
  GPUNET_TRY_ASSIGN(v, Get(name));
  if (!v->is_string()) return Bad(name, "is not a string");
  return v->get<std::string>();
}

base::Result<bool> JsonFields::Bool(std::string_view name) const {
  const Json* v = nullptr;
  GPUNET_TRY_ASSIGN(v, Get(name));
  if (!v->is_boolean()) return Bad(name, "is not true or false");
  return v->get<bool>();
}

base::Result<uint64_t> JsonFields::U64(std::string_view name) const {
  const Json* v = nullptr;
  GPUNET_TRY_ASSIGN(v, Get(name));
  // Parsed JSON holds non-negative integers as unsigned; built JSON may hold them signed.
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer() && v->get<int64_t>() >= 0)
    return static_cast<uint64_t>(v->get<int64_t>());
  return Bad(name, "is not a non-negative integer number");
}

base::Result<uint32_t> JsonFields::U32(std::string_view name) const {
  uint64_t v = 0;
  GPUNET_TRY_ASSIGN(v, U64(name));
  if (v > UINT32_MAX) return Bad(name, "is over 2^32-1");
  return static_cast<uint32_t>(v);
}

base::Result<uint16_t> JsonFields::U16(std::string_view name) const {
  uint64_t v = 0;
  GPUNET_TRY_ASSIGN(v, U64(name));
  if (v > UINT16_MAX) return Bad(name, "is over 65535");
  return static_cast<uint16_t>(v);
}

base::Result<uint64_t> JsonFields::Ugpn(std::string_view name) const {
  const Json* v = nullptr;
  GPUNET_TRY_ASSIGN(v, Get(name));
  if (!v->is_string()) return Bad(name, "is not an integer string (amounts are strings of ugpn)");
  auto parsed = ParseDecimalU64(v->get<std::string>());
  if (!parsed) return Bad(name, "is not an integer string of ugpn: " + parsed.error().message);
  return *parsed;
}

base::Result<unsigned __int128> JsonFields::Ugpn128(std::string_view name) const {
  std::string s;
  GPUNET_TRY_ASSIGN(s, Str(name));
  if (s.empty() || s.size() > 39) return Bad(name, "is not an integer string of ugpn");
  unsigned __int128 v = 0;
  constexpr unsigned __int128 kMax = ~static_cast<unsigned __int128>(0);
  for (char c : s) {
    if (c < '0' || c > '9') return Bad(name, "is not an integer string of ugpn");
    const auto digit = static_cast<unsigned>(c - '0');
    if (v > (kMax - digit) / 10) return Bad(name, "is over 2^128-1");
    v = v * 10 + digit;
  }
  return v;
}

base::Result<base::Bytes> JsonFields::Hex(std::string_view name) const {
  std::string s;
  GPUNET_TRY_ASSIGN(s, Str(name));
  auto bytes = base::FromHex(s);
  if (!bytes) return Bad(name, "is not hex: " + bytes.error().message);
  return std::move(*bytes);
}

base::Result<base::Hash32> JsonFields::Hash(std::string_view name) const {
  std::string s;
  GPUNET_TRY_ASSIGN(s, Str(name));
  auto h = base::FixedFromHex<32>(s);
  if (!h) return Bad(name, "is not a 64-character hex hash");
  return *h;
}

base::Result<std::string> JsonFields::Address(std::string_view name) const {
  std::string s;
  GPUNET_TRY_ASSIGN(s, Str(name));
  auto a = crypto::ParseAddress(s);
  if (!a) return Bad(name, "is not a gpn1 address: " + a.error().message);
  return s;
}

base::Result<const Json*> JsonFields::Array(std::string_view name) const {
  const Json* v = nullptr;
  GPUNET_TRY_ASSIGN(v, Get(name));
  if (!v->is_array()) return Bad(name, "is not an array");
  return v;
}

base::Result<const Json*> JsonFields::Object(std::string_view name) const {
  const Json* v = nullptr;
  GPUNET_TRY_ASSIGN(v, Get(name));
  if (!v->is_object()) return Bad(name, "is not an object");
  return v;
}

JsonFields JsonFields::Sub(const Json& j, std::string_view name) const {
  return JsonFields(j, m_what, PathOf(name));
}

JsonFields JsonFields::Item(const Json& j, std::string_view name, size_t index) const {
  return JsonFields(j, m_what, PathOf(name) + "[" + std::to_string(index) + "]");
}

std::string JsonFields::PathOf(std::string_view name) const {
  if (m_path.empty()) return std::string(name);
  if (name.empty()) return m_path;
  return m_path + "." + std::string(name);
}

std::unexpected<base::Error> JsonFields::Bad(std::string_view name,
                                             std::string_view problem) const {
  const std::string path = PathOf(name);
  const std::string field = path.empty() ? std::string("the body") : "field \"" + path + "\"";
  return Fail(ErrorCode::kCorrupt,
              "the node's answer to " + m_what + " does not follow the RPC contract: " + field +
                  " " + std::string(problem) +
                  " (is the node another gpunet version? `gpunet status` shows its "
                  "node_version)");
}

}  // namespace gpunet::client
