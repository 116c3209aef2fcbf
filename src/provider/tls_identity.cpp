#include "provider/tls_identity.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "base/check.h"
#include "base/file_util.h"

namespace gpunet::provider {
namespace {

using base::ErrorCode;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Bio = std::unique_ptr<BIO, BioFree>;

std::unexpected<base::Error> OpensslFailed(std::string_view step) {
  return base::Fail(ErrorCode::kInternal,
                    "making the TLS identity: OpenSSL failed to " + std::string(step));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

base::Result<base::Hash32> SpkiHash(X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (n <= 0) return OpensslFailed("encode the SubjectPublicKeyInfo");
  base::Hash32 out{};
  SHA256(der, static_cast<size_t>(n), out.data.data());
  OPENSSL_free(der);
  return out;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

/// Subject and issuer CN=host, subjectAltName, a random serial, not-before now.
base::Status FillCertificate(X509* cert, EVP_PKEY* key, const std::string& host,
                             uint32_t valid_days) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return OpensslFailed("draw a serial number");
  serial[0] &= 0x7f;  // a positive INTEGER
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  bool ok = bn != nullptr && X509_set_version(cert, 2) == 1 &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -60) != nullptr &&
       X509_time_adj_ex(X509_getm_notAfter(cert), static_cast<int>(valid_days), 0, nullptr) !=
           nullptr &&
       X509_set_pubkey(cert, key) == 1;
  X509_NAME* name = X509_get_subject_name(cert);
  ok = ok &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1,
                                  0) == 1 &&
       X509_set_issuer_name(cert, name) == 1;
  if (!ok) return OpensslFailed("fill the certificate");
  std::string san = (IsIpAddress(host) ? "IP:" : "DNS:") + host;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return OpensslFailed("add subjectAltName " + san);
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return OpensslFailed("sign the certificate");
  return base::Ok();
}

}  // namespace

base::Result<TlsIdentity> GenerateTlsIdentity(std::string_view host, uint32_t valid_days) {
  if (host.empty() || host.size() > 253)
    return base::Fail(ErrorCode::kInvalidArgument,
                      "the TLS certificate needs a host name or address (1..253 characters)");
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpensslFailed("generate a P-256 key");
  Cert cert(X509_new());
  if (!cert) return OpensslFailed("allocate a certificate");
  GPUNET_TRY(FillCertificate(cert.get(), key.get(), std::string(host), valid_days));
  Bio key_bio(BIO_new(BIO_s_mem())), cert_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !cert_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1)
    return OpensslFailed("write PEM");
  TlsIdentity out;
  out.key_pem = BioText(key_bio.get());
  out.cert_pem = BioText(cert_bio.get());
  GPUNET_TRY_ASSIGN(out.spki_sha256, SpkiHash(cert.get()));
  GPUNET_CHECK(!out.key_pem.empty() && !out.cert_pem.empty());
  return out;
}

base::Result<base::Hash32> SpkiFingerprintOfCertPem(std::string_view cert_pem) {
  Bio bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  if (!bio) return OpensslFailed("read memory");
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert)
    return base::Fail(ErrorCode::kInvalidArgument,
                      "no PEM certificate (-----BEGIN CERTIFICATE-----) in the text");
  return SpkiHash(cert.get());
}

base::Status WriteTlsIdentity(const ProviderHome& home, const TlsIdentity& identity) {
  std::error_code ec;
  std::filesystem::create_directories(home.TlsDir(), ec);
  if (ec) return base::Fail(ErrorCode::kIo, "cannot make " + home.TlsDir() + ": " + ec.message());
  if (::chmod(home.TlsDir().c_str(), 0700) != 0)
    return base::Fail(ErrorCode::kIo,
                      "cannot chmod " + home.TlsDir() + ": " + std::strerror(errno));
  base::AtomicWriteOptions secret{.mode = 0600, .if_exists = base::IfExists::kRefuse};
  base::AtomicWriteOptions open{.mode = 0644, .if_exists = base::IfExists::kRefuse};
  GPUNET_TRY(base::WriteFileAtomic(home.TlsKeyPath(), identity.key_pem, secret));
  return base::WriteFileAtomic(home.TlsCertPath(), identity.cert_pem, open);
}

base::Result<base::Hash32> ReadTlsFingerprint(const ProviderHome& home) {
  auto text = base::ReadFileNoFollow(home.TlsCertPath(), 1 << 20);
  if (!text && text.error().code == ErrorCode::kNotFound)
    return base::Fail(ErrorCode::kNotFound, "no TLS certificate at " + home.TlsCertPath() +
                                                "; `gpunet provider init` makes one");
  if (!text) return std::unexpected(text.error());
  auto fp = SpkiFingerprintOfCertPem(*text);
  if (!fp) return base::Fail(fp.error().code, home.TlsCertPath() + ": " + fp.error().message);
  return fp;
}

}  // namespace gpunet::provider
