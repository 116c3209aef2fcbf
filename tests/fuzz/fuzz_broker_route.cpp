// fuzz-libs: gpunet_provider gpunet_client
// The agent reads each signed request's route from the raw target the tenant sent
// (provider/broker_service.h ParseBrokerRoute): never a crash, and a target it
// accepts names lease 7 and leaves no NUL, "." or ".." segment in the decoded path
// that an upload or output name would be taken from.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/check.h"
#include "provider/broker_service.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view target(reinterpret_cast<const char*>(data), size);
  auto route = gpunet::provider::ParseBrokerRoute(target, 7);
  if (!route.has_value()) return 0;
  GPUNET_CHECK(target.starts_with("/leases/7"));
  const std::string& rest = route->rest;
  GPUNET_CHECK(rest.find('\0') == std::string::npos);
  GPUNET_CHECK(rest.empty() || rest[0] == '/');
  size_t start = 1;
  while (start <= rest.size() && !rest.empty()) {
    size_t end = rest.find('/', start);
    if (end == std::string::npos) end = rest.size();
    std::string_view segment(rest.data() + start, end - start);
    GPUNET_CHECK(segment != "." && segment != "..");
    start = end + 1;
  }
  return 0;
}
