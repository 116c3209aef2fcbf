#include "client/tenant_request.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>

#include "base/check.h"
#include "base/limits.h"
#include "codec/field_io.h"
#include "codec/reader.h"
#include "codec/writer.h"
#include "crypto/hash.h"
#include "crypto/sodium_init.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
namespace limits = base::limits;

constexpr crypto::Domain kDomain = crypto::Domain::kTenantRequest;
// Sizes of the fixed-size encodings (purpose byte, fields, signature).
constexpr size_t kGrantBytes = 1 + 32 + 32 + 20 + 8 + 8 + 16 + 64;
constexpr size_t kRevocationBytes = 1 + 32 + 20 + 8 + 16 + 8 + 64;

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

char AsciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  return true;
}

std::unexpected<base::Error> BadTarget(std::string_view why) {
  return Fail(ErrorCode::kInvalidArgument,
              "request target refused: " + std::string(why) + " (docs/tenant-api.md \"Targets\")");
}

/// Checks one path segment, percent-decoded for the dot test only.
base::Status CheckSegment(std::string_view raw, bool last) {
  std::string decoded;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%') {
      decoded += static_cast<char>(HexValue(raw[i + 1]) * 16 + HexValue(raw[i + 2]));
      i += 2;
    } else {
      decoded += raw[i];
    }
  }
  if (decoded == "." || decoded == "..") return BadTarget("a \".\" or \"..\" path segment");
  // "/a//b" names the same thing as "/a/b" on many file systems: one spelling only.
  // A trailing "/" (an empty last segment) is allowed.
  if (decoded.empty() && !last) return BadTarget("an empty path segment (\"//\")");
  return base::Ok();
}

base::Status CheckPath(std::string_view path) {
  size_t start = 1;  // after the leading '/'
  while (true) {
    size_t slash = path.find('/', start);
    bool last = slash == std::string_view::npos;
    std::string_view seg = path.substr(start, last ? std::string_view::npos : slash - start);
    GPUNET_TRY(CheckSegment(seg, last));
    if (last) return base::Ok();
    start = slash + 1;
  }
}

/// Lower-case hex of exactly `n` bytes, decoded; kInvalidArgument naming `what`.
base::Result<base::Bytes> StrictHexBytes(std::string_view text, size_t n, std::string_view what) {
  bool ok = text.size() == 2 * n;
  for (char c : text) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok)
    return Fail(ErrorCode::kInvalidArgument,
                std::string(what) + " must be " + std::to_string(2 * n) + " lower-case hex digits");
  return base::FromHex(text);
}

/// Lower-case hex of exactly N bytes, as a header's value.
template <size_t N>
base::Result<base::FixedBytes<N>> StrictHex(std::string_view text, std::string_view header) {
  GPUNET_TRY_ASSIGN(const base::Bytes bytes,
                    StrictHexBytes(text, N, "header " + std::string(header)));
  base::FixedBytes<N> out;
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

base::Result<uint64_t> StrictDecimal(std::string_view text, std::string_view header) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  bool ok = !text.empty() && ec == std::errc() && end == text.data() + text.size() &&
            text.size() <= 20 && !(text.size() > 1 && text[0] == '0') && text[0] != '+';
  if (!ok)
    return Fail(ErrorCode::kInvalidArgument,
                "header " + std::string(header) +
                    " must be the Unix time in milliseconds, decimal without leading zeros");
  return v;
}

// The field lists of the two signed tenant messages (codec/field_io.h): one list
// drives both the signed bytes and the parser, so they cannot drift apart. The
// purpose byte comes before, the signature after.
template <class IO>
base::Status Fields(IO& io, codec::FieldRef<IO, DelegationGrant> g) {
  GPUNET_TRY(io.Fixed(g.tenant, "tenant"));
  GPUNET_TRY(io.Fixed(g.session_key, "session_key"));
  GPUNET_TRY(io.Fixed(g.provider, "provider"));
  GPUNET_TRY(io.U64(g.lease_id, "lease_id"));
  GPUNET_TRY(io.U64(g.expires_ms, "expires_ms"));
  return io.Fixed(g.grant_id, "grant_id");
}

