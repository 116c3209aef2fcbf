// Reaching a lease's provider through its tenant API, shared by the tenant verbs
// (cmd_lease_tenant.cpp, where these are defined) and `gpunet run` (cmd_run.cpp):
// the lease and its provider as the ledger has them, the pinned client's options,
// answers turned into errors that say what to do, and the resumable upload and
// download of one file. Each ends the command (CommandFailed) on an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/gpunet/cli.h"
#include "client/market_answers.h"
#include "client/tenant_client.h"
#include "client/tenant_request.h"
#include "client/tenant_transfer.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

namespace gpunet::apps {

/// The lease as the ledger has it, with what reaching its provider needs.
struct LeaseContext {
  client::LeaseInfo lease;
  client::ProviderInfo provider;
  crypto::Address provider_address;
  crypto::Address tenant_address;
  std::string chain_id;
};

/// Reads lease `id_text` (a number as typed), its provider and the chain id.
LeaseContext ReadLease(const GlobalOptions& g, const std::string& id_text);
/// The tenant client's options for the lease: the provider's URI, its pinned TLS key
/// and the request scope.
client::TenantClientOptions ClientOptions(const LeaseContext& c);

/// Ends the command with the error an answer's status means, with what to do.
[[noreturn]] void FailAnswer(const client::TenantResponse& r, const std::string& what);
/// The answer of a request that must succeed with `ok_status`.
client::TenantResponse Expect(base::Result<client::TenantResponse> r, const std::string& what,
                              int ok_status = 200);
/// The answer's body as a JSON object.
nlohmann::json ParseJsonAnswer(const client::TenantResponse& r, const std::string& what);

/// Sends one file from where the provider's copy ends (progress on stderr unless
/// -o json); a dropped connection or an offset conflict resumes a few times.
void UploadOne(const GlobalOptions& g, client::TenantClient& tenant, uint64_t lease_id,
               const client::UploadFile& f);
/// Downloads output `name` to `dest` in pieces, resumable through a part file of
/// this lease's and this output's only, never past `listed_size` (the outputs
/// listing's size of it; nullopt: the size the provider's first answer gives).
void DownloadOutput(client::TenantClient& tenant, uint64_t lease_id, const std::string& name,
                    const std::string& dest, std::optional<uint64_t> listed_size);

/// The client that signs lease `c`'s requests: tenant key `from` (its passphrase
/// asked) when given, else session key `session`'s stored grant (or the one that
/// lasts longest); ends the command, saying how to delegate, when there is none.
client::TenantClient ConnectAs(const GlobalOptions& g, const LeaseContext& c,
                               const std::string& from, const std::string& session);

/// A session key's grant for a lease, made by GrantLease.
struct LeaseGrant {
  client::DelegationGrant grant;
  uint64_t expires_ms = 0;
  bool created = false;  ///< the session key is new
};
/// `gpunet lease grant`: tenant key `from` (asked for its passphrase) delegates lease
/// `c` to session key `session_name` (made when new) until the lease's paid end, or
/// sooner with `expires_text` (8h, 2d); the grant is stored beside the key.
LeaseGrant GrantLease(const GlobalOptions& g, const LeaseContext& c, const std::string& from,
                      const std::string& session_name, const std::string& expires_text);

}  // namespace gpunet::apps
