// LedgerApp through the Application interface: blocks, headers, CheckTx codes,
// proposals that must be rejected, proofs, limits.
#include <gtest/gtest.h>

#include "codec/hashes.h"
#include "codec/smt_proof.h"
#include "ledger/app.h"
#include "ledger/block_store.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::ledger {
namespace {

using codec::TxCode;
using namespace testing;

struct Fixture {
  explicit Fixture(Genesis g = TestGenesis(4)) : genesis(std::move(g)) {
    auto opened = LedgerApp::Open(kv, genesis);
    EXPECT_TRUE(opened.has_value()) << opened.error().ToString();
    app = std::move(*opened);
  }
  Genesis genesis;
  state::MemoryKvStore kv;
  std::unique_ptr<LedgerApp> app;
};

void ExpectProvenBalance(const LedgerApp& app, const codec::Address& address,
                         std::optional<uint64_t> balance) {
  auto r =
      app.Query(QueryRequest{"/account", base::Bytes(address.begin(), address.end()), 0, true});
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  ASSERT_TRUE(r->proof.has_value());
  EXPECT_EQ(r->state_root, app.Info().state_root);
  const base::Hash32 key_hash = codec::SmtKeyHash(r->key);
  if (balance) {
    ASSERT_TRUE(r->value.has_value());
    EXPECT_EQ(codec::DecodeAccount(*r->value)->balance_ugpn, *balance);
    EXPECT_TRUE(codec::VerifySmtMembership(r->state_root, key_hash, codec::SmtValueHash(*r->value),
                                           *r->proof));
  } else {
    EXPECT_FALSE(r->value.has_value());
    EXPECT_TRUE(codec::VerifySmtNonMembership(r->state_root, key_hash, *r->proof));
  }
}

TEST(AppTest, TransfersMakeChainedBlocksWithCorrectHeaders) {
  Fixture f;
  const AppInfo start = f.app->Info();
  EXPECT_EQ(start.last_height, 0u);
  ExpectProvenBalance(*f.app, TestAddress(1), 1'000'000'000);
  ExpectProvenBalance(*f.app, TestAddress(77), std::nullopt);

  auto tx = SignedSend(1, 0, TestAddress(77), 12345, 3000);
  auto b1 = RunBlock(*f.app, {tx});
  ASSERT_EQ(b1.block.txs.size(), 1u);
  ASSERT_EQ(b1.receipts.size(), 1u);
  EXPECT_EQ(b1.receipts[0].code, 0);
  const codec::BlockHeader& h = b1.block.header;
  EXPECT_EQ(h.height, 1u);
  EXPECT_EQ(h.chain_id, "gpunet-test");
  EXPECT_TRUE(h.last_block_hash.IsZero());
  EXPECT_EQ(h.tx_root, codec::TxRoot(b1.block.txs));
  EXPECT_EQ(h.receipts_root, codec::ReceiptsRoot(b1.receipts));
  EXPECT_EQ(h.validator_set_hash, codec::ValidatorSetHash(f.genesis.validators));
  EXPECT_EQ(h.proposer, TestAddress(0));
  EXPECT_NE(h.state_root, start.state_root);

  ExpectProvenBalance(*f.app, TestAddress(77), 12345);
  ExpectProvenBalance(*f.app, TestAddress(1), 1'000'000'000 - 12345 - 3000);
  ExpectProvenBalance(*f.app, TestAddress(0), 3000 - 900);  // 30% burned

  auto b2 = RunBlock(*f.app, {SignedSend(77, 0, TestAddress(2), 100, 1000)});
  EXPECT_EQ(b2.block.header.last_block_hash, codec::BlockHash(h));
  EXPECT_EQ(f.app->Info().last_height, 2u);

  // The block store holds what was committed.
  auto stored = ReadBlock(f.kv, 1);
  ASSERT_TRUE(stored && stored->has_value());
  EXPECT_EQ(**stored, b1.block);
  auto found = FindTx(f.kv, codec::TxHashOfEncoded(tx));
  ASSERT_TRUE(found && found->has_value());
  EXPECT_EQ((*found)->location.height, 1u);
  EXPECT_EQ((*found)->receipt, b1.receipts[0]);
  EXPECT_EQ(*ReadReceipts(f.kv, 2), b2.receipts);
  EXPECT_EQ(**ReadBlockHeight(f.kv, codec::BlockHash(h)), 1u);
  EXPECT_TRUE(state::CheckConservation(f.kv).has_value());
}

TEST(AppTest, CheckTxGivesEveryRefusalItsCodeAndChangesNothing) {
  Fixture f;
  RunBlock(*f.app, {SignedSend(1, 0, TestAddress(2), 10)});
  const auto before = Dump(f.kv);
  codec::TxBody expired_body;
  expired_body.chain_id = "gpunet-test";
  expired_body.sender = TestKey(2).Public();
  expired_body.fee_ugpn = 2000;
  expired_body.timeout_height = 1;
  expired_body.msgs.push_back(codec::MsgSend{TestAddress(3), 5});
  codec::Tx forged = codec::SignTx(expired_body, TestKey(2));
  forged.body.timeout_height = 0;
  struct Case {
    base::Bytes bytes;
    TxCode code;
  };
  std::vector<Case> cases = {
      {{0xde, 0xad}, TxCode::kMalformed},
      {base::Bytes(70000, 1), TxCode::kTooLarge},
      {codec::EncodeTx(forged), TxCode::kBadSignature},
      {SignedSend(2, 0, TestAddress(3), 5, 2000, "other-chain"), TxCode::kWrongChain},
      {SignedSend(1, 0, TestAddress(3), 5), TxCode::kStaleNonce},
      {SignedSend(1, 1 + 65, TestAddress(3), 5), TxCode::kFutureNonce},
      {codec::EncodeTx(codec::SignTx(expired_body, TestKey(2))), TxCode::kExpired},
      {SignedSend(2, 0, TestAddress(3), 5, 999), TxCode::kFeeTooLow},
      {SignedSend(50, 0, TestAddress(3), 5), TxCode::kInsufficientFeeFunds},
      {SignedSend(2, 0, TestAddress(3), 0), TxCode::kZeroAmount},
  };
  for (const auto& c : cases) {
    CheckTxResponse r = f.app->CheckTx(c.bytes, CheckTxMode::kNew);
    EXPECT_EQ(r.code, c.code) << codec::TxCodeName(r.code) << ": " << r.message;
    EXPECT_FALSE(r.message.empty());
  }
  // Accepted: ahead nonces within the limit, and a tx that will fail its message.
  CheckTxResponse ahead = f.app->CheckTx(SignedSend(1, 5, TestAddress(3), 5), CheckTxMode::kNew);
  EXPECT_TRUE(ahead.Ok()) << ahead.message;
  EXPECT_EQ(ahead.account_nonce, 1u);
  EXPECT_EQ(ahead.nonce, 5u);
  EXPECT_EQ(ahead.sender, TestAddress(1));
  CheckTxResponse overdraw =
      f.app->CheckTx(SignedSend(2, 0, TestAddress(3), 5'000'000'000), CheckTxMode::kRecheck);
  EXPECT_TRUE(overdraw.Ok()) << overdraw.message;
  EXPECT_EQ(Dump(f.kv), before);
}

TEST(AppTest, ProposalSkipsRefusedTxsAndTheStateIsAsIfTheyNeverCame) {
  Fixture with_bad, only_good;
  auto good = SignedSend(1, 0, TestAddress(9), 500);
  auto fail = SignedSend(2, 0, TestAddress(9), 5'000'000'000);  // included, fails
  std::vector<base::Bytes> bad = {
      {1, 2, 3},
      SignedSend(3, 7, TestAddress(9), 1),
      SignedSend(3, 0, TestAddress(9), 1, 10),
      SignedSend(60, 0, TestAddress(9), 1),
      good,  // a duplicate of an included tx: stale nonce by then
  };
  std::vector<base::Bytes> mixed = {bad[0], good, bad[1], fail, bad[2], bad[3], bad[4]};
  auto a = RunBlock(*with_bad.app, mixed);
  auto b = RunBlock(*only_good.app, {good, fail});
  EXPECT_EQ(a.block, b.block);
  ASSERT_EQ(a.skipped.size(), 5u);
  EXPECT_EQ(a.skipped[0].code, TxCode::kMalformed);
  EXPECT_EQ(a.skipped[1].code, TxCode::kFutureNonce);
  EXPECT_EQ(a.skipped[2].code, TxCode::kFeeTooLow);
  EXPECT_EQ(a.skipped[3].code, TxCode::kInsufficientFeeFunds);
  EXPECT_EQ(a.skipped[4].code, TxCode::kStaleNonce);
  EXPECT_EQ(Dump(with_bad.kv), Dump(only_good.kv));
  // The failed tx: in the block, fee charged, nonce advanced, nothing else.
  ASSERT_EQ(a.receipts.size(), 2u);
  EXPECT_EQ(a.receipts[1].code, static_cast<uint16_t>(TxCode::kInsufficientFunds));
  EXPECT_EQ(AccountOf(*with_bad.app, TestAddress(2)), (codec::Account{1'000'000'000 - 2000, 1}));
  EXPECT_EQ(AccountOf(*with_bad.app, TestAddress(9)).balance_ugpn, 500u);
}

TEST(AppTest, ProcessProposalRejectsBadBlocksAndKeepsState) {
  Fixture proposer, validator;
  RunBlock(*proposer.app, {SignedSend(1, 0, TestAddress(2), 10)});
  RunBlock(*validator.app, {SignedSend(1, 0, TestAddress(2), 10)});
  ASSERT_EQ(proposer.app->Info().state_root, validator.app->Info().state_root);

  PrepareProposalRequest req;
  req.height = 2;
  req.time_ms = proposer.app->Info().last_block_time_ms + 1000;
  req.proposer = TestAddress(0);
  req.txs = {SignedSend(1, 1, TestAddress(33), 20), SignedSend(2, 0, TestAddress(33), 30)};
  auto prepared = proposer.app->PrepareProposal(req);
  ASSERT_TRUE(prepared);
  const codec::Block good = prepared->block;
  const auto before = Dump(validator.kv);
  const base::Hash32 root_before = validator.app->Info().state_root;

  auto expect_reject = [&](codec::Block block, const std::string& needle) {
    auto r = validator.app->ProcessProposal(ProcessProposalRequest{block, {}, {}});
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->accept) << needle;
    EXPECT_NE(r->reason.find(needle), std::string::npos) << r->reason;
    EXPECT_FALSE(validator.app->FinalizeBlock(FinalizeBlockRequest{block, {}, {}}).has_value());
    EXPECT_EQ(Dump(validator.kv), before);
    EXPECT_EQ(validator.app->Info().state_root, root_before);
  };
  codec::Block b = good;
  b.header.state_root[0] ^= 1;
  expect_reject(b, "state root");
  b = good;
  b.header.height = 3;
  expect_reject(b, "height");
  b = good;
  b.header.last_block_hash[5] ^= 1;
  expect_reject(b, "last block hash");
  b = good;
  b.header.time_ms = 1;
  expect_reject(b, "time");
  b = good;
  b.header.proposer = TestAddress(1);
  expect_reject(b, "proposer");
  b = good;
  b.txs[0].signature[3] ^= 1;
  b.header.tx_root = codec::TxRoot(b.txs);
  expect_reject(b, "bad_signature");
  b = good;
  b.txs.push_back(
      *codec::DecodeTx(SignedSend(1, 0, TestAddress(33), 20)));  // replay of block 1's nonce
  b.header.tx_root = codec::TxRoot(b.txs);
  expect_reject(b, "stale_nonce");
  // A market message that fails the preflight (a bond of nothing), as a proposer
  // without the preflight would include it: refused like a bad signature
  // (docs/market.md "Preflight").
  b = good;
  codec::TxBody malformed;
  malformed.chain_id = "gpunet-test";
  malformed.sender = TestKey(2).Public();
  malformed.nonce = 1;
  malformed.fee_ugpn = 100'000;
  malformed.msgs.push_back(codec::MsgProviderBond{0});
  b.txs.push_back(codec::SignTx(malformed, TestKey(2)));
  b.header.tx_root = codec::TxRoot(b.txs);
  expect_reject(b, "may not be in a block: market_zero_amount");
  b = good;
  b.txs.pop_back();
  expect_reject(b, "tx root");
  b = good;
  b.header.receipts_root[0] ^= 1;
  expect_reject(b, "receipts root");

  // The proposer has this header cached: a different body under it is still refused.
  b = good;
  b.last_commit.round = 7;
  auto swapped = proposer.app->ProcessProposal(ProcessProposalRequest{b, {}, {}});
  ASSERT_TRUE(swapped);
  EXPECT_FALSE(swapped->accept);
  EXPECT_FALSE(proposer.app->FinalizeBlock(FinalizeBlockRequest{b, {}, {}}));

  // A proof asked for while an executed block is pending is against committed state.
  ASSERT_TRUE(validator.app->ProcessProposal(ProcessProposalRequest{good, {}, {}})->accept);
  ExpectProvenBalance(*validator.app, TestAddress(33), std::nullopt);
  // The good block still commits, on both, to the same state.
  ASSERT_TRUE(validator.app->FinalizeBlock(FinalizeBlockRequest{good, {}, {}}));
  ASSERT_TRUE(validator.app->Commit());
  ASSERT_TRUE(proposer.app->FinalizeBlock(FinalizeBlockRequest{good, {}, {}}));
  ASSERT_TRUE(proposer.app->Commit());
  EXPECT_EQ(validator.app->Info().state_root, proposer.app->Info().state_root);
  EXPECT_EQ(Dump(validator.kv), Dump(proposer.kv));
  ExpectProvenBalance(*validator.app, TestAddress(33), 50);
}

// FinalizeBlock hands its receipts out by move; finalized again before Commit it
// gives the same receipts (decoded back from the encodings Commit stores).
TEST(AppTest, FinalizeTwiceGivesTheSameReceiptsAndCommitStoresThem) {
  Fixture f;
  const AppInfo info = f.app->Info();
  PrepareProposalRequest prepare;
  prepare.height = info.last_height + 1;
  prepare.time_ms = info.last_block_time_ms + 1000;
  prepare.proposer = TestAddress(0);
  prepare.txs = {SignedSend(1, 0, TestAddress(7), 5), SignedSend(2, 0, TestAddress(8), 6)};
  auto prepared = f.app->PrepareProposal(prepare);
  ASSERT_TRUE(prepared.has_value()) << prepared.error().ToString();
  const codec::Block block = prepared->block;
  ASSERT_EQ(block.txs.size(), 2u);
  auto first = f.app->FinalizeBlock(FinalizeBlockRequest{block, {}, {}});
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  auto second = f.app->FinalizeBlock(FinalizeBlockRequest{block, {}, {}});
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  ASSERT_EQ(first->receipts.size(), 2u);
  EXPECT_EQ(second->receipts, first->receipts);
  EXPECT_EQ(codec::ReceiptsRoot(first->receipts), block.header.receipts_root);
  ASSERT_TRUE(f.app->Commit());
  auto stored = ReadReceipts(f.kv, block.header.height);
  ASSERT_TRUE(stored.has_value()) << stored.error().ToString();
  EXPECT_EQ(*stored, first->receipts);
}

TEST(AppTest, BlockLimitsAndCallOrderAreEnforced) {
  Genesis g = TestGenesis(6);
  g.params.block_txs_max = 3;
  Fixture f(g);
  std::vector<base::Bytes> txs;
  for (uint32_t i = 1; i <= 6; ++i) txs.push_back(SignedSend(i, 0, TestAddress(100), 1));
  auto b = RunBlock(*f.app, txs);
  EXPECT_EQ(b.block.txs.size(), 3u);
  EXPECT_TRUE(b.skipped.empty()) << "over-limit txs are left in the mempool, not refused";
  auto no_block = f.app->Commit();
  ASSERT_FALSE(no_block);
  PrepareProposalRequest wrong;
  wrong.height = 5;
  wrong.time_ms = f.app->Info().last_block_time_ms + 1;
  wrong.proposer = TestAddress(0);
  EXPECT_FALSE(f.app->PrepareProposal(wrong));
  wrong.height = 2;
  wrong.time_ms = f.app->Info().last_block_time_ms;
  EXPECT_FALSE(f.app->PrepareProposal(wrong)) << "time must advance";
  // Byte limit: below an empty block is a refused request; a small one takes fewer txs.
  PrepareProposalRequest small;
  small.height = 2;
  small.time_ms = f.app->Info().last_block_time_ms + 1;
  small.proposer = TestAddress(0);
  for (uint32_t i = 4; i <= 6; ++i) small.txs.push_back(SignedSend(i, 0, TestAddress(100), 1));
  small.max_block_bytes = 300;
  EXPECT_FALSE(f.app->PrepareProposal(small));
  small.max_block_bytes = 650;
  auto prepared = f.app->PrepareProposal(small);
  ASSERT_TRUE(prepared) << prepared.error().ToString();
  EXPECT_LT(prepared->block.txs.size(), 3u);
  EXPECT_LE(codec::EncodeBlock(prepared->block).size(), 650u);
}

// A block's gas is the sum of its txs' gas limits: the proposer leaves a tx that
// would take it over block_gas_max for a later block, a validator refuses a block
// over it.
TEST(AppTest, BlockGasLimitIsKeptByTheProposerAndTheValidator) {
  Genesis small_gas = TestGenesis(6);
  // A 2,000 ugpn transfer buys about 1,700 gas: two fit, not three.
  small_gas.params.block_gas_max = 4000;
  Genesis big_gas = TestGenesis(6);
  Fixture proposer(big_gas), validator(small_gas), limited(small_gas);
  std::vector<base::Bytes> txs;
  for (uint32_t i = 1; i <= 4; ++i) txs.push_back(SignedSend(i, 0, TestAddress(100), 1));

  auto b = RunBlock(*limited.app, txs);
  EXPECT_EQ(b.block.txs.size(), 2u);
  EXPECT_TRUE(b.skipped.empty()) << "over-limit txs are left in the mempool, not refused";

  PrepareProposalRequest req;
  req.height = 1;
  req.time_ms = proposer.app->Info().last_block_time_ms + 1000;
  req.proposer = TestAddress(0);
  req.txs = txs;
  auto prepared = proposer.app->PrepareProposal(req);
  ASSERT_TRUE(prepared);
  ASSERT_EQ(prepared->block.txs.size(), 4u);
  auto r = validator.app->ProcessProposal(ProcessProposalRequest{prepared->block, {}, {}});
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->accept);
  EXPECT_NE(r->reason.find("block gas limit is 4000"), std::string::npos) << r->reason;
  EXPECT_EQ(validator.app->Info().consensus_params.block_gas_max, 4000u);
}

// Simulate runs a tx (signed or not) on committed state with a block's gas and
// changes nothing; its fee buys exactly the gas used.
TEST(AppTest, SimulateReportsGasAndChangesNothing) {
  Fixture f;
  RunBlock(*f.app, {SignedSend(1, 0, TestAddress(2), 10)});
  const auto before = Dump(f.kv);
  const base::Bytes tx = SignedSend(1, 1, TestAddress(2), 10);
  auto sim = f.app->Simulate(tx);
  ASSERT_TRUE(sim) << sim.error().ToString();
  EXPECT_EQ(sim->code, TxCode::kOk) << sim->message;
  EXPECT_GT(sim->gas_used, f.genesis.params.gas_tx_base);
  EXPECT_EQ(sim->fee_ugpn,
            std::max<uint64_t>(f.genesis.params.fee_min_ugpn, tx.size() + 100 + sim->gas_used));
  // The same body with a zeroed signature and no fee: the same gas.
  auto decoded = codec::DecodeTx(tx);
  ASSERT_TRUE(decoded);
  decoded->body.fee_ugpn = 0;
  decoded->signature = {};
  auto unsigned_sim = f.app->Simulate(codec::EncodeTx(*decoded));
  ASSERT_TRUE(unsigned_sim);
  EXPECT_EQ(unsigned_sim->code, TxCode::kOk) << unsigned_sim->message;
  EXPECT_EQ(unsigned_sim->gas_used, sim->gas_used);
  // A nonce a little ahead runs as if the txs before it came first; a used one is refused.
  auto ahead = f.app->Simulate(SignedSend(1, 3, TestAddress(2), 10));
  ASSERT_TRUE(ahead);
  EXPECT_EQ(ahead->code, TxCode::kOk);
  auto stale = f.app->Simulate(SignedSend(1, 0, TestAddress(2), 10));
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->code, TxCode::kStaleNonce);
  // A bad signature is refused; a send over the balance is the receipt's failure.
  base::Bytes bad = tx;
  bad.back() ^= 1;
  EXPECT_EQ(f.app->Simulate(bad)->code, TxCode::kBadSignature);
  EXPECT_EQ(f.app->Simulate(SignedSend(1, 1, TestAddress(2), 1'000'000'000'000))->code,
            TxCode::kInsufficientFunds);
  // Stage 1 is the pipeline's own: a send of 0 and amounts that overflow are refused
  // as the mempool refuses them, signed or not.
  EXPECT_EQ(f.app->Simulate(SignedSend(1, 1, TestAddress(2), 0))->code, TxCode::kZeroAmount);
  decoded->body.msgs = {codec::MsgSend{TestAddress(2), 0}};
  EXPECT_EQ(f.app->Simulate(codec::EncodeTx(*decoded))->code, TxCode::kZeroAmount);
  decoded->body.fee_ugpn = 1000;
  decoded->body.msgs = {codec::MsgSend{TestAddress(2), UINT64_MAX}};
  EXPECT_EQ(f.app->Simulate(codec::EncodeTx(*decoded))->code, TxCode::kAmountOverflow);
  EXPECT_EQ(Dump(f.kv), before);
}

TEST(AppTest, QueryRefusesBadRequests) {
  Fixture f;
  EXPECT_EQ(f.app->Query(QueryRequest{"/account", {1, 2}, 0, false}).error().code,
            base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(f.app->Query(QueryRequest{"/nope", {}, 0, false}).error().code,
            base::ErrorCode::kNotFound);
  EXPECT_EQ(f.app->Query(QueryRequest{"/state", {0x10, 1}, 0, false}).error().code,
            base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(f.app->Query(QueryRequest{"/state", state::SupplyKey(), 7, false}).error().code,
            base::ErrorCode::kUnsupported);
  auto supply = f.app->Query(QueryRequest{"/state", state::SupplyKey(), 0, true});
  ASSERT_TRUE(supply && supply->value);
  EXPECT_EQ(state::DecodeSupply(*supply->value)->genesis_ugpn, 4'000'000'000u);
  EXPECT_FALSE(f.app->NextDeadline().has_value());
}

TEST(AppTest, ReopenWithAnotherGenesisIsRefused) {
  Fixture f;
  RunBlock(*f.app, {SignedSend(1, 0, TestAddress(2), 10)});
  Genesis other = f.genesis;
  other.chain_id = "another-chain";
  auto reopened = LedgerApp::Open(f.kv, other);
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code, base::ErrorCode::kConflict);
  // A tampered account is caught by the tree rebuild at open.
  state::WriteBatch tamper;
  tamper.Put(state::keyspace::AccountKey(TestAddress(3)), codec::EncodeAccount({1, 0}));
  ASSERT_TRUE(f.kv.Commit(tamper));
  auto corrupt = LedgerApp::Open(f.kv, f.genesis);
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code, base::ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace gpunet::ledger
