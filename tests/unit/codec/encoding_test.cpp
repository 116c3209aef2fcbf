// Round trips over randomized values, canonicality under mutation, and every
// rejection rule of every type.
#include <gtest/gtest.h>

#include <string>

#include "base/limits.h"
#include "codec/encoding.h"
#include "unit/codec/random_values.h"

namespace gpunet::codec {
namespace {

using base::Bytes;
using base::ErrorCode;
using testing::RandomValues;
namespace limits = base::limits;

// ---------------------------------------------------------------- per-type table

template <class T>
struct Codec;

#define CODEC_CASE(T, Name, RandomFn)                                           \
  template <>                                                                   \
  struct Codec<T> {                                                             \
    static Bytes Encode(const T& v) { return Encode##Name(v); }                 \
    static base::Result<T> Decode(base::ByteSpan b) { return Decode##Name(b); } \
    static T Random(RandomValues& r) { return r.RandomFn(); }                   \
  }

CODEC_CASE(TxBody, TxBody, RandomTxBody);
CODEC_CASE(Tx, Tx, RandomTx);
CODEC_CASE(Account, Account, RandomAccount);
CODEC_CASE(ValidatorSet, ValidatorSet, RandomValidatorSet);
CODEC_CASE(Vote, Vote, RandomVote);
CODEC_CASE(Commit, Commit, RandomCommit);
CODEC_CASE(Proposal, Proposal, RandomProposal);
CODEC_CASE(Evidence, Evidence, RandomEvidence);
CODEC_CASE(BlockHeader, BlockHeader, RandomHeader);
CODEC_CASE(Block, Block, RandomBlock);
CODEC_CASE(Receipt, Receipt, RandomReceipt);

template <class T>
class CodecRoundTrip : public ::testing::Test {};
using AllTypes = ::testing::Types<TxBody, Tx, Account, ValidatorSet, Vote, Commit, Proposal,
                                  Evidence, BlockHeader, Block, Receipt>;
TYPED_TEST_SUITE(CodecRoundTrip, AllTypes);

TYPED_TEST(CodecRoundTrip, DecodeOfEncodeIsIdentityOverRandomValues) {
  using C = Codec<TypeParam>;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    RandomValues rv(seed);
    TypeParam v = C::Random(rv);
    Bytes bytes = C::Encode(v);
    auto decoded = C::Decode(bytes);
    ASSERT_TRUE(decoded) << "seed " << seed << ": " << decoded.error().ToString();
    EXPECT_EQ(*decoded, v) << "seed " << seed;
    EXPECT_EQ(C::Encode(*decoded), bytes) << "seed " << seed;
  }
}

TYPED_TEST(CodecRoundTrip, EveryStrictPrefixAndAnyExtraByteIsRejected) {
  using C = Codec<TypeParam>;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    RandomValues rv(seed * 1000);
    Bytes bytes = C::Encode(C::Random(rv));
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto d = C::Decode(base::ByteSpan(bytes.data(), n));
      ASSERT_FALSE(d) << "prefix of " << n << "/" << bytes.size() << " accepted, seed " << seed;
    }
    Bytes longer = bytes;
    longer.push_back(0);
    auto d = C::Decode(longer);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().code, ErrorCode::kNonCanonical);
    EXPECT_NE(d.error().message.find("trailing"), std::string::npos) << d.error().message;
  }
}

// Canonicality: whatever mutated input a decoder accepts re-encodes to exactly the
// same bytes, so no two encodings of one value exist.
TYPED_TEST(CodecRoundTrip, AcceptedMutationsReencodeToTheSameBytes) {
  using C = Codec<TypeParam>;
  base::SeededRng rng(99);
  size_t accepted = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    RandomValues rv(seed);
    Bytes original = C::Encode(C::Random(rv));
    for (int m = 0; m < 100; ++m) {
      Bytes b = original;
      size_t pos = b.empty() ? 0 : rng.Below(b.size());
      switch (rng.Below(4)) {
        case 0:
          if (!b.empty()) b[pos] ^= static_cast<uint8_t>(1 + rng.Below(255));
          break;
        case 1:
          b.insert(b.begin() + pos, static_cast<uint8_t>(rng.Next()));
          break;
        case 2:
          if (!b.empty()) b.erase(b.begin() + pos);
          break;
        default:
          if (!b.empty()) b[pos] = static_cast<uint8_t>(rng.Below(2) ? 0x80 : 0x00);
      }
      auto d = C::Decode(b);
      if (!d) continue;
      ++accepted;
      ASSERT_EQ(C::Encode(*d), b) << "seed " << seed << " mutation " << m;
    }
  }
  // Flipping bytes inside fixed fields keeps many inputs valid: the property is
  // really exercised.
  if (!std::is_same_v<TypeParam, Evidence>) {
    EXPECT_GT(accepted, 100u);
  }
}

