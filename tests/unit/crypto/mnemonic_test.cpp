// BIP-39 mnemonics against the published Trezor vectors (256-bit entropy),
// round trips, and every rejection a user can hit while typing a backup.
#include "crypto/mnemonic.h"

#include <gtest/gtest.h>

#include "crypto/bip39_english.h"
#include "unit/crypto/vector_file.h"

namespace gpunet::crypto {
namespace {

struct Vector {
  base::Bytes entropy;
  std::string mnemonic;
};

std::vector<Vector> LoadVectors() {
  std::vector<Vector> out;
  for (const std::string& line : testing::ReadVectorLines("bip39/english_256.txt")) {
    auto f = testing::SplitTabs(line);
    EXPECT_EQ(f.size(), 2u) << line;
    if (f.size() == 2) out.push_back({base::FromHex(f[0]).value(), f[1]});
  }
  return out;
}

std::string Replace(std::string s, size_t word_index, std::string_view with) {
  size_t start = 0;
  for (size_t i = 0; i < word_index; ++i) start = s.find(' ', start) + 1;
  size_t end = s.find(' ', start);
  return s.replace(start, end == std::string::npos ? std::string::npos : end - start, with);
}

TEST(Mnemonic, WordListIsTheBip39EnglishList) {
  EXPECT_EQ(bip39::kEnglishWords.size(), 2048u);
  EXPECT_EQ(bip39::kEnglishWords.front(), "abandon");
  EXPECT_EQ(bip39::kEnglishWords[1], "ability");
  EXPECT_EQ(bip39::kEnglishWords.back(), "zoo");
  EXPECT_TRUE(std::is_sorted(bip39::kEnglishWords.begin(), bip39::kEnglishWords.end()));
}

TEST(Mnemonic, TrezorVectors256) {
  auto vectors = LoadVectors();
  ASSERT_GE(vectors.size(), 8u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.mnemonic);
    ASSERT_EQ(v.entropy.size(), 32u);
    EXPECT_EQ(EntropyToMnemonic(v.entropy).value(), v.mnemonic);
    EXPECT_EQ(MnemonicToEntropy(v.mnemonic).value(), v.entropy);
    Seed seed;
    std::copy(v.entropy.begin(), v.entropy.end(), seed.begin());
    EXPECT_EQ(SeedToMnemonic(seed), v.mnemonic);
    EXPECT_EQ(MnemonicToSeed(v.mnemonic).value(), seed);
  }
}

TEST(Mnemonic, RoundTripRandomSeeds) {
  for (int i = 0; i < 100; ++i) {
    KeyPair kp = KeyPair::Generate();
    std::string words = SeedToMnemonic(kp.SeedBytes());
    EXPECT_EQ(std::count(words.begin(), words.end(), ' '), 23);
    auto back = MnemonicToSeed(words);
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(*back, kp.SeedBytes());
    EXPECT_EQ(KeyPair::FromSeed(*back).Public(), kp.Public());
  }
}

TEST(Mnemonic, ShorterEntropySizesRoundTrip) {
  for (size_t n : {16, 20, 24, 28, 32}) {
    base::Bytes e(n);
    for (size_t i = 0; i < n; ++i) e[i] = static_cast<uint8_t>(i * 13 + 1);
    std::string words = EntropyToMnemonic(e).value();
    EXPECT_EQ(static_cast<size_t>(std::count(words.begin(), words.end(), ' ')) + 1, n * 3 / 4);
    EXPECT_EQ(MnemonicToEntropy(words).value(), e);
  }
  EXPECT_FALSE(EntropyToMnemonic(base::Bytes(15)).has_value());
  EXPECT_FALSE(EntropyToMnemonic(base::Bytes(33)).has_value());
  EXPECT_FALSE(EntropyToMnemonic(base::Bytes(18)).has_value());
}

TEST(Mnemonic, WhitespaceAndCaseTolerated) {
  const std::string m = LoadVectors().at(4).mnemonic;
  std::string messy = "  ";
  for (char c : m)
    messy += c == ' ' ? std::string("\n\t  ") : std::string(1, static_cast<char>(std::toupper(c)));
  messy += "\n";
  EXPECT_EQ(MnemonicToEntropy(messy).value(), MnemonicToEntropy(m).value());
}

TEST(Mnemonic, UnknownWordRejectedWithHint) {
  std::string m = Replace(std::string(LoadVectors().at(4).mnemonic), 2, "privat");  // "private"
  auto r = MnemonicToSeed(m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("word 3 \"privat\" is not in the BIP-39 English word list"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("did you mean \"private\"?"), std::string::npos);
  r = MnemonicToSeed(Replace(m, 2, "xyz"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.find("did you mean"), std::string::npos);
}

TEST(Mnemonic, WrongChecksumRejected) {
  const std::string m = LoadVectors().at(0).mnemonic;  // abandon x23 art
  auto r = MnemonicToSeed(Replace(m, 23, "abandon"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("checksum does not match"), std::string::npos)
      << r.error().message;
  // Swapping two different words breaks the checksum too.
  const std::string h = LoadVectors().at(4).mnemonic;  // hamster diagram ...
  std::string swapped = Replace(Replace(h, 0, "diagram"), 1, "hamster");
  EXPECT_FALSE(MnemonicToSeed(swapped).has_value());
}

TEST(Mnemonic, WrongWordCountRejected) {
  const std::string m = LoadVectors().at(4).mnemonic;
  std::string twenty_three = m.substr(0, m.rfind(' '));
  auto r = MnemonicToSeed(twenty_three);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("has 24 words; got 23"), std::string::npos) << r.error().message;
  EXPECT_FALSE(MnemonicToSeed("").has_value());
  EXPECT_FALSE(MnemonicToSeed(m + " " + m).has_value());
  // A valid 12-word BIP-39 phrase is still not a gpunet key backup.
  std::string twelve = EntropyToMnemonic(base::Bytes(16, 0)).value();
  EXPECT_TRUE(MnemonicToEntropy(twelve).has_value());
  r = MnemonicToSeed(twelve);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("got 12"), std::string::npos);
  EXPECT_FALSE(MnemonicToEntropy("abandon abandon").has_value());
}

}  // namespace
}  // namespace gpunet::crypto
