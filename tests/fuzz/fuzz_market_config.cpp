// fuzz-libs: gpunet_client gpunet_codec gpunet_crypto gpunet_base
// provider.yaml and order.yaml parsing (client/market_config.h): never crash,
// never hang on any bytes (yaml-cpp errors, aliases, deep nesting included); every
// refusal names the file; an accepted provider config has payouts summing to 100%
// and a daemon section within its floors.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "client/market_config.h"

using namespace gpunet::client;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto provider = ParseProviderConfig(text, "p.yaml");
  if (provider) {
    uint64_t bp = 0;
    for (const auto& p : provider->payouts) bp += p.bp;
    GPUNET_CHECK(bp == 10'000);
    GPUNET_CHECK(!provider->sites.empty());
    // The daemon section's floors the parser enforces (docs/provider.md).
    GPUNET_CHECK(provider->daemon.outputs_retention_ms >= 3'600'000);
    GPUNET_CHECK(!provider->daemon.bidding.enabled ||
                 !provider->daemon.bidding.floor_ugpn_per_gpu_hour.empty());
  } else {
    GPUNET_CHECK(provider.error().message.find("p.yaml") != std::string::npos);
  }
  // An empty base dir: a `manifest:` file is looked up in the working directory,
  // which the fuzzer's corpus never names; hash-only orders are fully exercised.
  auto order = ParseOrderConfig(text, "o.yaml", "/nonexistent-gpunet-fuzz-dir");
  if (order) {
    GPUNET_CHECK(order->gpus_per_machine >= 1);
    GPUNET_CHECK(order->max_price_ugpn_per_gpu_hour >= 1);
  } else {
    GPUNET_CHECK(order.error().message.find("o.yaml") != std::string::npos);
  }
  return 0;
}
