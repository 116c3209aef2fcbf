// Every message type at its limits, and the biggest end-of-block batch, over one
// committed market state: what gas_coverage_test checks for unmetered operations
// and what bench_gas times (one set, so the benchmark's worst message is the test's).
//
// The state (built once, unmetered, committed to a counting KvStore):
//  - provider 0 with 1,024 machines (kMachinesPerProviderMax) of one model, an offer
//    and a reserved lease: LeaseCreate of 64 machines scans all 1,024 (first fit);
//  - providers 1..64, 64 machines each, every machine attested by the last of 8
//    auditors for 16 attributes (kAttributesMax, 64-byte values); attribute 16 on
//    machine 64 expires before the bid windows end;
//  - orders A1 and A2 (64 machines, 16 attributes, 8 auditors, same site, fabric,
//    region, models, VRAM, CUDA) with 64 bids each (kBidsPerOrderMax), one per
//    provider; order B alike with one bid; 254 more orders of 17 tenants, all due
//    with A1 and A2 (kEndBlockWorkMax = 256 items).
// Cases: a transfer, every market message (full attribute matching for BidCreate and
// BidAccept, the 1,024-machine scan for LeaseCreate), and the end of block where
// A1's 64 bids each fail at the last attribute of the last machine (the award check
// with the most bids, each doing the whole match), after which the end-of-block gas
// budget defers A2 and the 254 others to the next blocks.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "market/apply.h"
#include "market/keys.h"
#include "market/records.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "state/market_store.h"
#include "state/tx_pipeline.h"
#include "util/keys.h"

namespace gpunet::state::gas_cases {

namespace limits = base::limits;
/// A default genesis's market rules, which every case runs under.
inline const market::Params kMarket{};

/// A KvStore that counts what reaches it: every Get and every entry a Scan visits.
class CountingKvStore final : public KvStore {
 public:
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    ++gets;
    return m_inner.Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const KvVisitor& visit) const override {
    ++scans;
    return m_inner.Scan(begin, end, [&](base::ByteSpan k, base::ByteSpan v) {
      ++scan_entries;
      return visit(k, v);
    });
  }
  base::Status Commit(const WriteBatch& batch) override { return m_inner.Commit(batch); }
  void Reset() { gets = scans = scan_entries = 0; }

  mutable uint64_t gets = 0;
  mutable uint64_t scans = 0;
  mutable uint64_t scan_entries = 0;

 private:
  MemoryKvStore m_inner;
};

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

// Key numbers of the participants.
inline constexpr uint32_t kProvider0 = 1000;  ///< providers are 1000 + i, i = 0..64
inline constexpr uint32_t kNewProvider = 1100;
inline constexpr uint32_t kIdleProvider = 1101;    ///< the most open offers, no leases
inline constexpr uint32_t kClaimProvider = 1102;   ///< the most unbondings, all matured
inline constexpr uint32_t kPayeesProvider = 1103;  ///< 16 payees, a started lease
inline constexpr uint32_t kTenant = 2000;          ///< tenants 2000..2016 (2016: no orders yet)
inline constexpr uint32_t kAuditor = 3000;         ///< auditors 3000..3007
inline constexpr uint32_t kBidders = 64;
inline constexpr uint64_t kT0 = 1'700'000'000'000;
inline constexpr uint64_t kWindowMs = 20'000;          ///< order A and the 255 others
inline constexpr uint64_t kShortExpiryMs = 10'000;     ///< attribute 16 on machine 64
inline constexpr uint64_t kBidTime = kT0 + 1'000;      ///< the message cases run then
inline constexpr uint64_t kEndTime = kT0 + kWindowMs;  ///< the end-of-block case
/// Made by BuildRefusalFreeStates, after provider 0's offer 1 and lease 1 and the
/// idle provider's 64 offers.
inline constexpr uint64_t kPayeesOffer = 2 + limits::kOffersPerProviderMax;
inline constexpr uint64_t kPayeesLease = 2;

/// One case: a tx of one message from `sender`, or (end_block) the end-of-block work.
struct Case {
  std::string name;
  uint32_t sender = 0;
  codec::Msg msg;
  bool end_block = false;
};

class World {
 public:
  World() : m_setup(kv) { Build(); }

  codec::Address Addr(uint32_t n) const { return TestAddress(n); }
  const std::vector<Case>& Cases() const { return m_cases; }

