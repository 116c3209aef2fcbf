// provider.yaml's `daemon:` section (client/market_config.h DaemonConfig): every
// field read, defaults when absent, each refusal naming file:line: field.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "client/market_config.h"

namespace gpunet::client {
namespace {

constexpr std::string_view kDaemonBase = R"(tenant_api: https://gpu.example.com:8443
tls_fingerprint: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
region: eu-west
bond: 1000
payouts:
  - to: provider
    share: 100%
sites:
  - fabric: ethernet
    bandwidth_gbps: 10
    machines:
      - gpu: H100
        gpus: 2
        vram_gib: 80
        link: pcie
        driver: 550.54.15
        cuda: "12.4"
        compute_capability: "9.0"
      - gpu: A100
        gpus: 1
        vram_gib: 40
        link: pcie
        driver: 550.54.15
        cuda: "12.4"
        compute_capability: "8.0"
)";

constexpr std::string_view kDaemonFull = R"(daemon:
  node: http://10.0.0.2:26657
  listen: 0.0.0.0:9443
  metrics_listen: 127.0.0.1:9999
  machine: 2
  heartbeat_every: 20s
  withdraw_every: 2h
  outputs_retention: 3h
  health_poll: 500ms
  nvml_library: /opt/nvidia/libnvidia-ml.so.1
  passphrase_file: /etc/gpunet/operator.pass
  api_user: gpunet-api
  device_dir: /run/fake-dev
  declared_gpus:
    - uuid: GPU-dev-0
      minor: 0
    - uuid: GPU-dev-1
      minor: 3
  bidding:
    enabled: true
    floor: {H100: 2.5, A100: "1.25"}
    undercut: 5%
)";

base::Result<ProviderConfig> WithDaemon(std::string_view daemon) {
  return ParseProviderConfig(std::string(kDaemonBase) + std::string(daemon), "provider.yaml");
}

void DaemonRefused(std::string_view daemon, std::string_view needle) {
  auto parsed = WithDaemon(daemon);
  ASSERT_FALSE(parsed.has_value()) << "accepted; expected: " << needle;
  EXPECT_NE(parsed.error().message.find(needle), std::string::npos)
      << "message: " << parsed.error().message << "\nexpected to contain: " << needle;
}

TEST(DaemonConfig, AbsentSectionGivesTheDefaults) {
  auto pc = WithDaemon("");
  ASSERT_TRUE(pc.has_value()) << pc.error().message;
  const DaemonConfig defaults;
  EXPECT_EQ(pc->daemon.node_url, defaults.node_url);
  EXPECT_EQ(pc->daemon.listen, "0.0.0.0:8443");
  EXPECT_EQ(pc->daemon.outputs_retention_ms, 24ull * 3'600'000);
  EXPECT_EQ(pc->daemon.machine_id, 0u);
  EXPECT_TRUE(pc->daemon.declared_gpus.empty());
  EXPECT_FALSE(pc->daemon.bidding.enabled);
}

