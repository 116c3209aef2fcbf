// bench-libs: gpunet_node gpunet_client
//
// Signed transfers per second through a real node (issue 3 item 12, architecture §6).
//
// The node is the product's: `node::InitHome` writes a genesis funding
// --accounts accounts (default 1,000,000; --senders of them have keys, the rest
// are recipients), `node::Node::Start` opens it on RocksDB with synced commits
// and runs the solo engine with the default genesis block limits. Transfers to
// random recipients are signed before the clock starts (signing is the client's
// cost, not the node's) and then submitted through `Node::SubmitTx` — the exact
// path of POST /tx minus the JSON: CheckTx with signature verification (nothing is
// pre-verified), the mempool's policy, the engine wake-up — from one thread per
// core. Load runs for --seconds (default 10), then the node drains its mempool;
// the clock stops when the last accepted tx is committed.
//
// In the same run: the raw ed25519 verify rate on all cores (bench/baseline.h),
// the wall this figure is measured against, before and after the load (the
// higher one counts). One line:
//   transfers_per_s=N block_check=on verify_per_s=M ratio=R blocks=B avg_block_txs=T
//
// block_check says whether the ledger's per-block invariant check ran (architecture
// §2.9; on in production). --no-block-check turns it off to measure its cost:
// interleave runs with and without it and compare transfers_per_s and the
// cpu_us_per_transfer / engine_us line (the check runs on the engine thread).
//
// The engine runs blocks at most every --interval-ms (default 100). That is a
// node setting (node.json block_interval_ms), not a block limit: at the devnet
// default of 1000 ms the block limit of 10,000 txs would cap the node at 10k/s.
//
// Usage: bench_node [--accounts N] [--senders S] [--seconds S] [--interval-ms MS]
//                   [--clients C] [--no-block-check]
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/bytes.h"
#include "base/check.h"
#include "base/clock.h"
#include "baseline.h"
#include "client/tx_builder.h"
#include "codec/encoding.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "crypto/hash.h"
#include "node/node.h"
#include "util/keys.h"
#include "util/temp_dir.h"

namespace {

using gpunet::base::Bytes;
namespace fs = std::filesystem;

constexpr uint64_t kBalanceUgpn = 1'000'000'000'000;  // 1M GPN each
constexpr size_t kWindowTxs = 20000;                  // pending txs kept in flight, at most

struct Args {
  uint64_t accounts = 1'000'000;
  uint64_t senders = 100'000;
  double seconds = 10;
  uint64_t interval_ms = 100;
  unsigned clients = 0;     ///< submitting threads; 0: one per core plus one
  bool block_check = true;  ///< the ledger's per-block invariant check
};

// CPU seconds used by this process so far (all threads).
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds the node's engine thread (named gpunet-engine) has used, from
// /proc/self/task/*/schedstat (nanoseconds on a CPU); 0 when it cannot be read.
double EngineCpuSeconds() {
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/self/task", ec)) {
    std::FILE* comm = std::fopen((task.path() / "comm").c_str(), "r");
    if (comm == nullptr) continue;
    char name[32] = {};
    const bool engine = std::fgets(name, sizeof name, comm) != nullptr &&
                        std::strncmp(name, "gpunet-engine", 13) == 0;
    std::fclose(comm);
    if (!engine) continue;
    std::FILE* stat = std::fopen((task.path() / "schedstat").c_str(), "r");
    if (stat == nullptr) return 0;
    unsigned long long ns = 0;
    const bool read = std::fscanf(stat, "%llu", &ns) == 1;
    std::fclose(stat);
    return read ? static_cast<double>(ns) / 1e9 : 0;
  }
  return 0;
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-block-check")) {
      a.block_check = false;
      continue;
    }
    if (i + 1 >= argc) break;
    if (!std::strcmp(argv[i], "--accounts"))
      a.accounts = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--senders"))
      a.senders = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seconds"))
      a.seconds = std::strtod(argv[i + 1], nullptr);
    else if (!std::strcmp(argv[i], "--interval-ms"))
      a.interval_ms = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--clients"))
      a.clients = static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
    ++i;  // the flag's value
  }
  a.senders = std::clamp<uint64_t>(a.senders, 1, a.accounts);
  return a;
}

