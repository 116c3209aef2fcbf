// client/provider_plan.h: each kind of difference between provider.yaml and the
// ledger gives its step (and only it), steps come in a sending order the chain
// accepts, and a plan applied to the ledger plans to nothing.
#include "client/provider_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <variant>

#include "crypto/address.h"
#include "util/keys.h"

namespace gpunet::client {
namespace {

using gpunet::testing::TestAddress;

std::string PlanAddr(std::string_view name) {
  return crypto::AddressToString(TestAddress(name));
}

/// provider.yaml with `extra` appended; parties are key names of TestAddress.
std::string PlanYaml(std::string_view price = "2.5", std::string_view bond = "1000",
                     std::string_view machines_tail = "", std::string_view region = "eu-west") {
  return "operator: operator\n"
         "tenant_api: https://gpu.example.com:8443\n"
         "tls_fingerprint: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
         "region: " +
         std::string(region) + "\nbond: " + std::string(bond) +
         "\npayouts:\n  - to: owner\n    share: 100%\n"
         "sites:\n  - id: 1\n    fabric: ethernet\n    bandwidth_gbps: 10\n    machines:\n"
         "      - id: 1\n        gpu: H100\n        gpus: 2\n        vram_gib: 80\n"
         "        link: pcie\n        driver: 550.54.15\n        cuda: \"12.4\"\n"
         "        compute_capability: \"9.0\"\n" +
         std::string(machines_tail) + "offers:\n  - gpu: H100\n    price: " + std::string(price) +
         "\n";
}

constexpr std::string_view kSecondMachine =
    "      - id: 2\n        gpu: A100\n        gpus: 1\n        vram_gib: 40\n"
    "        link: pcie\n        driver: 550.54.15\n        cuda: \"12.4\"\n"
    "        compute_capability: \"8.0\"\n";

ProviderConfig PlanConfig(const std::string& yaml) {
  auto pc = ParseProviderConfig(yaml, "provider.yaml");
  EXPECT_TRUE(pc.has_value()) << (pc ? "" : pc.error().message);
  return pc ? *pc : ProviderConfig{};
}

PartyResolver NameResolver() {
  return [](const PartyText& p) -> base::Result<codec::Address> { return TestAddress(p.text); };
}

/// A toy ledger: applies a plan's messages to the provider record the way the
/// market does for the fields the planner reads.
class ToyLedger {
 public:
  std::optional<ProviderInfo> record;
  uint64_t next_offer_id = 1;

  void Apply(const ProviderPlan& plan) {
    for (const auto& step : plan.steps) std::visit([this](const auto& m) { On(m); }, step.msg);
  }

 private:
  static ProviderInfo& Fields(ProviderInfo& p, const auto& m) {
    p.operator_address = crypto::AddressToString(m.operator_address);
    p.tenant_api_uri = m.tenant_api_uri;
    p.tls_fingerprint = m.tls_fingerprint;
    p.region = m.region;
    p.payouts.clear();
    for (const auto& s : m.payouts) p.payouts.push_back({crypto::AddressToString(s.payee), s.bp});
    p.policy_allow.clear();
    for (const auto& a : m.policy.allow) p.policy_allow.push_back(crypto::AddressToString(a));
    p.policy_deny.clear();
    for (const auto& a : m.policy.deny) p.policy_deny.push_back(crypto::AddressToString(a));
    return p;
  }
  void On(const codec::MsgProviderRegister& m) {
    ASSERT_FALSE(record.has_value());
    record.emplace();
    record->owner = PlanAddr("owner");
    record->active = true;
    record->bond_ugpn = m.bond_ugpn;
    Fields(*record, m);
  }
  void On(const codec::MsgProviderUpdate& m) { Fields(*record, m); }
  void On(const codec::MsgProviderBond& m) { record->bond_ugpn += m.amount_ugpn; }
  void On(const codec::MsgSiteUpsert& m) {
    auto& list = record->site_list;
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const SiteInfo& s) { return s.site_id == m.site_id; });
    if (it == list.end()) it = list.insert(list.end(), SiteInfo{m.site_id, "", 0, 0});
    it->fabric = std::string(codec::FabricName(m.fabric));
    it->bandwidth_gbps = m.bandwidth_gbps;
  }
  void On(const codec::MsgMachineUpsert& m) {
    auto& list = record->machine_list;
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const MachineInfo& x) { return x.machine_id == m.machine_id; });
    if (it == list.end()) it = list.insert(list.end(), MachineInfo{});
    *it = MachineInfo{m.machine_id,
                      m.site_id,
                      m.gpu_model,
                      m.gpu_count,
                      m.gpu_count,
                      m.vram_gib,
                      std::string(codec::GpuLinkName(m.link)),
                      m.driver_version,
                      m.cuda_version,
                      m.compute_capability,
                      m.cpu_cores,
                      m.memory_gib,
                      m.disk_gib};
  }
  void On(const codec::MsgMachineRemove& m) {
    std::erase_if(record->machine_list,
                  [&](const MachineInfo& x) { return x.machine_id == m.machine_id; });
  }
  void On(const codec::MsgOfferCreate& m) {
    OfferInfo o;
    o.offer_id = next_offer_id++;
    o.provider = PlanAddr("owner");
    o.gpu_model = m.gpu_model;
    o.site_id = m.site_id;
    o.price_ugpn_per_gpu_hour = m.price_ugpn_per_gpu_hour;
    o.min_hours = m.min_hours;
    o.max_hours = m.max_hours;
    for (const auto& t : m.tenants) o.tenants.push_back(crypto::AddressToString(t));
    o.is_private = !m.tenants.empty();
    o.open = true;
    record->offer_list.push_back(o);
  }
  void On(const codec::MsgOfferClose& m) {
    std::erase_if(record->offer_list, [&](const OfferInfo& o) { return o.offer_id == m.offer_id; });
  }
  void On(const auto&) { FAIL() << "the planner sent a message it should not"; }
};