TEST(DaemonConfig, ParsesEveryField) {
  auto pc = WithDaemon(kDaemonFull);
  ASSERT_TRUE(pc.has_value()) << pc.error().message;
  const DaemonConfig& d = pc->daemon;
  EXPECT_EQ(d.node_url, "http://10.0.0.2:26657");
  EXPECT_EQ(d.listen, "0.0.0.0:9443");
  EXPECT_EQ(d.metrics_listen, "127.0.0.1:9999");
  EXPECT_EQ(d.machine_id, 2u);
  EXPECT_EQ(d.heartbeat_every_ms, 20'000u);
  EXPECT_EQ(d.withdraw_every_ms, 7'200'000u);
  EXPECT_EQ(d.outputs_retention_ms, 10'800'000u);
  EXPECT_EQ(d.health_poll_ms, 500u);
  EXPECT_EQ(d.nvml_library, "/opt/nvidia/libnvidia-ml.so.1");
  EXPECT_EQ(d.passphrase_file, "/etc/gpunet/operator.pass");
  EXPECT_EQ(d.api_user, "gpunet-api");
  EXPECT_EQ(d.device_dir, "/run/fake-dev");
  ASSERT_EQ(d.declared_gpus.size(), 2u);
  EXPECT_EQ(d.declared_gpus[1].uuid, "GPU-dev-1");
  EXPECT_EQ(d.declared_gpus[1].minor, 3u);
  EXPECT_EQ(d.declared_gpus[1].place.Describe(), "provider.yaml:42: daemon.declared_gpus[1]");
  EXPECT_TRUE(d.bidding.enabled);
  ASSERT_EQ(d.bidding.floor_ugpn_per_gpu_hour.size(), 2u);
  EXPECT_EQ(d.bidding.floor_ugpn_per_gpu_hour.at("H100"), 2'500'000u);
  EXPECT_EQ(d.bidding.floor_ugpn_per_gpu_hour.at("A100"), 1'250'000u);
  EXPECT_EQ(d.bidding.undercut_bp, 500u);
  EXPECT_EQ(d.place.line, 27);  // a mapping starts at its first field
}

TEST(DaemonConfig, UnknownAndRepeatedKeysAreRefused) {
  DaemonRefused("daemon:\n  nodes: http://x:1\n",
                "provider.yaml:27: daemon.nodes: unknown field; the fields here are: node,");
  DaemonRefused("daemon:\n  listen: 0.0.0.0:1\n  listen: 0.0.0.0:2\n",
                "provider.yaml:28: daemon.listen: appears twice");
  DaemonRefused("daemon:\n  bidding:\n    enable: true\n",
                "provider.yaml:28: daemon.bidding.enable: unknown field");
  DaemonRefused("daemon:\n  declared_gpus:\n    - uuid: GPU-a\n      minor: 0\n      vram: 8\n",
                "daemon.declared_gpus[0].vram: unknown field");
  DaemonRefused("daemon: [1, 2]\n", "daemon: expected a mapping");
}

TEST(DaemonConfig, DurationsNeedAUnitAndTheirMinimum) {
  DaemonRefused("daemon:\n  heartbeat_every: 20\n",
                "provider.yaml:27: daemon.heartbeat_every: \"20\" has no known unit");
  DaemonRefused("daemon:\n  heartbeat_every: 500ms\n", "is too short; at least 1s");
  DaemonRefused("daemon:\n  withdraw_every: 500ms\n",
                "daemon.withdraw_every: \"500ms\" is too short; at least 1s");
  // Under a minute parses; `provider run` allows it on a development chain only.
  auto short_withdraw = WithDaemon("daemon:\n  withdraw_every: 2s\n");
  ASSERT_TRUE(short_withdraw.has_value()) << short_withdraw.error().message;
  EXPECT_EQ(short_withdraw->daemon.withdraw_every_ms, 2'000u);
  DaemonRefused("daemon:\n  outputs_retention: 59m\n",
                "provider.yaml:27: daemon.outputs_retention: \"59m\" is too short; at least 1h");
  DaemonRefused("daemon:\n  health_poll: 50ms\n", "daemon.health_poll");
  auto ok = WithDaemon("daemon:\n  outputs_retention: 60m\n");
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->daemon.outputs_retention_ms, 3'600'000u);
}

TEST(DaemonConfig, AddressesAndMachineAreChecked) {
  DaemonRefused("daemon:\n  listen: 8443\n", "daemon.listen: \"8443\" is not host:port");
  DaemonRefused("daemon:\n  metrics_listen: localhost:99999\n", "is not host:port");
  DaemonRefused("daemon:\n  listen: \"host:\"\n", "is not host:port");
  DaemonRefused("daemon:\n  node: 127.0.0.1:26657\n", "daemon.node: \"127.0.0.1:26657\" must be");
  DaemonRefused("daemon:\n  machine: 3\n", "daemon.machine: no machine in sites has id 3");
  DaemonRefused("daemon:\n  machine: 0\n", "daemon.machine: 0 is out of range");
  auto v6 = WithDaemon("daemon:\n  listen: \"[::]:8443\"\n");
  ASSERT_TRUE(v6.has_value()) << v6.error().message;
  EXPECT_EQ(v6->daemon.listen, "[::]:8443");
}

TEST(DaemonConfig, DeclaredGpusAreUniqueAndNamedLikeCuda) {
  DaemonRefused("daemon:\n  declared_gpus:\n    - uuid: dev0\n      minor: 0\n",
                "daemon.declared_gpus[0].uuid: \"dev0\" must start with GPU-");
  DaemonRefused(
      "daemon:\n  declared_gpus:\n    - {uuid: GPU-a, minor: 0}\n    - {uuid: GPU-a, minor: 1}\n",
      "daemon.declared_gpus[1].uuid: \"GPU-a\" is declared twice");
  DaemonRefused(
      "daemon:\n  declared_gpus:\n    - {uuid: GPU-a, minor: 0}\n    - {uuid: GPU-b, minor: 0}\n",
      "daemon.declared_gpus[1].minor: minor 0 is used by two declared GPUs");
  DaemonRefused("daemon:\n  declared_gpus:\n    - {uuid: GPU-a}\n",
                "daemon.declared_gpus[0].minor: missing");
  DaemonRefused("daemon:\n  declared_gpus:\n    - {uuid: GPU-a, minor: 256}\n",
                "256 is out of range");
}

TEST(DaemonConfig, BiddingFloorsAreExactAndForOwnModels) {
  DaemonRefused("daemon:\n  bidding:\n    floor: {B200: 3}\n",
                "daemon.bidding.floor.B200: no machine in sites has gpu \"B200\"");
  DaemonRefused("daemon:\n  bidding:\n    floor: {H100: 0.0000001}\n", "daemon.bidding.floor.H100");
  DaemonRefused("daemon:\n  bidding:\n    floor: [H100]\n", "expected a mapping of GPU model");
  DaemonRefused("daemon:\n  bidding:\n    enabled: true\n",
                "bidding is enabled but no model has a floor");
  DaemonRefused("daemon:\n  bidding:\n    enabled: yes\n", "\"yes\" is not true or false");
  DaemonRefused("daemon:\n  bidding:\n    undercut: 100%\n", "is not a share under 100%");
  DaemonRefused("daemon:\n  bidding:\n    undercut: 5\n", "daemon.bidding.undercut");
  auto zero = WithDaemon("daemon:\n  bidding:\n    undercut: 0%\n");
  ASSERT_TRUE(zero.has_value()) << zero.error().message;
  EXPECT_EQ(zero->daemon.bidding.undercut_bp, 0u);
}

}  // namespace
}  // namespace gpunet::client
