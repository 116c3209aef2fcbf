#include "provider/init_config.h"

#include <gtest/gtest.h>

#include "client/market_config.h"

namespace gpunet::provider {
namespace {

InitValues SomeValues() {
  InitValues v;
  v.operator_address = "gpn1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sw2kl3a";
  v.tenant_api_uri = "https://gpu.example.com:8443";
  v.tls_fingerprint.data.fill(0xab);
  v.region = "eu-west";
  v.bond_gpn = "100";
  v.node_url = "http://127.0.0.1:26657";
  v.listen = "0.0.0.0:8443";
  return v;
}

runtime::GpuInfo Gpu(std::string name, uint64_t mib) {
  runtime::GpuInfo g;
  g.name = std::move(name);
  g.memory_total_bytes = mib << 20;
  return g;
}

TEST(InitConfig, ModelNamesFromNvml) {
  EXPECT_EQ(GpuModelFromName("NVIDIA H100 80GB HBM3"), "H100");
  EXPECT_EQ(GpuModelFromName("NVIDIA A100-SXM4-80GB"), "A100");
  EXPECT_EQ(GpuModelFromName("NVIDIA GeForce RTX 4090"), "RTX4090");
  EXPECT_EQ(GpuModelFromName("Tesla T4"), "T4");
  EXPECT_EQ(GpuModelFromName("NVIDIA"), "GPU");
  EXPECT_EQ(GpuModelFromName(""), "GPU");
  EXPECT_EQ(KnownComputeCapability("H100"), "9.0");
  EXPECT_EQ(KnownComputeCapability("Z9"), "");
}

TEST(InitConfig, HostWithGpusGivesOneMachineOfItsMainModelThatParses) {
  HostInventory host;
  host.host_name = "node-a";
  host.nvml_answered = true;
  host.driver_version = "580.159.04";
  host.gpus = {Gpu("NVIDIA H100 80GB HBM3", 81559), Gpu("NVIDIA H100 80GB HBM3", 81559),
               Gpu("NVIDIA A100-SXM4-40GB", 40960)};
  host.cpu_cores = 16;
  host.memory_gib = 128;
  host.disk_gib = 900;
  InitValues v = SomeValues();
  v.payee = "gpn1owner";
  std::string yaml = RenderProviderYaml(host, v);
  auto pc = client::ParseProviderConfig(yaml, "provider.yaml");
  ASSERT_TRUE(pc.has_value()) << pc.error().message << "\n" << yaml;
  ASSERT_EQ(pc->sites.size(), 1u);
  ASSERT_EQ(pc->sites[0].machines.size(), 1u);
  const client::MachineConfig& m = pc->sites[0].machines[0];
  EXPECT_EQ(m.gpu_model, "H100");
  EXPECT_EQ(m.gpu_count, 2u);
  EXPECT_EQ(m.vram_gib, 80u);  // 79.6 GiB rounds to what the card is sold as
  EXPECT_EQ(m.driver_version, "580.159.04");
  EXPECT_EQ(client::FormatVersion(m.compute_capability), "9.0");
  EXPECT_EQ(m.cpu_cores, 16u);
  EXPECT_EQ(m.memory_gib, 128u);
  EXPECT_EQ(m.disk_gib, 900u);
  EXPECT_EQ(pc->operator_key.text, v.operator_address);
  EXPECT_EQ(pc->tls_fingerprint, v.tls_fingerprint);
  EXPECT_EQ(pc->payouts[0].payee.text, "gpn1owner");
  EXPECT_EQ(pc->daemon.machine_id, 1u);
  EXPECT_TRUE(pc->daemon.declared_gpus.empty());
  EXPECT_TRUE(pc->offers.empty());
  EXPECT_NE(yaml.find("also has 1 x A100"), std::string::npos);
  EXPECT_EQ(yaml.find("declared_gpus"), std::string::npos);
}

TEST(InitConfig, HostWithoutGpusExplainsDeclaredGpusAndStillParses) {
  HostInventory host;
  host.host_name = "laptop";
  host.nvml_problem = "NVML not found: no NVIDIA driver on this host";
  InitValues v = SomeValues();
  std::string yaml = RenderProviderYaml(host, v);
  auto pc = client::ParseProviderConfig(yaml, "provider.yaml");
  ASSERT_TRUE(pc.has_value()) << pc.error().message << "\n" << yaml;
  EXPECT_EQ(pc->sites[0].machines[0].gpu_model, "DEV");
  EXPECT_NE(yaml.find("# declared_gpus:"), std::string::npos);
  EXPECT_NE(yaml.find("DEVELOPMENT chain only"), std::string::npos);
  EXPECT_NE(yaml.find("no NVIDIA driver on this host"), std::string::npos);
  // No payee given: the operator, with a warning to change it.
  EXPECT_EQ(pc->payouts[0].payee.text, v.operator_address);
  EXPECT_NE(yaml.find("NOT on this host"), std::string::npos);
}

}  // namespace
}  // namespace gpunet::provider
