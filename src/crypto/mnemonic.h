// Mnemonic backup of a key: BIP-39 English words. gpunet uses the 32-byte
// Ed25519 seed itself as the BIP-39 entropy, so 24 words restore the key
// exactly (no PBKDF2 "BIP-39 seed" and no derivation path are involved).
#pragma once

#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "crypto/ed25519.h"

namespace gpunet::crypto {

/// Words in a mnemonic that carries a whole Ed25519 seed.
inline constexpr size_t kSeedMnemonicWords = 24;

/// BIP-39: entropy of 16, 20, 24, 28 or 32 bytes -> 12..24 words joined by single
/// spaces, the last word carrying the SHA-256 checksum bits. Other sizes fail.
base::Result<std::string> EntropyToMnemonic(base::ByteSpan entropy);

/// BIP-39 back to entropy. Words may be separated by any whitespace and are
/// matched case-insensitively. Fails (kInvalidArgument, the message names the
/// problem) on a word count other than 12/15/18/21/24, a word not in the list
/// (with the list word it was probably meant to be, when one shares 4 letters),
/// or a wrong checksum.
base::Result<base::Bytes> MnemonicToEntropy(std::string_view mnemonic);

/// The 24-word backup of a seed.
std::string SeedToMnemonic(const Seed& seed);

/// Restores a seed from its 24 words; any other count is rejected.
base::Result<Seed> MnemonicToSeed(std::string_view mnemonic);

}  // namespace gpunet::crypto
