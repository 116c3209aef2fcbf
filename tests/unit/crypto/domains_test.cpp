// Domain separation: a signature made for one purpose or chain never verifies
// for another (architecture §2.1).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "base/limits.h"
#include "crypto/domains.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"
#include "util/keys.h"

namespace gpunet::crypto {
namespace {

constexpr Domain kAllDomains[] = {
    Domain::kTx,           Domain::kProposal,      Domain::kVote,       Domain::kEvidence,
    Domain::kP2pHandshake, Domain::kTenantRequest, Domain::kAttestation};

TEST(Domains, TagsAreDistinctAndVersioned) {
  std::set<std::string> tags;
  for (Domain d : kAllDomains) {
    std::string tag(DomainTag(d));
    EXPECT_TRUE(tag.starts_with("gpunet/")) << tag;
    EXPECT_TRUE(tag.ends_with("/v1")) << tag;
    EXPECT_TRUE(tags.insert(tag).second) << "duplicate tag " << tag;
  }
}

TEST(Domains, SignatureVerifiesOnlyForItsDomain) {
  KeyPair kp = gpunet::testing::TestKey(1);
  base::Bytes msg = {1, 2, 3, 4};
  for (Domain signed_for : kAllDomains) {
    Signature sig = kp.Sign(signed_for, "gpunet-test-1", msg);
    for (Domain checked_as : kAllDomains) {
      EXPECT_EQ(Verify(kp.Public(), checked_as, "gpunet-test-1", msg, sig),
                signed_for == checked_as)
          << DomainTag(signed_for) << " checked as " << DomainTag(checked_as);
    }
    // The raw signature over the bare message is a different statement.
    EXPECT_FALSE(VerifyRaw(kp.Public(), msg, sig));
  }
}

TEST(Domains, SignatureVerifiesOnlyForItsChain) {
  KeyPair kp = gpunet::testing::TestKey(2);
  base::Bytes msg = {9, 9, 9};
  Signature sig = kp.Sign(Domain::kTx, "gpunet-main", msg);
  EXPECT_TRUE(Verify(kp.Public(), Domain::kTx, "gpunet-main", msg, sig));
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, "gpunet-test", msg, sig));
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, "", msg, sig));
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, "gpunet-mai", msg, sig));
}

TEST(Domains, ChainIdAndMessageBoundaryIsUnambiguous) {
  // "ab" + message "c" must not sign the same bytes as "a" + message "bc".
  base::Bytes c = {'c'};
  base::Bytes bc = {'b', 'c'};
  EXPECT_NE(SigningBytes(Domain::kTx, "ab", c), SigningBytes(Domain::kTx, "a", bc));
  KeyPair kp = gpunet::testing::TestKey(3);
  Signature sig = kp.Sign(Domain::kTx, "ab", c);
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, "a", bc, sig));
}

TEST(Domains, SigningBytesLayout) {
  base::Bytes msg = {0xAA};
  base::Bytes got = SigningBytes(Domain::kVote, "xy", msg);
  std::string tag(DomainTag(Domain::kVote));
  base::Bytes want;
  want.push_back(static_cast<uint8_t>(tag.size()));
  want.insert(want.end(), tag.begin(), tag.end());
  want.push_back(2);
  want.push_back('x');
  want.push_back('y');
  want.push_back(0xAA);
  EXPECT_EQ(got, want);
}

TEST(Domains, OverlongChainIdNeverVerifies) {
  KeyPair kp = gpunet::testing::TestKey(4);
  std::string long_chain(base::limits::kChainIdBytesMax + 1, 'c');
  Signature sig = kp.SignRaw(base::AsBytes(long_chain));
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, long_chain, {}, sig));
}

TEST(Domains, TamperedMessageOrSignatureFails) {
  KeyPair kp = gpunet::testing::TestKey(5);
  base::Bytes msg = {1, 2, 3};
  Signature sig = kp.Sign(Domain::kTx, "c", msg);
  base::Bytes msg2 = msg;
  msg2[1] ^= 1;
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, "c", msg2, sig));
  Signature sig2 = sig;
  sig2[10] ^= 0x40;
  EXPECT_FALSE(Verify(kp.Public(), Domain::kTx, "c", msg, sig2));
  KeyPair other = gpunet::testing::TestKey(6);
  EXPECT_FALSE(Verify(other.Public(), Domain::kTx, "c", msg, sig));
}

TEST(Hash, Blake2b256KnownAnswerAndIncremental) {
  // BLAKE2b-256("abc"), from the reference implementation (b2sum -l 256).
  base::Hash32 h = Blake2b256(base::AsBytes("abc"));
  EXPECT_EQ(base::ToHex(h), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  base::Hash32 inc =
      Blake2b256Hasher().Update(base::AsBytes("a")).Update('b').Update(base::AsBytes("c")).Final();
  EXPECT_EQ(inc, h);
  EXPECT_NE(Blake2b256(base::AsBytes("abd")), h);
}

}  // namespace
}  // namespace gpunet::crypto
