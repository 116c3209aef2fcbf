// The transaction pipeline (state/tx_pipeline.h), the StateDb overlay and fees:
// every refusal leaves the state untouched, an included failure charges the fee,
// advances the nonce, rolls back every message and records the code.
#include <gtest/gtest.h>

#include <set>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/tx_result.h"
#include "state/conservation.h"
#include "state/fees.h"
#include "state/keyspace.h"
#include "state/state_db.h"
#include "state/tx_pipeline.h"
#include "util/keys.h"

namespace gpunet::state {
namespace {

using codec::TxCode;

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

PipelineParams Params() {
  PipelineParams p;
  p.chain_id = "test-chain";
  p.fees = FeeParams{2, 100, 1000, 2500};
  p.tx_bytes_max = 64 * 1024;
  p.msgs_per_tx_max = 4;
  p.nonce_ahead_max = 8;
  return p;
}

codec::TxBody Body(const crypto::KeyPair& from, uint64_t nonce, std::vector<codec::Msg> msgs,
                   uint64_t fee = 5000) {
  codec::TxBody body;
  body.chain_id = "test-chain";
  body.sender = from.Public();
  body.nonce = nonce;
  body.fee_ugpn = fee;
  body.msgs = std::move(msgs);
  return body;
}

codec::Msg Send(const codec::Address& to, uint64_t amount) {
  return codec::MsgSend{to, amount};
}

base::Bytes Signed(const codec::TxBody& body, const crypto::KeyPair& key) {
  return codec::EncodeTx(codec::SignTx(body, key));
}

// A store holding alice (1,000,000) and bob (500) plus the supply record.
class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteBatch batch;
    batch.Put(keyspace::AccountKey(TestAddress(alice)), codec::EncodeAccount({1'000'000, 0}));
    batch.Put(keyspace::AccountKey(TestAddress(bob)), codec::EncodeAccount({500, 0}));
    batch.Put(SupplyKey(), EncodeSupply(Supply{1'000'500, 0, 0, 0}));
    ASSERT_TRUE(kv.Commit(batch));
  }

  codec::TxResult<CheckedTx> Stateless(const base::Bytes& bytes) {
    return CheckStateless(bytes, params, &cache);
  }

  // Applies a tx to db; returns the receipt or the refusal.
  codec::TxResult<codec::Receipt> Apply(const base::Bytes& bytes, uint64_t height = 1) {
    auto checked = Stateless(bytes);
    if (!checked) return std::unexpected(checked.error());
    auto applied =
        ApplyTx(db, *checked, BlockContext{height, 1000, TestAddress(proposer)}, 0, params);
    EXPECT_TRUE(applied.has_value());
    return *applied;
  }

  codec::Account Account(const crypto::KeyPair& k) { return *db.GetAccount(TestAddress(k)); }

  // Commits db's writes and checks conservation by scanning.
  void CommitAndCheck() {
    ASSERT_TRUE(kv.Commit(db.Changes()));
    db.Clear();
    auto report = CheckConservation(kv);
    ASSERT_TRUE(report.has_value()) << report.error().ToString();
  }

  crypto::KeyPair alice = TestKey(1), bob = TestKey(2), carol = TestKey(3), proposer = TestKey(9);
  MemoryKvStore kv;
  StateDb db{kv};
  PipelineParams params = Params();
  SignatureCache cache{1000};
};

