// Network isolation of podman workloads in every mode (issue 6 items 7 and 8): the
// container is started with --network none and the runtime's own modes are
// attached between `podman init` and `podman start`. Probes run inside with
// busybox nc against token services on the host's 127.0.0.1 and own address.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "integration/sandbox_net/busybox_image.h"
#include "integration/sandbox_net/netns_probe.h"
#include "runtime/network.h"
#include "runtime/podman.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

namespace fs = std::filesystem;
using gpunet::testing::HostNonLoopbackAddress;
using gpunet::testing::TcpConnectRead;
using gpunet::testing::TokenServer;

/// A port that was free a moment ago on 127.0.0.1.
uint16_t FreePort() {
  TokenServer probe("127.0.0.1", 0, "x");
  return probe.Port();
}

class PodmanNetwork : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!PodmanUnavailableReason().empty() || !EgressUnavailableReason().empty()) return;
    s_tmp.emplace(gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-podnet"});
    s_dir = s_tmp->Path();
    PodmanOptions opts;
    opts.config_dir = s_dir + "/conf";
    opts.cgroup_parent = "/gpunet-podman-nettest";
    opts.userns_base = 1'700'000'000u + static_cast<uint32_t>(::getpid() % 1000) * 65536u;
    auto b = PodmanBackend::Create(opts);
    if (!b) return;
    s_backend = new PodmanBackend(std::move(*b));
    s_image = "localhost/gpunet-nettest-busybox:" + std::to_string(::getpid());
    if (!gpunet::testing::MakeBusyboxImage(*s_backend, s_dir, s_image)) s_image.clear();
  }
  static void TearDownTestSuite() {
    if (s_backend != nullptr && !s_image.empty()) (void)s_backend->RemoveImage(s_image);
    delete s_backend;
    s_backend = nullptr;
    s_tmp.reset();
  }

  void SetUp() override {
    if (auto why = PodmanUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = EgressUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NE(s_backend, nullptr) << "podman backend could not be created";
    ASSERT_FALSE(s_image.empty()) << "busybox image could not be built";
    m_host_addr = HostNonLoopbackAddress();
    ASSERT_FALSE(m_host_addr.empty());
    m_loop = std::make_unique<TokenServer>("127.0.0.1", 0, "HOSTLOOP");
    m_addr = std::make_unique<TokenServer>(m_host_addr, 0, "HOSTADDR");
    ASSERT_EQ(TcpConnectRead("127.0.0.1", m_loop->Port()).data, "HOSTLOOP");
    ASSERT_EQ(TcpConnectRead(m_host_addr, m_addr->Port()).data, "HOSTADDR");
    m_run_dir = s_dir + "/run-" + std::to_string(s_counter);
    m_out_dir = s_dir + "/out-" + std::to_string(s_counter);
    ++s_counter;
    fs::create_directories(m_run_dir);
    fs::create_directories(m_out_dir);
  }

  std::string ProbeScript() const {
    return gpunet::testing::HostProbeScript(m_host_addr, m_loop->Port(), m_addr->Port(), "nc");
  }

  WorkloadSpec Spec(NetworkMode mode, const std::string& script) {
    WorkloadSpec spec;
    spec.id = "pnet-" + std::to_string(::getpid()) + "-" + std::to_string(s_counter);
    spec.backend = Backend::kPodman;
    spec.image = s_image;
    spec.network = mode;
    spec.command = {"/bin/sh", "-c", script};
    spec.resources.memory_bytes = 256ull << 20;
    return spec;
  }

  base::Result<PodmanExit> Run(const WorkloadSpec& spec, std::string* out) {
    return s_backend->Run(spec, {}, m_out_dir, m_run_dir,
                          [out](std::string_view, std::string_view d) { out->append(d); });
  }

  void ExpectNoHostToken(const std::string& out) {
    EXPECT_EQ(out.find("HOSTLOOP"), std::string::npos) << out;
    EXPECT_EQ(out.find("HOSTADDR"), std::string::npos) << out;
    EXPECT_NE(out.find("probe 10.0.2.2"), std::string::npos) << "probes did not run: " << out;
  }

  static inline std::optional<gpunet::testing::TempDir> s_tmp;
  static inline std::string s_dir, s_image;
  static inline PodmanBackend* s_backend = nullptr;
  static inline int s_counter = 0;
  std::string m_host_addr, m_run_dir, m_out_dir;
  std::unique_ptr<TokenServer> m_loop, m_addr;
};

TEST_F(PodmanNetwork, NoneCannotReachTheHost) {
  std::string out;
  // The same nc reaches a service inside the container: the probes can succeed.
  std::string script =
      "(echo INSIDE | nc -l -p 7000) & sleep 0.5; echo \"self [$(nc -w 2 127.0.0.1 7000)]\"; ";
  auto r = Run(Spec(NetworkMode::kNone, script + ProbeScript()), &out);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_NE(out.find("self [INSIDE]"), std::string::npos) << out;
  ExpectNoHostToken(out);
  EXPECT_EQ(out.find("tap0"), std::string::npos) << out;
}

TEST_F(PodmanNetwork, EgressHasTapButCannotReachTheHost) {
  std::string out;
  auto r = Run(Spec(NetworkMode::kEgress, ProbeScript() + "cat /etc/resolv.conf"), &out);
  ASSERT_TRUE(r) << r.error().ToString();
  ExpectNoHostToken(out);
  EXPECT_NE(out.find("tap0"), std::string::npos) << out;
  EXPECT_NE(out.find("nameserver 10.0.2.3"), std::string::npos) << out;
}

TEST_F(PodmanNetwork, PortsForwardsTheListedPortOnlyAndCannotReachTheHost) {
  uint16_t host_port = FreePort();
  // Serve one connection on 8000 (listed) and keep 8001 (unlisted) open meanwhile.
  std::string script =
      "(echo UNLISTED | nc -l -p 8001) & echo LISTED | nc -l -p 8000; " + ProbeScript();
  WorkloadSpec spec = Spec(NetworkMode::kPorts, script);
  spec.ports = {PortSpec{8000, host_port}};
  std::string out;
  auto run = std::async(std::launch::async, [&] { return Run(spec, &out); });
  // The forwarder listens once the container exists; retry until the workload answers.
  std::string got;
  for (int i = 0; i < 120 && got.empty(); ++i) {
    if (run.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) break;
    got = TcpConnectRead("127.0.0.1", host_port).data;
    if (got.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(got, "LISTED\n");
  auto r = run.get();
  ASSERT_TRUE(r) << r.error().ToString();
  ExpectNoHostToken(out);
  EXPECT_EQ(out.find("UNLISTED"), std::string::npos) << out;
  // Torn down with the workload.
  EXPECT_FALSE(TcpConnectRead("127.0.0.1", host_port).connected);
}

}  // namespace
}  // namespace gpunet::runtime
