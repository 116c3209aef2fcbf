// Podman backend (issue 6 item 7): real podman + runc on a local image made with
// `podman import` from busybox-static (no registry), alone (PodmanBackend::Run) and
// supervised through Runtime::Start (issue 17 item 7; this binary is its own
// supervisor, self_supervisor.h). Tests that need podman skip by name with
// PodmanUnavailableReason() when the host cannot run it.
#include "runtime/podman.h"

#include "integration/sandbox/lifecycle_checks.h"
#include "integration/sandbox/self_supervisor.h"
#include "integration/sandbox_net/busybox_image.h"
#include "runtime/cgroup.h"
#include "runtime/host_probe.h"
#include "runtime/runtime.h"
#include "runtime/state_files.h"
#include "util/temp_dir.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

namespace gpunet::runtime {
namespace {

namespace fs = std::filesystem;

using gpunet::testing::FileText;

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

/// Index of `flag` in argv followed by `value`, or -1.
bool HasPair(const std::vector<std::string>& v, const std::string& flag, const std::string& value) {
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (v[i] == flag && v[i + 1] == value) return true;
  return false;
}

TEST(PodmanConf, UsesRuncCgroupfsAndUlimitsWithinTheHardLimits) {
  std::string conf = PodmanContainersConf();
  EXPECT_NE(conf.find("runtime = \"runc\""), std::string::npos) << conf;
  EXPECT_NE(conf.find("events_logger = \"file\""), std::string::npos) << conf;
  EXPECT_NE(conf.find("netns = \"none\""), std::string::npos) << conf;
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  uint64_t want = rl.rlim_max == RLIM_INFINITY ? 20000 : std::min<uint64_t>(20000, rl.rlim_max);
  EXPECT_NE(conf.find("nofile=" + std::to_string(want) + ":" + std::to_string(want)),
            std::string::npos)
      << conf;
  if (!fs::exists("/run/systemd/system")) {
    EXPECT_NE(conf.find("cgroup_manager = \"cgroupfs\""), std::string::npos);
  }
}

class PodmanBackendTest : public ::testing::Test {
 protected:
  // One backend and one imported image for the whole suite (an import takes seconds).
  static void SetUpTestSuite() {
    if (!PodmanUnavailableReason().empty()) return;
    s_tmp.emplace(gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-podman"});
    s_dir = s_tmp->Path();
    PodmanOptions opts;
    opts.config_dir = s_dir + "/conf";
    opts.cgroup_parent = "/gpunet-podman-test";
    // A range of its own per test process, far above any real uid.
    opts.userns_base = 1'600'000'000u + static_cast<uint32_t>(::getpid() % 1000) * 65536u;
    auto b = PodmanBackend::Create(opts);
    if (!b) {
      s_create_error = b.error().ToString();
      return;
    }
    s_backend = new PodmanBackend(std::move(*b));
    s_image = "localhost/gpunet-test-busybox:" + std::to_string(::getpid());
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
    ASSERT_NE(s_backend, nullptr) << s_create_error;
    ASSERT_FALSE(s_image.empty()) << "could not build the test image";
    m_backend = s_backend;
    m_image = s_image;
    m_dir = s_dir + "/t" + std::to_string(s_counter);
    fs::create_directories(m_dir + "/outputs");
    fs::create_directories(m_dir + "/run");
  }

  WorkloadSpec Spec(std::vector<std::string> cmd) {
    WorkloadSpec spec;
    spec.id = "ptest-" + std::to_string(::getpid()) + "-" + std::to_string(s_counter++);
    spec.backend = Backend::kPodman;
    spec.image = m_image;
    spec.command = std::move(cmd);
    spec.resources.memory_bytes = 128ull << 20;
    spec.resources.pids_max = 64;
    return spec;
  }

  base::Result<PodmanExit> Run(const WorkloadSpec& spec, std::string* out,
                               const std::vector<std::string>& env = {}) {
    return m_backend->Run(spec, env, m_dir + "/outputs", m_dir + "/run",
                          [out](std::string_view stream, std::string_view data) {
                            if (stream == "stdout") out->append(data);
                          });
  }

  static inline std::optional<gpunet::testing::TempDir> s_tmp;
  static inline std::string s_dir, s_image, s_create_error;
  static inline PodmanBackend* s_backend = nullptr;
  static inline int s_counter = 0;
  std::string m_dir, m_image;
  PodmanBackend* m_backend = nullptr;
};

TEST_F(PodmanBackendTest, CreateArgsCarryTheSecurityContract) {
  WorkloadSpec spec = Spec({"/bin/true"});
  spec.resources.cpu_millis = 1500;
  auto a = m_backend->CreateArgs(spec, "/x/run/env", "/x/outputs", "/x/run");
  EXPECT_TRUE(Contains(a, "--cap-drop=all"));
  EXPECT_TRUE(HasPair(a, "--security-opt", "no-new-privileges"));
  EXPECT_TRUE(HasPair(a, "--network", "none"));
  EXPECT_TRUE(Contains(a, "--read-only"));
  EXPECT_TRUE(Contains(a, "--pull=never"));
  EXPECT_TRUE(HasPair(a, "--cpus", "1.500"));
  // The environment comes from a root-only file, never from --env arguments.
  EXPECT_TRUE(HasPair(a, "--env-file", "/x/run/env"));
  EXPECT_FALSE(Contains(a, "--env"));
  EXPECT_TRUE(HasPair(a, "--volume", "/x/outputs:/outputs:rw,U"));
  EXPECT_TRUE(HasPair(a, "--volume", "/x/run/resolv.conf:/etc/resolv.conf:ro"));
  EXPECT_TRUE(Contains(a, "--env-host=false"));
  EXPECT_TRUE(m_backend->UsesAutoUserns() ? Contains(a, "--userns=auto") : Contains(a, "--uidmap"));
  EXPECT_EQ(a[a.size() - 2], m_image);
  EXPECT_EQ(a.back(), "/bin/true");
  // The manifest's working directory, with or without a /work volume.
  spec.workdir = "/work/src";
  EXPECT_TRUE(HasPair(m_backend->CreateArgs(spec, "/x/run/env", "/x/outputs", "/x/run"),
                      "--workdir", "/work/src"));
  PodmanContainerPlan plan{.outputs_dir = "/x/outputs", .run_dir = "/x/run"};
  plan.work_dir = "/x/work";
  EXPECT_TRUE(HasPair(m_backend->CreateArgs(spec, "/x/run/env", plan), "--workdir", "/work/src"));
}

TEST_F(PodmanBackendTest, RunsWithoutCapabilitiesAsAnUnprivilegedHostUidAndWritesOutputs) {
  std::string out;
  auto r = Run(Spec({"/bin/sh", "-c",
                     "grep CapEff /proc/self/status; cat /proc/self/uid_map; echo hello > "
                     "/outputs/result.txt; "
                     "env; ls /sys/class/net"}),
               &out, {"GPUNET_LEASE_ID=lease-7", "FOO=bar"});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->end, PodmanEnd::kExited) << r->message;
  EXPECT_EQ(r->exit_code, 0) << out;
  EXPECT_NE(out.find("CapEff:\t0000000000000000"), std::string::npos) << out;
  if (!m_backend->UsesAutoUserns()) {
    EXPECT_NE(out.find(std::to_string(m_backend->Options().userns_base)), std::string::npos) << out;
  }
  EXPECT_NE(out.find("GPUNET_LEASE_ID=lease-7"), std::string::npos) << out;
  EXPECT_NE(out.find("FOO=bar"), std::string::npos) << out;
  // Nothing of the provider's environment.
  EXPECT_EQ(out.find("CONTAINERS_CONF"), std::string::npos) << out;
  // --network none: only lo.
  EXPECT_NE(out.find("\nlo\n"), std::string::npos) << out;
  EXPECT_EQ(FileText(m_dir + "/outputs/result.txt"), "hello\n");
  struct stat st {};
  ASSERT_EQ(::stat((m_dir + "/outputs/result.txt").c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u) << "the workload's files must not belong to host root";
}

TEST(PodmanEnvFile, IsRootOnlyRefusesLinksAndLineBreaks) {
  gpunet::testing::TempDir tmp;
  const std::string dir = tmp.Path();
  std::string path = dir + "/env";
  ASSERT_TRUE(WritePodmanEnvFile(path, {"A=1", "B=x=y z"}).has_value());
  EXPECT_EQ(FileText(path), "A=1\nB=x=y z\n");
  struct stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  // A leftover file is replaced; a link planted at the path is refused, never written through.
  ASSERT_TRUE(WritePodmanEnvFile(path, {"A=2"}).has_value());
  EXPECT_EQ(FileText(path), "A=2\n");
  std::string target = dir + "/target";
  std::ofstream(target) << "keep";
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  EXPECT_FALSE(WritePodmanEnvFile(path, {"A=3"}).has_value());
  EXPECT_EQ(FileText(target), "keep");
  auto bad = WritePodmanEnvFile(dir + "/bad", {"A=line1\nB=smuggled"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir + "/bad"));
  EXPECT_FALSE(WritePodmanEnvFile(dir + "/cr", {"A=x\r"}));
}

TEST(PodmanImage, ReferencesAreRefusedWhenPodmanWouldReadATransportOrAnOption) {
  for (const char* good :
       {"busybox", "busybox:1.36", "localhost/gpunet-test:1", "localhost:5000/team/img:tag",
        "registry.example.com/img@sha256:0123abcd", "docker.io/library/debian:12", "dirk:1",
        "oci-image/x:1"})
    EXPECT_TRUE(IsImageReference(good)) << good;
  for (const char* bad : {"dir:/etc",
                          "oci-archive:/root/x.tar",
                          "oci-archive:x.tar",
                          "docker-archive:/x.tar",
                          "docker://evil.example/img",
                          "docker-daemon:img:1",
                          "containers-storage:img",
                          "oci:/tmp/layout",
                          "OCI:/tmp/layout",
                          "tarball:/x.tar",
                          "sif:/x.sif",
                          "ostree:x",
                          "dir:etc",
                          "docker-archive:123/x",
                          "host:port/img",
                          "host:/img",
                          "--privileged",
                          "-q",
                          "bad image",
                          "x\ny",
                          ""})
    EXPECT_FALSE(IsImageReference(bad)) << bad;
}

TEST(PodmanEnvFile, RefusesBadNamesNulAndEntriesWithoutAValueWritingNothing) {
  gpunet::testing::TempDir tmp;
  const std::string dir = tmp.Path();
  for (const std::string& entry :
       {std::string("BAD-NAME=x"), std::string("1X=x"), std::string("=x"), std::string("NOEQUALS"),
        std::string("A\x1b[2J=x"), std::string("A=x\0y", 5)}) {
    SCOPED_TRACE(entry);
    auto r = WritePodmanEnvFile(dir + "/env", {"OK=1", entry});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument) << r.error().ToString();
    EXPECT_EQ(r.error().message.find('\x1b'), std::string::npos) << "quotes the name raw";
    EXPECT_FALSE(fs::exists(dir + "/env"));
  }
}

TEST_F(PodmanBackendTest, RootFilesystemIsReadOnlyAndExitCodesPassThrough) {
  std::string out;
  auto r = Run(Spec({"/bin/sh", "-c", "echo x > /bin/evil && exit 0; exit 42"}), &out);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 42);
  EXPECT_EQ(r->end, PodmanEnd::kExited);
}

TEST_F(PodmanBackendTest, OutOfMemoryIsReportedAsSuch) {
  WorkloadSpec spec =
      Spec({"/bin/sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"});
  spec.resources.memory_bytes = 48ull << 20;
  std::string out;
  auto r = Run(spec, &out);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->end, PodmanEnd::kOutOfMemory) << r->message << " exit " << r->exit_code;
  EXPECT_EQ(r->exit_code, 137);
  EXPECT_EQ(out.find("survived"), std::string::npos);
}

