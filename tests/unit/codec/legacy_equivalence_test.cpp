// The codec's field lists (issue 16 item 5) changed how encoding.cpp is written, not
// what it does. This test holds the new code to the frozen old one
// (legacy_encoding.cpp) on every input we keep: every file of every folder of the
// fuzz corpus (tests/fuzz/corpus/), each as the type its folder names and as every
// other type, with every truncation and thousands of one-byte changes of the typed
// ones, and every golden vector (tests/vectors/encoding/). For each input both must
// accept or both refuse; a refusal must carry the same error code and the same
// message; an accepted value must be the same value and re-encode, by both encoders,
// to the input's bytes. The fuzz targets' own round-trip check
// (tests/fuzz/codec_round_trip.h) runs on every input too, and seeded random values
// of every type must encode to the same bytes and validate alike. Inputs at the
// codec's structural limits join them: every count and size limit at zero, at its
// maximum and one over, each whole-buffer limit, and an empty tx frame.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/check.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "fuzz/codec_round_trip.h"
#include "unit/codec/legacy_encoding.h"
#include "unit/codec/random_values.h"

namespace gpunet::codec {
namespace {

namespace fs = std::filesystem;
using base::Bytes;
using base::ByteSpan;

struct Tally {
  size_t accepted = 0;
  size_t refused = 0;
};

// Decodes `input` with the new and the old code and compares everything the API
// answers. Returns false after the first difference (reported as a test failure).
template <class T>
bool SameAnswer(ByteSpan input, base::Result<T> (*decode)(ByteSpan), Bytes (*encode)(const T&),
                base::Result<T> (*legacy_decode)(ByteSpan), Bytes (*legacy_encode)(const T&),
                const std::string& label, Tally& tally) {
  auto got = decode(input);
  auto want = legacy_decode(input);
  fuzz::CodecRoundTrip(input.data(), input.size(), decode, encode);
  if (got.has_value() != want.has_value()) {
    ADD_FAILURE() << label << ": the new code " << (got ? "accepts" : "refuses")
                  << " what the old code " << (want ? "accepts" : "refuses")
                  << (got ? " (old: " + want.error().ToString() + ")"
                          : " (new: " + got.error().ToString() + ")");
    return false;
  }
  if (!want) {
    ++tally.refused;
    if (got.error().code != want.error().code || got.error().message != want.error().message) {
      ADD_FAILURE() << label << ": refused differently\n  new: " << got.error().ToString()
                    << "\n  old: " << want.error().ToString();
      return false;
    }
    return true;
  }
  ++tally.accepted;
  if (!(*got == *want)) {
    ADD_FAILURE() << label << ": decodes to another value";
    return false;
  }
  Bytes again = encode(*got);
  if (again != legacy_encode(*want) || again != Bytes(input.begin(), input.end())) {
    ADD_FAILURE() << label << ": re-encodes to other bytes";
    return false;
  }
  return true;
}

// One decoder of encoding.h with its legacy twin, erased to a common signature.
struct TypeCheck {
  std::string name;
  std::function<bool(ByteSpan, const std::string&, Tally&)> compare;
};

template <class T>
TypeCheck Check(std::string name, base::Result<T> (*decode)(ByteSpan), Bytes (*encode)(const T&),
                base::Result<T> (*legacy_decode)(ByteSpan), Bytes (*legacy_encode)(const T&)) {
  return TypeCheck{name, [=](ByteSpan in, const std::string& label, Tally& tally) {
                     return SameAnswer(in, decode, encode, legacy_decode, legacy_encode, label,
                                       tally);
                   }};
}

// Every whole-buffer decoder of encoding.h, named as the golden vectors name them.
const std::vector<TypeCheck>& AllTypes() {
  static const std::vector<TypeCheck> kTypes = {
      Check("tx_body", DecodeTxBody, EncodeTxBody, legacy::DecodeTxBody, legacy::EncodeTxBody),
      Check("tx", DecodeTx, EncodeTx, legacy::DecodeTx, legacy::EncodeTx),
      Check("account", DecodeAccount, EncodeAccount, legacy::DecodeAccount, legacy::EncodeAccount),
      Check("validator_set", DecodeValidatorSet, EncodeValidatorSet, legacy::DecodeValidatorSet,
            legacy::EncodeValidatorSet),
      Check("vote", DecodeVote, EncodeVote, legacy::DecodeVote, legacy::EncodeVote),
      Check("commit", DecodeCommit, EncodeCommit, legacy::DecodeCommit, legacy::EncodeCommit),
      Check("proposal", DecodeProposal, EncodeProposal, legacy::DecodeProposal,
            legacy::EncodeProposal),
      Check("evidence", DecodeEvidence, EncodeEvidence, legacy::DecodeEvidence,
            legacy::EncodeEvidence),
      Check("block_header", DecodeBlockHeader, EncodeBlockHeader, legacy::DecodeBlockHeader,
            legacy::EncodeBlockHeader),
      Check("block", DecodeBlock, EncodeBlock, legacy::DecodeBlock, legacy::EncodeBlock),
      Check("receipt", DecodeReceipt, EncodeReceipt, legacy::DecodeReceipt, legacy::EncodeReceipt),
  };
  return kTypes;
}

const TypeCheck& TypeNamed(std::string_view name) {
  for (const auto& t : AllTypes())
    if (t.name == name) return t;
  GPUNET_UNREACHABLE();
}

// What each corpus folder feeds its fuzz target: the codec type, and how many leading
// bytes the target strips first (fuzz_market_apply reads a step byte, then a tx body).
struct FolderType {
  std::string_view type;
  size_t skip;
};
const std::map<std::string, FolderType, std::less<>> kCodecFolders = {
    {"fuzz_account", {"account", 0}},
    {"fuzz_block", {"block", 0}},
    {"fuzz_block_header", {"block_header", 0}},
    {"fuzz_commit", {"commit", 0}},
    {"fuzz_evidence", {"evidence", 0}},
    {"fuzz_market_apply", {"tx_body", 1}},
    {"fuzz_proposal", {"proposal", 0}},
    {"fuzz_receipt", {"receipt", 0}},
    {"fuzz_tx", {"tx", 0}},
    {"fuzz_tx_body", {"tx_body", 0}},
    {"fuzz_validator_set", {"validator_set", 0}},
    {"fuzz_vote", {"vote", 0}},
};
// Folders whose targets parse something encoding.cpp does not (their files are
// still decoded as every codec type below).
const std::set<std::string, std::less<>> kOtherFolders = {
    "fuzz_bech32",       "fuzz_bft_wal",        "fuzz_broker_frame",  "fuzz_keyfile",
    "fuzz_manifest",     "fuzz_market_config",  "fuzz_mnemonic",      "fuzz_offer_filter",
    "fuzz_smt_proof",    "fuzz_tenant_request", "fuzz_nonce_log",     "fuzz_tenant_route",
    "fuzz_broker_route", "fuzz_task",           "fuzz_terminal_text",
};

fs::path SourceDir() {
  const char* root = std::getenv("GPUNET_SOURCE_DIR");
  return root ? fs::path(root) : fs::path();
}

Bytes ReadBytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return Bytes(s.begin(), s.end());
}

struct CorpusFile {
  std::string folder;
  std::string label;  // folder/file
  Bytes bytes;
};

std::vector<CorpusFile> Corpus() {
  std::vector<CorpusFile> out;
  fs::path dir = SourceDir() / "tests/fuzz/corpus";
  for (const auto& folder : fs::directory_iterator(dir)) {
    if (!folder.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(folder.path())) {
      if (!file.is_regular_file()) continue;
      std::string name = folder.path().filename().string();
      out.push_back({name, name + "/" + file.path().filename().string(), ReadBytes(file.path())});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const CorpusFile& a, const CorpusFile& b) { return a.label < b.label; });
  return out;
}

// The input, each of its proper prefixes, and each byte changed three ways.
template <class Fn>
bool ForEachVariant(const Bytes& input, Fn fn) {
  if (!fn(ByteSpan(input), std::string("as is"))) return false;
  for (size_t n = 0; n < input.size(); ++n)
    if (!fn(ByteSpan(input.data(), n), "first " + std::to_string(n) + " bytes")) return false;
  Bytes changed = input;
  for (size_t i = 0; i < input.size(); ++i) {
    for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      changed[i] = input[i] ^ flip;
      if (!fn(ByteSpan(changed), "byte " + std::to_string(i) + " ^ " + std::to_string(flip)))
        return false;
    }
    changed[i] = input[i];
  }
  return true;
}

