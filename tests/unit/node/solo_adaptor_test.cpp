// The solo engine's adaptor over a LedgerApp and a mempool, without a Node: it
// commits what the pool holds and tells its listener, and reads the ledger's times.
#include "node/solo_adaptor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "ledger/app.h"
#include "ledger/genesis.h"
#include "mempool/mempool.h"
#include "state/kv.h"
#include "util/keys.h"

namespace gpunet::node {
namespace {

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

constexpr char kSoloChain[] = "solo-adaptor-test";
constexpr uint64_t kSoloGenesisMs = 1'700'000'000'000;

struct Dropped {
  base::Hash32 hash;
  codec::TxCode code;
  std::string message;
};

struct BlockRecorder final : BlockListener {
  std::vector<Dropped> dropped;
  std::vector<uint64_t> heights;
  std::vector<size_t> txs;
  std::vector<double> seconds;
  void OnTxDropped(const base::Hash32& tx_hash, codec::TxCode code,
                   const std::string& message) override {
    dropped.push_back({tx_hash, code, message});
  }
  void OnBlockCommitted(const codec::Block& block, const ledger::FinalizeBlockResponse& finalized,
                        const ledger::CommitResponse& committed, double s) override {
    EXPECT_EQ(finalized.receipts.size(), block.txs.size());
    heights.push_back(committed.height);
    txs.push_back(block.txs.size());
    seconds.push_back(s);
  }
};

struct SendOptions {
  uint64_t amount = 1;
  uint64_t fee_ugpn = 1'000'000;  // far above any price of a one-send tx
  uint64_t timeout_height = 0;
};

base::Bytes SendTx(uint8_t from, uint64_t nonce, SendOptions options = {}) {
  codec::TxBody body;
  body.chain_id = kSoloChain;
  body.sender = TestKey(from).Public();
  body.nonce = nonce;
  body.timeout_height = options.timeout_height;
  body.msgs = {codec::MsgSend{TestAddress(9), options.amount}};
  body.fee_ugpn = options.fee_ugpn;
  return codec::EncodeTx(codec::SignTx(body, TestKey(from)));
}

base::Hash32 HashOf(const base::Bytes& tx) {
  return codec::TxHashOfEncoded(tx);
}

/// Accounts 1 and 2 funded, validator 8; at most `block_txs_max` txs a block.
ledger::Genesis SoloGenesis(uint64_t block_txs_max = 10'000) {
  ledger::Genesis g;
  g.chain_id = kSoloChain;
  g.genesis_time_ms = kSoloGenesisMs;
  g.app_version = 1;
  g.params.block_txs_max = block_txs_max;
  g.accounts.push_back({TestAddress(1), 1'000'000'000'000});
  g.accounts.push_back({TestAddress(2), 1'000'000'000'000});
  g.validators.validators.push_back(codec::Validator{TestKey(8).Public(), 10});
  return g;
}

std::unique_ptr<ledger::LedgerApp> OpenApp(state::KvStore& kv, const ledger::Genesis& g) {
  auto app = ledger::LedgerApp::Open(kv, g);
  if (!app) {
    ADD_FAILURE() << app.error().ToString();
    std::abort();  // every test needs the app
  }
  return std::move(*app);
}

/// A solo chain over a memory store: the app, its pool and the adaptor between them.
struct SoloChain {
  explicit SoloChain(uint64_t block_txs_max = 10'000)
      : app(OpenApp(kv, SoloGenesis(block_txs_max))),
        pool(*app),
        adaptor(*app, pool, TestAddress(8), recorder) {}
  state::MemoryKvStore kv;
  std::unique_ptr<ledger::LedgerApp> app;
  mempool::Mempool pool;
  BlockRecorder recorder;
  SoloLedgerAdaptor adaptor;
};

TEST(SoloLedgerAdaptor, CommitsThePoolsTxsAndTellsTheListener) {
  SoloChain chain;
  auto& [kv, app, pool, recorder, adaptor] = chain;

  EXPECT_EQ(adaptor.LastBlockTimeMs(), kSoloGenesisMs);
  EXPECT_FALSE(adaptor.HasPendingTxs());
  for (uint64_t nonce : {0, 1}) {
    auto added = pool.Add(SendTx(1, nonce));
    ASSERT_TRUE(added.Ok()) << added.message;
  }
  EXPECT_TRUE(adaptor.HasPendingTxs());

  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 1000));
  EXPECT_EQ(recorder.heights, std::vector<uint64_t>{1});
  EXPECT_EQ(recorder.txs, std::vector<size_t>{2});
  EXPECT_TRUE(recorder.dropped.empty());
  EXPECT_GT(recorder.seconds.at(0), 0.0);  // measured on the steady clock
  EXPECT_EQ(adaptor.LastBlockTimeMs(), kSoloGenesisMs + 1000);
  EXPECT_EQ(app->Info().last_height, 1u);
  EXPECT_FALSE(adaptor.HasPendingTxs());  // the pool dropped what the block included
  EXPECT_EQ(pool.Stats().txs, 0u);

