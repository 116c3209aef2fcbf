// The state-tree proof format and verifier, checked the way a client uses them:
// with codec and crypto only, against roots built here by hand from the hash
// definitions and against the golden vectors of tests/vectors/smt/.
#include "codec/smt_proof.h"

#include <gtest/gtest.h>

#include <iterator>
#include <map>
#include <sstream>
#include <string>

#include "base/limits.h"
#include "crypto/hash.h"
#include "unit/crypto/vector_file.h"

namespace gpunet::codec {
namespace {

using base::Bytes;
using base::ErrorCode;
using base::Hash32;

Hash32 H(std::string_view s) {
  return crypto::Blake2b256(base::AsBytes(s));
}

Hash32 HexHash(const std::string& hex) {
  auto h = base::FixedFromHex<32>(hex);
  EXPECT_TRUE(h) << hex;
  return h ? *h : Hash32{};
}

Hash32 KeyWithFirstByte(uint8_t b) {
  Hash32 k;
  k[0] = b;
  return k;
}

TEST(SmtHash, DefinitionsAreDomainSeparatedBlake2b) {
  Hash32 a = H("a"), b = H("b");
  Bytes leaf_input{0x00};
  leaf_input.insert(leaf_input.end(), a.begin(), a.end());
  leaf_input.insert(leaf_input.end(), b.begin(), b.end());
  Bytes inner_input = leaf_input;
  inner_input[0] = 0x01;
  EXPECT_EQ(SmtLeafHash(a, b), crypto::Blake2b256(leaf_input));
  EXPECT_EQ(SmtInnerHash(a, b), crypto::Blake2b256(inner_input));
  EXPECT_NE(SmtLeafHash(a, b), SmtInnerHash(a, b));
  EXPECT_TRUE(kSmtEmptyHash.IsZero());
  EXPECT_EQ(SmtKeyHash(base::AsBytes("account/alice")), H("account/alice"));
  EXPECT_EQ(SmtValueHash(base::AsBytes("100")), H("100"));
}

TEST(SmtHash, PathBitsReadMostSignificantFirst) {
  Hash32 k;
  k[0] = 0x80;
  k[31] = 0x01;
  EXPECT_TRUE(SmtPathBit(k, 0));
  EXPECT_FALSE(SmtPathBit(k, 1));
  EXPECT_FALSE(SmtPathBit(k, 254));
  EXPECT_TRUE(SmtPathBit(k, 255));
}

// A three-leaf tree built from the definitions: keys 00.., 40.., 80..
//   root = inner(inner(leaf_a, leaf_b), leaf_c)
struct SmallTree {
  SmtLeaf a{KeyWithFirstByte(0x00), H("va")};
  SmtLeaf b{KeyWithFirstByte(0x40), H("vb")};
  SmtLeaf c{KeyWithFirstByte(0x80), H("vc")};
  Hash32 ab = SmtInnerHash(SmtLeafHash(a), SmtLeafHash(b));
  Hash32 root = SmtInnerHash(ab, SmtLeafHash(c));
};

TEST(SmtVerify, MembershipAndNonMembershipInAHandBuiltTree) {
  SmallTree t;
  SmtProof pa{{SmtLeafHash(t.b), SmtLeafHash(t.c)}, t.a};
  SmtProof pc{{t.ab}, t.c};
  auto va = VerifySmtProof(t.root, t.a.key_hash, pa);
  ASSERT_TRUE(va) << va.error().ToString();
  EXPECT_EQ(*va, t.a.value_hash);
  EXPECT_TRUE(VerifySmtMembership(t.root, t.c.key_hash, t.c.value_hash, pc));

  // Key 0x20.. follows a's path (bits 0,1 = 0,0) and meets leaf a there: absent.
  Hash32 absent = KeyWithFirstByte(0x20);
  EXPECT_TRUE(VerifySmtNonMembership(t.root, absent, pa));
  // Key 0xc0.. meets leaf c after one step: absent.
  EXPECT_TRUE(VerifySmtNonMembership(t.root, KeyWithFirstByte(0xc0), pc));
  // A member cannot be shown absent, nor an absent key present.
  auto not_absent = VerifySmtNonMembership(t.root, t.a.key_hash, pa);
  ASSERT_FALSE(not_absent);
  EXPECT_EQ(not_absent.error().code, ErrorCode::kAlreadyExists);
  auto not_present = VerifySmtMembership(t.root, absent, t.a.value_hash, pa);
  ASSERT_FALSE(not_present);
  EXPECT_EQ(not_present.error().code, ErrorCode::kNotFound);
  // The right key with another value.
  auto wrong_value = VerifySmtMembership(t.root, t.a.key_hash, H("other"), pa);
  ASSERT_FALSE(wrong_value);
  EXPECT_EQ(wrong_value.error().code, ErrorCode::kCorrupt);
}

TEST(SmtVerify, EmptySubtreeEndsTheProof) {
  // Keys 00.. and 40.. only: root = inner(inner(leaf_a, leaf_b), empty).
  SmallTree t;
  Hash32 root = SmtInnerHash(t.ab, kSmtEmptyHash);
  SmtProof empty_end{{t.ab}, std::nullopt};
  EXPECT_TRUE(VerifySmtNonMembership(root, KeyWithFirstByte(0x80), empty_end));
  EXPECT_TRUE(VerifySmtNonMembership(root, KeyWithFirstByte(0xff), empty_end));
  // The same proof for a key on the left does not lead to the root.
  EXPECT_FALSE(VerifySmtProof(root, KeyWithFirstByte(0x00), empty_end));
  // Empty tree: no siblings, no leaf.
  EXPECT_TRUE(VerifySmtNonMembership(kSmtEmptyHash, H("x"), SmtProof{}));
  EXPECT_FALSE(VerifySmtNonMembership(root, H("x"), SmtProof{}));
}

TEST(SmtVerify, RejectsAProofMovedToAnotherPlaceOrRoot) {
  SmallTree t;
  SmtProof pa{{SmtLeafHash(t.b), SmtLeafHash(t.c)}, t.a};
  // An end leaf that is not on the key's path (0x80 parts from 0x00 at bit 0).
  auto off_path = VerifySmtProof(t.root, KeyWithFirstByte(0x80), pa);
  ASSERT_FALSE(off_path);
  EXPECT_EQ(off_path.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(off_path.error().message.find("not on the path"), std::string::npos);
  // Another root.
  EXPECT_FALSE(VerifySmtProof(H("another root"), t.a.key_hash, pa));
  // Siblings swapped, dropped or extended.
  SmtProof swapped{{SmtLeafHash(t.c), SmtLeafHash(t.b)}, t.a};
  EXPECT_FALSE(VerifySmtProof(t.root, t.a.key_hash, swapped));
  SmtProof shorter{{SmtLeafHash(t.b)}, t.a};
  EXPECT_FALSE(VerifySmtProof(t.root, t.a.key_hash, shorter));
  SmtProof longer{{kSmtEmptyHash, SmtLeafHash(t.b), SmtLeafHash(t.c)}, t.a};
  EXPECT_FALSE(VerifySmtProof(t.root, t.a.key_hash, longer));
  // Over the limit, even before hashing.
  SmtProof huge{std::vector<Hash32>(base::limits::kSmtProofSiblingsMax + 1), t.a};
  auto over = VerifySmtProof(t.root, t.a.key_hash, huge);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kLimitExceeded);
}

TEST(SmtEncoding, KnownBytesAndRoundTrip) {
  EXPECT_EQ(base::ToHex(EncodeSmtProof(SmtProof{})), "0000");
  SmallTree t;
  SmtProof pc{{t.ab}, t.c};
  Bytes enc = EncodeSmtProof(pc);
  ASSERT_EQ(enc.size(), 1u + 64 + 1 + 32);
  EXPECT_EQ(enc[0], 1);
  EXPECT_EQ(enc[65], 1);
  auto back = DecodeSmtProof(enc);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, pc);

