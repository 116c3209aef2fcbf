// The simulator's campaign binary: `bft_sim --seeds N` runs seeds 1..N (or
// --first F .. F+N-1), `bft_sim --seed S --trace` replays one seed event by event.
// Exit status 1 when a seed fails or, for a campaign of >= 16 seeds, when a hard
// case never happened. `make sim SEEDS=N` runs it.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sim/sim_world.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: bft_sim [--seeds N] [--first F] [--seed S] [--trace] [--chaos-ms MS]\n"
               "  --seeds N     run N seeds (default 100), starting at --first (default 1)\n"
               "  --seed S      run exactly seed S (replay a failure)\n"
               "  --trace       print every event of the run to stderr\n");
  return 2;
}

bool ParseU64(const char* text, uint64_t& out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  out = std::strtoull(text, &end, 10);
  return *end == '\0' && text[0] != '-';
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seeds = 100;
  uint64_t first = 1;
  bool one = false;
  gpunet::sim::SimOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--seeds" && ParseU64(next, seeds)) {
      ++i;
    } else if (arg == "--first" && ParseU64(next, first)) {
      ++i;
    } else if (arg == "--seed" && ParseU64(next, first)) {
      one = true;
      seeds = 1;
      ++i;
    } else if (arg == "--chaos-ms" && ParseU64(next, options.chaos_ms)) {
      ++i;
    } else if (arg == "--trace") {
      options.trace = true;
    } else {
      return Usage();
    }
  }
  std::vector<gpunet::sim::SimReport> reports;
  int failed = 0;
  for (uint64_t s = first; s < first + seeds; ++s) {
    reports.push_back(gpunet::sim::RunSeed(s, options));
    const auto& r = reports.back();
    std::printf("%s\n", r.Summary().c_str());
    std::fflush(stdout);
    if (!r.ok) ++failed;
  }
  std::printf("%d of %zu seeds failed (commit %s)\n", failed, reports.size(),
              gpunet::sim::GitCommit().c_str());
  if (!one && reports.size() >= 16) {
    for (const auto& gap : gpunet::sim::CoverageGaps(reports)) {
      std::printf("coverage: %s\n", gap.c_str());
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}
