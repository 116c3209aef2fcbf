// Isolation tests of the workload sandbox (issue 6 item 8): each test starts real
// workloads under bubblewrap with real cgroups and checks, from outside and from
// inside, what they can and cannot do. Needs root (the provider runs as root).
// Network isolation is tested by network_test (sandbox-net).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "integration/sandbox/lifecycle_checks.h"
#include "integration/sandbox/self_supervisor.h"
#include "runtime/cgroup.h"
#include "runtime/host_probe.h"
#include "runtime/runtime.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

// The test binary doubles as the supervisor (self_supervisor.h).

using gpunet::testing::Finished;

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "sandbox isolation tests need root";
    m_tmp.emplace(
        gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-sbx", .mode = 0711});
    m_dir = m_tmp->Path();
    m_options = gpunet::testing::SelfSupervisedOptions(m_dir, 400000);
  }
  void TearDown() override {
    if (m_dir.empty()) return;
    Runtime rt(m_options);
    for (const auto& id : rt.List()) EXPECT_TRUE(rt.Remove(id).has_value()) << id;
    // Nothing the sandbox left behind (a mount, a busy file) may keep it.
    const std::error_code removed = m_tmp->Remove();
    EXPECT_FALSE(removed) << m_dir << ": " << removed.message();
  }

  WorkloadSpec Spec(const std::string& name, std::vector<std::string> command) {
    WorkloadSpec s;
    s.id = name + "-" + std::to_string(::getpid());
    s.lease_id = "lease-" + name;
    s.command = std::move(command);
    s.resources.memory_bytes = 256ull << 20;
    s.resources.cpu_millis = 1000;
    s.resources.pids_max = 64;
    s.resources.disk_bytes = 32ull << 20;
    s.resources.shm_bytes = 8ull << 20;
    return s;
  }
  static std::vector<std::string> Sh(const std::string& script) {
    return {"/bin/sh", "-c", script};
  }

  Finished RunToEnd(const WorkloadSpec& spec) { return gpunet::testing::RunToEnd(m_options, spec); }

  std::optional<gpunet::testing::TempDir> m_tmp;  // made once the test knows it runs
  std::string m_dir;
  RuntimeOptions m_options;
};

bool ProcessGone(pid_t pid) {
  // A zombie is not a running process either.
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return true;
  size_t p = line.rfind(')');
  return p != std::string::npos && p + 2 < line.size() && line[p + 2] == 'Z';
}

std::string WorkloadCgroupProcs(const RuntimeOptions& o, const std::string& id) {
  HostCapabilities caps = Probe();
  // As Runtime::Start resolves them: the defaults get the state dir's own scope.
  auto parents = o.cgroup_parents.empty()
                     ? ScopeCgroupParents(DefaultCgroupParents(caps), o.state_dir)
                     : o.cgroup_parents;
  WorkloadCgroups cg(caps, parents, id);
  for (const char* k : {"pids", "freezer", "memory", kCgroupV2Key})
    if (parents.contains(k)) return cg.Dir(k, "workload") + "/cgroup.procs";
  return "";
}

// ---- what the workload cannot reach ---------------------------------------------