gpunet::codec::Address RecipientAddress(uint64_t i) {
  Bytes in(8);
  for (int b = 0; b < 8; ++b) in[b] = static_cast<uint8_t>(i >> (8 * b));
  const auto h = gpunet::crypto::Blake2b256(in);
  gpunet::codec::Address a;
  std::copy_n(h.begin(), a.kSize, a.begin());
  return a;
}

// Runs fn(thread_index) on `threads` threads and joins them.
template <typename Fn>
void Parallel(unsigned threads, Fn fn) {
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(fn, t);
  for (auto& th : pool) th.join();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gpunet;
  const Args args = Parse(argc, argv);
  const bench::Baseline base = bench::MeasureBaseline(1.0);
  const unsigned cores = std::max(1u, base.cores);
  // Clients that submit txs, as an RPC server's workers would. One more than
  // the cores: a client blocked for a moment (the mempool lock while the engine
  // reaps a block, a priority handover) then leaves no core idle.
  const unsigned clients = args.clients != 0 ? args.clients : cores + 1;

  gpunet::testing::TempDir dir({.prefix = "gpunet-bench-node"});
  const fs::path home = dir.Sub("home");

  // Keys of the senders; everyone else is a recipient only.
  std::vector<crypto::KeyPair> keys(args.senders, gpunet::testing::TestKey(0));
  Parallel(cores, [&](unsigned t) {
    for (uint64_t i = t; i < args.senders; i += cores) keys[i] = gpunet::testing::TestKey(i);
  });
  node::InitOptions init;
  init.home = home.string();
  init.chain_id = "bench-node";
  init.rpc = "127.0.0.1:0";
  init.block_interval_ms = args.interval_ms;
  init.accounts.reserve(args.accounts);
  for (uint64_t i = 0; i < args.senders; ++i)
    init.accounts.push_back({crypto::AddressOf(keys[i].Public()), kBalanceUgpn});
  for (uint64_t i = args.senders; i < args.accounts; ++i)
    init.accounts.push_back({RecipientAddress(i), kBalanceUgpn});
  double t = bench::NowSeconds();
  auto inited = node::InitHome(init);
  GPUNET_CHECK(inited.has_value());
  init.accounts.clear();
  init.accounts.shrink_to_fit();
  std::fprintf(stderr, "genesis with %" PRIu64 " accounts written in %.1f s\n", args.accounts,
               bench::NowSeconds() - t);

  // Enough signed transfers that load never runs dry: no node can commit more
  // transfers per second than the machine verifies signatures.
  const uint64_t total = static_cast<uint64_t>(args.seconds * base.verify_per_s_allcores * 1.2);
  const uint64_t rounds = (total + args.senders - 1) / args.senders;
  GPUNET_CHECK(rounds <= 60);  // per-sender mempool cap is 64: use more --senders
  t = bench::NowSeconds();
  // txs[c] = client c's txs: its senders (s % clients == c), nonce-major order.
  std::vector<std::vector<Bytes>> txs(clients);
  Parallel(clients, [&](unsigned th) {
    base::SeededRng rng(1000 + th);
    for (uint64_t r = 0; r < rounds; ++r)
      for (uint64_t s = th; s < args.senders; s += clients) {
        const codec::Address to = RecipientAddress(rng.Next() % args.accounts);
        auto tx = client::BuildTransfer(keys[s], "bench-node", r, to, 1 + rng.Next() % 1000,
                                        client::kDefaultTransferFeeUgpn, 0, "");
        GPUNET_CHECK(tx.has_value());
        txs[th].push_back(codec::EncodeTx(*tx));
      }
  });
  std::fprintf(stderr, "%" PRIu64 " transfers signed in %.1f s\n", rounds * args.senders,
               bench::NowSeconds() - t);

  t = bench::NowSeconds();
  node::NodeOptions options;
  options.home = home.string();
  options.log_blocks = false;
  options.check_block_invariants = args.block_check;
  auto started = node::Node::Start(options);
  if (!started) {
    std::fprintf(stderr, "node did not start: %s\n", started.error().ToString().c_str());
    return 1;
  }
  node::Node& n = **started;
  const uint64_t height0 = n.Status().latest_height;
  std::fprintf(stderr, "node opened in %.1f s; loading for %.0f s\n", bench::NowSeconds() - t,
               args.seconds);

  std::atomic<uint64_t> accepted{0}, rejected{0};
  // Where the load waited: the mempool's size as the submitters saw it, and how
  // often it was over the window (then the node, not the submitters, is behind).
  std::atomic<uint64_t> pool_samples{0}, pool_sum{0}, window_full{0};
  std::atomic<bool> stop{false};
  const double t0 = bench::NowSeconds();
  const double cpu0 = CpuSeconds();
  const double engine0 = EngineCpuSeconds();
  Parallel(clients, [&](unsigned th) {
    uint64_t mine = 0;
    for (const Bytes& tx : txs[th]) {
      if ((mine & 255) == 0) {
        if (bench::NowSeconds() - t0 >= args.seconds) stop = true;
        uint64_t pending = n.Status().mempool_txs;
        pool_samples += 1;
        pool_sum += pending;
        if (pending > kWindowTxs) window_full += 1;
        while (!stop && pending > kWindowTxs) {
          std::this_thread::sleep_for(std::chrono::microseconds(500));
          pending = n.Status().mempool_txs;
        }
      }
      if (stop) break;
      node::SubmitResult r = n.SubmitTx(tx);
      if (r.Ok()) {
        ++accepted;
      } else if (rejected++ == 0) {
        std::fprintf(stderr, "first rejection: %s\n", r.message.c_str());
      }
      ++mine;
    }
  });
  const double load_s = bench::NowSeconds() - t0;
  while (n.Status().mempool_txs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double elapsed = bench::NowSeconds() - t0;
  const double cpu_s = CpuSeconds() - cpu0;
  const double engine_s = EngineCpuSeconds() - engine0;
  const node::NodeStatus end = n.Status();
  n.Stop();
  if (const std::error_code removed = dir.Remove())
    std::fprintf(stderr, "cannot remove %s: %s\n", dir.Path().c_str(), removed.message().c_str());

  // The baseline again, after the load: on a shared (virtual) machine the verify
  // rate drifts by 10-20% within a minute. The ratio uses the higher of the two,
  // so a slow baseline can never flatter it.
  const bench::Baseline after = bench::MeasureBaseline(1.0);
  const uint64_t verify_per_s = std::max(base.verify_per_s_allcores, after.verify_per_s_allcores);
  std::fprintf(stderr, "verify_per_s before=%" PRIu64 " after=%" PRIu64 "\n",
               base.verify_per_s_allcores, after.verify_per_s_allcores);

  const uint64_t blocks = end.latest_height - height0;
  const uint64_t per_s = static_cast<uint64_t>(accepted / elapsed);
  std::fprintf(stderr, "load %.1f s + drain %.1f s, %" PRIu64 " accepted, %" PRIu64 " rejected\n",
               load_s, elapsed - load_s, accepted.load(), rejected.load());
  std::fprintf(stderr, "mempool_avg_txs=%" PRIu64 " window_full=%.0f%%\n",
               pool_samples ? pool_sum / pool_samples : 0,
               pool_samples ? 100.0 * static_cast<double>(window_full) /
                                  static_cast<double>(pool_samples.load())
                            : 0.0);
  // Where the time goes, independent of other load on the machine: CPU per
  // committed transfer, the engine thread's part (execution, state tree, commit)
  // apart from the rest (admission, flushes), against the CPU of one signature check.
  const double per_tx_us = accepted ? 1e6 / static_cast<double>(accepted.load()) : 0.0;
  std::fprintf(
      stderr, "cpu_us_per_transfer=%.1f engine_us=%.1f rest_us=%.1f verify_us=%.1f\n",
      cpu_s * per_tx_us, engine_s * per_tx_us, (cpu_s - engine_s) * per_tx_us,
      1e6 / static_cast<double>(std::max(base.verify_per_s_1core, after.verify_per_s_1core)));
  std::printf("transfers_per_s=%" PRIu64 " block_check=%s verify_per_s=%" PRIu64
              " ratio=%.2f blocks=%" PRIu64 " avg_block_txs=%" PRIu64 "\n",
              per_s, args.block_check ? "on" : "off", verify_per_s,
              static_cast<double>(per_s) / static_cast<double>(verify_per_s), blocks,
              blocks ? accepted / blocks : 0);
  return rejected == 0 ? 0 : 1;
}
