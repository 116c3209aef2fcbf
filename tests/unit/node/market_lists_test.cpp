// The node's market index (market_index.h) over real market txs committed through
// a LedgerApp: it follows every block's opens and closes and equals what a
// rebuild from the store gives, as a restarted node would build it.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "ledger/app.h"
#include "ledger/genesis.h"
#include "market/keys.h"
#include "node/market_index.h"
#include "state/kv.h"

namespace gpunet::node {
namespace {

using Ids = std::vector<uint64_t>;
constexpr uint64_t kGpn = 1'000'000;
constexpr uint64_t kTxFeeUgpn = 50 * kGpn;  // room for any per-message or gas price
constexpr char kChain[] = "lists-test";

crypto::KeyPair Key(uint8_t n) {
  crypto::Seed seed{};
  seed[0] = n;
  seed[31] = 0x5e;
  return crypto::KeyPair::FromSeed(seed);
}
codec::Address Addr(uint8_t n) {
  return crypto::AddressOf(Key(n).Public());
}

// Who is who: key 1 the provider, 2 and 3 order tenants, 4 a lease tenant.
constexpr uint8_t kProvider = 1, kTenantA = 2, kTenantB = 3, kLeaser = 4;

codec::MsgOrderCreate OrderMsg() {
  codec::MsgOrderCreate m;
  m.requirements.gpu_models = {"H100"};
  m.requirements.gpus_per_machine = 1;
  m.requirements.machines = 1;
  m.max_price_ugpn_per_gpu_hour = kGpn;
  m.deposit_ugpn = kGpn;
  m.manifest_hash[0] = 1;
  m.bid_window_ms = base::limits::kBidWindowMaxMs;  // no window ends during a test
  return m;
}

codec::MsgLeaseCreate LeaseMsg(uint64_t offer_id) {
  codec::MsgLeaseCreate m;
  m.offer_id = offer_id;
  m.machines = 1;
  m.gpus_per_machine = 1;
  m.deposit_ugpn = 2 * kGpn;
  m.manifest_hash[0] = 2;
  return m;
}

/// Signs txs for the test's keys and remembers their nonces; counts the ids the
/// market hands out (every table counts from 1), so tests know which are which.
struct World {
  std::map<uint8_t, uint64_t> nonces;
  uint64_t offers = 0, orders = 0, leases = 0;
  std::set<uint64_t> open_offers, open_orders_a, open_orders_b, open_leases;
  uint64_t any_open_offer = 0;

  base::Bytes Tx(uint8_t from, std::vector<codec::Msg> msgs) {
    codec::TxBody body;
    body.chain_id = kChain;
    body.sender = Key(from).Public();
    body.nonce = nonces[from]++;
    body.fee_ugpn = kTxFeeUgpn;
    body.msgs = std::move(msgs);
    return codec::EncodeTx(codec::SignTx(body, Key(from)));
  }

