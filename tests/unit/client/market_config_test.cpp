#include "client/market_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "base/limits.h"
#include "client/manifest.h"
#include "crypto/hash.h"
#include "util/temp_dir.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

constexpr std::string_view kProvider = R"(# two H100 machines, an investor takes 30%
operator: operator
tenant_api: https://gpu.example.com:8443
tls_fingerprint: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
region: eu-west
bond: 1000
payouts:
  - to: provider
    share: 70%
  - to: investor
    share: 3000bp
policy:
  deny: [gpn1xyz]
sites:
  - id: 1
    name: fra1
    fabric: infiniband
    bandwidth_gbps: 400
    machines:
      - id: 1
        name: node-a
        gpu: H100
        gpus: 8
        vram_gib: 80
        link: nvlink
        driver: 550.54.15
        cuda: "12.4"
        compute_capability: "9.0"
        cpu_cores: 192
        memory_gib: 2048
        disk_gib: 30000
      - gpu: H100
        gpus: 8
        vram_gib: 80
        link: nvlink
        driver: 550.54.15
        cuda: "12.4"
        compute_capability: "9.0"
offers:
  - gpu: H100
    site: 1
    price: 2.5
)";

ProviderConfig ProviderOk(std::string_view text) {
  auto pc = ParseProviderConfig(text, "provider.yaml");
  EXPECT_TRUE(pc.has_value()) << (pc ? "" : pc.error().message);
  return pc ? *pc : ProviderConfig{};
}