TEST_F(PodmanBackendTest, PidsExhaustionIsReportedAsSuch) {
  WorkloadSpec spec = Spec({"/bin/sh", "-c", "for i in $(seq 1 200); do sleep 2 & done; wait"});
  spec.resources.pids_max = 40;
  std::string out;
  auto r = Run(spec, &out);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->end, PodmanEnd::kPidsLimit) << r->message << " exit " << r->exit_code;
}

TEST_F(PodmanBackendTest, MissingImageIsNotPulled) {
  WorkloadSpec spec = Spec({"/bin/true"});
  spec.image = "localhost/gpunet-no-such-image:1";
  std::string out;
  auto r = Run(spec, &out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kNotFound) << r.error().ToString();
}

TEST_F(PodmanBackendTest, RefusesBadIdsImagesGpusAndPortsWithoutPortsMode) {
  std::string out;
  // The runtime's one id rule (ValidateWorkloadId): the id names the container and
  // its cgroup path.
  for (const std::string& id : {std::string("Bad/Id"), std::string(".."), std::string("-lead"),
                                std::string("--rm"), std::string(65, 'a'), std::string("a\nb")}) {
    WorkloadSpec bad_id = Spec({"/bin/true"});
    bad_id.id = id;
    auto r = Run(bad_id, &out);
    ASSERT_FALSE(r) << "accepted id '" << id << "'";
    EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument) << id;
  }
  // The image goes on podman's command line: never as an option.
  for (const char* image :
       {"--help", "-q", "--privileged", "bad image", "x\ny", "dir:/etc", "oci-archive:/x.tar"}) {
    WorkloadSpec flag = Spec({"/bin/true"});
    flag.image = image;
    auto r = Run(flag, &out);
    ASSERT_FALSE(r) << image;
    EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument) << r.error().ToString();
  }
  // The environment's names follow the runtime's one rule on this backend too.
  auto bad_env = Run(Spec({"/bin/true"}), &out, {"BAD-NAME=x"});
  ASSERT_FALSE(bad_env);
  EXPECT_EQ(bad_env.error().code, base::ErrorCode::kInvalidArgument) << bad_env.error().ToString();
  WorkloadSpec gpus = Spec({"/bin/true"});
  gpus.gpu_uuids = {"GPU-1"};
  EXPECT_EQ(Run(gpus, &out).error().code, base::ErrorCode::kUnsupported);
  WorkloadSpec ports = Spec({"/bin/true"});
  ports.ports = {PortSpec{80, 0}};
  EXPECT_EQ(Run(ports, &out).error().code, base::ErrorCode::kInvalidArgument);
}

