// The per-block invariant check (architecture §2.9, state::CheckBlockChanges): a
// write that breaks conservation or a market rule, injected into an executed
// block's overlay through the test-only hook, stops the block in PrepareProposal
// (the proposer) or FinalizeBlock (a block from elsewhere) with a message naming the
// height, the invariant and the key, and nothing is committed. With the check off
// the same block commits and only the full scan finds it: the refusal is the
// check's doing.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ledger/block_store.h"
#include "market/keys.h"
#include "market/records.h"
#include "state/conservation.h"
#include "unit/ledger/ledger_test_util.h"

namespace gpunet::ledger::testing {
namespace {

/// An app whose executed blocks pass through `inject` while `armed` is set.
struct Injected {
  state::MemoryKvStore kv;
  Genesis genesis = TestGenesis(3, 10'000 * kGpn);
  bool armed = false;
  std::function<void(state::StateDb&)> inject;
  std::unique_ptr<LedgerApp> app;

  explicit Injected(bool check = true) {
    AppOptions options;
    options.check_block_invariants = check;
    options.before_block_check_for_test = [this](state::StateDb& db) {
      if (armed) inject(db);
    };
    auto opened = LedgerApp::Open(kv, genesis, options);
    EXPECT_TRUE(opened) << opened.error().ToString();
    if (opened) app = std::move(*opened);
  }

  /// PrepareProposal for the next height; its error, or empty when it succeeded.
  std::string PrepareError(std::vector<base::Bytes> txs) {
    const AppInfo info = app->Info();
    PrepareProposalRequest prepare;
    prepare.height = info.last_height + 1;
    prepare.time_ms = info.last_block_time_ms + 1000;
    prepare.proposer = TestAddress(0);
    prepare.txs = std::move(txs);
    auto prepared = app->PrepareProposal(prepare);
    if (prepared) return "";
    EXPECT_EQ(prepared.error().code, base::ErrorCode::kCorrupt);
    return prepared.error().message;
  }
};

/// Adds `delta` ugpn to an account's balance: tokens from nowhere.
void Mint(state::StateDb& db, const codec::Address& address, uint64_t delta) {
  auto account = db.GetAccount(address);
  ASSERT_TRUE(account);
  account->balance_ugpn += delta;
  db.PutAccount(address, *account);
}

TEST(BlockCheck, MintingWriteStopsTheProposedBlockAndNothingIsCommitted) {
  Injected f;
  f.inject = [](state::StateDb& db) { Mint(db, TestAddress(1), 1); };
  RunBlock(*f.app, {SignedSend(1, 0, TestAddress(2), 5)});  // a clean block first
  const auto stored = Dump(f.kv);
  const AppInfo before = f.app->Info();

  f.armed = true;
  const std::string error = f.PrepareError({SignedSend(1, 1, TestAddress(2), 5)});
  EXPECT_NE(error.find("block 2 breaks an invariant and is not committed"), std::string::npos)
      << error;
  EXPECT_NE(error.find("conservation broken"), std::string::npos) << error;
  // Nothing executed is kept or committed: no block to finalize or commit.
  auto committed = f.app->Commit();
  EXPECT_FALSE(committed);
  EXPECT_EQ(Dump(f.kv), stored);
  EXPECT_EQ(f.app->Info().last_height, 1u);
  EXPECT_EQ(f.app->Info().state_root, before.state_root);
  auto block = ReadBlock(f.kv, 2);
  ASSERT_TRUE(block);
  EXPECT_FALSE(block->has_value());

  // The same write balanced by a burn from another account passes: the check
  // compares sums, it does not refuse every write it did not expect.
  f.inject = [](state::StateDb& db) {
    Mint(db, TestAddress(1), 1);
    auto other = db.GetAccount(TestAddress(3));
    ASSERT_TRUE(other);
    other->balance_ugpn -= 1;
    db.PutAccount(TestAddress(3), *other);
  };
  RunBlock(*f.app, {SignedSend(1, 1, TestAddress(2), 5)});
  EXPECT_EQ(f.app->Info().last_height, 2u);
  EXPECT_TRUE(state::CheckConservation(f.kv));
}

TEST(BlockCheck, ABlockFromElsewhereIsRefusedInFinalizeBlock) {
  // The proposer executes cleanly; this node (as in replay or block sync) executes
  // the same block with the write injected and must refuse it before Commit.
  Injected proposer;
  const BlockOutcome out = RunBlock(*proposer.app, {SignedSend(1, 0, TestAddress(2), 5)});
  ASSERT_EQ(proposer.app->Info().last_height, 1u);

  Injected f;
  f.inject = [](state::StateDb& db) { Mint(db, TestAddress(2), 7); };
  f.armed = true;
  const auto stored = Dump(f.kv);
  auto finalized = f.app->FinalizeBlock(FinalizeBlockRequest{out.block, {}, {}});
  ASSERT_FALSE(finalized);
  EXPECT_EQ(finalized.error().code, base::ErrorCode::kCorrupt);
  EXPECT_NE(finalized.error().message.find("block 1 breaks an invariant"), std::string::npos)
      << finalized.error().message;
  EXPECT_FALSE(f.app->Commit());
  EXPECT_EQ(Dump(f.kv), stored);
  EXPECT_EQ(f.app->Info().last_height, 0u);
}

TEST(BlockCheck, WithTheCheckOffTheBrokenBlockCommitsAndOnlyTheFullScanSeesIt) {
  Injected f(/*check=*/false);
  f.inject = [](state::StateDb& db) { Mint(db, TestAddress(1), 1); };
  f.armed = true;
  RunBlock(*f.app, {SignedSend(1, 0, TestAddress(2), 5)});
  EXPECT_EQ(f.app->Info().last_height, 1u);
  auto conserved = state::CheckConservation(f.kv);
  ASSERT_FALSE(conserved);
  EXPECT_NE(conserved.error().message.find("conservation broken"), std::string::npos);
}

/// Changes the market record stored under `key` in the block's overlay.
template <class T, class Fn>
void Rewrite(state::StateDb& db, const base::Bytes& key, Fn change) {
  auto stored = db.Get(key);
  ASSERT_TRUE(stored && stored->has_value());
  auto record = market::Decode<T>(**stored);
  ASSERT_TRUE(record);
  change(*record);
  db.Put(key, market::Encode(*record));
}

/// Provider 1 with a site, a machine of 8 GPUs and an offer; tenant 2 leases 2 GPUs.
void SetUpLease(Injected& f) {
  auto out = RunBlock(*f.app, {SignedMsgs(1, 0, ProviderWithOfferMsgs(TestAddress(1)))});
  ASSERT_EQ(out.receipts.size(), 1u);
  ASSERT_EQ(out.receipts[0].code, 0);
  out = RunBlock(*f.app, {SignedMsgs(2, 0, {codec::MsgLeaseCreate{1, 1, 2, 10 * kGpn, {}}})});
  ASSERT_EQ(out.receipts.size(), 1u);
  ASSERT_EQ(out.receipts[0].code, 0);
}

TEST(BlockCheck, MarketRecordsThatDisagreeStopTheBlock) {
  Injected f;
  ASSERT_NO_FATAL_FAILURE(SetUpLease(f));
  const codec::Address provider = TestAddress(1);
  const base::Bytes machine_key = market::keys::MachineKey(provider, 1);
  const base::Bytes open_lease_key =
      market::keys::PartyIndexKey(market::keys::kProviderOpenLeases, provider, 1);
  const base::Bytes provider_key = market::keys::ProviderKey(provider);

  // A GPU appears on the machine: free 7 + leased 2 != 8.
  f.inject = [&](state::StateDb& db) {
    Rewrite<market::Machine>(db, machine_key, [](market::Machine& m) { m.free_gpus += 1; });
  };
  f.armed = true;
  std::string error = f.PrepareError({});
  EXPECT_NE(error.find("block 3 breaks an invariant"), std::string::npos) << error;
  EXPECT_NE(error.find("machine 1: free 7 + leased 2 != inventory 8"), std::string::npos) << error;
  EXPECT_NE(error.find("(key " + base::ToHex(machine_key) + ")"), std::string::npos) << error;

  // The open lease leaves its provider's open-leases index.
  f.inject = [&](state::StateDb& db) { db.Delete(open_lease_key); };
  error = f.PrepareError({});
  EXPECT_NE(error.find("lease 1 is open but left its provider's open leases"), std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(open_lease_key) + ")"), std::string::npos) << error;

