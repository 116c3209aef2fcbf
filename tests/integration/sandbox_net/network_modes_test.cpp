// Network isolation of the three modes (issue 6 items 4 and 8), with the real
// AttachNetwork, real slirp4netns, real nftables, real sockets. The workload is a
// probe process in its own user + network namespace without capabilities.
//
// Every test starts two token services on the host — one on 127.0.0.1, one on the
// host's own non-loopback address — and first checks from the host that they are
// reachable (so "unreachable from inside" is not an artefact of a dead service).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "integration/sandbox_net/netns_probe.h"
#include "runtime/network.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

using gpunet::testing::ConnectResult;
using gpunet::testing::HostNonLoopbackAddress;
using gpunet::testing::NetnsProbe;
using gpunet::testing::TcpConnectRead;
using gpunet::testing::TokenServer;

class NetworkModes : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "network modes need root (setns, nftables)";
    m_tmp.emplace(gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-net"});
    m_run_dir = m_tmp->Path();
    m_host_addr = HostNonLoopbackAddress();
    ASSERT_FALSE(m_host_addr.empty()) << "the host has no non-loopback IPv4 address to test with";
    m_loop_srv = std::make_unique<TokenServer>("127.0.0.1", 0, "HOSTLOOP");
    m_addr_srv = std::make_unique<TokenServer>(m_host_addr, 0, "HOSTADDR");
    ASSERT_TRUE(m_loop_srv->Ok() && m_addr_srv->Ok());
    // Controls: from the host both services answer.
    ASSERT_EQ(TcpConnectRead("127.0.0.1", m_loop_srv->Port()).data, "HOSTLOOP");
    ASSERT_EQ(TcpConnectRead(m_host_addr, m_addr_srv->Port()).data, "HOSTADDR");
    m_probe = std::make_unique<NetnsProbe>();
    ASSERT_TRUE(m_probe->Ready()) << m_probe->Ask("hello");
  }
  void TearDown() override {
    m_probe.reset();
    m_tmp.reset();
  }

  std::string Connect(const std::string& addr, uint16_t port) {
    return m_probe->Ask("connect " + addr + " " + std::to_string(port));
  }

  /// The host's services must be unreachable from the probe, by every path we know:
  /// its own loopback (a different namespace), the host's address, and slirp's
  /// gateway that would forward to the host's loopback.
  void ExpectHostUnreachable() {
    std::string port_loop = std::to_string(m_loop_srv->Port());
    for (const auto& [addr, port] :
         std::vector<std::pair<std::string, uint16_t>>{{"127.0.0.1", m_loop_srv->Port()},
                                                       {m_host_addr, m_loop_srv->Port()},
                                                       {m_host_addr, m_addr_srv->Port()},
                                                       {"10.0.2.2", m_loop_srv->Port()},
                                                       {"10.0.2.2", m_addr_srv->Port()}}) {
      std::string r = Connect(addr, port);
      EXPECT_EQ(r.rfind("error ", 0), 0u) << addr << ":" << port << " reachable from inside: " << r;
      EXPECT_EQ(r.find("HOST"), std::string::npos) << r;
    }
  }

  WorkloadSpec Spec(NetworkMode mode) {
    WorkloadSpec spec;
    spec.id = "net-test";
    spec.network = mode;
    return spec;
  }

  std::optional<gpunet::testing::TempDir> m_tmp;  // made once the test knows it runs
  std::string m_run_dir;
  std::string m_host_addr;
  std::unique_ptr<TokenServer> m_loop_srv, m_addr_srv;
  std::unique_ptr<NetnsProbe> m_probe;
};

TEST_F(NetworkModes, NoneHasOnlyLoopbackAndCannotReachTheHost) {
  auto att = AttachNetwork(Spec(NetworkMode::kNone), m_probe->Pid(), m_run_dir);
  ASSERT_TRUE(att) << att.error().ToString();
  EXPECT_TRUE((*att)->BoundPorts().empty());
  EXPECT_EQ(m_probe->Ask("ifaddrs"), "lo=127.0.0.1");
  EXPECT_EQ(m_probe->Ask("route"), "none");
  ExpectHostUnreachable();
  // Loopback inside works (a workload may talk to itself).
  ASSERT_EQ(m_probe->Ask("listen 7000 INSIDE"), "listening");
  EXPECT_EQ(Connect("127.0.0.1", 7000), "connected INSIDE");
}