ProviderPlan Plan(const std::string& yaml, const ToyLedger& ledger) {
  auto plan = PlanProvider(PlanConfig(yaml), TestAddress("owner"), NameResolver(), market::Params{},
                           ledger.record);
  EXPECT_TRUE(plan.has_value()) << (plan ? "" : plan.error().message);
  return plan ? *plan : ProviderPlan{};
}

std::vector<std::string> Names(const ProviderPlan& plan) {
  std::vector<std::string> out;
  for (const auto& s : plan.steps)
    out.push_back(std::string(s.signer == PlanSigner::kOwner ? "owner:" : "operator:") +
                  std::string(codec::MsgName(s.msg)));
  return out;
}

bool DiffHas(const ProviderPlan& plan, std::string_view needle) {
  for (const auto& line : plan.diff)
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

/// A ledger on which PlanYaml() was applied.
ToyLedger Registered() {
  ToyLedger ledger;
  ledger.Apply(Plan(PlanYaml(), ledger));
  return ledger;
}

TEST(ProviderPlan, FreshProviderRegistersThenSendsInventoryAndOffers) {
  ToyLedger ledger;
  ProviderPlan plan = Plan(PlanYaml(), ledger);
  std::vector<std::string> want{
      "owner:" + std::string(codec::MsgName(codec::MsgProviderRegister{})),
      "operator:" + std::string(codec::MsgName(codec::MsgSiteUpsert{})),
      "operator:" + std::string(codec::MsgName(codec::MsgMachineUpsert{})),
      "operator:" + std::string(codec::MsgName(codec::MsgOfferCreate{}))};
  EXPECT_EQ(Names(plan), want);
  EXPECT_EQ(plan.bond_ugpn, 1000'000'000u);
  EXPECT_TRUE(DiffHas(plan, "+ register provider " + PlanAddr("owner")));
  EXPECT_TRUE(DiffHas(plan, "+ machine 1: site 1, 2x H100 80 GiB pcie"));
  EXPECT_TRUE(DiffHas(plan, "+ offer: H100 at 2.5 GPN/GPU-h, any site, public"));
  EXPECT_EQ(plan.MsgsOf(PlanSigner::kOwner).size(), 1u);
  EXPECT_EQ(plan.MsgsOf(PlanSigner::kOperator).size(), 3u);
}

TEST(ProviderPlan, AppliedPlanPlansNothing) {
  ToyLedger ledger = Registered();
  ProviderPlan again = Plan(PlanYaml(), ledger);
  EXPECT_TRUE(again.Empty());
  EXPECT_TRUE(again.diff.empty());
  EXPECT_EQ(again.bond_ugpn, 0u);
}

TEST(ProviderPlan, OfferHoursAreComparedSoAnAppliedOfferWithHoursStays) {
  const std::string with_hours = PlanYaml() + "    min_hours: 2\n    max_hours: 720\n";
  ToyLedger ledger = Registered();
  ProviderPlan changed = Plan(with_hours, ledger);
  ASSERT_EQ(changed.steps.size(), 2u);  // close the offer without hours, create it with them
  EXPECT_TRUE(DiffHas(changed, "at least 2 h, at most 720 h"));
  ledger.Apply(changed);
  EXPECT_TRUE(Plan(with_hours, ledger).Empty());
}

TEST(ProviderPlan, ChangedProviderFieldIsOneOwnerUpdate) {
  ToyLedger ledger = Registered();
  ProviderPlan plan = Plan(PlanYaml("2.5", "1000", "", "us-east"), ledger);
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_EQ(plan.steps[0].signer, PlanSigner::kOwner);
  const auto* update = std::get_if<codec::MsgProviderUpdate>(&plan.steps[0].msg);
  ASSERT_NE(update, nullptr);
  EXPECT_EQ(update->region, "us-east");
  EXPECT_TRUE(DiffHas(plan, "~ provider: region differ"));
  ledger.Apply(plan);
  EXPECT_TRUE(Plan(PlanYaml("2.5", "1000", "", "us-east"), ledger).Empty());
}

TEST(ProviderPlan, LargerBondIsATopUpAndASmallerOneOnlyANote) {
  ToyLedger ledger = Registered();
  ProviderPlan more = Plan(PlanYaml("2.5", "1500"), ledger);
  ASSERT_EQ(more.steps.size(), 1u);
  const auto* bond = std::get_if<codec::MsgProviderBond>(&more.steps[0].msg);
  ASSERT_NE(bond, nullptr);
  EXPECT_EQ(bond->amount_ugpn, 500'000'000u);
  EXPECT_EQ(more.bond_ugpn, 500'000'000u);
  ProviderPlan less = Plan(PlanYaml("2.5", "900"), ledger);
  EXPECT_TRUE(less.Empty());
  EXPECT_EQ(less.bond_ugpn, 0u);
  EXPECT_TRUE(DiffHas(less, "apply never unbonds"));
}

TEST(ProviderPlan, ChangedPriceClosesTheOfferAndCreatesItAnew) {
  ToyLedger ledger = Registered();
  ProviderPlan plan = Plan(PlanYaml("3"), ledger);
  std::vector<std::string> want{"operator:" + std::string(codec::MsgName(codec::MsgOfferClose{})),
                                "operator:" + std::string(codec::MsgName(codec::MsgOfferCreate{}))};
  EXPECT_EQ(Names(plan), want);
  EXPECT_EQ(std::get<codec::MsgOfferClose>(plan.steps[0].msg).offer_id, 1u);
  EXPECT_EQ(std::get<codec::MsgOfferCreate>(plan.steps[1].msg).price_ugpn_per_gpu_hour, 3'000'000u);
  EXPECT_TRUE(DiffHas(plan, "- offer 1: H100 at 2.5 GPN/GPU-h"));
  EXPECT_TRUE(DiffHas(plan, "+ offer: H100 at 3 GPN/GPU-h, any site, public (replaces offer 1)"));
  ledger.Apply(plan);
  EXPECT_TRUE(Plan(PlanYaml("3"), ledger).Empty());
}

TEST(ProviderPlan, ChangedTenantListReplacesTheOffer) {
  ToyLedger ledger = Registered();
  std::string yaml = PlanYaml() + "    tenants: [alice, bob]\n";
  ProviderPlan plan = Plan(yaml, ledger);
  ASSERT_EQ(plan.steps.size(), 2u);
  const auto& created = std::get<codec::MsgOfferCreate>(plan.steps[1].msg);
  ASSERT_EQ(created.tenants.size(), 2u);
  EXPECT_TRUE(created.tenants[0] < created.tenants[1]);  // canonical order
  ledger.Apply(plan);
  EXPECT_TRUE(Plan(yaml, ledger).Empty());
}

TEST(ProviderPlan, OfferOnlyOnTheLedgerIsClosed) {
  ToyLedger ledger = Registered();
  std::string no_offers = PlanYaml();
  no_offers.erase(no_offers.find("offers:"));
  ProviderPlan plan = Plan(no_offers, ledger);
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<codec::MsgOfferClose>(plan.steps[0].msg));
}

