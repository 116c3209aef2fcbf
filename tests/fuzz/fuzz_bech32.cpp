// fuzz-libs: gpunet_crypto gpunet_base
// Bech32 and address parsing: never crash; whatever decodes re-encodes to the
// same string in lower case (one canonical text form).
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/bech32.h"
#include "base/check.h"
#include "crypto/address.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto parts = gpunet::base::Bech32Decode(text);
  if (parts) {
    auto again = gpunet::base::Bech32Encode(parts->hrp, parts->data5);
    GPUNET_CHECK(again.has_value());
    std::string lower = text;
    for (char& c : lower)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    GPUNET_CHECK(*again == lower);
  }
  auto address = gpunet::crypto::ParseAddress(text);
  if (address) {
    auto back = gpunet::crypto::ParseAddress(gpunet::crypto::AddressToString(*address));
    GPUNET_CHECK(back.has_value() && *back == *address);
  }
  return 0;
}