template <class IO>
base::Status Fields(IO& io, codec::FieldRef<IO, GrantRevocation> r) {
  GPUNET_TRY(io.Fixed(r.tenant, "tenant"));
  GPUNET_TRY(io.Fixed(r.provider, "provider"));
  GPUNET_TRY(io.U64(r.lease_id, "lease_id"));
  GPUNET_TRY(io.Fixed(r.grant_id, "grant_id"));
  return io.U64(r.grant_expires_ms, "grant_expires_ms");
}

/// The bytes a grant's or revocation's signature covers: the purpose, the fields.
template <class T>
base::Bytes SignedBytes(const T& v, TenantPurpose purpose) {
  codec::Writer w(kGrantBytes);
  w.U8(static_cast<uint8_t>(purpose));
  codec::WriteIO io(w);
  GPUNET_CHECK(Fields(io, v).has_value());
  return std::move(w).Take();
}

/// The hex text of a signed message: its signed bytes, then the signature.
std::string EncodeSigned(base::Bytes bytes, const crypto::Signature& signature, size_t size) {
  bytes.insert(bytes.end(), signature.begin(), signature.end());
  GPUNET_CHECK(bytes.size() == size);
  return base::ToHex(bytes);
}

/// The bytes of a signed message's hex text: exactly `size` of them, `purpose` first.
base::Result<base::Bytes> DecodeSigned(std::string_view text, size_t size, TenantPurpose purpose,
                                       std::string_view what) {
  GPUNET_TRY_ASSIGN(base::Bytes bytes, StrictHexBytes(text, size, what));
  if (bytes[0] != static_cast<uint8_t>(purpose))
    return Fail(ErrorCode::kInvalidArgument, std::string(what) + " has purpose byte " +
                                                 std::to_string(bytes[0]) + ", expected " +
                                                 std::to_string(static_cast<int>(purpose)));
  return bytes;
}

/// Parses the hex text of a grant or revocation (the signature is not checked).
template <class T>
base::Result<T> ParseSigned(std::string_view text, size_t size, TenantPurpose purpose,
                            std::string_view what) {
  GPUNET_TRY_ASSIGN(const base::Bytes bytes, DecodeSigned(text, size, purpose, what));
  codec::Reader r(bytes, what);
  GPUNET_TRY(r.U8("purpose"));
  codec::ReadIO io(r);
  T out;
  GPUNET_TRY(Fields(io, out));
  GPUNET_TRY_ASSIGN(out.signature, r.Fixed<64>("signature"));
  GPUNET_TRY(r.Finish());
  return out;
}

}  // namespace

base::Hash32 BodyHash(std::string_view body) {
  return crypto::Blake2b256(base::AsBytes(body));
}

base::Status CheckRequestTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') return BadTarget("it must start with '/'");
  if (target.size() > limits::kTenantTargetBytesMax)
    return BadTarget("longer than " + std::to_string(limits::kTenantTargetBytesMax) + " bytes");
  for (size_t i = 0; i < target.size(); ++i) {
    const auto c = static_cast<unsigned char>(target[i]);
    if (c <= 0x20 || c >= 0x7f) return BadTarget("a control, space or non-ASCII byte");
    if (c == '\\' || c == '#') return BadTarget("a '\\' or '#'");
    if (c != '%') continue;
    if (i + 2 >= target.size() || !IsHexDigit(target[i + 1]) || !IsHexDigit(target[i + 2]))
      return BadTarget("a '%' not followed by two hex digits");
    const int v = HexValue(target[i + 1]) * 16 + HexValue(target[i + 2]);
    if (v == 0) return BadTarget("an encoded NUL (%00)");
    if (v == '/' || v == '\\') return BadTarget("an encoded path separator (%2F or %5C)");
    if (v < 0x20 || v == 0x7f) return BadTarget("an encoded control byte");
  }
  return CheckPath(target.substr(0, target.find('?')));
}

