// Unit tests of the sandbox runtime's pure parts and of the outputs reader (no
// root needed). The isolation tests with real sandboxes are in
// tests/integration/sandbox/.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/cgroup.h"
#include "runtime/host_probe.h"
#include "runtime/host_resources.h"
#include "runtime/outputs.h"
#include "runtime/runtime.h"
#include "runtime/sandbox_args.h"
#include "runtime/seccomp_policy.h"
#include "runtime/state_files.h"
#include "runtime/sys_util.h"
#include "util/temp_dir.h"

namespace gpunet::runtime {
namespace {

using base::ErrorCode;

WorkloadSpec GoodSpec() {
  WorkloadSpec s;
  s.id = "lease-42";
  s.command = {"python3", "train.py"};
  s.lease_id = "lease-42";
  s.node_rank = 1;
  s.num_nodes = 2;
  s.node_ips = {"10.0.0.1", "10.0.0.2"};
  s.master_addr = "10.0.0.1";
  s.master_port = 29500;
  s.lease_ends_at_ms = 1700000000000;
  s.gpu_uuids = {"GPU-1", "GPU-2"};
  return s;
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::ranges::find(v, x) != v.end();
}

TEST(Cgroups, EachStateDirScopesItsWorkloadsCgroups) {
  const std::map<std::string, std::string> parents{{"memory", "/user.slice/gpunet"},
                                                   {kCgroupV2Key, "/gpunet"}};
  const auto a = ScopeCgroupParents(parents, "/tmp/home-a/sandbox");
  const auto b = ScopeCgroupParents(parents, "/tmp/home-b/sandbox");
  ASSERT_EQ(a.size(), 2u);
  for (const auto& [key, path] : a) {
    const std::string& parent = parents.at(key);
    ASSERT_EQ(path.rfind(parent + "/", 0), 0u) << path;
    EXPECT_EQ(path.size(), parent.size() + 17) << path;  // "/" and 16 hex
    EXPECT_NE(path, b.at(key)) << "two state dirs share " << path;
  }
  // The same state dir always gets the same scope (a restart finds its cgroups),
  // and every hierarchy the same one (podman's united v1 parents stay united).
  EXPECT_EQ(a, ScopeCgroupParents(parents, "/tmp/home-a/sandbox"));
  EXPECT_EQ(a.at("memory").substr(parents.at("memory").size()),
            a.at(kCgroupV2Key).substr(parents.at(kCgroupV2Key).size()));
}

TEST(ByteSize, ParsesUnitsAndRefusesJunk) {
  EXPECT_EQ(ParseByteSize("2G").value(), 2ull << 30);
  EXPECT_EQ(ParseByteSize("512M").value(), 512ull << 20);
  EXPECT_EQ(ParseByteSize("64k").value(), 64ull << 10);
  EXPECT_EQ(ParseByteSize("1000").value(), 1000u);
  EXPECT_EQ(ParseByteSize("1T").value(), 1ull << 40);
  EXPECT_EQ(ParseByteSize("").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseByteSize("G").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseByteSize("2X").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseByteSize("-1").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseByteSize("99999999999999999999").error().code, ErrorCode::kOverflow);
  EXPECT_EQ(ParseByteSize("20000000000T").error().code, ErrorCode::kOverflow);
  EXPECT_EQ(FormatByteSize(2ull << 30), "2G");
  EXPECT_EQ(FormatByteSize(64ull << 20), "64M");
  EXPECT_EQ(FormatByteSize(1000), "1000B");
}

TEST(Spec, ValidationRefusesWhatTheRuntimeMustNotRun) {
  EXPECT_TRUE(ValidateSpec(GoodSpec()).has_value());
  auto with = [](auto f) {
    WorkloadSpec s = GoodSpec();
    f(s);
    return ValidateSpec(s);
  };
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.id = "../etc"; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.id = "Upper"; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.id = ""; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.id = std::string(65, 'a'); }));
  // No command: an interactive machine (gpunet-init serves sessions); an empty name is
  // no command at all.
  EXPECT_TRUE(with([](WorkloadSpec& s) { s.command.clear(); }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.command = {""}; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.env["GPUNET_LEASE_ID"] = "spoof"; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.env["CUDA_VISIBLE_DEVICES"] = "all"; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.env["BAD-NAME"] = "x"; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.env["A"] = std::string("x\0y", 3); }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.resources.memory_bytes = 1024; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.resources.disk_bytes = 1024; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.resources.pids_max = 1; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.gpu_uuids = {"GPU-1,GPU-2"}; }));
  // podman: an image of the local store by name, and no line break in the env file.
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.backend = Backend::kPodman; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) {
    s.backend = Backend::kPodman;
    s.image = "oci-archive:/x.tar";
  }));
  EXPECT_FALSE(with([](WorkloadSpec& s) {
    s.backend = Backend::kPodman;
    s.image = "localhost/img:1";
    s.env["A"] = "line\nB=smuggled";
  }));
  EXPECT_TRUE(with([](WorkloadSpec& s) {
    s.backend = Backend::kPodman;
    s.image = "localhost/img:1";
    s.command.clear();  // the image's own command
  }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.stop_grace_ms = kStopGraceMsMax + 1; }));
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.backend = static_cast<Backend>(7); }));
  // ports only with the ports mode (network.h's rule, applied here too)
  EXPECT_FALSE(with([](WorkloadSpec& s) { s.ports = {{8888, 0}}; }));
}