TEST(TxResultTest, CodesHaveNamesMessagesAndRanges) {
  EXPECT_EQ(codec::TxCodeName(TxCode::kOk), "ok");
  EXPECT_EQ(codec::TxCodeName(TxCode::kInsufficientFunds), "insufficient_funds");
  EXPECT_EQ(static_cast<uint16_t>(TxCode::kStaleNonce), 5);  // numbers are protocol: never change
  EXPECT_EQ(static_cast<uint16_t>(TxCode::kInsufficientFunds), 100);
  EXPECT_TRUE(codec::IsRejectedBeforeInclusion(TxCode::kBadSignature));
  EXPECT_TRUE(codec::IsRejectedBeforeInclusion(TxCode::kMempoolFull));
  EXPECT_FALSE(codec::IsRejectedBeforeInclusion(TxCode::kOk));
  EXPECT_TRUE(codec::IsIncludedFailure(TxCode::kInsufficientFunds));
  EXPECT_FALSE(codec::IsIncludedFailure(TxCode::kFeeTooLow));
  EXPECT_EQ(codec::TxCodeFromU16(100), TxCode::kInsufficientFunds);
  EXPECT_EQ(codec::TxCodeFromU16(4242), std::nullopt);
  // Every published code has a distinct name and a message.
  std::set<std::string_view> names;
  for (uint32_t v = 0; v < 2000; ++v) {
    auto code = codec::TxCodeFromU16(static_cast<uint16_t>(v));
    if (!code) continue;
    EXPECT_TRUE(names.insert(codec::TxCodeName(*code)).second) << v;
    EXPECT_FALSE(codec::TxCodeMessage(*code).empty());
    EXPECT_TRUE(v == 0 || codec::IsRejectedBeforeInclusion(*code) ||
                codec::IsIncludedFailure(*code))
        << v;
  }
  EXPECT_GE(names.size(), 20u);
}

TEST(FeesTest, RequiredFeeAndSplit) {
  FeeParams p{2, 100, 1000, 2500};
  EXPECT_EQ(RequiredFee(p, 10, 1), 1000u);  // the minimum wins
  EXPECT_EQ(RequiredFee(p, 1000, 3), 2300u);
  EXPECT_EQ(RequiredFee(FeeParams{UINT64_MAX, 0, 0, 0}, 2, 1), std::nullopt);
  auto split = SplitFee(1001, 2500);
  EXPECT_EQ(split.burned_ugpn, 250u);
  EXPECT_EQ(split.to_proposer_ugpn, 751u);
  EXPECT_EQ(SplitFee(UINT64_MAX, 10000).burned_ugpn, UINT64_MAX);
  EXPECT_EQ(SplitFee(7, 0).to_proposer_ugpn, 7u);
}

TEST(StateDbTest, ReleasedCheckpointKeepsItsWrites) {
  MemoryKvStore kv;
  StateDb db(kv);
  size_t first = db.Checkpoint();
  db.Put({1, 1}, {1});
  db.Release(first);    // kept for good: nothing open can roll it back
  db.Put({1, 2}, {2});  // outside any checkpoint
  size_t second = db.Checkpoint();
  db.Put({1, 1}, {3});
  db.Put({1, 3}, {3});
  db.RevertTo(second);
  EXPECT_EQ(**db.Get(base::Bytes{1, 1}), base::Bytes{1});
  EXPECT_EQ(**db.Get(base::Bytes{1, 2}), base::Bytes{2});
  EXPECT_FALSE(db.Get(base::Bytes{1, 3})->has_value());
  db.Release(second);
  WriteBatch taken = db.TakeChanges();
  EXPECT_EQ(taken.Size(), 2u);
  EXPECT_TRUE(db.Pending().empty());
}

TEST(StateDbTest, OverlayCheckpointsAndRevert) {
  MemoryKvStore kv;
  WriteBatch base;
  base.Put({1, 1}, {10});
  ASSERT_TRUE(kv.Commit(base));
  StateDb db(kv);
  EXPECT_EQ(**db.Get(base::Bytes{1, 1}), base::Bytes{10});
  const size_t start = db.Checkpoint();
  db.Put({1, 1}, {11});
  size_t cp = db.Checkpoint();
  db.Put({1, 1}, {12});
  db.Put({1, 2}, {20});
  db.Delete({1, 3});
  EXPECT_EQ(**db.Get(base::Bytes{1, 1}), base::Bytes{12});
  EXPECT_FALSE(db.Get(base::Bytes{1, 3})->has_value());
  db.RevertTo(cp);
  EXPECT_EQ(**db.Get(base::Bytes{1, 1}), base::Bytes{11});
  EXPECT_FALSE(db.Get(base::Bytes{1, 2})->has_value());
  EXPECT_EQ(db.Pending().size(), 1u);
  db.RevertTo(start);
  EXPECT_TRUE(db.Pending().empty());
  EXPECT_EQ(**db.Get(base::Bytes{1, 1}), base::Bytes{10});  // committed store untouched
  EXPECT_EQ(**kv.Get(base::Bytes{1, 1}), base::Bytes{10});
}