/// Replaces the first occurrence of `from` in the good provider.yaml.
/// `base` with the first `from` replaced by `to` (`from` must occur).
std::string Replaced(std::string_view base, std::string_view from, std::string_view to) {
  std::string s(base);
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

/// `parsed` must be an error whose message contains `needle`.
template <class R>
void ExpectRefused(const R& parsed, std::string_view needle) {
  ASSERT_FALSE(parsed.has_value()) << "accepted; expected: " << needle;
  EXPECT_NE(parsed.error().message.find(needle), std::string::npos)
      << "message: " << parsed.error().message << "\nexpected to contain: " << needle;
}

std::string Edit(std::string_view from, std::string_view to) {
  return Replaced(kProvider, from, to);
}

void ProviderRefused(const std::string& text, std::string_view needle) {
  ExpectRefused(ParseProviderConfig(text, "provider.yaml"), needle);
}

TEST(ProviderConfig, ParsesEveryField) {
  ProviderConfig pc = ProviderOk(kProvider);
  EXPECT_TRUE(pc.has_operator);
  EXPECT_EQ(pc.operator_key.text, "operator");
  EXPECT_EQ(pc.operator_key.place.line, 2);
  EXPECT_EQ(pc.tenant_api_uri, "https://gpu.example.com:8443");
  EXPECT_EQ(base::ToHex(pc.tls_fingerprint),
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  EXPECT_EQ(pc.region, "eu-west");
  EXPECT_EQ(pc.bond_ugpn, 1000'000'000u);
  ASSERT_EQ(pc.payouts.size(), 2u);
  EXPECT_EQ(pc.payouts[0].payee.text, "provider");
  EXPECT_EQ(pc.payouts[0].bp, 7000u);
  EXPECT_EQ(pc.payouts[1].bp, 3000u);
  EXPECT_EQ(pc.payouts[1].payee.place.Describe(), "provider.yaml:10: payouts[1].to");
  ASSERT_EQ(pc.deny.size(), 1u);
  EXPECT_EQ(pc.deny[0].text, "gpn1xyz");
  ASSERT_EQ(pc.sites.size(), 1u);
  const SiteConfig& s = pc.sites[0];
  EXPECT_EQ(s.id, 1u);
  EXPECT_EQ(s.fabric, "infiniband");
  EXPECT_EQ(s.bandwidth_gbps, 400u);
  ASSERT_EQ(s.machines.size(), 2u);
  const MachineConfig& m = s.machines[0];
  EXPECT_EQ(m.id, 1u);
  EXPECT_EQ(m.gpu_model, "H100");
  EXPECT_EQ(m.gpu_count, 8u);
  EXPECT_EQ(m.vram_gib, 80u);
  EXPECT_EQ(m.link, "nvlink");
  EXPECT_EQ(m.driver_version, "550.54.15");
  EXPECT_EQ(m.cuda, (Version{12, 4, 0}));
  EXPECT_EQ(m.compute_capability, (Version{9, 0, 0}));
  EXPECT_EQ(m.cpu_cores, 192u);
  EXPECT_EQ(m.memory_gib, 2048u);
  EXPECT_EQ(m.disk_gib, 30000u);
  EXPECT_EQ(s.machines[1].id, 2u);  // next after the previous one
  EXPECT_EQ(s.machines[1].cpu_cores, 0u);
  ASSERT_EQ(pc.offers.size(), 1u);
  EXPECT_EQ(pc.offers[0].price_ugpn_per_gpu_hour, 2'500'000u);
  EXPECT_EQ(pc.offers[0].site_id, 1u);
  EXPECT_TRUE(pc.offers[0].tenants.empty());
}

TEST(ProviderConfig, OperatorPolicyAndOffersAreOptional) {
  std::string text = Edit("operator: operator\n", "");
  text = text.substr(0, text.find("offers:"));
  size_t p = text.find("policy:");
  text.erase(p, text.find("sites:") - p);
  ProviderConfig pc = ProviderOk(text);
  EXPECT_FALSE(pc.has_operator);
  EXPECT_TRUE(pc.allow.empty());
  EXPECT_TRUE(pc.offers.empty());
}

TEST(ProviderConfig, OfferHoursAreParsedAndChecked) {
  ProviderConfig pc =
      ProviderOk(Edit("    price: 2.5", "    price: 2.5\n    min_hours: 2\n    max_hours: 48"));
  ASSERT_EQ(pc.offers.size(), 1u);
  EXPECT_EQ(pc.offers[0].min_hours, 2u);
  EXPECT_EQ(pc.offers[0].max_hours, 48u);
  EXPECT_EQ(ProviderOk(kProvider).offers[0].max_hours, 0u);  // left out: no limit
  ProviderRefused(Edit("    price: 2.5", "    price: 2.5\n    min_hours: 3\n    max_hours: 2"),
                  "offers[0].max_hours: max_hours 2 is under min_hours 3");
  ProviderRefused(Edit("    price: 2.5", "    price: 2.5\n    max_hours: -1"), "max_hours");
}

TEST(ProviderConfig, ErrorsNameFileLineAndField) {
  ProviderRefused("", "the file is empty");
  ProviderRefused("sites: [", "provider.yaml:1: not valid YAML");
  ProviderRefused("- a\n- b\n", "expected a mapping");
  ProviderRefused(Edit("region: eu-west", "regoin: eu-west"),
                  "provider.yaml:5: regoin: unknown field; the fields here are: operator,");
  ProviderRefused(Edit("region: eu-west", "region: eu-west\nregion: us"),
                  "provider.yaml:6: region: appears twice");
  ProviderRefused(Edit("region: eu-west\n", ""), "region: missing; add it");
  ProviderRefused(Edit("region: eu-west", "region:"), "region: missing");
  ProviderRefused(Edit("region: eu-west", "region: [a, b]"), "region: expected a value");
  ProviderRefused(Edit("tenant_api: https://", "tenant_api: ftp://"), "must start with https://");
  ProviderRefused(Edit("tls_fingerprint: 00", "tls_fingerprint: zz"),
                  "provider.yaml:4: tls_fingerprint: must be 64 hex");
  ProviderRefused(Edit("bond: 1000", "bond: 1000.0000001"),
                  "provider.yaml:6: bond: the bond is in GPN");
  ProviderRefused(Edit("bond: 1000", "bond: 0"), "bond: must be more than 0");
  ProviderRefused(Edit("bond: 1000", "bond: lots"), "bond");
  ProviderRefused(Edit("share: 70%", "share: 60%"),
                  "payouts: the shares add up to 90.00%; they must add up to exactly 100%");
  ProviderRefused(Edit("share: 70%", "share: 70"), "payouts[0].share: \"70\" has no unit");
  ProviderRefused(Edit("share: 70%", "share: 70.125%"), "at most 2 decimals");
  ProviderRefused(Edit("share: 70%", "share: 101%"), "between 0.01%");
  ProviderRefused(Edit("to: investor", "to: provider"), "\"provider\" is listed twice");
  ProviderRefused(Edit("  - to: investor\n    share: 3000bp\n", "  - share: 3000bp\n"),
                  "payouts[1].to: missing");
  ProviderRefused(Edit("payouts:\n  - to: provider\n    share: 70%\n  - to: investor\n    share: "
                       "3000bp\n",
                       "payouts: []\n"),
                  "payouts: is empty");
  ProviderRefused(Edit("deny: [gpn1xyz]", "deny: {a: b}"), "policy.deny: expected a list");
  ProviderRefused(
      Edit("fabric: infiniband", "fabric: token-ring"),
      "provider.yaml:17: sites[0].fabric: \"token-ring\" is not one of infiniband, roce, "
      "ethernet");
  ProviderRefused(Edit("bandwidth_gbps: 400", "bandwidth_gbps: 0"), "out of range");
  ProviderRefused(Edit("gpus: 8", "gpus: eight"),
                  "provider.yaml:23: sites[0].machines[0].gpus: \"eight\" is not a whole number");
  ProviderRefused(Edit("gpus: 8", "gpus: -8"), "not a whole number");
  ProviderRefused(Edit("gpus: 8", "gpus: 99999999999"), "out of range");
  ProviderRefused(Edit("gpus: 8", "gpu_count: 8"), "sites[0].machines[0].gpu_count: unknown field");
  ProviderRefused(Edit("link: nvlink", "link: sli"), "machines[0].link: \"sli\" is not one of");
  ProviderRefused(Edit("cuda: \"12.4\"", "cuda: twelve"),
                  "machines[0].cuda: \"twelve\" is not a version");
  ProviderRefused(Edit("        driver: 550.54.15\n", ""), "machines[0].driver: missing");
  ProviderRefused(Edit("      - gpu: H100\n", "      - id: 1\n        gpu: H100\n"),
                  "machine id 1 is also used at provider.yaml:20");
  ProviderRefused(Edit("    machines:\n", "    machines: []\n    old:\n"), "unknown field");
  ProviderRefused(Edit("    site: 1\n", "    site: 9\n"), "offers[0].site: no site has id 9");
  ProviderRefused(Edit("  - gpu: H100\n    site", "  - gpu: A100\n    site"),
                  "offers[0].gpu: no machine in sites has gpu \"A100\"");
  ProviderRefused(Edit("price: 2.5", "price: 2.5.1"),
                  "offers[0].price: the price is GPN per GPU-hour");
  ProviderRefused(Edit("sites:\n", "sites: []\nx:\n"), "unknown field");
  ProviderRefused(Edit("name: fra1", "name: \"fr\\ta1\""), "control character");
}

TEST(ProviderConfig, ListsOverTheLedgerLimitsAndHostileYamlAreRefused) {
  // 65 sites (the limit is 64), each an alias of one site.
  std::string many = Edit("sites:\n  - id: 1", "sites:\n  - &s\n    id: 1");
  size_t offers = many.find("offers:");
  std::string aliases;
  for (int i = 0; i < 64; ++i) aliases += "  - *s\n";
  many.insert(offers, aliases);
  ProviderRefused(many, "sites: 65 items; at most 64 are allowed");
  // 1,025 machines in total across sites is over the per-provider limit, even when
  // each site alone is under it: refused before the last site's machines are read.
  std::string machines = "sites:\n";
  for (int s = 0; s < 2; ++s) {
    machines += "  - {fabric: roce, bandwidth_gbps: 100, machines: [";
    for (int m = 0; m < 513; ++m)
      machines += std::string(m ? "," : "") +
                  "{gpu: A, gpus: 1, vram_gib: 1, link: pcie, driver: x, cuda: '12', "
                  "compute_capability: '8'}";
    machines += "]}\n";
  }
  std::string header(kProvider.substr(0, kProvider.find("sites:")));
  ProviderRefused(header + machines, "sites[1].machines: 513 items; at most 511 are allowed");
  std::string deny = "deny: [t0";
  for (int i = 1; i < 65; ++i) deny += ",t" + std::to_string(i);
  ProviderRefused(Edit("deny: [gpn1xyz]", deny + "]"), "policy.deny: 65 items; at most 64");
  // Deep nesting ends in an error, not a stack overflow.
  std::string deep = "sites: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  auto pc = ParseProviderConfig(deep, "deep.yaml");
  ASSERT_FALSE(pc.has_value());
  EXPECT_NE(pc.error().message.find("deep.yaml"), std::string::npos) << pc.error().message;
}

TEST(ProviderConfig, LoadReportsMissingFile) {
  auto pc = LoadProviderConfig("/nonexistent/provider.yaml");
  ASSERT_FALSE(pc.has_value());
  EXPECT_EQ(pc.error().code, ErrorCode::kNotFound);
  EXPECT_NE(pc.error().message.find("/nonexistent/provider.yaml does not exist"),
            std::string::npos);
}

TEST(ParseShareBp, Forms) {
  EXPECT_EQ(*ParseShareBp("70%"), 7000u);
  EXPECT_EQ(*ParseShareBp("12.5%"), 1250u);
  EXPECT_EQ(*ParseShareBp("0.01%"), 1u);
  EXPECT_EQ(*ParseShareBp("100%"), 10000u);
  EXPECT_EQ(*ParseShareBp("7000bp"), 7000u);
  for (std::string_view bad : {"", "%", "bp", "0%", "0bp", "100.01%", "10001bp", "1.234%", "x%",
                               "-5%", "5", "5 %", "1e3bp"})
    EXPECT_FALSE(ParseShareBp(bad).has_value()) << bad;
}

TEST(ParseDurationMs, Forms) {
  EXPECT_EQ(*ParseDurationMs("500ms"), 500u);
  EXPECT_EQ(*ParseDurationMs("30s"), 30'000u);
  EXPECT_EQ(*ParseDurationMs("5m"), 300'000u);
  EXPECT_EQ(*ParseDurationMs("2h"), 7'200'000u);
  for (std::string_view bad : {"", "30", "s", "30sec", "-1s", "1.5s", "1 s", "9999999999999s"})
    EXPECT_FALSE(ParseDurationMs(bad).has_value()) << bad;
}

// ---------------------------------------------------------------- order.yaml

constexpr std::string_view kOrder = R"(requirements:
  gpu: [H100, A100, H100]
  gpus_per_machine: 2
  machines: 1
  min_vram_gib: 80
  region: eu
  fabric: infiniband
  same_site: true
  min_cuda: "12.1"
  auditors: [auditor]
  attributes:
    tier: "3"
max_price: 3
deposit: 100.5
manifest_hash: ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100
bid_window: 30s
)";

std::string EditOrder(std::string_view from, std::string_view to) {
  return Replaced(kOrder, from, to);
}

void OrderRefused(const std::string& text, std::string_view needle) {
  ExpectRefused(ParseOrderConfig(text, "order.yaml", ""), needle);
}

TEST(OrderConfig, ParsesEveryField) {
  auto oc = ParseOrderConfig(kOrder, "order.yaml", "");
  ASSERT_TRUE(oc.has_value()) << oc.error().message;
  EXPECT_EQ(oc->gpu_models, (std::vector<std::string>{"H100", "A100"}));  // duplicates dropped
  EXPECT_EQ(oc->gpus_per_machine, 2u);
  EXPECT_EQ(oc->machines, 1u);
  EXPECT_EQ(oc->min_vram_gib, 80u);
  EXPECT_EQ(oc->region, "eu");
  EXPECT_EQ(oc->fabric, "infiniband");
  EXPECT_TRUE(oc->same_site);
  EXPECT_EQ(oc->min_cuda, (Version{12, 1, 0}));
  ASSERT_EQ(oc->auditors.size(), 1u);
  EXPECT_EQ(oc->auditors[0].place.Describe(), "order.yaml:10: requirements.auditors[0]");
  EXPECT_EQ(oc->attributes.at("tier"), "3");
  EXPECT_EQ(oc->max_price_ugpn_per_gpu_hour, 3'000'000u);
  EXPECT_EQ(oc->deposit_ugpn, 100'500'000u);
  EXPECT_EQ(base::ToHex(oc->manifest_hash),
            "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
  EXPECT_EQ(oc->bid_window_ms, 30'000u);
}

TEST(OrderConfig, MinimalOrderAndScalarGpu) {
  auto oc = ParseOrderConfig(
      "requirements:\n  gpu: H100\n  gpus_per_machine: 2\nmax_price: 2.5\ndeposit: 10\n"
      "manifest_hash: ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
      "bid_window: 5m\n",
      "order.yaml", "");
  ASSERT_TRUE(oc.has_value()) << oc.error().message;
  EXPECT_EQ(oc->gpu_models, std::vector<std::string>{"H100"});
  EXPECT_EQ(oc->machines, 1u);
  EXPECT_TRUE(oc->fabric.empty());
  EXPECT_FALSE(oc->same_site);
  EXPECT_EQ(oc->min_cuda, Version{});
}

TEST(OrderConfig, ManifestFileIsHashedRelativeToTheOrder) {
  gpunet::testing::TempDir tmp;
  const std::string dir = tmp.Path();
  const std::string manifest =
      "version: 1\nenvironment: host\ncommand: [python3, train.py]\nnetwork: egress\n";
  std::ofstream(dir + "/job.yaml") << manifest;
  std::string order =
      EditOrder("manifest_hash: ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
                "manifest: job.yaml");
  std::ofstream(dir + "/order.yaml") << order;
  auto oc = LoadOrderConfig(dir + "/order.yaml");
  ASSERT_TRUE(oc.has_value()) << oc.error().message;
  // The hash of the canonical JSON (what the provider receives), not of the YAML bytes.
  auto canonical = ParseManifestText(manifest, "job.yaml");
  ASSERT_TRUE(canonical.has_value()) << canonical.error().message;
  EXPECT_EQ(oc->manifest_hash, crypto::Blake2b256(base::AsBytes(canonical->canonical)));
  EXPECT_NE(oc->manifest_hash, crypto::Blake2b256(base::AsBytes(manifest)));
  EXPECT_EQ(oc->manifest_path, dir + "/job.yaml");
  // A manifest that is not one is refused at the order's line, naming its field.
  std::ofstream(dir + "/job.yaml") << "image: pytorch\ncommand: python train.py\n";
  auto invalid = LoadOrderConfig(dir + "/order.yaml");
  ASSERT_FALSE(invalid.has_value());
  EXPECT_NE(invalid.error().message.find("order.yaml:15: manifest: " + dir +
                                         "/job.yaml: image: unknown field"),
            std::string::npos)
      << invalid.error().message;
  // A missing manifest names the field and the file.
  std::filesystem::remove(dir + "/job.yaml");
  auto missing = LoadOrderConfig(dir + "/order.yaml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("order.yaml:15: manifest: the manifest " + dir +
                                         "/job.yaml does not exist"),
            std::string::npos)
      << missing.error().message;
}

TEST(OrderConfig, ProviderRequirementsAreOptionalAndChecked) {
  auto oc = ParseOrderConfig(std::string(kOrder) +
                                 "providers:\n  min_bond: 500\n  min_earned: 1\n"
                                 "  max_fault_rate_ppm: 0\n  exclude: [gpn1abc]\n",
                             "order.yaml", "");
  ASSERT_TRUE(oc.has_value()) << oc.error().message;
  EXPECT_EQ(oc->min_provider_bond_ugpn, 500'000'000u);
  EXPECT_EQ(oc->min_provider_earned_ugpn, 1'000'000u);
  EXPECT_EQ(oc->max_provider_fault_rate_ppm, 0u);
  ASSERT_EQ(oc->excluded_providers.size(), 1u);
  EXPECT_EQ(oc->excluded_providers[0].text, "gpn1abc");
  auto plain = ParseOrderConfig(kOrder, "order.yaml", "");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->max_provider_fault_rate_ppm, base::limits::kFaultRatePpmAny);
  OrderRefused(std::string(kOrder) + "providers:\n  max_fault_rate_ppm: 1000001\n",
               "providers.max_fault_rate_ppm: 1000001 is out of range");
  OrderRefused(std::string(kOrder) + "providers:\n  min_bond: lots\n",
               "providers.min_bond: the bond is in GPN");
  OrderRefused(std::string(kOrder) + "providers:\n  reputation: 5\n",
               "providers.reputation: unknown field");
}

TEST(OrderConfig, ErrorsNameFileLineAndField) {
  OrderRefused("requirements: [\n", "order.yaml:");
  OrderRefused(EditOrder("requirements:\n", "requirement:\n"),
               "order.yaml:1: requirement: unknown field");
  OrderRefused(EditOrder("  gpus_per_machine: 2\n", ""), "requirements.gpus_per_machine: missing");
  OrderRefused(EditOrder("gpus_per_machine: 2", "gpus_per_machine: 0"),
               "order.yaml:3: requirements.gpus_per_machine: 0 is out of range");
  OrderRefused(EditOrder("machines: 1", "machines: one"), "requirements.machines: \"one\"");
  OrderRefused(EditOrder("fabric: infiniband", "fabric: wifi"), "requirements.fabric: \"wifi\"");
  OrderRefused(EditOrder("same_site: true", "same_site: yes"), "\"yes\" is not true or false");
  OrderRefused(EditOrder("min_cuda: \"12.1\"", "min_cuda: latest"), "requirements.min_cuda");
  OrderRefused(EditOrder("  auditors: [auditor]\n", ""), "attributes need at least one auditor");
  OrderRefused(EditOrder("tier: \"3\"", "tier: [3]"),
               "requirements.attributes.tier: expected a value");
  OrderRefused(EditOrder("    tier: \"3\"\n", "    - tier\n"), "expected a mapping of attribute");
  OrderRefused(EditOrder("max_price: 3", "max_price: 0"), "max_price: must be more than 0");
  OrderRefused(EditOrder("max_price: 3", "max_price: 3.0000001"), "max_price is GPN per GPU-hour");
  OrderRefused(EditOrder("deposit: 100.5\n", ""), "deposit: missing");
  OrderRefused(EditOrder("bid_window: 30s", "bid_window: 30"),
               "order.yaml:16: bid_window: \"30\" has no known unit");
  OrderRefused(EditOrder("manifest_hash: ff", "manifest_hash: gg"),
               "manifest_hash: must be 64 hex");
  OrderRefused(EditOrder("manifest_hash: ", "manifest: x\nmanifest_hash: "), "not both");
  OrderRefused(
      EditOrder("manifest_hash: ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n",
                ""),
      "manifest: missing");
}

}  // namespace
}  // namespace gpunet::client