TEST_F(PodmanBackendTest, LeavesNoContainerOrCgroupBehind) {
  WorkloadSpec spec = Spec({"/bin/true"});
  std::string out;
  auto r = Run(spec, &out);
  ASSERT_TRUE(r) << r.error().ToString();
  std::string cmd = "CONTAINERS_CONF=" + s_dir +
                    "/conf/containers.conf podman container exists gpunet-" + spec.id;
  EXPECT_NE(std::system(cmd.c_str()), 0) << "container gpunet-" << spec.id << " still exists";
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/memory/gpunet-podman-test/" + spec.id));
  EXPECT_FALSE(fs::exists("/sys/fs/cgroup/pids/gpunet-podman-test/" + spec.id));
}

// ---- podman workloads through Runtime::Start (supervised) -----------------------------

class PodmanRuntimeTest : public PodmanBackendTest {
 protected:
  void SetUp() override {
    PodmanBackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    m_state.emplace(
        gpunet::testing::TempDirOptions{.parent = "/tmp", .prefix = "gpunet-podrt", .mode = 0711});
    m_options = gpunet::testing::SelfSupervisedOptions(m_state->Path(), 460000);
    m_options.podman.config_dir = s_dir + "/conf";
    // Eight slots of 65536 ids of this process's own, far above any real uid.
    m_options.podman.userns_base =
        1'900'000'000u + static_cast<uint32_t>(::getpid() % 100) * 8u * 65536u;
  }
  void TearDown() override {
    if (!m_state) return;
    Runtime rt(m_options);
    for (const auto& id : rt.List()) EXPECT_TRUE(rt.Remove(id).has_value()) << id;
    const std::error_code removed = m_state->Remove();
    EXPECT_FALSE(removed) << m_state->Path() << ": " << removed.message();
  }

