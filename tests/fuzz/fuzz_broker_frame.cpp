// fuzz-libs: gpunet_provider
// The root part of the provider daemon decodes these frames from the unprivileged
// tenant-facing process (provider/broker_wire.h): never a crash, and every frame it
// accepts re-encodes to the same bytes (one encoding per frame).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/check.h"
#include "provider/broker_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto frame = gpunet::provider::DecodeBrokerFrame(bytes);
  if (!frame.has_value()) return 0;
  auto again = gpunet::provider::EncodeBrokerFrame(*frame);
  GPUNET_CHECK(again.has_value());
  GPUNET_CHECK(again->substr(4) == bytes);
  return 0;
}
