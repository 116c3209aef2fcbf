#include "provider/gpu_pool.h"

#include <gtest/gtest.h>

namespace gpunet::provider {
namespace {

GpuPool FourGpus() {
  std::vector<PoolGpu> gpus;
  for (const char* u : {"GPU-d", "GPU-b", "GPU-a", "GPU-c"})
    gpus.push_back({u, "H100", {}, true, {}, 0});
  return GpuPool(gpus);
}

TEST(GpuPool, ReservesLowestFreeHealthyGpusAndIsIdempotent) {
  GpuPool pool = FourGpus();
  auto a = pool.Reserve(1, 2);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, (std::vector<std::string>{"GPU-a", "GPU-b"}));
  EXPECT_EQ(*pool.Reserve(1, 2), *a);  // the same lease again: the same GPUs
  EXPECT_EQ(pool.Reserve(1, 3).error().code, base::ErrorCode::kConflict);
  auto b = pool.Reserve(2, 2);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*b, (std::vector<std::string>{"GPU-c", "GPU-d"}));
  EXPECT_EQ(pool.FreeHealthy(), 0u);
  auto c = pool.Reserve(3, 1);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, base::ErrorCode::kUnavailable);
  pool.Release(1);
  EXPECT_EQ(pool.FreeHealthy(), 2u);
  EXPECT_TRUE(pool.GpusOf(1).empty());
}

TEST(GpuPool, NeverHandsAnUnhealthyGpuToALease) {
  GpuPool pool = FourGpus();
  EXPECT_TRUE(pool.ApplyHealth({{"GPU-a", false, {"ecc: 3 uncorrectable"}}}).empty());
  auto r = pool.Reserve(1, 3);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, (std::vector<std::string>{"GPU-b", "GPU-c", "GPU-d"}));
  EXPECT_FALSE(pool.Reserve(2, 1).has_value());  // only GPU-a is free, and it failed
  EXPECT_EQ(pool.Healthy(), 3u);
}

TEST(GpuPool, HealthReportNamesTheLeasesWhoseGpuJustFailed) {
  GpuPool pool = FourGpus();
  ASSERT_TRUE(pool.Reserve(1, 2).has_value());
  ASSERT_TRUE(pool.Reserve(2, 2).has_value());
  EXPECT_EQ(pool.ApplyHealth({{"GPU-c", false, {"xid 79"}}}), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(pool.ApplyHealth({{"GPU-c", false, {"xid 79"}}}).empty());  // not new
  EXPECT_EQ(pool.LeasesOnUnhealthy(), (std::vector<uint64_t>{2}));
  pool.ApplyHealth({{"GPU-c", true, {}}});
  EXPECT_TRUE(pool.LeasesOnUnhealthy().empty());
}

TEST(GpuPool, AssignRestoresTheBookAndRefusesConflicts) {
  GpuPool pool = FourGpus();
  ASSERT_TRUE(pool.Assign(5, {"GPU-c"}).has_value());
  EXPECT_EQ(pool.GpusOf(5), (std::vector<std::string>{"GPU-c"}));
  EXPECT_EQ(pool.Assign(6, {"GPU-c"}).error().code, base::ErrorCode::kConflict);
  EXPECT_EQ(pool.Assign(6, {"GPU-z"}).error().code, base::ErrorCode::kNotFound);
  EXPECT_TRUE(pool.GpusOf(6).empty());
  auto r = pool.Reserve(7, 3);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, (std::vector<std::string>{"GPU-a", "GPU-b", "GPU-d"}));
}

}  // namespace
}  // namespace gpunet::provider
