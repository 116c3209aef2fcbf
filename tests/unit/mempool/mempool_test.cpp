// Mempool policy over a real LedgerApp on a MemoryKvStore: real signatures, real
// CheckTx, blocks driven through the Application interface.
#include "mempool/mempool.h"

#include <gtest/gtest.h>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "ledger/app.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::mempool {
namespace {

using codec::TxCode;
using ledger::testing::RunBlock;
using ledger::testing::SignedSend;
using ledger::testing::TestAddress;

struct Fixture : ::testing::Test {
  state::MemoryKvStore kv;
  std::unique_ptr<ledger::LedgerApp> app;
  void SetUp() override {
    auto opened = ledger::LedgerApp::Open(kv, ledger::testing::TestGenesis(8));
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    app = std::move(*opened);
  }
  // Builds a block from the pool and tells the pool about it.
  ledger::testing::BlockOutcome Block(Mempool& pool) {
    auto out = RunBlock(*app, pool.Reap(0, 0));
    pool.Update(out.block);
    return out;
  }
};

base::Hash32 H(const base::Bytes& b) {
  return codec::TxHashOfEncoded(b);
}

TEST_F(Fixture, AdmitsAndRejectsWithCodes) {
  Mempool pool(*app);
  auto tx = SignedSend(1, 0, TestAddress(2), 100);
  auto r = pool.Add(tx);
  ASSERT_TRUE(r.Ok()) << r.message;
  EXPECT_EQ(r.tx_hash, H(tx));
  EXPECT_EQ(pool.Add(tx).code, TxCode::kAlreadyKnown);
  base::Bytes garbage = {1, 2, 3};
  auto g = pool.Add(garbage);
  EXPECT_EQ(g.code, TxCode::kMalformed);
  EXPECT_FALSE(g.message.empty());
  EXPECT_EQ(pool.Add(SignedSend(1, 0, TestAddress(2), 100, 2000, "other-chain")).code,
            TxCode::kWrongChain);
  EXPECT_EQ(pool.Add(SignedSend(1, 1, TestAddress(2), 100, 10)).code, TxCode::kFeeTooLow);
  auto bad_sig = SignedSend(3, 0, TestAddress(2), 100);
  bad_sig[bad_sig.size() - 1] ^= 1;
  EXPECT_EQ(pool.Add(bad_sig).code, TxCode::kBadSignature);
  EXPECT_EQ(pool.Stats().txs, 1u);
}

TEST_F(Fixture, NonceQueueWaitsForGapAndRespectsGapLimit) {
  MempoolOptions o;
  o.nonce_gap_max = 3;
  Mempool pool(*app, o);
  ASSERT_TRUE(pool.Add(SignedSend(1, 2, TestAddress(2), 1)).Ok());
  EXPECT_FALSE(pool.HasExecutable());
  EXPECT_TRUE(pool.Reap(0, 0).empty());
  auto far = pool.Add(SignedSend(1, 4, TestAddress(2), 1));
  EXPECT_EQ(far.code, TxCode::kNonceGapTooLarge) << far.message;
  ASSERT_TRUE(pool.Add(SignedSend(1, 0, TestAddress(2), 1)).Ok());
  EXPECT_EQ(pool.Reap(0, 0).size(), 1u);  // nonce 1 missing: only 0 executes
  ASSERT_TRUE(pool.Add(SignedSend(1, 1, TestAddress(2), 1)).Ok());
  auto reaped = pool.Reap(0, 0);
  ASSERT_EQ(reaped.size(), 3u);
  auto out = Block(pool);
  EXPECT_EQ(out.block.txs.size(), 3u);
  EXPECT_EQ(pool.Stats().txs, 0u);
  EXPECT_EQ(ledger::testing::AccountOf(*app, TestAddress(1)).nonce, 3u);
  // Stale now.
  EXPECT_EQ(pool.Add(SignedSend(1, 1, TestAddress(2), 5)).code, TxCode::kStaleNonce);
}

TEST_F(Fixture, NextFreeNonceCountsOnlyTheContiguousPendingRun) {
  Mempool pool(*app);
  const codec::Address sender = TestAddress(1);
  EXPECT_EQ(pool.NextFreeNonce(sender, 0), 0u);  // nothing pending
  ASSERT_TRUE(pool.Add(SignedSend(1, 2, TestAddress(2), 1)).Ok());
  EXPECT_EQ(pool.NextFreeNonce(sender, 0), 0u);  // 2 waits behind the missing 0 and 1
  ASSERT_TRUE(pool.Add(SignedSend(1, 0, TestAddress(2), 1)).Ok());
  EXPECT_EQ(pool.NextFreeNonce(sender, 0), 1u);
  ASSERT_TRUE(pool.Add(SignedSend(1, 1, TestAddress(2), 1)).Ok());
  EXPECT_EQ(pool.NextFreeNonce(sender, 0), 3u);
  EXPECT_EQ(pool.NextFreeNonce(sender, 2), 3u);          // from a later account nonce
  EXPECT_EQ(pool.NextFreeNonce(TestAddress(2), 0), 0u);  // another sender
  Block(pool);
  EXPECT_EQ(pool.NextFreeNonce(sender, 3), 3u);  // all included
}

TEST_F(Fixture, NextFreeNonceIsNotFooledByABlockBetweenTheAccountReadAndThePool) {
  Mempool pool(*app);
  const codec::Address sender = TestAddress(1);
  for (uint64_t n = 0; n < 3; ++n) ASSERT_TRUE(pool.Add(SignedSend(1, n, TestAddress(2), 1)).Ok());
  // The RPC reads the account (nonce 0), then a block commits nonces 0..2 and
  // the pool drops them, then the RPC asks the pool: counted from 0 it would say
  // 0, and a wait on nonce 3 (executable now) would be refused as a gap.
  int reads = 0;
  auto account_nonce = [&]() -> base::Result<uint64_t> {
    const uint64_t nonce = ledger::testing::AccountOf(*app, sender).nonce;
    if (reads++ == 0) Block(pool);  // the commit lands right after the first read
    return nonce;
  };
  auto next = pool.NextFreeNonce(sender, account_nonce);
  ASSERT_TRUE(next) << next.error().ToString();
  EXPECT_EQ(*next, 3u);
  EXPECT_EQ(ledger::testing::AccountOf(*app, sender).nonce, 3u);
  EXPECT_EQ(reads, 3);  // 0, then 3 (moved: the pool asked again), then 3 (agrees)
  // Read failures are passed on.
  auto failed = pool.NextFreeNonce(
      sender, []() -> base::Result<uint64_t> { return base::Fail(base::ErrorCode::kIo, "disk"); });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, base::ErrorCode::kIo);
}

