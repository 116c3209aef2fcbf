// The node reads the time of the blocks it proposes from the Clock in its
// NodeOptions: with a ManualClock set years before the wall clock, each block
// carries exactly the time that clock shows.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "base/clock.h"
#include "client/tx_builder.h"
#include "codec/encoding.h"
#include "node/node.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace gpunet::node {
namespace {

using gpunet::testing::TempDir;
using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

// A liveness bound for a block that should come, not a timing assertion.
constexpr int64_t kGuardMs = 20'000;
constexpr uint64_t kGenesisMs = 1'600'000'000'000;  // September 2020

/// Submits a transfer from key 1 and waits until the node has committed `height`.
void TransferAndWaitForHeight(Node& node, uint64_t nonce, uint64_t height) {
  auto tx = client::BuildTransfer(TestKey(1), "clock-test", nonce, TestAddress(2), 1'000,
                                  client::kDefaultTransferFeeUgpn, 0, "");
  ASSERT_TRUE(tx) << tx.error().ToString();
  const SubmitResult submitted = node.SubmitTx(codec::EncodeTx(*tx));
  ASSERT_TRUE(submitted.Ok()) << submitted.message;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(kGuardMs);
  while (node.Status().latest_height < height) {
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "no block at height " << height;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(node.Status().latest_height, height) << "one tx, one block";
}

TEST(NodeClock, BlockTimesComeFromTheClockInTheOptions) {
  TempDir dir;
  InitOptions init;
  init.home = dir.Path() + "/home";
  init.chain_id = "clock-test";
  init.rpc = "127.0.0.1:0";
  init.block_interval_ms = 10;
  init.genesis_time_ms = kGenesisMs;
  init.accounts.push_back({TestAddress(1), 1'000'000});
  auto inited = InitHome(init);
  ASSERT_TRUE(inited) << inited.error().ToString();

  // An hour after genesis: years before the wall clock, so a block time read from
  // the system would not match.
  base::ManualClock clock(static_cast<int64_t>(kGenesisMs) + 3'600'000);
  NodeOptions options;
  options.home = init.home;
  options.log_blocks = false;
  options.clock = &clock;
  auto started = Node::Start(options);
  ASSERT_TRUE(started) << started.error().ToString();
  Node& node = **started;

  ASSERT_NO_FATAL_FAILURE(TransferAndWaitForHeight(node, 0, 1));
  EXPECT_EQ(node.Status().latest_time_ms, kGenesisMs + 3'600'000);

  // The clock moves only when told to, and the next block's time with it.
  clock.AdvanceMs(1'234);
  ASSERT_NO_FATAL_FAILURE(TransferAndWaitForHeight(node, 1, 2));
  EXPECT_EQ(node.Status().latest_time_ms, kGenesisMs + 3'601'234);
  node.Stop();
}

}  // namespace
}  // namespace gpunet::node
