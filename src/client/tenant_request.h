// Signed requests to a provider's tenant API (docs/tenant-api.md), shared by the
// tenant's client (tenant_client.h) and the provider's verifier
// (provider/request_auth.h), so both build the very same bytes.
//
// Every tenant-API message is signed under crypto::Domain::kTenantRequest and the
// chain id (architecture §2.1), and starts with a purpose byte, so a request, a
// delegation grant and a revocation can never stand for one another:
//
//   request:  u8 1 | provider[20] | lease_id u64 | method (varuint len, bytes)
//             | target (varuint len, the raw bytes as sent) | body BLAKE2b-256[32]
//             | timestamp_ms u64 | nonce[16] | signer public key[32]
//   grant:    u8 2 | tenant key[32] | session key[32] | provider[20] | lease_id u64
//             | expires_ms u64 | grant_id[16]
//   revoke:   u8 3 | tenant key[32] | provider[20] | lease_id u64 | grant_id[16]
//             | grant_expires_ms u64
//
// Integers are big-endian and every variable field is length-prefixed (codec::Writer),
// so no two different requests share signed bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"

namespace gpunet::client {

using RequestNonce = base::FixedBytes<16>;
using GrantId = base::FixedBytes<16>;

/// An HTTP header list as sent or received: names as written, duplicates kept (the
/// parser refuses duplicated Gpunet-* headers rather than pick one).
using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// The first byte of each signed tenant-API message. Append-only.
enum class TenantPurpose : uint8_t {
  kRequest = 1,
  kGrant = 2,
  kRevoke = 3,
};

inline constexpr std::string_view kSignerHeader = "Gpunet-Signer";        ///< 64 hex
inline constexpr std::string_view kTimestampHeader = "Gpunet-Timestamp";  ///< decimal ms
inline constexpr std::string_view kNonceHeader = "Gpunet-Nonce";          ///< 32 hex
inline constexpr std::string_view kSignatureHeader = "Gpunet-Signature";  ///< 128 hex
inline constexpr std::string_view kGrantHeader = "Gpunet-Grant";          ///< EncodeGrant
/// Not a signature header: an upload chunk's SHA-256 (64 lower-case hex), which the
/// tenant-facing process checks against the body; the body itself is signed.
inline constexpr std::string_view kChunkSha256Header = "Gpunet-Chunk-Sha256";

/// Which lease on which provider of which chain a request is for.
struct RequestScope {
  std::string chain_id;
  crypto::Address provider;
  uint64_t lease_id = 0;
};

/// A tenant's delegation of a lease to a session key (docs/tenant-api.md "Session keys").
struct DelegationGrant {
  crypto::PublicKey tenant;       ///< signs the grant; its address must be the lease's tenant
  crypto::PublicKey session_key;  ///< the key that signs the requests
  crypto::Address provider;
  uint64_t lease_id = 0;
  uint64_t expires_ms = 0;  ///< no later than the lease's end (the verifier checks)
  GrantId grant_id;         ///< what a revocation names
  crypto::Signature signature;
  bool operator==(const DelegationGrant&) const = default;
};

/// A tenant's revocation of a grant it made.
struct GrantRevocation {
  crypto::PublicKey tenant;
  crypto::Address provider;
  uint64_t lease_id = 0;
  GrantId grant_id;
  /// The revoked grant's expires_ms: the provider keeps the revocation until then.
  uint64_t grant_expires_ms = 0;
  crypto::Signature signature;
  bool operator==(const GrantRevocation&) const = default;
};

/// The signature headers of one request, parsed.
struct RequestAuthHeaders {
  crypto::PublicKey signer;
  uint64_t timestamp_ms = 0;
  RequestNonce nonce;
  crypto::Signature signature;
  std::optional<DelegationGrant> grant;
};

/// What one request says, apart from its signature headers.
struct RequestLine {
  std::string_view method;  ///< "GET", "POST": 1..kTenantMethodBytesMax of A-Z
  std::string_view target;  ///< the raw request-target bytes exactly as sent
  base::Hash32 body_hash;   ///< BodyHash of the body (of "" for none)
};

/// BLAKE2b-256 of a request body.
base::Hash32 BodyHash(std::string_view body);

/// kInvalidArgument unless `target` is a path (and query) the tenant API accepts:
/// starts with '/', at most kTenantTargetBytesMax bytes, printable ASCII without
/// space, '\', '#'; every '%' followed by two hex digits; no encoded '/' or '\'
/// (%2F, %5C), no NUL (%00), no empty, "." or ".." path segment, raw or encoded.
[[nodiscard]] base::Status CheckRequestTarget(std::string_view target);
/// kInvalidArgument unless `method` is 1..kTenantMethodBytesMax upper-case letters.
[[nodiscard]] base::Status CheckRequestMethod(std::string_view method);

/// The bytes a request's signature covers (after the domain tag and chain id).
/// The line must have passed CheckRequestMethod and CheckRequestTarget (checked).
base::Bytes RequestSignedBytes(const RequestScope& scope, const RequestLine& line,
                               uint64_t timestamp_ms, const RequestNonce& nonce,
                               const crypto::PublicKey& signer);

/// A fresh nonce from the OS random source.
RequestNonce RandomNonce();

/// The headers that sign `line` for `scope` with `key`: Gpunet-Signer,
/// Gpunet-Timestamp, Gpunet-Nonce, Gpunet-Signature, and Gpunet-Grant when `grant`
/// is given (then `key` must be the grant's session key: kInvalidArgument otherwise).
/// kInvalidArgument for a method or target the tenant API would refuse.
[[nodiscard]] base::Result<HeaderList> SignTenantRequest(
    const RequestScope& scope, const crypto::KeyPair& key, const DelegationGrant* grant,
    const RequestLine& line, uint64_t timestamp_ms, const RequestNonce& nonce);

/// Reads the Gpunet-* headers strictly: header names compare case-insensitively,
/// each must appear at most once, values are exact-length lower-case hex (the
/// timestamp decimal without leading zeros), and any other Gpunet-* header is
/// refused, but kChunkSha256Header, which is an upload's and is left to it. kInvalidArgument naming
/// the header and the expected form.
[[nodiscard]] base::Result<RequestAuthHeaders> ParseRequestAuthHeaders(const HeaderList& headers);

/// kBadSignature unless `auth.signature` by `auth.signer` covers `line` for `scope`
/// (the grant, if any, is checked apart: VerifyGrantSignature).
[[nodiscard]] base::Status VerifyTenantRequestSignature(const RequestScope& scope,
                                                        const RequestLine& line,
                                                        const RequestAuthHeaders& auth);

// ---- delegation ----

/// A grant signed by `tenant` for `session_key` on (scope.provider, scope.lease_id).
DelegationGrant SignGrant(const crypto::KeyPair& tenant, const RequestScope& scope,
                          const crypto::PublicKey& session_key, uint64_t expires_ms,
                          const GrantId& grant_id);
/// True when the grant's signature by its tenant key verifies under `chain_id`.
[[nodiscard]] bool VerifyGrantSignature(std::string_view chain_id, const DelegationGrant& grant);
/// The grant's canonical bytes (signed part, then the signature) as lower-case hex:
/// the Gpunet-Grant header's value.
std::string EncodeGrant(const DelegationGrant& grant);
/// Parses EncodeGrant's text; kInvalidArgument for anything else (the signature is
/// not checked here).
[[nodiscard]] base::Result<DelegationGrant> ParseGrant(std::string_view text);

/// A revocation signed by `tenant` of `grant` (its id and expiry) on the scope's lease.
GrantRevocation SignRevocation(const crypto::KeyPair& tenant, const RequestScope& scope,
                               const DelegationGrant& grant);
[[nodiscard]] bool VerifyRevocationSignature(std::string_view chain_id,
                                             const GrantRevocation& revocation);
/// Lower-case hex of the revocation's canonical bytes (a request body).
std::string EncodeRevocation(const GrantRevocation& revocation);
[[nodiscard]] base::Result<GrantRevocation> ParseRevocation(std::string_view text);

}  // namespace gpunet::client
