#include "client/market_tx.h"

#include <gtest/gtest.h>

#include <map>

#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "crypto/address.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
/// A default genesis's market rules; the tests of other values build their own.
const market::Params kDefaultParams{};

codec::Address Addr(uint8_t b) {
  codec::Address a;
  a.data.fill(b);
  return a;
}

/// Key names resolve through a fixed table; addresses parse; anything else fails.
PartyResolver Resolver() {
  return [](const PartyText& p) -> base::Result<codec::Address> {
    static const std::map<std::string, codec::Address> names = {{"provider", Addr(0x50)},
                                                                {"operator", Addr(0x40)},
                                                                {"investor", Addr(0x10)},
                                                                {"tenant", Addr(0x70)},
                                                                {"auditor", Addr(0x30)}};
    if (auto it = names.find(p.text); it != names.end()) return it->second;
    if (auto a = crypto::ParseAddress(p.text); a) return *a;
    return base::Fail(ErrorCode::kNotFound, p.place.Describe() + ": no key " + p.text);
  };
}

constexpr std::string_view kProvider = R"(operator: operator
tenant_api: https://gpu.example.com:8443
tls_fingerprint: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
region: eu-west
bond: 1000
payouts:
  - {to: provider, share: 70%}
  - {to: investor, share: 30%}
policy:
  deny: [tenant]
sites:
  - fabric: infiniband
    bandwidth_gbps: 400
    machines:
      - {gpu: H100, gpus: 8, vram_gib: 80, link: nvlink, driver: 550.54.15, cuda: "12.4", compute_capability: "9.0"}
      - {gpu: H100, gpus: 8, vram_gib: 80, link: pcie, driver: 550.54.15, cuda: "12.4", compute_capability: "9.0"}
offers:
  - {gpu: H100, price: 2.5, tenants: [tenant]}
)";

ProviderConfig Provider(std::string text = std::string(kProvider)) {
  auto pc = ParseProviderConfig(text, "provider.yaml");
  EXPECT_TRUE(pc.has_value()) << (pc ? "" : pc.error().message);
  return pc ? *pc : ProviderConfig{};
}

TEST(MarketTx, VersionsInLedgerForm) {
  EXPECT_EQ(*CudaToLedger({12, 1, 0}), 12010u);
  EXPECT_EQ(*CudaToLedger({12, 4, 0}), 12040u);
  EXPECT_EQ(*CudaToLedger({11, 0, 0}), 11000u);
  EXPECT_EQ(CudaFromLedger(12010), (Version{12, 1, 0}));
  EXPECT_FALSE(CudaToLedger({12, 100, 0}).has_value());
  EXPECT_FALSE(CudaToLedger({12, 1, 1}).has_value());
  EXPECT_EQ(*ComputeCapabilityToLedger({9, 0, 0}), 90u);
  EXPECT_EQ(*ComputeCapabilityToLedger({8, 6, 0}), 86u);
  EXPECT_EQ(ComputeCapabilityFromLedger(86), (Version{8, 6, 0}));
  EXPECT_FALSE(ComputeCapabilityToLedger({8, 10, 0}).has_value());
}

TEST(MarketTx, RegisterSortsPayoutsAndResolvesParties) {
  auto msg = ProviderRegisterMsg(Provider(), Addr(0x50), Resolver(), kDefaultParams);
  ASSERT_TRUE(msg.has_value()) << msg.error().message;
  EXPECT_EQ(msg->operator_address, Addr(0x40));
  EXPECT_EQ(msg->bond_ugpn, 1000'000'000u);
  ASSERT_EQ(msg->payouts.size(), 2u);
  EXPECT_EQ(msg->payouts[0].payee, Addr(0x10));  // investor sorts first
  EXPECT_EQ(msg->payouts[0].bp, 3000u);
  EXPECT_EQ(msg->payouts[1].payee, Addr(0x50));
  EXPECT_EQ(msg->payouts[1].bp, 7000u);
  EXPECT_EQ(msg->policy.deny, std::vector<codec::Address>{Addr(0x70)});
  EXPECT_EQ(msg->region, "eu-west");
}

TEST(MarketTx, OperatorDefaultsToOwner) {
  std::string text(kProvider);
  text.erase(0, text.find('\n') + 1);
  auto msg = ProviderUpdateMsg(Provider(text), Addr(0x50), Resolver());
  ASSERT_TRUE(msg.has_value()) << msg.error().message;
  EXPECT_EQ(msg->operator_address, Addr(0x50));
}

