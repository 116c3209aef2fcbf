// Nothing of the tenant's reaches a host-side process (issue 14 item 1). Every
// host-side process of a workload (the supervisor, bwrap, slirp4netns, podman,
// conmon) starts in the host's network and mount namespaces, before any namespace
// or seccomp filter of the sandbox exists: a variable that the dynamic loader or
// glibc obeys there would run the tenant's code past the egress firewall.
//
// The tests name a recording library (netns_recorder.c) in each loader variable of
// a workload, in every network mode, and check that it ran only inside the sandbox;
// they read /proc/PID/environ of each host-side process of a running workload and
// compare it with the fixed allowlist; and they look for the tenant's values in
// every process's command line. Needs root and bubblewrap, as the provider has.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "integration/sandbox/self_supervisor.h"
#include "integration/sandbox_net/busybox_image.h"
#include "runtime/network.h"
#include "runtime/podman.h"
#include "runtime/runtime.h"
#include "runtime/sys_util.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

namespace fs = std::filesystem;

/// What the runtime gives every host-side process, written out here rather than
/// taken from HostEnvironment(), so that a change to the allowlist shows in review.
const std::vector<std::string> kAllowlist = {"LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};

/// glibc's unsecure variables (sysdeps/generic/unsecvars.h, x86_64 addition
/// included), which a setuid program's loader drops, and a few more it obeys.
const std::vector<std::string> kLoaderVariables = {"GCONV_PATH",
                                                   "GETCONF_DIR",
                                                   "GLIBC_TUNABLES",
                                                   "HOSTALIASES",
                                                   "LD_AUDIT",
                                                   "LD_DEBUG",
                                                   "LD_DEBUG_OUTPUT",
                                                   "LD_DYNAMIC_WEAK",
                                                   "LD_HWCAP_MASK",
                                                   "LD_LIBRARY_PATH",
                                                   "LD_ORIGIN_PATH",
                                                   "LD_PRELOAD",
                                                   "LD_PROFILE",
                                                   "LD_SHOW_AUXV",
                                                   "LD_USE_LOAD_BIAS",
                                                   "LOCALDOMAIN",
                                                   "LOCPATH",
                                                   "MALLOC_TRACE",
                                                   "NIS_PATH",
                                                   "NLSPATH",
                                                   "RESOLV_HOST_CONF",
                                                   "RES_OPTIONS",
                                                   "TMPDIR",
                                                   "TZDIR",
                                                   "LD_PREFER_MAP_32BIT_EXEC",
                                                   "LD_BIND_NOW",
                                                   "LD_BIND_NOT",
                                                   "MALLOC_CHECK_"};

std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, '\0')) out.push_back(cur);
  return out;
}

std::string Netns(const std::string& pid) {
  std::error_code ec;
  auto target = fs::read_symlink("/proc/" + pid + "/ns/net", ec);
  return ec ? "" : target.string();
}

struct Process {
  std::string pid;
  std::string comm;
  std::string parent;
  std::string netns;
  std::vector<std::string> environ;
  std::string cmdline;  ///< NULs kept
};

/// Every process on the host, read once (processes that end meanwhile are skipped).
std::map<std::string, Process> AllProcesses() {
  std::map<std::string, Process> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    Process p;
    p.pid = pid;
    std::string stat = ReadRaw("/proc/" + pid + "/stat");
    size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    p.comm = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    rest >> state >> p.parent;
    p.netns = Netns(pid);
    p.environ = SplitNul(ReadRaw("/proc/" + pid + "/environ"));
    p.cmdline = ReadRaw("/proc/" + pid + "/cmdline");
    out[pid] = std::move(p);
  }
  return out;
}

/// `root` and its descendants.
std::vector<Process> Tree(const std::map<std::string, Process>& all, const std::string& root) {
  std::vector<Process> out;
  std::set<std::string> in_tree = {root};
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& [pid, p] : all)
      if (!in_tree.contains(pid) && in_tree.contains(p.parent)) grew = in_tree.insert(pid).second;
  }
  for (const auto& pid : in_tree)
    if (all.contains(pid)) out.push_back(all.at(pid));
  return out;
}

