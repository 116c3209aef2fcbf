// The gate in front of POST /tx/simulate: while one call's work runs, another is
// turned away at once (no wait, its work never runs); afterwards calls run again.
#include "node/one_at_a_time.h"

#include <gtest/gtest.h>

#include <future>
#include <optional>
#include <thread>

namespace gpunet::node {
namespace {

TEST(OneAtATime, TurnsAwayACallWhileOneRunsThenRunsAgain) {
  OneAtATime gate;
  int runs = 0;
  std::promise<void> running, release;
  std::shared_future<void> released = release.get_future().share();
  std::optional<int> first;
  std::thread slow([&] {
    first = gate.TryRun([&] {
      ++runs;
      running.set_value();
      released.wait();  // holds the gate until the main thread has tried
      return 1;
    });
  });
  running.get_future().wait();
  EXPECT_FALSE(gate.TryRun([&] {
    ++runs;
    return 2;
  }));
  release.set_value();
  slow.join();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(runs, 1);  // the refused call's work never ran
  EXPECT_EQ(gate.TryRun([&] {
    ++runs;
    return 3;
  }),
            3);
  EXPECT_EQ(runs, 2);
}

}  // namespace
}  // namespace gpunet::node
