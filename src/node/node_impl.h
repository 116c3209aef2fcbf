// Node::Impl: what a running node holds, and how its parts reach each other.
// Private to src/node: node.cpp wires it (Node::Start) and holds Node's methods,
// engine_loop.cpp runs the engine thread, rpc_routes.cpp serves the RPC.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <optional>
#include <thread>

#include "base/clock.h"
#include "base/mutex.h"
#include "consensus/solo.h"
#include "ledger/app.h"
#include "ledger/genesis.h"
#include "mempool/mempool.h"
#include "node/bft_driver.h"
#include "node/market_index.h"
#include "node/node.h"
#include "node/one_at_a_time.h"
#include "node/solo_adaptor.h"
#include "node/tx_waiters.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "storage/rocks_kv.h"

namespace gpunet::node {

/// `clock`'s wall-clock time as the unsigned milliseconds blocks carry.
inline uint64_t WallMs(const base::Clock& clock) {
  return static_cast<uint64_t>(clock.NowMs());
}

struct Node::Impl final : BlockListener {
  NodeOptions options;
  NodeConfig config;
  ledger::Genesis genesis;
  std::unique_ptr<storage::RocksKvStore> kv;
  std::unique_ptr<IndexedKvStore> indexed_kv;  ///< kv, telling market_index each commit
  std::unique_ptr<MarketIndex> market_index;   ///< the market lists' indexes (market_index.h)
  std::unique_ptr<ledger::LedgerApp> app;
  std::unique_ptr<mempool::Mempool> pool;
  std::unique_ptr<consensus::SoloEngine> engine;
  std::unique_ptr<SoloLedgerAdaptor> solo;  ///< the solo engine's view of app and pool
  std::unique_ptr<BftNodeEngine> bft;       ///< set when node.json says "engine": "bft"
  server::metrics::Registry registry;
  std::unique_ptr<server::HttpServer> server;

  server::metrics::Gauge* m_height = nullptr;
  server::metrics::Counter* m_txs_committed = nullptr;
  server::metrics::Gauge* m_mempool_txs = nullptr;
  server::metrics::Histogram* m_commit_seconds = nullptr;
  server::metrics::Counter* m_simulations = nullptr;
  server::metrics::Counter* m_simulations_refused = nullptr;
  /// One POST /tx/simulate at a time: a simulation holds the ledger's lock against
  /// the engine's commits, so four RPC workers simulating would stall the chain.
  OneAtATime m_simulation;

  // Engine thread control.
  std::thread engine_thread;
  base::Mutex engine_mu;
  std::condition_variable engine_cv;  ///< waits on engine_mu
  bool stopping GUARDED_BY(engine_mu) = false;
  /// A tx was admitted since the engine's last step.
  bool tx_arrived GUARDED_BY(engine_mu) = false;
  /// The solo engine waits and a new tx would wake it.
  bool engine_wants_tx GUARDED_BY(engine_mu) = false;
  std::optional<base::Error> engine_error GUARDED_BY(engine_mu);
  bool engine_done GUARDED_BY(engine_mu) = false;

  // Wait() / RequestStop (signal-safe via a pipe-free atomic + polling).
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> stopped{false};

  TxWaiters waiters;  ///< POST /tx requests with "wait":"committed"

  // ---- the engine thread (engine_loop.cpp)
  void EngineLoop() EXCLUDES(engine_mu);
  void SoloEngineLoop() EXCLUDES(engine_mu);
  void BftEngineLoop() EXCLUDES(engine_mu);
  /// Ends the engine thread's loop: records `error` (if any) and wakes Wait().
  void EngineDone(std::optional<base::Error> error) EXCLUDES(engine_mu);
  /// Tells the engine a tx was admitted, and wakes it if it waits for one.
  void NotifyTxArrived() EXCLUDES(engine_mu);
  void OnBftCommitted(const BftCommitted& c);
  void PublishCommitted(const codec::Block& block, const ledger::FinalizeBlockResponse& finalized,
                        const ledger::CommitResponse& committed, double seconds);
  // BlockListener (the solo engine's adaptor)
  void OnTxDropped(const base::Hash32& tx_hash, codec::TxCode code,
                   const std::string& message) override;
  void OnBlockCommitted(const codec::Block& block, const ledger::FinalizeBlockResponse& finalized,
                        const ledger::CommitResponse& committed, double seconds) override;

  // ---- the RPC (rpc_routes.cpp)
  void RegisterRoutes();
  mempool::AddResult Admit(base::ByteSpan tx_bytes);
  void PostTx(server::Request req, server::Responder responder);
  server::Response SimulateTx(const server::Request& req);
  std::optional<server::Response> RefuseUnexecutableWait(base::ByteSpan tx_bytes);
};

}  // namespace gpunet::node