/// The tenant's values must be in no host process's command line (world-readable in
/// /proc), and in no environment of a process in the host's network namespace.
void ExpectNoTenantValueOnTheHost(const std::map<std::string, Process>& all,
                                  const std::string& host_netns, const std::string& marker) {
  for (const auto& [pid, p] : all) {
    EXPECT_EQ(p.cmdline.find(marker), std::string::npos)
        << "the tenant's value is on the command line of " << p.comm << " (pid " << pid << ")";
    if (p.netns != host_netns) continue;  // inside a sandbox: the tenant's own processes
    for (const auto& kv : p.environ)
      EXPECT_EQ(kv.find(marker), std::string::npos)
          << p.comm << " (pid " << pid << ") runs in the host's network namespace with " << kv;
  }
}

class HostEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the sandbox runtime needs root";
    // The supervisor inherits the caller's LD_LIBRARY_PATH (the provider's, for the
    // GPU driver): none here, so every host-side process must show the allowlist.
    ::unsetenv("LD_LIBRARY_PATH");
    m_host_netns = Netns("self");
    ASSERT_FALSE(m_host_netns.empty());
    // Not under /tmp: the sandbox's own /tmp is bound over that.
    m_tmp.emplace(gpunet::testing::TempDirOptions{
        .parent = "/var/tmp", .prefix = "gpunet-henv", .mode = 0711});
    m_dir = m_tmp->Path();
    m_options = gpunet::testing::SelfSupervisedOptions(m_dir, 800000);
  }
  void TearDown() override {
    if (m_dir.empty()) return;
    Runtime rt(m_options);
    for (const auto& id : rt.List()) EXPECT_TRUE(rt.Remove(id).has_value()) << id;
    // Nothing the sandbox left behind (a mount, a busy file) may keep it.
    const std::error_code removed = m_tmp->Remove();
    EXPECT_FALSE(removed) << m_dir << ": " << removed.message();
  }

  WorkloadSpec Spec(NetworkMode mode, std::vector<std::string> command) {
    WorkloadSpec s;
    s.id = "henv-" + std::to_string(::getpid()) + "-" + std::to_string(m_counter++);
    s.network = mode;
    if (mode == NetworkMode::kPorts) s.ports = {{8080, 0}};
    s.command = std::move(command);
    s.resources.memory_bytes = 256ull << 20;
    s.resources.pids_max = 64;
    s.resources.disk_bytes = 32ull << 20;
    s.resources.shm_bytes = 8ull << 20;
    return s;
  }

  std::optional<gpunet::testing::TempDir> m_tmp;  // made once the test knows it runs
  std::string m_dir;
  std::string m_host_netns;
  RuntimeOptions m_options;
  int m_counter = 0;
};

struct ModeCase {
  NetworkMode mode;
  const char* name;
};

/// The same test in each network mode (egress skips, by name, where slirp4netns or
/// nftables is missing, as the network tests do).
class HostEnvModes : public HostEnvTest, public ::testing::WithParamInterface<ModeCase> {
 protected:
  void SetUp() override {
    HostEnvTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (auto why = EgressUnavailableReason(); Mode() == NetworkMode::kEgress && !why.empty())
      GTEST_SKIP() << why;
  }
  NetworkMode Mode() const { return GetParam().mode; }
};

INSTANTIATE_TEST_SUITE_P(EveryNetworkMode, HostEnvModes,
                         ::testing::Values(ModeCase{NetworkMode::kNone, "none"},
                                           ModeCase{NetworkMode::kEgress, "egress"},
                                           ModeCase{NetworkMode::kPorts, "ports"}),
                         [](const ::testing::TestParamInfo<ModeCase>& mode) {
                           return std::string(mode.param.name);
                         });

