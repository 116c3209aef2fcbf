// A running gpunet node: RocksDB store + LedgerApp + mempool + the consensus engine
// (solo, or the in-house bft driver) + the RPC server of docs/rpc.md.
//
// Home directory layout (InitHome creates it, node/home.h; Node::Start reads it):
//   <home>/config/genesis.json   the chain's genesis (ledger/genesis.h)
//   <home>/config/node.json      {"rpc":"127.0.0.1:26657","block_interval_ms":1000,
//                                 "engine":"solo","rpc_limits":{...}} (NodeConfig,
//                                 node/config.h; rpc_limits: the RpcLimits that differ
//                                 from the defaults)
//   <home>/config/validator.seed hex seed of the validator key (0600)
//   <home>/data/                 the RocksDB database
//   <home>/keys/                 the keystore (crypto/keystore.h): funded named keys
//
// Threads: one engine thread builds, executes and commits blocks; the HTTP server
// runs its own io/worker threads. "committed" is reported to RPC waiters and to
// websocket subscribers only after the block's synced KvStore commit returned.
//
// Embedding (gpunet devnet): InitHome once, then Node::Start, print RpcUrl(),
// Wait() until a signal handler calls RequestStop() (async-signal-safe), Stop().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/result.h"
#include "codec/tx_result.h"
#include "codec/types.h"
#include "node/config.h"
#include "node/home.h"

namespace gpunet::node {

struct NodeOptions {
  std::string home;
  /// Overrides node.json's "rpc" ("host:port"; port 0 = any free port).
  std::optional<std::string> rpc;
  /// Overrides node.json's block_interval_ms.
  std::optional<uint64_t> block_interval_ms;
  /// Route storage through the power-loss fault layer (also: env GPUNET_FAULT_FS=1);
  /// SIGUSR1 then cuts the power and exits the process with code 99 (tests).
  bool fault_fs = false;
  /// Log one line per block (height, txs, hash) to stderr.
  bool log_blocks = true;
  /// The ledger's per-block invariant check (ledger::AppOptions); off only to
  /// measure its cost (bench_node --no-block-check).
  bool check_block_invariants = true;
  /// Where the node reads the time: the time of each block it proposes (solo), the
  /// bft driver's timers and the deadlines of wait=committed requests. Must outlive
  /// the node. Tests pass a base::ManualClock to fix the block times.
  const base::Clock* clock = &base::SystemClock::Instance();
};

/// Status snapshot (what GET /status returns).
struct NodeStatus {
  std::string chain_id;
  uint64_t latest_height = 0;
  std::string latest_block_hash;  ///< hex
  uint64_t latest_time_ms = 0;
  uint64_t mempool_txs = 0;
};

/// What SubmitTx did with a tx: admitted to the mempool (code kOk) or refused.
struct SubmitResult {
  codec::TxCode code = codec::TxCode::kOk;
  std::string message;   ///< why it was refused; empty when admitted
  base::Hash32 tx_hash;  ///< zero when the bytes did not decode
  uint64_t fee_ugpn = 0;
  bool Ok() const { return code == codec::TxCode::kOk; }
};

class Node {
 public:
  /// Opens <home>, replays nothing (LedgerApp resumes at the last committed
  /// height), starts the RPC server and the engine thread. Errors: kNotFound when
  /// the home was never initialised (say `gpunet init`), kConflict when another
  /// node holds the database, kIo when the RPC port is taken or the home cannot be
  /// checked (naming the path and the OS's reason).
  static base::Result<std::unique_ptr<Node>> Start(const NodeOptions& options);
  ~Node();  ///< Stop()s
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// "http://127.0.0.1:<port>"
  std::string RpcUrl() const;
  /// Empty after Stop().
  NodeStatus Status() const;

  /// Admits one encoded signed tx exactly as POST /tx does (CheckTx with signature
  /// verification on the calling thread, then the mempool's policy; evicted txs'
  /// waiters are answered) and wakes the engine. Thread-safe: callers on several
  /// threads verify in parallel. The benchmark's entry point (bench/bench_node.cpp).
  /// Like the RPC workers, a calling thread is lowered to nice 10 on its first
  /// call, so that block production keeps ahead of admission under load.
  SubmitResult SubmitTx(base::ByteSpan tx_bytes);

  /// Blocks until RequestStop() or Stop() was called, or the engine failed
  /// (store error). Returns the engine's error if it failed.
  base::Status Wait();
  /// Async-signal-safe: wakes Wait(); does not stop anything itself.
  void RequestStop();
  /// Stops the engine (after the block in progress commits), the RPC server, and
  /// closes the store. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// Installs SIGINT/SIGTERM handlers that call node.RequestStop() (one node per
/// process). Call after Start.
void StopOnSignals(Node& node);

}  // namespace gpunet::node
