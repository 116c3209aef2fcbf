// The simulator under `make test` (ctest entry "sim", label "sim"): a bounded seed
// set must pass every invariant and, together, produce every hard case; a seed must
// replay to the same trace hash. The long campaign is `make sim SEEDS=N`.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/sim_world.h"

namespace gpunet::sim {
namespace {

#ifdef GPUNET_SANITIZE
constexpr uint64_t kSeeds = 6;  // ASan+UBSan runs ~10x slower
#else
constexpr uint64_t kSeeds = 24;
#endif

TEST(Sim, SameSeedSameTraceDifferentSeedsDiffer) {
  const SimReport a = RunSeed(7);
  const SimReport b = RunSeed(7);
  const SimReport c = RunSeed(8);
  ASSERT_TRUE(a.ok) << a.Summary();
  ASSERT_TRUE(c.ok) << c.Summary();
  EXPECT_EQ(a.trace_hash, b.trace_hash) << "seed 7 did not replay identically";
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.heights, b.heights);
  EXPECT_NE(a.trace_hash, c.trace_hash);
}

TEST(Sim, BoundedSeedSetHoldsEveryInvariantAndCoversTheHardCases) {
  std::vector<SimReport> reports;
  std::vector<uint64_t> seeds;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) seeds.push_back(seed);
#ifndef GPUNET_SANITIZE
  // A lock replaced by a newer one is rare (about 1 seed in 60 of `make sim`); seed
  // 41 is one where it happens, so the bounded set covers it too.
  seeds.push_back(41);
#endif
  for (uint64_t seed : seeds) {
    reports.push_back(RunSeed(seed));
    const SimReport& r = reports.back();
    EXPECT_TRUE(r.ok) << r.Summary();
    EXPECT_GE(r.heights, 2u) << r.Summary();
    std::printf("%s\n", r.Summary().c_str());
  }
#ifndef GPUNET_SANITIZE
  for (const std::string& gap : CoverageGaps(reports)) ADD_FAILURE() << "coverage: " << gap;
#endif
}

}  // namespace
}  // namespace gpunet::sim
