// fuzz-libs: gpunet_crypto gpunet_base
// Key file header parsing: any bytes give a header or a clean error, never a
// crash. (Decryption is not fuzzed: it runs argon2id, which is the point.)
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/check.h"
#include "crypto/keyfile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto info = gpunet::crypto::ParseKeyFile(text, "fuzz.json");
  if (info) {
    GPUNET_CHECK(info->version == gpunet::crypto::kKeyFileVersion);
    GPUNET_CHECK(info->address == gpunet::crypto::AddressOf(info->public_key));
  } else {
    GPUNET_CHECK(info.error().code == gpunet::base::ErrorCode::kCorrupt);
  }
  return 0;
}