  // A counter drifts from the records: each counter the block moves by more or
  // less than the records it counts.
  const std::vector<std::pair<std::function<void(market::Provider&)>, std::string>> drifts = {
      {[](market::Provider& p) { p.machines += 1; },
       "machines moved by +1 in the block, its "
       "machines by +0"},
      {[](market::Provider& p) { p.sites -= 1; },
       "sites moved by -1 in the block, its sites by +0"},
      {[](market::Provider& p) { p.open_leases += 1; }, "open_leases moved by +1"},
      {[](market::Provider& p) { p.started_leases += 1; }, "started_leases moved by +1"},
      {[](market::Provider& p) { p.open_offers += 1; }, "open_offers moved by +1"},
      {[](market::Provider& p) { p.promised_penalties_ugpn -= 1; },
       "promised_penalties moved by -1 in the block, its open leases' penalties by +0"},
  };
  for (const auto& [drift, expected] : drifts) {
    f.inject = [&](state::StateDb& db) { Rewrite<market::Provider>(db, provider_key, drift); };
    error = f.PrepareError({});
    EXPECT_NE(error.find(expected), std::string::npos) << error;
    EXPECT_NE(error.find("(key " + base::ToHex(provider_key) + ")"), std::string::npos) << error;
  }

  // A record the counters count goes while the provider record stays as it was.
  f.inject = [&](state::StateDb& db) { db.Delete(market::keys::SiteKey(provider, 1)); };
  error = f.PrepareError({});
  EXPECT_NE(error.find("sites moved by +0 in the block, its sites by -1"), std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(provider_key) + ")"), std::string::npos) << error;

