#include "crypto/mnemonic.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "base/check.h"
#include "crypto/bip39_english.h"
#include "crypto/sodium_init.h"

namespace gpunet::crypto {
namespace {

using bip39::kEnglishWords;
constexpr size_t kBitsPerWord = 11;

bool GetBit(const base::Bytes& bytes, size_t i) {
  return (bytes[i / 8] >> (7 - i % 8)) & 1;
}

// Index of the word in the sorted list, or -1.
int WordIndex(std::string_view word) {
  auto it = std::lower_bound(kEnglishWords.begin(), kEnglishWords.end(), word);
  if (it == kEnglishWords.end() || *it != word) return -1;
  return static_cast<int>(it - kEnglishWords.begin());
}

// BIP-39 English words are unique in their first four letters: a typo past
// them still points at exactly one word, which makes a useful hint.
std::string_view Suggestion(std::string_view word) {
  if (word.size() < 4) return {};
  std::string_view prefix = word.substr(0, 4);
  auto it = std::lower_bound(kEnglishWords.begin(), kEnglishWords.end(), prefix);
  if (it != kEnglishWords.end() && it->starts_with(prefix)) return *it;
  return {};
}

std::vector<std::string> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

uint8_t ChecksumByte(base::ByteSpan entropy) {
  uint8_t digest[crypto_hash_sha256_BYTES];
  EnsureSodium();
  crypto_hash_sha256(digest, entropy.data(), entropy.size());
  return digest[0];  // at most 8 checksum bits (32-byte entropy)
}

}  // namespace

base::Result<std::string> EntropyToMnemonic(base::ByteSpan entropy) {
  if (entropy.size() < 16 || entropy.size() > 32 || entropy.size() % 4 != 0)
    return base::Fail(
        base::ErrorCode::kInvalidArgument,
        "BIP-39 entropy must be 16, 20, 24, 28 or 32 bytes, got " + std::to_string(entropy.size()));
  const size_t entropy_bits = entropy.size() * 8;
  const size_t checksum_bits = entropy_bits / 32;
  base::Bytes bits_source(entropy.begin(), entropy.end());
  bits_source.push_back(ChecksumByte(entropy));
  const size_t words = (entropy_bits + checksum_bits) / kBitsPerWord;
  GPUNET_CHECK(words * kBitsPerWord == entropy_bits + checksum_bits);
  std::string out;
  for (size_t w = 0; w < words; ++w) {
    uint32_t index = 0;
    for (size_t b = 0; b < kBitsPerWord; ++b)
      index = index << 1 | (GetBit(bits_source, w * kBitsPerWord + b) ? 1u : 0u);
    GPUNET_CHECK(index < kEnglishWords.size());
    if (w) out.push_back(' ');
    out.append(kEnglishWords[index]);
  }
  sodium_memzero(bits_source.data(), bits_source.size());
  return out;
}

base::Result<base::Bytes> MnemonicToEntropy(std::string_view mnemonic) {
  std::vector<std::string> words = SplitWords(mnemonic);
  const size_t n = words.size();
  if (n < 12 || n > 24 || n % 3 != 0)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "a BIP-39 mnemonic has 12, 15, 18, 21 or 24 words; got " + std::to_string(n));
  const size_t total_bits = n * kBitsPerWord;
  const size_t checksum_bits = total_bits / 33;
  const size_t entropy_bits = total_bits - checksum_bits;
  base::Bytes bits((total_bits + 7) / 8, 0);
  for (size_t w = 0; w < n; ++w) {
    int index = WordIndex(words[w]);
    if (index < 0) {
      std::string msg = "word " + std::to_string(w + 1) + " \"" + words[w] +
                        "\" is not in the BIP-39 English word list";
      if (auto s = Suggestion(words[w]); !s.empty())
        msg += " (did you mean \"" + std::string(s) + "\"?)";
      return base::Fail(base::ErrorCode::kInvalidArgument, msg);
    }
    for (size_t b = 0; b < kBitsPerWord; ++b) {
      if ((index >> (kBitsPerWord - 1 - b)) & 1) {
        size_t i = w * kBitsPerWord + b;
        bits[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
      }
    }
  }
  base::Bytes entropy(bits.begin(), bits.begin() + static_cast<ptrdiff_t>(entropy_bits / 8));
  uint8_t want = ChecksumByte(entropy) >> (8 - checksum_bits);
  uint8_t got = 0;
  for (size_t b = 0; b < checksum_bits; ++b)
    got = static_cast<uint8_t>(got << 1 | GetBit(bits, entropy_bits + b));
  sodium_memzero(bits.data(), bits.size());
  for (auto& w : words) sodium_memzero(w.data(), w.size());
  if (got != want) {
    sodium_memzero(entropy.data(), entropy.size());
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "the mnemonic's checksum does not match: a word is wrong or the words are "
                      "out of order");
  }
  return entropy;
}

std::string SeedToMnemonic(const Seed& seed) {
  auto words = EntropyToMnemonic(seed.Span());
  GPUNET_CHECK(words.has_value());  // 32 bytes is a valid entropy size
  return std::move(*words);
}

base::Result<Seed> MnemonicToSeed(std::string_view mnemonic) {
  size_t n = SplitWords(mnemonic).size();
  if (n != kSeedMnemonicWords)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      "a gpunet key mnemonic has 24 words; got " + std::to_string(n));
  auto entropy = MnemonicToEntropy(mnemonic);
  if (!entropy) return std::unexpected(entropy.error());
  GPUNET_CHECK(entropy->size() == Seed::kSize);
  Seed seed;
  std::copy(entropy->begin(), entropy->end(), seed.begin());
  sodium_memzero(entropy->data(), entropy->size());
  return seed;
}

}  // namespace gpunet::crypto
