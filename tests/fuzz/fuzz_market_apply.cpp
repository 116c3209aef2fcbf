// fuzz-libs: gpunet_market gpunet_state gpunet_codec
// Arbitrary bytes as a tx body: every market message it decodes to is applied, by one
// of four senders chosen by the input, to a state seeded with a provider, machines,
// an offer and a lease; blocks advance by an input-chosen time. Whatever the input,
// the rules answer (ok or a market code) without crashing, a refusal leaves the
// state as it was, and the invariants (conservation by scanning, free + leased =
// inventory, counters and indexes) hold after every message and block.
#include "base/check.h"
#include "codec/encoding.h"
#include "market/apply.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "state/market_store.h"

namespace {

using namespace gpunet;

/// A default genesis's market rules.
const market::Params kMarket{};

codec::Address Addr(uint8_t n) {
  codec::Address a;
  a[0] = n;
  return a;
}

void MustApply(market::Store& store, const market::BlockTime& block, uint8_t sender,
               codec::Msg msg) {
  std::vector<codec::Event> events;
  auto r = market::ApplyMarketMsg(store, kMarket, block, Addr(sender), msg, events);
  GPUNET_CHECK(r.has_value() && !r->has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  auto body = codec::DecodeTxBody(base::ByteSpan(data + 1, size - 1));
  if (!body) return 0;
  state::MemoryKvStore kv;
  state::WriteBatch genesis;
  for (uint8_t i = 1; i <= 4; ++i)
    genesis.Put(state::keyspace::AccountKey(Addr(i)), codec::EncodeAccount({1'000'000'000'000, 0}));
  genesis.Put(state::SupplyKey(), state::EncodeSupply(state::Supply{4'000'000'000'000, 0, 0, 0}));
  GPUNET_CHECK(kv.Commit(genesis).has_value());
  state::StateDb db(kv);
  state::MarketStateStore store(db);
  market::BlockTime block{1, 1'000'000};
  codec::MsgProviderRegister reg;
  reg.operator_address = Addr(2);
  reg.tenant_api_uri = "u";
  reg.region = "eu";
  reg.bond_ugpn = 1'000'000'000;
  reg.payouts = {{Addr(1), 10'000}};
  MustApply(store, block, 1, reg);
  MustApply(store, block, 2, codec::MsgSiteUpsert{Addr(1), 1, codec::Fabric::kEthernet, 1});
  MustApply(store, block, 2,
            codec::MsgMachineUpsert{Addr(1), 1, 1, "H100", 8, 80, codec::GpuLink::kPcie, "1", 1, 1,
                                    1, 1, 1});
  MustApply(store, block, 2, codec::MsgOfferCreate{Addr(1), "H100", 0, 1000, {}});
  MustApply(store, block, 3, codec::MsgLeaseCreate{1, 1, 2, 1'000'000, {}});

  const uint8_t step = data[0];
  for (size_t i = 0; i < body->msgs.size(); ++i) {
    if (!market::IsMarketMsg(body->msgs[i])) continue;
    const uint8_t sender = static_cast<uint8_t>(1 + (step + i) % 4);
    const size_t checkpoint = db.Checkpoint();
    auto before = db.Pending();
    std::vector<codec::Event> events;
    auto r = market::ApplyMarketMsg(store, kMarket, block, Addr(sender), body->msgs[i], events);
    GPUNET_CHECK(r.has_value());
    if (r->has_value()) {
      GPUNET_CHECK(codec::IsIncludedFailure((*r)->code));
      db.RevertTo(checkpoint);
      GPUNET_CHECK(db.Pending() == before);
    }
    GPUNET_CHECK(state::CheckInvariants(db, kMarket).has_value());
    block.height += 1 + (step & 0x0f);
    block.time_ms += static_cast<uint64_t>(step) * 60'000;
    events.clear();
    GPUNET_CHECK(market::EndBlock(store, kMarket, block, events).has_value());
    GPUNET_CHECK(state::CheckInvariants(db, kMarket).has_value());
  }
  return 0;
}
