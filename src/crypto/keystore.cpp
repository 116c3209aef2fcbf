#include "crypto/keystore.h"

#include <dirent.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/check.h"
#include "base/file_util.h"
#include "crypto/mnemonic.h"

namespace gpunet::crypto {
namespace {

using base::ErrorCode;
using base::Fail;

constexpr std::string_view kSuffix = ".json";

}  // namespace

base::Status ValidateKeyName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kKeyNameBytesMax;
  for (char c : name)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  if (!ok)
    return Fail(ErrorCode::kInvalidArgument,
                "invalid key name \"" + std::string(name) +
                    "\": use 1 to 64 characters from a-z, 0-9, '_' and '-'");
  return base::Ok();
}

Keystore::Keystore(std::string dir, KdfParams kdf) : m_dir(std::move(dir)), m_kdf(kdf) {
  GPUNET_CHECK(!m_dir.empty());
}

Keystore Keystore::AtHome(std::string_view home) {
  return Keystore(std::string(home) + "/keys");
}

std::string Keystore::PathOf(std::string_view name) const {
  return m_dir + "/" + std::string(name) + std::string(kSuffix);
}

base::Status Keystore::EnsureDir() const {
  // The home may not exist yet either; create it (0700) but leave an existing
  // one alone. The keys directory itself is always tightened to 0700.
  std::string parent = m_dir.substr(0, m_dir.find_last_of('/'));
  if (!parent.empty() && parent != m_dir) GPUNET_TRY(base::MakeDirectory(parent, 0700));
  GPUNET_TRY(base::MakeDirectory(m_dir, 0700));
  if (::chmod(m_dir.c_str(), 0700) != 0)
    return Fail(ErrorCode::kIo, "cannot set mode 0700 on " + m_dir + ": " + std::strerror(errno));
  return base::Ok();
}

base::Result<KeyEntry> Keystore::Store(std::string_view name, const Seed& seed,
                                       std::string_view passphrase) {
  GPUNET_TRY(ValidateKeyName(name));
  if (passphrase.empty())
    return Fail(ErrorCode::kInvalidArgument, "the passphrase must not be empty");
  GPUNET_TRY(EnsureDir());
  std::string path = PathOf(name);
  auto written = WriteKeyFile(path, seed, passphrase, m_kdf);
  if (!written) {
    if (written.error().code == ErrorCode::kAlreadyExists)
      return Fail(ErrorCode::kAlreadyExists, "a key named \"" + std::string(name) +
                                                 "\" already exists (" + path +
                                                 "); choose another name, or delete it first");
    return std::unexpected(written.error());
  }
  KeyEntry e;
  e.name = std::string(name);
  e.path = path;
  e.public_key = KeyPair::FromSeed(seed).Public();
  e.address = AddressOf(e.public_key);
  return e;
}

base::Result<NewKey> Keystore::Add(std::string_view name, std::string_view passphrase) {
  KeyPair kp = KeyPair::Generate();
  auto entry = Store(name, kp.SeedBytes(), passphrase);
  if (!entry) return std::unexpected(entry.error());
  return NewKey{std::move(*entry), SeedToMnemonic(kp.SeedBytes())};
}

base::Result<KeyEntry> Keystore::Import(std::string_view name, const Seed& seed,
                                        std::string_view passphrase) {
  return Store(name, seed, passphrase);
}

base::Result<KeyEntry> Keystore::ImportMnemonic(std::string_view name, std::string_view mnemonic,
                                                std::string_view passphrase) {
  GPUNET_TRY(ValidateKeyName(name));
  auto seed = MnemonicToSeed(mnemonic);
  if (!seed) return std::unexpected(seed.error());
  auto entry = Store(name, *seed, passphrase);
  sodium_memzero(seed->data.data(), seed->kSize);
  return entry;
}

base::Result<KeyEntry> Keystore::ImportSeedHex(std::string_view name, std::string_view seed_hex,
                                               std::string_view passphrase) {
  GPUNET_TRY(ValidateKeyName(name));
  auto seed = base::FixedFromHex<Seed::kSize>(seed_hex);
  if (!seed)
    return Fail(ErrorCode::kInvalidArgument,
                "the seed must be 64 hex characters (32 bytes): " + seed.error().message);
  auto entry = Store(name, *seed, passphrase);
  sodium_memzero(seed->data.data(), seed->kSize);
  return entry;
}

base::Result<KeyEntry> Keystore::Show(std::string_view name) const {
  GPUNET_TRY(ValidateKeyName(name));
  std::string path = PathOf(name);
  auto info = ReadKeyFileInfo(path);
  if (!info) {
    if (info.error().code == ErrorCode::kNotFound)
      return Fail(ErrorCode::kNotFound, "no key named \"" + std::string(name) + "\" in " + m_dir +
                                            " (see `gpunet keys list`)");
    return std::unexpected(info.error());
  }
  KeyEntry e;
  e.name = std::string(name);
  e.path = path;
  e.public_key = info->public_key;
  e.address = info->address;
  return e;
}

base::Result<std::vector<KeyEntry>> Keystore::List() const {
  std::vector<KeyEntry> out;
  DIR* d = ::opendir(m_dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return Fail(ErrorCode::kIo, "cannot read directory " + m_dir + ": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* ent = ::readdir(d)) {
    std::string_view file = ent->d_name;
    if (!file.ends_with(kSuffix)) continue;
    std::string_view name = file.substr(0, file.size() - kSuffix.size());
    if (!ValidateKeyName(name)) continue;  // not ours: leave it alone
    names.emplace_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    auto e = Show(name);
    if (e) {
      out.push_back(std::move(*e));
    } else {
      KeyEntry bad;
      bad.name = name;
      bad.path = PathOf(name);
      bad.problem = e.error();
      out.push_back(std::move(bad));
    }
  }
  return out;
}

base::Result<KeyPair> Keystore::Load(std::string_view name, std::string_view passphrase) const {
  auto entry = Show(name);  // the friendly not-found message
  if (!entry) return std::unexpected(entry.error());
  auto kp = LoadKeyFile(entry->path, passphrase);
  if (!kp) return base::Wrap(kp.error(), "key \"" + std::string(name) + "\"");
  return kp;
}

base::Result<std::string> Keystore::ExportMnemonic(std::string_view name,
                                                   std::string_view passphrase) const {
  auto kp = Load(name, passphrase);
  if (!kp) return std::unexpected(kp.error());
  return SeedToMnemonic(kp->SeedBytes());
}

base::Result<std::string> Keystore::ExportSeedHex(std::string_view name,
                                                  std::string_view passphrase) const {
  auto kp = Load(name, passphrase);
  if (!kp) return std::unexpected(kp.error());
  return base::ToHex(kp->SeedBytes());
}

base::Status Keystore::Delete(std::string_view name) {
  GPUNET_TRY(ValidateKeyName(name));
  std::string path = PathOf(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT)
      return Fail(ErrorCode::kNotFound, "no key named \"" + std::string(name) + "\" in " + m_dir);
    return Fail(ErrorCode::kIo, "cannot delete " + path + ": " + std::strerror(errno));
  }
  return base::Ok();
}

}  // namespace gpunet::crypto