  std::vector<base::Bytes> Setup() {
    const codec::Address p = Addr(kProvider);
    codec::MsgProviderRegister reg;
    reg.operator_address = p;
    reg.tenant_api_uri = "https://p.example";
    reg.region = "eu";
    reg.bond_ugpn = 1000 * kGpn;
    reg.payouts = {{p, 10'000}};
    std::vector<codec::Msg> msgs = {reg, codec::MsgSiteUpsert{p, 1, codec::Fabric::kEthernet, 10}};
    for (uint32_t m = 1; m <= 4; ++m)
      msgs.push_back(codec::MsgMachineUpsert{p, m, 1, "H100", 8, 80, codec::GpuLink::kPcie, "550",
                                             12040, 90, 8, 64, 100});
    return {Tx(kProvider, msgs)};
  }

  /// Txs from `from` that make `closed` records closed again at once, then `open`
  /// ones left open (their ids go to `opened`): `make()` creates one, `close(id)`
  /// closes record `id`, `last` counts the table's ids.
  std::vector<base::Bytes> Records(uint8_t from, size_t closed, size_t open, uint64_t& last,
                                   std::set<uint64_t>& opened,
                                   const std::function<codec::Msg()>& make,
                                   const std::function<codec::Msg(uint64_t)>& close) {
    std::vector<base::Bytes> txs;
    std::vector<codec::Msg> msgs;
    auto add = [&](std::vector<codec::Msg> more) {
      if (msgs.size() + more.size() > base::limits::kMsgsPerTxMax)
        txs.push_back(Tx(from, std::exchange(msgs, {})));
      msgs.insert(msgs.end(), more.begin(), more.end());
    };
    for (size_t i = 0; i < closed; ++i) add({make(), close(++last)});
    for (size_t i = 0; i < open; ++i) {
      add({make()});
      opened.insert(++last);
    }
    if (!msgs.empty()) txs.push_back(Tx(from, std::move(msgs)));
    return txs;
  }

  std::vector<base::Bytes> Offers(size_t closed, size_t open) {
    const codec::Address p = Addr(kProvider);
    auto txs = Records(
        kProvider, closed, open, offers, open_offers,
        [p] {
          return codec::MsgOfferCreate{p, "H100", 0, kGpn, {}};
        },
        [p](uint64_t id) {
          return codec::MsgOfferClose{p, id};
        });
    if (open > 0) any_open_offer = offers;
    return txs;
  }

  std::vector<base::Bytes> Orders(uint8_t tenant, size_t closed, size_t open) {
    return Records(
        tenant, closed, open, orders, tenant == kTenantA ? open_orders_a : open_orders_b,
        [] { return OrderMsg(); }, [](uint64_t id) { return codec::MsgOrderClose{id}; });
  }

  std::vector<base::Bytes> Leases(size_t closed, size_t open) {
    std::vector<base::Bytes> txs = {Tx(kProvider, {codec::MsgHeartbeat{Addr(kProvider)}})};
    for (auto& tx : Records(
             kLeaser, closed, open, leases, open_leases,
             [this] { return LeaseMsg(any_open_offer); },
             [](uint64_t id) {
               return codec::MsgLeaseClose{id, codec::CloseReason::kNormal};
             }))
      txs.push_back(std::move(tx));
    return txs;
  }
};

/// Commits blocks through `app` (proposed by `proposer`, a validator) until every
/// tx is in one; each must apply.
void CommitAll(ledger::LedgerApp& app, std::vector<base::Bytes> txs,
               const codec::Address& proposer = Addr(9)) {
  while (!txs.empty()) {
    ledger::AppInfo info = app.Info();
    ledger::PrepareProposalRequest prepare;
    prepare.height = info.last_height + 1;
    prepare.time_ms = info.last_block_time_ms + 1;
    prepare.proposer = proposer;
    prepare.txs = txs;
    auto prepared = app.PrepareProposal(prepare);
    ASSERT_TRUE(prepared) << prepared.error().ToString();
    for (const auto& s : prepared->skipped)  // kOk: over a block limit, next block
      ASSERT_EQ(s.code, codec::TxCode::kOk) << s.message;
    ASSERT_FALSE(prepared->block.txs.empty());
    const codec::Block block = prepared->block;
    auto processed = app.ProcessProposal(ledger::ProcessProposalRequest{block, {}, {}});
    ASSERT_TRUE(processed && processed->accept);
    auto finalized = app.FinalizeBlock(ledger::FinalizeBlockRequest{block, {}, {}});
    ASSERT_TRUE(finalized) << finalized.error().ToString();
    for (const auto& r : finalized->receipts)
      ASSERT_EQ(r.code, 0) << (r.events.empty() ? "" : r.events.back().attributes.at("message"));
    ASSERT_TRUE(app.Commit());
    txs.erase(txs.begin(), txs.begin() + static_cast<std::ptrdiff_t>(block.txs.size()));
  }
}

// ---------------------------------------------------------------- the index alone

Ids Page(const MarketIndex& index, MarketList list, uint8_t party = 0) {
  return index.Page(list, party ? Addr(party) : codec::Address{}, 0, 1'000'000);
}

/// Every list of `a` equals the same list of `b`.
void ExpectSameIndex(const MarketIndex& a, const MarketIndex& b) {
  for (MarketList list : {MarketList::kOpenOffers, MarketList::kOpenOrders})
    EXPECT_EQ(Page(a, list), Page(b, list));
  EXPECT_EQ(Page(a, MarketList::kProviderOffers, kProvider),
            Page(b, MarketList::kProviderOffers, kProvider));
  for (uint8_t t : {kTenantA, kTenantB})
    EXPECT_EQ(Page(a, MarketList::kTenantOrders, t), Page(b, MarketList::kTenantOrders, t));
  EXPECT_EQ(Page(a, MarketList::kTenantOpenLeases, kLeaser),
            Page(b, MarketList::kTenantOpenLeases, kLeaser));
}

TEST(MarketIndex, FollowsEveryBlockAndEqualsARebuild) {
  ledger::Genesis g;
  g.chain_id = kChain;
  g.genesis_time_ms = 1'700'000'000'000;
  g.app_version = 1;
  for (uint8_t k : {kProvider, kTenantA, kTenantB, kLeaser})
    g.accounts.push_back({Addr(k), 1'000'000 * kGpn});
  std::sort(g.accounts.begin(), g.accounts.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  g.validators.validators.push_back(codec::Validator{Key(9).Public(), 10});
  state::MemoryKvStore memory;
  IndexedKvStore kv(memory);
  auto app = ledger::LedgerApp::Open(kv, g);
  ASSERT_TRUE(app) << app.error().ToString();
  auto index = MarketIndex::Build((*app)->Store());
  ASSERT_TRUE(index) << index.error().ToString();
  kv.SetObserver([&](const state::WriteBatch& b) { (*index)->Apply(b); });

  World w;
  CommitAll(**app, w.Setup());
  CommitAll(**app, w.Offers(300, 5));
  CommitAll(**app, w.Orders(kTenantA, 200, 4));
  CommitAll(**app, w.Orders(kTenantB, 10, 3));
  CommitAll(**app, w.Leases(40, 3));
  const MarketIndex& idx = **index;
  EXPECT_EQ(Page(idx, MarketList::kOpenOffers), Ids(w.open_offers.begin(), w.open_offers.end()));
  EXPECT_EQ(Page(idx, MarketList::kProviderOffers, kProvider).size(), 305u);
  std::set<uint64_t> open_orders = w.open_orders_a;
  open_orders.insert(w.open_orders_b.begin(), w.open_orders_b.end());
  EXPECT_EQ(Page(idx, MarketList::kOpenOrders), Ids(open_orders.begin(), open_orders.end()));
  EXPECT_EQ(Page(idx, MarketList::kTenantOrders, kTenantA).size(), 204u);
  EXPECT_EQ(Page(idx, MarketList::kTenantOrders, kTenantB).size(), 13u);
  EXPECT_EQ(Page(idx, MarketList::kTenantOpenLeases, kLeaser),
            Ids(w.open_leases.begin(), w.open_leases.end()));
  EXPECT_TRUE(Page(idx, MarketList::kTenantOpenLeases, kTenantA).empty());

  // Closes move records out of the open lists, a new offer moves in.
  const uint64_t offer = *w.open_offers.begin(), order = *w.open_orders_b.begin(),
                 lease = *w.open_leases.rbegin();
  CommitAll(**app, {w.Tx(kProvider, {codec::MsgOfferClose{Addr(kProvider), offer},
                                     codec::MsgOfferCreate{Addr(kProvider), "H100", 0, kGpn, {}}}),
                    w.Tx(kTenantB, {codec::MsgOrderClose{order}}),
                    w.Tx(kLeaser, {codec::MsgLeaseClose{lease, codec::CloseReason::kNormal}})});
  w.open_offers.erase(offer);
  w.open_offers.insert(++w.offers);
  open_orders.erase(order);
  w.open_leases.erase(lease);
  EXPECT_EQ(Page(idx, MarketList::kOpenOffers), Ids(w.open_offers.begin(), w.open_offers.end()));
  EXPECT_EQ(Page(idx, MarketList::kOpenOrders), Ids(open_orders.begin(), open_orders.end()));
  EXPECT_EQ(Page(idx, MarketList::kTenantOpenLeases, kLeaser),
            Ids(w.open_leases.begin(), w.open_leases.end()));
  EXPECT_EQ(Page(idx, MarketList::kTenantOrders, kTenantB).size(), 13u);  // closed stay listed

  // What a restarted node builds from the store is what the commits made.
  auto rebuilt = MarketIndex::Build((*app)->Store());
  ASSERT_TRUE(rebuilt) << rebuilt.error().ToString();
  ExpectSameIndex(idx, **rebuilt);
  // Pages: ids above the cursor, at most the count asked.
  const Ids all = Page(idx, MarketList::kProviderOffers, kProvider);
  EXPECT_EQ(idx.Page(MarketList::kProviderOffers, Addr(kProvider), all[9], 3),
            Ids(all.begin() + 10, all.begin() + 13));
  EXPECT_TRUE(idx.Page(MarketList::kOpenOffers, {}, UINT64_MAX, 3).empty());
}

TEST(MarketIndex, BuildRefusesARecordThatDoesNotDecode) {
  state::MemoryKvStore kv;
  state::WriteBatch b;
  b.Put(market::keys::OfferKey(7), base::Bytes{1, 2, 3});
  ASSERT_TRUE(kv.Commit(b));
  auto index = MarketIndex::Build(kv);
  ASSERT_FALSE(index);
  EXPECT_EQ(index.error().code, base::ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace gpunet::node