TEST(LegacyEquivalence, EveryCorpusFolderIsKnown) {
  ASSERT_FALSE(SourceDir().empty()) << "GPUNET_SOURCE_DIR is not set: run through ctest";
  std::set<std::string> folders;
  for (const auto& f : Corpus()) folders.insert(f.folder);
  EXPECT_EQ(folders.size(), kCodecFolders.size() + kOtherFolders.size());
  for (const auto& name : folders)
    EXPECT_TRUE(kCodecFolders.contains(name) || kOtherFolders.contains(name))
        << "tests/fuzz/corpus/" << name
        << " is new: say in this test which codec type its target decodes";
  for (const auto& [name, type] : kCodecFolders)
    EXPECT_TRUE(folders.contains(name)) << "no corpus files in tests/fuzz/corpus/" << name;
}

TEST(LegacyEquivalence, EveryCorpusFileAsItsTypeAndItsVariants) {
  ASSERT_FALSE(SourceDir().empty()) << "GPUNET_SOURCE_DIR is not set: run through ctest";
  std::map<std::string_view, Tally> tallies;
  size_t files = 0;
  for (const auto& file : Corpus()) {
    auto folder = kCodecFolders.find(file.folder);
    if (folder == kCodecFolders.end()) continue;
    ++files;
    const auto& [type_name, skip] = folder->second;
    const TypeCheck& type = TypeNamed(type_name);
    if (file.bytes.size() < skip) continue;
    Bytes input(file.bytes.begin() + static_cast<std::ptrdiff_t>(skip), file.bytes.end());
    Tally& tally = tallies[type_name];
    bool same = ForEachVariant(input, [&](ByteSpan in, const std::string& how) {
      return type.compare(in, file.label + " as " + type.name + ", " + how, tally);
    });
    if (!same) return;
  }
  EXPECT_GE(files, 30u) << "the corpus is smaller than this test expects";
  // Both paths were taken for every type: the comparison is not vacuous.
  for (const auto& [name, type] : kCodecFolders) {
    const Tally& t = tallies[type.type];
    EXPECT_GT(t.accepted, 0u) << type.type;
    EXPECT_GT(t.refused, 0u) << type.type;
  }
}