TEST(ProviderPlan, NewMachineIsUpsertedAndAMissingOneRemovedBeforeNewOffers) {
  ToyLedger ledger = Registered();
  std::string two = PlanYaml("2.5", "1000", kSecondMachine);
  ProviderPlan add = Plan(two, ledger);
  ASSERT_EQ(add.steps.size(), 1u);
  EXPECT_EQ(std::get<codec::MsgMachineUpsert>(add.steps[0].msg).machine_id, 2u);
  ledger.Apply(add);
  EXPECT_TRUE(Plan(two, ledger).Empty());

  // Machine 1 (H100) leaves the file, and with it the H100 offer; an A100 offer comes.
  std::string only_a100 =
      "operator: operator\ntenant_api: https://gpu.example.com:8443\n"
      "tls_fingerprint: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
      "region: eu-west\nbond: 1000\npayouts:\n  - to: owner\n    share: 100%\n"
      "sites:\n  - id: 1\n    fabric: ethernet\n    bandwidth_gbps: 10\n    machines:\n" +
      std::string(kSecondMachine) + "offers:\n  - gpu: A100\n    price: 1\n";
  ProviderPlan swap = Plan(only_a100, ledger);
  std::vector<std::string> want{
      "operator:" + std::string(codec::MsgName(codec::MsgOfferClose{})),
      "operator:" + std::string(codec::MsgName(codec::MsgMachineRemove{})),
      "operator:" + std::string(codec::MsgName(codec::MsgOfferCreate{}))};
  EXPECT_EQ(Names(swap), want);
  EXPECT_TRUE(DiffHas(swap, "- machine 1: removed"));
  ledger.Apply(swap);
  EXPECT_TRUE(Plan(only_a100, ledger).Empty());
}