TEST_F(NetworkModes, EgressHasARouteButHostAndPrivateRangesAreBlocked) {
  if (auto why = EgressUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  auto att = AttachNetwork(Spec(NetworkMode::kEgress), m_probe->Pid(), m_run_dir);
  ASSERT_TRUE(att) << att.error().ToString();
  EXPECT_EQ(m_probe->Ask("ifaddrs"), "lo=127.0.0.1 tap0=10.0.2.100");
  EXPECT_EQ(m_probe->Ask("route"), "default");
  ExpectHostUnreachable();
  // The workload has no capabilities in its namespace: nft runs and is refused
  // (exit 1, "Operation not permitted"), so the rules stay.
  std::string nft = std::filesystem::exists("/usr/sbin/nft") ? "/usr/sbin/nft" : "/sbin/nft";
  EXPECT_EQ(m_probe->Ask("run " + nft + " flush ruleset"), "exit 1");
  EXPECT_EQ(m_probe->Ask("run " + nft + " delete table inet gpunet_sandbox"), "exit 1");
  ExpectHostUnreachable();
  // Teardown stops slirp: the tap device goes away with it.
  att->reset();
  EXPECT_EQ(m_probe->Ask("ifaddrs"), "lo=127.0.0.1");
}

TEST_F(NetworkModes, EgressRulesetIsInstalledBeforeTheLinkComesUp) {
  if (auto why = EgressUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  auto att = AttachNetwork(Spec(NetworkMode::kEgress), m_probe->Pid(), m_run_dir);
  ASSERT_TRUE(att) << att.error().ToString();
  // The rules file the runtime wrote names the host's own address and the ranges.
  std::ifstream f(m_run_dir + "/egress.nft");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string rules = ss.str();
  for (const std::string& needle :
       {m_host_addr, std::string("10.0.0.0/8"), std::string("172.16.0.0/12"),
        std::string("192.168.0.0/16"), std::string("100.64.0.0/10"), std::string("169.254.0.0/16")})
    EXPECT_NE(rules.find(needle), std::string::npos) << needle;
}

TEST_F(NetworkModes, PortsForwardsOnlyTheListedPortAndTheSandboxStillCannotReachTheHost) {
  ASSERT_EQ(m_probe->Ask("listen 8000 LISTED"), "listening");
  ASSERT_EQ(m_probe->Ask("listen 8001 UNLISTED"), "listening");
  WorkloadSpec spec = Spec(NetworkMode::kPorts);
  spec.ports = {PortSpec{8000, 0}, PortSpec{8002, 0}};  // 8002: listed, nothing listens
  auto att = AttachNetwork(spec, m_probe->Pid(), m_run_dir);
  ASSERT_TRUE(att) << att.error().ToString();
  auto bound = (*att)->BoundPorts();
  ASSERT_EQ(bound.size(), 2u);
  EXPECT_EQ(bound[0].container_port, 8000);
  EXPECT_NE(bound[0].host_port, 0);
  // The listed port is reachable from the host, repeatedly.
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(TcpConnectRead("127.0.0.1", bound[0].host_port).data, "LISTED");
  // Nothing forwards to the unlisted one; the listed-but-idle port gives no data.
  EXPECT_EQ(TcpConnectRead("127.0.0.1", bound[1].host_port).data, "");
  // Only 127.0.0.1 of the host listens, not its other addresses.
  EXPECT_FALSE(TcpConnectRead(m_host_addr, bound[0].host_port).connected);
  // The workload has no route out and no way to the host's services.
  EXPECT_EQ(m_probe->Ask("ifaddrs"), "lo=127.0.0.1");
  EXPECT_EQ(m_probe->Ask("route"), "none");
  ExpectHostUnreachable();
  // Teardown closes the host side.
  uint16_t host_port = bound[0].host_port;
  att->reset();
  EXPECT_FALSE(TcpConnectRead("127.0.0.1", host_port).connected);
}

TEST_F(NetworkModes, PortsCarriesABulkTransferBothWaysWithHalfClose) {
  ASSERT_EQ(m_probe->Ask("echo 8100"), "listening");
  WorkloadSpec spec = Spec(NetworkMode::kPorts);
  spec.ports = {PortSpec{8100, 0}};
  auto att = AttachNetwork(spec, m_probe->Pid(), m_run_dir);
  ASSERT_TRUE(att) << att.error().ToString();
  std::string payload(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 131) ^ (i >> 9));
  std::string back = gpunet::testing::TcpRoundTrip((*att)->BoundPorts()[0].host_port, payload);
  EXPECT_EQ(back.size(), payload.size());
  EXPECT_TRUE(back == payload);
}

TEST_F(NetworkModes, HostPortInUseIsAConflict) {
  WorkloadSpec spec = Spec(NetworkMode::kPorts);
  spec.ports = {PortSpec{8000, m_loop_srv->Port()}};
  auto att = AttachNetwork(spec, m_probe->Pid(), m_run_dir);
  ASSERT_FALSE(att);
  EXPECT_EQ(att.error().code, base::ErrorCode::kConflict) << att.error().ToString();
}

TEST_F(NetworkModes, RefusesTheHostNamespace) {
  for (NetworkMode mode : {NetworkMode::kEgress, NetworkMode::kPorts}) {
    WorkloadSpec spec = Spec(mode);
    if (mode == NetworkMode::kPorts) spec.ports = {PortSpec{8000, 0}};
    auto att = AttachNetwork(spec, ::getpid(), m_run_dir);
    ASSERT_FALSE(att);
    EXPECT_EQ(att.error().code, base::ErrorCode::kPermissionDenied) << att.error().ToString();
  }
}

TEST_F(NetworkModes, EgressFailsCleanlyWithoutARunDir) {
  if (auto why = EgressUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  auto att = AttachNetwork(Spec(NetworkMode::kEgress), m_probe->Pid(), m_run_dir + "/missing");
  ASSERT_FALSE(att);
  EXPECT_EQ(att.error().code, base::ErrorCode::kIo) << att.error().ToString();
  EXPECT_EQ(m_probe->Ask("ifaddrs"), "lo=127.0.0.1");
}

}  // namespace
}  // namespace gpunet::runtime
