// The solo engine's adaptor over a LedgerApp and a mempool, without a Node: it
// commits what the pool holds and tells its listener, and reads the ledger's times.
#include "node/solo_adaptor.h"

#include <gtest/gtest.h>

#include <algorithm>
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

struct BlockRecorder final : BlockListener {
  std::vector<base::Hash32> dropped;
  std::vector<uint64_t> heights;
  std::vector<size_t> txs;
  std::vector<double> seconds;
  void OnTxDropped(const base::Hash32& tx_hash, codec::TxCode, const std::string&) override {
    dropped.push_back(tx_hash);
  }
  void OnBlockCommitted(const codec::Block& block, const ledger::FinalizeBlockResponse& finalized,
                        const ledger::CommitResponse& committed, double s) override {
    EXPECT_EQ(finalized.receipts.size(), block.txs.size());
    heights.push_back(committed.height);
    txs.push_back(block.txs.size());
    seconds.push_back(s);
  }
};

base::Bytes SendTx(uint8_t from, uint64_t nonce) {
  codec::TxBody body;
  body.chain_id = kSoloChain;
  body.sender = TestKey(from).Public();
  body.nonce = nonce;
  body.msgs = {codec::MsgSend{TestAddress(9), 1}};
  body.fee_ugpn = 1'000'000;  // far above any price of a one-send tx
  return codec::EncodeTx(codec::SignTx(body, TestKey(from)));
}

TEST(SoloLedgerAdaptor, CommitsThePoolsTxsAndTellsTheListener) {
  ledger::Genesis g;
  g.chain_id = kSoloChain;
  g.genesis_time_ms = kSoloGenesisMs;
  g.app_version = 1;
  g.accounts.push_back({TestAddress(1), 1'000'000'000'000});
  g.validators.validators.push_back(codec::Validator{TestKey(8).Public(), 10});
  state::MemoryKvStore kv;
  auto app = ledger::LedgerApp::Open(kv, g);
  ASSERT_TRUE(app) << app.error().ToString();
  mempool::Mempool pool(**app);
  BlockRecorder recorder;
  SoloLedgerAdaptor adaptor(**app, pool, TestAddress(8), recorder);

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
  EXPECT_EQ((*app)->Info().last_height, 1u);
  EXPECT_FALSE(adaptor.HasPendingTxs());  // the pool dropped what the block included
  EXPECT_EQ(pool.Stats().txs, 0u);

  // An empty block commits too (the engine asks for one when a deadline is due).
  ASSERT_TRUE(adaptor.ProduceAndCommitBlock(kSoloGenesisMs + 2000));
  EXPECT_EQ(recorder.heights, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(recorder.txs, (std::vector<size_t>{2, 0}));
}

}  // namespace
}  // namespace gpunet::node
