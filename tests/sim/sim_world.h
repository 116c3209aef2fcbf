// The deterministic BFT simulator (architecture §5.3, issue 5 item 5).
//
// N validators (1..10, unequal stakes) live in ONE process. Each runs the real parts
// of a node: a LedgerApp over its own in-memory store (the real state machine), the
// real mempool, the real consensus core driven by the node's real BftDriver and
// LedgerBftAdaptor. Only the world around them is fake and seeded:
//   * a clock that moves from event to event (ticks are milliseconds);
//   * a network that drops, delays (so reorders) and duplicates messages, and cuts
//     the validators into two sides for a while (partitions that heal);
//   * disks that lose what was not synced when their node crashes, and a crash
//     switch that kills a node at its k-th disk operation (mid-step: between the
//     WAL append and its sync, between the certificate and the ledger commit...);
//   * a twin: two nodes with one key that see different messages and so sign
//     conflicting votes (equivocation);
//   * clients sending signed transfers from funded genesis accounts.
// Every random choice comes from one base::SeededRng, so a seed replays exactly;
// the trace hash (BLAKE2b over every delivered message and every commit) shows it.
//
// Invariants checked after every event (a violation ends the run with the seed):
// agreement of honest nodes per height, identical state roots per height, the
// conservation equation on every node's store after each of its commits, and, once
// the network is healed and everyone is up, a new height within a bounded number of
// ticks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gpunet::sim {

/// What one seed's run did and found.
struct SimReport {
  uint64_t seed = 0;
  bool ok = false;
  std::string failure;     ///< the first violated invariant, with the tick
  std::string trace_hash;  ///< hex BLAKE2b of the run's event trace
  // The scenario drawn from the seed.
  uint32_t validators = 0;
  bool twin = false;
  uint32_t loss_percent = 0;
  // What happened.
  uint64_t heights = 0;  ///< highest height every honest node committed
  uint64_t events = 0;   ///< events processed
  uint64_t ticks = 0;    ///< simulated ms at the end
  uint64_t messages_delivered = 0;
  uint64_t messages_dropped = 0;
  uint64_t txs_committed = 0;
  uint64_t decided_after_round0 = 0;  ///< summed over honest nodes' cores
  uint64_t locks_taken = 0;
  uint64_t locks_released = 0;  ///< a lock replaced, or prevoting past it on a newer POL
  uint64_t equivocations_detected = 0;
  uint64_t evidence_committed = 0;  ///< evidence items in committed blocks (one node's view)
  uint64_t partitions = 0;
  uint64_t partitions_healed = 0;  ///< partitions after whose end a new height committed
  uint64_t crashes = 0;
  uint64_t wal_records_replayed = 0;
  uint64_t wal_torn_bytes = 0;
  uint64_t heal_ticks_max = 0;  ///< longest wait for a height after the final heal
  uint64_t catchup_commits = 0;
  uint64_t commit_rounds_sum = 0;  ///< sum of the decided round over heights (one node's view)
  uint64_t driver_cpu_ns = 0;      ///< thread CPU time inside driver calls (core + app), all nodes

  std::string Summary() const;
};

struct SimOptions {
  bool trace = false;  ///< print every event to stderr
  /// Simulated ms of chaos (loss, partitions, crashes) before the network heals.
  uint64_t chaos_ms = 20'000;
  /// After the heal, every honest node must commit a new height within this.
  uint64_t heal_bound_ms = 60'000;
  // Fixed scenarios (bench/bench_consensus.cpp): override what the seed draws.
  uint32_t validators = 0;    ///< 0 = drawn from the seed (1..10)
  int32_t loss_percent = -1;  ///< -1 = drawn (0, 5 or 20)
  bool faults = true;         ///< false: no partitions, crashes, twin or duplicates
  bool load = true;           ///< false: no client transfers
};

/// Runs one seed to the end (or the first violated invariant).
SimReport RunSeed(uint64_t seed, const SimOptions& options = {});

/// The hard cases a seed set must have produced (rounds > 0 committed, a lock taken
/// and released, an equivocation detected and its evidence committed, a partition
/// healed, a crash recovered from the WAL); one line per case that never happened.
std::vector<std::string> CoverageGaps(const std::vector<SimReport>& reports);

/// The commit the binary was built from (configure time; env GPUNET_GIT_COMMIT wins).
std::string GitCommit();

}  // namespace gpunet::sim