TEST(MarketTx, RegisterRefusals) {
  std::string same = std::string(kProvider);
  // investor given by address and by name: the same account twice.
  same.replace(same.find("to: provider"), 12, "to: " + crypto::AddressToString(Addr(0x10)));
  auto dup = ProviderRegisterMsg(Provider(same), Addr(0x50), Resolver(), kDefaultParams);
  ASSERT_FALSE(dup.has_value());
  EXPECT_NE(dup.error().message.find("\"investor\" is the same account as \"gpn1"),
            std::string::npos)
      << dup.error().message;

  std::string low(kProvider);
  low.replace(low.find("bond: 1000"), 10, "bond: 99");
  auto bond = ProviderRegisterMsg(Provider(low), Addr(0x50), Resolver(), kDefaultParams);
  ASSERT_FALSE(bond.has_value());
  EXPECT_NE(bond.error().message.find("bond: 99 GPN"), std::string::npos) << bond.error().message;
  EXPECT_NE(bond.error().message.find("minimum bond of 100 GPN"), std::string::npos)
      << bond.error().message;

  std::string unknown(kProvider);
  unknown.replace(unknown.find("operator: operator"), 18, "operator: nobody");
  auto op = ProviderRegisterMsg(Provider(unknown), Addr(0x50), Resolver(), kDefaultParams);
  ASSERT_FALSE(op.has_value());
  EXPECT_NE(op.error().message.find("provider.yaml:1: operator: no key nobody"), std::string::npos);

  std::string spaced(kProvider);
  spaced.replace(spaced.find("region: eu-west"), 15, "region: eu west");
  auto region = ProviderRegisterMsg(Provider(spaced), Addr(0x50), Resolver(), kDefaultParams);
  ASSERT_FALSE(region.has_value());
  EXPECT_NE(region.error().message.find("without spaces"), std::string::npos);
}

TEST(MarketTx, InventoryAndOffers) {
  auto inv = InventoryMsgs(Provider(), Addr(0x50));
  ASSERT_TRUE(inv.has_value()) << inv.error().message;
  ASSERT_EQ(inv->size(), 3u);
  auto site = std::get<codec::MsgSiteUpsert>((*inv)[0]);
  EXPECT_EQ(site.site_id, 1u);
  EXPECT_EQ(site.fabric, codec::Fabric::kInfiniband);
  EXPECT_EQ(site.bandwidth_gbps, 400u);
  auto m1 = std::get<codec::MsgMachineUpsert>((*inv)[1]);
  auto m2 = std::get<codec::MsgMachineUpsert>((*inv)[2]);
  EXPECT_EQ(m1.machine_id, 1u);
  EXPECT_EQ(m2.machine_id, 2u);
  EXPECT_EQ(m1.site_id, 1u);
  EXPECT_EQ(m1.link, codec::GpuLink::kNvlink);
  EXPECT_EQ(m2.link, codec::GpuLink::kPcie);
  EXPECT_EQ(m1.cuda_version, 12040u);
  EXPECT_EQ(m1.compute_capability, 90u);
  EXPECT_EQ(m1.provider, Addr(0x50));
  auto offers = OfferMsgs(Provider(), Addr(0x50), Resolver());
  ASSERT_TRUE(offers.has_value());
  ASSERT_EQ(offers->size(), 1u);
  auto o = std::get<codec::MsgOfferCreate>((*offers)[0]);
  EXPECT_EQ(o.price_ugpn_per_gpu_hour, 2'500'000u);
  EXPECT_EQ(o.site_id, 0u);
  EXPECT_EQ(o.tenants, std::vector<codec::Address>{Addr(0x70)});
  EXPECT_EQ(o.min_hours, 0u);
  EXPECT_EQ(o.max_hours, 0u);
  std::string hours(kProvider);
  hours.replace(hours.find("tenants: [tenant]"), 17,
                "tenants: [tenant], min_hours: 2, max_hours: 24");
  auto with_hours = OfferMsgs(Provider(hours), Addr(0x50), Resolver());
  ASSERT_TRUE(with_hours.has_value());
  EXPECT_EQ(std::get<codec::MsgOfferCreate>((*with_hours)[0]).min_hours, 2u);
  EXPECT_EQ(std::get<codec::MsgOfferCreate>((*with_hours)[0]).max_hours, 24u);

  std::string big(kProvider);
  big.replace(big.find("gpus: 8"), 7, "gpus: 65");
  auto over = InventoryMsgs(Provider(big), Addr(0x50));
  ASSERT_FALSE(over.has_value());
  EXPECT_NE(over.error().message.find("sites[0].machines[0].gpus: 65 GPUs"), std::string::npos)
      << over.error().message;
}

