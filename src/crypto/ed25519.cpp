#include "crypto/ed25519.h"

#include <sodium.h>

#include <cstring>

#include "base/check.h"
#include "base/limits.h"
#include "crypto/sodium_init.h"

namespace gpunet::crypto {

static_assert(crypto_sign_PUBLICKEYBYTES == PublicKey::kSize);
static_assert(crypto_sign_SEEDBYTES == Seed::kSize);
static_assert(crypto_sign_BYTES == Signature::kSize);
static_assert(crypto_sign_SECRETKEYBYTES == 64);

KeyPair KeyPair::Generate() {
  EnsureSodium();
  Seed seed;
  randombytes_buf(seed.data.data(), seed.kSize);
  KeyPair kp = FromSeed(seed);
  sodium_memzero(seed.data.data(), seed.kSize);
  return kp;
}

KeyPair KeyPair::FromSeed(const Seed& seed) {
  EnsureSodium();
  KeyPair kp;
  kp.m_seed = seed;
  int rc = crypto_sign_seed_keypair(kp.m_public.data.data(), kp.m_secret, seed.data.data());
  GPUNET_CHECK(rc == 0);
  return kp;
}

KeyPair::KeyPair(const KeyPair& other) : m_seed(other.m_seed), m_public(other.m_public) {
  std::memcpy(m_secret, other.m_secret, sizeof(m_secret));
}

KeyPair& KeyPair::operator=(const KeyPair& other) {
  if (this != &other) {
    m_seed = other.m_seed;
    m_public = other.m_public;
    std::memcpy(m_secret, other.m_secret, sizeof(m_secret));
  }
  return *this;
}

KeyPair::~KeyPair() {
  sodium_memzero(m_seed.data.data(), m_seed.kSize);
  sodium_memzero(m_secret, sizeof(m_secret));
}

Signature KeyPair::SignRaw(base::ByteSpan message) const {
  Signature sig;
  int rc = crypto_sign_detached(sig.data.data(), nullptr, message.data(), message.size(), m_secret);
  GPUNET_CHECK(rc == 0);
  return sig;
}

Signature KeyPair::Sign(Domain domain, std::string_view chain_id, base::ByteSpan message) const {
  base::Bytes bytes = SigningBytes(domain, chain_id, message);
  return SignRaw(bytes);
}

bool VerifyRaw(const PublicKey& key, base::ByteSpan message, const Signature& sig) {
  EnsureSodium();
  return crypto_sign_verify_detached(sig.data.data(), message.data(), message.size(),
                                     key.data.data()) == 0;
}

bool Verify(const PublicKey& key, Domain domain, std::string_view chain_id, base::ByteSpan message,
            const Signature& sig) {
  // A chain id over the limit can never have been signed (Sign asserts), so it
  // is a plain "does not verify" rather than a crash on outside input.
  if (chain_id.size() > base::limits::kChainIdBytesMax) return false;
  base::Bytes bytes = SigningBytes(domain, chain_id, message);
  return VerifyRaw(key, bytes, sig);
}

base::Bytes SigningBytes(Domain domain, std::string_view chain_id, base::ByteSpan message) {
  // Layout: u8 len(tag) || tag || u8 len(chain_id) || chain_id || message.
  // Both prefixes carry their length so no (tag, chain id, message) triple can
  // produce the same bytes as another.
  static_assert(base::limits::kChainIdBytesMax <= 255);
  GPUNET_CHECK(chain_id.size() <= base::limits::kChainIdBytesMax);
  std::string_view tag = DomainTag(domain);
  GPUNET_CHECK(tag.size() <= 255);
  base::Bytes out;
  out.reserve(2 + tag.size() + chain_id.size() + message.size());
  out.push_back(static_cast<uint8_t>(tag.size()));
  out.insert(out.end(), tag.begin(), tag.end());
  out.push_back(static_cast<uint8_t>(chain_id.size()));
  out.insert(out.end(), chain_id.begin(), chain_id.end());
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

}  // namespace gpunet::crypto
