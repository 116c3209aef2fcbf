// Checks of a workload's life that hold for every backend (bwrap and podman), shared
// by sandbox_isolation_test and runtime_test's podman tests: a run to the end, Stop's
// SIGTERM, grace and kill, and re-attaching after the caller was killed.
#pragma once

#include <signal.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "integration/sandbox/self_supervisor.h"
#include "runtime/runtime.h"

namespace gpunet::testing {

/// What a workload run to its end left: its status and its whole output.
struct Finished {
  runtime::ExitStatus status;
  std::string out, err;
};

/// Starts `spec` and follows it to its end (failures are the test's).
inline Finished RunToEnd(const runtime::RuntimeOptions& options,
                         const runtime::WorkloadSpec& spec) {
  Finished f;
  runtime::Runtime rt(options);
  auto info = rt.Start(spec);
  EXPECT_TRUE(info.has_value()) << (info ? "" : info.error().ToString());
  if (!info) return f;
  auto st = rt.Follow(spec.id, [&](std::string_view stream, std::string_view d) {
    (stream == "stdout" ? f.out : f.err).append(d);
  });
  EXPECT_TRUE(st.has_value()) << (st ? "" : st.error().ToString());
  if (st) f.status = *st;
  return f;
}

/// Two workloads given as a shell command each (`Sh`) and run through `rt`: one that
/// ends on SIGTERM within the grace (its trap runs), one that ignores it and is killed
/// once the grace is over. Both end as stopped.
template <typename MakeSpec>
void ExpectStopGivesTheGraceThenKills(runtime::Runtime& rt, MakeSpec sh) {
  runtime::WorkloadSpec graceful =
      sh("grace", "trap 'echo got-term; exit 0' TERM; echo up; while true; do sleep 0.05; done");
  graceful.stop_grace_ms = 20000;
  ASSERT_TRUE(rt.Start(graceful).has_value());
  ASSERT_TRUE(WaitForStdout(rt, graceful.id, "up"));  // its trap is set
  auto st = rt.Stop(graceful.id);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->reason, runtime::ExitReason::kStopped) << st->message;
  EXPECT_EQ(st->exit_code, 0) << st->message;
  EXPECT_TRUE(WaitForStdout(rt, graceful.id, "got-term"));

  runtime::WorkloadSpec stubborn =
      sh("stubborn", "trap '' TERM; echo up; while true; do sleep 0.05; done");
  stubborn.stop_grace_ms = 200;
  ASSERT_TRUE(rt.Start(stubborn).has_value());
  ASSERT_TRUE(WaitForStdout(rt, stubborn.id, "up"));
  auto killed = rt.Stop(stubborn.id);
  ASSERT_TRUE(killed.has_value()) << killed.error().ToString();
  EXPECT_EQ(killed->reason, runtime::ExitReason::kStopped) << killed->message;
  EXPECT_EQ(killed->signal, SIGKILL) << killed->message;
}

/// The command ReattachSpec's workloads run: a line, a wait for /work/go, two lines, 7.
inline constexpr const char* kReattachScript =
    "echo before; while [ ! -e /work/go ]; do sleep 0.05; done; echo after; "
    "echo err-line >&2; exit 7";

/// `spec` (running kReattachScript) started by a caller that was then killed: a fresh
/// Runtime ("the provider restarted") finds it running, releases it and follows it to
/// its end with its logs whole.
inline void ExpectReattachedAfterTheCallerIsKilled(const runtime::RuntimeOptions& options,
                                                   const runtime::WorkloadSpec& spec) {
  ASSERT_TRUE(StartFromACallerThatIsKilled(options, spec));
  runtime::Runtime fresh(options);
  auto info = fresh.Attach(spec.id);
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_TRUE(info->running);
  EXPECT_NE(info->supervisor_pid, 0);
  EXPECT_EQ(fresh.List(), std::vector<std::string>{spec.id});
  auto running = fresh.Poll(spec.id);
  ASSERT_TRUE(running.has_value());
  EXPECT_FALSE(running->has_value());
  std::ofstream(info->work_dir + "/go") << "";
  std::string out, err;
  auto st = fresh.Follow(spec.id, [&](std::string_view s, std::string_view d) {
    (s == "stdout" ? out : err).append(d);
  });
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(st->exit_code, 7);
  EXPECT_EQ(st->reason, runtime::ExitReason::kExited);
  EXPECT_EQ(out, "before\nafter\n");
  EXPECT_EQ(err, "err-line\n");
  EXPECT_FALSE(fresh.Attach(spec.id)->running);
}

}  // namespace gpunet::testing
