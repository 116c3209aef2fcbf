// The keystore: a directory (<home>/keys/) of named key files, one per key,
// "<name>.json". Everything `gpunet keys` does goes through here; the CLI only
// asks for passphrases and prints.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "crypto/keyfile.h"

namespace gpunet::crypto {

/// Key names: 1..64 characters of [a-z0-9_-]. They become file names, so the
/// rule keeps them portable and free of path tricks.
inline constexpr size_t kKeyNameBytesMax = 64;

/// kInvalidArgument with a message saying what is allowed, or Ok.
base::Status ValidateKeyName(std::string_view name);

/// One key as the keystore sees it without a passphrase.
struct KeyEntry {
  std::string name;
  std::string path;
  PublicKey public_key;
  Address address;
  /// Set when the file cannot be read or parsed (List keeps going past it).
  std::optional<base::Error> problem;
};

/// A key just created: its entry and the 24-word backup, shown exactly once.
struct NewKey {
  KeyEntry entry;
  std::string mnemonic;
};

class Keystore {
 public:
  /// A keystore in `dir` (created 0700 on first write).
  explicit Keystore(std::string dir, KdfParams kdf = KdfParams::Interactive());
  /// The keystore of a gpunet home: <home>/keys.
  static Keystore AtHome(std::string_view home);

  const std::string& Dir() const { return m_dir; }
  /// Where the file of `name` lives (whether or not it exists).
  std::string PathOf(std::string_view name) const;

  /// Creates a fresh key. kAlreadyExists when the name is taken.
  base::Result<NewKey> Add(std::string_view name, std::string_view passphrase);
  /// Stores a known seed under a new name.
  base::Result<KeyEntry> Import(std::string_view name, const Seed& seed,
                                std::string_view passphrase);
  /// Restores from a 24-word mnemonic (see crypto/mnemonic.h for the rejections).
  base::Result<KeyEntry> ImportMnemonic(std::string_view name, std::string_view mnemonic,
                                        std::string_view passphrase);
  /// Restores from the seed as 64 hex characters.
  base::Result<KeyEntry> ImportSeedHex(std::string_view name, std::string_view seed_hex,
                                       std::string_view passphrase);

  /// Every key, sorted by name. An empty or missing directory is an empty list.
  base::Result<std::vector<KeyEntry>> List() const;
  /// One key without its passphrase. kNotFound / kCorrupt.
  base::Result<KeyEntry> Show(std::string_view name) const;
  /// Decrypts the key. kNotFound, kCorrupt, kWrongPassphrase.
  base::Result<KeyPair> Load(std::string_view name, std::string_view passphrase) const;
  /// The key's 24-word backup (needs the passphrase).
  base::Result<std::string> ExportMnemonic(std::string_view name,
                                           std::string_view passphrase) const;
  /// The key's seed as 64 hex characters (needs the passphrase).
  base::Result<std::string> ExportSeedHex(std::string_view name, std::string_view passphrase) const;
  /// Removes the key file. kNotFound when there is none.
  base::Status Delete(std::string_view name);

 private:
  base::Status EnsureDir() const;
  base::Result<KeyEntry> Store(std::string_view name, const Seed& seed,
                               std::string_view passphrase);

  std::string m_dir;
  KdfParams m_kdf;
};

}  // namespace gpunet::crypto
