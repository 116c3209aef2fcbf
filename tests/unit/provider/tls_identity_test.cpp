#include "provider/tls_identity.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "util/temp_dir.h"

namespace gpunet::provider {
namespace {

/// The fingerprint computed another way: the public key out of the private key
/// PEM, DER-encoded as a SubjectPublicKeyInfo (i2d_PUBKEY), hashed.
base::Hash32 FingerprintOfKeyPem(const std::string& key_pem) {
  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EXPECT_NE(key, nullptr);
  base::Hash32 out{};
  if (key == nullptr) return out;
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(key, &der);
  EXPECT_GT(n, 0);
  SHA256(der, static_cast<size_t>(n), out.data.data());
  OPENSSL_free(der);
  EVP_PKEY_free(key);
  return out;
}

TEST(TlsIdentity, FingerprintIsTheSha256OfTheKeysSubjectPublicKeyInfo) {
  auto id = GenerateTlsIdentity("gpu.example.com");
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_NE(id->key_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  EXPECT_NE(id->cert_pem.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  EXPECT_EQ(id->spki_sha256, FingerprintOfKeyPem(id->key_pem));
  auto from_cert = SpkiFingerprintOfCertPem(id->cert_pem);
  ASSERT_TRUE(from_cert.has_value()) << from_cert.error().message;
  EXPECT_EQ(*from_cert, id->spki_sha256);
}

TEST(TlsIdentity, CertificateIsSelfSignedByItsKeyAndNamesTheHost) {
  auto id = GenerateTlsIdentity("127.0.0.1");
  ASSERT_TRUE(id.has_value()) << id.error().message;
  BIO* bio = BIO_new_mem_buf(id->cert_pem.data(), static_cast<int>(id->cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  EXPECT_EQ(X509_verify(cert, pub), 1);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_cmp_current_time(X509_get0_notAfter(cert)), 1);  // not expired
  X509_free(cert);
}

TEST(TlsIdentity, EachIdentityHasItsOwnKey) {
  auto a = GenerateTlsIdentity("a.example");
  auto b = GenerateTlsIdentity("a.example");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->spki_sha256, b->spki_sha256);
  EXPECT_FALSE(GenerateTlsIdentity("").has_value());
}

TEST(TlsIdentity, WritesKey0600AndNeverOverwrites) {
  gpunet::testing::TempDir tmp;
  ProviderHome home{tmp.Path()};
  auto id = GenerateTlsIdentity("localhost");
  ASSERT_TRUE(id.has_value());
  ASSERT_TRUE(WriteTlsIdentity(home, *id).has_value());
  EXPECT_EQ(gpunet::testing::FileMode(home.TlsKeyPath()) & 0777, 0600u);
  EXPECT_EQ(gpunet::testing::FileMode(home.TlsDir()) & 0777, 0700u);
  EXPECT_EQ(gpunet::testing::FileText(home.TlsKeyPath()), id->key_pem);
  auto fp = ReadTlsFingerprint(home);
  ASSERT_TRUE(fp.has_value()) << fp.error().message;
  EXPECT_EQ(*fp, id->spki_sha256);

  auto other = GenerateTlsIdentity("localhost");
  ASSERT_TRUE(other.has_value());
  auto again = WriteTlsIdentity(home, *other);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_EQ(gpunet::testing::FileText(home.TlsKeyPath()), id->key_pem);
}

TEST(TlsIdentity, MissingOrBadCertificateIsExplained) {
  gpunet::testing::TempDir tmp;
  auto none = ReadTlsFingerprint(ProviderHome{tmp.Path()});
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message.find("provider init"), std::string::npos);
  EXPECT_FALSE(SpkiFingerprintOfCertPem("not a certificate").has_value());
}

}  // namespace
}  // namespace gpunet::provider
