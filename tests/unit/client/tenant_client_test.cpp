// The tenant API's URL (the tenant_api_uri a provider registers); the client itself is
// tested over real TLS in tests/unit/provider/tenant_api_tls_test.cpp.
#include "client/tenant_client.h"

#include <gtest/gtest.h>

namespace gpunet::client {
namespace {

TEST(TenantApiUrl, ParsesHttpsHostAndPort) {
  auto u = ParseTenantApiUrl("https://gpu.example.com:8443/");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_EQ(u->host, "gpu.example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->base, "https://gpu.example.com:8443");
  u = ParseTenantApiUrl("HTTPS://10.0.0.5");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_EQ(u->port, 443);
  u = ParseTenantApiUrl("https://[::1]:9000");
  ASSERT_TRUE(u) << u.error().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->base, "https://[::1]:9000");
}

TEST(TenantApiUrl, RefusesAnythingElseSayingTheForm) {
  for (std::string_view bad :
       {"http://gpu.example.com:8443", "gpu.example.com:8443", "https://", "https://h:0",
        "https://h:65536", "https://h:", "https://h:80/path", "https://[::1", "https://[::1]x",
        "https://B[::1]:8443/", "https://h_x:1", "https://[::1%eth0]:1", "https://u@h:1"}) {
    auto u = ParseTenantApiUrl(bad);
    EXPECT_FALSE(u) << "accepted " << bad;
    if (!u) {
      EXPECT_EQ(u.error().code, base::ErrorCode::kInvalidArgument);
      EXPECT_NE(u.error().message.find("expected https://HOST:PORT"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace gpunet::client