TEST(ProviderPlan, ChangedMachineAndSiteAreUpserted) {
  ToyLedger ledger = Registered();
  std::string yaml = PlanYaml();
  yaml.replace(yaml.find("gpus: 2"), 7, "gpus: 4");
  yaml.replace(yaml.find("bandwidth_gbps: 10"), 18, "bandwidth_gbps: 25");
  ProviderPlan plan = Plan(yaml, ledger);
  std::vector<std::string> want{
      "operator:" + std::string(codec::MsgName(codec::MsgSiteUpsert{})),
      "operator:" + std::string(codec::MsgName(codec::MsgMachineUpsert{}))};
  EXPECT_EQ(Names(plan), want);
  EXPECT_TRUE(DiffHas(plan, "~ site 1: ethernet, 10 Gb/s -> ethernet, 25 Gb/s"));
  EXPECT_TRUE(DiffHas(plan, "~ machine 1: site 1, 2x H100"));
  ledger.Apply(plan);
  EXPECT_TRUE(Plan(yaml, ledger).Empty());
}

TEST(ProviderPlan, LeasedMachineIsNeitherRemovedNorChangedBeyondGrowing) {
  ToyLedger ledger = Registered();
  ledger.record->machine_list[0].free_gpus = 1;  // one GPU leased
  std::string driver = PlanYaml();
  driver.replace(driver.find("550.54.15"), 9, "560.10.01");
  ProviderPlan changed = Plan(driver, ledger);
  EXPECT_TRUE(changed.Empty());
  EXPECT_TRUE(DiffHas(changed, "! machine 1: 1 GPU(s) are leased"));

  std::string grown = PlanYaml();
  grown.replace(grown.find("gpus: 2"), 7, "gpus: 3");
  EXPECT_EQ(Plan(grown, ledger).steps.size(), 1u);

  std::string no_machine = PlanYaml("2.5", "1000", kSecondMachine);
  no_machine.erase(no_machine.find("      - id: 1"),
                   no_machine.find("      - id: 2") - no_machine.find("      - id: 1"));
  no_machine.replace(no_machine.find("gpu: H100\n    price"), 9, "gpu: A100");
  ProviderPlan removal = Plan(no_machine, ledger);
  EXPECT_TRUE(DiffHas(removal, "! machine 1 is not in provider.yaml but has leased GPUs"));
  for (const auto& s : removal.steps)
    EXPECT_FALSE(std::holds_alternative<codec::MsgMachineRemove>(s.msg));
}

TEST(ProviderPlan, DeregisteredProviderAndLowBondAreRefused) {
  ToyLedger ledger = Registered();
  ledger.record->active = false;
  auto plan = PlanProvider(PlanConfig(PlanYaml()), TestAddress("owner"), NameResolver(),
                           market::Params{}, ledger.record);
  ASSERT_FALSE(plan.has_value());
  EXPECT_NE(plan.error().message.find("deregistered"), std::string::npos);

  market::Params strict;
  strict.provider_bond_min_ugpn = 5000'000'000;
  auto low = PlanProvider(PlanConfig(PlanYaml()), TestAddress("owner"), NameResolver(), strict,
                          std::nullopt);
  ASSERT_FALSE(low.has_value());
  EXPECT_NE(low.error().message.find("minimum bond"), std::string::npos);
}

TEST(ProviderPlan, FeesAreCountedPerSignerFromTheSchedule) {
  ToyLedger ledger;
  ProviderPlan plan = Plan(PlanYaml(), ledger);
  FeeSchedule schedule{10, 1000, 5000};
  auto fees = EstimatePlanFees(plan, schedule, "test-chain");
  ASSERT_TRUE(fees.has_value()) << fees.error().message;
  auto owner_fee = MarketTxFee(schedule, "test-chain", plan.MsgsOf(PlanSigner::kOwner), "");
  auto operator_fee = MarketTxFee(schedule, "test-chain", plan.MsgsOf(PlanSigner::kOperator), "");
  ASSERT_TRUE(owner_fee && operator_fee);
  EXPECT_EQ(fees->owner_ugpn, *owner_fee);
  EXPECT_EQ(fees->operator_ugpn, *operator_fee);
  EXPECT_GT(fees->operator_ugpn, 0u);
  auto none = EstimatePlanFees(ProviderPlan{}, schedule, "test-chain");
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->owner_ugpn + none->operator_ugpn, 0u);
}

}  // namespace
}  // namespace gpunet::client
