// Node's public methods and the wiring of its parts (Node::Start). The home and its
// configuration are home.cpp's and config.cpp's, the engine thread engine_loop.cpp's,
// the RPC rpc_routes.cpp's (node_impl.h says how they meet).
#include "node/node.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "base/check.h"
#include "crypto/address.h"
#include "node/node_impl.h"
#include "storage/fault_fs.h"

namespace gpunet::node {

namespace metrics = server::metrics;

namespace {

/// The config Start runs with: node.json, with options' overrides.
base::Result<NodeConfig> StartConfig(const NodeOptions& options) {
  GPUNET_TRY_ASSIGN(NodeConfig config, LoadNodeConfig(options.home + "/config/node.json"));
  if (options.rpc) {
    GPUNET_TRY_ASSIGN(const auto host_port, ParseHostPort(*options.rpc));
    config.rpc_host = host_port.first;
    config.rpc_port = host_port.second;
  }
  if (options.block_interval_ms) config.block_interval_ms = *options.block_interval_ms;
  if (config.block_interval_ms == 0) config.block_interval_ms = 1;
  return config;
}

/// Opens <home>/data, with the power-loss fault layer when asked (options or env
/// GPUNET_FAULT_FS=1): SIGUSR1 then cuts the power.
base::Result<std::unique_ptr<storage::RocksKvStore>> OpenStore(const NodeOptions& options) {
  storage::RocksKvOptions kvo;
  const char* env = std::getenv("GPUNET_FAULT_FS");
  kvo.fault_injection = options.fault_fs || (env && std::string(env) == "1");
  GPUNET_TRY_ASSIGN(auto kv, storage::RocksKvStore::Open(options.home + "/data", kvo));
  if (kvo.fault_injection) {
    auto faults = kv->Faults();
    GPUNET_CHECK(faults.has_value());
    GPUNET_TRY(storage::CutPowerOnSignal(*faults, SIGUSR1, 99));
  }
  return kv;
}

/// The node's metrics in `impl.registry` (docs/rpc.md, GET /metrics).
void RegisterMetrics(Node::Impl& impl) {
  auto& reg = impl.registry;
  impl.m_height = &reg.GetGauge("gpunet_height", "Last committed block height.");
  impl.m_txs_committed =
      &reg.GetCounter("gpunet_txs_committed_total", "Transactions in committed blocks.");
  impl.m_mempool_txs = &reg.GetGauge("gpunet_mempool_txs", "Transactions waiting in the mempool.");
  impl.m_commit_seconds = &reg.GetHistogram("gpunet_block_commit_seconds",
                                            "Time to build, execute and durably commit one block.",
                                            metrics::LatencyBucketsSeconds());
  impl.m_simulations =
      &reg.GetCounter("gpunet_simulations_total", "POST /tx/simulate requests that ran.");
  impl.m_simulations_refused = &reg.GetCounter(
      "gpunet_simulations_refused_total",
      "POST /tx/simulate requests answered 503 because another simulation was running.");
  impl.m_height->Set(static_cast<double>(impl.app->Info().last_height));
}

/// The store, the ledger over it (through the market index), the mempool and the
/// engine: everything but the RPC server.
base::Status OpenLedger(Node::Impl& impl, const crypto::KeyPair& validator_key) {
  const NodeOptions& options = impl.options;
  GPUNET_TRY_ASSIGN(impl.kv, OpenStore(options));
  impl.indexed_kv = std::make_unique<IndexedKvStore>(*impl.kv);
  ledger::AppOptions app_options;
  app_options.check_block_invariants = options.check_block_invariants;
  GPUNET_TRY_ASSIGN(impl.app, ledger::LedgerApp::Open(*impl.indexed_kv, impl.genesis, app_options));
  // Built from the committed state before any block can commit, then kept up to
  // date by every commit: nothing is missed between the two.
  GPUNET_TRY_ASSIGN(impl.market_index, MarketIndex::Build(impl.app->Store()));
  impl.indexed_kv->SetObserver(
      [index = impl.market_index.get()](const state::WriteBatch& b) { index->Apply(b); });
  impl.pool = std::make_unique<mempool::Mempool>(*impl.app);
  impl.engine = std::make_unique<consensus::SoloEngine>(impl.config.block_interval_ms);
  impl.solo = std::make_unique<SoloLedgerAdaptor>(*impl.app, *impl.pool,
                                                  crypto::AddressOf(validator_key.Public()), impl);
  if (impl.config.engine == "bft") {
    GPUNET_TRY_ASSIGN(
        impl.bft, BftNodeEngine::Open(options.home + "/data", validator_key, impl.genesis.chain_id,
                                      impl.genesis.genesis_time_ms, impl.config.block_interval_ms,
                                      *impl.app, *impl.kv, *impl.pool));
  }
  return base::Ok();
}

}  // namespace

Node::Node(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Node::~Node() {
  Stop();
}

base::Result<std::unique_ptr<Node>> Node::Start(const NodeOptions& options) {
  GPUNET_CHECK(options.clock != nullptr);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  GPUNET_TRY_ASSIGN(const std::string genesis_path, InitialisedGenesisPath(options.home));
  GPUNET_TRY_ASSIGN(impl->genesis, ledger::LoadGenesisFile(genesis_path));
  GPUNET_TRY_ASSIGN(impl->config, StartConfig(options));
  GPUNET_TRY_ASSIGN(const crypto::KeyPair validator_key, ReadValidatorKey(options.home));
  GPUNET_TRY(OpenLedger(*impl, validator_key));
  RegisterMetrics(*impl);

  server::ServerOptions so = RpcServerOptions(impl->config);
  so.metrics = &impl->registry;
  impl->server = std::make_unique<server::HttpServer>(so);
  impl->RegisterRoutes();
  GPUNET_TRY(impl->server->Start());
  Impl* raw = impl.get();
  impl->engine_thread = std::thread([raw] {
    pthread_setname_np(pthread_self(), "gpunet-engine");  // names it in top, perf and gdb
    raw->EngineLoop();
  });
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

std::string Node::RpcUrl() const {
  return m_impl->server->Url();
}

NodeStatus Node::Status() const {
  if (!m_impl->app) return NodeStatus{};  // stopped: the store is closed
  ledger::AppInfo info = m_impl->app->Info();
  return NodeStatus{info.chain_id, info.last_height, base::ToHex(info.last_block_hash),
                    info.last_block_time_ms, m_impl->pool->Stats().txs};
}

SubmitResult Node::SubmitTx(base::ByteSpan tx_bytes) {
  mempool::AddResult added = m_impl->Admit(tx_bytes);
  return SubmitResult{added.code, added.message, added.tx_hash, added.check.fee_ugpn};
}

base::Status Node::Wait() {
  while (!m_impl->stop_requested.load() && !m_impl->stopped.load())
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  base::MutexLock lock(m_impl->engine_mu);
  if (m_impl->engine_error) return std::unexpected(*m_impl->engine_error);
  return base::Ok();
}

void Node::RequestStop() {
  m_impl->stop_requested.store(true);
}

void Node::Stop() {
  if (!m_impl || m_impl->stopped.exchange(true)) return;
  {
    base::MutexLock lock(m_impl->engine_mu);
    m_impl->stopping = true;
  }
  m_impl->engine_cv.notify_all();
  if (m_impl->engine_thread.joinable()) m_impl->engine_thread.join();
  m_impl->waiters.Expire(UINT64_MAX);
  m_impl->server->Stop();
  m_impl->bft.reset();   // holds the app, store and pool by reference
  m_impl->solo.reset();  // so does the solo engine's adaptor
  m_impl->pool.reset();
  m_impl->app.reset();
  m_impl->indexed_kv.reset();
  m_impl->kv.reset();
}

namespace {
std::atomic<Node*> g_signal_node{nullptr};
void OnStopSignal(int) {
  if (Node* n = g_signal_node.load()) n->RequestStop();
}
}  // namespace

void StopOnSignals(Node& node) {
  g_signal_node.store(&node);
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace gpunet::node
