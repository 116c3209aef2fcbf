#include "provider/request_auth.h"

#include <sodium.h>

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace gpunet::provider {
namespace {

using base::ErrorCode;

AuthVerdict Refuse(int status, std::string_view code, std::string message) {
  AuthVerdict v;
  v.status = status;
  v.code = std::string(code);
  v.message = std::move(message);
  return v;
}

AuthVerdict Unauthenticated(std::string message) {
  return Refuse(401, "unauthenticated", std::move(message));
}

AuthVerdict Forbidden(std::string message) {
  return Refuse(403, "permission_denied", std::move(message));
}

bool SameAddress(const crypto::Address& a, const crypto::Address& b) {
  return sodium_memcmp(a.begin(), b.begin(), crypto::Address::kSize) == 0;
}

/// "12.3 s" for a millisecond difference.
std::string Seconds(uint64_t ms) {
  return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + " s";
}

std::string SkewMessage(uint64_t timestamp_ms, uint64_t now_ms, uint64_t max_ms) {
  const bool ahead = timestamp_ms > now_ms;
  const uint64_t skew = ahead ? timestamp_ms - now_ms : now_ms - timestamp_ms;
  return "the request's Gpunet-Timestamp is " + Seconds(skew) + (ahead ? " ahead of" : " behind") +
         " the provider's clock (allowed: ±" + Seconds(max_ms) +
         "); set the client's clock right (NTP) and sign the request again";
}

}  // namespace

RequestVerifier::RequestVerifier(VerifierConfig config, const base::Clock& clock,
                                 NonceStore& nonces)
    : m_config(std::move(config)), m_clock(clock), m_nonces(nonces) {}

uint64_t RequestVerifier::NowMs() const {
  return static_cast<uint64_t>(std::max<int64_t>(0, m_clock.NowMs()));
}

AuthVerdict RequestVerifier::Verify(const IncomingRequest& request, const LeaseView& lease,
                                    RouteKind kind) {
  GPUNET_CHECK(request.headers != nullptr);
  const client::RequestLine line{request.method, request.target, request.body_hash};
  if (auto st = client::CheckRequestMethod(line.method); !st)
    return Refuse(400, "invalid_argument", st.error().message);
  if (auto st = client::CheckRequestTarget(line.target); !st)
    return Refuse(400, "invalid_argument", st.error().message);
  auto auth = client::ParseRequestAuthHeaders(*request.headers);
  if (!auth) return Unauthenticated(auth.error().message);

  const uint64_t now_ms = NowMs();
  const uint64_t skew =
      auth->timestamp_ms > now_ms ? auth->timestamp_ms - now_ms : now_ms - auth->timestamp_ms;
  if (skew > m_config.clock_skew_ms_max)
    return Unauthenticated(SkewMessage(auth->timestamp_ms, now_ms, m_config.clock_skew_ms_max));

  const client::RequestScope scope{m_config.chain_id, m_config.provider, lease.lease_id};
  if (auto st = client::VerifyTenantRequestSignature(scope, line, *auth); !st)
    return Unauthenticated(st.error().message);

  AuthVerdict verdict = Authorize(*auth, lease, now_ms);
  if (!verdict.Allowed()) return verdict;

  if (lease.closed) {
    const uint64_t retained_until = lease.closed_ms + m_config.outputs_retention_ms;
    if (kind == RouteKind::kWrite || now_ms >= retained_until)
      return Refuse(
          410, "gone",
          "lease " + std::to_string(lease.lease_id) + " is closed" +
              (kind == RouteKind::kWrite
                   ? "; only its logs and outputs can still be read, until " +
                         std::to_string(retained_until) + " ms"
                   : " and its outputs were kept until " + std::to_string(retained_until) + " ms"));
  }

  // Kept until the timestamp can no longer pass the skew check.
  const uint64_t keep_until = auth->timestamp_ms + m_config.clock_skew_ms_max + 1;
  if (auto st = m_nonces.Record(auth->signer, auth->nonce, keep_until, now_ms); !st) {
    switch (st.error().code) {
      case ErrorCode::kAlreadyExists:
        return Unauthenticated(st.error().message);
      case ErrorCode::kLimitExceeded:
        return Refuse(429, "limit_exceeded", st.error().message);
      default:
        return Refuse(503, "unavailable",
                      "the provider cannot record the request's nonce: " + st.error().message);
    }
  }
  return verdict;
}

AuthVerdict RequestVerifier::Authorize(const client::RequestAuthHeaders& auth,
                                       const LeaseView& lease, uint64_t now_ms) {
  if (!SameAddress(lease.provider, m_config.provider))
    return Forbidden("lease " + std::to_string(lease.lease_id) + " is not with this provider");
  AuthVerdict ok;
  ok.signer = auth.signer;
  const bool signer_is_tenant = SameAddress(crypto::AddressOf(auth.signer), lease.tenant);
  if (!auth.grant) {
    if (signer_is_tenant) return ok;
    return Forbidden("the request is signed by " +
                     crypto::AddressToString(crypto::AddressOf(auth.signer)) +
                     ", which is neither lease " + std::to_string(lease.lease_id) +
                     "'s tenant nor a session key it delegated (send its Gpunet-Grant)");
  }
  const client::DelegationGrant& g = *auth.grant;
  if (signer_is_tenant)
    return Unauthenticated("a request signed by the tenant key itself must carry no Gpunet-Grant");
  if (g.session_key != auth.signer)
    return Forbidden("the Gpunet-Grant delegates another key than the one that signed");
  if (!SameAddress(crypto::AddressOf(g.tenant), lease.tenant))
    return Forbidden("the Gpunet-Grant was not made by lease " + std::to_string(lease.lease_id) +
                     "'s tenant");
  if (g.lease_id != lease.lease_id || !SameAddress(g.provider, m_config.provider))
    return Forbidden("the Gpunet-Grant is for another lease or provider");
  if (!client::VerifyGrantSignature(m_config.chain_id, g))
    return Forbidden("the Gpunet-Grant's signature does not verify");
  if (g.expires_ms > lease.ends_at_ms)
    return Forbidden("the Gpunet-Grant expires at " + std::to_string(g.expires_ms) +
                     " ms, after the lease's end at " + std::to_string(lease.ends_at_ms) +
                     " ms; ask the tenant for a grant that ends with the lease");
  if (now_ms >= g.expires_ms)
    return Forbidden("the Gpunet-Grant expired at " + std::to_string(g.expires_ms) +
                     " ms; ask the tenant for a new one");
  if (m_nonces.IsRevoked(g.tenant, g.grant_id, now_ms))
    return Forbidden("the Gpunet-Grant " + base::ToHex(g.grant_id) + " was revoked by the tenant");
  ok.grant_id = g.grant_id;
  return ok;
}

AuthVerdict RequestVerifier::Revoke(const client::GrantRevocation& revocation,
                                    const LeaseView& lease) {
  if (!SameAddress(lease.provider, m_config.provider) ||
      !SameAddress(revocation.provider, m_config.provider) || revocation.lease_id != lease.lease_id)
    return Forbidden("the revocation is for another lease or provider");
  if (!SameAddress(crypto::AddressOf(revocation.tenant), lease.tenant))
    return Forbidden("only lease " + std::to_string(lease.lease_id) +
                     "'s tenant may revoke its grants");
  if (!client::VerifyRevocationSignature(m_config.chain_id, revocation))
    return Unauthenticated("the revocation's signature does not verify");
  const uint64_t now_ms = NowMs();
  if (auto st = m_nonces.RecordRevocation(revocation.tenant, revocation.grant_id,
                                          revocation.grant_expires_ms, now_ms);
      !st) {
    if (st.error().code == ErrorCode::kLimitExceeded)
      return Refuse(429, "limit_exceeded", st.error().message);
    return Refuse(503, "unavailable",
                  "the provider cannot record the revocation: " + st.error().message);
  }
  AuthVerdict ok;
  ok.signer = revocation.tenant;
  ok.grant_id = revocation.grant_id;
  return ok;
}

}  // namespace gpunet::provider
