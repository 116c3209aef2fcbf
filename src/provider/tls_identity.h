// The tenant API's TLS identity: a key and a self-signed certificate that
// `gpunet provider init` makes, and the fingerprint the ledger pins.
//
// Tenants do not trust the certificate through a CA: the provider puts the SHA-256
// of the key's DER SubjectPublicKeyInfo on the ledger (provider.yaml
// tls_fingerprint, MsgProviderRegister), and the client refuses a server whose key
// hashes differently (docs/tenant-api.md). So the certificate may be self-signed,
// and renewing it with the same key changes nothing on the ledger; a new key needs
// `provider apply` to publish its fingerprint (docs/provider.md, "Keys").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "base/result.h"
#include "provider/home.h"

namespace gpunet::provider {

/// A key (ECDSA P-256, what every TLS client speaks) and its certificate, PEM.
struct TlsIdentity {
  std::string key_pem;   ///< PKCS#8 "PRIVATE KEY"
  std::string cert_pem;  ///< X.509 v3, self-signed
  base::Hash32 spki_sha256{};
};

/// How long a fresh certificate is valid. The pin is on the key, so expiry only
/// matters to clients that check it; ten years keeps it out of the operator's way.
inline constexpr uint32_t kTlsCertValidDays = 3650;

/// A fresh key and a certificate for `host` (subject CN and subjectAltName: a DNS
/// name, or an IP address when `host` is one). kInternal when OpenSSL fails.
base::Result<TlsIdentity> GenerateTlsIdentity(std::string_view host,
                                              uint32_t valid_days = kTlsCertValidDays);

/// SHA-256 of the DER SubjectPublicKeyInfo of the first certificate in `cert_pem`:
/// the value provider.yaml's tls_fingerprint and the ledger hold.
/// kInvalidArgument when the text holds no certificate.
base::Result<base::Hash32> SpkiFingerprintOfCertPem(std::string_view cert_pem);

/// Writes the identity as <home>/tls/key.pem (0600) and cert.pem (0644) in a 0700
/// tls/ directory. kAlreadyExists when either file is there (never overwritten:
/// a new key changes the fingerprint tenants pin).
base::Status WriteTlsIdentity(const ProviderHome& home, const TlsIdentity& identity);

/// Reads <home>/tls/cert.pem and returns its key's fingerprint (kNotFound when
/// there is none, saying to run provider init).
base::Result<base::Hash32> ReadTlsFingerprint(const ProviderHome& home);

}  // namespace gpunet::provider
