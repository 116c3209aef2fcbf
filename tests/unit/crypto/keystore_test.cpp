// The keystore directory: names, add/import/list/show/export/delete, modes,
// and how it behaves around broken or foreign files.
#include "crypto/keystore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "crypto/mnemonic.h"
#include "util/temp_dir.h"

namespace gpunet::crypto {
namespace {

const KdfParams kFast{1, 1 << 20};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST(Keystore, NameRules) {
  const std::string longest(kKeyNameBytesMax, 'a');
  const std::string too_long(kKeyNameBytesMax + 1, 'a');
  for (std::string ok : {std::string("a"), std::string("alice"), std::string("validator-0"),
                         std::string("my_key_2"), longest})
    EXPECT_TRUE(ValidateKeyName(ok).has_value()) << ok;
  for (std::string bad : {std::string(""), std::string("Alice"), std::string("a b"),
                          std::string("../x"), std::string("a/b"), std::string(".hidden"),
                          std::string("k.json"), std::string("\xc3\xa9"), too_long}) {
    auto r = ValidateKeyName(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message.find("a-z, 0-9"), std::string::npos);
  }
}

TEST(Keystore, AddListShowLoadExportDelete) {
  testing::TempDir home;
  Keystore ks(home.Path() + "/keys", kFast);
  auto added = ks.Add("alice", "pw-a");
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(ModeOf(ks.Dir()), 0700u);
  EXPECT_EQ(ModeOf(added->entry.path), 0600u);
  EXPECT_EQ(added->entry.address, AddressOf(added->entry.public_key));
  // The mnemonic shown once restores the same key.
  EXPECT_EQ(KeyPair::FromSeed(MnemonicToSeed(added->mnemonic).value()).Public(),
            added->entry.public_key);

  ASSERT_TRUE(ks.Add("bob", "pw-b").has_value());
  auto list = ks.List();
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "alice");
  EXPECT_EQ((*list)[1].name, "bob");
  EXPECT_FALSE((*list)[0].problem.has_value());
  EXPECT_EQ((*list)[0].public_key, added->entry.public_key);

  auto shown = ks.Show("alice");
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(shown->address, added->entry.address);

  auto kp = ks.Load("alice", "pw-a");
  ASSERT_TRUE(kp.has_value()) << kp.error().message;
  EXPECT_EQ(kp->Public(), added->entry.public_key);
  EXPECT_EQ(ks.ExportMnemonic("alice", "pw-a").value(), added->mnemonic);
  EXPECT_EQ(ks.ExportSeedHex("alice", "pw-a").value(), base::ToHex(kp->SeedBytes()));

  auto wrong = ks.Load("alice", "pw-b");
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, base::ErrorCode::kWrongPassphrase);
  EXPECT_NE(wrong.error().message.find("wrong passphrase (or the key file was modified)"),
            std::string::npos);
  EXPECT_FALSE(ks.ExportMnemonic("alice", "nope").has_value());

  ASSERT_TRUE(ks.Delete("alice").has_value());
  EXPECT_EQ(ks.Show("alice").error().code, base::ErrorCode::kNotFound);
  EXPECT_EQ(ks.Delete("alice").error().code, base::ErrorCode::kNotFound);
  EXPECT_EQ(ks.List().value().size(), 1u);
}

TEST(Keystore, DuplicateNameRefused) {
  testing::TempDir home;
  Keystore ks(home.Path() + "/keys", kFast);
  auto first = ks.Add("k", "pw");
  ASSERT_TRUE(first.has_value());
  auto second = ks.Add("k", "pw");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_NE(second.error().message.find("already exists"), std::string::npos);
  auto imported = ks.ImportSeedHex("k", std::string(64, '1'), "pw");
  EXPECT_EQ(imported.error().code, base::ErrorCode::kAlreadyExists);
  // The original is untouched.
  EXPECT_EQ(ks.Load("k", "pw").value().Public(), first->entry.public_key);
}

TEST(Keystore, ImportRestoresTheSameAddress) {
  testing::TempDir home;
  Keystore ks(home.Path() + "/keys", kFast);
  auto added = ks.Add("orig", "pw").value();
  auto from_words = ks.ImportMnemonic("restored", added.mnemonic, "other-pw");
  ASSERT_TRUE(from_words.has_value()) << from_words.error().message;
  EXPECT_EQ(from_words->address, added.entry.address);
  std::string hex = ks.ExportSeedHex("orig", "pw").value();
  auto from_hex = ks.ImportSeedHex("hexed", hex, "pw3");
  ASSERT_TRUE(from_hex.has_value());
  EXPECT_EQ(from_hex->address, added.entry.address);
  // RFC 8032 TEST 1 seed gives its published public key.
  auto rfc = ks.ImportSeedHex(
      "rfc", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "pw");
  ASSERT_TRUE(rfc.has_value());
  EXPECT_EQ(base::ToHex(rfc->public_key),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
}

TEST(Keystore, ImportRejections) {
  testing::TempDir home;
  Keystore ks(home.Path() + "/keys", kFast);
  EXPECT_EQ(ks.ImportSeedHex("a", "xyz", "pw").error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(ks.ImportSeedHex("a", std::string(62, '0'), "pw").error().code,
            base::ErrorCode::kInvalidArgument);
  auto r = ks.ImportMnemonic("a", "abandon abandon abandon", "pw");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("24 words"), std::string::npos);
  EXPECT_EQ(ks.ImportSeedHex("Bad Name", std::string(64, '0'), "pw").error().code,
            base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(ks.Add("a", "").error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_TRUE(ks.List().value().empty());  // nothing written by any of these
}

TEST(Keystore, MissingDirectoryIsAnEmptyList) {
  testing::TempDir home;
  Keystore ks(home.Path() + "/nothing-here/keys", kFast);
  auto list = ks.List();
  ASSERT_TRUE(list.has_value());
  EXPECT_TRUE(list->empty());
  EXPECT_EQ(ks.Show("x").error().code, base::ErrorCode::kNotFound);
  EXPECT_EQ(ks.Load("x", "pw").error().code, base::ErrorCode::kNotFound);
}

TEST(Keystore, CorruptFileListedWithProblemOthersStillShown) {
  testing::TempDir home;
  Keystore ks(home.Path() + "/keys", kFast);
  ASSERT_TRUE(ks.Add("good", "pw").has_value());
  ASSERT_TRUE(ks.Add("bad", "pw").has_value());
  std::ofstream(ks.PathOf("bad"), std::ios::trunc) << "{\"version\": 1, \"kind\": \"gpunet-ed";
  std::ofstream(ks.Dir() + "/README.txt") << "not a key";
  std::ofstream(ks.Dir() + "/Upper.json") << "{}";  // not a valid name: ignored
  auto list = ks.List();
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "bad");
  ASSERT_TRUE((*list)[0].problem.has_value());
  EXPECT_EQ((*list)[0].problem->code, base::ErrorCode::kCorrupt);
  EXPECT_FALSE((*list)[1].problem.has_value());
  auto r = ks.Load("bad", "pw");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find(ks.PathOf("bad")), std::string::npos);
}

TEST(Keystore, AtHomeUsesKeysSubdirectory) {
  testing::TempDir home;
  Keystore ks = Keystore::AtHome(home.Path() + "/h");
  EXPECT_EQ(ks.Dir(), home.Path() + "/h/keys");
  EXPECT_EQ(ks.PathOf("x"), home.Path() + "/h/keys/x.json");
}

}  // namespace
}  // namespace gpunet::crypto
