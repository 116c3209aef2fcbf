// Golden encodings (tests/vectors/encoding/vectors.txt): the fixed examples of
// testing::Examples encode to exactly the checked-in bytes, the checked-in bytes
// decode back to the examples, and the file itself matches a digest kept here, so
// neither the encoding nor the vectors can change without a visible edit to this
// test. Regenerate after an intended protocol change with
//   GPUNET_UPDATE_GOLDENS=1 GPUNET_SOURCE_DIR=$PWD <build>/tests/unit/codec/codec_test
//     --gtest_filter='Golden*'   (one command line)
// and put the printed digest into kVectorsDigest.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/merkle.h"
#include "crypto/hash.h"
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

// name -> hex, in file order.
std::vector<std::pair<std::string, std::string>> Expected() {
  Tx tx = Examples::TxExample();
  Block block = Examples::BlockExample();
  Receipt receipt = Examples::ReceiptExample();
  std::vector<Receipt> receipts = {receipt};
  std::vector<Bytes> three = {Bytes{'a'}, Bytes{'b'}, Bytes{'c'}};
  return {
      {"tx_body", base::ToHex(EncodeTxBody(tx.body))},
      {"tx", base::ToHex(EncodeTx(tx))},
      {"tx_hash", base::ToHex(TxHash(tx))},
      {"account", base::ToHex(EncodeAccount(Examples::AccountExample()))},
      {"validator_set", base::ToHex(EncodeValidatorSet(Examples::ValidatorSetExample()))},
      {"validator_set_hash", base::ToHex(ValidatorSetHash(Examples::ValidatorSetExample()))},
      {"vote", base::ToHex(EncodeVote(Examples::VoteExample()))},
      {"vote_sign_bytes", base::ToHex(VoteSignBytes(Examples::VoteExample()))},
      {"commit", base::ToHex(EncodeCommit(Examples::CommitExample()))},
      {"commit_hash", base::ToHex(CommitHash(Examples::CommitExample()))},
      {"proposal", base::ToHex(EncodeProposal(Examples::ProposalExample()))},
      {"evidence", base::ToHex(EncodeEvidence(Examples::EvidenceExample()))},
      {"block_header", base::ToHex(EncodeBlockHeader(Examples::HeaderExample()))},
      {"block_hash", base::ToHex(BlockHash(Examples::HeaderExample()))},
      {"block", base::ToHex(EncodeBlock(block))},
      {"block_tx_root", base::ToHex(block.header.tx_root)},
      {"block_evidence_hash", base::ToHex(block.header.evidence_hash)},
      {"receipt", base::ToHex(EncodeReceipt(receipt))},
      {"receipts_root", base::ToHex(ReceiptsRoot(receipts))},
      {"merkle_root_empty", base::ToHex(MerkleRoot(std::vector<Bytes>{}))},
      {"merkle_root_abc", base::ToHex(MerkleRoot(three))},
  };
}

std::string Render(const std::vector<std::pair<std::string, std::string>>& vectors) {
  std::string out =
      "# Golden canonical encodings (docs/encoding.md) of the fixed examples in\n"
      "# tests/unit/codec/random_values.h (Examples). Format: <name> <lower-case hex>.\n"
      "# Never edit by hand; see tests/unit/codec/golden_test.cpp.\n";
  for (const auto& [name, hex] : vectors) out += name + " " + hex + "\n";
  return out;
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
  if (std::getenv("GPUNET_UPDATE_GOLDENS")) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << Render(Expected());
    std::string text = ReadFile(path);
    FAIL() << "rewrote " << path << "; if the change is intended set kVectorsDigest to "
           << base::ToHex(crypto::Blake2b256(base::AsBytes(text)));
  }
  std::string text = ReadFile(path);
  ASSERT_FALSE(text.empty()) << "missing " << path;
  EXPECT_EQ(base::ToHex(crypto::Blake2b256(base::AsBytes(text))), kVectorsDigest)
      << path << " changed: golden vectors never change silently (see this file's header)";
}

TEST(Golden, ExamplesEncodeToTheCheckedInBytes) {
  auto path = VectorsPath();
  ASSERT_FALSE(path.empty()) << "GPUNET_SOURCE_DIR is not set";
  auto file = Parse(ReadFile(path));
  auto expected = Expected();
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

// Writes seed corpora for the fuzz targets (tests/fuzz/corpus/fuzz_<type>/) when
// GPUNET_WRITE_FUZZ_CORPUS names the corpus root; otherwise skipped.
TEST(Golden, WriteFuzzCorpusOnRequest) {
  const char* root = std::getenv("GPUNET_WRITE_FUZZ_CORPUS");
  if (!root) GTEST_SKIP() << "set GPUNET_WRITE_FUZZ_CORPUS=<dir> to write seed corpora";
  auto write = [&](const std::string& target, const std::string& name, const Bytes& bytes) {
    auto dir = std::filesystem::path(root) / target;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  };
  write("fuzz_tx", "example", EncodeTx(Examples::TxExample()));
  write("fuzz_tx_body", "example", EncodeTxBody(Examples::TxBodyExample()));
  write("fuzz_account", "example", EncodeAccount(Examples::AccountExample()));
  write("fuzz_validator_set", "example", EncodeValidatorSet(Examples::ValidatorSetExample()));
  write("fuzz_vote", "example", EncodeVote(Examples::VoteExample()));
  write("fuzz_commit", "example", EncodeCommit(Examples::CommitExample()));
  write("fuzz_proposal", "example", EncodeProposal(Examples::ProposalExample()));
  write("fuzz_evidence", "example", EncodeEvidence(Examples::EvidenceExample()));
  write("fuzz_block_header", "example", EncodeBlockHeader(Examples::HeaderExample()));
  write("fuzz_block", "example", EncodeBlock(Examples::BlockExample()));
  write("fuzz_receipt", "example", EncodeReceipt(Examples::ReceiptExample()));
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    testing::RandomValues rv(seed);
    std::string n = "random" + std::to_string(seed);
    write("fuzz_tx", n, EncodeTx(rv.RandomTx()));
    write("fuzz_tx_body", n, EncodeTxBody(rv.RandomTxBody()));
    write("fuzz_validator_set", n, EncodeValidatorSet(rv.RandomValidatorSet()));
    write("fuzz_commit", n, EncodeCommit(rv.RandomCommit()));
    write("fuzz_proposal", n, EncodeProposal(rv.RandomProposal()));
    write("fuzz_receipt", n, EncodeReceipt(rv.RandomReceipt()));
  }
}

}  // namespace
}  // namespace gpunet::codec
