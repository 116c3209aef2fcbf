// Addresses: bech32 "gpn" of the first 20 bytes of BLAKE2b-256(public key).
#include "crypto/address.h"

#include <gtest/gtest.h>

#include "base/bech32.h"

namespace gpunet::crypto {
namespace {

// Expected values computed independently with Python (hashlib.blake2b with
// digest_size=32, and the BIP-173 reference encoder) for the public keys of
// RFC 8032 TEST 1, 2 and 3. They pin the derivation: never change them.
struct Golden {
  const char* public_key;
  const char* hash20;
  const char* address;
};
constexpr Golden kGolden[] = {
    {"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "7849ac3049680be1ef762efe0d36e01733c3464e", "gpn10py6cvzfdq97rmmk9mlq6dhqzueux3jw22lh74"},
    {"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "6ec9e955a19ba3c9f33850081a0f63fa5df1dcf8", "gpn1dmy7j4dpnw3unuec2qyp5rmrlfwlrh8cpt74z7"},
    {"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "a64ff339163269280c28f353461f3fad7f78ffa7", "gpn15e8lxwgkxf5jsrpg7df5v8el44lh3la8vvsn4n"},
};

TEST(Address, GoldenDerivation) {
  for (const Golden& g : kGolden) {
    PublicKey pk = base::FixedFromHex<32>(g.public_key).value();
    Address a = AddressOf(pk);
    EXPECT_EQ(base::ToHex(a), g.hash20);
    EXPECT_EQ(AddressToString(a), g.address);
    EXPECT_EQ(ParseAddress(g.address).value(), a);
  }
}

TEST(Address, RoundTripOfGeneratedKeys) {
  for (int i = 0; i < 50; ++i) {
    KeyPair kp = KeyPair::Generate();
    Address a = AddressOf(kp.Public());
    std::string s = AddressToString(a);
    EXPECT_EQ(s.size(), 42u);
    EXPECT_TRUE(s.starts_with("gpn1"));
    auto back = ParseAddress(s);
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, a);
  }
}

TEST(Address, UpperCaseAcceptedMixedRejected) {
  std::string s = kGolden[0].address;
  std::string upper = s;
  for (char& c : upper)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  EXPECT_TRUE(ParseAddress(upper).has_value());
  std::string mixed = s;
  mixed[5] = static_cast<char>(mixed[5] - 'a' + 'A');
  EXPECT_FALSE(ParseAddress(mixed).has_value());
}

TEST(Address, Rejections) {
  std::string s = kGolden[1].address;
  // One changed character: the checksum catches it.
  std::string typo = s;
  typo[10] = typo[10] == 'q' ? 'p' : 'q';
  auto r = ParseAddress(typo);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("checksum"), std::string::npos) << r.error().message;
  // Another prefix.
  Address a = ParseAddress(s).value();
  std::string other = base::Bech32EncodeBytes("cosmos", a.Span()).value();
  r = ParseAddress(other);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("expected \"gpn\""), std::string::npos) << r.error().message;
  // Right prefix, wrong payload size.
  base::Bytes b21(21, 1);
  r = ParseAddress(base::Bech32EncodeBytes("gpn", b21).value());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("expected 20"), std::string::npos) << r.error().message;
  EXPECT_FALSE(ParseAddress("").has_value());
  EXPECT_FALSE(ParseAddress("gpn1").has_value());
  EXPECT_FALSE(ParseAddress(s.substr(0, s.size() - 1)).has_value());
}

}  // namespace
}  // namespace gpunet::crypto