  // An empty block commits too (the engine asks for one when a deadline is due).
  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 2000));
  EXPECT_EQ(recorder.heights, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(recorder.txs, (std::vector<size_t>{2, 0}));
}

// A tx the pool holds but the ledger skips (here: its nonce was spent meanwhile, by
// a block another pool's adaptor committed on the same app) leaves the pool and is
// reported, with the ledger's code and "dropped before inclusion".
TEST(SoloLedgerAdaptor, ATxTheLedgerSkipsIsRemovedAndReported) {
  SoloChain chain;
  auto& [kv, app, pool, recorder, adaptor] = chain;
  mempool::Mempool other_pool(*app);
  BlockRecorder other_recorder;
  SoloLedgerAdaptor other(*app, other_pool, TestAddress(8), other_recorder);

  const base::Bytes stale = SendTx(1, 0, {.amount = 1});
  ASSERT_TRUE(pool.Add(stale).Ok());
  ASSERT_TRUE(other_pool.Add(SendTx(1, 0, {.amount = 2})).Ok());  // the same nonce
  ASSERT_TRUE(other.ProduceAndCommitBlock(kSoloGenesisMs + 1000));
  ASSERT_EQ(other_recorder.txs, std::vector<size_t>{1});
  EXPECT_TRUE(adaptor.HasPendingTxs());  // the pool does not know yet

  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 2000));
  EXPECT_EQ(recorder.txs, std::vector<size_t>{0});
  ASSERT_EQ(recorder.dropped.size(), 1u);
  EXPECT_EQ(recorder.dropped[0].hash, HashOf(stale));
  EXPECT_EQ(recorder.dropped[0].code, codec::TxCode::kStaleNonce);
  EXPECT_TRUE(recorder.dropped[0].message.starts_with("dropped before inclusion: "))
      << recorder.dropped[0].message;
  EXPECT_EQ(pool.Stats().txs, 0u);
  EXPECT_FALSE(adaptor.HasPendingTxs());
}

// A valid tx that does not fit the block (one tx a block, two pending) waits for
// the next block: it is neither removed nor reported.
TEST(SoloLedgerAdaptor, AValidTxOverTheBlockLimitStaysPending) {
  SoloChain chain(/*block_txs_max=*/1);
  auto& [kv, app, pool, recorder, adaptor] = chain;
  for (uint8_t from : {1, 2}) ASSERT_TRUE(pool.Add(SendTx(from, 0)).Ok());

  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 1000));
  EXPECT_EQ(recorder.txs, std::vector<size_t>{1});
  EXPECT_TRUE(recorder.dropped.empty());
  EXPECT_EQ(pool.Stats().txs, 1u);
  EXPECT_TRUE(adaptor.HasPendingTxs());

  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 2000));
  EXPECT_EQ(recorder.txs, (std::vector<size_t>{1, 1}));
  EXPECT_TRUE(recorder.dropped.empty());
  EXPECT_EQ(pool.Stats().txs, 0u);
}

// What the pool drops when it updates after a commit is reported too: here a tx
// that lost its block's one place to a higher fee and then passed its timeout height.
TEST(SoloLedgerAdaptor, APoolDropAfterACommitIsReported) {
  SoloChain chain(/*block_txs_max=*/1);
  auto& [kv, app, pool, recorder, adaptor] = chain;
  const base::Bytes first = SendTx(1, 0, {.fee_ugpn = 2'000'000});
  const base::Bytes expiring = SendTx(2, 0, {.timeout_height = 1});
  ASSERT_TRUE(pool.Add(first).Ok());
  ASSERT_TRUE(pool.Add(expiring).Ok());

  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 1000));
  EXPECT_EQ(recorder.txs, std::vector<size_t>{1});
  ASSERT_EQ(recorder.dropped.size(), 1u);
  EXPECT_EQ(recorder.dropped[0].hash, HashOf(expiring));
  EXPECT_EQ(recorder.dropped[0].code, codec::TxCode::kExpired);
  EXPECT_EQ(pool.Stats().txs, 0u);
  EXPECT_FALSE(adaptor.HasPendingTxs());
}

}  // namespace
}  // namespace gpunet::node