TEST_F(Fixture, FeePriorityAcrossSendersPrefixWithinSender) {
  Mempool pool(*app);
  auto a0 = SignedSend(1, 0, TestAddress(5), 1, 2000);
  auto a1 = SignedSend(1, 1, TestAddress(5), 1, 9000);  // high fee but behind a0
  auto b0 = SignedSend(2, 0, TestAddress(5), 1, 5000);
  auto c0 = SignedSend(3, 0, TestAddress(5), 1, 3000);
  for (auto* t : {&a1, &a0, &b0, &c0}) ASSERT_TRUE(pool.Add(*t).Ok());
  auto r = pool.Reap(0, 0);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], b0);
  EXPECT_EQ(r[1], c0);
  EXPECT_EQ(r[2], a0);
  EXPECT_EQ(r[3], a1);
  EXPECT_EQ(pool.Reap(0, 2).size(), 2u);
  EXPECT_EQ(pool.Reap(b0.size() + 1, 0).size(), 1u);
}

// A block's gas is the sum of its txs' gas limits (what their fees buy): Reap
// stops at max_gas, skipping a tx over what is left for a smaller one behind it.
TEST_F(Fixture, ReapKeepsTheBlockGasLimit) {
  Mempool pool(*app);
  auto big = SignedSend(1, 0, TestAddress(5), 1, 9000);    // ~8,700 gas
  auto small = SignedSend(2, 0, TestAddress(5), 1, 2000);  // ~1,700 gas
  auto other = SignedSend(3, 0, TestAddress(5), 1, 1900);  // ~1,600 gas
  for (auto* t : {&big, &small, &other}) ASSERT_TRUE(pool.Add(*t).Ok());
  const auto gas_of = [&](const base::Bytes& tx) {
    for (const auto& c : pool.ReapChecked(0, 0))
      if (codec::EncodeTx(c->tx) == tx) return c->gas_limit;
    ADD_FAILURE() << "tx not in the pool";
    return uint64_t{0};
  };
  const uint64_t big_gas = gas_of(big), small_gas = gas_of(small), other_gas = gas_of(other);
  EXPECT_EQ(big_gas, 9000 - big.size() - 100);
  EXPECT_EQ(pool.Reap(0, 0, 0).size(), 3u);
  auto r = pool.Reap(0, 0, small_gas + other_gas);  // the big one does not fit: skipped
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], small);
  EXPECT_EQ(r[1], other);
  r = pool.Reap(0, 0, big_gas + small_gas);  // no room for the third
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], big);
  EXPECT_EQ(r[1], small);
  EXPECT_EQ(pool.ReapChecked(0, 0, big_gas - 1).size(), 2u);
}