  WorkloadSpec Sh(const std::string& script) {
    WorkloadSpec spec = Spec({"/bin/sh", "-c", script});
    spec.resources.disk_bytes = 16ull << 20;
    spec.resources.shm_bytes = 8ull << 20;
    spec.lease_id = "lease-" + spec.id;
    return spec;
  }

  gpunet::testing::Finished RunToEnd(const WorkloadSpec& spec) {
    return gpunet::testing::RunToEnd(m_options, spec);
  }

  bool ContainerExists(const std::string& id) const {
    std::string cmd =
        "CONTAINERS_CONF=" + s_dir + "/conf/containers.conf podman container exists gpunet-" + id;
    return std::system(cmd.c_str()) == 0;
  }
  /// The workload's cgroup in hierarchy `key`, from the options Start wrote (it
  /// unites the v1 parents for podman, runtime.cpp).
  std::string WorkloadCgroupDir(const std::string& id, const char* key) const {
    auto run = Runtime(m_options).RunDir(id);
    auto opts = state_files::OptionsFromJson(FileText(*run + "/options.json"));
    if (!opts) return "";
    return WorkloadCgroups(Probe(), opts->cgroup_parents, id).Dir(key, "workload");
  }

  /// Cgroups named `id` in any mounted hierarchy (runc and conmon make the path in
  /// all of them, blkio and name=systemd included), one per line; "" when none.
  static std::string CgroupsNamed(const std::string& id) {
    std::string found;
    std::istringstream mounts(FileText("/proc/self/mounts"));
    for (std::string dev, dir, type, rest;
         mounts >> dev >> dir >> type && std::getline(mounts, rest);) {
      if (type != "cgroup" && type != "cgroup2") continue;
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(dir, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it.depth() > 6) it.disable_recursion_pending();
        if (it->path().filename() == id) found += it->path().string() + "\n";
      }
    }
    return found;
  }

  std::optional<gpunet::testing::TempDir> m_state;
  RuntimeOptions m_options;
};

