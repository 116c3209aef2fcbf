// Ed25519 keys and signatures through libsodium. One verification rule for the
// whole chain: crypto_sign_verify_detached (architecture §2.1).
#pragma once

#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "crypto/domains.h"

namespace gpunet::crypto {

using PublicKey = base::FixedBytes<32>;
using Signature = base::FixedBytes<64>;
using Seed = base::FixedBytes<32>;

/// A key pair. The secret part is wiped on destruction and never printed.
class KeyPair {
 public:
  /// A fresh key from the OS random source.
  static KeyPair Generate();
  /// The key determined by a 32-byte seed (RFC 8032 "secret key").
  static KeyPair FromSeed(const Seed& seed);

  KeyPair(const KeyPair&);
  KeyPair& operator=(const KeyPair&);
  ~KeyPair();

  const PublicKey& Public() const { return m_public; }
  const Seed& SeedBytes() const { return m_seed; }

  /// Raw Ed25519 signature of the message (no domain): for test vectors only.
  Signature SignRaw(base::ByteSpan message) const;
  /// Signature over SigningBytes(domain, chain_id, message):
  /// u8 len(tag) || DomainTag(domain) || u8 len(chain_id) || chain_id || message.
  /// chain_id must be at most limits::kChainIdBytesMax bytes (checked: a bug otherwise).
  Signature Sign(Domain domain, std::string_view chain_id, base::ByteSpan message) const;

 private:
  KeyPair() = default;
  Seed m_seed;
  PublicKey m_public;
  unsigned char m_secret[64];  // libsodium's expanded secret key
};

/// Raw Ed25519 verification (RFC 8032 vectors).
bool VerifyRaw(const PublicKey& key, base::ByteSpan message, const Signature& sig);
/// Verification of a domain-separated signature made by KeyPair::Sign. A chain id over
/// limits::kChainIdBytesMax simply does not verify.
bool Verify(const PublicKey& key, Domain domain, std::string_view chain_id, base::ByteSpan message,
            const Signature& sig);

/// The bytes that Sign/Verify cover, for callers that batch or cache.
base::Bytes SigningBytes(Domain domain, std::string_view chain_id, base::ByteSpan message);

}  // namespace gpunet::crypto
