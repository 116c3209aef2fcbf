// gpunet-write-corpus: writes the generated fuzz seeds and, on request, the golden
// encoding vectors, from the same values the unit tests use. `make corpus` runs it
// on the source tree after an intended change to an encoding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/check.h"
#include "base/file_util.h"
#include "codec/encoding.h"
#include "crypto/hash.h"
#include "unit/codec/golden_vectors.h"
#include "unit/codec/random_values.h"
#include "unit/market/message_examples.h"

namespace gpunet::codec {
namespace {

namespace fs = std::filesystem;
using base::Bytes;
using testing::Examples;

constexpr std::string_view kUsage =
    R"(usage: gpunet-write-corpus [--check] [--vectors FILE] CORPUS_DIR
       gpunet-write-corpus --help

Writes the generated seeds of the fuzz targets under CORPUS_DIR (in the source
tree: tests/fuzz/corpus), one folder per target:
  fuzz_<type>/example            the fixed example of each codec type
                                 (Examples, tests/unit/codec/random_values.h)
  fuzz_<type>/random1, random2   seeded random values (RandomValues 1 and 2)
  fuzz_market_apply/seed_<n>     a step byte, then a tx body with two market
                                 messages (tests/unit/market/message_examples.h)
With --vectors FILE it also writes the golden encodings (in the source tree:
tests/vectors/encoding/vectors.txt) and prints their BLAKE2b-256, which
kVectorsDigest in tests/unit/codec/golden_test.cpp must name.

Files of these names are replaced; other files in CORPUS_DIR (the hand-written
seeds) are left alone. `make corpus` runs this on the source tree.

--check writes nothing: it lists the files that are missing or hold other bytes
than it would write (the corpus_current test runs it on the source tree).

Exit status: 0 written (or all current), 1 a file could not be written or read,
or --check found files that differ, 2 bad arguments.
)";

struct Args {
  std::string corpus_dir;
  std::string vectors_file;  // empty: no vectors
  bool check = false;
};

// Writes the files, creating their folders, or under --check compares each with the
// file there and lists those that differ. The first error (a file that cannot be
// written or read) is kept and later files are skipped, so the error names it.
class Writer {
 public:
  Writer(fs::path corpus_dir, bool check) : m_corpus_dir(std::move(corpus_dir)), m_check(check) {}

