#include "crypto/keyfile.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/file_util.h"
#include "crypto/sodium_init.h"

namespace gpunet::crypto {
namespace {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;

constexpr std::string_view kKind = "gpunet-ed25519-key";
constexpr std::string_view kKdfAlgorithm = "argon2id13";
constexpr std::string_view kCipherAlgorithm = "xchacha20poly1305-ietf";
constexpr std::string_view kWrongPassphrase = "wrong passphrase (or the key file was modified)";
// Bounds on the costs a file may ask for: a hostile file must not make us
// allocate gigabytes or spin for minutes before failing.
constexpr uint64_t kOpsLimitMax = 10;
constexpr uint64_t kMemLimitMax = crypto_pwhash_MEMLIMIT_SENSITIVE;

constexpr size_t kSaltBytes = crypto_pwhash_SALTBYTES;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kKeyBytes = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kSaltBytes == 16 && kNonceBytes == 24 && kKeyBytes == 32 && kTagBytes == 16);

// Everything a key file carries, parsed and size-checked.
struct Parsed {
  KeyFileInfo info;
  base::FixedBytes<kSaltBytes> salt;
  base::FixedBytes<kNonceBytes> nonce;
  base::Bytes ciphertext;  // sealed seed + tag
};

// Wipes a buffer when it goes out of scope, on every return path.
template <class T>
struct Wiper {
  T& buf;
  ~Wiper() { sodium_memzero(buf.data(), buf.size()); }
};

std::string Where(std::string_view where) {
  return where.empty() ? std::string("key file") : "key file " + std::string(where);
}

base::Error Corrupt(std::string_view where, std::string_view what) {
  return base::Error{ErrorCode::kCorrupt,
                     Where(where) + " is corrupt: " + std::string(what) +
                         " (restore it from your mnemonic backup with `gpunet keys import`)"};
}

void AppendField(base::Bytes& out, std::string_view s) {
  GPUNET_CHECK(s.size() < 256);
  out.push_back(static_cast<uint8_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

// The associated data: every header field in a fixed, length-prefixed order.
base::Bytes AssociatedData(const Parsed& p) {
  base::Bytes ad;
  AppendField(ad, kKind);
  base::AppendU32BE(ad, p.info.version);
  ad.insert(ad.end(), p.info.public_key.begin(), p.info.public_key.end());
  AppendField(ad, kKdfAlgorithm);
  base::AppendU64BE(ad, p.info.kdf.opslimit);
  base::AppendU64BE(ad, p.info.kdf.memlimit_bytes);
  ad.insert(ad.end(), p.salt.begin(), p.salt.end());
  AppendField(ad, kCipherAlgorithm);
  ad.insert(ad.end(), p.nonce.begin(), p.nonce.end());
  return ad;
}

// Derives the sealing key. Fails only when the OS cannot give argon2id its memory.
base::Status DeriveKey(std::array<uint8_t, kKeyBytes>& key, std::string_view passphrase,
                       const base::FixedBytes<kSaltBytes>& salt, const KdfParams& kdf) {
  EnsureSodium();
  if (crypto_pwhash(key.data(), key.size(), passphrase.data(), passphrase.size(), salt.data.data(),
                    kdf.opslimit, static_cast<size_t>(kdf.memlimit_bytes),
                    crypto_pwhash_ALG_ARGON2ID13) != 0)
    return Fail(ErrorCode::kIo,
                "argon2id could not allocate " + std::to_string(kdf.memlimit_bytes >> 20) + " MiB");
  return base::Ok();
}

template <size_t N>
base::Result<base::FixedBytes<N>> HexField(const json& obj, const char* field,
                                           std::string_view where) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_string())
    return std::unexpected(Corrupt(where, std::string("missing string field \"") + field + "\""));
  auto v = base::FixedFromHex<N>(it->get_ref<const std::string&>());
  if (!v)
    return std::unexpected(
        Corrupt(where, std::string("field \"") + field + "\": " + v.error().message));
  return *v;
}

base::Result<uint64_t> UintField(const json& obj, const char* field, std::string_view where) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_number_unsigned())
    return std::unexpected(
        Corrupt(where, std::string("missing unsigned integer field \"") + field + "\""));
  return it->get<uint64_t>();
}

base::Result<std::string> StringField(const json& obj, const char* field, std::string_view where) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_string())
    return std::unexpected(Corrupt(where, std::string("missing string field \"") + field + "\""));
  return it->get<std::string>();
}

base::Result<const json*> ObjectField(const json& obj, const char* field, std::string_view where) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_object())
    return std::unexpected(Corrupt(where, std::string("missing object field \"") + field + "\""));
  return &*it;
}