constexpr std::string_view kOrder = R"(requirements:
  gpu: [H100, A100]
  gpus_per_machine: 2
  region: eu
  fabric: infiniband
  min_cuda: "12.1"
  auditors: [auditor]
  attributes: {tier: "3", country: de}
max_price: 3
deposit: 6
manifest_hash: ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100
bid_window: 30s
)";

base::Result<codec::MsgOrderCreate> Order(std::string text,
                                          const market::Params& params = kDefaultParams) {
  auto oc = ParseOrderConfig(text, "order.yaml", "");
  EXPECT_TRUE(oc.has_value()) << (oc ? "" : oc.error().message);
  if (!oc) return std::unexpected(oc.error());
  return OrderCreateMsg(*oc, Resolver(), params);
}

TEST(MarketTx, OrderInCanonicalForm) {
  auto msg = Order(std::string(kOrder));
  ASSERT_TRUE(msg.has_value()) << msg.error().message;
  const auto& q = msg->requirements;
  EXPECT_EQ(q.gpu_models, (std::vector<std::string>{"A100", "H100"}));
  EXPECT_EQ(q.gpus_per_machine, 2u);
  EXPECT_EQ(q.machines, 1u);
  EXPECT_EQ(q.fabric, codec::Fabric::kInfiniband);
  EXPECT_EQ(q.min_cuda_version, 12010u);
  EXPECT_EQ(q.auditors, std::vector<codec::Address>{Addr(0x30)});
  ASSERT_EQ(q.attributes.size(), 2u);
  EXPECT_EQ(q.attributes[0].key, "country");
  EXPECT_EQ(msg->max_price_ugpn_per_gpu_hour, 3'000'000u);
  EXPECT_EQ(msg->deposit_ugpn, 6'000'000u);  // exactly one hour of 2 GPUs at 3 GPN
  EXPECT_EQ(msg->bid_window_ms, 30'000u);
}

TEST(MarketTx, OrderProviderRequirements) {
  auto plain = Order(std::string(kOrder));
  ASSERT_TRUE(plain.has_value()) << plain.error().message;
  EXPECT_EQ(plain->providers, codec::ProviderRequirements{});  // absent: everyone may bid
  auto msg = Order(std::string(kOrder) +
                   "providers:\n  min_bond: 500\n  min_earned: 2.5\n"
                   "  max_fault_rate_ppm: 50000\n  exclude: [tenant, provider]\n");
  ASSERT_TRUE(msg.has_value()) << msg.error().message;
  EXPECT_EQ(msg->providers.min_bond_ugpn, 500'000'000u);
  EXPECT_EQ(msg->providers.min_earned_ugpn, 2'500'000u);
  EXPECT_EQ(msg->providers.max_fault_rate_ppm, 50'000u);
  EXPECT_EQ(msg->providers.excluded, (std::vector<codec::Address>{Addr(0x50), Addr(0x70)}));
  auto twice = Order(std::string(kOrder) + "providers:\n  exclude: [provider, provider]\n");
  ASSERT_FALSE(twice.has_value());
  EXPECT_NE(twice.error().message.find("list it once"), std::string::npos) << twice.error().message;
}

TEST(MarketTx, OrderRefusals) {
  std::string low(kOrder);
  low.replace(low.find("deposit: 6"), 10, "deposit: 5.999999");
  auto deposit = Order(low);
  ASSERT_FALSE(deposit.has_value());
  EXPECT_NE(deposit.error().message.find("order.yaml: deposit: 5.999999 GPN"), std::string::npos)
      << deposit.error().message;
  EXPECT_NE(deposit.error().message.find("under one hour"), std::string::npos);

  std::string window(kOrder);
  window.replace(window.find("bid_window: 30s"), 15, "bid_window: 500ms");
  auto w = Order(window);
  ASSERT_FALSE(w.has_value());
  EXPECT_NE(w.error().message.find("bid_window: 500 ms is not within this chain's 1 s .. 7 d"),
            std::string::npos)
      << w.error().message;

  std::string many(kOrder);
  many.replace(many.find("gpus_per_machine: 2"), 19, "gpus_per_machine: 2\n  machines: 65");
  auto m = Order(many);
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message.find("requirements.machines: at most 64"), std::string::npos);
}

TEST(MarketTx, ChunkingFeesAndSigning) {
  std::vector<codec::Msg> msgs;
  for (uint64_t i = 1; i <= 20; ++i) msgs.push_back(codec::MsgLeaseWithdraw{i});
  auto chunks = ChunkMsgs(msgs);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].size(), base::limits::kMsgsPerTxMax);
  EXPECT_EQ(chunks[1].size(), 20 - base::limits::kMsgsPerTxMax);
  EXPECT_TRUE(ChunkMsgs({}).empty());

  auto key = gpunet::testing::TestKey(0);
  FeeSchedule fees{10, 100, 1000};
  auto fee = MarketTxFee(fees, "gpunet-devnet", chunks[1], "");
  ASSERT_TRUE(fee.has_value());
  auto tx = BuildMarketTx(key, "gpunet-devnet", 7, chunks[1], *fee, 0, "");
  ASSERT_TRUE(tx.has_value()) << tx.error().message;
  // The fee estimate is the real size's fee.
  size_t bytes = codec::EncodeTx(*tx).size();
  EXPECT_EQ(*fee, std::max<uint64_t>(1000, 10 * bytes + 100 * chunks[1].size()));
  auto decoded = codec::DecodeTx(codec::EncodeTx(*tx));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, *tx);
  EXPECT_EQ(codec::MsgName(decoded->body.msgs[0]), "lease_withdraw");
  EXPECT_EQ(codec::MsgName(codec::MsgSend{}), "send");
  EXPECT_EQ(codec::MsgName(codec::MsgAttest{}), "attest");
  EXPECT_EQ(codec::MsgName(codec::MsgBidWithdraw{}), "bid_withdraw");

  auto empty = BuildMarketTx(key, "gpunet-devnet", 7, {}, 1000, 0, "");
  ASSERT_FALSE(empty.has_value());
  // Something the codec refuses (unsorted payouts) is refused before signing.
  codec::MsgProviderUpdate bad;
  bad.tenant_api_uri = "https://x";
  bad.region = "eu";
  bad.payouts = {{Addr(2), 5000}, {Addr(1), 5000}};
  auto refused = BuildMarketTx(key, "gpunet-devnet", 7, {bad}, 1000, 0, "");
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("the transaction is not valid"), std::string::npos);
}

