#include "crypto/address.h"

#include <algorithm>

#include "base/bech32.h"
#include "base/check.h"
#include "crypto/hash.h"

namespace gpunet::crypto {

Address AddressOf(const PublicKey& key) {
  base::Hash32 h = Blake2b256(key.Span());
  Address a;
  std::copy_n(h.begin(), Address::kSize, a.begin());
  return a;
}

std::string AddressToString(const Address& address) {
  auto s = base::Bech32EncodeBytes(kAddressPrefix, address.Span());
  GPUNET_CHECK(s.has_value());  // 20 bytes under "gpn" always fits in 90 characters
  return *s;
}

base::Result<Address> ParseAddress(std::string_view text) {
  auto bytes = base::Bech32DecodeBytes(text, kAddressPrefix);
  if (!bytes) return base::Wrap(bytes.error(), "not a gpunet address");
  if (bytes->size() != Address::kSize)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "not a gpunet address: carries " + std::to_string(bytes->size()) +
                          " bytes, expected " + std::to_string(Address::kSize));
  Address a;
  std::copy(bytes->begin(), bytes->end(), a.begin());
  return a;
}

}  // namespace gpunet::crypto
