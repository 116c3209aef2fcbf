// Ed25519 against the published RFC 8032 §7.1 vectors, read from
// tests/vectors/rfc8032/ed25519.txt at run time.
#include "crypto/ed25519.h"

#include <gtest/gtest.h>

#include "unit/crypto/vector_file.h"

namespace gpunet::crypto {
namespace {

struct Rfc8032Vector {
  std::string name;
  Seed seed;
  PublicKey public_key;
  base::Bytes message;
  Signature signature;
};

std::vector<Rfc8032Vector> LoadVectors() {
  std::vector<Rfc8032Vector> out;
  for (const std::string& line : testing::ReadVectorLines("rfc8032/ed25519.txt")) {
    auto f = testing::SplitTabs(line);
    EXPECT_EQ(f.size(), 5u) << line;
    if (f.size() != 5) continue;
    Rfc8032Vector v;
    v.name = f[0];
    v.seed = base::FixedFromHex<32>(f[1]).value();
    v.public_key = base::FixedFromHex<32>(f[2]).value();
    v.message = f[3] == "-" ? base::Bytes{} : base::FromHex(f[3]).value();
    v.signature = base::FixedFromHex<64>(f[4]).value();
    out.push_back(std::move(v));
  }
  return out;
}

TEST(Ed25519, Rfc8032Vectors) {
  auto vectors = LoadVectors();
  ASSERT_EQ(vectors.size(), 5u) << "TEST 1, 2, 3, 1024 and SHA(abc)";
  EXPECT_EQ(vectors[3].message.size(), 1023u) << "TEST 1024 has a 1023-byte message";
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    KeyPair kp = KeyPair::FromSeed(v.seed);
    EXPECT_EQ(kp.Public(), v.public_key);
    EXPECT_EQ(kp.SeedBytes(), v.seed);
    EXPECT_EQ(kp.SignRaw(v.message), v.signature) << "Ed25519 signatures are deterministic";
    EXPECT_TRUE(VerifyRaw(v.public_key, v.message, v.signature));
  }
}

TEST(Ed25519, Rfc8032VectorsFailWhenTampered) {
  for (const auto& v : LoadVectors()) {
    SCOPED_TRACE(v.name);
    for (size_t i : {size_t{0}, size_t{31}, size_t{32}, size_t{63}}) {
      Signature bad = v.signature;
      bad[i] ^= 0x01;
      EXPECT_FALSE(VerifyRaw(v.public_key, v.message, bad)) << "signature byte " << i;
    }
    base::Bytes longer = v.message;
    longer.push_back(0);
    EXPECT_FALSE(VerifyRaw(v.public_key, longer, v.signature));
    if (!v.message.empty()) {
      base::Bytes flipped = v.message;
      flipped.back() ^= 0x80;
      EXPECT_FALSE(VerifyRaw(v.public_key, flipped, v.signature));
    }
    PublicKey other_key = v.public_key;
    other_key[0] ^= 0x01;
    EXPECT_FALSE(VerifyRaw(other_key, v.message, v.signature));
  }
}

TEST(Ed25519, GeneratedKeysDifferAndSign) {
  KeyPair a = KeyPair::Generate();
  KeyPair b = KeyPair::Generate();
  EXPECT_NE(a.Public(), b.Public());
  base::Bytes msg = {7, 7, 7};
  EXPECT_TRUE(VerifyRaw(a.Public(), msg, a.SignRaw(msg)));
  EXPECT_FALSE(VerifyRaw(b.Public(), msg, a.SignRaw(msg)));
}

TEST(Ed25519, CopiesSignAlike) {
  KeyPair a = KeyPair::Generate();
  KeyPair b = a;
  base::Bytes msg = {1};
  EXPECT_EQ(a.SignRaw(msg), b.SignRaw(msg));
  KeyPair c = KeyPair::Generate();
  c = a;
  EXPECT_EQ(c.Public(), a.Public());
  EXPECT_EQ(c.SignRaw(msg), a.SignRaw(msg));
}

TEST(Ed25519, AllZeroPublicKeyNeverVerifies) {
  // A small-order key would accept forged signatures under a lax verifier;
  // libsodium's rule rejects it, and the chain relies on that one rule.
  PublicKey zero;
  Signature sig;
  EXPECT_FALSE(VerifyRaw(zero, {}, sig));
}

}  // namespace
}  // namespace gpunet::crypto