TEST(LegacyEquivalence, EveryCorpusFileAsEveryType) {
  ASSERT_FALSE(SourceDir().empty()) << "GPUNET_SOURCE_DIR is not set: run through ctest";
  Tally tally;
  for (const auto& file : Corpus())
    for (const auto& type : AllTypes())
      ASSERT_TRUE(type.compare(file.bytes, file.label + " as " + type.name, tally));
  EXPECT_GT(tally.accepted, 0u);
  EXPECT_GT(tally.refused, 0u);
}

TEST(LegacyEquivalence, EveryGoldenVectorAsEveryType) {
  ASSERT_FALSE(SourceDir().empty()) << "GPUNET_SOURCE_DIR is not set: run through ctest";
  std::ifstream in(SourceDir() / "tests/vectors/encoding/vectors.txt");
  std::string line;
  size_t vectors = 0, typed = 0;
  Tally tally;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.find(' ');
    ASSERT_NE(space, std::string::npos) << line;
    std::string name = line.substr(0, space);
    auto bytes = base::FromHex(line.substr(space + 1));
    ASSERT_TRUE(bytes) << name;
    ++vectors;
    for (const auto& type : AllTypes()) {
      Tally mine;
      ASSERT_TRUE(type.compare(*bytes, "vector " + name + " as " + type.name, mine));
      // A vector named after a type is that type's canonical encoding.
      if (type.name == name) {
        EXPECT_EQ(mine.accepted, 1u) << name;
        ++typed;
      }
      tally.accepted += mine.accepted;
      tally.refused += mine.refused;
    }
  }
  EXPECT_GE(vectors, 20u);
  EXPECT_EQ(typed, AllTypes().size()) << "a codec type has no golden vector";
  EXPECT_GT(tally.refused, 0u);
}

// Encoders never fail and take no input from the wire, so they are compared on
// values: seeded random values of every type, valid or not, must encode to the
// same bytes and be judged alike by the Validate functions.
bool SameStatus(const base::Status& a, const base::Status& b) {
  if (a.has_value() != b.has_value()) return false;
  return a.has_value() ||
         (a.error().code == b.error().code && a.error().message == b.error().message);
}

