// Randomized blocks over many seeds: random valid transfers, included failures and
// refused txs, block by block. After EVERY block the conservation equation is
// checked by scanning the store; a second app fed only the decided blocks (a
// validator) must reach the same roots and the same bytes; at the end, replay from
// genesis must reproduce every stored state root. A failure names its seed.
#include <gtest/gtest.h>

#include <map>

#include "base/clock.h"
#include "ledger/app.h"
#include "ledger/block_store.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::ledger {
namespace {

using namespace testing;

constexpr uint32_t kAccounts = 12;

// One random tx from the current view of nonces; advances `nonces` when the tx is
// meant to be valid (it may still fail its message: insufficient funds).
base::Bytes RandomTx(base::SeededRng& rng, std::map<uint32_t, uint64_t>& nonces, uint64_t height) {
  const uint32_t from = 1 + static_cast<uint32_t>(rng.Below(kAccounts));
  // Recipients include fresh accounts, never-funded ones and the sender itself.
  const uint32_t to = static_cast<uint32_t>(rng.Below(kAccounts + 6));
  const uint64_t nonce = nonces[from];
  const uint64_t fee = 1000 + rng.Below(3000);
  switch (rng.Below(12)) {
    case 0:  // overdraw: included but failed
      ++nonces[from];
      return SignedSend(from, nonce, TestAddress(to), 2'000'000'000 + rng.Below(1000), fee);
    case 1:  // stale nonce
      return SignedSend(from, nonce == 0 ? 0 : nonce - 1, TestAddress(to), 1, fee);
    case 2:  // nonce gap
      return SignedSend(from, nonce + 1 + rng.Below(3), TestAddress(to), 1, fee);
    case 3:  // fee too low
      return SignedSend(from, nonce, TestAddress(to), 1, rng.Below(1000));
    case 4: {  // bad signature
      codec::Tx tx = *codec::DecodeTx(SignedSend(from, nonce, TestAddress(to), 1, fee));
      tx.signature[rng.Below(64)] ^= static_cast<uint8_t>(1 + rng.Below(255));
      return codec::EncodeTx(tx);
    }
    case 5:  // wrong chain
      return SignedSend(from, nonce, TestAddress(to), 1, fee, "gpunet-other");
    case 6: {  // expired
      codec::TxBody body = codec::DecodeTx(SignedSend(from, nonce, TestAddress(to), 1, fee))->body;
      body.timeout_height = height - 1;
      if (body.timeout_height == 0) body.timeout_height = 0;  // height 1: no timeout possible
      return codec::EncodeTx(codec::SignTx(body, TestKey(from)));
    }
    case 7:  // garbage
    {
      base::Bytes junk(1 + rng.Below(200));
      for (auto& b : junk) b = static_cast<uint8_t>(rng.Next());
      return junk;
    }
    default:  // a valid transfer (may still overdraw late in a run)
      ++nonces[from];
      return SignedSend(from, nonce, TestAddress(to), 1 + rng.Below(50'000'000), fee);
  }
}

void RunSeed(uint64_t seed, int blocks) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  base::SeededRng rng(seed);
  const Genesis genesis = TestGenesis(kAccounts, 100'000'000);
  state::MemoryKvStore proposer_kv, validator_kv;
  auto proposer = LedgerApp::Open(proposer_kv, genesis);
  auto validator = LedgerApp::Open(validator_kv, genesis);
  ASSERT_TRUE(proposer && validator);
  std::map<uint32_t, uint64_t> nonces;
  uint64_t included = 0, failed = 0, skipped = 0;
  std::vector<base::Hash32> roots;
  for (int b = 0; b < blocks; ++b) {
    const uint64_t height = (*proposer)->Info().last_height + 1;
    std::vector<base::Bytes> txs;
    const uint64_t n = rng.Below(15);
    for (uint64_t i = 0; i < n; ++i) txs.push_back(RandomTx(rng, nonces, height));
    BlockOutcome out = RunBlock(**proposer, txs, 1 + rng.Below(5000));
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
    // The proposer's view of nonces follows what really got in.
    nonces.clear();
    for (uint32_t i = 1; i <= kAccounts; ++i)
      nonces[i] = AccountOf(**proposer, TestAddress(i)).nonce;
    included += out.block.txs.size();
    skipped += out.skipped.size();
    for (const auto& r : out.receipts) failed += r.code != 0;

    auto conserved = state::CheckConservation(proposer_kv);
    ASSERT_TRUE(conserved.has_value())
        << "after height " << height << ": " << conserved.error().ToString();
    EXPECT_EQ(conserved->accounts >= kAccounts, true);

    // The validator sees only the decided block.
    auto processed = (*validator)->ProcessProposal(ProcessProposalRequest{out.block, {}, {}});
    ASSERT_TRUE(processed && processed->accept)
        << "height " << height << ": "
        << (processed ? processed->reason : processed.error().ToString());
    ASSERT_TRUE((*validator)->FinalizeBlock(FinalizeBlockRequest{out.block, {}, {}}));
    auto committed = (*validator)->Commit();
    ASSERT_TRUE(committed);
    ASSERT_EQ(committed->state_root, (*proposer)->Info().state_root) << "height " << height;
    roots.push_back(committed->state_root);
  }
  EXPECT_EQ(Dump(proposer_kv), Dump(validator_kv));
  auto replay = ReplayFromGenesis(proposer_kv, genesis);
  ASSERT_TRUE(replay.has_value()) << replay.error().ToString();
  EXPECT_EQ(replay->blocks, static_cast<uint64_t>(blocks));
  EXPECT_EQ(replay->state_root, roots.back());
  // The run exercised every path.
  EXPECT_GT(included, 0u);
  EXPECT_GT(failed, 0u);
  EXPECT_GT(skipped, 0u);
}

TEST(RandomLedgerTest, ConservationDeterminismAndReplayOverManySeeds) {
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    RunSeed(seed, 25);
    if (HasFailure()) {
      ADD_FAILURE() << "reproduce with seed " << seed;
      return;
    }
  }
}

TEST(RandomLedgerTest, ReplayDetectsATamperedStoredBlock) {
  const Genesis genesis = TestGenesis(3);
  state::MemoryKvStore kv;
  auto app = LedgerApp::Open(kv, genesis);
  ASSERT_TRUE(app);
  RunBlock(**app, {SignedSend(1, 0, TestAddress(2), 10)});
  RunBlock(**app, {SignedSend(2, 0, TestAddress(3), 10)});
  ASSERT_TRUE(ReplayFromGenesis(kv, genesis));
  // Rewrite block 2 with a different state root (as a disk bug might).
  codec::Block block = **ReadBlock(kv, 2);
  block.header.state_root[0] ^= 1;
  state::WriteBatch tamper;
  tamper.Put(state::keyspace::BlockKey(2), codec::EncodeBlock(block));
  ASSERT_TRUE(kv.Commit(tamper));
  auto replay = ReplayFromGenesis(kv, genesis);
  ASSERT_FALSE(replay);
  EXPECT_EQ(replay.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(replay.error().message.find("height 2"), std::string::npos) << replay.error().message;
}

}  // namespace
}  // namespace gpunet::ledger
