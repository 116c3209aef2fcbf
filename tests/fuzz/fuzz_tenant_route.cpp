// fuzz-libs: gpunet_provider
// The tenant API's route parser (provider/tenant_api.h ParseTenantRoute): input is
// "METHOD TARGET". Any bytes are routed or refused with 400/404/405's codes, never a
// crash; a route's target passed client::CheckRequestTarget, its fields fit a broker
// frame, and a file or output path it decoded has no empty, "." or ".." segment and no
// byte below 0x20 (what the agent's openat2 then resolves beneath the lease's folder).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/check.h"
#include "client/tenant_request.h"
#include "provider/broker_wire.h"
#include "provider/tenant_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gpunet::base::ErrorCode;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t space = input.find(' ');
  if (space == std::string_view::npos) return 0;
  const std::string_view method = input.substr(0, space);
  const std::string_view target = input.substr(space + 1);
  auto route = gpunet::provider::ParseTenantRoute(method, target);
  if (!route) {
    const ErrorCode code = route.error().code;
    GPUNET_CHECK(code == ErrorCode::kInvalidArgument || code == ErrorCode::kNotFound ||
                 code == ErrorCode::kUnsupported);
    return 0;
  }
  GPUNET_CHECK(gpunet::client::CheckRequestTarget(target));
  GPUNET_CHECK((route->op == gpunet::provider::BrokerOp::kEnvironments) == !route->signed_request);
  GPUNET_CHECK(route->signed_request == (route->lease_id != 0));
  gpunet::provider::BrokerFrame frame;
  frame.op = route->op;
  frame.lease_id = route->lease_id;
  frame.fields = route->fields;
  GPUNET_CHECK(gpunet::provider::EncodeBrokerFrame(frame));
  if (auto path = frame.Field("path"); path && !path->empty()) {
    size_t start = 0;
    while (true) {
      const size_t slash = path->find('/', start);
      const std::string_view segment = path->substr(
          start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
      GPUNET_CHECK(!segment.empty() && segment != "." && segment != "..");
      for (char c : segment) GPUNET_CHECK(static_cast<unsigned char>(c) >= 0x20);
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
  }
  // Deterministic: the same input routes the same way.
  auto again = gpunet::provider::ParseTenantRoute(method, target);
  GPUNET_CHECK(again && again->fields == route->fields && again->op == route->op);
  return 0;
}