TEST(Spec, ValidationRefusesNulAndControlCharactersInWhatReachesExecveOrTheEnvironment) {
  const std::string nul("a\0b", 3);
  auto with = [](auto f) {
    WorkloadSpec s = GoodSpec();
    f(s);
    return ValidateSpec(s);
  };
  // Each of these went into GPUNET_* variables or argv unchecked: a NUL aborted the root
  // supervisor in BwrapEnvArgs (cgroups left behind) or was cut off by execve.
  const std::vector<std::pair<const char*, std::function<void(WorkloadSpec&)>>> bad = {
      {"lease_id NUL", [&](WorkloadSpec& s) { s.lease_id = nul; }},
      {"lease_id newline", [](WorkloadSpec& s) { s.lease_id = "lease\nGPUNET_X=1"; }},
      {"master_addr NUL", [&](WorkloadSpec& s) { s.master_addr = nul; }},
      {"master_addr ESC", [](WorkloadSpec& s) { s.master_addr = "\x1b[31m"; }},
      {"node_ips NUL",
       [&](WorkloadSpec& s) {
         s.node_ips = {"10.0.0.1", nul};
       }},
      {"node_ips comma", [](WorkloadSpec& s) { s.node_ips = {"10.0.0.1,10.0.0.9"}; }},
      {"node_ips empty", [](WorkloadSpec& s) { s.node_ips = {""}; }},
      {"command argument NUL",
       [&](WorkloadSpec& s) {
         s.command = {"/bin/echo", nul};
       }},
      {"command NUL", [&](WorkloadSpec& s) { s.command = {"/bin/echo" + nul}; }},
      {"GPU UUID control", [](WorkloadSpec& s) { s.gpu_uuids = {"GPU-1\n"}; }},
  };
  for (const auto& [what, spoil] : bad) {
    SCOPED_TRACE(what);
    auto r = with(spoil);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().ToString();
    EXPECT_EQ(r.error().message.find('\0'), std::string::npos) << "quotes the NUL raw";
    EXPECT_EQ(r.error().message.find('\x1b'), std::string::npos) << "quotes the ESC raw";
  }
  // A bad env name is quoted escaped, not raw.
  auto name = with([](WorkloadSpec& s) { s.env["A\x1b[2J"] = "x"; });
  ASSERT_FALSE(name.has_value());
  EXPECT_NE(name.error().message.find("A\\x1b[2J"), std::string::npos) << name.error().message;
  // What passes builds an environment BwrapEnvArgs takes (it asserts on a NUL).
  EXPECT_TRUE(with([](WorkloadSpec& s) { s.command = {"/bin/sh", "-c", "echo a\nb"}; }));
  EXPECT_FALSE(BwrapEnvArgs(WorkloadEnvironment(GoodSpec(), "")).empty());
}

