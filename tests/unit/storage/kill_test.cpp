// Real processes: a child commits numbered batches and reports each one after
// Commit returns; the parent SIGKILLs it at random moments and checks that
// every reported batch survived whole, and nothing that was never committed
// appeared. Also: a second process is refused while the first holds the lock.
//
// The child is this test binary run again (posix_spawn of /proc/self/exe) with
// a gtest filter selecting StorageChild.*: a forked copy of a process that
// already runs RocksDB threads would inherit locks held by threads that do not
// exist in the child.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "base/clock.h"
#include "state/keyspace.h"
#include "storage/rocks_kv.h"
#include "unit/storage/storage_test_util.h"
#include "util/temp_dir.h"

extern char** environ;

namespace gpunet::storage {
namespace {

using gpunet::testing::TempDir;

constexpr const char* kChildDirEnv = "GPUNET_STORAGE_CHILD_DIR";
constexpr const char* kChildFdEnv = "GPUNET_STORAGE_CHILD_FD";
constexpr const char* kChildModeEnv = "GPUNET_STORAGE_CHILD_MODE";
constexpr int kPowerCutExit = 42;

/// Keys in batch n: mostly small, every 8th large so kills land inside big writes.
uint32_t KeysIn(uint64_t n) {
  return n % 8 == 0 ? 3000 : 2 + static_cast<uint32_t>((n * 7919) % 97);
}

base::Bytes ValueOf(uint64_t n, uint32_t i) {
  base::Bytes v(100);
  for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<uint8_t>(n * 31 + i * 7 + j);
  return v;
}

/// Batch n: its keys ReceiptKey(n, i), the meta height n, and the deletion of
/// the first key of batch n-1 (so deletes must be all-or-nothing too).
state::WriteBatch Batch(uint64_t n) {
  state::WriteBatch batch;
  for (uint32_t i = 0; i < KeysIn(n); ++i)
    batch.Put(state::keyspace::ReceiptKey(n, i), ValueOf(n, i));
  if (n > 1) batch.Delete(state::keyspace::ReceiptKey(n - 1, 0));
  batch.Put(state::keyspace::MetaKey(state::keyspace::kMetaLastHeight),
            state::keyspace::EncodeU64(n));
  return batch;
}

uint64_t LastCommitted(const state::KvStore& kv) {
  auto v = kv.Get(state::keyspace::MetaKey(state::keyspace::kMetaLastHeight));
  if (!v || !*v) return 0;
  return *state::keyspace::DecodeU64(**v);
}

// ---- the child ----

bool WriteAll(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    ssize_t w = write(fd, p, size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    size -= static_cast<size_t>(w);
  }
  return true;
}

TEST(StorageChild, Run) {
  const char* dir = getenv(kChildDirEnv);
  if (dir == nullptr) GTEST_SKIP() << "runs only as the child of the kill tests";
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const int fd = atoi(getenv(kChildFdEnv));
  const std::string mode = getenv(kChildModeEnv);
  RocksKvOptions options;
  options.fault_injection = mode == "power";
  options.write_buffer_bytes = 256 << 10;  // flushes happen while the power may go
  auto store = RocksKvStore::Open(dir, options);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  if (mode == "power") {
    ASSERT_TRUE(CutPowerOnSignal(*(*store)->Faults(), SIGUSR1, kPowerCutExit));
  }
  if (mode == "hold") {
    const uint8_t ready = 1;
    ASSERT_TRUE(WriteAll(fd, &ready, 1));
    for (;;) pause();
  }
  for (uint64_t n = LastCommitted(**store) + 1;; ++n) {
    auto s = (*store)->Commit(Batch(n));
    if (!s && mode == "power")
      for (;;) pause();  // the cut is under way; the cutting thread exits the process
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    ASSERT_TRUE(WriteAll(fd, &n, sizeof n));  // only after Commit returned
    if (mode == "power") {
      // A ghost: written, never synced by itself. The next synced commit makes
      // it durable (one WAL); a cut before that must take it away.
      state::WriteBatch ghost;
      ghost.Put(state::keyspace::ValidatorSetKey(n), base::Bytes{0x67});
      if (!(*store)->CommitUnsyncedForTest(ghost))
        for (;;) pause();
    }
  }
}

// ---- the parent ----

struct Child {
  pid_t pid = -1;
  int read_fd = -1;
};

Child Spawn(const std::string& dir, const std::string& mode) {
  int fds[2];
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
  // The write end must survive exec in the child only.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int child_fd = 100;
  posix_spawn_file_actions_adddup2(&actions, fds[1], child_fd);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.starts_with("GPUNET_STORAGE_CHILD_") || s.starts_with("GTEST_")) continue;
    env_strings.push_back(s);
  }
  env_strings.push_back(std::string(kChildDirEnv) + "=" + dir);
  env_strings.push_back(std::string(kChildFdEnv) + "=" + std::to_string(child_fd));
  env_strings.push_back(std::string(kChildModeEnv) + "=" + mode);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", filter = "--gtest_filter=StorageChild.Run",
              brief = "--gtest_brief=1";
  char* argv[] = {exe.data(), filter.data(), brief.data(), nullptr};
  Child child;
  EXPECT_EQ(posix_spawn(&child.pid, exe.c_str(), &actions, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  child.read_fd = fds[0];
  return child;
}

/// Kills the child, reaps it, and returns everything it wrote to the pipe.
std::string KillAndDrain(Child& child) {
  kill(child.pid, SIGKILL);
  int status = 0;
  EXPECT_EQ(waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child ended on its own (status " << status << "): it failed before the kill";
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t r = read(child.read_fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  close(child.read_fd);
  return out;
}

/// Every batch 1..last complete (its first key deleted unless it is the last),
/// nothing else under the receipt table.
void ExpectBatchesUpTo(const state::KvStore& kv, uint64_t last) {
  std::map<uint64_t, uint32_t> count;
  bool ok = true;
  auto s = kv.Scan(base::Bytes{state::keyspace::kReceiptByLocation},
                   state::keyspace::PrefixEnd(base::Bytes{state::keyspace::kReceiptByLocation}),
                   [&](base::ByteSpan k, base::ByteSpan v) {
                     const uint64_t n = base::ReadU64BE(k.data() + 1);
                     const uint32_t i = base::ReadU32BE(k.data() + 9);
                     if (base::Bytes(v.begin(), v.end()) != ValueOf(n, i)) ok = false;
                     ++count[n];
                     return true;
                   });
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_TRUE(ok) << "a value differs from what was written";
  ASSERT_EQ(count.size(), last) << "batches present: " << count.size() << ", committed height "
                                << last;
  for (const auto& [n, c] : count) {
    ASSERT_LE(n, last) << "batch " << n << " is beyond the committed height";
    const uint32_t expected = KeysIn(n) - (n < last ? 1 : 0);
    ASSERT_EQ(c, expected) << "batch " << n << " is torn";
  }
  if (last > 0) {
    EXPECT_TRUE((*kv.Get(state::keyspace::ReceiptKey(last, 0))).has_value());
  }
}

/// Stops the child: SIGKILL, or in "power" mode SIGUSR1 (cut the power, then
/// _exit). Reaps it and returns everything it wrote to the pipe.
std::string Stop(Child& child, bool power) {
  if (!power) return KillAndDrain(child);
  kill(child.pid, SIGUSR1);
  int status = 0;
  EXPECT_EQ(waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kPowerCutExit)
      << "the child did not end by the power cut (status " << status << ")";
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t r = read(child.read_fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  close(child.read_fd);
  return out;
}

/// Rounds of: start the child, stop it at a random moment, reopen, check.
void StopAtRandomMoments(bool power, int rounds) {
  // A fresh seed each run (more schedules over time); GPUNET_SEED replays one.
  const char* fixed = getenv("GPUNET_SEED");
  const uint64_t seed =
      fixed != nullptr
          ? std::strtoull(fixed, nullptr, 0)
          : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::printf("%s seed=%llu\n", power ? "PowerCut" : "KillNine",
              static_cast<unsigned long long>(seed));
  SCOPED_TRACE("seed=" + std::to_string(seed));
  base::SeededRng rng(seed);
  TempDir dir;
  uint64_t committed = 0;  // what the parent knows is on disk
  int rounds_with_progress = 0;
  for (int round = 0; round < rounds; ++round) {
    Child child = Spawn(dir.Path(), power ? "power" : "commit");
    // A power cut needs the handler armed: always wait for the first report.
    if (round % 2 == 0 && !power) {
      // Kill anywhere: during startup, recovery or commits.
      std::this_thread::sleep_for(std::chrono::milliseconds(rng.Below(400)));
    } else {
      // Stop during commits: wait for the first report, then a random while.
      uint64_t first = 0;
      ASSERT_EQ(read(child.read_fd, &first, sizeof first), static_cast<ssize_t>(sizeof first));
      EXPECT_EQ(first, committed + 1);
      committed = first;
      std::this_thread::sleep_for(std::chrono::microseconds(rng.Below(150000)));
    }
    const std::string reports = Stop(child, power);
    ASSERT_EQ(reports.size() % sizeof(uint64_t), 0u);
    uint64_t reported = committed;
    for (size_t off = 0; off < reports.size(); off += sizeof(uint64_t)) {
      uint64_t n;
      std::memcpy(&n, reports.data() + off, sizeof n);
      ASSERT_EQ(n, reported + 1) << "reports out of order";
      reported = n;
    }
    auto store = RocksKvStore::Open(dir.Path());
    ASSERT_TRUE(store.has_value()) << "round " << round << ": " << store.error().ToString();
    const uint64_t last = LastCommitted(**store);
    // Every reported batch is there; at most one more (committed, stopped
    // before it could report).
    ASSERT_GE(last, reported) << "round " << round << ": a reported commit was lost";
    ASSERT_LE(last, reported + 1) << "round " << round
                                  << ": more batches than the child could have written";
    ExpectBatchesUpTo(**store, last);
    if (power && last > 0) {
      // The ghost written after the last synced commit was never synced.
      EXPECT_EQ(*(*store)->Get(state::keyspace::ValidatorSetKey(last)), std::nullopt)
          << "round " << round << ": unsynced data survived the power cut";
    }
    if (last > committed) ++rounds_with_progress;
    committed = last;
  }
  std::printf("%s: %d rounds, %d with new commits, %llu batches committed\n",
              power ? "PowerCut" : "KillNine", rounds, rounds_with_progress,
              static_cast<unsigned long long>(committed));
}

TEST(KillNine, EveryReportedCommitSurvivesAndNoneIsTorn) {
  StopAtRandomMoments(/*power=*/false, 24);
}

// The same with a real process on the power-loss layer, cut by a signal the way
// the node's power-loss integration test does it (CutPowerOnSignal).
TEST(PowerCutProcess, EveryReportedCommitSurvivesAndNoneIsTorn) {
  StopAtRandomMoments(/*power=*/true, 12);
}

TEST(PowerCutProcess, ArmingIsCheckedAndOnlyOnce) {
  FaultInjection faults;
  EXPECT_EQ(CutPowerOnSignal(faults, SIGKILL, 1).error().code, base::ErrorCode::kInvalidArgument);
  EXPECT_EQ(CutPowerOnSignal(faults, 0, 1).error().code, base::ErrorCode::kInvalidArgument);
}

TEST(KillNine, SecondProcessIsRefusedWhileTheFirstHoldsTheLock) {
  TempDir dir;
  Child holder = Spawn(dir.Path(), "hold");
  uint8_t ready = 0;
  ASSERT_EQ(read(holder.read_fd, &ready, 1), 1) << "the child could not open the database";
  auto r = RocksKvStore::Open(dir.Path());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, base::ErrorCode::kConflict);
  EXPECT_NE(r.error().message.find("another gpunet process is using " + dir.Path()),
            std::string::npos)
      << r.error().message;
  KillAndDrain(holder);
  // The kernel releases the lock with the process.
  auto after = RocksKvStore::Open(dir.Path());
  EXPECT_TRUE(after.has_value()) << after.error().ToString();
}

}  // namespace
}  // namespace gpunet::storage