/// Each loader variable names a library that records where it runs. Inside the
/// sandbox it must run (else the test could not see it anywhere); in a process in
/// the host's network namespace, never.
TEST_P(HostEnvModes, LoaderVariablesNeverRunTenantCodeOnTheHost) {
  // The libraries, readable by the workload's uid, at the same path inside (bound
  // read-only) and outside; the records directory writable by every uid.
  const std::string lib = m_dir + "/lib", rec = m_dir + "/rec";
  for (const auto& d : {lib, lib + "/fake", lib + "/gconv"}) fs::create_directories(d);
  fs::copy_file(NETNS_RECORD_PRELOAD, lib + "/preload.so");
  fs::copy_file(NETNS_RECORD_AUDIT, lib + "/audit.so");
  fs::copy_file(NETNS_RECORD_LIBCAP, lib + "/fake/libcap.so.2");
  fs::copy_file(NETNS_RECORD_GCONV, lib + "/gconv/gpunetrec.so");
  std::ofstream(lib + "/gconv/gconv-modules")
      << "module GPUNETREC// INTERNAL gpunetrec 1\nmodule INTERNAL GPUNETREC// gpunetrec 1\n";
  ASSERT_EQ(std::system(("chmod -R a+rX '" + lib + "'").c_str()), 0);
  fs::create_directories(rec);
  ASSERT_EQ(::chmod(rec.c_str(), 01777), 0);
  m_options.extra_ro_binds = {{lib, lib}};
  m_options.extra_dev_binds = {{rec, rec}};  // a read-write bind

  // Inside, bwrap --version loads libcap.so.2 (the stand-in, through LD_LIBRARY_PATH)
  // and iconv loads the gconv module (through GCONV_PATH); every program loads the
  // LD_PRELOAD and LD_AUDIT libraries.
  const std::string script =
      "/usr/bin/bwrap --version >/dev/null; "
      "/usr/bin/iconv -f GPUNETREC -t UTF-8 </dev/null >/dev/null 2>&1; echo done";
  const std::vector<std::string> tags = {"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GCONV_PATH"};
  WorkloadSpec spec = Spec(Mode(), {"/bin/sh", "-c", script});
  spec.env = {{"LD_PRELOAD", lib + "/preload.so"},
              {"LD_AUDIT", lib + "/audit.so"},
              {"LD_LIBRARY_PATH", lib + "/fake"},
              {"GCONV_PATH", lib + "/gconv"},
              {"NETNS_RECORD_DIR", rec}};
  Runtime rt(m_options);
  auto info = rt.Start(spec);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  std::string out, err;
  auto st = rt.Follow(spec.id, [&](std::string_view stream, std::string_view d) {
    (stream == "stdout" ? out : err).append(d);
  });
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->exit_code, 0) << st->message << "\n" << err;
  EXPECT_NE(out.find("done"), std::string::npos) << out << err;

  std::map<std::string, int> inside;
  std::istringstream records(ReadRaw(rec + "/records"));
  for (std::string line; std::getline(records, line);) {
    std::istringstream fields(line);
    std::string tag, netns;
    fields >> tag >> netns;
    EXPECT_NE(netns, m_host_netns)
        << "tenant code ran in the host's network namespace through " << tag << ": " << line;
    if (netns != m_host_netns) ++inside[tag];
  }
  for (const auto& tag : tags)
    EXPECT_GT(inside[tag], 0) << "the library named in " << tag
                              << " never ran inside the sandbox either: the test sees nothing";
}

/// Each host-side process of a running workload has exactly the allowlist for its
/// environment, and no process shows the tenant's values.
TEST_P(HostEnvModes, HostSideProcessesSeeOnlyTheAllowlist) {
  const bool egress = Mode() == NetworkMode::kEgress;
  const std::string marker = "tenant-value-" + std::to_string(::getpid());
  WorkloadSpec spec = Spec(Mode(), {"/bin/sleep", "1000"});
  for (const auto& name : kLoaderVariables) spec.env[name] = marker + "-" + name;
  spec.env["API_TOKEN"] = marker + "-secret";
  Runtime rt(m_options);
  auto info = rt.Start(spec);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  ASSERT_NE(info->supervisor_pid, 0);

  // Start returns once the network is attached and the command released: every
  // host-side process of the workload exists now. The command itself is up once
  // bwrap's child has become `sleep`.
  const std::string supervisor = std::to_string(info->supervisor_pid);
  auto sleeping = [&](const std::map<std::string, Process>& all) {
    return std::ranges::any_of(Tree(all, supervisor), [&](const Process& p) {
      return p.comm == "sleep" && p.netns != m_host_netns;
    });
  };
  auto all = AllProcesses();
  while (!sleeping(all)) {
    auto ended = rt.Poll(spec.id);
    ASSERT_TRUE(ended.has_value() && !ended->has_value()) << "the workload ended early";
    SleepMs(10);
    all = AllProcesses();
  }
  std::set<std::string> host_side;
  for (const auto& p : Tree(all, supervisor)) {
    if (p.netns != m_host_netns) continue;  // the sandbox's own processes
    host_side.insert(p.comm);
    EXPECT_EQ(p.environ, kAllowlist) << p.comm << " (pid " << p.pid << ")";
  }
  // The supervisor (this binary), bwrap, and in egress mode slirp4netns.
  std::set<std::string> expected = {"bwrap", all.at(supervisor).comm};
  if (egress) expected.insert("slirp4netns");
  EXPECT_EQ(host_side, expected);
  ExpectNoTenantValueOnTheHost(all, m_host_netns, marker);

  // The control: inside, the workload does have its variables.
  bool seen_inside = false;
  for (const auto& [pid, p] : all) {
    if (p.comm != "sleep" || p.netns == m_host_netns) continue;
    for (const auto& kv : p.environ) seen_inside |= kv == "API_TOKEN=" + marker + "-secret";
  }
  EXPECT_TRUE(seen_inside) << "the workload did not get its own environment";
  auto stopped = rt.Stop(spec.id);
  EXPECT_TRUE(stopped.has_value()) << stopped.error().ToString();
}

