// A throwaway self-signed TLS certificate for tests that serve HTTPS on 127.0.0.1
// (the server's TLS tests, the tenant API's pinned client). Header-only; needs
// OpenSSL (link OpenSSL::Crypto) and no GoogleTest: a step that fails throws.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <stdexcept>
#include <string>

namespace gpunet::testing {

/// A certificate and its private key, both PEM.
struct CertAndKey {
  std::string certificate_pem;
  std::string key_pem;
};

inline std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

/// A fresh P-256 key and a self-signed certificate for CN=127.0.0.1, valid from an
/// hour ago for a day.
inline CertAndKey MakeSelfSigned() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) throw std::runtime_error("EVP_EC_gen failed");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  const bool signed_ok = X509_sign(cert, key, EVP_sha256()) > 0;

  CertAndKey out;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  out.certificate_pem = BioText(bio);
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = BioText(bio);
  BIO_free(bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!signed_ok) throw std::runtime_error("X509_sign failed");
  return out;
}

}  // namespace gpunet::testing