TEST_F(SandboxTest, CannotReadProviderKeyOrHome) {
  // Stand-ins for the provider's key file: in root's home and in the host's /tmp.
  std::string home_key = "/root/.gpunet-sandbox-test-key-" + std::to_string(::getpid());
  std::string tmp_key = m_dir + "/provider.key";
  for (const auto& p : {home_key, tmp_key}) {
    std::ofstream(p) << "PROVIDER-SECRET-KEY-MATERIAL\n";
    ::chmod(p.c_str(), 0644);  // even world-readable, it must stay out of reach
  }
  auto f = RunToEnd(
      Spec("keys", Sh("cat " + home_key + " " + tmp_key + " /etc/shadow 2>&1; ls -a /root /home " +
                      m_dir + " 2>&1; ls /etc; echo done")));
  ::unlink(home_key.c_str());
  EXPECT_EQ(f.out.find("PROVIDER-SECRET"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("done"), std::string::npos) << f.out << f.err;
  EXPECT_NE(f.out.find("No such file"), std::string::npos);
  EXPECT_EQ(f.out.find("shadow\n"), std::string::npos) << "host /etc is bound whole:\n" << f.out;
}

TEST_F(SandboxTest, CannotSeeHostProcessesAndRunsAsItsOwnUid) {
  auto f = RunToEnd(Spec("procs", Sh("ls /proc | grep -c '^[0-9]*$'; id -u; hostname; cat "
                                     "/proc/1/cmdline | tr '\\0' ' '; echo")));
  std::istringstream in(f.out);
  int pids = 0;
  std::string uid, host;
  in >> pids >> uid >> host;
  EXPECT_GE(pids, 1);
  EXPECT_LE(pids, 6) << "the sandbox sees host processes:\n" << f.out;
  EXPECT_EQ(uid, std::to_string(m_options.uid_first)) << f.out;  // never root inside either
  EXPECT_EQ(host, "gpunet");
  // pid 1 is bwrap's own (whose argv names the sandbox's init, /.gpunet/init), never
  // the host's init.
  EXPECT_NE(f.out.find("bwrap"), std::string::npos) << f.out;
  EXPECT_EQ(f.out.find("/sbin/init"), std::string::npos) << f.out;
  EXPECT_EQ(f.out.find("systemd"), std::string::npos) << f.out;
}

TEST_F(SandboxTest, NoProviderEnvironmentAndNoInheritedFds) {
  ::setenv("PROVIDER_SECRET_TOKEN", "hunter2", 1);
  int leaked = ::open("/etc/hostname", O_RDONLY);  // no O_CLOEXEC on purpose
  ASSERT_GE(leaked, 0);
  ASSERT_EQ(::dup2(leaked, 77), 77);
  auto spec = Spec("envfd", Sh("env; echo FDS; ls /proc/self/fd; grep -E "
                               "'NoNewPrivs|CapEff|CapBnd|Seccomp:' /proc/self/status"));
  spec.env["TENANT_VAR"] = "from-spec";
  auto f = RunToEnd(spec);
  ::unsetenv("PROVIDER_SECRET_TOKEN");
  ::close(77);
  ::close(leaked);
  EXPECT_EQ(f.out.find("hunter2"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("TENANT_VAR=from-spec"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("GPUNET_LEASE_ID=lease-envfd"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("GPUNET_OUTPUT_DIR=/outputs"), std::string::npos);
  EXPECT_NE(f.out.find("HOME=/work"), std::string::npos);
  std::string fds = f.out.substr(f.out.find("FDS\n") + 4);
  std::istringstream in(fds);
  std::string fd;
  std::vector<std::string> seen;
  while (in >> fd && std::isdigit(static_cast<unsigned char>(fd[0]))) seen.push_back(fd);
  // 0-2, plus the directory ls itself opened to list /proc/self/fd.
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "3"})) << f.out;
  EXPECT_NE(f.out.find("NoNewPrivs:\t1"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("CapEff:\t0000000000000000"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("CapBnd:\t0000000000000000"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("Seccomp:\t2"), std::string::npos) << f.out;
}

TEST_F(SandboxTest, SeccompDeniesNamespacesMountPtraceKeyringsIoUring) {
  if (!Probe().seccomp) GTEST_SKIP() << "kernel without seccomp";
#if !defined(__x86_64__)
  GTEST_SKIP() << "syscall numbers below are x86_64";
#endif
  // Each line: name, then the errno name (or OK). Without the filter, ptrace(TRACEME),
  // keyctl and io_uring_setup would succeed and unshare(CLONE_NEWUSER) would fail with
  // ENOSPC (--disable-userns), so EPERM on each is the filter's doing.
  const char* script = R"(
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def report(name, rc):
    e = ctypes.get_errno()
    print(name, 'OK' if rc >= 0 else errno.errorcode.get(e, str(e)))
report('unshare_user', libc.unshare(0x10000000))
report('unshare_mount', libc.unshare(0x00020000))
report('unshare_net', libc.unshare(0x40000000))
report('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
report('ptrace', libc.ptrace(0, 0, None, None))
report('keyctl', libc.syscall(250, 0, -3, 0))
report('io_uring_setup', libc.syscall(425, 1, ctypes.create_string_buffer(120)))
report('bpf', libc.syscall(321, 0, None, 0))
report('perf_event_open', libc.syscall(298, None, 0, -1, -1, 0))
report('userfaultfd', libc.syscall(323, 0))
report('clone_newpid', libc.syscall(56, 0x20000000 | 17, None, None, None, None))
report('clone3', libc.syscall(435, None, 0))
report('unshare_files', libc.unshare(0x00000400))
)";
  auto f = RunToEnd(Spec("seccomp", {"/usr/bin/python3", "-c", script}));
  for (const char* name :
       {"unshare_user", "unshare_mount", "unshare_net", "mount", "ptrace", "keyctl",
        "io_uring_setup", "bpf", "perf_event_open", "userfaultfd", "clone_newpid"})
    EXPECT_NE(f.out.find(std::string(name) + " EPERM"), std::string::npos) << name << "\n"
                                                                           << f.out << f.err;
  EXPECT_NE(f.out.find("clone3 ENOSYS"), std::string::npos) << f.out;
  // The filter is a deny list by flag: harmless unshare flags still work.
  EXPECT_NE(f.out.find("unshare_files OK"), std::string::npos) << f.out;
}

// ---- limits ------------------------------------------------------------------------

TEST_F(SandboxTest, KilledAtMemoryLimitWithReason) {
  auto spec = Spec("oom", {"/usr/bin/python3", "-c",
                           "x = bytearray(b'\\x01') * (512 << 20); print('survived')"});
  spec.resources.memory_bytes = 64ull << 20;
  auto f = RunToEnd(spec);
  EXPECT_EQ(f.status.reason, ExitReason::kOutOfMemory) << f.status.message << f.err;
  EXPECT_EQ(f.status.exit_code, 137);
  EXPECT_GE(f.status.counters.oom_kills, 1u);
  EXPECT_EQ(f.status.message, "killed: out of memory (limit 64M)");
  EXPECT_EQ(f.out.find("survived"), std::string::npos);
}

TEST_F(SandboxTest, BlockedAtPidsLimitWithReason) {
  auto spec =
      Spec("pids", Sh("i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-forked"));
  spec.resources.pids_max = 16;
  auto f = RunToEnd(spec);
  EXPECT_EQ(f.status.reason, ExitReason::kPidsLimit) << f.status.message << "\n" << f.out << f.err;
  EXPECT_GE(f.status.counters.pids_max_hits, 1u);
  EXPECT_NE(f.status.exit_code, 0);
  EXPECT_NE(f.status.message.find("process limit reached (limit 16"), std::string::npos)
      << f.status.message;
  EXPECT_EQ(f.out.find("all-forked"), std::string::npos);
}

TEST_F(SandboxTest, DiskQuotaGivesEnospcAndFilesBelongToTheWorkloadUid) {
  auto spec = Spec(
      "disk",
      Sh("dd if=/dev/zero of=/outputs/big bs=1M count=64 2>&1; echo rc=$?; df -k /work | tail -1"));
  spec.resources.disk_bytes = 16ull << 20;
  Runtime rt(m_options);
  auto info = rt.Start(spec);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  std::string out;
  auto st = rt.Follow(spec.id, [&](std::string_view, std::string_view d) { out.append(d); });
  ASSERT_TRUE(st.has_value());
  EXPECT_NE(out.find("No space left on device"), std::string::npos) << out;
  EXPECT_EQ(out.find("rc=0"), std::string::npos) << out;
  struct stat s {};
  ASSERT_EQ(::stat((info->outputs_dir + "/big").c_str(), &s), 0);
  EXPECT_LE(static_cast<uint64_t>(s.st_size), 16ull << 20);
  EXPECT_EQ(s.st_uid, info->uid);  // written as the workload's uid, never as root
  EXPECT_NE(s.st_uid, 0u);
}

TEST_F(SandboxTest, RefusesToStartWhenLimitsCannotBeEnforcedUnlessAllowed) {
  HostCapabilities caps = Probe();
  auto parents = DefaultCgroupParents(caps);
  // Take the cpu and pids hierarchies away: the runtime must notice and refuse.
  parents.erase("cpu");
  parents.erase("pids");
  if (parents.contains(kCgroupV2Key))
    GTEST_SKIP() << "v2 host: cpu/pids live in the one unified parent";
  m_options.cgroup_parents = parents;
  Runtime rt(m_options);
  auto spec = Spec("unenf", Sh("echo ran"));
  auto refused = rt.Start(spec);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("cpu limit"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("pids limit"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(rt.Attach(spec.id).has_value()) << "a refused start leaves no run dir";
  spec.allow_unenforced_limits = true;
  auto f = RunToEnd(spec);
  EXPECT_NE(f.out.find("ran"), std::string::npos);
}

// ---- GPUs ----------------------------------------------------------------------------

TEST_F(SandboxTest, OnlyAllocatedGpuDevicesOpen) {
  if (Probe().devices.how != Enforcement::kCgroupV1)
    GTEST_SKIP()
        << "device cgroup v1 not available: a denied node is simply not bound on this host";
  // Fake NVIDIA nodes (major 195): no driver here, so an allowed one opens to ENXIO;
  // the one not allocated is bound too, and the devices cgroup must answer EPERM.
  std::string dev = m_dir + "/dev";
  ASSERT_EQ(::mkdir(dev.c_str(), 0711), 0);
  for (int minor : {0, 1}) {
    std::string node = dev + "/nvidia" + std::to_string(minor);
    ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0666, makedev(195, minor)), 0)
        << std::strerror(errno);
    ::chmod(node.c_str(), 0666);
  }
  m_options.device_dir = dev;
  m_options.gpu_minors = {{"GPU-aaaa-0", 0}, {"GPU-bbbb-1", 1}};
  m_options.extra_dev_binds = {{dev + "/nvidia1", "/dev/nvidia1"}};
  auto spec = Spec("gpu", {"/usr/bin/python3", "-c", R"(
import errno, os
for n in ('/dev/nvidia0', '/dev/nvidia1'):
    try:
        os.close(os.open(n, os.O_RDWR)); print(n, 'OPENED')
    except OSError as e:
        print(n, errno.errorcode[e.errno])
print('CVD', os.environ.get('CUDA_VISIBLE_DEVICES'))
print('GPN', os.environ.get('GPUNET_GPUS_PER_NODE'))
)"});
  spec.gpu_uuids = {"GPU-aaaa-0"};
  auto f = RunToEnd(spec);
  EXPECT_NE(f.out.find("/dev/nvidia0 ENXIO"), std::string::npos) << f.out << f.err;
  EXPECT_NE(f.out.find("/dev/nvidia1 EPERM"), std::string::npos) << f.out << f.err;
  EXPECT_NE(f.out.find("CVD GPU-aaaa-0"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("GPN 1"), std::string::npos) << f.out;

  // An unknown UUID is refused before anything starts.
  auto bad = Spec("gpubad", Sh("true"));
  bad.gpu_uuids = {"GPU-not-here"};
  auto r = Runtime(m_options).Start(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("GPU-not-here"), std::string::npos) << r.error().message;
}

// ---- outputs ------------------------------------------------------------------------

TEST_F(SandboxTest, OutputsReaderRefusesLinksOutOfTheDirectory) {
  auto spec =
      Spec("outputs",
           Sh("cd /outputs && echo result > ok.txt && mkdir sub && echo deep > sub/f && "
              "ln -s /etc/shadow shadow && ln -s ../../../../../../ up && ln -s /etc sub/etc && "
              "ln -s ok.txt alias && mkfifo fifo && echo wrote"));
  auto f = RunToEnd(spec);
  ASSERT_NE(f.out.find("wrote"), std::string::npos) << f.out << f.err;
  auto reader = Runtime(m_options).Outputs(spec.id);
  ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
  EXPECT_EQ(reader->ReadFile("ok.txt", 1024).value_or("?"), "result\n");
  EXPECT_EQ(reader->ReadFile("sub/f", 1024).value_or("?"), "deep\n");
  for (const char* evil : {"shadow", "up/etc/passwd", "sub/etc/passwd", "alias", "../state",
                           "/etc/passwd", "sub/../../disk.img"}) {
    auto r = reader->ReadFile(evil, 1 << 20);
    ASSERT_FALSE(r.has_value()) << evil << " was read";
    EXPECT_EQ(r.error().code, base::ErrorCode::kPermissionDenied)
        << evil << ": " << r.error().ToString();
  }
  auto link = reader->ReadFile("shadow", 1024);
  EXPECT_NE(link.error().message.find("symbolic link"), std::string::npos) << link.error().message;
  auto fifo = reader->ReadFile("fifo", 1024);  // must not block
  ASSERT_FALSE(fifo.has_value());
  EXPECT_NE(fifo.error().message.find("not a regular file"), std::string::npos);
  auto list = reader->List();
  ASSERT_TRUE(list.has_value());
  std::map<std::string, OutputEntry::Type> types;
  for (const auto& e : *list) types[e.name] = e.type;
  EXPECT_EQ(types["shadow"], OutputEntry::Type::kSymlink);
  EXPECT_EQ(types["ok.txt"], OutputEntry::Type::kFile);
  EXPECT_EQ(types["sub"], OutputEntry::Type::kDirectory);
  EXPECT_FALSE(reader->List("up").has_value());
}

// ---- supervisor and teardown ---------------------------------------------------------

TEST_F(SandboxTest, NothingOutlivesTeardown) {
  // Background child, double fork, setsid'd daemon, then the main process blocks.
  auto spec =
      Spec("teardown", Sh("sleep 1000 & (sleep 1001 &) ; setsid sleep 1002 & "
                          "sh -c 'sleep 1003 & exec sleep 1004' & echo started; exec sleep 1005"));
  Runtime rt(m_options);
  ASSERT_TRUE(rt.Start(spec).has_value());
  std::string procs = WorkloadCgroupProcs(m_options, spec.id);
  ASSERT_FALSE(procs.empty());
  std::vector<pid_t> pids;
  for (int i = 0; i < 500; ++i) {
    pids.clear();
    std::ifstream in(procs);
    pid_t p;
    while (in >> p) pids.push_back(p);
    if (pids.size() >= 8) break;  // bwrap x2 + six sleeps
    ::usleep(10000);
  }
  ASSERT_GE(pids.size(), 8u);
  auto st = rt.Stop(spec.id);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->reason, ExitReason::kStopped);
  for (pid_t p : pids) EXPECT_TRUE(ProcessGone(p)) << "pid " << p << " outlived teardown";
  struct stat s {};
  EXPECT_NE(::stat(procs.c_str(), &s), 0) << "cgroup still exists: " << procs;

  // The same when the main process simply exits and leaves descendants behind.
  auto spec2 = Spec("orphans", Sh("(setsid sleep 1000 &); sleep 1001 & echo bye"));
  auto f = RunToEnd(spec2);
  EXPECT_EQ(f.status.exit_code, 0);
  EXPECT_EQ(f.status.reason, ExitReason::kExited);
  std::string procs2 = WorkloadCgroupProcs(m_options, spec2.id);
  EXPECT_NE(::stat(procs2.c_str(), &s), 0) << "cgroup still exists: " << procs2;
  ASSERT_TRUE(rt.Remove(spec.id).has_value());
  ASSERT_TRUE(rt.Remove(spec2.id).has_value());
  EXPECT_FALSE(rt.Attach(spec.id).has_value());
}

TEST_F(SandboxTest, KeepsRunningWhenTheCallerIsKilledAndIsReattached) {
  gpunet::testing::ExpectReattachedAfterTheCallerIsKilled(
      m_options, Spec("reattach", Sh(gpunet::testing::kReattachScript)));
}

TEST_F(SandboxTest, StopSendsSigtermThenKillsAfterTheGrace) {
  // Every process of the workload gets SIGTERM; the kill is the cgroup's.
  Runtime rt(m_options);
  gpunet::testing::ExpectStopGivesTheGraceThenKills(
      rt,
      [&](const std::string& name, const std::string& script) { return Spec(name, Sh(script)); });
}

TEST_F(SandboxTest, LogsAreCappedAndRotated) {
  auto spec = Spec(
      "logs", {"/usr/bin/python3", "-c", "import sys\nfor i in range(2000): print('%09d' % i)"});
  spec.resources.log_bytes_max = 4096;
  auto f = RunToEnd(spec);
  EXPECT_EQ(f.status.exit_code, 0);
  const std::string run_dir = Runtime(m_options).RunDir(spec.id).value();
  struct stat cur {
  }, old{};
  ASSERT_EQ(::stat((run_dir + "/stdout.log").c_str(), &cur), 0);
  ASSERT_EQ(::stat((run_dir + "/stdout.log.1").c_str(), &old), 0);
  EXPECT_LE(cur.st_size, 4096);
  EXPECT_EQ(old.st_size, 4096);
  // What the cap keeps is exactly the newest bytes: .1 then the current file are the
  // tail of the output. (A follower that falls more than one rotation behind loses
  // the middle: that is what a cap means.)
  std::string full;
  for (int i = 0; i < 2000; ++i) {
    char line[16];
    std::snprintf(line, sizeof line, "%09d\n", i);
    full += line;
  }
  std::ifstream a(run_dir + "/stdout.log.1"), b(run_dir + "/stdout.log");
  std::string kept = std::string(std::istreambuf_iterator<char>(a), {}) +
                     std::string(std::istreambuf_iterator<char>(b), {});
  ASSERT_LE(kept.size(), 8192u);
  EXPECT_EQ(full.substr(full.size() - kept.size()), kept);
  EXPECT_TRUE(f.out.ends_with("000001999\n"));
  EXPECT_LE(f.out.size(), full.size());
}

TEST_F(SandboxTest, StartErrorsAreClear) {
  Runtime rt(m_options);
  auto spec = Spec("dup", Sh("sleep 1000"));
  ASSERT_TRUE(rt.Start(spec).has_value());
  auto again = rt.Start(spec);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, base::ErrorCode::kAlreadyExists);
  EXPECT_TRUE(rt.Remove(spec.id).has_value());
  auto missing = Spec("nocmd", {"/no/such/program"});
  auto f = RunToEnd(missing);
  EXPECT_NE(f.status.exit_code, 0);
  EXPECT_NE(f.err.find("/no/such/program"), std::string::npos) << f.err;
}

// ---- cgroup v2 paths (run where the host has them) ------------------------------------

TEST_F(SandboxTest, CgroupV2MemoryOomAndPidsEvents) {
  HostCapabilities caps = Probe();
  if (caps.memory.how != Enforcement::kCgroupV2 || caps.pids.how != Enforcement::kCgroupV2)
    GTEST_SKIP()
        << "cgroup v2 memory.max / pids.max / memory.events: memory and pids are not on v2 here ("
        << caps.cgroups.Describe() << ")";
  auto spec = Spec("v2oom", {"/usr/bin/python3", "-c", "x = bytearray(b'\\x01') * (512 << 20)"});
  spec.resources.memory_bytes = 64ull << 20;
  auto f = RunToEnd(spec);
  EXPECT_EQ(f.status.reason, ExitReason::kOutOfMemory) << f.status.message;
  auto pspec = Spec("v2pids", Sh("i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done"));
  pspec.resources.pids_max = 16;
  auto p = RunToEnd(pspec);
  EXPECT_EQ(p.status.reason, ExitReason::kPidsLimit) << p.status.message;
}

TEST_F(SandboxTest, CgroupV2KillFile) {
  HostCapabilities caps = Probe();
  if (caps.freezer.how != Enforcement::kCgroupV2)
    GTEST_SKIP() << "cgroup v2 cgroup.kill teardown: the freezer is cgroup v1 here";
  auto spec = Spec("v2kill", Sh("(setsid sleep 1000 &); echo started; exec sleep 1000"));
  Runtime rt(m_options);
  ASSERT_TRUE(rt.Start(spec).has_value());
  auto st = rt.Stop(spec.id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->reason, ExitReason::kStopped);
}

}  // namespace
}  // namespace gpunet::runtime