// ReapChecked hands PrepareProposal the txs CheckTx decoded: the same txs in the
// same order as Reap, the same block from them, and the stateful checks still run.
TEST_F(Fixture, ReapCheckedBuildsTheBlockReapWould) {
  Mempool pool(*app);
  auto a0 = SignedSend(1, 0, TestAddress(5), 1, 2000);
  auto a1 = SignedSend(1, 1, TestAddress(5), 1, 9000);
  auto b0 = SignedSend(2, 0, TestAddress(5), 1, 5000);
  for (auto* t : {&a1, &a0, &b0}) ASSERT_TRUE(pool.Add(*t).Ok());
  auto bytes = pool.Reap(0, 0);
  auto checked = pool.ReapChecked(0, 0);
  ASSERT_EQ(checked.size(), bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_NE(checked[i], nullptr);
    EXPECT_EQ(checked[i]->hash, H(bytes[i])) << i;
    EXPECT_EQ(codec::EncodeTx(checked[i]->tx), bytes[i]) << i;
  }
  EXPECT_EQ(pool.ReapChecked(0, 2).size(), 2u);

  const ledger::AppInfo info = app->Info();
  ledger::PrepareProposalRequest request;
  request.height = info.last_height + 1;
  request.time_ms = info.last_block_time_ms + 1000;
  request.proposer = TestAddress(0);
  request.txs = bytes;
  auto from_bytes = app->PrepareProposal(request);
  ASSERT_TRUE(from_bytes.has_value()) << from_bytes.error().ToString();
  request.txs.clear();
  request.checked_txs = checked;
  auto from_checked = app->PrepareProposal(request);
  ASSERT_TRUE(from_checked.has_value()) << from_checked.error().ToString();
  EXPECT_EQ(from_checked->block, from_bytes->block);
  EXPECT_EQ(from_checked->block.txs.size(), 3u);

  // Sender 2's nonce 0 is used by another tx first: the checked copy is now stale
  // and PrepareProposal leaves it out with the stateful code.
  ledger::testing::RunBlock(*app, {SignedSend(2, 0, TestAddress(6), 1, 6000)});
  request.height += 1;
  request.time_ms += 2000;
  auto stale = app->PrepareProposal(request);
  ASSERT_TRUE(stale.has_value()) << stale.error().ToString();
  ASSERT_EQ(stale->skipped.size(), 1u);
  EXPECT_EQ(stale->skipped[0].tx_hash, H(b0));
  EXPECT_EQ(stale->skipped[0].code, TxCode::kStaleNonce);
  EXPECT_EQ(stale->block.txs.size(), 2u);
}

TEST_F(Fixture, ReplaceByFeeNeedsBump) {
  Mempool pool(*app);
  auto a = SignedSend(1, 0, TestAddress(2), 1, 2000);
  ASSERT_TRUE(pool.Add(a).Ok());
  auto low = pool.Add(SignedSend(1, 0, TestAddress(3), 1, 2100));
  EXPECT_EQ(low.code, TxCode::kReplacementUnderpriced);
  EXPECT_NE(low.message.find("2200"), std::string::npos) << low.message;
  auto ok = SignedSend(1, 0, TestAddress(3), 1, 2200);
  auto r = pool.Add(ok);
  ASSERT_TRUE(r.Ok()) << r.message;
  EXPECT_TRUE(r.replaced);
  EXPECT_FALSE(pool.Contains(H(a)));
  EXPECT_TRUE(pool.Contains(H(ok)));
  EXPECT_EQ(pool.Stats().txs, 1u);
}

