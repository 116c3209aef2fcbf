// bench-libs: gpunet_market gpunet_state
// Market cost (issue 4 item 13): a state of P providers x 5 machines (8 GPUs each,
// default 10,000 / 50,000), then
//  1. market rules per second: a mix of LeaseCreate, LeaseStarted, LeaseWithdraw,
//     LeaseClose and BidCreate applied through market::ApplyMarketMsg on the block
//     overlay, committed every 1,000 ops like blocks (no signatures: the ratio to
//     the verify rate below says how far the rules are from the signature wall);
//  2. end-of-block cost with L open started leases (default 100,000) of which 100
//     expire in the block, measured at L/10 and at L: it must not grow with L.
// One line per figure, with the raw BLAKE2b-256 and ed25519 verify rates measured
// in the same run.
//
//   bench_market [providers=10000] [leases=100000] [ops=20000]
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/check.h"
#include "baseline.h"
#include "codec/encoding.h"
#include "market/apply.h"
#include "market/keys.h"
#include "market/records.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "state/market_store.h"

using namespace gpunet;

namespace {

size_t Arg(int argc, char** argv, int i, size_t fallback) {
  return argc > i ? static_cast<size_t>(std::strtoull(argv[i], nullptr, 10)) : fallback;
}

codec::Address Addr(uint32_t kind, uint32_t i) {
  codec::Address a;
  a[0] = static_cast<uint8_t>(kind);
  a[16] = static_cast<uint8_t>(i >> 24);
  a[17] = static_cast<uint8_t>(i >> 16);
  a[18] = static_cast<uint8_t>(i >> 8);
  a[19] = static_cast<uint8_t>(i);
  return a;
}

struct World {
  state::MemoryKvStore kv;
  state::StateDb db{kv};
  state::MarketStateStore store{db};
  const market::Params params;  // a default genesis's market rules
  market::BlockTime block{1, 1'700'000'000'000};
  size_t refused = 0;

