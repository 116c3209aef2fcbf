// Network isolation through the real launcher (Runtime::Start: supervisor, bwrap,
// seccomp, cgroups, AttachNetwork before the command is released), in every mode:
// a workload cannot reach a service on the host's 127.0.0.1 nor on the host's own
// address; in ports mode the host reaches the listed port and nothing else.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "integration/sandbox/self_supervisor.h"
#include "integration/sandbox_net/netns_probe.h"
#include "runtime/network.h"
#include "runtime/runtime.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

using gpunet::testing::HostNonLoopbackAddress;
using gpunet::testing::HostProbeScript;
using gpunet::testing::TcpConnectRead;
using gpunet::testing::TokenServer;

std::string BusyboxPath() {
  for (const char* p : {"/bin/busybox", "/usr/bin/busybox"})
    if (std::filesystem::exists(p)) return p;
  return {};
}

class LauncherNetwork : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox launcher needs root";
    m_busybox = BusyboxPath();
    if (m_busybox.empty())
      GTEST_SKIP() << "busybox (Debian busybox-static) not installed: no nc for probes";
    m_tmp.emplace(
        gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-lnet", .mode = 0711});
    m_dir = m_tmp->Path();
    m_options = gpunet::testing::SelfSupervisedOptions(m_dir, 600000);
    m_host_addr = HostNonLoopbackAddress();
    ASSERT_FALSE(m_host_addr.empty());
    m_loop = std::make_unique<TokenServer>("127.0.0.1", 0, "HOSTLOOP");
    m_addr = std::make_unique<TokenServer>(m_host_addr, 0, "HOSTADDR");
    ASSERT_EQ(TcpConnectRead("127.0.0.1", m_loop->Port()).data, "HOSTLOOP");
    ASSERT_EQ(TcpConnectRead(m_host_addr, m_addr->Port()).data, "HOSTADDR");
  }
  void TearDown() override {
    if (m_dir.empty()) return;
    Runtime rt(m_options);
    for (const auto& id : rt.List()) EXPECT_TRUE(rt.Remove(id).has_value()) << id;
    // Nothing the sandbox left behind (a mount, a busy file) may keep it.
    const std::error_code removed = m_tmp->Remove();
    EXPECT_FALSE(removed) << m_dir << ": " << removed.message();
  }

  WorkloadSpec Spec(NetworkMode mode, const std::string& script) {
    WorkloadSpec s;
    s.id = "lnet-" + std::to_string(::getpid()) + "-" + std::to_string(m_counter++);
    s.network = mode;
    s.command = {"/bin/sh", "-c", script};
    s.resources.memory_bytes = 256ull << 20;
    s.resources.pids_max = 64;
    s.resources.disk_bytes = 32ull << 20;
    s.resources.shm_bytes = 8ull << 20;
    return s;
  }

  std::string Probes() const {
    return HostProbeScript(m_host_addr, m_loop->Port(), m_addr->Port(), m_busybox + " nc");
  }

  /// Starts, streams stdout to the end. `while_running` runs once the workload is up.
  std::string RunToEnd(const WorkloadSpec& spec, ExitStatus* status,
                       const std::function<void(const WorkloadInfo&)>& while_running = {}) {
    Runtime rt(m_options);
    auto info = rt.Start(spec);
    EXPECT_TRUE(info.has_value()) << (info ? "" : info.error().ToString());
    if (!info) return {};
    std::string out;
    auto follow = std::async(std::launch::async, [&] {
      return rt.Follow(spec.id, [&](std::string_view stream, std::string_view d) {
        if (stream == "stdout") out.append(d);
      });
    });
    if (while_running) while_running(*info);
    auto st = follow.get();
    EXPECT_TRUE(st.has_value()) << (st ? "" : st.error().ToString());
    if (st) *status = *st;
    return out;
  }

  void ExpectNoHostToken(const std::string& out) {
    EXPECT_EQ(out.find("HOSTLOOP"), std::string::npos) << out;
    EXPECT_EQ(out.find("HOSTADDR"), std::string::npos) << out;
    EXPECT_NE(out.find("probe 10.0.2.2"), std::string::npos) << "probes did not run: " << out;
  }

  std::optional<gpunet::testing::TempDir> m_tmp;  // made once the test knows it runs
  std::string m_dir, m_busybox, m_host_addr;
  RuntimeOptions m_options;
  std::unique_ptr<TokenServer> m_loop, m_addr;
  int m_counter = 0;
};

TEST_F(LauncherNetwork, NoneIsLoopbackOnly) {
  // The probe tool works (it reaches a service inside), so its failures below count.
  std::string self = "(echo INSIDE | " + m_busybox +
                     " nc -l -p 7000) & sleep 0.5; echo \"self [$(" + m_busybox +
                     " nc -w 2 127.0.0.1 7000)]\"; ";
  ExitStatus st;
  std::string out = RunToEnd(Spec(NetworkMode::kNone, self + Probes()), &st);
  EXPECT_EQ(st.exit_code, 0) << st.message;
  EXPECT_NE(out.find("self [INSIDE]"), std::string::npos) << out;
  ExpectNoHostToken(out);
  EXPECT_EQ(out.find("tap0"), std::string::npos) << out;
  EXPECT_NE(out.find("lo"), std::string::npos) << out;
}

TEST_F(LauncherNetwork, EgressHasARouteButTheHostIsUnreachableAndTheRulesStay) {
  if (auto why = EgressUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  std::string nft = std::filesystem::exists("/usr/sbin/nft") ? "/usr/sbin/nft" : "/sbin/nft";
  std::string script =
      "cat /etc/resolv.conf; " + nft + " flush ruleset 2>/dev/null; echo \"flush=$?\"; " + Probes();
  ExitStatus st;
  std::string out = RunToEnd(Spec(NetworkMode::kEgress, script), &st);
  EXPECT_EQ(st.exit_code, 0) << st.message;
  EXPECT_NE(out.find("tap0"), std::string::npos) << out;
  EXPECT_NE(out.find("nameserver 10.0.2.3"), std::string::npos) << out;
  // nft runs inside and is refused (exit 1): no capability over its namespace.
  EXPECT_NE(out.find("flush=1"), std::string::npos) << out;
  ExpectNoHostToken(out);
}

TEST_F(LauncherNetwork, PortsReachesTheListedPortOnlyAndTheWorkloadCannotReachTheHost) {
  // 8000 is listed and served once; 8001 is served too but not listed.
  std::string script = "(echo UNLISTED | " + m_busybox + " nc -l -p 8001) & echo LISTED | " +
                       m_busybox + " nc -l -p 8000; " + Probes();
  WorkloadSpec spec = Spec(NetworkMode::kPorts, script);
  spec.ports = {PortSpec{8000, 0}};
  ExitStatus st;
  std::string got;
  uint16_t host_port = 0;
  std::string out = RunToEnd(spec, &st, [&](const WorkloadInfo& info) {
    ASSERT_EQ(info.ports.size(), 1u);
    host_port = info.ports[0].host_port;
    // nc inside may not listen yet: retry until it answers (bounded).
    for (int i = 0; i < 120 && got.empty(); ++i) {
      got = TcpConnectRead("127.0.0.1", host_port).data;
      if (got.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  EXPECT_EQ(got, "LISTED\n");
  EXPECT_EQ(st.exit_code, 0) << st.message;
  ExpectNoHostToken(out);
  EXPECT_EQ(out.find("tap0"), std::string::npos) << out;
  // After the end the forwarder is gone.
  EXPECT_FALSE(TcpConnectRead("127.0.0.1", host_port).connected);
}

}  // namespace
}  // namespace gpunet::runtime