TEST_F(PipelineTest, TransferChargesFeeBurnsShareAndPaysProposer) {
  auto receipt = Apply(Signed(Body(alice, 0, {Send(TestAddress(bob), 1234)}, 4000), alice));
  ASSERT_TRUE(receipt.has_value()) << receipt.error().ToString();
  EXPECT_EQ(receipt->code, 0);
  EXPECT_EQ(receipt->fee_ugpn, 4000u);
  EXPECT_EQ(Account(alice), (codec::Account{1'000'000 - 4000 - 1234, 1}));
  EXPECT_EQ(Account(bob), (codec::Account{500 + 1234, 0}));
  EXPECT_EQ(Account(proposer).balance_ugpn, 3000u);  // 25% of 4000 burned
  EXPECT_EQ(GetSupply(db)->burned_ugpn, 1000u);
  CommitAndCheck();
}

TEST_F(PipelineTest, IncludedFailureChargesFeeAdvancesNonceRollsBackAllMessages) {
  // First message would succeed alone; the second overdraws: both roll back.
  auto bytes = Signed(
      Body(alice, 0, {Send(TestAddress(carol), 1000), Send(TestAddress(bob), 999'000)}, 5000),
      alice);
  auto receipt = Apply(bytes);
  ASSERT_TRUE(receipt.has_value());
  EXPECT_EQ(receipt->code, static_cast<uint16_t>(TxCode::kInsufficientFunds));
  EXPECT_EQ(receipt->fee_ugpn, 5000u);
  EXPECT_EQ(Account(alice), (codec::Account{1'000'000 - 5000, 1}));
  EXPECT_EQ(Account(carol), (codec::Account{0, 0}));
  EXPECT_EQ(Account(bob), (codec::Account{500, 0}));
  EXPECT_FALSE(db.Get(keyspace::AccountKey(TestAddress(carol)))->has_value())
      << "carol was never created";
  CommitAndCheck();
  // The same tx again is now a replay.
  auto again = Apply(bytes);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, TxCode::kStaleNonce);
}

TEST_F(PipelineTest, EveryRefusalLeavesStateByteIdentical) {
  const codec::Address to = TestAddress(bob);
  codec::TxBody wrong_chain = Body(alice, 0, {Send(to, 1)});
  wrong_chain.chain_id = "other-chain";
  codec::TxBody expired = Body(alice, 0, {Send(to, 1)});
  expired.timeout_height = 4;
  codec::Tx forged = codec::SignTx(Body(alice, 0, {Send(to, 1)}), alice);
  forged.body.fee_ugpn += 1;  // signature no longer covers the body
  base::Bytes truncated = Signed(Body(alice, 0, {Send(to, 1)}), alice);
  truncated.pop_back();
  std::vector<codec::Msg> five(5, Send(to, 1));

  struct RefusalCase {
    const char* name;
    base::Bytes bytes;
    TxCode code;
    uint64_t height = 5;
  };
  std::vector<RefusalCase> cases = {
      {"garbage", base::Bytes{1, 2, 3}, TxCode::kMalformed},
      {"truncated", truncated, TxCode::kMalformed},
      {"too large", base::Bytes(params.tx_bytes_max + 1, 0), TxCode::kTooLarge},
      {"bad signature", codec::EncodeTx(forged), TxCode::kBadSignature},
      {"wrong chain", Signed(wrong_chain, alice), TxCode::kWrongChain},
      {"future nonce", Signed(Body(alice, 5, {Send(to, 1)}), alice), TxCode::kFutureNonce},
      {"expired", Signed(expired, alice), TxCode::kExpired},
      {"fee too low", Signed(Body(alice, 0, {Send(to, 1)}, 999), alice), TxCode::kFeeTooLow},
      {"fee unpayable", Signed(Body(bob, 0, {Send(to, 1)}, 1000), bob),
       TxCode::kInsufficientFeeFunds},
      {"amount overflow", Signed(Body(alice, 0, {Send(to, UINT64_MAX - 10), Send(to, 100)}), alice),
       TxCode::kAmountOverflow},
      {"zero amount", Signed(Body(alice, 0, {Send(to, 0)}), alice), TxCode::kZeroAmount},
      {"too many msgs", Signed(Body(alice, 0, five, 50000), alice), TxCode::kTooManyMsgs},
  };
  // Some pending state of an earlier tx in the same block must survive too.
  ASSERT_TRUE(Apply(Signed(Body(alice, 0, {Send(TestAddress(carol), 7000)}), alice)));
  for (auto& c : cases) {
    auto before = db.Pending();
    auto before_supply = GetSupply(db);
    auto result = Apply(c.bytes, c.height);
    ASSERT_FALSE(result.has_value()) << c.name;
    EXPECT_TRUE(codec::IsRejectedBeforeInclusion(result.error().code)) << c.name;
    EXPECT_EQ(result.error().code, c.code) << c.name << ": " << result.error().ToString();
    EXPECT_FALSE(result.error().message.empty()) << c.name;
    EXPECT_EQ(db.Pending(), before) << c.name;
    EXPECT_EQ(*GetSupply(db), *before_supply) << c.name;
  }
  // Stale nonce (0 was used above) and a nonce two ahead.
  auto stale = Apply(Signed(Body(alice, 0, {Send(to, 1)}), alice));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, TxCode::kStaleNonce);
  auto future = Apply(Signed(Body(alice, 2, {Send(to, 1)}), alice));
  ASSERT_FALSE(future);
  EXPECT_EQ(future.error().code, TxCode::kFutureNonce);
  CommitAndCheck();
}

// The market's preflight is part of stage 1 (docs/market.md "Preflight"): a malformed
// market message refuses its whole tx with the market's code and the message's index,
// before the fee and signature checks, and nothing changes.
TEST_F(PipelineTest, MalformedMarketMessageIsRefusedBeforeInclusionWithItsCode) {
  auto before = db.Pending();
  codec::MsgOrderCreate order;
  order.requirements.machines = 1;
  order.requirements.gpus_per_machine = 1;
  order.max_price_ugpn_per_gpu_hour = 10;
  order.deposit_ugpn = 10;
  order.bid_window_ms = 0;  // under kBidWindowMinMs
  codec::Tx forged = codec::SignTx(Body(alice, 0, {Send(TestAddress(bob), 1), order}), alice);
  forged.body.fee_ugpn += 1;  // the signature does not cover it: the preflight comes first
  auto refused = Stateless(codec::EncodeTx(forged));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, TxCode::kMarketInvalidField);
  EXPECT_NE(refused.error().message.find("message 1: bid window 0 ms"), std::string::npos)
      << refused.error().message;
  auto zero_bond = Apply(Signed(Body(alice, 0, {codec::MsgProviderBond{0}}), alice));
  ASSERT_FALSE(zero_bond.has_value());
  EXPECT_EQ(zero_bond.error().code, TxCode::kMarketZeroAmount);
  EXPECT_EQ(db.Pending(), before);
  EXPECT_EQ(Account(alice), (codec::Account{1'000'000, 0}));
  // Fixed, the same order passes stage 1 (and fails its rule when applied).
  order.bid_window_ms = 60'000;
  EXPECT_TRUE(Stateless(Signed(Body(alice, 0, {order}), alice)).has_value());
}

