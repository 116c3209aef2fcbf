// bench-libs: gpunet_runtime
//
// Teardown of a running workload (issue 17 item 7): Runtime::Stop of a `sleep 1000`
// workload, from the call to the returned exit status (the workload killed, its
// supervisor's teardown of cgroups, network and quota fs done, status.json written),
// then Runtime::Remove (disk unmounted, run dir deleted), per backend. The SIGTERM
// grace is 0 here, so Stop's time is the teardown alone. Medians and p95 over the
// runs. Needs root (as the provider does); the podman figures need podman and runc.
// Also the time Start took (to the command running), for scale. Prints one line:
//   sandbox_stop_ms=.. sandbox_stop_p95_ms=.. sandbox_remove_ms=.. sandbox_start_ms=..
//   podman_stop_ms=.. podman_stop_p95_ms=.. podman_remove_ms=.. podman_start_ms=..
//   runs=N failures=F
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "baseline.h"
#include "integration/sandbox/self_supervisor.h"  // this binary is its own supervisor
#include "integration/sandbox_net/busybox_image.h"
#include "runtime/podman.h"
#include "runtime/runtime.h"
#include "util/temp_dir.h"

namespace {

using gpunet::bench::NowSeconds;
using namespace gpunet::runtime;

double Percentile(std::vector<double> v, size_t percent) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * percent / 100)];
}

struct Figures {
  std::vector<double> start_ms, stop_ms, remove_ms;
  int failures = 0;
};

/// One workload: started, seen running, stopped (timed), removed (timed).
void StopOnce(const RuntimeOptions& options, WorkloadSpec spec, Figures* f) {
  Runtime rt(options);
  const double t_start = NowSeconds();
  auto info = rt.Start(spec);
  const double started = NowSeconds();
  if (!info) {
    std::fprintf(stderr, "bench_teardown: start failed: %s\n", info.error().ToString().c_str());
    ++f->failures;
    return;
  }
  double t0 = NowSeconds();
  auto st = rt.Stop(spec.id);
  double t1 = NowSeconds();
  auto removed = rt.Remove(spec.id);
  double t2 = NowSeconds();
  if (!st || st->reason != ExitReason::kStopped || !removed) {
    std::fprintf(
        stderr, "bench_teardown: %s: stop %s, remove %s\n", spec.id.c_str(),
        st ? std::string(ExitReasonName(st->reason)).c_str() : st.error().ToString().c_str(),
        removed ? "ok" : removed.error().ToString().c_str());
    ++f->failures;
    return;
  }
  f->start_ms.push_back((started - t_start) * 1000);
  f->stop_ms.push_back((t1 - t0) * 1000);
  f->remove_ms.push_back((t2 - t1) * 1000);
}

WorkloadSpec SleepSpec(const std::string& id) {
  WorkloadSpec spec;
  spec.id = id;
  spec.command = {"/bin/sleep", "1000"};
  spec.stop_grace_ms = 0;
  spec.resources.memory_bytes = 256ull << 20;
  spec.resources.disk_bytes = 16ull << 20;
  spec.resources.shm_bytes = 8ull << 20;
  return spec;
}

void Print(const char* name, const Figures& f) {
  std::printf("%s_stop_ms=%.1f %s_stop_p95_ms=%.1f %s_remove_ms=%.1f %s_start_ms=%.1f ", name,
              Percentile(f.stop_ms, 50), name, Percentile(f.stop_ms, 95), name,
              Percentile(f.remove_ms, 50), name, Percentile(f.start_ms, 50));
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 11;
  // Optional second argument: the backends to run, e.g. "sandbox" (default both).
  std::string only = argc > 2 ? argv[2] : "sandbox,podman";
  if (::geteuid() != 0) {
    std::printf("bench_teardown: skipped (needs root, as the provider's runtime does)\n");
    return 0;
  }
  std::optional<gpunet::testing::TempDir> tmp;
  try {
    tmp.emplace(gpunet::testing::TempDirOptions{
        .parent = "/tmp", .prefix = "gpunet-bench-td", .mode = 0711});
  } catch (const std::runtime_error& e) {
    std::fprintf(stderr, "bench_teardown: %s\n", e.what());
    return 1;
  }
  const std::string& dir = tmp->Path();
  RuntimeOptions options = gpunet::testing::SelfSupervisedOptions(dir, 720000);

  Figures sandbox, podman;
  if (only.find("sandbox") != std::string::npos)
    for (int i = 0; i < runs; ++i)
      StopOnce(options, SleepSpec("td-sandbox-" + std::to_string(i)), &sandbox);

  std::string image;
  if (only.find("podman") != std::string::npos) {
    if (auto why = PodmanUnavailableReason(); !why.empty()) {
      std::fprintf(stderr, "bench_teardown: podman skipped: %s\n", why.c_str());
    } else {
      options.podman.config_dir = dir + "/podman-conf";
      // A fixed mapping where /etc/subuid has no range for "containers".
      options.podman.userns_base = 1'800'000'000u;
      auto backend = PodmanBackend::Create(options.podman);
      image = "localhost/gpunet-bench-busybox:" + std::to_string(::getpid());
      if (!backend || !gpunet::testing::MakeBusyboxImage(*backend, dir, image)) {
        std::fprintf(stderr, "bench_teardown: cannot make the podman test image\n");
        ++podman.failures;
        image.clear();
      }
      for (int i = 0; !image.empty() && i < runs; ++i) {
        WorkloadSpec spec = SleepSpec("td-podman-" + std::to_string(i));
        spec.backend = Backend::kPodman;
        spec.image = image;
        spec.command = {"/bin/sleep", "1000"};
        StopOnce(options, spec, &podman);
      }
      if (backend && !image.empty()) (void)backend->RemoveImage(image);
    }
  }
  const int failures = sandbox.failures + podman.failures;
  if (failures != 0) {
    tmp->Keep();
    std::fprintf(stderr, "bench_teardown: %d failures; state kept in %s\n", failures, dir.c_str());
  }
  Print("sandbox", sandbox);
  Print("podman", podman);
  std::printf("runs=%d failures=%d\n", runs, failures);
  return failures == 0 ? 0 : 1;
}
