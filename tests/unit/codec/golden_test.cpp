// Golden encodings (tests/vectors/encoding/vectors.txt): the fixed examples of
// testing::Examples encode to exactly the checked-in bytes, the checked-in bytes
// decode back to the examples, and the file itself matches a digest kept here, so
// neither the encoding nor the vectors can change without a visible edit to this
// test. Regenerate after an intended protocol change with `make corpus`
// (tools/write_corpus.cpp, which writes the file from golden_vectors.h) and put the
// digest it prints into kVectorsDigest.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/hash.h"
#include "unit/codec/golden_vectors.h"
#include "unit/codec/random_values.h"

namespace gpunet::codec {
namespace {

using base::Bytes;
using testing::Examples;

// BLAKE2b-256 of tests/vectors/encoding/vectors.txt.
constexpr const char* kVectorsDigest =
    "f990bb14c6adbab827b4e1674e7a6c46a42b6768e1ac05eea639521bd74cf3d8";

std::filesystem::path VectorsPath() {
  const char* root = std::getenv("GPUNET_SOURCE_DIR");
  return root ? std::filesystem::path(root) / "tests/vectors/encoding/vectors.txt"
              : std::filesystem::path();
}

std::map<std::string, std::string> Parse(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.find(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Golden, VectorsFileIsTheOneThisTestKnows) {
  auto path = VectorsPath();
  ASSERT_FALSE(path.empty()) << "GPUNET_SOURCE_DIR is not set: run through ctest, or set it";
  std::string text = ReadFile(path);
  ASSERT_FALSE(text.empty()) << "missing " << path;
  EXPECT_EQ(base::ToHex(crypto::Blake2b256(base::AsBytes(text))), kVectorsDigest)
      << path << " changed: golden vectors never change silently (see this file's header)";
}

TEST(Golden, ExamplesEncodeToTheCheckedInBytes) {
  auto path = VectorsPath();
  ASSERT_FALSE(path.empty()) << "GPUNET_SOURCE_DIR is not set";
  auto file = Parse(ReadFile(path));
  auto expected = testing::GoldenVectors();
  EXPECT_EQ(file.size(), expected.size());
  for (const auto& [name, hex] : expected) {
    auto it = file.find(name);
    ASSERT_NE(it, file.end()) << "vector " << name << " missing from " << path;
    EXPECT_EQ(it->second, hex) << "the encoding of " << name << " changed";
  }
}

template <class T, class Decode>
void ExpectDecodesTo(const std::map<std::string, std::string>& file, const std::string& name,
                     const T& want, Decode decode) {
  auto it = file.find(name);
  ASSERT_NE(it, file.end()) << name;
  auto bytes = base::FromHex(it->second);
  ASSERT_TRUE(bytes) << name;
  auto got = decode(*bytes);
  ASSERT_TRUE(got) << name << ": " << got.error().ToString();
  EXPECT_EQ(*got, want) << name;
}

TEST(Golden, CheckedInBytesDecodeToTheExamples) {
  auto path = VectorsPath();
  ASSERT_FALSE(path.empty()) << "GPUNET_SOURCE_DIR is not set";
  auto file = Parse(ReadFile(path));
  ExpectDecodesTo(file, "tx_body", Examples::TxExample().body, DecodeTxBody);
  ExpectDecodesTo(file, "tx", Examples::TxExample(), DecodeTx);
  ExpectDecodesTo(file, "account", Examples::AccountExample(), DecodeAccount);
  ExpectDecodesTo(file, "validator_set", Examples::ValidatorSetExample(), DecodeValidatorSet);
  ExpectDecodesTo(file, "vote", Examples::VoteExample(), DecodeVote);
  ExpectDecodesTo(file, "commit", Examples::CommitExample(), DecodeCommit);
  ExpectDecodesTo(file, "proposal", Examples::ProposalExample(), DecodeProposal);
  ExpectDecodesTo(file, "evidence", Examples::EvidenceExample(), DecodeEvidence);
  ExpectDecodesTo(file, "block_header", Examples::HeaderExample(), DecodeBlockHeader);
  ExpectDecodesTo(file, "block", Examples::BlockExample(), DecodeBlock);
  ExpectDecodesTo(file, "receipt", Examples::ReceiptExample(), DecodeReceipt);
  // The signed example really is signed by its sender.
  auto tx = DecodeTx(base::FromHex(file["tx"]).value());
  ASSERT_TRUE(tx);
  EXPECT_TRUE(VerifyTxSignature(*tx));
}

}  // namespace
}  // namespace gpunet::codec