  // An open-leases entry for a lease that does not exist.
  const base::Bytes stray_key =
      market::keys::PartyIndexKey(market::keys::kProviderOpenLeases, provider, 99);
  f.inject = [&](state::StateDb& db) { db.Put(stray_key, {}); };
  error = f.PrepareError({});
  EXPECT_NE(error.find("its open-leases index names 99, which is not one of its"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(stray_key) + ")"), std::string::npos) << error;

  // A lease's GPUs change with no machine's free GPUs following.
  f.inject = [&](state::StateDb& db) {
    Rewrite<market::Lease>(db, market::keys::LeaseKey(1),
                           [](market::Lease& l) { l.allocations[0].gpus += 1; });
  };
  error = f.PrepareError({});
  EXPECT_NE(error.find("machine 1: free 6 + leased 3 != inventory 8"), std::string::npos) << error;

  // The open offer leaves its provider's open offers and the counter follows: the
  // index and the counter agree, the offer record says open.
  const base::Bytes open_offer_key =
      market::keys::PartyIndexKey(market::keys::kProviderOpenOffers, provider, 1);
  f.inject = [&](state::StateDb& db) {
    db.Delete(open_offer_key);
    Rewrite<market::Provider>(db, provider_key, [](market::Provider& p) { p.open_offers -= 1; });
  };
  error = f.PrepareError({});
  EXPECT_NE(error.find("offer 1 is open but left its provider's open offers"), std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(open_offer_key) + ")"), std::string::npos) << error;

  // An open-offers entry added for an offer that does not exist (the counter
  // follows, so only the added entry's own rule sees it).
  const base::Bytes stray_offer_key =
      market::keys::PartyIndexKey(market::keys::kProviderOpenOffers, provider, 99);
  f.inject = [&](state::StateDb& db) {
    db.Put(stray_offer_key, {});
    Rewrite<market::Provider>(db, provider_key, [](market::Provider& p) { p.open_offers += 1; });
  };
  error = f.PrepareError({});
  EXPECT_NE(error.find("its open-offers index names 99, which is not one of its"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(stray_offer_key) + ")"), std::string::npos) << error;

  // The machine under the open lease goes (the counter follows): the lease holds
  // GPUs of a machine that does not exist.
  f.inject = [&](state::StateDb& db) {
    db.Delete(machine_key);
    Rewrite<market::Provider>(db, provider_key, [](market::Provider& p) { p.machines -= 1; });
  };
  error = f.PrepareError({});
  EXPECT_NE(error.find("an open lease holds GPUs of machine 1, which does not exist"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(machine_key) + ")"), std::string::npos) << error;

  // A machine appears (all its GPUs free) while the provider's counter stays.
  f.inject = [&](state::StateDb& db) {
    market::Machine extra;
    extra.site_id = 1;
    extra.gpu_model = "H100";
    extra.gpu_count = 4;
    extra.free_gpus = 4;
    db.Put(market::keys::MachineKey(provider, 2), market::Encode(extra));
  };
  error = f.PrepareError({});
  EXPECT_NE(error.find("machines moved by +0 in the block, its machines by +1"), std::string::npos)
      << error;
  EXPECT_NE(error.find("(key " + base::ToHex(provider_key) + ")"), std::string::npos) << error;

  // Nothing of these was committed, and a clean block still is.
  EXPECT_EQ(f.app->Info().last_height, 2u);
  f.armed = false;
  RunBlock(*f.app, {});
  EXPECT_EQ(f.app->Info().last_height, 3u);
  EXPECT_TRUE(state::CheckInvariants(state::StateDb(f.kv), market::Params{}));
}

}  // namespace
}  // namespace gpunet::ledger::testing
