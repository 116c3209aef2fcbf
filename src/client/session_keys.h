// Session keys: keys a tenant delegates one lease to (docs/tenant-api.md "Session
// keys"), so `gpunet lease logs/upload/...` work without the tenant key's passphrase.
//
// They live beside the keystore, in <home>/keys/sessions/ (0700): <name>.key holds
// the session key's seed in hex (0600, unencrypted on purpose: the key is worth only
// the grants made to it, each for one lease of one provider, expiring no later than
// the lease, and revocable), and <name>.lease-<id>.grant the grant the tenant signed
// for it (EncodeGrant's hex). Files are written whole (base::WriteFileAtomic) and
// read without following links.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/tenant_request.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

namespace gpunet::client {

/// A grant is used only while it has at least this long left (a request signed now
/// must still pass when the provider checks it).
inline constexpr uint64_t kGrantUseMarginMs = 60'000;

/// A session key with its grant for one lease.
struct SessionGrant {
  std::string name;
  crypto::KeyPair key;
  DelegationGrant grant;
};

class SessionKeys {
 public:
  explicit SessionKeys(std::string dir) : m_dir(std::move(dir)) {}
  /// The session keys of a gpunet home: <home>/keys/sessions.
  static SessionKeys AtHome(std::string_view home);

  const std::string& Dir() const { return m_dir; }

  /// The key `name` (a keystore name: crypto::ValidateKeyName), made and stored when
  /// there is none yet (`created` says which).
  [[nodiscard]] base::Result<crypto::KeyPair> LoadOrCreate(std::string_view name, bool& created);
  /// The key `name`: kNotFound when there is none, kCorrupt when its file is damaged
  /// or its public key does not match its seed.
  [[nodiscard]] base::Result<crypto::KeyPair> Load(std::string_view name) const;

  /// Stores `grant` as key `name`'s grant for grant.lease_id (replacing an older one).
  /// kInvalidArgument unless the grant names that key.
  [[nodiscard]] base::Status SaveGrant(std::string_view name, const DelegationGrant& grant);
  /// Removes key `name`'s grant for `lease_id` (none there: Ok).
  [[nodiscard]] base::Status RemoveGrant(std::string_view name, uint64_t lease_id);

  /// Every stored grant for `lease_id` of `provider`, with its key, by name. Files
  /// that are damaged or name another lease are skipped (a grant cannot be used for
  /// a lease it does not name anyway).
  [[nodiscard]] base::Result<std::vector<SessionGrant>> GrantsFor(const crypto::Address& provider,
                                                                  uint64_t lease_id) const;
  /// The grant to sign `lease_id`'s requests with: key `name`'s when given, else the
  /// one that expires last; only grants with kGrantUseMarginMs left at `now_ms`.
  /// nullopt when there is none.
  [[nodiscard]] base::Result<std::optional<SessionGrant>> Usable(const crypto::Address& provider,
                                                                 uint64_t lease_id, uint64_t now_ms,
                                                                 std::string_view name = {}) const;

 private:
  std::string KeyPath(std::string_view name) const;
  std::string GrantPath(std::string_view name, uint64_t lease_id) const;

  std::string m_dir;
};

}  // namespace gpunet::client
