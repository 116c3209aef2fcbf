// The market inside the ledger app: NextDeadline names the earliest market deadline,
// blocks with no txs from that time on run the end-of-block work (here: a missed
// start faults the lease once its grace blocks have passed), its events come back from
// FinalizeBlock, conservation holds on the committed store and a replay from genesis reproduces
// every block.
#include <gtest/gtest.h>

#include <algorithm>

#include "market/keys.h"
#include "market/params.h"
#include "market/records.h"
#include "state/conservation.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::ledger::testing {
namespace {

/// A lease of 2 GPUs at 1 GPN per GPU-hour that never starts, on a chain whose genesis
/// has the market rules `market`: its start deadline, the grace blocks and the
/// penalty all follow them.
void MissedStartOnChain(const market::Params& market) {
  state::MemoryKvStore kv;
  Genesis genesis = TestGenesis(3, 10'000 * kGpn);
  genesis.params.market = market;
  const market::Params& kMarket = genesis.params.market;
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
  const uint64_t deadline = created + kMarket.lease_start_timeout_ms;
  EXPECT_EQ((*app)->NextDeadline(), deadline);

  // The engine's blocks from the deadline on, with no txs: the missed start waits
  // for heartbeat_grace_blocks blocks past the first block that saw the deadline due
  // (docs/market.md), so the deadline stays the next one until the fault fires.
  const uint64_t tenant_before = AccountOf(**app, TestAddress(2)).balance_ugpn;
  const uint64_t first_due_height = (*app)->Info().last_height + 1;
  bool closed = false;
  for (uint64_t i = 0; !closed && i <= kMarket.heartbeat_grace_blocks + 1; ++i) {
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
    EXPECT_EQ(closed, prepare.height > first_due_height + kMarket.heartbeat_grace_blocks)
        << "height " << prepare.height;
  }
  EXPECT_TRUE(closed);
  ASSERT_TRUE((*app)->Commit());
  EXPECT_EQ((*app)->NextDeadline(), std::nullopt);
  // Refund of the deposit plus fault_penalty_hours of the rate (2 GPUs x 1 GPN) from
  // the bond, at least the floor.
  const uint64_t penalty =
      std::max(kMarket.fault_penalty_hours * 2 * kGpn, kMarket.fault_penalty_floor_ugpn);
  EXPECT_EQ(AccountOf(**app, TestAddress(2)).balance_ugpn, tenant_before + 10 * kGpn + penalty);
  auto conserved = state::CheckConservation(kv);
  ASSERT_TRUE(conserved) << conserved.error().ToString();
  EXPECT_EQ(conserved->bonds_ugpn, 500 * kGpn - penalty);
  auto replay = ReplayFromGenesis(kv, genesis);
  ASSERT_TRUE(replay) << replay.error().ToString();
  EXPECT_EQ(replay->blocks, 4u + kMarket.heartbeat_grace_blocks);
  EXPECT_EQ(replay->state_root, (*app)->Info().state_root);
}

TEST(MarketApp, DeadlinesDriveEmptyBlocksAndReplayReproducesThem) {
  MissedStartOnChain(market::Params{});
}

// The genesis's market rules reach the market: a shorter start timeout makes the
// deadline earlier, fewer grace blocks fault sooner, more penalty hours cost more.
TEST(MarketApp, TheGenesisMarketParamsRuleTheLeases) {
  market::Params chain;
  chain.lease_start_timeout_ms = 60'000;
  chain.heartbeat_grace_blocks = 3;
  chain.fault_penalty_hours = 3;
  ASSERT_TRUE(market::ValidateParams(chain));
  MissedStartOnChain(chain);
}

}  // namespace
}  // namespace gpunet::ledger::testing
