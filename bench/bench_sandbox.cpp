// bench-libs: gpunet_runtime
//
// Cost of the sandbox (issue 6 item 10): from Runtime::Start to the first output
// line of `echo`, and the full teardown after it (workload exit, supervisor
// teardown of cgroups/network/quota fs, run dir removed), against a plain
// fork/exec of the same echo measured in the same run. Medians over several runs.
// Needs root (as the provider does). Prints one line:
//   sandbox_start_ms=.. teardown_ms=.. forkexec_ms=.. ratio=.. (+ per-mode figures)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "baseline.h"
#include "runtime/runtime.h"
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

struct SandboxTiming {
  double start_ms = -1;     ///< Start() called -> first output byte
  double teardown_ms = -1;  ///< first output -> exited, torn down and removed
};

SandboxTiming SandboxEcho(const RuntimeOptions& options, const std::string& id, NetworkMode mode) {
  SandboxTiming t;
  WorkloadSpec spec;
  spec.id = id;
  spec.command = {"/bin/echo", "hello"};
  spec.network = mode;
  if (mode == NetworkMode::kPorts) spec.ports = {PortSpec{8000, 0}};
  spec.resources.memory_bytes = 256ull << 20;
  spec.resources.disk_bytes = 16ull << 20;
  spec.resources.shm_bytes = 8ull << 20;
  Runtime rt(options);
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

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 7;
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
  options.uid_first = 700000 + static_cast<uint32_t>(::getpid() % 20000) * 8;
  options.uid_count = 8;

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
      auto t =
          SandboxEcho(options, "bench-" + std::string(m.name) + "-" + std::to_string(i), m.mode);
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
