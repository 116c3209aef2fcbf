// Key files: the seal opens with the right passphrase only, every header field
// is authenticated, broken files are clean kCorrupt errors, files are 0600.
#include "crypto/keyfile.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::crypto {
namespace {

// Cheap argon2id costs so the suite stays fast; Interactive is tested once.
const KdfParams kFast{1, 1 << 20};

using gpunet::testing::FileText;
using gpunet::testing::TestSeed;

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

TEST(KeyFile, RoundTripAndHeader) {
  std::string text = EncryptKeyFile(TestSeed(1), "correct horse", kFast).value();
  auto info = ParseKeyFile(text, "mem");
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->version, kKeyFileVersion);
  EXPECT_EQ(info->public_key, KeyPair::FromSeed(TestSeed(1)).Public());
  EXPECT_EQ(info->address, AddressOf(info->public_key));
  EXPECT_EQ(info->kdf, kFast);
  auto seed = DecryptKeyFile(text, "correct horse", "mem");
  ASSERT_TRUE(seed.has_value()) << seed.error().message;
  EXPECT_EQ(*seed, TestSeed(1));
  // The seed is not in the clear anywhere in the file.
  EXPECT_EQ(text.find(base::ToHex(TestSeed(1))), std::string::npos);
}

TEST(KeyFile, InteractiveLimitsRecordedInFile) {
  std::string text = EncryptKeyFile(TestSeed(1), "pw").value();
  auto doc = nlohmann::json::parse(text);
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["kdf"]["algorithm"], "argon2id13");
  EXPECT_EQ(doc["kdf"]["opslimit"], 2);
  EXPECT_EQ(doc["kdf"]["memlimit_bytes"], 64u << 20);
  EXPECT_EQ(doc["cipher"]["algorithm"], "xchacha20poly1305-ietf");
  EXPECT_EQ(DecryptKeyFile(text, "pw", "mem").value(), TestSeed(1));
}

TEST(KeyFile, FreshSaltAndNonceEachTime) {
  std::string a = EncryptKeyFile(TestSeed(1), "pw", kFast).value();
  std::string b = EncryptKeyFile(TestSeed(1), "pw", kFast).value();
  EXPECT_NE(a, b);
}

TEST(KeyFile, WrongPassphrase) {
  std::string text = EncryptKeyFile(TestSeed(1), "right", kFast).value();
  for (std::string_view wrong : {"wrong", "Right", "right ", ""}) {
    auto r = DecryptKeyFile(text, wrong, "mem");
    ASSERT_FALSE(r.has_value()) << wrong;
    EXPECT_EQ(r.error().code, base::ErrorCode::kWrongPassphrase);
    EXPECT_EQ(r.error().message, "wrong passphrase (or the key file was modified)");
  }
}

TEST(KeyFile, EveryTamperedByteIsCaught) {
  // Flip one hex digit in each authenticated field: decryption must fail (or
  // the header must be rejected as corrupt), never yield a seed.
  std::string text = EncryptKeyFile(TestSeed(1), "pw", kFast).value();
  auto doc = nlohmann::json::parse(text);
  auto flip = [](std::string s) {
    s[s.size() / 2] = s[s.size() / 2] == '0' ? '1' : '0';
    return s;
  };
  std::vector<std::pair<std::string, nlohmann::json>> variants;
  auto v = doc;
  v["ciphertext"] = flip(v["ciphertext"]);
  variants.emplace_back("ciphertext", v);
  v = doc;
  v["kdf"]["salt"] = flip(v["kdf"]["salt"]);
  variants.emplace_back("salt", v);
  v = doc;
  v["cipher"]["nonce"] = flip(v["cipher"]["nonce"]);
  variants.emplace_back("nonce", v);
  v = doc;
  v["kdf"]["opslimit"] = 3;
  variants.emplace_back("opslimit", v);
  v = doc;
  v["kdf"]["memlimit_bytes"] = 2 << 20;
  variants.emplace_back("memlimit", v);
  // Someone swaps in another public key and matching address: the seal still fails.
  KeyPair other = KeyPair::Generate();
  v = doc;
  v["public_key"] = base::ToHex(other.Public());
  v["address"] = AddressToString(AddressOf(other.Public()));
  variants.emplace_back("public key", v);
  for (const auto& [what, tampered] : variants) {
    auto r = DecryptKeyFile(tampered.dump(), "pw", "mem");
    ASSERT_FALSE(r.has_value()) << what;
    EXPECT_EQ(r.error().code, base::ErrorCode::kWrongPassphrase) << what;
  }
  // An address that does not match the public key is caught without a passphrase.
  v = doc;
  v["address"] = AddressToString(AddressOf(other.Public()));
  auto r = ParseKeyFile(v.dump(), "mem");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
}