template <class T>
T EncodesAlike(T v, Bytes (*encode)(const T&), Bytes (*legacy_encode)(const T&)) {
  EXPECT_EQ(encode(v), legacy_encode(v));
  return v;
}

TEST(LegacyEquivalence, RandomValuesEncodeAndValidateAlike) {
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    testing::RandomValues rv(seed);
    SCOPED_TRACE("seed " + std::to_string(seed));
    Tx tx = EncodesAlike(rv.RandomTx(), EncodeTx, legacy::EncodeTx);
    EncodesAlike(tx.body, EncodeTxBody, legacy::EncodeTxBody);
    EncodesAlike(rv.RandomAccount(), EncodeAccount, legacy::EncodeAccount);
    ValidatorSet set =
        EncodesAlike(rv.RandomValidatorSet(), EncodeValidatorSet, legacy::EncodeValidatorSet);
    Vote vote = EncodesAlike(rv.RandomVote(), EncodeVote, legacy::EncodeVote);
    EncodesAlike(rv.RandomCommit(), EncodeCommit, legacy::EncodeCommit);
    Proposal proposal = EncodesAlike(rv.RandomProposal(), EncodeProposal, legacy::EncodeProposal);
    EncodesAlike(rv.RandomEvidence(), EncodeEvidence, legacy::EncodeEvidence);
    EncodesAlike(rv.RandomHeader(), EncodeBlockHeader, legacy::EncodeBlockHeader);
    Block block = EncodesAlike(rv.RandomBlock(), EncodeBlock, legacy::EncodeBlock);
    Receipt receipt = EncodesAlike(rv.RandomReceipt(), EncodeReceipt, legacy::EncodeReceipt);
    EXPECT_TRUE(SameStatus(ValidateTx(tx), legacy::ValidateTx(tx)));
    EXPECT_TRUE(SameStatus(ValidateTxBody(tx.body), legacy::ValidateTxBody(tx.body)));
    EXPECT_TRUE(SameStatus(ValidateValidatorSet(set), legacy::ValidateValidatorSet(set)));
    EXPECT_TRUE(SameStatus(ValidateBlock(block), legacy::ValidateBlock(block)));
    EXPECT_TRUE(SameStatus(ValidateReceipt(receipt), legacy::ValidateReceipt(receipt)));
    // Values the decoders refuse still encode alike (the encoders check nothing),
    // and are refused alike.
    vote.type = static_cast<VoteType>(seed % 256);
    EncodesAlike(vote, EncodeVote, legacy::EncodeVote);
    proposal.pol_round = static_cast<int32_t>(rv.U32());
    EncodesAlike(proposal, EncodeProposal, legacy::EncodeProposal);
    std::reverse(set.validators.begin(), set.validators.end());
    EXPECT_TRUE(SameStatus(ValidateValidatorSet(set), legacy::ValidateValidatorSet(set)));
    tx.body.msgs.clear();
    EXPECT_TRUE(SameStatus(ValidateTx(tx), legacy::ValidateTx(tx)));
  }
}

// ---------------------------------------------------------------- structural boundaries

// Values at the codec's structural limits, which the corpus and random values rarely
// reach: each count and size limit of encoding.cpp exactly at its maximum (both
// accept), one over it (both refuse, alike) and at zero (empty lists, zero-length
// strings and frames), each in the smallest value of a type that holds the field. The
// legacy encoder writes them: encoders check nothing, so it writes the over-limit
// ones too.
std::string Chars(size_t n, char c = 'a') {
  return std::string(n, c);
}

// Distinct values, ascending by their index i (byte-wise).
Address AddrAt(size_t i) {
  Address a{};
  a[0] = 1;
  a[18] = static_cast<uint8_t>(i >> 8);
  a[19] = static_cast<uint8_t>(i);
  return a;
}
std::vector<Address> Addrs(size_t n) {
  std::vector<Address> out;
  for (size_t i = 0; i < n; ++i) out.push_back(AddrAt(i));
  return out;
}
std::string Ident(std::string_view prefix, size_t i) {
  std::string digits = std::to_string(i);
  return std::string(prefix) + std::string(4 - digits.size(), '0') + digits;
}
std::vector<Attribute> Attrs(size_t n, size_t key_bytes = 0, size_t value_bytes = 1) {
  std::vector<Attribute> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back({key_bytes ? Chars(key_bytes) : Ident("k", i), Chars(value_bytes, 'v')});
  return out;
}

