// The market list endpoints over thousands of closed records (issue 14 item 5):
// a list answers the open ones from the node's indexes, reading only the records
// of its page (gpunet_market_list_records_read_total counts them); `next` pages
// cover a list exactly once; limits are capped; the index follows opens and
// closes block by block and is rebuilt when the node restarts; /conservation
// scans once per height however many ask at once (gpunet_conservation_scans_total).
//
// The records are made the cheap way: real market txs committed straight through
// a LedgerApp on the node's RocksDB home before the node starts (16 messages a
// tx, no mempool, no RPC), then the real node serves them on 127.0.0.1.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/limits.h"
#include "client/http_client.h"
#include "client/market_client.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "ledger/app.h"
#include "ledger/genesis.h"
#include "market/keys.h"
#include "market/math.h"
#include "node/market_index.h"
#include "node/market_routes.h"
#include "node/node.h"
#include "state/kv.h"
#include "storage/rocks_kv.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::node {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<uint64_t>;
constexpr uint64_t kGpn = 1'000'000;
// Gas each of this test's messages may use (none touches more than a few records;
// a lease create scans the provider's 4 machines); every tx's fee buys that on top
// of its byte and message price (docs/ledger.md "Gas"), at the default prices both
// of the test's genesis use.
constexpr uint64_t kGasPerMsg = 20'000;
constexpr char kChain[] = "lists-test";
/// The market rules of the test's genesis (the defaults).
const market::Params kMarket;

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

std::string AddrText(uint8_t n) {
  return crypto::AddressToString(TestAddress(n));
}

// Who is who: key 1 the provider, 2 and 3 order tenants, 4 a lease tenant.
constexpr uint8_t kProvider = 1, kTenantA = 2, kTenantB = 3, kLeaser = 4;

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

