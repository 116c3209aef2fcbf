// Restart on the real store: a LedgerApp over RocksKvStore resumes at its last
// committed height with the same state root, also after a simulated power cut
// (storage's fault-injection layer drops every unsynced write).
#include <gtest/gtest.h>

#include "ledger/app.h"
#include "ledger/block_store.h"
#include "state/conservation.h"
#include "storage/rocks_kv.h"
#include "unit/ledger/ledger_test_util.h"
#include "util/temp_dir.h"

namespace gpunet::ledger {
namespace {

using namespace testing;
using gpunet::testing::TempDir;

std::unique_ptr<storage::RocksKvStore> OpenStore(const std::string& dir, bool faults = false) {
  storage::RocksKvOptions options;
  options.fault_injection = faults;
  auto store = storage::RocksKvStore::Open(dir, options);
  EXPECT_TRUE(store.has_value()) << store.error().ToString();
  return store ? std::move(*store) : nullptr;
}

TEST(RestartTest, ResumesAtTheLastCommittedHeightWithTheSameRoot) {
  TempDir dir;
  const Genesis genesis = TestGenesis(4);
  AppInfo before;
  {
    auto store = OpenStore(dir.Path());
    ASSERT_TRUE(store);
    auto app = LedgerApp::Open(*store, genesis);
    ASSERT_TRUE(app) << app.error().ToString();
    for (uint64_t n = 0; n < 5; ++n) RunBlock(**app, {SignedSend(1, n, TestAddress(2), 100 + n)});
    before = (*app)->Info();
    // An executed but uncommitted block is not there after restart.
    PrepareProposalRequest req{before.last_height + 1,
                               before.last_block_time_ms + 1,
                               TestAddress(0),
                               {SignedSend(1, 5, TestAddress(2), 1)}};
    ASSERT_TRUE((*app)->PrepareProposal(req));
  }
  auto store = OpenStore(dir.Path());
  ASSERT_TRUE(store);
  auto app = LedgerApp::Open(*store, genesis);
  ASSERT_TRUE(app) << app.error().ToString();
  AppInfo after = (*app)->Info();
  EXPECT_EQ(after.last_height, 5u);
  EXPECT_EQ(after.state_root, before.state_root);
  EXPECT_EQ(after.last_block_hash, before.last_block_hash);
  EXPECT_EQ(AccountOf(**app, TestAddress(1)).nonce, 5u);
  // It continues from there, and the whole chain replays.
  RunBlock(**app, {SignedSend(1, 5, TestAddress(2), 1)});
  EXPECT_EQ((*app)->Info().last_height, 6u);
  auto replay = ReplayFromGenesis(*store, genesis);
  ASSERT_TRUE(replay) << replay.error().ToString();
  EXPECT_EQ(replay->blocks, 6u);
  EXPECT_EQ(replay->state_root, (*app)->Info().state_root);
  EXPECT_TRUE(state::CheckConservation(*store));
}

TEST(RestartTest, PowerLossKeepsEveryCommittedBlock) {
  TempDir dir;
  const Genesis genesis = TestGenesis(4);
  AppInfo committed;
  {
    auto store = OpenStore(dir.Path(), /*faults=*/true);
    ASSERT_TRUE(store);
    auto app = LedgerApp::Open(*store, genesis);
    ASSERT_TRUE(app) << app.error().ToString();
    for (uint64_t n = 0; n < 4; ++n)
      RunBlock(**app, {SignedSend(1, n, TestAddress(3), 7), SignedSend(2, n, TestAddress(4), 9)});
    committed = (*app)->Info();
    // Unsynced junk right before the cut must vanish; the synced blocks must not.
    state::WriteBatch junk;
    junk.Put({0x7f, 1}, {1, 2, 3});
    ASSERT_TRUE(store->CommitUnsyncedForTest(junk));
    ASSERT_TRUE(store->SimulatePowerLoss());
  }
  auto store = OpenStore(dir.Path());
  ASSERT_TRUE(store);
  auto app = LedgerApp::Open(*store, genesis);
  ASSERT_TRUE(app) << app.error().ToString();
  EXPECT_EQ((*app)->Info().last_height, committed.last_height);
  EXPECT_EQ((*app)->Info().state_root, committed.state_root);
  auto junk = store->Get(base::Bytes{0x7f, 1});
  ASSERT_TRUE(junk);
  EXPECT_FALSE(junk->has_value()) << "an unsynced write survived the power cut";
  auto replay = ReplayFromGenesis(*store, genesis);
  ASSERT_TRUE(replay) << replay.error().ToString();
  EXPECT_EQ(replay->blocks, 4u);
}

}  // namespace
}  // namespace gpunet::ledger