Tx SendTx() {
  Tx tx;
  tx.body.chain_id = "c";
  tx.body.msgs = {MsgSend{AddrAt(1), 5}};
  return tx;
}
Bytes BodyOf(std::vector<Msg> msgs) {
  TxBody body = SendTx().body;
  body.msgs = std::move(msgs);
  return legacy::EncodeTxBody(body);
}
MsgProviderRegister Register() {
  MsgProviderRegister m;
  m.tenant_api_uri = "https://p";
  m.region = "eu";
  m.payouts = {{AddrAt(0), 10'000}};
  return m;
}
MsgMachineUpsert Machine() {
  MsgMachineUpsert m;
  m.gpu_model = "H100";
  m.driver_version = "550";
  return m;
}
MsgOfferCreate Offer() {
  MsgOfferCreate m;
  m.gpu_model = "H100";
  return m;
}
Bytes OrderWith(const std::function<void(MsgOrderCreate&)>& set) {
  MsgOrderCreate m;
  set(m);
  return BodyOf({m});
}
Vote VoteFor(uint8_t block) {
  Vote v;
  v.block_hash[0] = block;
  return v;
}
Bytes BlockWith(const std::function<void(Block&)>& set) {
  Block b;
  b.header.chain_id = "c";
  set(b);
  return legacy::EncodeBlock(b);
}
Bytes ReceiptWith(const std::function<void(Receipt&)>& set) {
  Receipt r;
  set(r);
  return legacy::EncodeReceipt(r);
}
Bytes EventWith(size_t type_bytes, size_t attributes, size_t key_bytes, size_t value_bytes) {
  Event e{Chars(type_bytes), {}};
  for (size_t i = 0; i < attributes; ++i)
    e.attributes[key_bytes ? Chars(key_bytes) : Ident("k", i)] = Chars(value_bytes, 'v');
  return ReceiptWith([&](Receipt& r) { r.events = {e}; });
}

struct Boundary {
  std::string type;  // as AllTypes names it
  std::string field;
  size_t max;
  std::function<Bytes(size_t)> make;  // the type's bytes with the field at size n
};

std::vector<Boundary> Boundaries() {
  namespace limits = base::limits;
  using L = Boundary;
  auto body = [](auto set) {
    return [set](size_t n) {
      TxBody b = SendTx().body;
      set(b, n);
      return legacy::EncodeTxBody(b);
    };
  };
  return {
      L{"tx_body", "chain_id", limits::kChainIdBytesMax,
        body([](TxBody& b, size_t n) { b.chain_id = Chars(n); })},
      L{"tx_body", "memo", limits::kMemoBytesMax,
        body([](TxBody& b, size_t n) { b.memo = Chars(n); })},
      L{"tx_body", "msgs", limits::kMsgsPerTxMax, body([](TxBody& b, size_t n) {
          b.msgs.assign(n, MsgSend{AddrAt(1), 5});
        })},
      L{"tx_body", "tenant_api_uri", limits::kUriBytesMax,
        [](size_t n) {
          auto m = Register();
          m.tenant_api_uri = Chars(n);
          return BodyOf({m});
        }},
      L{"tx_body", "provider region", limits::kRegionBytesMax,
        [](size_t n) {
          auto m = Register();
          m.region = Chars(n);
          return BodyOf({m});
        }},
      L{"tx_body", "payouts", limits::kPayoutSplitsMax,
        [](size_t n) {
          auto m = Register();
          m.payouts.clear();
          for (size_t i = 0; i < n; ++i) m.payouts.push_back({AddrAt(i), 1});
          return BodyOf({m});
        }},
      L{"tx_body", "policy.allow", limits::kPolicyTenantsMax,
        [](size_t n) {
          auto m = Register();
          m.policy.allow = Addrs(n);
          return BodyOf({m});
        }},
      L{"tx_body", "policy.deny", limits::kPolicyTenantsMax,
        [](size_t n) {
          auto m = Register();
          m.policy.deny = Addrs(n);
          return BodyOf({m});
        }},
      L{"tx_body", "machine gpu_model", limits::kGpuModelBytesMax,
        [](size_t n) {
          auto m = Machine();
          m.gpu_model = Chars(n);
          return BodyOf({m});
        }},
      L{"tx_body", "driver_version", limits::kVersionBytesMax,
        [](size_t n) {
          auto m = Machine();
          m.driver_version = Chars(n);
          return BodyOf({m});
        }},
      L{"tx_body", "offer gpu_model", limits::kGpuModelBytesMax,
        [](size_t n) {
          auto m = Offer();
          m.gpu_model = Chars(n);
          return BodyOf({m});
        }},
      L{"tx_body", "offer tenants", limits::kOfferTenantsMax,
        [](size_t n) {
          auto m = Offer();
          m.tenants = Addrs(n);
          return BodyOf({m});
        }},
      L{"tx_body", "gpu_models", limits::kOrderGpuModelsMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) {
            for (size_t i = 0; i < n; ++i) m.requirements.gpu_models.push_back(Ident("m", i));
          });
        }},
      L{"tx_body", "gpu_models[0]", limits::kGpuModelBytesMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.requirements.gpu_models = {Chars(n)}; });
        }},
      L{"tx_body", "requirements region", limits::kRegionBytesMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.requirements.region = Chars(n); });
        }},
      L{"tx_body", "auditors", limits::kOrderAuditorsMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.requirements.auditors = Addrs(n); });
        }},
      L{"tx_body", "attributes", limits::kAttributesMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.requirements.attributes = Attrs(n); });
        }},
      L{"tx_body", "attribute key", limits::kAttributeKeyBytesMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.requirements.attributes = Attrs(1, n); });
        }},
      L{"tx_body", "attribute value", limits::kAttributeValueBytesMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.requirements.attributes = Attrs(1, 0, n); });
        }},
      L{"tx_body", "excluded", limits::kOrderExclusionsMax,
        [](size_t n) {
          return OrderWith([n](MsgOrderCreate& m) { m.providers.excluded = Addrs(n); });
        }},
      L{"tx_body", "machine_ids", limits::kMachinesPerLeaseMax,
        [](size_t n) {
          MsgBidCreate m;
          for (size_t i = 0; i < n; ++i) m.machine_ids.push_back(static_cast<uint32_t>(i + 1));
          return BodyOf({m});
        }},
      L{"tx_body", "attest attributes", limits::kAttributesMax,
        [](size_t n) {
          MsgAttest m;
          m.attributes = Attrs(n);
          return BodyOf({m});
        }},
      L{"validator_set", "validators", limits::kValidatorsMax,
        [](size_t n) {
          ValidatorSet set;
          for (size_t i = 0; i < n; ++i) {
            Validator v{{}, 1};
            v.public_key[30] = static_cast<uint8_t>(i >> 8);
            v.public_key[31] = static_cast<uint8_t>(i);
            set.validators.push_back(v);
          }
          return legacy::EncodeValidatorSet(set);
        }},
      L{"commit", "sigs", limits::kValidatorsMax,
        [](size_t n) {
          Commit c;
          for (size_t i = 0; i < n; ++i) c.sigs.push_back({AddrAt(i), 0, {}});
          return legacy::EncodeCommit(c);
        }},
      L{"block_header", "chain_id", limits::kChainIdBytesMax,
        [](size_t n) {
          BlockHeader h;
          h.chain_id = Chars(n);
          return legacy::EncodeBlockHeader(h);
        }},
      L{"block", "txs", limits::kTxsPerBlockMax,
        [](size_t n) { return BlockWith([n](Block& b) { b.txs.assign(n, SendTx()); }); }},
      L{"block", "evidence", limits::kEvidencePerBlockMax,
        [](size_t n) {
          return BlockWith([n](Block& b) {
            b.evidence.assign(n, DuplicateVoteEvidence{VoteFor(1), VoteFor(2)});
          });
        }},
      L{"receipt", "events", limits::kEventsPerReceiptMax,
        [](size_t n) {
          return ReceiptWith([n](Receipt& r) { r.events.assign(n, Event{"e", {}}); });
        }},
      L{"receipt", "event type", limits::kEventTypeBytesMax,
        [](size_t n) { return EventWith(n, 0, 0, 0); }},
      L{"receipt", "event attributes", limits::kEventAttributesMax,
        [](size_t n) { return EventWith(1, n, 0, 1); }},
      L{"receipt", "event attribute key", limits::kEventAttributeKeyBytesMax,
        [](size_t n) { return EventWith(1, 1, n, 1); }},
      L{"receipt", "event attribute value", limits::kEventAttributeValueBytesMax,
        [](size_t n) { return EventWith(1, 1, 0, n); }},
  };
}