  // 256 siblings: the count takes two LEB128 bytes, 0x80 0x02.
  SmtProof deep{std::vector<Hash32>(256, H("s")), std::nullopt};
  Bytes deep_enc = EncodeSmtProof(deep);
  ASSERT_EQ(deep_enc.size(), 1u + 2 + 256 * 32);
  EXPECT_EQ(deep_enc[1], 0x80);
  EXPECT_EQ(deep_enc[2], 0x02);
  auto deep_back = DecodeSmtProof(deep_enc);
  ASSERT_TRUE(deep_back) << deep_back.error().ToString();
  EXPECT_EQ(*deep_back, deep);
}

void ExpectRejected(const Bytes& bytes, ErrorCode code, const char* why) {
  auto r = DecodeSmtProof(bytes);
  ASSERT_FALSE(r) << why;
  EXPECT_EQ(r.error().code, code) << why << ": " << r.error().ToString();
  EXPECT_NE(r.error().message.find("state proof"), std::string::npos) << r.error().message;
}

TEST(SmtEncoding, DecoderRejectsEveryNonCanonicalForm) {
  ExpectRejected({}, ErrorCode::kCorrupt, "empty input");
  ExpectRejected({0x02, 0x00}, ErrorCode::kCorrupt, "unknown end kind");
  ExpectRejected({0x01, 0x00}, ErrorCode::kCorrupt, "leaf truncated");
  ExpectRejected({0x00}, ErrorCode::kCorrupt, "count missing");
  ExpectRejected({0x00, 0x80}, ErrorCode::kCorrupt, "count truncated");
  ExpectRejected({0x00, 0x80, 0x00}, ErrorCode::kNonCanonical, "zero count in two bytes");
  ExpectRejected({0x00, 0x81, 0x00}, ErrorCode::kNonCanonical, "1 in two bytes");
  ExpectRejected({0x00, 0x80, 0x80, 0x00}, ErrorCode::kLimitExceeded, "three count bytes");
  ExpectRejected({0x00, 0x81, 0x02}, ErrorCode::kLimitExceeded, "257 siblings");
  ExpectRejected({0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
                 ErrorCode::kLimitExceeded, "2^64-1 siblings");
  ExpectRejected({0x00, 0x01, 0xaa}, ErrorCode::kCorrupt, "sibling truncated");
  ExpectRejected({0x00, 0x00, 0x00}, ErrorCode::kNonCanonical, "trailing byte");
  Bytes one_sibling_trailing{0x00, 0x01};
  one_sibling_trailing.resize(2 + 33, 0x11);
  ExpectRejected(one_sibling_trailing, ErrorCode::kNonCanonical, "trailing byte after a sibling");
}

TEST(SmtEncoding, EveryByteOfAProofMatters) {
  SmallTree t;
  for (const SmtProof& proof :
       {SmtProof{{SmtLeafHash(t.b), SmtLeafHash(t.c)}, t.a}, SmtProof{{t.ab}, t.c}}) {
    Bytes enc = EncodeSmtProof(proof);
    Hash32 key = proof.leaf->key_hash;
    ASSERT_TRUE(VerifySmtProof(t.root, key, *DecodeSmtProof(enc)));
    for (size_t i = 0; i < enc.size(); ++i) {
      for (uint8_t flip : {0x01, 0x80, 0xff}) {
        Bytes bad = enc;
        bad[i] ^= flip;
        auto decoded = DecodeSmtProof(bad);
        if (!decoded) continue;
        auto shown = VerifySmtProof(t.root, key, *decoded);
        EXPECT_FALSE(shown) << "byte " << i << " ^ " << int(flip) << " still verifies";
      }
    }
  }
}

// ---- golden vectors: a client checks the published proofs with codec alone ----

// Records of tests/vectors/smt/<name>, split on whitespace.
std::vector<std::vector<std::string>> ReadVectorRecords(const std::string& name) {
  std::vector<std::vector<std::string>> records;
  for (const std::string& line : gpunet::testing::ReadVectorLines("smt/" + name)) {
    std::istringstream words(line);
    records.emplace_back(std::istream_iterator<std::string>(words),
                         std::istream_iterator<std::string>());
  }
  return records;
}

TEST(SmtVectors, PublishedProofsVerifyAgainstPublishedRoots) {
  std::map<std::string, Hash32> roots;
  std::string current;
  for (const auto& r : ReadVectorRecords("roots.txt")) {
    if (r[0] == "case") current = r.at(1);
    if (r[0] == "root") roots[current] = HexHash(r.at(1));
  }
  ASSERT_EQ(roots.size(), 5u);
  size_t checked = 0, absent = 0;
  for (const auto& r : ReadVectorRecords("proofs.txt")) {
    ASSERT_EQ(r.size(), 5u);
    ASSERT_EQ(r[0], "proof");
    ASSERT_TRUE(roots.count(r[1])) << r[1];
    Hash32 key = HexHash(r[2]);
    auto bytes = base::FromHex(r[4]);
    ASSERT_TRUE(bytes);
    auto proof = DecodeSmtProof(*bytes);
    ASSERT_TRUE(proof) << proof.error().ToString();
    EXPECT_EQ(EncodeSmtProof(*proof), *bytes) << "re-encoding is not byte-identical";
    auto shown = VerifySmtProof(roots[r[1]], key, *proof);
    ASSERT_TRUE(shown) << r[1] << " " << r[2] << ": " << shown.error().ToString();
    if (r[3] == "absent") {
      EXPECT_FALSE(shown->has_value()) << r[2];
      ++absent;
    } else {
      ASSERT_TRUE(shown->has_value()) << r[2];
      EXPECT_EQ(**shown, HexHash(r[3]));
    }
    // The same proof against any other published root fails.
    for (const auto& [name, other] : roots) {
      if (other != roots[r[1]]) {
        EXPECT_FALSE(VerifySmtProof(other, key, *proof)) << name;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 16u);
  EXPECT_GE(absent, 8u);
}

}  // namespace
}  // namespace gpunet::codec
