// fuzz-libs: gpunet_crypto gpunet_base
// BIP-39 mnemonic parsing: never crash; accepted entropy re-encodes to words
// that parse back to the same entropy.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/check.h"
#include "crypto/mnemonic.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto entropy = gpunet::crypto::MnemonicToEntropy(text);
  if (entropy) {
    auto words = gpunet::crypto::EntropyToMnemonic(*entropy);
    GPUNET_CHECK(words.has_value());
    auto again = gpunet::crypto::MnemonicToEntropy(*words);
    GPUNET_CHECK(again.has_value() && *again == *entropy);
  }
  (void)gpunet::crypto::MnemonicToSeed(text);
  return 0;
}