// ---------------------------------------------------------------- helpers

template <class T>
void ExpectRejected(const base::Result<T>& r, ErrorCode code, std::string_view path_part) {
  ASSERT_FALSE(r) << "accepted, expected " << base::ErrorCodeName(code) << " at " << path_part;
  EXPECT_EQ(r.error().code, code) << r.error().ToString();
  EXPECT_NE(r.error().message.find(path_part), std::string::npos)
      << "message does not name " << path_part << ": " << r.error().message;
}

TxBody ValidBody() {
  return testing::Examples::TxBodyExample();
}
Tx ValidTx() {
  return Tx{.body = ValidBody(), .signature = {}};
}

// ---------------------------------------------------------------- transactions

TEST(TxDecode, RejectsUnknownMessageTags) {
  Bytes bytes = EncodeTx(ValidTx());
  // The msg tag follows chain_id (1 + 13 bytes), sender, three u64s and the count.
  size_t tag_at = 1 + 13 + 32 + 24 + 1;
  ASSERT_EQ(bytes[tag_at], 0x00);
  ASSERT_EQ(bytes[tag_at + 1], 0x01);
  for (uint16_t tag : {0, 25, 0xffff}) {  // 25: one past the last market tag
    Bytes b = bytes;
    b[tag_at] = static_cast<uint8_t>(tag >> 8);
    b[tag_at + 1] = static_cast<uint8_t>(tag);
    auto r = DecodeTx(b);
    ExpectRejected(r, ErrorCode::kCorrupt, "tx.body.msgs[0].tag");
    EXPECT_NE(r.error().message.find("unknown tag"), std::string::npos);
  }
}

TEST(TxDecode, MessageCountBetweenOneAndTheLimit) {
  Tx tx = ValidTx();
  tx.body.msgs.clear();
  ExpectRejected(DecodeTx(EncodeTx(tx)), ErrorCode::kCorrupt, "tx.body.msgs");
  tx.body.msgs.assign(limits::kMsgsPerTxMax, MsgSend{});
  EXPECT_TRUE(DecodeTx(EncodeTx(tx)));
  tx.body.msgs.push_back(MsgSend{});
  ExpectRejected(DecodeTx(EncodeTx(tx)), ErrorCode::kLimitExceeded, "tx.body.msgs");
}

TEST(TxDecode, ChainIdRules) {
  Tx tx = ValidTx();
  for (std::string bad : {std::string(""), std::string("two words"), std::string("ctl\x01"),
                          std::string("caf\xc3\xa9")}) {
    tx.body.chain_id = bad;
    ExpectRejected(DecodeTx(EncodeTx(tx)), ErrorCode::kCorrupt, "tx.body.chain_id");
  }
  tx.body.chain_id = std::string(limits::kChainIdBytesMax, 'c');
  EXPECT_TRUE(DecodeTx(EncodeTx(tx)));
  tx.body.chain_id += 'c';
  ExpectRejected(DecodeTx(EncodeTx(tx)), ErrorCode::kLimitExceeded, "tx.body.chain_id");
}

TEST(TxDecode, MemoRules) {
  Tx tx = ValidTx();
  tx.body.memo = std::string(limits::kMemoBytesMax, 'm');
  EXPECT_TRUE(DecodeTx(EncodeTx(tx)));
  tx.body.memo += 'm';
  ExpectRejected(DecodeTx(EncodeTx(tx)), ErrorCode::kLimitExceeded, "tx.body.memo");
  for (std::string bad :
       {std::string("line\nbreak"), std::string("\xff"), std::string("\xed\xa0\x80")}) {
    tx.body.memo = bad;
    ExpectRejected(DecodeTx(EncodeTx(tx)), ErrorCode::kCorrupt, "tx.body.memo");
  }
}

