// Encrypted key files: one Ed25519 seed per file, sealed with a key derived
// from a passphrase. Format (docs/keys.md): a JSON object with a version, the
// public key and address in the clear (so keys can be listed without the
// passphrase), the argon2id parameters and salt, the XChaCha20-Poly1305 nonce
// and the sealed seed. Every header field is bound into the AEAD's associated
// data, so editing any of them makes decryption fail instead of silently
// showing a different address.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

namespace gpunet::crypto {

/// The key file format this build writes and the only one it reads.
inline constexpr uint32_t kKeyFileVersion = 1;
/// Key files are a few hundred bytes; anything much larger is not one (and is
/// not read into memory whole).
inline constexpr size_t kKeyFileBytesMax = 64 * 1024;

/// argon2id (crypto_pwhash ALG_ARGON2ID13) cost parameters, stored in each file
/// so they can be raised later without breaking old files.
struct KdfParams {
  uint64_t opslimit = 0;
  uint64_t memlimit_bytes = 0;

  /// libsodium's INTERACTIVE limits (2 passes, 64 MiB): what new files use.
  static KdfParams Interactive();
  bool operator==(const KdfParams&) const = default;
};

/// What a key file says about itself without the passphrase.
struct KeyFileInfo {
  uint32_t version = 0;
  PublicKey public_key;
  Address address;
  KdfParams kdf;
};

/// Seals the seed under the passphrase (fresh random salt and nonce) and returns
/// the file's JSON text. The passphrase must not be empty (a bug otherwise:
/// callers validate it first). kIo when argon2id cannot get its memory.
base::Result<std::string> EncryptKeyFile(const Seed& seed, std::string_view passphrase,
                                         const KdfParams& kdf = KdfParams::Interactive());

/// Parses the clear header. kCorrupt on anything malformed or an unknown version;
/// `where` (a path) is named in the message.
base::Result<KeyFileInfo> ParseKeyFile(std::string_view text, std::string_view where);

/// Opens the seal: kWrongPassphrase "wrong passphrase (or the key file was
/// modified)" when authentication fails; kCorrupt when the text is malformed.
base::Result<Seed> DecryptKeyFile(std::string_view text, std::string_view passphrase,
                                  std::string_view where);

/// Writes a new key file at path: created 0600 under a temporary name, fsynced,
/// then linked into place so a crash never leaves a half-written key, and an
/// existing file is never replaced (kAlreadyExists). The directory is fsynced.
base::Status WriteKeyFile(const std::string& path, const Seed& seed, std::string_view passphrase,
                          const KdfParams& kdf = KdfParams::Interactive());

/// Reads a key file's text (size-capped). kNotFound, kIo or kCorrupt (too large).
base::Result<std::string> ReadKeyFileText(const std::string& path);

/// ReadKeyFileText + ParseKeyFile.
base::Result<KeyFileInfo> ReadKeyFileInfo(const std::string& path);

/// ReadKeyFileText + DecryptKeyFile + a check that the seed matches the header.
base::Result<KeyPair> LoadKeyFile(const std::string& path, std::string_view passphrase);

}  // namespace gpunet::crypto