TEST(KeyFile, TamperedRawByteInFile) {
  std::string text = EncryptKeyFile(TestSeed(1), "pw", kFast).value();
  size_t pos = text.find("\"ciphertext\": \"") + 20;
  text[pos] = text[pos] == 'a' ? 'b' : 'a';
  auto r = DecryptKeyFile(text, "pw", "mem");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kWrongPassphrase);
}

TEST(KeyFile, TruncatedAtEveryLengthIsCorruptNotACrash) {
  std::string text = EncryptKeyFile(TestSeed(1), "pw", kFast).value();
  for (size_t n = 0; n < text.size() - 2; n += 7) {
    auto r = DecryptKeyFile(text.substr(0, n), "pw", "/x/k.json");
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt) << n;
    EXPECT_NE(r.error().message.find("/x/k.json"), std::string::npos) << r.error().message;
  }
}

TEST(KeyFile, MalformedFieldsAreCorrupt) {
  auto doc = nlohmann::json::parse(EncryptKeyFile(TestSeed(1), "pw", kFast).value());
  auto expect_corrupt = [](const nlohmann::json& j, std::string_view want) {
    auto r = ParseKeyFile(j.dump(), "k.json");
    ASSERT_FALSE(r.has_value()) << want;
    EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
    EXPECT_NE(r.error().message.find(want), std::string::npos) << r.error().message;
  };
  auto v = doc;
  v["version"] = 2;
  expect_corrupt(v, "has format version 2; this gpunet reads version 1");
  v = doc;
  v.erase("version");
  expect_corrupt(v, "\"version\"");
  v = doc;
  v["version"] = "1";
  expect_corrupt(v, "\"version\"");
  v = doc;
  v["kind"] = "ssh-key";
  expect_corrupt(v, "kind");
  v = doc;
  v["public_key"] = "abcd";
  expect_corrupt(v, "public_key");
  v = doc;
  v["kdf"]["algorithm"] = "scrypt";
  expect_corrupt(v, "scrypt");
  v = doc;
  v["kdf"]["memlimit_bytes"] = uint64_t{1} << 40;  // a hostile file must not make us allocate 1 TiB
  expect_corrupt(v, "memlimit");
  v = doc;
  v["kdf"]["opslimit"] = 1000000;
  expect_corrupt(v, "opslimit");
  v = doc;
  v["kdf"]["opslimit"] = -1;
  expect_corrupt(v, "opslimit");
  v = doc;
  v["cipher"] = "none";
  expect_corrupt(v, "cipher");
  v = doc;
  v["ciphertext"] = std::string(v["ciphertext"]).substr(2);
  expect_corrupt(v, "ciphertext");
  expect_corrupt(nlohmann::json::array(), "not a JSON object");
  auto r = ParseKeyFile("\x00\xff garbage", "k.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
  r = ParseKeyFile(std::string(kKeyFileBytesMax + 1, ' '), "k.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
}

TEST(KeyFile, WrittenFileIs0600AndNeverReplaced) {
  testing::TempDir dir;
  std::string path = dir.Path() + "/k.json";
  ::umask(0);  // even with a permissive umask
  ASSERT_TRUE(WriteKeyFile(path, TestSeed(1), "pw", kFast).has_value());
  ::umask(022);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string before = FileText(path);
  auto again = WriteKeyFile(path, KeyPair::Generate().SeedBytes(), "pw", kFast);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_EQ(FileText(path), before);
  // No temporary files left behind.
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.Path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  auto kp = LoadKeyFile(path, "pw");
  ASSERT_TRUE(kp.has_value()) << kp.error().message;
  EXPECT_EQ(kp->SeedBytes(), TestSeed(1));
  EXPECT_FALSE(WriteKeyFile(dir.Path() + "/e.json", TestSeed(1), "", kFast).has_value());
}

TEST(KeyFile, LoadErrorsOnDisk) {
  testing::TempDir dir;
  std::string path = dir.Path() + "/k.json";
  auto r = LoadKeyFile(path, "pw");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kNotFound);
  ASSERT_TRUE(WriteKeyFile(path, TestSeed(1), "pw", kFast).has_value());
  r = LoadKeyFile(path, "nope");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kWrongPassphrase);
  std::string text = FileText(path);
  WriteAll(path, text.substr(0, text.size() / 2));
  r = LoadKeyFile(path, "pw");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find(path), std::string::npos);
  WriteAll(path, "");
  EXPECT_EQ(LoadKeyFile(path, "pw").error().code, base::ErrorCode::kCorrupt);
  WriteAll(path, std::string(kKeyFileBytesMax + 10, '{'));
  EXPECT_EQ(LoadKeyFile(path, "pw").error().code, base::ErrorCode::kCorrupt);
  // A symlink is refused rather than followed.
  std::string real = dir.Path() + "/real.json";
  ASSERT_TRUE(WriteKeyFile(real, TestSeed(1), "pw", kFast).has_value());
  std::string link = dir.Path() + "/link.json";
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  EXPECT_EQ(LoadKeyFile(link, "pw").error().code, base::ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace gpunet::crypto
