#include "client/session_keys.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/file_util.h"
#include "crypto/keystore.h"

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;

namespace {

constexpr std::string_view kKeySuffix = ".key";
constexpr std::string_view kGrantInfix = ".lease-";
constexpr std::string_view kGrantSuffix = ".grant";
constexpr size_t kFileBytesMax = 4096;

}  // namespace

SessionKeys SessionKeys::AtHome(std::string_view home) {
  return SessionKeys(crypto::Keystore::AtHome(home).Dir() + "/sessions");
}

std::string SessionKeys::KeyPath(std::string_view name) const {
  return m_dir + "/" + std::string(name) + std::string(kKeySuffix);
}

std::string SessionKeys::GrantPath(std::string_view name, uint64_t lease_id) const {
  return m_dir + "/" + std::string(name) + std::string(kGrantInfix) + std::to_string(lease_id) +
         std::string(kGrantSuffix);
}

base::Result<crypto::KeyPair> SessionKeys::Load(std::string_view name) const {
  GPUNET_TRY(crypto::ValidateKeyName(name));
  const std::string path = KeyPath(name);
  auto text = base::ReadFileNoFollow(path, kFileBytesMax);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound)
      return Fail(ErrorCode::kNotFound, "no session key \"" + std::string(name) + "\" (" + path +
                                            "); `gpunet lease grant` makes one");
    return std::unexpected(text.error());
  }
  const auto j = nlohmann::json::parse(*text, nullptr, false);
  auto corrupt = [&](std::string_view why) {
    return Fail(ErrorCode::kCorrupt, "session key file " + path + " " + std::string(why) +
                                         "; delete it and run `gpunet lease grant` again");
  };
  sodium_memzero(text->data(), text->size());
  if (!j.is_object() || !j.contains("seed") || !j["seed"].is_string() ||
      !j.contains("public_key") || !j["public_key"].is_string())
    return corrupt("is not {\"public_key\",\"seed\"}");
  auto seed = base::FixedFromHex<32>(j["seed"].get<std::string>());
  if (!seed) return corrupt("has a bad seed");
  crypto::KeyPair key = crypto::KeyPair::FromSeed(*seed);
  sodium_memzero(seed->data.data(), seed->kSize);
  if (base::ToHex(key.Public()) != j["public_key"].get<std::string>())
    return corrupt("holds a public key that is not its seed's");
  return key;
}

base::Result<crypto::KeyPair> SessionKeys::LoadOrCreate(std::string_view name, bool& created) {
  created = false;
  auto loaded = Load(name);
  if (loaded || loaded.error().code != ErrorCode::kNotFound) return loaded;
  GPUNET_TRY(base::MakeDirectory(std::filesystem::path(m_dir).parent_path().string(), 0700));
  GPUNET_TRY(base::MakeDirectory(m_dir, 0700));
  const crypto::KeyPair key = crypto::KeyPair::Generate();
  nlohmann::json j{{"public_key", base::ToHex(key.Public())},
                   {"seed", base::ToHex(key.SeedBytes())}};
  std::string text = j.dump(2) + "\n";
  base::AtomicWriteOptions options;
  options.mode = 0600;
  options.if_exists = base::IfExists::kRefuse;
  const base::Status written = base::WriteFileAtomic(KeyPath(name), text, options);
  sodium_memzero(text.data(), text.size());
  GPUNET_TRY(written);
  created = true;
  return key;
}

base::Status SessionKeys::SaveGrant(std::string_view name, const DelegationGrant& grant) {
  GPUNET_TRY_ASSIGN(const crypto::KeyPair key, Load(name));
  if (!(key.Public() == grant.session_key))
    return Fail(ErrorCode::kInvalidArgument,
                "the grant is for another key than session key \"" + std::string(name) + "\"");
  base::AtomicWriteOptions options;
  options.mode = 0600;
  return base::WriteFileAtomic(GrantPath(name, grant.lease_id), EncodeGrant(grant) + "\n", options);
}

base::Status SessionKeys::RemoveGrant(std::string_view name, uint64_t lease_id) {
  GPUNET_TRY(crypto::ValidateKeyName(name));
  const std::string path = GrantPath(name, lease_id);
  if (std::remove(path.c_str()) != 0 && errno != ENOENT)
    return Fail(ErrorCode::kIo, "cannot remove " + path + ": " + std::strerror(errno));
  return base::Ok();
}

base::Result<std::vector<SessionGrant>> SessionKeys::GrantsFor(const crypto::Address& provider,
                                                               uint64_t lease_id) const {
  std::vector<SessionGrant> out;
  const std::string suffix =
      std::string(kGrantInfix) + std::to_string(lease_id) + std::string(kGrantSuffix);
  std::error_code ec;
  std::filesystem::directory_iterator it(m_dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    return Fail(ErrorCode::kIo, "cannot list " + m_dir + ": " + ec.message());
  }
  std::vector<std::string> names;
  for (const auto& entry : it) {
    const std::string file = entry.path().filename().string();
    if (file.size() > suffix.size() && file.ends_with(suffix))
      names.push_back(file.substr(0, file.size() - suffix.size()));
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (!crypto::ValidateKeyName(name)) continue;
    auto text = base::ReadFileNoFollow(GrantPath(name, lease_id), kFileBytesMax);
    if (!text) continue;
    std::string_view hex = *text;
    while (hex.ends_with("\n")) hex.remove_suffix(1);
    auto grant = ParseGrant(hex);
    auto key = Load(name);
    if (!grant || !key || !(grant->session_key == key->Public()) || grant->lease_id != lease_id ||
        !(grant->provider == provider))
      continue;
    out.push_back({name, *key, *grant});
  }
  return out;
}

base::Result<std::optional<SessionGrant>> SessionKeys::Usable(const crypto::Address& provider,
                                                              uint64_t lease_id, uint64_t now_ms,
                                                              std::string_view name) const {
  GPUNET_TRY_ASSIGN(std::vector<SessionGrant> grants, GrantsFor(provider, lease_id));
  std::optional<SessionGrant> best;
  for (auto& g : grants) {
    if (!name.empty() && g.name != name) continue;
    if (g.grant.expires_ms < now_ms + kGrantUseMarginMs) continue;
    if (!best || g.grant.expires_ms > best->grant.expires_ms) best = std::move(g);
  }
  return best;
}

}  // namespace gpunet::client