base::Status CheckRequestMethod(std::string_view method) {
  bool ok = !method.empty() && method.size() <= limits::kTenantMethodBytesMax;
  for (char c : method) ok = ok && c >= 'A' && c <= 'Z';
  if (!ok)
    return Fail(ErrorCode::kInvalidArgument, "request method must be 1.." +
                                                 std::to_string(limits::kTenantMethodBytesMax) +
                                                 " upper-case letters");
  return base::Ok();
}

base::Bytes RequestSignedBytes(const RequestScope& scope, const RequestLine& line,
                               uint64_t timestamp_ms, const RequestNonce& nonce,
                               const crypto::PublicKey& signer) {
  GPUNET_CHECK(CheckRequestMethod(line.method).has_value());
  GPUNET_CHECK(CheckRequestTarget(line.target).has_value());
  codec::Writer w(160 + line.target.size());
  w.U8(static_cast<uint8_t>(TenantPurpose::kRequest));
  w.Fixed(scope.provider);
  w.U64(scope.lease_id);
  w.String(line.method);
  w.String(line.target);
  w.Fixed(line.body_hash);
  w.U64(timestamp_ms);
  w.Fixed(nonce);
  w.Fixed(signer);
  return std::move(w).Take();
}

RequestNonce RandomNonce() {
  crypto::EnsureSodium();
  RequestNonce nonce;
  randombytes_buf(nonce.begin(), RequestNonce::kSize);
  return nonce;
}

base::Result<HeaderList> SignTenantRequest(const RequestScope& scope, const crypto::KeyPair& key,
                                           const DelegationGrant* grant, const RequestLine& line,
                                           uint64_t timestamp_ms, const RequestNonce& nonce) {
  GPUNET_TRY(CheckRequestMethod(line.method));
  GPUNET_TRY(CheckRequestTarget(line.target));
  if (grant != nullptr && grant->session_key != key.Public())
    return Fail(ErrorCode::kInvalidArgument,
                "the grant delegates another key than the one signing this request");
  const base::Bytes bytes = RequestSignedBytes(scope, line, timestamp_ms, nonce, key.Public());
  const crypto::Signature sig = key.Sign(kDomain, scope.chain_id, bytes);
  HeaderList headers = {
      {std::string(kSignerHeader), base::ToHex(key.Public())},
      {std::string(kTimestampHeader), std::to_string(timestamp_ms)},
      {std::string(kNonceHeader), base::ToHex(nonce)},
      {std::string(kSignatureHeader), base::ToHex(sig)},
  };
  if (grant != nullptr) headers.emplace_back(std::string(kGrantHeader), EncodeGrant(*grant));
  return headers;
}

base::Result<RequestAuthHeaders> ParseRequestAuthHeaders(const HeaderList& headers) {
  constexpr std::string_view kNames[] = {kSignerHeader, kTimestampHeader, kNonceHeader,
                                         kSignatureHeader, kGrantHeader};
  const std::string* values[5] = {};
  for (const auto& [name, value] : headers) {
    if (name.size() < 7 || !EqualsIgnoreCase(std::string_view(name).substr(0, 7), "gpunet-") ||
        EqualsIgnoreCase(name, kChunkSha256Header))
      continue;
    size_t i = 0;
    while (i < 5 && !EqualsIgnoreCase(name, kNames[i])) ++i;
    if (i == 5)
      return Fail(ErrorCode::kInvalidArgument,
                  "unknown header " + name +
                      ": the tenant API knows Gpunet-Signer, "
                      "Gpunet-Timestamp, Gpunet-Nonce, Gpunet-Signature "
                      "and Gpunet-Grant");
    if (values[i] != nullptr)
      return Fail(ErrorCode::kInvalidArgument, "header " + std::string(kNames[i]) + " sent twice");
    values[i] = &value;
  }
  for (size_t i = 0; i < 4; ++i) {
    if (values[i] == nullptr)
      return Fail(ErrorCode::kInvalidArgument,
                  "missing header " + std::string(kNames[i]) +
                      ": every tenant-API request but GET /environments is signed "
                      "(docs/tenant-api.md \"Signed requests\")");
  }
  RequestAuthHeaders out;
  GPUNET_TRY_ASSIGN(out.signer, StrictHex<32>(*values[0], kSignerHeader));
  GPUNET_TRY_ASSIGN(out.timestamp_ms, StrictDecimal(*values[1], kTimestampHeader));
  GPUNET_TRY_ASSIGN(out.nonce, StrictHex<16>(*values[2], kNonceHeader));
  GPUNET_TRY_ASSIGN(out.signature, StrictHex<64>(*values[3], kSignatureHeader));
  if (values[4] != nullptr) {
    auto grant = ParseGrant(*values[4]);
    if (!grant) return base::Wrap(grant.error(), "header Gpunet-Grant");
    out.grant = *grant;
  }
  return out;
}

