// bench-libs: gpunet_storage
//
// Persisted commit cost (issue 2 item 9): commits of 10k-key batches (32-byte
// keys, 100-byte values, half overwrites of existing keys, half new keys), each
// one synced WriteBatch, into a database already holding ~1M keys. Prints one
// line with the raw BLAKE2b and ed25519 verify rates measured in the same run,
// and the commit cost expressed in those units.
//
// Usage: bench_storage [--keys N] [--seconds S]   (defaults 1000000, 10)
// The database lives in a fresh directory under $TMPDIR (or /tmp), removed at exit.
#include <stdlib.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "base/bytes.h"
#include "base/clock.h"
#include "baseline.h"
#include "storage/rocks_kv.h"
#include "util/temp_dir.h"

namespace {

using gpunet::base::Bytes;

constexpr size_t kKeyBytes = 32;
constexpr size_t kValueBytes = 100;
constexpr size_t kBatchKeys = 10000;

/// Key number i of the preloaded set: a fixed function, so the benchmark can
/// overwrite existing keys without remembering them.
Bytes PreloadKey(uint64_t i) {
  gpunet::base::SeededRng rng(i * 0x9e3779b97f4a7c15ull + 1);
  Bytes k(kKeyBytes);
  for (size_t j = 0; j < kKeyBytes; j += 8) {
    uint64_t v = rng.Next();
    std::memcpy(k.data() + j, &v, 8);
  }
  return k;
}

Bytes RandomBytes(gpunet::base::Rng& rng, size_t n) {
  Bytes b(n);
  for (size_t j = 0; j < n; j += 8) {
    uint64_t v = rng.Next();
    std::memcpy(b.data() + j, &v, std::min<size_t>(8, n - j));
  }
  return b;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "bench_storage: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t preload_keys = 1000000;
  double seconds = 10.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--keys") == 0) preload_keys = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::strtod(argv[i + 1], nullptr);
  }

  std::optional<gpunet::testing::TempDir> tmp;
  try {
    tmp.emplace(gpunet::testing::TempDirOptions{.prefix = "gpunet-bench-storage"});
  } catch (const std::runtime_error& e) {
    return Fail(e.what());
  }
  const std::string& dir = tmp->Path();

  auto opened = gpunet::storage::RocksKvStore::Open(dir);
  if (!opened) return Fail(opened.error().ToString());
  auto& store = **opened;

  // Setup: the preload goes in big batches without sync (the benchmark is the
  // synced commits that follow, not the setup).
  const double setup_start = gpunet::bench::NowSeconds();
  gpunet::base::SeededRng value_rng(42);
  for (uint64_t i = 0; i < preload_keys;) {
    gpunet::state::WriteBatch batch;
    for (uint64_t end = std::min(preload_keys, i + 100000); i < end; ++i)
      batch.Put(PreloadKey(i), RandomBytes(value_rng, kValueBytes));
    auto s = store.CommitUnsyncedForTest(batch);
    if (!s) return Fail(s.error().ToString());
  }
  const double setup_s = gpunet::bench::NowSeconds() - setup_start;

  // The fsync floor: a synced commit of one key.
  double floor_us = 0;
  {
    constexpr int kFloorCommits = 20;
    const double start = gpunet::bench::NowSeconds();
    for (int c = 0; c < kFloorCommits; ++c) {
      gpunet::state::WriteBatch batch;
      batch.Put(RandomBytes(value_rng, kKeyBytes), RandomBytes(value_rng, kValueBytes));
      auto s = store.Commit(batch);
      if (!s) return Fail(s.error().ToString());
    }
    floor_us = (gpunet::bench::NowSeconds() - start) * 1e6 / kFloorCommits;
  }

  // The measurement: synced 10k-key commits for about `seconds`.
  gpunet::base::SeededRng rng(7);
  uint64_t commits = 0;
  double commit_s = 0;
  const double run_start = gpunet::bench::NowSeconds();
  while (gpunet::bench::NowSeconds() - run_start < seconds || commits < 3) {
    gpunet::state::WriteBatch batch;
    while (batch.Size() < kBatchKeys) {
      Bytes key = rng.Below(2) == 0 && preload_keys > 0 ? PreloadKey(rng.Below(preload_keys))
                                                        : RandomBytes(rng, kKeyBytes);
      batch.Put(std::move(key), RandomBytes(rng, kValueBytes));
    }
    const double start = gpunet::bench::NowSeconds();  // the commit only, not building the batch
    auto s = store.Commit(batch);
    commit_s += gpunet::bench::NowSeconds() - start;
    if (!s) return Fail(s.error().ToString());
    ++commits;
  }
  const double us_per_commit = commit_s * 1e6 / static_cast<double>(commits);
  const double us_per_key = us_per_commit / static_cast<double>(kBatchKeys);

  const gpunet::bench::Baseline base = gpunet::bench::MeasureBaseline();
  const double us_per_blake2b = 1e6 / static_cast<double>(base.blake2b_200b_per_s);
  const double us_per_verify = 1e6 / static_cast<double>(base.verify_per_s_1core);
  std::printf("storage_commit: db_keys=%" PRIu64 " keys_per_commit=%zu commits=%" PRIu64
              " us_per_key=%.2f us_per_commit=%.0f keys_per_s=%.0f sync_floor_us=%.0f setup_s=%.1f"
              " blake2b_200b_per_s=%" PRIu64 " verify_per_s_1core=%" PRIu64
              " key_cost_in_blake2b=%.2f key_cost_in_verify=%.3f\n",
              preload_keys, kBatchKeys, commits, us_per_key, us_per_commit, 1e6 / us_per_key,
              floor_us, setup_s, base.blake2b_200b_per_s, base.verify_per_s_1core,
              us_per_key / us_per_blake2b, us_per_key / us_per_verify);
  return 0;
}