  /// The pipeline's rules; gas prices from GasParams' defaults (the genesis ones).
  PipelineParams Params() const {
    PipelineParams p;
    p.chain_id = "gas-cases";
    p.fees = FeeParams{1, 100, 1000, 5000};
    p.tx_bytes_max = limits::kTxBytesMax;
    p.msgs_per_tx_max = limits::kMsgsPerTxMax;
    p.nonce_ahead_max = 0;
    p.market = kMarket;
    return p;
  }

  /// The case's tx, signed, with a fee that buys the block's whole gas limit.
  CheckedTx Tx(const Case& c) const {
    const PipelineParams params = Params();
    codec::TxBody body;
    body.chain_id = params.chain_id;
    body.sender = TestKey(c.sender).Public();
    body.nonce = 0;
    body.msgs.push_back(c.msg);
    const uint64_t bytes = codec::EncodeTx(codec::SignTx(body, TestKey(c.sender))).size();
    body.fee_ugpn = FeeForGas(*ByteAndMsgPrice(params.fees, bytes, 1), params.gas.block_max,
                              params.gas.price_ugpn);
    auto checked = CheckStateless(codec::SignTx(body, TestKey(c.sender)), params, nullptr);
    GPUNET_CHECK(checked.has_value());
    return std::move(*checked);
  }

  CountingKvStore kv;

  codec::MsgMachineUpsert Machine(uint32_t provider, uint32_t id) const {
    return codec::MsgMachineUpsert{
        Addr(provider), id,    1,  "H100", 8,   80,  codec::GpuLink::kNvlink,
        "550.54.15",    12040, 90, 64,     512, 1000};
  }

 private:
  void Apply(uint32_t sender, const codec::Msg& msg, uint64_t time_ms) {
    std::vector<codec::Event> events;
    MarketStateStore store(m_setup);
    auto r = market::ApplyMarketMsg(store, kMarket, market::BlockTime{1, time_ms}, Addr(sender),
                                    msg, events);
    GPUNET_CHECK(r.has_value());
    if (r->has_value()) {
      std::fprintf(stderr, "setup refused: %s\n", (*r)->ToString().c_str());
      GPUNET_CHECK(false);
    }
  }
  void Commit() { GPUNET_CHECK(kv.Commit(m_setup.TakeChanges()).has_value()); }

  std::vector<codec::Address> Auditors() const {
    std::vector<codec::Address> a;
    for (uint32_t i = 0; i < 8; ++i) a.push_back(Addr(kAuditor + i));
    std::sort(a.begin(), a.end());
    return a;
  }
  uint32_t LastAuditor() const {
    const codec::Address last = Auditors().back();
    for (uint32_t i = 0; i < 8; ++i)
      if (Addr(kAuditor + i) == last) return kAuditor + i;
    GPUNET_UNREACHABLE();
  }
  static std::vector<codec::Attribute> Attributes(size_t from, size_t to) {
    std::vector<codec::Attribute> out;
    for (size_t i = from; i < to; ++i)
      out.push_back({"attr" + std::to_string(10 + i), std::string(64, static_cast<char>('a' + i))});
    return out;
  }
  codec::Requirements FullRequirements() const {
    codec::Requirements q;
    q.gpu_models = {"H100"};
    q.gpus_per_machine = 1;
    q.machines = 64;
    q.min_vram_gib = 80;
    q.region = "eu";
    q.fabric = codec::Fabric::kInfiniband;
    q.same_site = true;
    q.min_cuda_version = 12000;
    q.auditors = Auditors();
    q.attributes = Attributes(0, limits::kAttributesMax);
    return q;
  }