/// podman and conmon run on the host, conmon for as long as the container: the
/// tenant's variables reach the container through a root-only env file, and neither
/// process shows them.
TEST_F(HostEnvTest, PodmanAndConmonSeeNoTenantValue) {
  if (auto why = PodmanUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  PodmanOptions opts;
  opts.config_dir = m_dir + "/podman-conf";
  opts.cgroup_parent = "/gpunet-henv-test";
  opts.userns_base = 1'700'000'000u + static_cast<uint32_t>(::getpid() % 1000) * 65536u;
  auto backend = PodmanBackend::Create(opts);
  ASSERT_TRUE(backend.has_value()) << backend.error().ToString();
  const std::string image = "localhost/gpunet-henv-busybox:" + std::to_string(::getpid());
  ASSERT_TRUE(gpunet::testing::MakeBusyboxImage(*backend, m_dir, image));
  const std::string run = m_dir + "/podman-run", outputs = m_dir + "/podman-outputs";
  fs::create_directories(run);
  fs::create_directories(outputs);

  const std::string marker = "tenant-value-" + std::to_string(::getpid());
  WorkloadSpec spec =
      Spec(NetworkMode::kNone, {"/bin/sh", "-c",
                                "env > /outputs/env; "
                                "while [ ! -e /outputs/stop ]; do sleep 0.05; done"});
  spec.backend = Backend::kPodman;
  spec.image = image;
  std::vector<std::string> env = {"API_TOKEN=" + marker + "-secret"};
  for (const auto& name : kLoaderVariables) env.push_back(name + "=" + marker + "-" + name);
  auto ran = std::async(std::launch::async, [&] {
    return backend->Run(spec, env, outputs, run, [](std::string_view, std::string_view) {});
  });
  // The container has started once its env dump is complete (it then waits for us).
  while (ReadRaw(outputs + "/env").find("API_TOKEN=") == std::string::npos &&
         ran.wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout) {
  }
  auto all = AllProcesses();
  std::fstream(outputs + "/stop", std::ios::out).put('x');
  auto result = ran.get();
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->exit_code, 0) << result->message;
  (void)backend->RemoveImage(image);

  EXPECT_NE(ReadRaw(outputs + "/env").find("API_TOKEN=" + marker + "-secret"), std::string::npos)
      << "the container did not get its environment";
  EXPECT_FALSE(fs::exists(run + "/env")) << "the env file outlived podman create";
  std::vector<std::string> podman_env = backend->PodmanEnv();
  int podman_seen = 0, conmon_seen = 0;
  for (const auto& [pid, p] : all) {
    if (p.comm == "podman" && p.cmdline.find(spec.id) != std::string::npos) {
      ++podman_seen;
      EXPECT_EQ(p.environ, podman_env) << "podman (pid " << pid << ")";
    }
    if (p.comm == "conmon" && p.cmdline.find(spec.id) != std::string::npos) {
      ++conmon_seen;
      // podman's environment, and what podman itself adds for conmon: HOME (podman
      // sets it when it is unset), its runtime dir and its pipes (_OCI_*, _CONTAINERS_*).
      for (const auto& kv : p.environ)
        EXPECT_TRUE(std::ranges::find(podman_env, kv) != podman_env.end() || kv == "HOME=/root" ||
                    kv.starts_with("XDG_RUNTIME_DIR=") || kv.starts_with("_OCI_") ||
                    kv.starts_with("_CONTAINERS_"))
            << "conmon (pid " << pid << ") has " << kv;
    }
  }
  EXPECT_GT(podman_seen, 0) << "podman start not found";
  EXPECT_GT(conmon_seen, 0) << "conmon not found";
  ExpectNoTenantValueOnTheHost(all, m_host_netns, marker);
}

}  // namespace
}  // namespace gpunet::runtime
