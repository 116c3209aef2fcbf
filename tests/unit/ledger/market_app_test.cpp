// The market inside the ledger app: NextDeadline names the earliest market deadline,
// blocks with no txs from that time on run the end-of-block work (here: a missed
// start faults the lease once its grace blocks have passed), its events come back from
// FinalizeBlock, conservation holds on the committed store and a replay from genesis reproduces
// every block.
#include <gtest/gtest.h>

#include "base/limits.h"
#include "market/keys.h"
#include "market/records.h"
#include "state/conservation.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::ledger::testing {
namespace {

TEST(MarketApp, DeadlinesDriveEmptyBlocksAndReplayReproducesThem) {
  state::MemoryKvStore kv;
  Genesis genesis = TestGenesis(3, 10'000 * kGpn);
  auto app = LedgerApp::Open(kv, genesis);
  ASSERT_TRUE(app) << app.error().ToString();
  EXPECT_EQ((*app)->NextDeadline(), std::nullopt);

  const codec::Address provider = TestAddress(1);
  auto out = RunBlock(**app, {SignedMsgs(1, 0, ProviderWithOfferMsgs(provider))});
  ASSERT_EQ(out.receipts.size(), 1u);
  ASSERT_EQ(out.receipts[0].code, 0) << out.receipts[0].events.back().attributes["message"];
  out = RunBlock(**app, {SignedMsgs(2, 0, {codec::MsgLeaseCreate{1, 1, 2, 10 * kGpn, {}}})});
  ASSERT_EQ(out.receipts[0].code, 0);
  const uint64_t created = out.block.header.time_ms;
  const uint64_t deadline = created + base::limits::kLeaseStartTimeoutMs;
  EXPECT_EQ((*app)->NextDeadline(), deadline);

  // The engine's blocks from the deadline on, with no txs: the missed start waits
  // for kHeartbeatGraceBlocks blocks past the first block that saw the deadline due
  // (docs/market.md), so the deadline stays the next one until the fault fires.
  const uint64_t tenant_before = AccountOf(**app, TestAddress(2)).balance_ugpn;
  const uint64_t first_due_height = (*app)->Info().last_height + 1;
  bool closed = false;
  for (uint64_t i = 0; !closed && i <= base::limits::kHeartbeatGraceBlocks + 1; ++i) {
    if (i > 0) {
      ASSERT_TRUE((*app)->Commit());
    }
    EXPECT_EQ((*app)->NextDeadline(), deadline);
    AppInfo info = (*app)->Info();
    PrepareProposalRequest prepare;
    prepare.height = info.last_height + 1;
    prepare.time_ms = deadline + i * 1000;
    prepare.proposer = TestAddress(0);
    auto prepared = (*app)->PrepareProposal(prepare);
    ASSERT_TRUE(prepared);
    auto finalized = (*app)->FinalizeBlock(FinalizeBlockRequest{prepared->block, {}, {}});
    ASSERT_TRUE(finalized);
    for (const auto& e : finalized->events)
      if (e.type == "market.lease_closed" && e.attributes.at("reason") == "missed_start")
        closed = true;
    EXPECT_EQ(closed, prepare.height > first_due_height + base::limits::kHeartbeatGraceBlocks)
        << "height " << prepare.height;
  }
  EXPECT_TRUE(closed);
  ASSERT_TRUE((*app)->Commit());
  EXPECT_EQ((*app)->NextDeadline(), std::nullopt);
  // Refund of the deposit plus one hour of the rate (2 GPUs x 1 GPN) from the bond.
  EXPECT_EQ(AccountOf(**app, TestAddress(2)).balance_ugpn, tenant_before + 10 * kGpn + 2 * kGpn);
  auto conserved = state::CheckConservation(kv);
  ASSERT_TRUE(conserved) << conserved.error().ToString();
  EXPECT_EQ(conserved->bonds_ugpn, 500 * kGpn - 2 * kGpn);
  auto replay = ReplayFromGenesis(kv, genesis);
  ASSERT_TRUE(replay) << replay.error().ToString();
  EXPECT_EQ(replay->blocks, 4u + base::limits::kHeartbeatGraceBlocks);
  EXPECT_EQ(replay->state_root, (*app)->Info().state_root);
}

}  // namespace
}  // namespace gpunet::ledger::testing