TEST_F(PipelineTest, CheckTxRuleAllowsNoncesAheadUpToTheLimit) {
  auto tx = Stateless(Signed(Body(alice, 8, {Send(TestAddress(bob), 1)}), alice));
  ASSERT_TRUE(tx);
  auto ahead = CheckStateful(db, *tx, 1, params, NonceRule::kAllowAhead);
  ASSERT_TRUE(ahead);
  EXPECT_TRUE(ahead->has_value());
  auto exact = CheckStateful(db, *tx, 1, params, NonceRule::kExact);
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->error().code, TxCode::kFutureNonce);
  auto far = Stateless(Signed(Body(alice, 9, {Send(TestAddress(bob), 1)}), alice));
  EXPECT_EQ((*CheckStateful(db, *far, 1, params, NonceRule::kAllowAhead)).error().code,
            TxCode::kFutureNonce);
}

TEST_F(PipelineTest, SignatureIsVerifiedOncePerTxHash) {
  auto bytes = Signed(Body(alice, 0, {Send(TestAddress(bob), 1)}), alice);
  EXPECT_EQ(cache.Size(), 0u);
  ASSERT_TRUE(Stateless(bytes));
  EXPECT_EQ(cache.Size(), 1u);
  EXPECT_TRUE(cache.Contains(codec::TxHashOfEncoded(bytes)));
  ASSERT_TRUE(Stateless(bytes));
  EXPECT_EQ(cache.Size(), 1u);
  // A bad signature is never cached, so it fails every time.
  codec::Tx forged = codec::SignTx(Body(alice, 1, {Send(TestAddress(bob), 1)}), alice);
  forged.signature[0] ^= 1;
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(Stateless(codec::EncodeTx(forged)).error().code, TxCode::kBadSignature);
  EXPECT_EQ(cache.Size(), 1u);
  // Bounded: 16 shards (by the hash's last byte) of capacity/16 each; in a full
  // shard the oldest entry goes first, other shards keep theirs.
  SignatureCache small(32);
  base::Hash32 a, b, c, other;
  a[0] = 1, b[0] = 2, c[0] = 3;  // all in shard 0
  other[31] = 1;
  small.Insert(other);
  small.Insert(a), small.Insert(b), small.Insert(c);
  EXPECT_FALSE(small.Contains(a));
  EXPECT_TRUE(small.Contains(b) && small.Contains(c) && small.Contains(other));
  EXPECT_EQ(small.Size(), 3u);
}

