#include "provider/machine_record.h"

#include <gtest/gtest.h>

namespace gpunet::provider {
namespace {

codec::MsgMachineUpsert FourGpuMachine() {
  codec::MsgMachineUpsert m;
  m.machine_id = 3;
  m.gpu_model = "H100";
  m.gpu_count = 4;
  m.vram_gib = 80;
  return m;
}

TEST(MachineRecord, FollowsTheHealthyGpusNeverUnderTheLeasedOnes) {
  EXPECT_EQ(WantedGpuCount(4, 4, 0), 4u);
  EXPECT_EQ(WantedGpuCount(4, 3, 0), 3u);  // one failed: it leaves the record
  EXPECT_EQ(WantedGpuCount(4, 3, 4), 4u);  // all leased: lowered once a lease ends
  EXPECT_EQ(WantedGpuCount(4, 1, 2), 2u);
  EXPECT_EQ(WantedGpuCount(4, 8, 0), 4u);  // more on the host than provider.yaml sells
  EXPECT_EQ(WantedGpuCount(4, 0, 0), 1u);  // a record keeps one GPU at least
}

TEST(MachineRecord, UpsertsOnlyWhatDiffersKeepingTheConfigsFields) {
  const codec::MsgMachineUpsert config = FourGpuMachine();
  EXPECT_FALSE(PlanMachineRecord(config, 4, 0, 4).has_value());
  auto lowered = PlanMachineRecord(config, 3, 1, 4);
  ASSERT_TRUE(lowered.has_value());
  EXPECT_EQ(lowered->gpu_count, 3u);
  codec::MsgMachineUpsert expected = config;
  expected.gpu_count = 3;
  EXPECT_EQ(*lowered, expected);
  EXPECT_FALSE(PlanMachineRecord(config, 3, 1, 3).has_value());
  auto back = PlanMachineRecord(config, 4, 0, 3);  // healthy again after a restart
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->gpu_count, 4u);
}

}  // namespace
}  // namespace gpunet::provider
