// Strict reading of one JSON object of a node answer (docs/rpc.md). Every accessor
// returns the value or a kCorrupt error that names the request, the field (with its
// path inside the answer: "provider.machine_list[1].gpu_count") and what was
// expected, so a client never acts on a half-understood answer and never throws.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/result.h"

namespace gpunet::client {

/// `s` as a decimal u64: digits only, no sign or space, at most 2^64-1.
base::Result<uint64_t> ParseDecimalU64(std::string_view s);

class JsonFields {
 public:
  /// `what` names the request ("GET /status"); `path` where `j` sits in its answer
  /// ("" for the answer itself).
  JsonFields(const nlohmann::json& j, std::string what, std::string path = {});

  base::Status IsObject() const;
  bool Has(std::string_view name) const;
  /// The member `name`, present (of any type, null included).
  base::Result<const nlohmann::json*> Get(std::string_view name) const;

  base::Result<std::string> Str(std::string_view name) const;
  base::Result<bool> Bool(std::string_view name) const;
  /// A JSON number that is a non-negative integer, and nothing else: docs/rpc.md
  /// writes heights, nonces, indexes, codes, versions and gas as numbers (only the
  /// amounts, `*_ugpn`, are strings), so a number written as a string is refused.
  base::Result<uint64_t> U64(std::string_view name) const;
  base::Result<uint32_t> U32(std::string_view name) const;
  base::Result<uint16_t> U16(std::string_view name) const;
  /// A JSON number that is a non-negative integer no larger than T's maximum, and
  /// nothing else (the market's ids, counts, times and versions: docs/rpc.md).
  template <class T>
  base::Result<T> Number(std::string_view name) const {
    uint64_t v = 0;
    GPUNET_TRY_ASSIGN(v, U64(name));
    if (v > std::numeric_limits<T>::max())
      return Bad(name, "is over " + std::to_string(std::numeric_limits<T>::max()));
    return static_cast<T>(v);
  }
  /// Fields ending in _ugpn: integer strings, as the contract says.
  base::Result<uint64_t> Ugpn(std::string_view name) const;
  /// An _ugpn sum the node adds up in 128 bits (the conservation equation).
  base::Result<unsigned __int128> Ugpn128(std::string_view name) const;
  base::Result<base::Bytes> Hex(std::string_view name) const;
  base::Result<base::Hash32> Hash(std::string_view name) const;
  /// A gpn1 address, returned as the node wrote it.
  base::Result<std::string> Address(std::string_view name) const;
  base::Result<const nlohmann::json*> Array(std::string_view name) const;
  base::Result<const nlohmann::json*> Object(std::string_view name) const;

  /// The fields of `j`, found at `name` inside this object.
  JsonFields Sub(const nlohmann::json& j, std::string_view name) const;
  /// The fields of `j`, entry `index` of the list at `name`.
  JsonFields Item(const nlohmann::json& j, std::string_view name, size_t index) const;

  /// The error for field `name` ("" for this object itself): "<problem>" says what
  /// was expected ("is missing", "is not a string").
  std::unexpected<base::Error> Bad(std::string_view name, std::string_view problem) const;

 private:
  std::string PathOf(std::string_view name) const;

  const nlohmann::json& m_json;
  std::string m_what;
  std::string m_path;
};

}  // namespace gpunet::client