TEST_F(PodmanRuntimeTest, RunsWithLogsEnvironmentDiskAndExitCode) {
  WorkloadSpec spec =
      Sh("echo out-line; echo err-line >&2; pwd; echo $GPUNET_LEASE_ID $HOME; "
         "echo w > /work/w && echo result > /outputs/r.txt && echo t > /tmp/t && echo wrote; "
         "head -c 24000000 /dev/zero > /work/big || echo quota-hit; exit 3");
  auto f = RunToEnd(spec);
  EXPECT_EQ(f.status.reason, ExitReason::kExited) << f.status.message;
  EXPECT_EQ(f.status.exit_code, 3) << f.out << f.err;
  EXPECT_NE(f.out.find("out-line\n/work\n" + spec.lease_id + " /work\nwrote\n"), std::string::npos)
      << f.out;
  EXPECT_NE(f.err.find("err-line\n"), std::string::npos) << f.err;
  // /work, /outputs and /tmp share the workload's quota disk (16M here).
  EXPECT_NE(f.out.find("quota-hit"), std::string::npos) << f.out << f.err;
  auto reader = Runtime(m_options).Outputs(spec.id);
  ASSERT_TRUE(reader.has_value()) << reader.error().ToString();
  EXPECT_EQ(reader->ReadFile("r.txt", 1024).value_or("?"), "result\n");
  EXPECT_GT(f.status.ended_at_ms, 0);
}

TEST_F(PodmanRuntimeTest, LimitsAreTheWorkloadCgroupsAndReasonsAreNamed) {
  WorkloadSpec spec = Sh("while [ ! -e /work/go ]; do sleep 0.05; done");
  spec.resources.cpu_millis = 500;
  spec.stop_grace_ms = 0;
  Runtime rt(m_options);
  auto info = rt.Start(spec);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_TRUE(info->running);
  if (Probe().memory.how == Enforcement::kCgroupV1) {
    EXPECT_EQ(FileText(WorkloadCgroupDir(spec.id, "memory") + "/memory.limit_in_bytes"),
              std::to_string(spec.resources.memory_bytes) + "\n");
    EXPECT_EQ(FileText(WorkloadCgroupDir(spec.id, "pids") + "/pids.max"),
              std::to_string(spec.resources.pids_max) + "\n");
    EXPECT_EQ(FileText(WorkloadCgroupDir(spec.id, "cpu") + "/cpu.cfs_quota_us"), "50000\n");
  }
  std::ofstream(info->work_dir + "/go") << "";
  auto st = rt.Wait(spec.id);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->exit_code, 0) << st->message;

  WorkloadSpec oom = Sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived");
  oom.resources.memory_bytes = 48ull << 20;
  auto f = RunToEnd(oom);
  EXPECT_EQ(f.status.reason, ExitReason::kOutOfMemory) << f.status.message;
  EXPECT_EQ(f.status.exit_code, 137);
  EXPECT_EQ(f.out.find("survived"), std::string::npos);

  WorkloadSpec pids = Sh("for i in $(seq 1 200); do sleep 2 & done; wait");
  pids.resources.pids_max = 40;
  auto g = RunToEnd(pids);
  EXPECT_EQ(g.status.reason, ExitReason::kPidsLimit) << g.status.message;
}