TEST_F(Fixture, FullPoolEvictsLowestTailOnlyForHigherFee) {
  MempoolOptions o;
  o.txs_max = 3;
  Mempool pool(*app, o);
  auto a = SignedSend(1, 0, TestAddress(7), 1, 3000);
  auto b0 = SignedSend(2, 0, TestAddress(7), 1, 5000);
  auto b1 = SignedSend(2, 1, TestAddress(7), 1, 2000);  // the lowest tail
  for (auto* t : {&a, &b0, &b1}) ASSERT_TRUE(pool.Add(*t).Ok());
  auto lower = pool.Add(SignedSend(3, 0, TestAddress(7), 1, 1500));
  EXPECT_EQ(lower.code, TxCode::kMempoolFull) << lower.message;
  auto equal = pool.Add(SignedSend(3, 0, TestAddress(7), 1, 2000));
  EXPECT_EQ(equal.code, TxCode::kMempoolFull);
  EXPECT_EQ(pool.Stats().txs, 3u);
  auto high = SignedSend(3, 0, TestAddress(7), 1, 2500);
  auto r = pool.Add(high);
  ASSERT_TRUE(r.Ok()) << r.message;
  ASSERT_EQ(r.evicted.size(), 1u);
  EXPECT_EQ(r.evicted[0].tx_hash, H(b1));
  EXPECT_TRUE(pool.Contains(H(b0)));
  EXPECT_EQ(pool.Stats().txs, 3u);
}

TEST_F(Fixture, BytesCapAndSenderCap) {
  MempoolOptions o;
  o.sender_txs_max = 2;
  Mempool pool(*app, o);
  ASSERT_TRUE(pool.Add(SignedSend(1, 0, TestAddress(2), 1)).Ok());
  ASSERT_TRUE(pool.Add(SignedSend(1, 1, TestAddress(2), 1)).Ok());
  EXPECT_EQ(pool.Add(SignedSend(1, 2, TestAddress(2), 1)).code, TxCode::kSenderLimitReached);
  auto one = SignedSend(4, 0, TestAddress(2), 1);
  MempoolOptions ob;
  ob.bytes_max = one.size() * 2 + 1;
  Mempool small(*app, ob);
  ASSERT_TRUE(small.Add(one).Ok());
  ASSERT_TRUE(small.Add(SignedSend(5, 0, TestAddress(2), 1)).Ok());
  EXPECT_EQ(small.Add(SignedSend(6, 0, TestAddress(2), 1)).code, TxCode::kMempoolFull);
  EXPECT_LE(small.Stats().bytes, ob.bytes_max);
}

TEST_F(Fixture, ExpiryAndRecheckAfterBlocks) {
  Mempool pool(*app);
  // Nonce 1 waits behind nonce 0, which never comes; timeout_height 2.
  auto expiring = SignedSend(1, 1, TestAddress(2), 1, 2000, "gpunet-test", 2);
  ASSERT_TRUE(pool.Add(expiring).Ok());
  // A tx of sender 3 gets included directly (not through the pool): its pending
  // twin with the same nonce becomes stale and is dropped by the re-check.
  auto pending = SignedSend(3, 0, TestAddress(2), 1, 2000);
  ASSERT_TRUE(pool.Add(pending).Ok());
  auto direct = SignedSend(3, 0, TestAddress(4), 1, 2500);
  auto out = RunBlock(*app, {direct});
  ASSERT_EQ(out.block.txs.size(), 1u);
  auto dropped = pool.Update(1, {codec::TxHash(out.block.txs[0])});
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].tx_hash, H(pending));
  EXPECT_EQ(dropped[0].code, TxCode::kStaleNonce);
  EXPECT_TRUE(pool.Contains(H(expiring)));
  RunBlock(*app, {});  // height 2 was the last that could include it
  dropped = pool.Update(2, {});
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].code, TxCode::kExpired);
  EXPECT_EQ(pool.Stats().txs, 0u);
}

