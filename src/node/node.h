// A running gpunet node: RocksDB store + LedgerApp + mempool + the consensus engine
// (solo, or the in-house bft driver) + the RPC server of docs/rpc.md.
//
// Home directory layout (InitHome creates it; Node::Start reads it):
//   <home>/config/genesis.json   the chain's genesis (ledger/genesis.h)
//   <home>/config/node.json      {"rpc":"127.0.0.1:26657","block_interval_ms":1000,
//                                 "engine":"solo","rpc_limits":{...}} (NodeConfig;
//                                 rpc_limits: the RpcLimits that differ from the defaults)
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

namespace gpunet::node {

/// A key InitHome creates in <home>/keys and funds in the genesis.
struct FundedKey {
  std::string name;           ///< keystore name ([a-z0-9_-]{1,64})
  uint64_t balance_ugpn = 0;  ///< genesis balance
};

/// An extra genesis account by address (a key that lives elsewhere).
struct FundedAddress {
  codec::Address address;
  uint64_t balance_ugpn = 0;
};

struct InitOptions {
  std::string home;  ///< created when missing; must not hold a config yet
  std::string chain_id = "gpunet-devnet";
  std::string engine = "solo";          ///< "solo" or "bft" (docs/consensus.md)
  std::string rpc = "127.0.0.1:26657";  ///< host:port the node listens on (port 0: any)
  uint64_t block_interval_ms = 1000;    ///< solo: at most one block per interval
  std::vector<FundedKey> keys;          ///< created in <home>/keys, funded
  std::vector<FundedAddress> accounts;  ///< funded by address
  /// Passphrase sealing the created key files (must not be empty when keys is
  /// non-empty). Devnet uses a fixed, printed one; never use that for real funds.
  std::string key_passphrase;
  /// Argon2id cost for those key files: false = interactive (slow, real use),
  /// true = the cheapest the key file format allows (devnet, tests).
  bool fast_kdf = false;
  uint64_t genesis_time_ms = 0;  ///< 0: now (wall clock)
};

/// What InitHome made.
struct InitResult {
  std::string genesis_path;
  std::string node_config_path;
  codec::PublicKey validator_public_key;
  struct Key {
    std::string name;
    codec::Address address;
    std::string address_text;  ///< bech32 "gpn1..."
    uint64_t balance_ugpn = 0;
    std::string mnemonic;  ///< 24-word backup, shown once
  };
  std::vector<Key> keys;
};

/// Creates <home> with genesis.json (the given accounts and a freshly generated
/// validator key), node.json, the validator seed and the funded keys.
/// kAlreadyExists when <home>/config/genesis.json exists; kIo, naming the path and
/// the OS's reason, when the home cannot be checked or made.
base::Result<InitResult> InitHome(const InitOptions& options);

/// node.json's "rpc_limits": the RPC's caps that keep one greedy client from
/// starving the others (docs/rpc.md, "Limits per client"). Counts and times are
/// at least 1.
struct RpcLimits {
  uint64_t connections_max = 256;                  ///< all peers; beyond it 503
  uint64_t connections_per_address_max = 32;       ///< one peer address; beyond it 429
  uint64_t ws_per_address_max = 8;                 ///< websockets of one address; 429
  uint64_t pending_requests_max = 256;             ///< all peers; beyond it 503
  uint64_t pending_requests_per_address_max = 32;  ///< one address; beyond it 429
  /// POST /tx with "wait":"committed" held open at once for one address; 429. (A
  /// connection carries one request at a time, so one wait per connection.)
  uint64_t waits_per_address_max = 8;
  uint64_t idle_timeout_ms = 30'000;  ///< keep-alive connection without a request
  /// A websocket subscribed to no topic is closed after this.
  uint64_t ws_unsubscribed_timeout_ms = 30'000;
  /// Bytes queued for one websocket subscriber; beyond it the subscriber is cut
  /// (a block's txs frame can be MBs, so a frame count alone bounds nothing).
  uint64_t ws_queue_bytes_max = 32 * 1024 * 1024;
  /// Loopback peers skip the per-address caps (not the global ones): on the default
  /// listen address 127.0.0.1 every client is local and shares that address.
  bool exempt_loopback = true;
};

/// <home>/config/node.json as parsed.
struct NodeConfig {
  std::string rpc_host = "127.0.0.1";
  uint16_t rpc_port = 26657;
  uint64_t block_interval_ms = 1000;
  std::string engine = "solo";
  RpcLimits rpc_limits;
};
base::Result<NodeConfig> LoadNodeConfig(const std::string& path);
std::string NodeConfigToJson(const NodeConfig& config);

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