TEST(TxDecode, RejectsNonMinimalCountAndOversizedInput) {
  Bytes bytes = EncodeTx(ValidTx());
  size_t count_at = 1 + 13 + 32 + 24;
  ASSERT_EQ(bytes[count_at], 0x01);
  Bytes b = bytes;
  b[count_at] = 0x81;
  b.insert(b.begin() + count_at + 1, 0x00);
  ExpectRejected(DecodeTx(b), ErrorCode::kNonCanonical, "tx.body.msgs");

  Bytes huge(limits::kTxBytesMax + 1, 0);
  ExpectRejected(DecodeTx(huge), ErrorCode::kLimitExceeded, "tx");
}

TEST(TxDecode, BodyIsAPrefixOfTheTx) {
  Tx tx = testing::Examples::TxExample();
  Bytes body = EncodeTxBody(tx.body);
  Bytes whole = EncodeTx(tx);
  ASSERT_EQ(whole.size(), body.size() + 64);
  EXPECT_TRUE(std::equal(body.begin(), body.end(), whole.begin()));
}

TEST(Validate, ReportsTheDecoderError) {
  Tx tx = ValidTx();
  EXPECT_TRUE(ValidateTx(tx));
  EXPECT_TRUE(ValidateTxBody(tx.body));
  tx.body.memo = "\x07";
  auto s = ValidateTx(tx);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("tx.body.memo"), std::string::npos);
  EXPECT_FALSE(ValidateTxBody(tx.body));
}

// ---------------------------------------------------------------- account

TEST(AccountDecode, IsExactlySixteenBytes) {
  Bytes b = EncodeAccount(Account{.balance_ugpn = 5, .nonce = 1});
  ASSERT_EQ(b.size(), 16u);
  EXPECT_EQ(base::ToHex(b),
            "0000000000000005"
            "0000000000000001");
  ExpectRejected(DecodeAccount(base::ByteSpan(b.data(), 15)), ErrorCode::kCorrupt, "account.nonce");
  b.push_back(0);
  ExpectRejected(DecodeAccount(b), ErrorCode::kNonCanonical, "account");
}

// ---------------------------------------------------------------- validator sets

TEST(ValidatorSetDecode, RequiresStrictlyAscendingKeys) {
  ValidatorSet set = testing::Examples::ValidatorSetExample();
  EXPECT_TRUE(DecodeValidatorSet(EncodeValidatorSet(set)));
  ValidatorSet swapped = set;
  std::swap(swapped.validators[0], swapped.validators[1]);
  ExpectRejected(DecodeValidatorSet(EncodeValidatorSet(swapped)), ErrorCode::kNonCanonical,
                 "validator_set.validators[1].public_key");
  ValidatorSet dup = set;
  dup.validators[1].public_key = dup.validators[0].public_key;
  ExpectRejected(DecodeValidatorSet(EncodeValidatorSet(dup)), ErrorCode::kNonCanonical,
                 "validators[1]");
}

TEST(ValidatorSetDecode, PowerRules) {
  ValidatorSet set = testing::Examples::ValidatorSetExample();
  set.validators[2].power = 0;
  ExpectRejected(DecodeValidatorSet(EncodeValidatorSet(set)), ErrorCode::kCorrupt,
                 "validators[2].power");
  set.validators[2].power = limits::kTotalVotingPowerMax - 30;  // total = limit exactly
  set.validators[0].power = 10;
  set.validators[1].power = 20;
  EXPECT_TRUE(DecodeValidatorSet(EncodeValidatorSet(set)));
  set.validators[1].power = 21;
  ExpectRejected(DecodeValidatorSet(EncodeValidatorSet(set)), ErrorCode::kLimitExceeded,
                 "total voting power");
  set.validators[0].power = UINT64_MAX;  // no wrap-around lets it pass
  ExpectRejected(DecodeValidatorSet(EncodeValidatorSet(set)), ErrorCode::kLimitExceeded,
                 "total voting power");
}