  bool Apply(const codec::Address& sender, const codec::Msg& msg) {
    std::vector<codec::Event> events;
    const size_t checkpoint = db.Checkpoint();
    auto r = market::ApplyMarketMsg(store, params, block, sender, msg, events);
    GPUNET_CHECK(r.has_value());
    if (r->has_value()) {
      db.RevertTo(checkpoint);
      ++refused;
      return false;
    }
    return true;
  }
  void Commit() {
    GPUNET_CHECK(kv.Commit(db.Changes()).has_value());
    db.Clear();
  }
  uint64_t LastLeaseId() {
    auto raw = db.Get(market::keys::CountersKey());
    return market::DecodeCounters(**raw)->next_lease_id - 1;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const uint32_t providers = static_cast<uint32_t>(Arg(argc, argv, 1, 10000));
  const size_t leases = Arg(argc, argv, 2, 100000);
  const size_t ops = Arg(argc, argv, 3, 20000);
  bench::Baseline base = bench::MeasureBaseline(1.0);

  World w;
  {
    state::WriteBatch genesis;
    uint64_t total = 0;
    for (uint32_t i = 0; i < providers; ++i) {
      genesis.Put(state::keyspace::AccountKey(Addr(1, i)),
                  codec::EncodeAccount({1'000'000'000'000, 0}));
      total += 1'000'000'000'000;
    }
    for (uint32_t t = 0; t < 64; ++t) {
      genesis.Put(state::keyspace::AccountKey(Addr(2, t)),
                  codec::EncodeAccount({100'000'000'000'000'000, 0}));
      total += 100'000'000'000'000'000;
    }
    genesis.Put(state::SupplyKey(), state::EncodeSupply(state::Supply{total, 0, 0, 0}));
    GPUNET_CHECK(w.kv.Commit(genesis).has_value());
  }
  for (uint32_t i = 0; i < providers; ++i) {
    codec::Address p = Addr(1, i);
    codec::MsgProviderRegister reg;
    reg.operator_address = p;
    reg.tenant_api_uri = "https://p";
    reg.region = "eu";
    reg.bond_ugpn = 1'000'000'000;
    reg.payouts = {{p, 10'000}};
    GPUNET_CHECK(w.Apply(p, reg));
    GPUNET_CHECK(w.Apply(p, codec::MsgSiteUpsert{p, 1, codec::Fabric::kInfiniband, 400}));
    for (uint32_t m = 1; m <= 5; ++m)
      GPUNET_CHECK(
          w.Apply(p, codec::MsgMachineUpsert{p, m, 1, "H100", 8, 80, codec::GpuLink::kNvlink, "550",
                                             12040, 90, 64, 512, 1000}));
    GPUNET_CHECK(w.Apply(p, codec::MsgOfferCreate{p, "H100", 0, 2'000'000, {}}));
    if (i % 1000 == 999) w.Commit();
  }
  w.Commit();

  // Open, started leases: 100 of each 10% cheap enough to expire early.
  auto make_leases = [&](size_t from, size_t to, std::vector<uint64_t>& cheap) {
    for (size_t n = from; n < to; ++n) {
      uint32_t provider = static_cast<uint32_t>(n % providers);
      codec::Address tenant = Addr(2, static_cast<uint32_t>(n % 64));
      bool expires = n % (to - from) < 100;
      uint64_t deposit = expires ? 2'000'000 : 1'000'000'000'000;  // 1 hour vs years
      GPUNET_CHECK(w.Apply(tenant, codec::MsgLeaseCreate{provider + 1ull, 1, 1, deposit, {}}));
      uint64_t id = w.LastLeaseId();
      GPUNET_CHECK(w.Apply(Addr(1, provider), codec::MsgLeaseStarted{id}));
      if (expires) cheap.push_back(id);
      if (n % 1000 == 999) w.Commit();
    }
    w.Commit();
  };
  auto end_block_cost = [&](const char* label) {
    // Heartbeats from everyone, then a block one hour later minus a little, then the
    // block where the cheap leases run out: time only that one.
    w.block.time_ms += 3'600'000 - 60'000;
    w.block.height += 20;
    for (uint32_t i = 0; i < providers; ++i)
      (void)w.Apply(Addr(1, i), codec::MsgHeartbeat{Addr(1, i)});
    w.Commit();
    w.block.time_ms += 61'000;
    w.block.height += 1;
    std::vector<codec::Event> events;
    double t0 = bench::NowSeconds();
    GPUNET_CHECK(market::EndBlock(w.store, w.params, w.block, events).has_value());
    double dt = bench::NowSeconds() - t0;
    size_t closed = 0;
    for (const auto& e : events) closed += e.type == "market.lease_closed";
    w.Commit();
    std::printf("end_of_block %s: %zu leases closed in %.3f ms (%.1f us per close)\n", label,
                closed, dt * 1e3, closed ? dt * 1e6 / static_cast<double>(closed) : 0.0);
  };
  std::vector<uint64_t> cheap;
  make_leases(0, leases / 10, cheap);
  end_block_cost("at 10% of open leases");
  make_leases(leases / 10, leases, cheap);
  end_block_cost("at 100% of open leases");

  // Mixed market ops.
  codec::MsgOrderCreate order;
  order.requirements.machines = 1;
  order.requirements.gpus_per_machine = 1;
  order.max_price_ugpn_per_gpu_hour = 3'000'000;
  order.deposit_ugpn = 10'000'000;
  order.bid_window_ms = 3'600'000;
  for (uint32_t t = 0; t < 16; ++t) GPUNET_CHECK(w.Apply(Addr(2, t), order));
  w.Commit();
  w.refused = 0;
  double t0 = bench::NowSeconds();
  std::vector<std::pair<uint64_t, uint32_t>> mine;  // lease, provider
  for (size_t n = 0; n < ops; ++n) {
    uint32_t provider = static_cast<uint32_t>((n * 7919) % providers);
    codec::Address p = Addr(1, provider);
    codec::Address tenant = Addr(2, static_cast<uint32_t>(n % 64));
    switch (n % 5) {
      case 0:
        if (w.Apply(tenant, codec::MsgLeaseCreate{provider + 1ull, 1, 1, 100'000'000, {}}))
          mine.emplace_back(w.LastLeaseId(), provider);
        break;
      case 1:
        if (!mine.empty())
          (void)w.Apply(Addr(1, mine.back().second), codec::MsgLeaseStarted{mine.back().first});
        break;
      case 2: {
        // One of the long leases made above (lease k belongs to provider (k-1) % P).
        uint64_t k = 1 + (n * 104729) % leases;
        (void)w.Apply(Addr(1, static_cast<uint32_t>((k - 1) % providers)),
                      codec::MsgLeaseWithdraw{k});
        break;
      }
      case 3:
        if (!mine.empty()) {
          (void)w.Apply(tenant,
                        codec::MsgLeaseClose{mine.front().first, codec::CloseReason::kNormal});
          mine.erase(mine.begin());
        }
        break;
      case 4:
        (void)w.Apply(p, codec::MsgBidCreate{p, 1 + n % 16, 2'000'000, {1}});
        break;
    }
    if (n % 1000 == 999) {
      w.block.time_ms += 1000;
      ++w.block.height;
      w.Commit();
    }
  }
  double dt = bench::NowSeconds() - t0;
  w.Commit();
  double per_s = static_cast<double>(ops) / dt;
  std::printf(
      "market ops: %zu in %.2f s = %.0f ops/s (%zu refused by the rules) with %u providers, "
      "%u machines, ~%zu open leases; baseline: verify %llu/s (1 core) -> %.2fx the verify "
      "rate; blake2b-200B %llu/s\n",
      ops, dt, per_s, w.refused, providers, providers * 5, leases,
      static_cast<unsigned long long>(base.verify_per_s_1core),
      per_s / static_cast<double>(base.verify_per_s_1core),
      static_cast<unsigned long long>(base.blake2b_200b_per_s));
  auto conserved = state::CheckConservation(w.kv);
  GPUNET_CHECK(conserved.has_value());
  return 0;
}