  /// The seed `name` of fuzz target `target`.
  void Write(const std::string& target, const std::string& name, const Bytes& bytes) {
    WriteFile(m_corpus_dir / target / name,
              std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

  void WriteFile(const fs::path& path, std::string_view text) {
    if (!m_error.empty()) return;
    ++m_files;
    if (m_check) {
      Compare(path, text);
      return;
    }
    std::error_code ec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    if (ec) {
      m_error = "cannot create " + path.parent_path().string() + ": " + ec.message();
      return;
    }
    auto written = base::WriteFileAtomic(path.string(), text, {.mode = 0644});
    if (!written) m_error = written.error().ToString();
  }

  const std::string& Error() const { return m_error; }
  size_t Files() const { return m_files; }
  /// Under --check: the files that are missing or hold other bytes.
  const std::vector<std::string>& Stale() const { return m_stale; }

 private:
  void Compare(const fs::path& path, std::string_view text) {
    // One byte over the expected size is enough to know that it differs.
    auto there = base::ReadFileNoFollow(path.string(), text.size() + 1);
    if (!there && there.error().code != base::ErrorCode::kNotFound &&
        there.error().code != base::ErrorCode::kLimitExceeded) {
      m_error = there.error().ToString();
      return;
    }
    if (!there || *there != text) m_stale.push_back(path.string());
  }

  fs::path m_corpus_dir;
  bool m_check;
  std::string m_error;
  size_t m_files = 0;
  std::vector<std::string> m_stale;
};

// The fixed example of each codec type, and two seeded random values of the types
// that have a generator: the bytes the fuzz targets start from.
void WriteCodecSeeds(Writer& w) {
  w.Write("fuzz_tx", "example", EncodeTx(Examples::TxExample()));
  w.Write("fuzz_tx_body", "example", EncodeTxBody(Examples::TxBodyExample()));
  w.Write("fuzz_account", "example", EncodeAccount(Examples::AccountExample()));
  w.Write("fuzz_validator_set", "example", EncodeValidatorSet(Examples::ValidatorSetExample()));
  w.Write("fuzz_vote", "example", EncodeVote(Examples::VoteExample()));
  w.Write("fuzz_commit", "example", EncodeCommit(Examples::CommitExample()));
  w.Write("fuzz_proposal", "example", EncodeProposal(Examples::ProposalExample()));
  w.Write("fuzz_evidence", "example", EncodeEvidence(Examples::EvidenceExample()));
  w.Write("fuzz_block_header", "example", EncodeBlockHeader(Examples::HeaderExample()));
  w.Write("fuzz_block", "example", EncodeBlock(Examples::BlockExample()));
  w.Write("fuzz_receipt", "example", EncodeReceipt(Examples::ReceiptExample()));
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    testing::RandomValues rv(seed);
    std::string n = "random" + std::to_string(seed);
    w.Write("fuzz_tx", n, EncodeTx(rv.RandomTx()));
    w.Write("fuzz_tx_body", n, EncodeTxBody(rv.RandomTxBody()));
    w.Write("fuzz_validator_set", n, EncodeValidatorSet(rv.RandomValidatorSet()));
    w.Write("fuzz_commit", n, EncodeCommit(rv.RandomCommit()));
    w.Write("fuzz_proposal", n, EncodeProposal(rv.RandomProposal()));
    w.Write("fuzz_receipt", n, EncodeReceipt(rv.RandomReceipt()));
  }
}

// Seeds for tests/fuzz/fuzz_market_apply: a step byte, then a tx body holding one
// market message and a second one chosen by a fixed stride, so every message is
// seen first and in company.
void WriteMarketSeeds(Writer& w) {
  auto msgs = testing::AllMarketMessages();
  GPUNET_CHECK(!msgs.empty());
  for (size_t i = 0; i < msgs.size(); ++i) {
    Tx tx = testing::TxWith(msgs[i]);
    tx.body.msgs.push_back(msgs[(i * 7 + 3) % msgs.size()]);
    Bytes bytes{static_cast<uint8_t>(i * 37)};
    auto body = EncodeTxBody(tx.body);
    bytes.insert(bytes.end(), body.begin(), body.end());
    w.Write("fuzz_market_apply", "seed_" + std::to_string(i), bytes);
  }
}

// Exit status 2 with the reason and the usage line; 0 with the whole usage for --help.
[[noreturn]] void Usage(const std::string& why) {
  if (why.empty()) {
    std::fputs(kUsage.data(), stdout);
    std::exit(0);
  }
  std::fprintf(
      stderr,
      "gpunet-write-corpus: %s\n"
      "usage: gpunet-write-corpus [--check] [--vectors FILE] CORPUS_DIR (--help tells more)\n",
      why.c_str());
  std::exit(2);
}

Args Parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") Usage("");
    if (a == "--check") {
      args.check = true;
    } else if (a == "--vectors") {
      if (i + 1 >= argc) Usage("--vectors needs a FILE");
      args.vectors_file = argv[++i];
    } else if (a.starts_with("-")) {
      Usage("unknown option " + std::string(a));
    } else if (args.corpus_dir.empty()) {
      args.corpus_dir = a;
    } else {
      Usage("one CORPUS_DIR only (also got " + std::string(a) + ")");
    }
  }
  if (args.corpus_dir.empty()) Usage("CORPUS_DIR is missing");
  return args;
}

int Run(const Args& args) {
  Writer w(args.corpus_dir, args.check);
  WriteCodecSeeds(w);
  WriteMarketSeeds(w);
  const size_t seeds = w.Files();
  std::string vectors;
  if (!args.vectors_file.empty()) {
    vectors = testing::RenderGoldenVectors(testing::GoldenVectors());
    w.WriteFile(args.vectors_file, vectors);
  }
  if (!w.Error().empty()) {
    std::fprintf(stderr, "gpunet-write-corpus: %s\n", w.Error().c_str());
    return 1;
  }
  if (args.check) {
    for (const auto& path : w.Stale()) std::printf("differs: %s\n", path.c_str());
    if (!w.Stale().empty()) {
      std::printf(
          "%zu of %zu files differ from what gpunet-write-corpus writes: after an "
          "intended encoding change run `make corpus` and commit the result\n",
          w.Stale().size(), w.Files());
      return 1;
    }
    std::printf("all %zu files are current\n", w.Files());
    return 0;
  }
  std::printf("wrote %zu seed files under %s\n", seeds, args.corpus_dir.c_str());
  if (!vectors.empty())
    std::printf("wrote %s, BLAKE2b-256 %s (kVectorsDigest in tests/unit/codec/golden_test.cpp)\n",
                args.vectors_file.c_str(),
                base::ToHex(crypto::Blake2b256(base::AsBytes(vectors))).c_str());
  return 0;
}

}  // namespace
}  // namespace gpunet::codec

int main(int argc, char** argv) {
  return gpunet::codec::Run(gpunet::codec::Parse(argc, argv));
}