TEST(Spec, EnvironmentHasLeaseVariablesAndNothingElseOfTheHost) {
  ::setenv("PROVIDER_ONLY", "secret", 1);
  WorkloadSpec s = GoodSpec();
  s.env["TENANT"] = "yes";
  auto env = WorkloadEnvironment(s, "GPU-1,GPU-2");
  ::unsetenv("PROVIDER_ONLY");
  for (const char* want :
       {"GPUNET_LEASE_ID=lease-42", "GPUNET_NODE_RANK=1", "GPUNET_NUM_NODES=2",
        "GPUNET_NODE_IPS=10.0.0.1,10.0.0.2", "GPUNET_GPUS_PER_NODE=2", "GPUNET_OUTPUT_DIR=/outputs",
        "GPUNET_LEASE_ENDS_AT=1700000000000", "MASTER_ADDR=10.0.0.1", "MASTER_PORT=29500",
        "CUDA_VISIBLE_DEVICES=GPU-1,GPU-2", "TENANT=yes", "HOME=/work"})
    EXPECT_TRUE(Has(env, want)) << want;
  for (const auto& e : env) EXPECT_EQ(e.find("PROVIDER_ONLY"), std::string::npos);
  // A single machine is rank 0 of 1 with its own loopback as the rendezvous.
  WorkloadSpec single = GoodSpec();
  single.node_rank = 0;
  single.num_nodes = 1;
  single.node_ips = {};
  single.master_addr = "";
  single.master_port = 0;
  auto one = WorkloadEnvironment(single, "");
  for (const char* want :
       {"GPUNET_NODE_RANK=0", "GPUNET_NUM_NODES=1", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=29500"})
    EXPECT_TRUE(Has(one, want)) << want;
  auto no_gpu = WorkloadEnvironment(GoodSpec(), "");
  EXPECT_TRUE(std::ranges::none_of(
      no_gpu, [](const std::string& e) { return e.starts_with("CUDA_VISIBLE"); }));
}

TEST(BwrapArgs, IsolatesAndBindsOnlyWhatIsListed) {
  SandboxPlan plan;
  plan.bwrap = "/usr/bin/bwrap";
  plan.work_dir = "/state/runs/x/fs/work";
  plan.outputs_dir = "/state/runs/x/fs/outputs";
  plan.tmp_dir = "/state/runs/x/fs/tmp";
  plan.etc_dir = "/state/runs/x/etc";
  plan.dev_binds = {{"/dev/nvidia3", "/dev/nvidia3"}};
  plan.shm_bytes = 64ull << 20;
  plan.seccomp_fd = 3;
  plan.json_status_fd = 4;
  plan.block_fd = 5;
  plan.env_args_fd = 6;
  plan.init_path = "/opt/gpunet/bin/gpunet-init";
  plan.session_listen_fd = 7;
  WorkloadSpec spec = GoodSpec();
  spec.env["SECRET_TOKEN"] = "tenant-secret-value";
  auto a = BuildBwrapArgs(spec, plan);
  auto joined = [&] {
    std::string j;
    for (const auto& s : a) j += s + " ";
    return j;
  }();
  for (const char* flag :
       {"--unshare-all ", "--unshare-user ", "--unshare-cgroup ", "--disable-userns ",
        "--die-with-parent ", "--new-session ", "--cap-drop ALL ", "--seccomp 3 ",
        "--json-status-fd 4 ", "--block-fd 5 ", "--size 67108864 --tmpfs /dev/shm ",
        "--dev-bind /dev/nvidia3 /dev/nvidia3 ", "--bind /state/runs/x/fs/work /work ",
        "--bind /state/runs/x/fs/outputs /outputs ",
        "--ro-bind /state/runs/x/etc/resolv.conf /etc/resolv.conf ", "--remount-ro / ",
        "--ro-bind /opt/gpunet/bin/gpunet-init /.gpunet/init ",
        "--args 6 -- /.gpunet/init --listen-fd 7 -- python3 train.py "})
    EXPECT_NE(joined.find(flag), std::string::npos) << flag << " missing in " << joined;
  // The provider's homes, /etc as a whole, /var and the host's /dev are never bound.
  // Nor is the environment: it travels through --args (BwrapEnvArgs), off argv.
  for (const char* never : {" /root ", " /home ", " /etc ", " /var ", "--dev-bind /dev /dev",
                            "--share-net", "--bind / ", "--ro-bind / ", "--setenv", "SECRET_TOKEN",
                            "tenant-secret-value", "GPUNET_LEASE_ID"})
    EXPECT_EQ(joined.find(never), std::string::npos) << never << " in " << joined;
  // The init comes after bwrap's "--", the command last, after init's own "--", so
  // neither can read it as its options.
  auto dd = std::ranges::find(a, "--");
  ASSERT_NE(dd, a.end());
  EXPECT_EQ(std::vector<std::string>(dd, a.end()),
            (std::vector<std::string>{"--", "/.gpunet/init", "--listen-fd", "7", "--", "python3",
                                      "train.py"}));
  // The init is bound after the extra binds, so none of them can replace it.
  auto init_bind = std::ranges::find(a, "/.gpunet/init");
  ASSERT_NE(init_bind, a.end());
  EXPECT_EQ(*(init_bind - 2), "--ro-bind");
  // An interactive machine: the init and no command.
  spec.command.clear();
  auto interactive = BuildBwrapArgs(spec, plan);
  EXPECT_EQ(interactive.back(), "--");
  EXPECT_EQ(*(interactive.end() - 2), "7");
}

TEST(BwrapArgs, EnvironmentIsClearedThenSetPieceByPiece) {
  using namespace std::string_literals;
  EXPECT_EQ(BwrapEnvArgs({}), "--clearenv\0"s);
  // A value may hold '=', spaces, newlines and option-like text: it stays one piece.
  EXPECT_EQ(BwrapEnvArgs({"A=1", "LD_PRELOAD=/x.so", "B=x=y --bind / /", "C=", "D=l1\nl2"}),
            "--clearenv\0--setenv\0A\0001\0--setenv\0LD_PRELOAD\0/x.so\0"
            "--setenv\0B\0x=y --bind / /\0--setenv\0C\0\0--setenv\0D\0l1\nl2\0"s);
}

TEST(HostEnvironment, IsTheFixedAllowlist) {
  ::setenv("LD_PRELOAD", "/provider/or/tenant.so", 1);
  auto env = HostEnvironment();
  ::unsetenv("LD_PRELOAD");
  EXPECT_EQ(env, (std::vector<std::string>{"LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}));
}

TEST(Seccomp, ExportsABpfProgram) {
  auto fd = BuildSeccompBpf();
  ASSERT_TRUE(fd.has_value()) << fd.error().ToString();
  struct stat st {};
  ASSERT_EQ(::fstat(fd->Get(), &st), 0);
  EXPECT_GT(st.st_size, 0);
  EXPECT_EQ(st.st_size % 8, 0);  // struct sock_filter is 8 bytes
  // Sealed: nobody can swap the program after it was built.
  EXPECT_EQ(::write(fd->Get(), "x", 1), -1);
  auto names = SeccompDeniedSyscalls();
  for (const char* n : {"bpf", "io_uring_setup", "keyctl", "perf_event_open", "userfaultfd",
                        "ptrace", "mount", "kexec_load", "init_module", "finit_module", "setns"})
    EXPECT_TRUE(Has(names, n)) << n;
}

TEST(Spec, WorkdirAndOutputsDirAreCheckedAppliedAndKept) {
  auto with = [](std::string workdir, std::string outputs_dir) {
    WorkloadSpec s = GoodSpec();
    s.workdir = std::move(workdir);
    s.outputs_dir = std::move(outputs_dir);
    return ValidateSpec(s);
  };
  EXPECT_TRUE(with("/work", "/outputs").has_value());
  EXPECT_TRUE(with("/work/src", "/work/out").has_value());
  EXPECT_TRUE(with("/usr/lib", "/outputs/run-1").has_value());
  for (auto [workdir, outputs] :
       std::vector<std::pair<std::string, std::string>>{{"work", "/outputs"},
                                                        {"/work/../etc", "/outputs"},
                                                        {"/work//x", "/outputs"},
                                                        {"/work/a b", "/outputs"},
                                                        {"/work", "/etc"},
                                                        {"/work", "/work"},
                                                        {"/work", "/outputsx"},
                                                        {"/work", "/outputs/.."},
                                                        {"/" + std::string(300, 'a'), "/outputs"}})
    EXPECT_FALSE(with(workdir, outputs).has_value()) << workdir << " " << outputs;
  EXPECT_EQ(HostPathOfInside("/r/fs", "/work/out"), "/r/fs/work/out");
  EXPECT_EQ(HostPathOfInside("/r/fs", "/outputs"), "/r/fs/outputs");
  EXPECT_EQ(HostPathOfInside("/r/fs", "/usr/lib"), std::nullopt);
  EXPECT_EQ(HostPathOfInside("/r/fs", "/workx"), std::nullopt);

  WorkloadSpec s = GoodSpec();
  s.workdir = "/work/src";
  s.outputs_dir = "/work/out";
  auto env = WorkloadEnvironment(s, "");
  EXPECT_NE(std::ranges::find(env, "GPUNET_OUTPUT_DIR=/work/out"), env.end());
  SandboxPlan plan;
  plan.bwrap = "/usr/bin/bwrap";
  plan.seccomp_fd = 3;
  plan.json_status_fd = 4;
  plan.block_fd = 5;
  plan.env_args_fd = 6;
  plan.init_path = "/usr/bin/gpunet-init";
  plan.session_listen_fd = 7;
  auto a = BuildBwrapArgs(s, plan);
  auto chdir = std::ranges::find(a, "--chdir");
  ASSERT_NE(chdir, a.end());
  EXPECT_EQ(*(chdir + 1), "/work/src");
  auto back = state_files::SpecFromJson(state_files::SpecToJson(s));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->workdir, "/work/src");
  EXPECT_EQ(back->outputs_dir, "/work/out");
  // A spec.json written before the fields existed reads as the defaults.
  auto old = nlohmann::json::parse(state_files::SpecToJson(GoodSpec()));
  old.erase("workdir");
  old.erase("outputs_dir");
  auto old_back = state_files::SpecFromJson(old.dump());
  ASSERT_TRUE(old_back.has_value());
  EXPECT_EQ(old_back->workdir, "/work");
  EXPECT_EQ(old_back->outputs_dir, "/outputs");
}

TEST(StateFiles, RoundTripAndRefuseGarbage) {
  WorkloadSpec s = GoodSpec();
  s.env["K"] = "v\n\"quoted\"";
  s.network = NetworkMode::kPorts;
  s.ports = {{8888, 0}, {22, 2222}};
  auto back = state_files::SpecFromJson(state_files::SpecToJson(s));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->env, s.env);
  EXPECT_EQ(back->command, s.command);
  EXPECT_EQ(back->ports.size(), 2u);
  EXPECT_EQ(back->ports[1].host_port, 2222);
  EXPECT_EQ(back->network, NetworkMode::kPorts);
  EXPECT_EQ(back->lease_ends_at_ms, s.lease_ends_at_ms);
  ExitStatus st;
  st.exit_code = 137;
  st.signal = 9;
  st.reason = ExitReason::kOutOfMemory;
  st.message = "killed: out of memory (limit 2G)";
  st.counters.oom_kills = 1;
  auto sb = state_files::StatusFromJson(state_files::StatusToJson(st));
  ASSERT_TRUE(sb.has_value());
  EXPECT_EQ(sb->reason, ExitReason::kOutOfMemory);
  EXPECT_EQ(sb->message, st.message);
  EXPECT_EQ(state_files::SpecFromJson("{").error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(state_files::StatusFromJson("{\"exit_code\": 1}").error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(state_files::SpecFromJson(R"({"id": 5})").error().code, ErrorCode::kCorrupt);
}

TEST(Gpu, PlanRefusesUnknownUuidsAndNonDevices) {
  EXPECT_TRUE(PlanGpuDevices({}, {}, "/dev").value().binds.empty());
  auto unknown = PlanGpuDevices({"GPU-x"}, {}, "/dev");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  gpunet::testing::TempDir tmp;
  const std::string dir = tmp.Path();
  std::ofstream(dir + "/nvidia0") << "not a device";
  auto regular = PlanGpuDevices({"GPU-x"}, {{"GPU-x", 0}}, dir);
  ASSERT_FALSE(regular.has_value());
  EXPECT_NE(regular.error().message.find("195:0"), std::string::npos) << regular.error().message;
}

TEST(Gpu, ReadsMinorsFromDriverProcFiles) {
  gpunet::testing::TempDir tmp;
  const std::string dir = tmp.Path();
  ::mkdir((dir + "/0000:17:00.0").c_str(), 0755);
  ::mkdir((dir + "/0000:65:00.0").c_str(), 0755);
  std::ofstream(dir + "/0000:17:00.0/information")
      << "Model: \t\t NVIDIA H100\nIRQ:   \t\t 88\nGPU UUID: \t GPU-aaaa\nDevice Minor: \t 0\n";
  std::ofstream(dir + "/0000:65:00.0/information") << "GPU UUID: \t GPU-bbbb\nDevice Minor: \t 3\n";
  auto m = ReadNvidiaMinors(dir);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m["GPU-aaaa"], 0u);
  EXPECT_EQ(m["GPU-bbbb"], 3u);
  EXPECT_TRUE(ReadNvidiaMinors(dir + "/absent").empty());
}

class OutputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_root = m_tmp.Path();
    m_out = m_root + "/outputs";
    ASSERT_EQ(::mkdir(m_out.c_str(), 0755), 0);
    std::ofstream(m_root + "/secret") << "host secret\n";
    std::ofstream(m_out + "/model.bin") << "weights";
    ::mkdir((m_out + "/logs").c_str(), 0755);
    std::ofstream(m_out + "/logs/train.log") << "epoch 1\n";
    ASSERT_EQ(::symlink("../secret", (m_out + "/up").c_str()), 0);
    ASSERT_EQ(::symlink("/etc/passwd", (m_out + "/abs").c_str()), 0);
    ASSERT_EQ(::symlink("..", (m_out + "/logs/parent").c_str()), 0);
    ASSERT_EQ(::symlink("/proc/self/root/etc/passwd", (m_out + "/magic").c_str()), 0);
    ASSERT_EQ(::mkfifo((m_out + "/pipe").c_str(), 0644), 0);
  }
  void TearDown() override {
    // Nothing the reader left open or changed may keep the tree.
    const std::error_code removed = m_tmp.Remove();
    EXPECT_FALSE(removed) << m_root << ": " << removed.message();
  }
  gpunet::testing::TempDir m_tmp;
  std::string m_root, m_out;
};

TEST_F(OutputsTest, ReadsFilesBeneathAndRefusesEveryWayOut) {
  auto r = OutputsReader::Open(m_out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ReadFile("model.bin", 100).value(), "weights");
  EXPECT_EQ(r->ReadFile("logs/train.log", 100).value(), "epoch 1\n");
  EXPECT_EQ(r->ReadFile("model.bin", 3).error().code, ErrorCode::kLimitExceeded);
  for (const char* evil : {"up", "abs", "magic", "logs/parent/up", "logs/parent/model.bin",
                           "../secret", "logs/../../secret", "/etc/passwd", "pipe", "logs"}) {
    auto got = r->ReadFile(evil, 1 << 20);
    ASSERT_FALSE(got.has_value()) << evil;
    EXPECT_EQ(got.error().code, ErrorCode::kPermissionDenied)
        << evil << ": " << got.error().ToString();
  }
  EXPECT_EQ(r->ReadFile("nope", 10).error().code, ErrorCode::kNotFound);
  auto list = r->List();
  ASSERT_TRUE(list.has_value());
  std::vector<std::string> names;
  for (const auto& e : *list) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"abs", "logs", "magic", "model.bin", "pipe", "up"}));
  EXPECT_EQ((*list)[0].type, OutputEntry::Type::kSymlink);
  EXPECT_EQ((*list)[3].size_bytes, 7u);
  EXPECT_FALSE(r->List("logs/parent").has_value());
  EXPECT_EQ(r->List("logs", 0).error().code, ErrorCode::kLimitExceeded);
}