TEST(LegacyEquivalence, EveryCountAndSizeLimitAtZeroMaxAndOneOver) {
  size_t cases = 0;
  for (const auto& b : Boundaries()) {
    const TypeCheck& type = TypeNamed(b.type);
    for (size_t n : {size_t{0}, b.max, b.max + 1}) {
      const std::string label = b.type + " with " + b.field + " at " + std::to_string(n) +
                                " (limit " + std::to_string(b.max) + ")";
      Tally tally;
      ASSERT_TRUE(type.compare(b.make(n), label, tally));
      ++cases;
      // Not vacuous: the maximum is a valid value and one over it is not.
      if (n == b.max) {
        EXPECT_EQ(tally.accepted, 1u) << label;
      } else if (n == b.max + 1) {
        EXPECT_EQ(tally.refused, 1u) << label;
      }
    }
  }
  EXPECT_EQ(cases, 3 * Boundaries().size());
}

// The whole-buffer limits (the most bytes a decoder reads at all), and a frame of
// zero bytes: a valid value padded to exactly the limit and to one byte over it,
// and a block whose one tx frame is empty.
TEST(LegacyEquivalence, WholeBufferLimitsAndAnEmptyFrame) {
  namespace limits = base::limits;
  const std::vector<std::pair<std::string, std::pair<Bytes, size_t>>> whole = {
      {"tx_body", {legacy::EncodeTxBody(SendTx().body), limits::kTxBytesMax}},
      {"tx", {legacy::EncodeTx(SendTx()), limits::kTxBytesMax}},
      {"account", {legacy::EncodeAccount({1, 2}), limits::kStateValueBytesMax}},
      {"validator_set", {legacy::EncodeValidatorSet({}), limits::kConsensusMsgBytesMax}},
      {"commit", {legacy::EncodeCommit({}), limits::kConsensusMsgBytesMax}},
      {"block", {BlockWith([](Block&) {}), limits::kBlockBytesMax}},
      {"receipt", {ReceiptWith([](Receipt&) {}), limits::kReceiptBytesMax}},
  };
  for (const auto& [name, value] : whole) {
    const auto& [bytes, max] = value;
    const TypeCheck& type = TypeNamed(name);
    Tally tally;
    ASSERT_TRUE(type.compare(bytes, name + " as is", tally));
    EXPECT_EQ(tally.accepted, 1u) << name;
    for (size_t size : {max, max + 1}) {
      Bytes padded = bytes;
      padded.resize(size, 0);
      ASSERT_TRUE(type.compare(padded, name + " padded to " + std::to_string(size), tally));
    }
    EXPECT_EQ(tally.refused, 2u) << name;
    ASSERT_TRUE(type.compare(Bytes{}, name + " of no bytes", tally));
    EXPECT_EQ(tally.refused, 3u) << name;
  }
  // A block of one tx whose frame says zero bytes: the tx's varint length and bytes
  // replaced by a single 00.
  const Bytes tx = legacy::EncodeTx(SendTx());
  ASSERT_GT(tx.size(), 127u);
  ASSERT_LT(tx.size(), 16384u);
  Bytes framed = {static_cast<uint8_t>(0x80 | (tx.size() & 0x7f)),
                  static_cast<uint8_t>(tx.size() >> 7)};
  framed.insert(framed.end(), tx.begin(), tx.end());
  Bytes block = BlockWith([](Block& b) { b.txs = {SendTx()}; });
  auto at = std::search(block.begin(), block.end(), framed.begin(), framed.end());
  ASSERT_NE(at, block.end()) << "the block does not frame its tx as docs/encoding.md says";
  const auto offset = at - block.begin();
  block.erase(at, at + static_cast<std::ptrdiff_t>(framed.size()));
  block.insert(block.begin() + offset, uint8_t{0});
  Tally tally;
  ASSERT_TRUE(TypeNamed("block").compare(block, "block with an empty tx frame", tally));
  EXPECT_EQ(tally.refused, 1u);
}

}  // namespace
}  // namespace gpunet::codec