TEST(MarketTx, TheChainsRulesNotTheDefaults) {
  market::Params chain;
  chain.provider_bond_min_ugpn = 2000'000'000;  // the yaml bonds 1000 GPN
  chain.bid_window_max_ms = 10'000;             // the order waits 30 s
  chain.deposit_min_hours = 2;                  // the order deposits one hour
  auto bond = ProviderRegisterMsg(Provider(), Addr(0x50), Resolver(), chain);
  ASSERT_FALSE(bond.has_value());
  EXPECT_NE(bond.error().message.find("minimum bond of 2000 GPN"), std::string::npos)
      << bond.error().message;
  auto window = Order(std::string(kOrder), chain);
  ASSERT_FALSE(window.has_value());
  EXPECT_NE(window.error().message.find("30 s is not within this chain's 1 s .. 10 s"),
            std::string::npos)
      << window.error().message;
  chain.bid_window_max_ms = kDefaultParams.bid_window_max_ms;
  auto deposit = Order(std::string(kOrder), chain);
  ASSERT_FALSE(deposit.has_value());
  EXPECT_NE(deposit.error().message.find("under 2 hours"), std::string::npos)
      << deposit.error().message;
  EXPECT_EQ(EstimateLease(3'000'000, 2, 6'000'000, chain)->min_deposit_ugpn, 12'000'000u);
  chain.deposit_min_hours = 3;
  EXPECT_EQ(EstimateLease(UINT64_MAX / 2, 1, 1, chain)->min_deposit_ugpn, UINT64_MAX);
  EXPECT_EQ(DescribeHours(1), "one hour");
}

TEST(MarketTx, LeaseEstimate) {
  auto e = EstimateLease(2'500'000, 2, 100'000'000, kDefaultParams);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->rate_ugpn_per_hour, 5'000'000u);
  EXPECT_EQ(e->covered_ms, 20u * 3'600'000);
  EXPECT_EQ(e->min_deposit_ugpn, 5'000'000u);
  EXPECT_EQ(EstimateLease(3, 1, 1, kDefaultParams)->covered_ms,
            1'200'000u);  // floor(1 * 3.6e6 / 3)
  EXPECT_EQ(EstimateLease(UINT64_MAX, 2, 1, kDefaultParams).error().code, ErrorCode::kOverflow);
  EXPECT_EQ(EstimateLease(0, 2, 1, kDefaultParams).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(DescribeDurationMs(45'000), "45 s");
  EXPECT_EQ(DescribeDurationMs(150'000), "2 min 30 s");
  EXPECT_EQ(DescribeDurationMs(20u * 3'600'000), "20 h");
  EXPECT_EQ(DescribeDurationMs(9'000'000), "2 h 30 min");
  EXPECT_EQ(DescribeDurationMs(100u * 3'600'000), "4 d 4 h");
}

}  // namespace
}  // namespace gpunet::client