codec::MsgOrderCreate OrderMsg() {
  codec::MsgOrderCreate m;
  m.requirements.gpu_models = {"H100"};
  m.requirements.gpus_per_machine = 1;
  m.requirements.machines = 1;
  m.max_price_ugpn_per_gpu_hour = kGpn;
  m.deposit_ugpn = kGpn;
  m.manifest_hash[0] = 1;
  m.bid_window_ms = kMarket.bid_window_max_ms;  // no window ends during a test
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
    body.sender = TestKey(from).Public();
    body.nonce = nonces[from]++;
    body.msgs = std::move(msgs);
    const ledger::GenesisParams prices;
    const uint64_t n = body.msgs.size();
    const uint64_t bytes =
        codec::EncodeTx(codec::SignTx(body, TestKey(from))).size();  // fixed-width fee
    body.fee_ugpn = prices.fee_per_byte_ugpn * bytes + prices.fee_per_msg_ugpn * n +
                    (prices.gas_tx_base + kGasPerMsg * n) * prices.gas_price_ugpn;
    return codec::EncodeTx(codec::SignTx(body, TestKey(from)));
  }

  std::vector<base::Bytes> Setup() {
    const codec::Address p = TestAddress(kProvider);
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
    const codec::Address p = TestAddress(kProvider);
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
    std::vector<base::Bytes> txs = {Tx(kProvider, {codec::MsgHeartbeat{TestAddress(kProvider)}})};
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
               const codec::Address& proposer = TestAddress(9)) {
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
  return index.Page(list, party ? TestAddress(party) : codec::Address{}, 0, 1'000'000);
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
    g.accounts.push_back({TestAddress(k), 1'000'000 * kGpn});
  std::sort(g.accounts.begin(), g.accounts.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  g.validators.validators.push_back(codec::Validator{TestKey(9).Public(), 10});
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
  CommitAll(**app,
            {w.Tx(kProvider, {codec::MsgOfferClose{TestAddress(kProvider), offer},
                              codec::MsgOfferCreate{TestAddress(kProvider), "H100", 0, kGpn, {}}}),
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
  EXPECT_EQ(idx.Page(MarketList::kProviderOffers, TestAddress(kProvider), all[9], 3),
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

// ---------------------------------------------------------------- one scan per height

TEST(OneScanPerHeight, TurnsAwayACallDuringAScanAndCachesPerHeight) {
  OneScanPerHeight gate;
  std::atomic<int> scans{0};
  auto at = [](uint64_t h) { return [h] { return h; }; };
  auto counted = [&](uint64_t h) {
    return [&scans, h] {
      ++scans;
      return Json{{"height", h}};
    };
  };
  std::promise<void> scanning, release;
  std::shared_future<void> released = release.get_future().share();
  std::optional<base::Result<Json>> first;
  std::thread slow([&] {
    first = gate.Get(
        5,
        [&] {
          ++scans;
          scanning.set_value();
          released.wait();  // holds the scan until the main thread has asked
          return Json{{"height", 5}};
        },
        at(5));
  });
  scanning.get_future().wait();
  auto busy = gate.Get(5, counted(5), at(5));  // busy: "retry", and no second scan
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, base::ErrorCode::kUnavailable);
  release.set_value();
  slow.join();
  ASSERT_TRUE(first && *first);
  // An answer's json, or null when it was a refusal.
  auto answer = [](const base::Result<Json>& r) { return r ? *r : Json(); };
  EXPECT_EQ(answer(gate.Get(5, counted(5), at(5))), **first);  // the same height: cached
  EXPECT_EQ(scans, 1);
  EXPECT_EQ(answer(gate.Get(7, counted(7), at(7))), (Json{{"height", 7}}));
  EXPECT_EQ(answer(gate.Get(7, counted(7), at(7))), (Json{{"height", 7}}));
  EXPECT_EQ(scans, 2);
}

TEST(OneScanPerHeight, AScanThatABlockCommitOverlappedIsARetryNeverAnAnswer) {
  OneScanPerHeight gate;
  int scans = 0;
  // The scan read part of height 6 and part of 7, so its sums do not hold: the
  // node must not report that as a broken equation (holds:false).
  auto mixed = [&scans] {
    ++scans;
    return Json{{"height", 6}, {"holds", false}};
  };
  uint64_t stored_height = 6;
  auto moves_during_scan = [&stored_height] { return ++stored_height; };
  auto r = gate.Get(6, mixed, moves_during_scan);
  ASSERT_FALSE(r) << r->dump();
  EXPECT_EQ(r.error().code, base::ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("retry"), std::string::npos) << r.error().message;
  // Nothing was cached: the next request at the new height scans again, and a
  // scan no commit overlapped is the answer.
  auto again = gate.Get(
      7,
      [&scans] {
        ++scans;
        return Json{{"height", 7}, {"holds", true}};
      },
      [] { return uint64_t{7}; });
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)["holds"], true);
  EXPECT_EQ(scans, 2);
}

// ---------------------------------------------------------------- the node's RPC

struct MarketLists : ::testing::Test {
  gpunet::testing::TempDir tmp{{.prefix = "gpunet-market-lists"}};
  std::filesystem::path home = tmp.Sub("home");
  std::unique_ptr<Node> node;
  World w;
  codec::Address validator;

  void SetUp() override {
    InitOptions init;
    init.home = home.string();
    init.chain_id = kChain;
    init.rpc = "127.0.0.1:0";
    init.block_interval_ms = 5;
    // Just in the past: the reserved leases' start deadlines (10 minutes after
    // their blocks) stay ahead of the wall clock, so no block comes unasked.
    init.genesis_time_ms = WallMs() - 60'000;
    for (uint8_t k : {kProvider, kTenantA, kTenantB, kLeaser})
      init.accounts.push_back({TestAddress(k), 10'000'000 * kGpn});
    auto inited = InitHome(init);
    ASSERT_TRUE(inited) << inited.error().ToString();
    validator = crypto::AddressOf(inited->validator_public_key);
    ASSERT_NO_FATAL_FAILURE(Populate());
    Start();
  }
  void TearDown() override { node.reset(); }

  /// Runs `commit` on a LedgerApp over the home's store, before the node runs.
  void BeforeStart(const std::function<void(ledger::LedgerApp&)>& commit) {
    auto genesis = ledger::LoadGenesisFile((home / "config/genesis.json").string());
    ASSERT_TRUE(genesis);
    auto kv = storage::RocksKvStore::Open((home / "data").string(), {});
    ASSERT_TRUE(kv) << kv.error().ToString();
    auto app = ledger::LedgerApp::Open(**kv, *genesis);
    ASSERT_TRUE(app) << app.error().ToString();
    commit(**app);
  }

  // Thousands of closed records and a few open ones, committed before the node runs.
  virtual void Populate() {
    BeforeStart([this](ledger::LedgerApp& app) { PopulateLists(app); });
  }
  void PopulateLists(ledger::LedgerApp& app) {
    ASSERT_NO_FATAL_FAILURE(CommitAll(app, w.Setup(), validator));
    for (int round = 0; round < 10; ++round) {  // open ones spread among the closed
      ASSERT_NO_FATAL_FAILURE(CommitAll(app, w.Offers(200, 2), validator));
      ASSERT_NO_FATAL_FAILURE(CommitAll(app, w.Orders(kTenantA, 100, 1), validator));
      ASSERT_NO_FATAL_FAILURE(CommitAll(app, w.Orders(kTenantB, 0, 1), validator));
    }
    ASSERT_NO_FATAL_FAILURE(CommitAll(app, w.Leases(200, 5), validator));
  }

  void Start() {
    NodeOptions options;
    options.home = home.string();
    options.log_blocks = false;
    auto started = Node::Start(options);
    ASSERT_TRUE(started) << started.error().ToString();
    node = std::move(*started);
  }

  client::HttpResponse Get(const std::string& path) {
    auto r = client::HttpClient(node->RpcUrl()).Get(path);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : client::HttpResponse{};
  }
  Json GetOk(const std::string& path) {
    auto r = Get(path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    return Json::parse(r.body, nullptr, false);
  }

  /// A counter of /metrics; fails the test when the node does not export it.
  uint64_t Metric(const std::string& name) {
    const std::string body = Get("/metrics").body;
    const auto at = body.find("\n" + name + " ");
    EXPECT_NE(at, std::string::npos) << name << " is not in /metrics";
    if (at == std::string::npos) return 0;
    return std::stoull(body.substr(at + name.size() + 2));
  }

  /// The ids under `field` of every page of `path` (with its query), following
  /// `next`; each page's size is checked against `limit`.
  Ids AllPages(const std::string& path, const std::string& list, const std::string& field,
               size_t limit) {
    Ids ids;
    std::string after;
    for (int pages = 0; pages < 10'000; ++pages) {
      Json j = GetOk(path + "&limit=" + std::to_string(limit) + after);
      EXPECT_LE(j[list].size(), limit);
      for (const auto& e : j[list]) ids.push_back(e[field].get<uint64_t>());
      if (!j.contains("next")) {
        EXPECT_FALSE(j["truncated"].get<bool>());
        return ids;
      }
      EXPECT_TRUE(j["truncated"].get<bool>());
      after = "&after=" + std::to_string(j["next"].get<uint64_t>());
    }
    ADD_FAILURE() << path << " never ended";
    return ids;
  }

  Ids IdsOf(const Json& j, const std::string& list, const std::string& field) {
    Ids ids;
    for (const auto& e : j[list]) ids.push_back(e[field].get<uint64_t>());
    return ids;
  }

  /// Posts a tx and waits until it is committed; it must apply.
  void Commit(const base::Bytes& tx) {
    Json body = {{"tx", base::ToHex(tx)}, {"wait", "committed"}, {"timeout_ms", 20'000}};
    auto r = client::HttpClient(node->RpcUrl()).Post("/tx", body.dump());
    ASSERT_TRUE(r) << r.error().ToString();
    ASSERT_EQ(r->status, 200) << r->body;
    ASSERT_EQ(Json::parse(r->body)["code"], 0) << r->body;
  }
};

TEST_F(MarketLists, OpenListsReadOnlyTheirPageNotEveryRecord) {
  ASSERT_EQ(w.offers, 2020u);
  ASSERT_EQ(w.orders, 1020u);
  const Ids open_offers(w.open_offers.begin(), w.open_offers.end());
  std::set<uint64_t> both = w.open_orders_a;
  both.insert(w.open_orders_b.begin(), w.open_orders_b.end());
  const Ids open_orders(both.begin(), both.end());
  const Ids open_leases(w.open_leases.begin(), w.open_leases.end());

  uint64_t read = Metric("gpunet_market_list_records_read_total");
  EXPECT_EQ(IdsOf(GetOk("/market/offers"), "offers", "offer_id"), open_offers);
  EXPECT_EQ(IdsOf(GetOk("/market/orders"), "orders", "order_id"), open_orders);
  EXPECT_EQ(IdsOf(GetOk("/market/orders?tenant=" + AddrText(kTenantA)), "orders", "order_id"),
            Ids(w.open_orders_a.begin(), w.open_orders_a.end()));
  EXPECT_EQ(IdsOf(GetOk("/market/leases?tenant=" + AddrText(kLeaser)), "leases", "lease_id"),
            open_leases);
  EXPECT_EQ(IdsOf(GetOk("/market/leases?provider=" + AddrText(kProvider)), "leases", "lease_id"),
            open_leases);
  // Each answer loaded the records it returned and no other: 20 + 20 + 10 + 5 + 5,
  // where a walk would have read the 3,245 closed ones too; and the offers' one
  // class (provider 1's H100 machines, any site): the provider, 1 site, 4 machines.
  EXPECT_EQ(Metric("gpunet_market_list_records_read_total") - read, 60u + 6u);
}

/// The provider with the most a class can cost: kSitesPerProviderMax... here 30
/// sites, all kMachinesPerProviderMax machines, and an open offer on each site,
/// so every offer is a class of its own that reads 1 + 30 + 1,024 records.
struct MarketListsOfCostlyClasses : MarketLists {
  static constexpr uint32_t kSites = 30;
  void Populate() override {
    BeforeStart([this](ledger::LedgerApp& app) { PopulateClasses(app); });
  }
  void PopulateClasses(ledger::LedgerApp& app) {
    ASSERT_NO_FATAL_FAILURE(CommitAll(app, w.Setup(), validator));  // site 1, machines 1..4
    const codec::Address p = TestAddress(kProvider);
    std::vector<codec::Msg> msgs;
    std::vector<base::Bytes> txs;
    auto add = [&](codec::Msg m) {
      msgs.push_back(std::move(m));
      if (msgs.size() == base::limits::kMsgsPerTxMax)
        txs.push_back(w.Tx(kProvider, std::exchange(msgs, {})));
    };
    for (uint32_t site = 2; site <= kSites; ++site)
      add(codec::MsgSiteUpsert{p, site, codec::Fabric::kEthernet, 10});
    for (uint32_t m = 5; m <= base::limits::kMachinesPerProviderMax; ++m)
      add(codec::MsgMachineUpsert{p, m, 1 + m % kSites, "A100", 8, 80, codec::GpuLink::kPcie, "550",
                                  12040, 80, 8, 64, 100});
    for (uint32_t site = 1; site <= kSites; ++site)
      add(codec::MsgOfferCreate{p, "A100", site, kGpn, {}});
    if (!msgs.empty()) txs.push_back(w.Tx(kProvider, std::move(msgs)));
    ASSERT_NO_FATAL_FAILURE(CommitAll(app, std::move(txs), validator));
  }
};

TEST_F(MarketListsOfCostlyClasses, AnOfferPageEndsAtItsReadBudgetAndNextCoversTheRest) {
  constexpr uint64_t kClassReads = 1 + kSites + base::limits::kMachinesPerProviderMax;
  const uint64_t read = Metric("gpunet_market_list_records_read_total");
  Json first = GetOk("/market/offers?limit=1000");
  const Ids ids = IdsOf(first, "offers", "offer_id");
  // Offers 1..n until the reads passed the budget: 19 of the 30 (19 × 1,056 reads).
  const uint64_t n = (kMarketPageReadsMax + kClassReads) / (kClassReads + 1);
  ASSERT_EQ(ids.size(), n);
  EXPECT_EQ(ids.front(), 1u);
  EXPECT_EQ(first["truncated"], true);
  EXPECT_EQ(first["next"], ids.back());
  // The metric counts the classes' reads, not only the offers returned.
  const uint64_t spent = Metric("gpunet_market_list_records_read_total") - read;
  EXPECT_EQ(spent, n * (kClassReads + 1));
  EXPECT_GE(spent, kMarketPageReadsMax);
  // Following next covers the list exactly once.
  Ids every(kSites);
  for (uint64_t i = 0; i < kSites; ++i) every[i] = i + 1;
  EXPECT_EQ(AllPages("/market/offers?all=false", "offers", "offer_id", 1000), every);
  EXPECT_EQ(AllPages("/market/offers?all=true&provider=" + AddrText(kProvider), "offers",
                     "offer_id", 1000),
            every);
}

TEST_F(MarketLists, NextPagesCoverEveryListExactlyOnce) {
  const Ids open_offers(w.open_offers.begin(), w.open_offers.end());
  EXPECT_EQ(AllPages("/market/offers?all=false", "offers", "offer_id", 3), open_offers);
  Ids every(w.offers);
  for (uint64_t i = 0; i < w.offers; ++i) every[i] = i + 1;
  EXPECT_EQ(AllPages("/market/offers?all=true", "offers", "offer_id", 1000), every);
  EXPECT_EQ(AllPages("/market/offers?all=true&provider=" + AddrText(kProvider), "offers",
                     "offer_id", 999),
            every);
  EXPECT_EQ(AllPages("/market/orders?state=open", "orders", "order_id", 7).size(), 20u);
  const Ids a_orders =
      AllPages("/market/orders?state=all&tenant=" + AddrText(kTenantA), "orders", "order_id", 64);
  EXPECT_EQ(a_orders.size(), 1010u);
  EXPECT_TRUE(std::is_sorted(a_orders.begin(), a_orders.end()));
  EXPECT_EQ(std::set<uint64_t>(a_orders.begin(), a_orders.end()).size(), a_orders.size());
  EXPECT_EQ(AllPages("/market/orders?state=all", "orders", "order_id", 1000).size(), 1020u);
  EXPECT_EQ(
      AllPages("/market/leases?state=all&tenant=" + AddrText(kLeaser), "leases", "lease_id", 16)
          .size(),
      205u);
  EXPECT_EQ(AllPages("/market/leases?state=open&provider=" + AddrText(kProvider), "leases",
                     "lease_id", 2),
            Ids(w.open_leases.begin(), w.open_leases.end()));
}

TEST_F(MarketLists, TheClientFollowsNextThroughEveryPage) {
  client::MarketClient market(node->RpcUrl());
  auto orders = market.GetAll("/market/orders?state=all&limit=100", "orders");
  ASSERT_TRUE(orders) << orders.error().ToString();
  ASSERT_EQ(orders->size(), w.orders);
  for (size_t i = 0; i < orders->size(); ++i)
    ASSERT_EQ((*orders)[i]["order_id"].get<uint64_t>(), i + 1);
  // A list longer than the caller's page budget says so rather than cut silently.
  auto cut = market.GetAll("/market/orders?state=all&limit=100", "orders", 3);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, base::ErrorCode::kLimitExceeded);
  auto offers = market.Offers();  // what `gpunet offers` filters: every open offer
  ASSERT_TRUE(offers) << offers.error().ToString();
  EXPECT_EQ(offers->size(), w.open_offers.size());
}

TEST_F(MarketLists, LimitsAreCappedAndCursorsChecked) {
  // Without a limit a page holds the default, and says where the next starts.
  Json j = GetOk("/market/offers?all=true");
  EXPECT_EQ(j["offers"].size(), kMarketListDefault);
  EXPECT_EQ(j["next"], kMarketListDefault);
  EXPECT_EQ(GetOk("/market/offers?all=true&limit=1000")["offers"].size(), kMarketListMax);
  // Digits only: no sign, no space (strtoull took "+5" and " 5"), nothing past 2^64.
  for (const std::string bad :
       {"limit=1001", "limit=0", "after=x", "after=-1", "limit=5&after=", "limit=%2B5",
        "limit=%205", "after=%2B5", "after=%205", "after=5%20", "after=18446744073709551616"}) {
    auto r = Get("/market/orders?state=all&" + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(Json::parse(r.body)["error"]["code"], "invalid_argument") << bad;
  }
  for (const std::string bad : {"/market/order/+1", "/market/offer/%201", "/market/lease/0x1"}) {
    auto r = Get(bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
  // A cursor past the end is an empty last page.
  j = GetOk("/market/offers?all=true&after=999999");
  EXPECT_TRUE(j["offers"].empty());
  EXPECT_FALSE(j.contains("next"));
}

TEST_F(MarketLists, IndexFollowsBlocksAndIsRebuiltAtRestart) {
  const uint64_t closed_offer = *w.open_offers.begin(), closed_order = *w.open_orders_a.begin(),
                 closed_lease = *w.open_leases.begin();
  Commit(w.Tx(kProvider, {codec::MsgOfferClose{TestAddress(kProvider), closed_offer},
                          codec::MsgOfferCreate{TestAddress(kProvider), "H100", 0, kGpn, {}}}));
  Commit(w.Tx(kTenantA, {codec::MsgOrderClose{closed_order}, OrderMsg()}));
  Commit(w.Tx(kLeaser, {codec::MsgLeaseClose{closed_lease, codec::CloseReason::kNormal}}));
  w.open_offers.erase(closed_offer);
  w.open_offers.insert(++w.offers);
  w.open_orders_a.erase(closed_order);
  w.open_orders_a.insert(++w.orders);
  w.open_leases.erase(closed_lease);

  auto check = [&] {
    EXPECT_EQ(IdsOf(GetOk("/market/offers"), "offers", "offer_id"),
              Ids(w.open_offers.begin(), w.open_offers.end()));
    EXPECT_EQ(IdsOf(GetOk("/market/orders?limit=1000"), "orders", "order_id").size(), 20u);
    const Ids orders_a =
        IdsOf(GetOk("/market/orders?tenant=" + AddrText(kTenantA)), "orders", "order_id");
    EXPECT_EQ(orders_a, Ids(w.open_orders_a.begin(), w.open_orders_a.end()));
    EXPECT_EQ(IdsOf(GetOk("/market/leases?tenant=" + AddrText(kLeaser)), "leases", "lease_id"),
              Ids(w.open_leases.begin(), w.open_leases.end()));
  };
  const uint64_t read = Metric("gpunet_market_list_records_read_total");
  check();
  // The offers' class (provider, site, 4 machines) is 6 reads.
  EXPECT_EQ(Metric("gpunet_market_list_records_read_total") - read, 20u + 6 + 20 + 10 + 4);

  node.reset();  // a restart: the index is built again from the store
  Start();
  check();
  EXPECT_EQ(Metric("gpunet_market_list_records_read_total"), 20u + 6 + 20 + 10 + 4);
}

// What a lease and an offer answer adds to their records is the market's own
// query (market/query.h): the accrual at the last block by math.h's formula, what
// is due of it, and the class of machines an offer sells with its free GPUs.
TEST_F(MarketLists, LeaseAccrualAndOfferClassAreTheMarketsQueries) {
  const uint64_t lease = *w.open_leases.begin();
  Commit(w.Tx(kProvider, {codec::MsgLeaseStarted{lease}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // some GPU time to accrue
  Commit(w.Tx(kProvider, {codec::MsgHeartbeat{TestAddress(kProvider)}}));
  auto expect_accrual = [](const Json& l) {
    const uint64_t as_of = l["as_of_ms"].get<uint64_t>();
    const uint64_t started = l["started_ms"].get<uint64_t>();
    const uint64_t paid_until = l["paid_until_ms"].get<uint64_t>();
    ASSERT_GT(as_of, started);
    const uint64_t accrued =
        market::Accrued(std::stoull(l["rate_ugpn_per_hour"].get<std::string>()),
                        std::min(as_of, paid_until) - started);
    const uint64_t paid = std::stoull(l["paid_ugpn"].get<std::string>());
    EXPECT_EQ(l["accrued_ugpn"], std::to_string(std::max(accrued, paid))) << l.dump();
    EXPECT_EQ(l["withdrawable_ugpn"], std::to_string(std::max(accrued, paid) - paid)) << l.dump();
  };
  Json l = GetOk("/market/lease/" + std::to_string(lease))["lease"];
  ASSERT_EQ(l["state"], "started");
  EXPECT_NE(l["accrued_ugpn"], "0");  // a second at 1 GPN per GPU-hour: about 300 ugpn
  expect_accrual(l);
  // After a withdrawal the answer shows what was paid and only what accrued since.
  Commit(w.Tx(kProvider, {codec::MsgLeaseWithdraw{lease}}));
  l = GetOk("/market/lease/" + std::to_string(lease))["lease"];
  EXPECT_NE(l["paid_ugpn"], "0");
  expect_accrual(l);

  // The offers' machines: 4 x 8 H100 on site 1 (ethernet, pcie), each open lease
  // holding 1 GPU.
  const Json o = GetOk("/market/offer/" + std::to_string(w.any_open_offer))["offer"];
  EXPECT_EQ(o["machines"], 4);
  EXPECT_EQ(o["sites"], 1);
  EXPECT_EQ(o["gpus_per_machine_max"], 8);
  EXPECT_EQ(o["free_gpus"], 32 - w.open_leases.size());
  EXPECT_EQ(o["vram_gib_min"], 80);
  EXPECT_EQ(o["cuda_version_min"], 12040);
  EXPECT_EQ(o["compute_capability_min"], 90);
  EXPECT_EQ(o["driver_version_min"], "550");
  EXPECT_EQ(o["link"], "pcie");
  EXPECT_EQ(o["fabric"], "ethernet");
  EXPECT_EQ(o["region"], "eu");
  EXPECT_EQ(o["provider_active"], true);
}

TEST_F(MarketLists, ConservationScansOncePerHeightWhateverTheCrowd) {
  const uint64_t scans = Metric("gpunet_conservation_scans_total");
  constexpr int kClients = 8;
  std::vector<client::HttpResponse> answers(kClients);
  {
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i)
      clients.emplace_back([&, i] {
        auto r = client::HttpClient(node->RpcUrl()).Get("/conservation");
        if (r) answers[i] = *r;
      });
    for (auto& t : clients) t.join();
  }
  std::set<std::string> bodies;
  for (const auto& a : answers) {
    if (a.status == 503) {  // one scan at a time: the others are told to retry
      EXPECT_EQ(Json::parse(a.body)["error"]["code"], "unavailable") << a.body;
      continue;
    }
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(Json::parse(a.body)["holds"].get<bool>()) << a.body;
    bodies.insert(a.body);
  }
  ASSERT_FALSE(bodies.empty());
  EXPECT_EQ(bodies.size(), 1u);  // the same height, the same answer
  EXPECT_EQ(Metric("gpunet_conservation_scans_total") - scans, 1u);
  // Asked again at the same height: the cached answer, no scan.
  EXPECT_EQ(Get("/conservation").body, *bodies.begin());
  EXPECT_EQ(Metric("gpunet_conservation_scans_total") - scans, 1u);

  // A new block: one new scan, at the new height. The client library asks again
  // after a 503, so every one of a crowd of its callers gets the answer.
  const uint64_t height = Json::parse(*bodies.begin())["height"].get<uint64_t>();
  Commit(w.Tx(kTenantB, {codec::MsgSend{TestAddress(kTenantA), 1}}));
  std::vector<Json> got(kClients);
  {
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i)
      clients.emplace_back([&, i] {
        auto r = client::MarketClient(node->RpcUrl()).Conservation();
        if (r) got[i] = *r;
      });
    for (auto& t : clients) t.join();
  }
  for (const Json& j : got) {
    ASSERT_TRUE(j.is_object() && j.contains("holds")) << "a client got no answer";
    EXPECT_TRUE(j["holds"].get<bool>());
    EXPECT_EQ(j, got[0]);
    EXPECT_GT(j["height"].get<uint64_t>(), height);
  }
  EXPECT_EQ(Metric("gpunet_conservation_scans_total") - scans, 2u);
}

}  // namespace
}  // namespace gpunet::node