base::Result<Parsed> Parse(std::string_view text, std::string_view where) {
  if (text.size() > kKeyFileBytesMax)
    return std::unexpected(
        Corrupt(where, "larger than " + std::to_string(kKeyFileBytesMax) + " bytes"));
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::unexpected(Corrupt(where, "not valid JSON (truncated?)"));
  if (!doc.is_object()) return std::unexpected(Corrupt(where, "not a JSON object"));
  Parsed p;
  auto version = UintField(doc, "version", where);
  if (!version) return std::unexpected(version.error());
  if (*version != kKeyFileVersion)
    return std::unexpected(base::Error{
        ErrorCode::kCorrupt, Where(where) + " has format version " + std::to_string(*version) +
                                 "; this gpunet reads version " + std::to_string(kKeyFileVersion) +
                                 " only (a newer gpunet may read it)"});
  p.info.version = static_cast<uint32_t>(*version);
  auto kind = StringField(doc, "kind", where);
  if (!kind) return std::unexpected(kind.error());
  if (*kind != kKind)
    return std::unexpected(
        Corrupt(where, "kind is \"" + *kind + "\", expected \"" + std::string(kKind) + "\""));
  auto pk = HexField<32>(doc, "public_key", where);
  if (!pk) return std::unexpected(pk.error());
  p.info.public_key = *pk;
  p.info.address = AddressOf(p.info.public_key);
  auto address = StringField(doc, "address", where);
  if (!address) return std::unexpected(address.error());
  if (*address != AddressToString(p.info.address))
    return std::unexpected(Corrupt(where, "address does not belong to the public key"));

  auto kdf = ObjectField(doc, "kdf", where);
  if (!kdf) return std::unexpected(kdf.error());
  auto kdf_alg = StringField(**kdf, "algorithm", where);
  if (!kdf_alg) return std::unexpected(kdf_alg.error());
  if (*kdf_alg != kKdfAlgorithm)
    return std::unexpected(Corrupt(where, "unknown key derivation \"" + *kdf_alg + "\""));
  auto ops = UintField(**kdf, "opslimit", where);
  if (!ops) return std::unexpected(ops.error());
  auto mem = UintField(**kdf, "memlimit_bytes", where);
  if (!mem) return std::unexpected(mem.error());
  if (*ops < crypto_pwhash_OPSLIMIT_MIN || *ops > kOpsLimitMax)
    return std::unexpected(
        Corrupt(where, "argon2id opslimit " + std::to_string(*ops) + " out of range"));
  if (*mem < crypto_pwhash_MEMLIMIT_MIN || *mem > kMemLimitMax)
    return std::unexpected(
        Corrupt(where, "argon2id memlimit " + std::to_string(*mem) + " out of range"));
  p.info.kdf = KdfParams{*ops, *mem};
  auto salt = HexField<kSaltBytes>(**kdf, "salt", where);
  if (!salt) return std::unexpected(salt.error());
  p.salt = *salt;

  auto cipher = ObjectField(doc, "cipher", where);
  if (!cipher) return std::unexpected(cipher.error());
  auto cipher_alg = StringField(**cipher, "algorithm", where);
  if (!cipher_alg) return std::unexpected(cipher_alg.error());
  if (*cipher_alg != kCipherAlgorithm)
    return std::unexpected(Corrupt(where, "unknown cipher \"" + *cipher_alg + "\""));
  auto nonce = HexField<kNonceBytes>(**cipher, "nonce", where);
  if (!nonce) return std::unexpected(nonce.error());
  p.nonce = *nonce;
  auto sealed = HexField<Seed::kSize + kTagBytes>(doc, "ciphertext", where);
  if (!sealed) return std::unexpected(sealed.error());
  p.ciphertext.assign(sealed->begin(), sealed->end());
  return p;
}

}  // namespace