base::Status VerifyTenantRequestSignature(const RequestScope& scope, const RequestLine& line,
                                          const RequestAuthHeaders& auth) {
  GPUNET_TRY(CheckRequestMethod(line.method));
  GPUNET_TRY(CheckRequestTarget(line.target));
  const base::Bytes bytes =
      RequestSignedBytes(scope, line, auth.timestamp_ms, auth.nonce, auth.signer);
  if (!crypto::Verify(auth.signer, kDomain, scope.chain_id, bytes, auth.signature))
    return Fail(ErrorCode::kBadSignature,
                "the request's signature does not verify: it was signed for another chain, "
                "provider, lease, method, target, body or time, or by another key");
  return base::Ok();
}

// ---- delegation ----

DelegationGrant SignGrant(const crypto::KeyPair& tenant, const RequestScope& scope,
                          const crypto::PublicKey& session_key, uint64_t expires_ms,
                          const GrantId& grant_id) {
  DelegationGrant g;
  g.tenant = tenant.Public();
  g.session_key = session_key;
  g.provider = scope.provider;
  g.lease_id = scope.lease_id;
  g.expires_ms = expires_ms;
  g.grant_id = grant_id;
  g.signature = tenant.Sign(kDomain, scope.chain_id, SignedBytes(g, TenantPurpose::kGrant));
  return g;
}

bool VerifyGrantSignature(std::string_view chain_id, const DelegationGrant& grant) {
  return crypto::Verify(grant.tenant, kDomain, chain_id, SignedBytes(grant, TenantPurpose::kGrant),
                        grant.signature);
}

std::string EncodeGrant(const DelegationGrant& grant) {
  return EncodeSigned(SignedBytes(grant, TenantPurpose::kGrant), grant.signature, kGrantBytes);
}

base::Result<DelegationGrant> ParseGrant(std::string_view text) {
  return ParseSigned<DelegationGrant>(text, kGrantBytes, TenantPurpose::kGrant, "grant");
}

GrantRevocation SignRevocation(const crypto::KeyPair& tenant, const RequestScope& scope,
                               const DelegationGrant& grant) {
  GrantRevocation r;
  r.tenant = tenant.Public();
  r.provider = scope.provider;
  r.lease_id = scope.lease_id;
  r.grant_id = grant.grant_id;
  r.grant_expires_ms = grant.expires_ms;
  r.signature = tenant.Sign(kDomain, scope.chain_id, SignedBytes(r, TenantPurpose::kRevoke));
  return r;
}

bool VerifyRevocationSignature(std::string_view chain_id, const GrantRevocation& revocation) {
  return crypto::Verify(revocation.tenant, kDomain, chain_id,
                        SignedBytes(revocation, TenantPurpose::kRevoke), revocation.signature);
}

std::string EncodeRevocation(const GrantRevocation& revocation) {
  return EncodeSigned(SignedBytes(revocation, TenantPurpose::kRevoke), revocation.signature,
                      kRevocationBytes);
}

base::Result<GrantRevocation> ParseRevocation(std::string_view text) {
  return ParseSigned<GrantRevocation>(text, kRevocationBytes, TenantPurpose::kRevoke, "revocation");
}

}  // namespace gpunet::client