TEST_F(PodmanRuntimeTest, StopGivesTheGraceThenKillsAndRemoveLeavesNothing) {
  // SIGTERM to the container's first process; the kill takes its pid namespace.
  Runtime rt(m_options);
  std::vector<std::string> ids;
  gpunet::testing::ExpectStopGivesTheGraceThenKills(
      rt, [&](const std::string& name, const std::string& script) {
        WorkloadSpec spec = Sh(script);
        spec.id += "-" + name;
        ids.push_back(spec.id);
        return spec;
      });
  ASSERT_EQ(ids.size(), 2u);
  // The containers and their cgroups are gone with the status; Remove takes the rest.
  for (const auto& id : ids) {
    EXPECT_FALSE(ContainerExists(id));
    const std::string pids_dir = WorkloadCgroupDir(id, "pids");
    EXPECT_FALSE(fs::exists(pids_dir)) << pids_dir;
    EXPECT_EQ(CgroupsNamed(id), "");
    ASSERT_TRUE(rt.Remove(id).has_value()) << id;
  }
  EXPECT_TRUE(rt.List().empty());
  EXPECT_FALSE(rt.Attach(ids[1]).has_value());
}

TEST_F(PodmanRuntimeTest, KeepsRunningWhenTheCallerIsKilledAndIsReattached) {
  gpunet::testing::ExpectReattachedAfterTheCallerIsKilled(m_options,
                                                          Sh(gpunet::testing::kReattachScript));
}

TEST_F(PodmanRuntimeTest, RemoveAfterTheSupervisorIsKilledTakesTheContainerToo) {
  WorkloadSpec spec = Sh("sleep 1000");
  Runtime rt(m_options);
  auto info = rt.Start(spec);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  ASSERT_EQ(::kill(info->supervisor_pid, SIGKILL), 0);
  auto lost = rt.Wait(spec.id, 10000);
  ASSERT_TRUE(lost.has_value()) << lost.error().ToString();
  EXPECT_EQ(lost->reason, ExitReason::kSupervisorLost);
  EXPECT_TRUE(ContainerExists(spec.id)) << "conmon keeps the container without its supervisor";
  ASSERT_TRUE(rt.Remove(spec.id).has_value());
  EXPECT_FALSE(ContainerExists(spec.id));
  EXPECT_EQ(CgroupsNamed(spec.id), "");
}

TEST_F(PodmanRuntimeTest, GetsExactlyItsGpusDeviceNodes) {
  // Fake NVIDIA nodes (major 195), as the sandbox's isolation test makes them: no
  // driver here, so the allocated one opens to ENXIO; the other is not there at all.
  const std::string dev = m_state->Path() + "/dev";
  ASSERT_EQ(::mkdir(dev.c_str(), 0711), 0);
  for (int minor : {0, 1}) {
    std::string node = dev + "/nvidia" + std::to_string(minor);
    ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0666, makedev(195, minor)), 0)
        << std::strerror(errno);
  }
  m_options.device_dir = dev;
  m_options.gpu_minors = {{"GPU-aaaa-0", 0}, {"GPU-bbbb-1", 1}};
  WorkloadSpec spec =
      Sh("for n in 0 1; do cat /dev/nvidia$n; done; "
         "echo CVD=$CUDA_VISIBLE_DEVICES GPN=$GPUNET_GPUS_PER_NODE");
  spec.gpu_uuids = {"GPU-bbbb-1"};
  auto f = RunToEnd(spec);
  EXPECT_NE(f.err.find("'/dev/nvidia0': No such file"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("'/dev/nvidia1': No such device or address"), std::string::npos) << f.err;
  EXPECT_NE(f.out.find("CVD=GPU-bbbb-1 GPN=1"), std::string::npos) << f.out;
}

TEST_F(PodmanRuntimeTest, EnvironmentsListTheHostAndTheLocalImages) {
  Runtime rt(m_options);
  std::vector<std::string> notes;
  auto envs = rt.Environments(&notes);
  bool host = false, image = false;
  for (const auto& e : envs) {
    if (e.name == kHostEnvironment) host = e.backend == Backend::kSandbox && e.id.empty();
    if (e.name == m_image) image = e.backend == Backend::kPodman && e.id.size() == 64;
  }
  EXPECT_EQ(host, Probe().user_namespaces && !Probe().bwrap.empty());
  EXPECT_TRUE(image) << m_image << " not listed";
  // An image that is not there is refused before anything is made.
  WorkloadSpec missing = Sh("true");
  missing.image = "localhost/gpunet-no-such-image:1";
  auto r = rt.Start(missing);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("not in the local store"), std::string::npos)
      << r.error().ToString();
  EXPECT_TRUE(rt.List().empty());
}

}  // namespace
}  // namespace gpunet::runtime