TEST_F(OutputsTest, RefusesAnOutputsDirThatIsItselfALink) {
  ASSERT_EQ(::symlink(m_root.c_str(), (m_root + "/linked").c_str()), 0);
  EXPECT_FALSE(OutputsReader::Open(m_root + "/linked").has_value());
}

TEST_F(OutputsTest, OpensAnOutputsDirBeneathItsRootOnlyWithNoLinkOnTheWay) {
  // m_out's parent stands for the workload's file system root; "logs" is a folder the
  // workload owns, and it swaps one on the way for a link.
  const std::string base = fs::path(m_out).parent_path().string();
  const std::string rel = fs::path(m_out).filename().string();
  auto direct = OutputsReader::OpenIn(base, rel + "/logs");
  ASSERT_TRUE(direct.has_value()) << direct.error().ToString();
  EXPECT_EQ(direct->ReadFile("train.log", 100).value(), "epoch 1\n");
  fs::create_directories(m_root + "/elsewhere/inner");
  ASSERT_EQ(::symlink((m_root + "/elsewhere").c_str(), (m_out + "/swapped").c_str()), 0);
  auto through = OutputsReader::OpenIn(base, rel + "/swapped/inner");
  ASSERT_FALSE(through.has_value());
  EXPECT_EQ(through.error().code, ErrorCode::kPermissionDenied) << through.error().ToString();
  EXPECT_TRUE(OutputsReader::Open(m_out + "/swapped/inner").has_value())
      << "a plain path follows the link: why OpenIn exists";
  EXPECT_FALSE(OutputsReader::OpenIn(base, "../x").has_value());
}

TEST(Probe, DescribesThisHostWithoutFailing) {
  HostCapabilities caps = Probe();
  EXPECT_FALSE(caps.cgroups.Describe().empty());
  WorkloadSpec s = GoodSpec();
  // Whatever this host is, every missing limit is named, never silently dropped.
  auto missing = UnenforceableLimits(caps, s);
  if (caps.memory.how == Enforcement::kNone) {
    EXPECT_TRUE(
        std::ranges::any_of(missing, [](const std::string& m) { return m.starts_with("memory"); }));
  }
}

}  // namespace
}  // namespace gpunet::runtime
