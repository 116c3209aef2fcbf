// The one deterministic key maker of the tests, the simulator and the benchmarks:
// the same Ed25519 key pair, and so the same address and signatures, for the same
// number or name on every run and machine. Header-only; needs gpunet_crypto alone.
//
// Tests that compare with fixed bytes (the golden vectors of tests/vectors/, whose
// example keys are FilledSeed(n)) pass the exact seed to TestKey(const Seed&).
// crypto's own tests of seed derivation (RFC 8032, BIP-39) call the crypto API
// directly: that derivation is what they test.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"

namespace gpunet::testing {

/// The last seed byte of every numbered test key, so that no numbered key is a
/// FilledSeed key (whose last byte equals its first).
inline constexpr uint8_t kTestKeyTag = 0xa7;

/// The seed of numbered test key n: n's eight bytes little-endian, then zeros, and
/// kTestKeyTag last.
inline crypto::Seed TestSeed(uint64_t n) {
  crypto::Seed seed;
  for (size_t i = 0; i < 8; ++i) seed[i] = static_cast<uint8_t>(n >> (8 * i));
  seed[crypto::Seed::kSize - 1] = kTestKeyTag;
  return seed;
}

/// A seed of 32 equal bytes: the example keys of the codec's golden vectors.
inline crypto::Seed FilledSeed(uint8_t byte) {
  crypto::Seed seed;
  seed.data.fill(byte);
  return seed;
}

/// The key of an exact seed, for tests whose fixed bytes depend on it.
inline crypto::KeyPair TestKey(const crypto::Seed& seed) {
  return crypto::KeyPair::FromSeed(seed);
}

/// Numbered test key n (distinct numbers give distinct keys).
inline crypto::KeyPair TestKey(uint64_t n) {
  return TestKey(TestSeed(n));
}

/// A named test key ("alice", "validator-3"): its seed is BLAKE2b-256 of
/// "gpunet-test-key:" and the name, so no name gives a numbered key.
inline crypto::KeyPair TestKey(std::string_view name) {
  const std::string text = "gpunet-test-key:" + std::string(name);
  return TestKey(crypto::Blake2b256(base::AsBytes(text)));
}

/// The address of a test key.
inline crypto::Address TestAddress(const crypto::KeyPair& key) {
  return crypto::AddressOf(key.Public());
}
inline crypto::Address TestAddress(uint64_t n) {
  return TestAddress(TestKey(n));
}
inline crypto::Address TestAddress(std::string_view name) {
  return TestAddress(TestKey(name));
}

}  // namespace gpunet::testing
