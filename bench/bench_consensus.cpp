// bench-libs: gpunet_sim_world
// BFT consensus cost (issue 5 item 7): 4 validators in the deterministic simulator
// (real cores, real LedgerApps, real signatures; simulated clock and network) under
// 0%, 5% and 20% message loss, with transfer load and no other faults. Printed on
// ONE line: commit latency in simulated ticks (ms) per height, rounds per height,
// and the CPU time per committed height spent inside the node's BFT driver (the
// core with its signature checks, plus the ledger calls it makes) per validator,
// also as a ratio to the ed25519 verify time measured in the same run.
//
//   bench_consensus [seeds=3] [sim_ms=30000]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "baseline.h"
#include "sim/sim_world.h"

using namespace gpunet;

int main(int argc, char** argv) {
  const uint64_t seeds = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 3;
  const uint64_t sim_ms = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 30000;
  bench::Baseline base = bench::MeasureBaseline(1.0);
  const double verify_us = 1e6 / static_cast<double>(base.verify_per_s_1core);
  std::string line = "bench_consensus: 4 validators";
  for (int loss : {0, 5, 20}) {
    uint64_t heights = 0, ticks = 0, rounds = 0, cpu_ns = 0;
    for (uint64_t seed = 1; seed <= seeds; ++seed) {
      sim::SimOptions o;
      o.validators = 4;
      o.loss_percent = loss;
      o.faults = false;
      o.chaos_ms = sim_ms;
      const sim::SimReport r = sim::RunSeed(1000 + seed, o);
      if (!r.ok) {
        std::fprintf(stderr, "%s\n", r.Summary().c_str());
        return 1;
      }
      heights += r.heights;
      ticks += r.ticks;
      rounds += r.commit_rounds_sum + r.heights;  // a height decided in round k took k + 1
      cpu_ns += r.driver_cpu_ns;
    }
    const double per_height_cpu_us =
        static_cast<double>(cpu_ns) / 1000.0 / static_cast<double>(heights) / 4.0;
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        " | loss %d%%: %.0f ticks/height, %.2f rounds/height, %.0f us CPU/height/validator"
        " (= %.1f verifies)",
        loss, static_cast<double>(ticks) / static_cast<double>(heights),
        static_cast<double>(rounds) / static_cast<double>(heights), per_height_cpu_us,
        per_height_cpu_us / verify_us);
    line += buf;
  }
  std::printf("%s | baseline: ed25519 verify %llu/s (1 core), BLAKE2b-200B %llu/s\n", line.c_str(),
              static_cast<unsigned long long>(base.verify_per_s_1core),
              static_cast<unsigned long long>(base.blake2b_200b_per_s));
  return 0;
}
