// bench-libs: gpunet_runtime
//
// Cost of the sandbox (issue 6 item 10): from Runtime::Start to the first output
// line of `echo`, and the full teardown after it (workload exit, supervisor
// teardown of cgroups/network/quota fs, run dir removed), against a plain
// fork/exec of the same echo measured in the same run. Medians over several runs.
// Needs root (as the provider does). Prints one line:
//   sandbox_start_ms=.. teardown_ms=.. forkexec_ms=.. ratio=.. (+ per-mode figures)
// `bench_sandbox --like RUN_DIR [RUNS]` starts, instead, the very spec and runtime
// options a workload's run dir holds (spec.json, options.json: what the provider's
// daemon gave Runtime::Start), in a state dir of its own: the bare sandbox start of
// bench/lease_to_first_output.sh. Prints `sandbox_start_ms=.. teardown_ms=.. runs=..`.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "baseline.h"
#include "runtime/runtime.h"
#include "runtime/state_files.h"
#include "util/temp_dir.h"

namespace {

using gpunet::bench::NowSeconds;
using namespace gpunet::runtime;

// Runtime::Start execs supervisor_command + "--run-dir D --ready-fd N": this binary
// is its own supervisor when started that way.
struct SupervisorHook {
  SupervisorHook() {
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::vector<std::string> args;
    for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
    if (args.size() == 6 && args[1] == "--gpunet-supervise" && args[2] == "--run-dir" &&
        args[4] == "--ready-fd")
      ::_exit(SupervisorMain(args[3], std::atoi(args[5].c_str())));
  }
} g_supervisor_hook;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// fork/exec /bin/echo, read its first line from a pipe, reap it. Milliseconds.
double ForkExecEchoMs() {
  double t0 = NowSeconds();
  int p[2];
  if (::pipe(p) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    ::close(p[1]);
    ::execl("/bin/echo", "echo", "hello", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(p[1]);
  char buf[64];
  while (::read(p[0], buf, sizeof buf) > 0) {
    break;
  }
  ::close(p[0]);
  ::waitpid(pid, nullptr, 0);
  return (NowSeconds() - t0) * 1000;
}

/// CLOCK_REALTIME in milliseconds: the clock of file times.
double RealtimeMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

struct SandboxTiming {
  double start_ms = -1;     ///< Start() called -> first output byte read (Follow polls)
  double written_ms = -1;   ///< Start() called -> stdout.log last changed (echo: its line)
  double teardown_ms = -1;  ///< first output -> exited, torn down and removed
};

WorkloadSpec EchoSpec(const std::string& id, NetworkMode mode) {
  WorkloadSpec spec;
  spec.id = id;
  spec.command = {"/bin/echo", "hello"};
  spec.network = mode;
  if (mode == NetworkMode::kPorts) spec.ports = {PortSpec{8000, 0}};
  spec.resources.memory_bytes = 256ull << 20;
  spec.resources.disk_bytes = 16ull << 20;
  spec.resources.shm_bytes = 8ull << 20;
  return spec;
}

/// Runtime::Start of `spec` -> its first stdout byte, then Remove.
SandboxTiming SandboxRun(const RuntimeOptions& options, const WorkloadSpec& spec) {
  SandboxTiming t;
  const std::string& id = spec.id;
  Runtime rt(options);
  const double t0_real = RealtimeMs();
  double t0 = NowSeconds();
  auto info = rt.Start(spec);
  if (!info) {
    std::fprintf(stderr, "bench_sandbox: start failed: %s\n", info.error().ToString().c_str());
    return t;
  }
  double first = -1;
  auto st = rt.Follow(id, [&](std::string_view stream, std::string_view) {
    if (stream == "stdout" && first < 0) first = NowSeconds();
  });
  if (!st || first < 0) {
    std::fprintf(stderr, "bench_sandbox: no output from the sandboxed echo\n");
    return t;
  }
  struct stat written {};
  if (::stat((info->run_dir + "/stdout.log").c_str(), &written) == 0)
    t.written_ms = static_cast<double>(written.st_mtim.tv_sec) * 1e3 +
                   static_cast<double>(written.st_mtim.tv_nsec) / 1e6 - t0_real;
  auto removed = rt.Remove(id);
  double end = NowSeconds();
  if (!removed) {
    std::fprintf(stderr, "bench_sandbox: remove failed: %s\n", removed.error().ToString().c_str());
    return t;
  }
  t.start_ms = (first - t0) * 1000;
  t.teardown_ms = (end - first) * 1000;
  return t;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// `--like RUN_DIR RUNS`: the spec and options of RUN_DIR, started RUNS times under
/// `options` (this binary as the supervisor, its own state dir and uids).
int RunLike(const std::string& run_dir, int runs, RuntimeOptions options) {
  auto spec_text = ReadFile(run_dir + "/" + state_files::kSpecFile);
  auto options_text = ReadFile(run_dir + "/" + state_files::kOptionsFile);
  if (!spec_text || !options_text) {
    std::fprintf(stderr, "bench_sandbox: %s has no spec.json and options.json\n", run_dir.c_str());
    return 1;
  }
  auto spec = state_files::SpecFromJson(*spec_text);
  auto like = state_files::OptionsFromJson(*options_text);
  if (!spec || !like) {
    std::fprintf(stderr, "bench_sandbox: %s: %s\n", run_dir.c_str(),
                 (!spec ? spec.error() : like.error()).ToString().c_str());
    return 1;
  }
  // The daemon's options but this run's state dir, supervisor and uid range.
  like->state_dir = options.state_dir;
  like->supervisor_command = options.supervisor_command;
  like->init_path = options.init_path;
  like->uid_first = options.uid_first;
  like->uid_count = options.uid_count;
  // The start as bench/lease_to_first_output.sh takes it: to the log's last change.
  std::vector<double> start, teardown;
  for (int i = 0; i < runs; ++i) {
    spec->id = "bench-like-" + std::to_string(i);
    auto t = SandboxRun(*like, *spec);
    if (t.start_ms < 0 || t.written_ms < 0) return 1;
    start.push_back(t.written_ms);
    teardown.push_back(t.teardown_ms);
  }
  std::printf("sandbox_start_ms=%.1f teardown_ms=%.1f runs=%d\n", Median(start), Median(teardown),
              runs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool like = argc > 2 && std::string(argv[1]) == "--like";
  int runs = like ? (argc > 3 ? std::max(1, std::atoi(argv[3])) : 7)
                  : (argc > 1 ? std::max(1, std::atoi(argv[1])) : 7);
  if (::geteuid() != 0) {
    std::printf("bench_sandbox: skipped (needs root, as the provider's runtime does)\n");
    return 0;
  }
  std::optional<gpunet::testing::TempDir> tmp;
  try {
    tmp.emplace(gpunet::testing::TempDirOptions{
        .parent = "/tmp", .prefix = "gpunet-bench-sbx", .mode = 0711});
  } catch (const std::runtime_error& e) {
    std::fprintf(stderr, "bench_sandbox: %s\n", e.what());
    return 1;
  }
  const std::string& dir = tmp->Path();
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 1;
  RuntimeOptions options;
  options.state_dir = dir + "/state";
  options.supervisor_command = {std::string(exe, static_cast<size_t>(n)), "--gpunet-supervise"};
  options.init_path = GPUNET_INIT_PATH;
  options.uid_first = 700000 + static_cast<uint32_t>(::getpid() % 20000) * 8;
  options.uid_count = 8;
  if (like) {
    const int rc = RunLike(argv[2], runs, options);
    if (rc != 0) tmp->Keep();
    return rc;
  }

  std::vector<double> fork_ms;
  for (int i = 0; i < runs * 4; ++i) fork_ms.push_back(ForkExecEchoMs());
  struct ModeFigures {
    const char* name;
    NetworkMode mode;
    std::vector<double> start, teardown;
  };
  std::vector<ModeFigures> modes = {{"none", NetworkMode::kNone, {}, {}},
                                    {"egress", NetworkMode::kEgress, {}, {}},
                                    {"ports", NetworkMode::kPorts, {}, {}}};
  // Optional second argument: the modes to run, e.g. "none,ports" (default all three).
  std::string only = argc > 2 ? argv[2] : "none,egress,ports";
  int failures = 0;
  for (int i = 0; i < runs; ++i) {
    for (auto& m : modes) {
      if (only.find(m.name) == std::string::npos) continue;
      auto t = SandboxRun(
          options, EchoSpec("bench-" + std::string(m.name) + "-" + std::to_string(i), m.mode));
      if (t.start_ms < 0) {
        ++failures;
        continue;
      }
      m.start.push_back(t.start_ms);
      m.teardown.push_back(t.teardown_ms);
    }
  }
  if (failures != 0) {
    tmp->Keep();
    std::fprintf(stderr, "bench_sandbox: %d failures; state kept in %s\n", failures, dir.c_str());
  }
  double fork_median = Median(fork_ms);
  double start = Median(modes[0].start);
  std::printf("sandbox_start_ms=%.1f teardown_ms=%.1f forkexec_ms=%.3f ratio=%.0f", start,
              Median(modes[0].teardown), fork_median, fork_median > 0 ? start / fork_median : 0);
  for (size_t i = 1; i < modes.size(); ++i)
    std::printf(" %s_start_ms=%.1f %s_teardown_ms=%.1f", modes[i].name, Median(modes[i].start),
                modes[i].name, Median(modes[i].teardown));
  std::printf(" runs=%d failures=%d\n", runs, failures);
  return failures == 0 ? 0 : 1;
}