TEST(ValidatorSetDecode, SizeLimit) {
  RandomValues rv(3);
  ValidatorSet set;
  for (size_t i = 0; i <= limits::kValidatorsMax; ++i) {
    PublicKey k;
    k[0] = static_cast<uint8_t>(i >> 8);
    k[1] = static_cast<uint8_t>(i);
    set.validators.push_back(Validator{.public_key = k, .power = 1});
  }
  ExpectRejected(DecodeValidatorSet(EncodeValidatorSet(set)), ErrorCode::kLimitExceeded,
                 "validator_set.validators");
  set.validators.pop_back();
  EXPECT_TRUE(DecodeValidatorSet(EncodeValidatorSet(set)));
  EXPECT_TRUE(DecodeValidatorSet(EncodeValidatorSet(ValidatorSet{})));
}

// ---------------------------------------------------------------- votes, commits, proposals

TEST(VoteDecode, TypeIsPrevoteOrPrecommit) {
  Bytes b = EncodeVote(testing::Examples::VoteExample());
  ASSERT_EQ(b.size(), 1u + 8 + 4 + 32 + 8 + 20 + 64);
  for (uint8_t t : {0, 3, 0xff}) {
    b[0] = t;
    ExpectRejected(DecodeVote(b), ErrorCode::kCorrupt, "vote.type");
  }
}

TEST(CommitDecode, SignaturesStrictlyAscendingByValidator) {
  Commit c = testing::Examples::CommitExample();
  ASSERT_EQ(c.sigs.size(), 3u);
  EXPECT_TRUE(DecodeCommit(EncodeCommit(c)));
  Commit swapped = c;
  std::swap(swapped.sigs[1], swapped.sigs[2]);
  ExpectRejected(DecodeCommit(EncodeCommit(swapped)), ErrorCode::kNonCanonical,
                 "commit.sigs[2].validator");
  Commit dup = c;
  dup.sigs[1] = dup.sigs[0];
  ExpectRejected(DecodeCommit(EncodeCommit(dup)), ErrorCode::kNonCanonical, "commit.sigs[1]");
  Commit many;
  for (size_t i = 0; i <= limits::kValidatorsMax; ++i) {
    Address a;
    a[0] = static_cast<uint8_t>(i);
    a[1] = static_cast<uint8_t>(i >> 8);
    many.sigs.push_back(CommitSig{.validator = a, .time_ms = 0, .signature = {}});
  }
  ExpectRejected(DecodeCommit(EncodeCommit(many)), ErrorCode::kLimitExceeded, "commit.sigs");
  EXPECT_TRUE(DecodeCommit(EncodeCommit(Commit{})));
}

TEST(ProposalDecode, PolRoundIsMinusOneOrBelowRound) {
  Proposal p = testing::Examples::ProposalExample();
  p.round = 5;
  for (int32_t ok : {-1, 0, 4}) {
    p.pol_round = ok;
    EXPECT_TRUE(DecodeProposal(EncodeProposal(p))) << ok;
  }
  for (int32_t bad : {-2, 5, 6, INT32_MIN, INT32_MAX}) {
    p.pol_round = bad;
    ExpectRejected(DecodeProposal(EncodeProposal(p)), ErrorCode::kCorrupt, "proposal.pol_round");
  }
  p.round = 0;
  p.pol_round = 0;
  ExpectRejected(DecodeProposal(EncodeProposal(p)), ErrorCode::kCorrupt, "proposal.pol_round");
}

// ---------------------------------------------------------------- evidence

TEST(EvidenceDecode, VotesOrderedByBlockHashAndDifferent) {
  Evidence e = testing::Examples::EvidenceExample();
  auto& dv = std::get<DuplicateVoteEvidence>(e);
  ASSERT_LT(dv.vote_a.block_hash, dv.vote_b.block_hash);
  EXPECT_TRUE(DecodeEvidence(EncodeEvidence(e)));
  std::swap(dv.vote_a, dv.vote_b);
  ExpectRejected(DecodeEvidence(EncodeEvidence(e)), ErrorCode::kNonCanonical,
                 "evidence.vote_b.block_hash");
  dv.vote_a = dv.vote_b;
  ExpectRejected(DecodeEvidence(EncodeEvidence(e)), ErrorCode::kCorrupt, "evidence.vote_b");
}