TEST_F(Fixture, BlockUpdateRechecksTheBlocksSendersAndExpiresEveryone) {
  Mempool pool(*app);
  // Sender 3's pending tx is made stale by a direct tx of sender 3 in the block.
  auto pending = SignedSend(3, 0, TestAddress(2), 1, 2000);
  ASSERT_TRUE(pool.Add(pending).Ok());
  // Sender 5's tx is untouched by the block and stays.
  auto other = SignedSend(5, 0, TestAddress(2), 1, 2000);
  ASSERT_TRUE(pool.Add(other).Ok());
  // Sender 6's tx expires after height 1 although sender 6 is not in the block.
  auto expiring = SignedSend(6, 0, TestAddress(2), 1, 2000, "gpunet-test", 1);
  ASSERT_TRUE(pool.Add(expiring).Ok());
  auto out = RunBlock(*app, {SignedSend(3, 0, TestAddress(4), 1, 2500)});
  ASSERT_EQ(out.block.txs.size(), 1u);
  auto dropped = pool.Update(out.block);
  ASSERT_EQ(dropped.size(), 2u);
  std::map<base::Hash32, TxCode> codes;
  for (const auto& d : dropped) codes[d.tx_hash] = d.code;
  EXPECT_EQ(codes[H(pending)], TxCode::kStaleNonce);
  EXPECT_EQ(codes[H(expiring)], TxCode::kExpired);
  EXPECT_TRUE(pool.Contains(H(other)));
  EXPECT_EQ(pool.Stats().txs, 1u);
}

// A tx that leaves the pool (replaced, removed, included) leaves the expiry index
// too: a later expiry pass neither drops its successor nor trips on it.
TEST_F(Fixture, TxsThatLeaveThePoolNoLongerExpire) {
  Mempool pool(*app);
  const auto with_timeout = [](uint32_t sender, uint64_t fee, uint64_t timeout) {
    return SignedSend(sender, 0, TestAddress(2), 1, fee, "gpunet-test", timeout);
  };
  // Sender 1: a tx with timeout 1, replaced by one without a timeout.
  ASSERT_TRUE(pool.Add(with_timeout(1, 2000, 1)).Ok());
  auto replacement = with_timeout(1, 3000, 0);
  ASSERT_TRUE(pool.Add(replacement).replaced);
  // Sender 3: a tx with timeout 1, removed (as a proposer does with an invalid one).
  auto removed = with_timeout(3, 2000, 1);
  ASSERT_TRUE(pool.Add(removed).Ok());
  ASSERT_TRUE(pool.Remove(H(removed)));
  // Sender 5: a tx with timeout 1 that the block includes.
  auto included = with_timeout(5, 2000, 1);
  ASSERT_TRUE(pool.Add(included).Ok());
  auto out = RunBlock(*app, {included});
  ASSERT_EQ(out.block.txs.size(), 1u);
  EXPECT_TRUE(pool.Update(out.block).empty());
  RunBlock(*app, {});
  EXPECT_TRUE(pool.Update(2, {}).empty());  // height 2: every timeout-1 tx would expire
  EXPECT_TRUE(pool.Contains(H(replacement)));
  EXPECT_EQ(pool.Stats().txs, 1u);
}

// A refused tx changes nothing, not even by leaving an empty queue for its sender.
TEST_F(Fixture, RefusedTxLeavesNoSenderBehind) {
  MempoolOptions o;
  o.txs_max = 1;
  Mempool pool(*app, o);
  ASSERT_TRUE(pool.Add(SignedSend(1, 0, TestAddress(2), 1, 3000)).Ok());
  EXPECT_EQ(pool.Add(SignedSend(3, 0, TestAddress(2), 1, 2000)).code, TxCode::kMempoolFull);
  EXPECT_EQ(pool.Stats().senders, 1u);
  EXPECT_EQ(pool.Stats().txs, 1u);
}

TEST_F(Fixture, FeesMustBeCoveredAcrossTheQueue) {
  state::MemoryKvStore kv2;
  auto g = ledger::testing::TestGenesis(2, 5000);
  auto opened = ledger::LedgerApp::Open(kv2, g);
  ASSERT_TRUE(opened.has_value());
  Mempool pool(**opened);
  ASSERT_TRUE(pool.Add(SignedSend(1, 0, TestAddress(2), 1, 2000)).Ok());
  ASSERT_TRUE(pool.Add(SignedSend(1, 1, TestAddress(2), 1, 2000)).Ok());
  auto r = pool.Add(SignedSend(1, 2, TestAddress(2), 1, 2000));
  EXPECT_EQ(r.code, TxCode::kInsufficientFeeFunds) << r.message;
}

}  // namespace
}  // namespace gpunet::mempool