TEST_F(PipelineTest, AccountsDrainedToZeroStayWithTheirNonce) {
  // bob spends everything: balance 500 pays fee 500? the minimum is 1000, so fund bob first.
  ASSERT_TRUE(Apply(Signed(Body(alice, 0, {Send(TestAddress(bob), 1500)}), alice)));
  auto bytes = Signed(Body(bob, 0, {Send(TestAddress(carol), 1000)}, 1000), bob);
  auto receipt = Apply(bytes);
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->code, 0);
  EXPECT_EQ(Account(bob), (codec::Account{0, 1}));
  CommitAndCheck();
  auto stored = kv.Get(keyspace::AccountKey(TestAddress(bob)));
  ASSERT_TRUE(stored && stored->has_value()) << "a zero-balance account is kept";
  EXPECT_EQ(*codec::DecodeAccount(**stored), (codec::Account{0, 1}));
  // Refund bob; the old tx still cannot replay.
  ASSERT_TRUE(Apply(Signed(Body(alice, 1, {Send(TestAddress(bob), 5000)}), alice)));
  EXPECT_EQ(Apply(bytes).error().code, TxCode::kStaleNonce);
  CommitAndCheck();
}

TEST_F(PipelineTest, SelfSendOnlyCostsTheFee) {
  auto receipt = Apply(Signed(Body(alice, 0, {Send(TestAddress(alice), 10'000)}, 2000), alice));
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->code, 0);
  EXPECT_EQ(Account(alice), (codec::Account{1'000'000 - 2000, 1}));
  CommitAndCheck();
}

TEST_F(PipelineTest, ConservationCatchesATokenCreatedOutsideThePipeline) {
  CommitAndCheck();
  WriteBatch cheat;
  cheat.Put(keyspace::AccountKey(TestAddress(carol)), codec::EncodeAccount({1, 0}));
  ASSERT_TRUE(kv.Commit(cheat));
  auto report = CheckConservation(kv);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(report.error().message.find("conservation broken"), std::string::npos);
}

TEST_F(PipelineTest, FeesWithoutProposerGoToThePool) {
  auto checked = Stateless(Signed(Body(alice, 0, {Send(TestAddress(bob), 1)}, 4000), alice));
  ASSERT_TRUE(checked);
  auto applied = ApplyTx(db, *checked, BlockContext{1, 1, codec::Address{}}, 0, params);
  ASSERT_TRUE(applied && applied->has_value());
  EXPECT_EQ(GetSupply(db)->fee_pool_ugpn, 3000u);
  EXPECT_EQ(GetSupply(db)->burned_ugpn, 1000u);
  CommitAndCheck();
}

}  // namespace
}  // namespace gpunet::state