KdfParams KdfParams::Interactive() {
  return KdfParams{crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

base::Result<std::string> EncryptKeyFile(const Seed& seed, std::string_view passphrase,
                                         const KdfParams& kdf) {
  GPUNET_CHECK(!passphrase.empty());
  GPUNET_CHECK(kdf.opslimit >= crypto_pwhash_OPSLIMIT_MIN && kdf.opslimit <= kOpsLimitMax);
  GPUNET_CHECK(kdf.memlimit_bytes >= crypto_pwhash_MEMLIMIT_MIN &&
               kdf.memlimit_bytes <= kMemLimitMax);
  EnsureSodium();
  Parsed p;
  p.info.version = kKeyFileVersion;
  p.info.public_key = KeyPair::FromSeed(seed).Public();
  p.info.address = AddressOf(p.info.public_key);
  p.info.kdf = kdf;
  randombytes_buf(p.salt.data.data(), p.salt.kSize);
  randombytes_buf(p.nonce.data.data(), p.nonce.kSize);

  std::array<uint8_t, kKeyBytes> key{};
  Wiper<std::array<uint8_t, kKeyBytes>> wipe_key{key};
  GPUNET_TRY(DeriveKey(key, passphrase, p.salt, kdf));
  base::Bytes ad = AssociatedData(p);
  p.ciphertext.resize(Seed::kSize + kTagBytes);
  unsigned long long sealed_len = 0;
  int rc = crypto_aead_xchacha20poly1305_ietf_encrypt(
      p.ciphertext.data(), &sealed_len, seed.data.data(), seed.kSize, ad.data(), ad.size(), nullptr,
      p.nonce.data.data(), key.data());
  GPUNET_CHECK(rc == 0 && sealed_len == p.ciphertext.size());

  json doc = {
      {"version", p.info.version},
      {"kind", kKind},
      {"public_key", base::ToHex(p.info.public_key)},
      {"address", AddressToString(p.info.address)},
      {"kdf",
       {{"algorithm", kKdfAlgorithm},
        {"opslimit", kdf.opslimit},
        {"memlimit_bytes", kdf.memlimit_bytes},
        {"salt", base::ToHex(p.salt)}}},
      {"cipher", {{"algorithm", kCipherAlgorithm}, {"nonce", base::ToHex(p.nonce)}}},
      {"ciphertext", base::ToHex(p.ciphertext)},
  };
  return doc.dump(2) + "\n";
}

base::Result<KeyFileInfo> ParseKeyFile(std::string_view text, std::string_view where) {
  auto p = Parse(text, where);
  if (!p) return std::unexpected(p.error());
  return p->info;
}

base::Result<Seed> DecryptKeyFile(std::string_view text, std::string_view passphrase,
                                  std::string_view where) {
  auto p = Parse(text, where);
  if (!p) return std::unexpected(p.error());
  std::array<uint8_t, kKeyBytes> key{};
  Wiper<std::array<uint8_t, kKeyBytes>> wipe_key{key};
  GPUNET_TRY(DeriveKey(key, passphrase, p->salt, p->info.kdf));
  base::Bytes ad = AssociatedData(*p);
  Seed seed;
  unsigned long long opened_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          seed.data.data(), &opened_len, nullptr, p->ciphertext.data(), p->ciphertext.size(),
          ad.data(), ad.size(), p->nonce.data.data(), key.data()) != 0) {
    sodium_memzero(seed.data.data(), seed.kSize);
    return Fail(ErrorCode::kWrongPassphrase, std::string(kWrongPassphrase));
  }
  GPUNET_CHECK(opened_len == Seed::kSize);
  return seed;
}

base::Result<std::string> ReadKeyFileText(const std::string& path) {
  auto text = base::ReadFileNoFollow(path, kKeyFileBytesMax);
  if (text) return text;
  switch (text.error().code) {
    case ErrorCode::kNotFound:
      return Fail(ErrorCode::kNotFound, "no key file " + path);
    case ErrorCode::kLimitExceeded:
      return std::unexpected(
          Corrupt(path, "larger than " + std::to_string(kKeyFileBytesMax) + " bytes"));
    case ErrorCode::kCorrupt:
      return Fail(ErrorCode::kCorrupt, "key file " + text.error().message);
    default:
      return std::unexpected(text.error());
  }
}

base::Result<KeyFileInfo> ReadKeyFileInfo(const std::string& path) {
  auto text = ReadKeyFileText(path);
  if (!text) return std::unexpected(text.error());
  return ParseKeyFile(*text, path);
}

base::Result<KeyPair> LoadKeyFile(const std::string& path, std::string_view passphrase) {
  auto text = ReadKeyFileText(path);
  if (!text) return std::unexpected(text.error());
  auto info = ParseKeyFile(*text, path);
  if (!info) return std::unexpected(info.error());
  auto seed = DecryptKeyFile(*text, passphrase, path);
  if (!seed) return std::unexpected(seed.error());
  KeyPair kp = KeyPair::FromSeed(*seed);
  sodium_memzero(seed->data.data(), seed->kSize);
  // The public key is in the associated data, so this cannot differ unless the
  // file was sealed by something that is not gpunet.
  if (kp.Public() != info->public_key)
    return std::unexpected(Corrupt(path, "the sealed seed does not match the public key"));
  return kp;
}

base::Status WriteKeyFile(const std::string& path, const Seed& seed, std::string_view passphrase,
                          const KdfParams& kdf) {
  if (passphrase.empty())
    return Fail(ErrorCode::kInvalidArgument, "the passphrase must not be empty");
  auto sealed = EncryptKeyFile(seed, passphrase, kdf);
  if (!sealed) return std::unexpected(sealed.error());
  // Never replaces an existing file (link(), not rename()): an existing key is never lost.
  return base::WriteFileAtomic(path, *sealed, {.mode = 0600, .if_exists = base::IfExists::kRefuse});
}

}  // namespace gpunet::crypto
