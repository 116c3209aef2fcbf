#include "server/tls.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "base/check.h"

namespace gpunet::server {

namespace {

namespace ssl = boost::asio::ssl;
using base::ErrorCode;
using base::Fail;

/// The first error in this thread's OpenSSL queue as text, and the queue cleared.
std::string TakeOpenSslError() {
  const unsigned long code = ERR_get_error();
  const char* reason = code == 0 ? nullptr : ERR_reason_error_string(code);
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown OpenSSL error";
}

base::Result<std::string> ReadFile(const std::string& path, std::string_view what) {
  if (path.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "TLS is on but no " + std::string(what) +
                    " file is given; give both the certificate and the private key (PEM)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorCode::kIo, "cannot read the TLS " + std::string(what) + " file " + path +
                                    ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad() || text.str().empty()) {
    return Fail(ErrorCode::kIo, "cannot read the TLS " + std::string(what) + " file " + path +
                                    ": it is empty or not a regular file");
  }
  return text.str();
}

/// Never asks for a passphrase (OpenSSL's default callback would prompt on the
/// terminal): an encrypted key fails to load instead.
int NoPassphrase(char*, int, int, void*) {
  return -1;
}

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};

base::Result<std::unique_ptr<EVP_PKEY, PkeyFree>> ParsePrivateKey(const std::string& pem,
                                                                  const std::string& path) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  GPUNET_CHECK(bio != nullptr);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    return Fail(ErrorCode::kInvalidArgument,
                "the TLS private key file " + path + " holds no usable PEM private key (" +
                    TakeOpenSslError() + "); give the certificate's key, PEM, not encrypted");
  }
  return key;
}

}  // namespace

base::Result<std::unique_ptr<ssl::context>> MakeTlsContext(const TlsOptions& files) {
  auto certificate = ReadFile(files.certificate_file, "certificate");
  if (!certificate) return std::unexpected(certificate.error());
  base::Result<std::string> private_key = files.private_key_pem;
  if (files.private_key_pem.empty()) private_key = ReadFile(files.private_key_file, "private key");
  if (!private_key) return std::unexpected(private_key.error());

  ERR_clear_error();
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use);
  // The options above name the old versions; the floor below holds for any new one.
  GPUNET_CHECK(SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) == 1);
  // No renegotiation a client asks for: OpenSSL 3's default, kept so on any OpenSSL.
  SSL_CTX_set_options(context->native_handle(), SSL_OP_NO_RENEGOTIATION);

  boost::system::error_code ec;
  context->use_certificate_chain(boost::asio::buffer(*certificate), ec);
  if (ec) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                "the TLS certificate file " + files.certificate_file +
                    " holds no usable PEM certificate (" + ec.message() +
                    "); give the server's certificate in PEM, then any intermediates");
  }
  auto key = ParsePrivateKey(*private_key, files.private_key_file);
  if (!key) return std::unexpected(key.error());
  // With the certificate loaded, OpenSSL refuses a key that is not its own.
  if (SSL_CTX_use_PrivateKey(context->native_handle(), key->get()) != 1 ||
      SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                "the TLS private key in " + files.private_key_file +
                    " does not match the certificate in " + files.certificate_file + " (" +
                    TakeOpenSslError() + "); give the key the certificate was made for");
  }
  return context;
}

}  // namespace gpunet::server
