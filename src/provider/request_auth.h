// Who may call the tenant API, request by request (docs/tenant-api.md
// "Authentication"). The tenant-API server hands each request here with the lease
// as the ledger has it; the verdict is the HTTP status and message to answer with,
// or 200 and who signed.
//
// The checks, in order (the first that fails decides):
//   400 a method or target the API refuses (client::CheckRequestTarget)
//   401 a missing or malformed signature header, or a grant that does not parse
//   401 a timestamp more than clock_skew_ms_max from the provider's clock
//   401 a signature that does not verify
//   403 a lease of another provider; a signer that is neither the lease's tenant
//       nor a session key the tenant delegated by a grant that verifies, names this
//       lease and provider, has not expired, ends no later than the lease, and was
//       not revoked
//   410 a closed lease, except a read within outputs_retention_ms of the close
//   401 a nonce this signer already used (a replay); 429 a signer over its nonce
//       cap; 503 a full or failing nonce store
// The nonce is recorded last, so only an authorized request can use up a key's
// nonces, and a refused request changes nothing.
//
// Nothing compared here is secret (keys, addresses, nonces and signatures travel in
// the clear inside TLS); the addresses are still compared with sodium_memcmp, so no
// timing reveals how much of a forged identity matched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/limits.h"
#include "client/tenant_request.h"
#include "crypto/address.h"
#include "provider/nonce_store.h"

namespace gpunet::provider {

/// The lease a request names, as the ledger has it.
struct LeaseView {
  uint64_t lease_id = 0;
  crypto::Address tenant;
  crypto::Address provider;
  /// The latest the lease can run (its paid_until_ms once started): no grant may
  /// outlive it.
  uint64_t ends_at_ms = 0;
  bool closed = false;
  uint64_t closed_ms = 0;  ///< when closed
};

/// Whether a route only reads (logs, outputs, status): reads keep working for
/// outputs_retention_ms after the lease closed.
enum class RouteKind : uint8_t { kRead, kWrite };

struct VerifierConfig {
  std::string chain_id;
  crypto::Address provider;  ///< this daemon's provider address
  uint64_t clock_skew_ms_max = base::limits::kTenantClockSkewMsMax;
  uint64_t outputs_retention_ms = 3'600'000;  ///< provider.yaml's outputs_retention
};

/// One request as received.
struct IncomingRequest {
  std::string_view method;
  std::string_view target;  ///< the raw request-target bytes as received
  const client::HeaderList* headers = nullptr;
  base::Hash32 body_hash;  ///< client::BodyHash of the body
};

/// What to answer. status 200: allowed, and who signed.
struct AuthVerdict {
  int status = 200;
  std::string code;  ///< for the JSON error body: "unauthenticated", "permission_denied", ...
  std::string message;
  crypto::PublicKey signer;
  std::optional<client::GrantId> grant_id;  ///< set when a session key signed
  bool Allowed() const { return status == 200; }
};

class RequestVerifier {
 public:
  /// `clock` and `nonces` must outlive the verifier.
  RequestVerifier(VerifierConfig config, const base::Clock& clock, NonceStore& nonces);

  /// The verdict on `request` for `lease` (the lease the route names, read from the
  /// ledger by the caller). Records the nonce when, and only when, it allows.
  AuthVerdict Verify(const IncomingRequest& request, const LeaseView& lease, RouteKind kind);

  /// Checks a tenant's revocation (signature by the lease's tenant, this provider,
  /// this lease) and stores it until the grant's expiry: 200, or the refusal.
  AuthVerdict Revoke(const client::GrantRevocation& revocation, const LeaseView& lease);

  const VerifierConfig& Config() const { return m_config; }

 private:
  AuthVerdict Authorize(const client::RequestAuthHeaders& auth, const LeaseView& lease,
                        uint64_t now_ms);
  uint64_t NowMs() const;

  const VerifierConfig m_config;
  const base::Clock& m_clock;
  NonceStore& m_nonces;
};

}  // namespace gpunet::provider
