// BLAKE2b-256 (libsodium crypto_generichash, 32-byte output, no key).
#pragma once

#include "base/bytes.h"

namespace gpunet::crypto {

/// BLAKE2b-256 of the bytes.
base::Hash32 Blake2b256(base::ByteSpan data);

/// Incremental BLAKE2b-256 for hashing several pieces without concatenating.
class Blake2b256Hasher {
 public:
  Blake2b256Hasher();
  Blake2b256Hasher& Update(base::ByteSpan data);
  Blake2b256Hasher& Update(uint8_t byte) { return Update(base::ByteSpan(&byte, 1)); }
  base::Hash32 Final();

 private:
  // At least sizeof(crypto_generichash_state) (static_assert in hash.cpp), so this
  // header needs no <sodium.h>.
  alignas(64) unsigned char m_state[384];
};

}  // namespace gpunet::crypto
