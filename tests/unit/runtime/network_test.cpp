// Spec checks and host-independent parts of the network modes. The isolation
// itself is tested with real namespaces in tests/integration/sandbox_net/.
#include "runtime/network.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace gpunet::runtime {
namespace {

using base::ErrorCode;

WorkloadSpec Spec(NetworkMode mode, std::vector<PortSpec> ports = {}) {
  WorkloadSpec s;
  s.id = "n";
  s.network = mode;
  s.ports = std::move(ports);
  return s;
}

TEST(NetworkSpec, AcceptsEachModeWithWhatItNeeds) {
  EXPECT_TRUE(ValidateNetworkSpec(Spec(NetworkMode::kNone)));
  EXPECT_TRUE(ValidateNetworkSpec(Spec(NetworkMode::kEgress)));
  EXPECT_TRUE(ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{8888, 0}, {8889, 18889}})));
}

TEST(NetworkSpec, RefusesPortsOutsidePortsModeAndPortsModeWithoutPorts) {
  for (NetworkMode m : {NetworkMode::kNone, NetworkMode::kEgress}) {
    auto st = ValidateNetworkSpec(Spec(m, {{80, 0}}));
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  }
  auto st = ValidateNetworkSpec(Spec(NetworkMode::kPorts));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("--port"), std::string::npos) << st.error().message;
}

TEST(NetworkSpec, RefusesZeroDuplicateAndTooManyPorts) {
  EXPECT_EQ(ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{0, 0}})).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{80, 0}, {80, 0}})).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{80, 9000}, {81, 9000}})).error().code,
            ErrorCode::kInvalidArgument);
  // The host's privileged ports are not the tenant's to take (the forwarder binds as root).
  auto privileged = ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{80, 22}}));
  ASSERT_FALSE(privileged);
  EXPECT_EQ(privileged.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(privileged.error().message.find("privileged"), std::string::npos);
  EXPECT_TRUE(ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{80, kHostPortMin}})));
  // Two "any free port" requests are not a duplicate.
  EXPECT_TRUE(ValidateNetworkSpec(Spec(NetworkMode::kPorts, {{80, 0}, {81, 0}})));
  std::vector<PortSpec> many;
  for (uint16_t p = 1; p <= kForwardedPortsMax + 1; ++p) many.push_back({p, 0});
  EXPECT_EQ(ValidateNetworkSpec(Spec(NetworkMode::kPorts, many)).error().code,
            ErrorCode::kLimitExceeded);
}

TEST(NetworkResolvConf, EgressNamesSlirpDnsOthersNoNameserver) {
  EXPECT_EQ(SandboxResolvConf(NetworkMode::kEgress), "nameserver 10.0.2.3\n");
  EXPECT_EQ(SandboxResolvConf(NetworkMode::kNone).find("nameserver"), std::string::npos);
  EXPECT_EQ(SandboxResolvConf(NetworkMode::kPorts).find("nameserver"), std::string::npos);
}

TEST(NetworkAttach, NoneDoesNothingAndBindsNoPort) {
  auto att = AttachNetwork(Spec(NetworkMode::kNone), ::getpid(), "/nonexistent");
  ASSERT_TRUE(att) << att.error().ToString();
  EXPECT_TRUE((*att)->BoundPorts().empty());
}

TEST(NetworkAttach, RefusesBadPidsAndInvalidSpecsBeforeTouchingAnything) {
  auto bad_pid = AttachNetwork(Spec(NetworkMode::kPorts, {{80, 0}}), 0, "/tmp");
  ASSERT_FALSE(bad_pid);
  EXPECT_EQ(bad_pid.error().code, ErrorCode::kInvalidArgument);
  // A pid that cannot exist (above pid_max's ceiling).
  auto gone = AttachNetwork(Spec(NetworkMode::kPorts, {{80, 0}}), 0x3fffffff, "/tmp");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound) << gone.error().ToString();
  auto invalid = AttachNetwork(Spec(NetworkMode::kEgress, {{80, 0}}), ::getpid(), "/tmp");
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code, ErrorCode::kInvalidArgument);
}

TEST(NetworkHost, EgressUnavailableReasonNamesWhatIsMissing) {
  std::string why = EgressUnavailableReason();
  if (!why.empty()) {
    EXPECT_TRUE(why.find("slirp4netns") != std::string::npos ||
                why.find("nft") != std::string::npos || why.find("root") != std::string::npos)
        << why;
  }
}

}  // namespace
}  // namespace gpunet::runtime