TEST(EvidenceDecode, RejectsUnknownTagAndBadInnerVote) {
  Bytes b = EncodeEvidence(testing::Examples::EvidenceExample());
  Bytes bad_tag = b;
  bad_tag[1] = 2;
  ExpectRejected(DecodeEvidence(bad_tag), ErrorCode::kCorrupt, "evidence.tag");
  Bytes bad_vote = b;
  bad_vote[2] = 9;  // vote_a.type
  ExpectRejected(DecodeEvidence(bad_vote), ErrorCode::kCorrupt, "evidence.vote_a.type");
  EXPECT_EQ(TagOf(testing::Examples::EvidenceExample()), EvidenceTag::kDuplicateVote);
}

// ---------------------------------------------------------------- blocks

TEST(BlockDecode, NamesTheFailingTx) {
  Block block = testing::Examples::BlockExample();
  Tx bad = ValidTx();
  bad.body.memo = "\x1b";
  block.txs.push_back(bad);
  ExpectRejected(DecodeBlock(EncodeBlock(block)), ErrorCode::kCorrupt, "block.txs[1].body.memo");
  EXPECT_FALSE(ValidateBlock(block));
  block.txs.pop_back();
  EXPECT_TRUE(ValidateBlock(block));
}

TEST(BlockDecode, TxLengthPrefixMustMatch) {
  Block block{.header = testing::Examples::HeaderExample()};
  block.txs.push_back(ValidTx());
  Bytes b = EncodeBlock(block);
  size_t header_size = EncodeBlockHeader(block.header).size();
  size_t len_at = header_size + 1;  // after the tx count
  Bytes tx_bytes = EncodeTx(block.txs[0]);
  ASSERT_LT(tx_bytes.size(), 0x80u * 0x80u);
  ASSERT_GE(tx_bytes.size(), 0x80u);  // two-byte varint
  uint64_t len = (b[len_at] & 0x7f) | static_cast<uint64_t>(b[len_at + 1]) << 7;
  ASSERT_EQ(len, tx_bytes.size());
  for (int delta : {-1, +1}) {
    Bytes m = b;
    m[len_at] = static_cast<uint8_t>(m[len_at] + delta);  // low bits, never 0x7f/0x80 here
    auto r = DecodeBlock(m);
    ASSERT_FALSE(r) << delta;
    EXPECT_NE(r.error().message.find("block.txs[0]"), std::string::npos) << r.error().message;
  }
}

TEST(BlockDecode, Limits) {
  Block block{.header = testing::Examples::HeaderExample()};
  block.evidence.assign(limits::kEvidencePerBlockMax + 1, testing::Examples::EvidenceExample());
  ExpectRejected(DecodeBlock(EncodeBlock(block)), ErrorCode::kLimitExceeded, "block.evidence");
  Bytes huge(limits::kBlockBytesMax + 1, 0);
  ExpectRejected(DecodeBlock(huge), ErrorCode::kLimitExceeded, "block");

  // A tx length over kTxBytesMax is refused before anything is read.
  Writer w;
  Write(w, BlockHeader{.chain_id = "c"});
  w.Count(1);
  w.VarUint(limits::kTxBytesMax + 1);
  ExpectRejected(DecodeBlock(w.Data()), ErrorCode::kLimitExceeded, "block.txs[0].length");
  Writer w2;
  Write(w2, BlockHeader{.chain_id = "c"});
  w2.Count(limits::kTxsPerBlockMax + 1);
  ExpectRejected(DecodeBlock(w2.Data()), ErrorCode::kLimitExceeded, "block.txs");
}

TEST(BlockHeaderDecode, ChainIdAndSize) {
  BlockHeader h = testing::Examples::HeaderExample();
  Bytes b = EncodeBlockHeader(h);
  EXPECT_EQ(b.size(), 1 + h.chain_id.size() + 3 * 8 + 8 * 32 + 20);
  h.chain_id = "";
  ExpectRejected(DecodeBlockHeader(EncodeBlockHeader(h)), ErrorCode::kCorrupt,
                 "block_header.chain_id");
}