  /// The most payees (kPayoutSplitsMax tenants' addresses), ascending.
  std::vector<codec::PayoutSplit> ManyPayees() const {
    std::vector<codec::PayoutSplit> payouts;
    for (uint32_t i = 0; i < limits::kPayoutSplitsMax; ++i)
      payouts.push_back({Addr(kTenant + i), static_cast<uint32_t>(10'000 / 16)});
    std::sort(payouts.begin(), payouts.end(),
              [](const auto& a, const auto& b) { return a.payee < b.payee; });
    return payouts;
  }
  void Register(uint32_t provider, uint64_t time_ms = kT0,
                std::vector<codec::PayoutSplit> payouts = {}) {
    codec::MsgProviderRegister reg;
    reg.operator_address = Addr(provider);
    reg.tenant_api_uri = "https://provider.example";
    reg.region = "eu";
    reg.bond_ugpn = 1'000 * 1'000'000;
    reg.payouts = payouts.empty() ? std::vector<codec::PayoutSplit>{{Addr(provider), 10'000}}
                                  : std::move(payouts);
    Apply(provider, reg, time_ms);
    Apply(provider, codec::MsgSiteUpsert{Addr(provider), 1, codec::Fabric::kInfiniband, 400},
          time_ms);
  }
  /// The most excluded providers (none of them a bidder) and every other
  /// provider requirement, each one met by the bidders.
  codec::ProviderRequirements FullProviderRequirements() const {
    codec::ProviderRequirements r;
    r.min_bond_ugpn = 1;
    r.min_earned_ugpn = 0;
    r.max_fault_rate_ppm = 999'999;
    for (uint32_t i = 0; i < limits::kOrderExclusionsMax; ++i) r.excluded.push_back(Addr(5000 + i));
    std::sort(r.excluded.begin(), r.excluded.end());
    return r;
  }
  codec::MsgOrderCreate Order(codec::Requirements q, uint64_t window_ms) const {
    codec::MsgOrderCreate o;
    o.requirements = std::move(q);
    o.max_price_ugpn_per_gpu_hour = 1000;
    o.deposit_ugpn = 1000ull * o.requirements.machines * o.requirements.gpus_per_machine;
    o.bid_window_ms = window_ms;
    // An order that names auditors requires everything, providers included.
    if (!o.requirements.auditors.empty()) o.providers = FullProviderRequirements();
    return o;
  }
  std::vector<uint32_t> MachineIds() const {
    std::vector<uint32_t> ids;
    for (uint32_t i = 1; i <= 64; ++i) ids.push_back(i);
    return ids;
  }

  void Build();
  void BuildRefusalFreeStates();

  StateDb m_setup;
  std::vector<Case> m_cases;
};

inline void World::Build() {
  // Accounts: everyone rich; the supply record matches (conservation).
  {
    WriteBatch genesis;
    uint64_t total = 0;
    auto fund = [&](uint32_t n) {
      genesis.Put(keyspace::AccountKey(Addr(n)), codec::EncodeAccount({1'000'000'000'000'000, 0}));
      total += 1'000'000'000'000'000;
    };
    for (uint32_t i = 0; i <= kBidders; ++i) fund(kProvider0 + i);
    for (uint32_t n = kNewProvider; n <= kPayeesProvider; ++n) fund(n);
    for (uint32_t i = 0; i <= 16; ++i) fund(kTenant + i);
    for (uint32_t i = 0; i < 8; ++i) fund(kAuditor + i);
    genesis.Put(SupplyKey(), EncodeSupply(Supply{total, 0, 0, 0}));
    GPUNET_CHECK(kv.Commit(genesis).has_value());
  }
  // Provider 0: 1,024 machines, an offer, a reserved lease.
  Register(kProvider0);
  for (uint32_t id = 1; id <= limits::kMachinesPerProviderMax; ++id)
    Apply(kProvider0, Machine(kProvider0, id), kT0);
  Apply(kProvider0, codec::MsgOfferCreate{Addr(kProvider0), "H100", 0, 1000, {}}, kT0);
  Apply(kTenant, codec::MsgLeaseCreate{1, 1, 1, 1'000'000, {}}, kT0);
  Commit();
  // Providers 1..64: 64 machines each, attested by the last auditor.
  const uint32_t auditor = LastAuditor();
  for (uint32_t i = 1; i <= kBidders; ++i) {
    const uint32_t p = kProvider0 + i;
    Register(p);
    for (uint32_t id = 1; id <= 64; ++id) {
      Apply(p, Machine(p, id), kT0);
      const bool last = id == 64;
      Apply(auditor,
            codec::MsgAttest{Addr(p), id, Attributes(0, limits::kAttributesMax - (last ? 1 : 0)),
                             kT0 + 365ull * 24 * 3600 * 1000},
            kT0);
      if (last)
        Apply(auditor,
              codec::MsgAttest{Addr(p), id,
                               Attributes(limits::kAttributesMax - 1, limits::kAttributesMax),
                               kT0 + kShortExpiryMs},
              kT0);
    }
    Commit();
  }
  // Orders A1 and A2 (ids 1, 2): every bidder bids on both (bids 1..128). Order B
  // (id 3): provider 1 bids (bid 129).
  Apply(kTenant, Order(FullRequirements(), kWindowMs), kT0);
  Apply(kTenant, Order(FullRequirements(), kWindowMs), kT0);
  Apply(kTenant, Order(FullRequirements(), 3'600'000), kT0);
  for (uint64_t order = 1; order <= 2; ++order)
    for (uint32_t i = 1; i <= kBidders; ++i)
      Apply(kProvider0 + i, codec::MsgBidCreate{Addr(kProvider0 + i), order, 500, MachineIds()},
            kT0);
  Apply(kProvider0 + 1, codec::MsgBidCreate{Addr(kProvider0 + 1), 3, 500, MachineIds()}, kT0);
  // 254 more orders due with A1 and A2: 13 more of this tenant, 16 of each of 15
  // others, 1 of the last.
  codec::Requirements small;
  small.gpus_per_machine = 1;
  small.machines = 1;
  size_t due = 2;
  for (uint32_t t = 0; t <= 16 && due < limits::kEndBlockWorkMax; ++t)
    for (size_t k = t == 0 ? 3 : 0;
         k < limits::kOpenOrdersPerAccountMax && due < limits::kEndBlockWorkMax; ++k, ++due)
      Apply(kTenant + t, Order(small, kWindowMs), kT0);
  Commit();
  BuildRefusalFreeStates();

  // ---- the cases ----
  const codec::Address p0 = Addr(kProvider0);
  auto add = [&](std::string name, uint32_t sender, codec::Msg msg) {
    m_cases.push_back(Case{std::move(name), sender, std::move(msg), false});
  };
  add("send", kTenant, codec::MsgSend{Addr(kAuditor), 1'000});
  {
    codec::MsgProviderRegister reg;
    reg.operator_address = Addr(kNewProvider);
    reg.tenant_api_uri = std::string(limits::kUriBytesMax, 'u');
    reg.region = "eu";
    reg.bond_ugpn = 1'000 * 1'000'000;
    reg.payouts = ManyPayees();
    add("provider_register", kNewProvider, reg);
    codec::MsgProviderUpdate update{p0, reg.tenant_api_uri, {}, "eu", reg.payouts, {}};
    add("provider_update", kProvider0, update);
  }
  add("provider_bond", kProvider0, codec::MsgProviderBond{1'000'000});
  add("provider_unbond", kProvider0, codec::MsgProviderUnbond{1'000'000});
  add("provider_claim_unbonded", kClaimProvider, codec::MsgProviderClaimUnbonded{});
  add("provider_deregister", kIdleProvider, codec::MsgProviderDeregister{});
  add("site_upsert", kProvider0, codec::MsgSiteUpsert{p0, 2, codec::Fabric::kRoce, 400});
  add("machine_upsert", kProvider0, Machine(kProvider0, 2));
  add("machine_remove", kProvider0, codec::MsgMachineRemove{p0, 1024});
  add("offer_create", kProvider0, codec::MsgOfferCreate{p0, "H100", 0, 2000, {}});
  add("offer_close", kProvider0, codec::MsgOfferClose{p0, 1});
  add("lease_create_first_fit_1024", kTenant + 16,
      codec::MsgLeaseCreate{1, 64, 8, 1'000'000'000, {}});
  add("order_create", kTenant + 16, Order(FullRequirements(), kWindowMs));
  add("order_close", kTenant, codec::MsgOrderClose{3});
  add("bid_create_full_match", kProvider0 + 2,
      codec::MsgBidCreate{Addr(kProvider0 + 2), 3, 500, MachineIds()});
  add("bid_accept_full_match", kTenant, codec::MsgBidAccept{2 * kBidders + 1});
  add("bid_withdraw", kProvider0 + 1, codec::MsgBidWithdraw{2 * kBidders + 1});
  add("lease_started", kProvider0, codec::MsgLeaseStarted{1});
  add("lease_deposit", kTenant, codec::MsgLeaseDeposit{1, 1'000'000});
  add("lease_withdraw", kPayeesProvider, codec::MsgLeaseWithdraw{kPayeesLease});
  add("lease_close", kTenant, codec::MsgLeaseClose{1, codec::CloseReason::kNormal});
  add("heartbeat", kProvider0, codec::MsgHeartbeat{p0});
  add("attest_16", kAuditor,
      codec::MsgAttest{p0, 1, Attributes(0, limits::kAttributesMax), kT0 + 3'600'000});
  m_cases.push_back(Case{"end_block_award_64_bids", 0, codec::MsgSend{}, true});
}

// States in which the messages that are refusals at provider 0 do their whole work:
// a provider with the most open offers and no lease (deregister closes them all),
// one with the most unbonding entries, all matured at kBidTime (claim), and one
// with 16 payees and a started lease that has accrued since kT0 (withdraw).
inline void World::BuildRefusalFreeStates() {
  Register(kIdleProvider);
  for (size_t i = 0; i < limits::kOffersPerProviderMax; ++i)
    Apply(kIdleProvider, codec::MsgOfferCreate{Addr(kIdleProvider), "H100", 1, 1000, {}}, kT0);
  const uint64_t unbonded_ms = kBidTime - kMarket.unbonding_delay_ms;
  Register(kClaimProvider, unbonded_ms);
  for (size_t i = 0; i < limits::kUnbondingEntriesMax; ++i)
    Apply(kClaimProvider, codec::MsgProviderUnbond{1'000'000}, unbonded_ms);
  Register(kPayeesProvider, kT0, ManyPayees());
  Apply(kPayeesProvider, Machine(kPayeesProvider, 1), kT0);
  // 3.6 GPN per GPU-hour: 1,000 ugpn accrue per second, enough for every payee.
  Apply(kPayeesProvider, codec::MsgOfferCreate{Addr(kPayeesProvider), "H100", 1, 3'600'000, {}},
        kT0);
  Apply(kTenant + 15, codec::MsgLeaseCreate{kPayeesOffer, 1, 1, 1'000'000'000, {}}, kT0);
  Apply(kPayeesProvider, codec::MsgLeaseStarted{kPayeesLease}, kT0);
  Commit();
}

/// What one case did: gas and the operations the meter charged, against what
/// reached the store underneath and what the overlay saw without a meter.
struct Outcome {
  uint16_t code = 0;
  uint64_t gas_used = 0;
  GasCounts charged;
  uint64_t kv_gets = 0;
  uint64_t kv_scans = 0;
  uint64_t kv_scan_entries = 0;
  uint64_t unmetered_ops = 0;
  uint64_t keys_written = 0;
  size_t events = 0;
};

/// Runs `c` on a fresh overlay over the committed state (nothing is committed, so
/// cases are independent and may be repeated).
/// `during` runs inside the case, after its work and before the counts are read
/// (a test of the checker uses it to read the store around the meter).
inline Outcome RunCase(World& world, const Case& c, const CheckedTx* tx = nullptr,
                       const std::function<void()>& during = {}) {
  Outcome out;
  world.kv.Reset();
  StateDb db(world.kv);
  const PipelineParams params = world.Params();
  if (c.end_block) {
    GasMeter meter(params.gas, GasMeter::kUnlimited);
    std::vector<codec::Event> events;
    auto s = MarketEndBlock(db, 2, kEndTime, events, params.gas, params.market, &meter);
    GPUNET_CHECK(s.has_value());
    out.gas_used = meter.Used();
    out.charged = meter.Counts();
    out.events = events.size();
  } else {
    CheckedTx own;
    if (tx == nullptr) {
      own = world.Tx(c);
      tx = &own;
    }
    GasUsed used;
    auto receipt = ApplyTx(db, *tx, BlockContext{1, kBidTime, {}}, 0, params, &used);
    GPUNET_CHECK(receipt.has_value() && receipt->has_value());
    out.code = (*receipt)->code;
    out.gas_used = used.gas;
    out.charged = used.ops;
    out.events = (*receipt)->events.size();
  }
  if (during) during();
  out.kv_gets = world.kv.gets;
  out.kv_scans = world.kv.scans;
  out.kv_scan_entries = world.kv.scan_entries;
  out.unmetered_ops = db.UnmeteredOps();
  out.keys_written = db.Pending().size();
  return out;
}

}  // namespace gpunet::state::gas_cases