// ---------------------------------------------------------------- receipts and events

Bytes ReceiptWithAttributes(std::initializer_list<std::pair<std::string, std::string>> attrs) {
  Writer w;
  w.Fixed(Hash32{});
  w.U16(0);
  w.U64(0);
  w.U64(0);
  w.U32(0);
  w.Count(1);
  w.String("transfer");
  w.Count(attrs.size());
  for (const auto& [k, v] : attrs) {
    w.String(k);
    w.String(v);
  }
  return std::move(w).Take();
}

TEST(ReceiptDecode, AttributeKeysStrictlyAscending) {
  EXPECT_TRUE(DecodeReceipt(ReceiptWithAttributes({{"a", "1"}, {"b", "2"}})));
  ExpectRejected(DecodeReceipt(ReceiptWithAttributes({{"b", "1"}, {"a", "2"}})),
                 ErrorCode::kNonCanonical, "receipt.events[0].attributes[1].key");
  ExpectRejected(DecodeReceipt(ReceiptWithAttributes({{"a", "1"}, {"a", "2"}})),
                 ErrorCode::kNonCanonical, "receipt.events[0].attributes[1].key");
  // Byte order, not locale order: "B" (0x42) sorts before "a" (0x61).
  EXPECT_TRUE(DecodeReceipt(ReceiptWithAttributes({{"B", "1"}, {"a", "2"}})));
  ExpectRejected(DecodeReceipt(ReceiptWithAttributes({{"ab", "1"}, {"a", "2"}})),
                 ErrorCode::kNonCanonical, "key");
}

TEST(ReceiptDecode, EventStringRulesAndLimits) {
  ExpectRejected(DecodeReceipt(ReceiptWithAttributes({{"", "1"}})), ErrorCode::kCorrupt,
                 "receipt.events[0].attributes[0].key");
  ExpectRejected(DecodeReceipt(ReceiptWithAttributes({{"k", "tab\there"}})), ErrorCode::kCorrupt,
                 "receipt.events[0].attributes[0].value");
  ExpectRejected(DecodeReceipt(ReceiptWithAttributes(
                     {{"k", std::string(limits::kEventAttributeValueBytesMax + 1, 'v')}})),
                 ErrorCode::kLimitExceeded, "value");

  Receipt r = testing::Examples::ReceiptExample();
  r.events[0].type = "has space";
  ExpectRejected(DecodeReceipt(EncodeReceipt(r)), ErrorCode::kCorrupt, "receipt.events[0].type");
  r = testing::Examples::ReceiptExample();
  for (size_t i = 0; i <= limits::kEventAttributesMax; ++i)
    r.events[0].attributes["k" + std::to_string(100 + i)] = "v";
  ExpectRejected(DecodeReceipt(EncodeReceipt(r)), ErrorCode::kLimitExceeded,
                 "receipt.events[0].attributes");
  r = testing::Examples::ReceiptExample();
  r.events.assign(limits::kEventsPerReceiptMax + 1, Event{.type = "e", .attributes = {}});
  ExpectRejected(DecodeReceipt(EncodeReceipt(r)), ErrorCode::kLimitExceeded, "receipt.events");
  EXPECT_FALSE(ValidateReceipt(r));
}

TEST(ReceiptDecode, WholeReceiptByteLimit) {
  Receipt r;
  Event big{.type = "e", .attributes = {}};
  for (size_t i = 0; i < limits::kEventAttributesMax; ++i)
    big.attributes["k" + std::to_string(10 + i)] =
        std::string(limits::kEventAttributeValueBytesMax, 'v');
  r.events.assign(limits::kEventsPerReceiptMax, big);  // every field in its limit, too big in all
  Bytes b = EncodeReceipt(r);
  ASSERT_GT(b.size(), limits::kReceiptBytesMax);
  ExpectRejected(DecodeReceipt(b), ErrorCode::kLimitExceeded, "receipt");
}

}  // namespace
}  // namespace gpunet::codec
