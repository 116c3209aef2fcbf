#include "node/node.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "codec/smt_proof.h"
#include "consensus/solo.h"
#include "crypto/address.h"
#include "crypto/ed25519.h"
#include "crypto/keystore.h"
#include "crypto/mnemonic.h"
#include "ledger/app.h"
#include "ledger/block_store.h"
#include "ledger/genesis.h"
#include "mempool/mempool.h"
#include "node/bft_driver.h"
#include "node/market_index.h"
#include "node/market_routes.h"
#include "node/one_at_a_time.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "storage/fault_fs.h"
#include "storage/rocks_kv.h"

// Binds the value of a Result expression or returns its error.
#define NODE_CAT2(a, b) a##b
#define NODE_CAT(a, b) NODE_CAT2(a, b)
#define GPUNET_TRY_ASSIGN(name, expr)                                                            \
  auto NODE_CAT(node_r_, __LINE__) = (expr);                                                     \
  if (!NODE_CAT(node_r_, __LINE__)) return std::unexpected(NODE_CAT(node_r_, __LINE__).error()); \
  auto name = std::move(*NODE_CAT(node_r_, __LINE__))

namespace gpunet::node {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;
namespace fs = std::filesystem;
using server::ErrorResponse;
using server::HttpServer;
using server::JsonError;
using server::JsonResponse;
using server::ParseJsonBody;
using server::Request;
using server::Responder;
using server::Response;
using server::ServerOptions;
namespace metrics = server::metrics;

namespace {

constexpr const char* kNodeVersion = "gpunet 0.1.0";
// The niceness of threads that admit txs (Node::Impl::Admit), relative to 0 for
// the engine thread.
constexpr int kAdmissionNice = 10;
// validator.seed is 64 hex characters and a newline; anything much larger is not one.
constexpr size_t kValidatorSeedFileBytesMax = 4096;

/// `clock`'s wall-clock time as the unsigned milliseconds blocks carry.
uint64_t WallMs(const base::Clock& clock) {
  return static_cast<uint64_t>(clock.NowMs());
}

base::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

base::Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Fail(ErrorCode::kInvalidArgument,
                "rpc address '" + text + "' must be host:port, e.g. 127.0.0.1:26657");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  char* end = nullptr;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port > 65535)
    return Fail(ErrorCode::kInvalidArgument,
                "rpc port '" + port_text + "' must be a number 0..65535 (0 = any free port)");
  return std::make_pair(host, static_cast<uint16_t>(port));
}

std::string U64(uint64_t v) {
  return std::to_string(v);
}

json EventsJson(const std::vector<codec::Event>& events) {
  json out = json::array();
  for (const auto& e : events) {
    json attrs = json::object();
    for (const auto& [k, v] : e.attributes) attrs[k] = v;
    out.push_back({{"type", e.type}, {"attributes", attrs}});
  }
  return out;
}

std::string CodeName(uint16_t code) {
  auto c = codec::TxCodeFromU16(code);
  return c ? std::string(codec::TxCodeName(*c)) : "code_" + std::to_string(code);
}

json ReceiptJson(const codec::Receipt& r) {
  return {{"code", r.code},
          {"code_name", CodeName(r.code)},
          {"fee_ugpn", U64(r.fee_ugpn)},
          {"events", EventsJson(r.events)}};
}

json TxJson(const codec::Tx& tx) {
  json msgs = json::array();
  for (const auto& m : tx.body.msgs) {
    if (const auto* send = std::get_if<codec::MsgSend>(&m))
      msgs.push_back({{"type", "send"},
                      {"to", crypto::AddressToString(send->to)},
                      {"amount_ugpn", U64(send->amount_ugpn)}});
    else  // market messages: their effects are the receipt's events (docs/market.md)
      msgs.push_back({{"type", std::string(codec::MsgName(m))}});
  }
  return {{"chain_id", tx.body.chain_id},
          {"sender", base::ToHex(tx.body.sender)},
          {"from", crypto::AddressToString(crypto::AddressOf(tx.body.sender))},
          {"nonce", tx.body.nonce},
          {"fee_ugpn", U64(tx.body.fee_ugpn)},
          {"timeout_height", tx.body.timeout_height},
          {"memo", tx.body.memo},
          {"msgs", msgs}};
}

json HeaderJson(const codec::BlockHeader& h) {
  return {{"chain_id", h.chain_id},
          {"app_version", h.app_version},
          {"height", h.height},
          {"time_ms", h.time_ms},
          {"last_block_hash", base::ToHex(h.last_block_hash)},
          {"tx_root", base::ToHex(h.tx_root)},
          {"receipts_root", base::ToHex(h.receipts_root)},
          {"state_root", base::ToHex(h.state_root)},
          {"proposer", crypto::AddressToString(h.proposer)},
          {"validator_set_hash", base::ToHex(h.validator_set_hash)},
          {"next_validator_set_hash", base::ToHex(h.next_validator_set_hash)},
          {"last_commit_hash", base::ToHex(h.last_commit_hash)},
          {"evidence_hash", base::ToHex(h.evidence_hash)}};
}

Response TxRejected(codec::TxCode code, const std::string& message, const base::Hash32& hash) {
  json j = {{"error",
             {{"code", "tx_rejected"},
              {"tx_code", static_cast<uint16_t>(code)},
              {"tx_code_name", std::string(codec::TxCodeName(code))},
              {"message", message}}}};
  if (hash != base::Hash32{}) j["error"]["tx_hash"] = base::ToHex(hash);
  return JsonResponse(j, 400);
}

// node.json's "rpc_limits" counts and times, by name.
constexpr std::pair<const char*, uint64_t RpcLimits::*> kRpcLimitFields[] = {
    {"connections_max", &RpcLimits::connections_max},
    {"connections_per_address_max", &RpcLimits::connections_per_address_max},
    {"ws_per_address_max", &RpcLimits::ws_per_address_max},
    {"pending_requests_max", &RpcLimits::pending_requests_max},
    {"pending_requests_per_address_max", &RpcLimits::pending_requests_per_address_max},
    {"waits_per_address_max", &RpcLimits::waits_per_address_max},
    {"idle_timeout_ms", &RpcLimits::idle_timeout_ms},
    {"ws_unsubscribed_timeout_ms", &RpcLimits::ws_unsubscribed_timeout_ms},
    {"ws_queue_bytes_max", &RpcLimits::ws_queue_bytes_max},
};
// Keeps the millisecond and count values far from the int64/size_t edges.
constexpr uint64_t kRpcLimitValueMax = 1'000'000'000;

base::Result<RpcLimits> ParseRpcLimits(const std::string& path, const json& j) {
  std::string fields;
  for (const auto& [name, member] : kRpcLimitFields) fields += std::string(name) + ", ";
  fields += "exempt_loopback (true|false)";
  if (!j.is_object())
    return Fail(ErrorCode::kInvalidArgument,
                path + ": rpc_limits must be an object with some of: " + fields);
  RpcLimits limits;
  for (const auto& [k, v] : j.items()) {
    if (k == "exempt_loopback") {
      if (!v.is_boolean())
        return Fail(ErrorCode::kInvalidArgument,
                    path + ": rpc_limits.exempt_loopback must be true or false, not " + v.dump());
      limits.exempt_loopback = v.get<bool>();
      continue;
    }
    const auto* field = std::find_if(std::begin(kRpcLimitFields), std::end(kRpcLimitFields),
                                     [&](const auto& f) { return k == f.first; });
    if (field == std::end(kRpcLimitFields) || !v.is_number_unsigned() || v.get<uint64_t>() < 1 ||
        v.get<uint64_t>() > kRpcLimitValueMax)
      return Fail(ErrorCode::kInvalidArgument,
                  path + ": rpc_limits." + k + " is unknown or not an integer 1.." +
                      std::to_string(kRpcLimitValueMax) + " (fields: " + fields + ")");
    limits.*(field->second) = v.get<uint64_t>();
  }
  return limits;
}

// Only the fields that differ from the defaults: a home keeps what its operator
// set, and a default changed in a later release reaches every other field.
json RpcLimitsJson(const RpcLimits& limits) {
  const RpcLimits defaults;
  json j = json::object();
  for (const auto& [name, member] : kRpcLimitFields)
    if (limits.*member != defaults.*member) j[name] = limits.*member;
  if (limits.exempt_loopback != defaults.exempt_loopback)
    j["exempt_loopback"] = limits.exempt_loopback;
  return j;
}

ServerOptions RpcServerOptions(const NodeConfig& config) {
  const RpcLimits& l = config.rpc_limits;
  ServerOptions so;
  so.host = config.rpc_host;
  so.port = config.rpc_port;
  so.body_bytes_max = 256 * 1024;
  so.connections_max = l.connections_max;
  so.connections_per_address_max = l.connections_per_address_max;
  so.ws_per_address_max = l.ws_per_address_max;
  so.pending_requests_max = l.pending_requests_max;
  so.pending_requests_per_address_max = l.pending_requests_per_address_max;
  so.idle_timeout_ms = static_cast<int64_t>(l.idle_timeout_ms);
  so.ws_unsubscribed_timeout_ms = static_cast<int64_t>(l.ws_unsubscribed_timeout_ms);
  so.ws_queue_bytes_max = l.ws_queue_bytes_max;
  so.per_address_exempt_loopback = l.exempt_loopback;
  return so;
}

}  // namespace

// ---------------------------------------------------------------- config / init

base::Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  GPUNET_TRY_ASSIGN(text, ReadFile(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Fail(ErrorCode::kInvalidArgument, path + " is not a JSON object");
  NodeConfig c;
  for (const auto& [k, v] : j.items()) {
    if (k == "rpc" && v.is_string()) {
      GPUNET_TRY_ASSIGN(hp, ParseHostPort(v.get<std::string>()));
      c.rpc_host = hp.first;
      c.rpc_port = hp.second;
    } else if (k == "block_interval_ms" && v.is_number_unsigned() && v.get<uint64_t>() >= 1) {
      c.block_interval_ms = v.get<uint64_t>();
    } else if (k == "engine" && v.is_string()) {
      c.engine = v.get<std::string>();
      if (c.engine != "solo" && c.engine != "bft")
        return Fail(ErrorCode::kUnsupported,
                    path + ": engine '" + c.engine + "' is not available; use \"solo\" or \"bft\"");
    } else if (k == "validator_key" && v.is_string()) {
    } else if (k == "rpc_limits") {
      GPUNET_TRY_ASSIGN(limits, ParseRpcLimits(path, v));
      c.rpc_limits = limits;
    } else {
      return Fail(ErrorCode::kInvalidArgument,
                  path + ": unknown or ill-typed field '" + k +
                      "' (fields: rpc \"host:port\", block_interval_ms >= 1, engine "
                      "\"solo\"|\"bft\", rpc_limits {...})");
    }
  }
  return c;
}

std::string NodeConfigToJson(const NodeConfig& c) {
  json j = {{"rpc", c.rpc_host + ":" + std::to_string(c.rpc_port)},
            {"block_interval_ms", c.block_interval_ms},
            {"engine", c.engine}};
  if (json limits = RpcLimitsJson(c.rpc_limits); !limits.empty()) j["rpc_limits"] = limits;
  return j.dump(2) + "\n";
}

namespace {

/// What is at `path`, a link not followed: kIo naming the path and the OS's reason
/// when that cannot be told (not_found when nothing is there).
base::Result<fs::file_status> LinkStatus(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (ec && status.type() != fs::file_type::not_found)
    return Fail(ErrorCode::kIo, "cannot check " + path + ": " + ec.message());
  return status;
}

/// Whether anything is at `path` (a link followed): kIo naming the path and the OS's
/// reason when that cannot be told.
base::Result<bool> Exists(const std::string& path) {
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot check " + path + ": " + ec.message());
  return exists;
}

/// Everything InitHome will write, made and checked in memory first.
struct InitPlan {
  NodeConfig node_config;
  ledger::Genesis genesis;
  crypto::KeyPair validator;
  std::vector<crypto::KeyPair> keys;  ///< one per InitOptions::keys, in order
};

/// The checks on what InitHome writes into an existing home: a validator seed is never
/// replaced and a key file never overwritten, and a link is never written through.
base::Status CheckInitTargets(const InitOptions& o, const std::string& seed_path,
                              const crypto::Keystore& ks) {
  GPUNET_TRY_ASSIGN(seed, LinkStatus(seed_path));
  if (fs::is_symlink(seed))
    return Fail(ErrorCode::kCorrupt, seed_path +
                                         " is a symbolic link; refusing to write the validator "
                                         "seed through it: remove the link and run init again");
  if (fs::exists(seed))
    return Fail(ErrorCode::kAlreadyExists,
                seed_path +
                    " exists but genesis.json does not (an earlier init stopped, or genesis.json "
                    "was removed); init never replaces a validator key: move " +
                    seed_path + " away (keep it if it has signed blocks) and run init again");
  std::vector<std::string> names;
  for (const auto& k : o.keys) {
    GPUNET_TRY(crypto::ValidateKeyName(k.name));
    if (std::find(names.begin(), names.end(), k.name) != names.end())
      return Fail(ErrorCode::kInvalidArgument,
                  "key \"" + k.name + "\" is named twice; give each funded key its own name");
    names.push_back(k.name);
    GPUNET_TRY_ASSIGN(key_file, LinkStatus(ks.PathOf(k.name)));
    if (fs::exists(key_file))
      return Fail(ErrorCode::kAlreadyExists, "a key named \"" + k.name + "\" already exists (" +
                                                 ks.PathOf(k.name) +
                                                 "); choose another name, or delete it first");
  }
  return base::Ok();
}

/// Checks the options and builds node.json, the keys and the genesis, writing nothing.
base::Result<InitPlan> PlanInit(const InitOptions& o) {
  if (!o.keys.empty() && o.key_passphrase.empty())
    return Fail(ErrorCode::kInvalidArgument, "funded keys need a passphrase to seal their files");
  InitPlan plan{
      .node_config = {}, .genesis = {}, .validator = crypto::KeyPair::Generate(), .keys = {}};
  NodeConfig& nc = plan.node_config;
  GPUNET_TRY_ASSIGN(hp, ParseHostPort(o.rpc));
  nc.rpc_host = hp.first;
  nc.rpc_port = hp.second;
  nc.block_interval_ms = o.block_interval_ms == 0 ? 1000 : o.block_interval_ms;
  nc.engine = o.engine;

  ledger::Genesis& g = plan.genesis;
  g.chain_id = o.chain_id;
  g.genesis_time_ms =
      o.genesis_time_ms != 0 ? o.genesis_time_ms : WallMs(base::SystemClock::Instance());
  g.app_version = 1;
  g.params.block_interval_ms = nc.block_interval_ms;
  g.validators.validators.push_back(codec::Validator{plan.validator.Public(), 10});
  for (const auto& k : o.keys) {
    plan.keys.push_back(crypto::KeyPair::Generate());
    g.accounts.push_back(
        ledger::GenesisAccount{crypto::AddressOf(plan.keys.back().Public()), k.balance_ugpn});
  }
  for (const auto& a : o.accounts)
    g.accounts.push_back(ledger::GenesisAccount{a.address, a.balance_ugpn});
  std::sort(g.accounts.begin(), g.accounts.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  GPUNET_TRY(ledger::ValidateGenesis(g));
  GPUNET_CHECK(plan.keys.size() == o.keys.size());
  return plan;
}

}  // namespace

base::Result<InitResult> InitHome(const InitOptions& o) {
  if (o.home.empty()) return Fail(ErrorCode::kInvalidArgument, "--home must name a directory");
  if (o.engine != "solo" && o.engine != "bft")
    return Fail(ErrorCode::kUnsupported,
                "engine '" + o.engine + "' is not available; use solo or bft");
  const std::string config_dir = o.home + "/config";
  const std::string seed_path = config_dir + "/validator.seed";
  InitResult out;
  out.genesis_path = config_dir + "/genesis.json";
  out.node_config_path = config_dir + "/node.json";
  GPUNET_TRY_ASSIGN(initialised, Exists(out.genesis_path));
  if (initialised)
    return Fail(ErrorCode::kAlreadyExists, out.genesis_path +
                                               " already exists: this home is initialised; "
                                               "start it with `gpunet node --home " +
                                               o.home + "` or pick another --home");
  crypto::KdfParams kdf = crypto::KdfParams::Interactive();
  if (o.fast_kdf) kdf = crypto::KdfParams{1, 8192};
  crypto::Keystore ks(o.home + "/keys", kdf);
  // Every check before the first write: a refused init leaves the home as it was, so
  // it can simply run again (docs/node.md).
  GPUNET_TRY_ASSIGN(plan, PlanInit(o));
  GPUNET_TRY(CheckInitTargets(o, seed_path, ks));
  out.validator_public_key = plan.validator.Public();

  // The home and its folders are the operator's alone, 0700 whatever the umask. Its
  // missing parents are made 0755 (under umask 0 they would be 0777), and no parent
  // may be one that others could use to swap the home, validator seed and all.
  std::string home = o.home;
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  std::error_code ec;
  const fs::path absolute = fs::absolute(home, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot resolve --home " + home + ": " + ec.message());
  GPUNET_TRY(base::MakeParentDirectories(absolute.string(), 0755, "the node home " + home));
  GPUNET_TRY(base::MakeDirectory(home, 0700));
  GPUNET_TRY(base::MakeDirectory(config_dir, 0700));
  GPUNET_TRY(base::MakeDirectory(o.home + "/data", 0700));

  // The seed first and genesis.json last (its presence marks the home initialised).
  // kRefuse: a validator key is never replaced, even if the check above raced.
  GPUNET_TRY(base::WriteFileAtomic(
      seed_path, base::ToHex(plan.validator.SeedBytes()) + "\n",
      {.mode = 0600, .if_exists = base::IfExists::kRefuse, .before_commit = {}}));
  for (size_t i = 0; i < o.keys.size(); ++i) {
    const crypto::Seed seed = plan.keys[i].SeedBytes();
    GPUNET_TRY_ASSIGN(entry, ks.Import(o.keys[i].name, seed, o.key_passphrase));
    out.keys.push_back(InitResult::Key{o.keys[i].name, entry.address,
                                       crypto::AddressToString(entry.address),
                                       o.keys[i].balance_ugpn, crypto::SeedToMnemonic(seed)});
  }
  GPUNET_TRY(base::WriteFileAtomic(out.node_config_path, NodeConfigToJson(plan.node_config),
                                   {.mode = 0644}));
  GPUNET_TRY(
      base::WriteFileAtomic(out.genesis_path, ledger::GenesisToJson(plan.genesis), {.mode = 0644}));
  return out;
}

// ---------------------------------------------------------------- the node

struct Node::Impl final : consensus::SoloAdaptor {
  NodeOptions options;
  NodeConfig config;
  ledger::Genesis genesis;
  std::unique_ptr<storage::RocksKvStore> kv;
  std::unique_ptr<IndexedKvStore> indexed_kv;  ///< kv, telling market_index each commit
  std::unique_ptr<MarketIndex> market_index;   ///< the market lists' indexes (market_index.h)
  std::unique_ptr<ledger::LedgerApp> app;
  std::unique_ptr<mempool::Mempool> pool;
  std::unique_ptr<consensus::SoloEngine> engine;
  std::unique_ptr<BftNodeEngine> bft;  ///< set when node.json says "engine": "bft"
  metrics::Registry registry;
  std::unique_ptr<HttpServer> server;
  codec::Address proposer;

  metrics::Gauge* m_height = nullptr;
  metrics::Counter* m_txs_committed = nullptr;
  metrics::Gauge* m_mempool_txs = nullptr;
  metrics::Histogram* m_commit_seconds = nullptr;
  metrics::Counter* m_simulations = nullptr;
  metrics::Counter* m_simulations_refused = nullptr;
  /// One POST /tx/simulate at a time: a simulation holds the ledger's lock against
  /// the engine's commits, so four RPC workers simulating would stall the chain.
  OneAtATime m_simulation;

  // Engine thread control.
  std::thread engine_thread;
  std::mutex engine_mu;
  std::condition_variable engine_cv;
  bool stopping = false;
  bool tx_arrived = false;       // a tx was admitted since the engine's last step
  bool engine_wants_tx = false;  // the solo engine waits and a new tx would wake it
  std::optional<base::Error> engine_error;
  bool engine_done = false;

  // Wait() / RequestStop (signal-safe via a pipe-free atomic + polling).
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> stopped{false};

  // Waiters for wait=committed.
  struct Waiter {
    uint64_t deadline_ms = 0;
    Responder responder;
    std::string address;  // the peer's, counted in waits_by_address; empty: not counted
  };
  std::mutex wait_mu;
  std::multimap<base::Hash32, Waiter> waiters;
  // Waiters per peer address (the non-exempt ones); an address leaves at zero.
  std::map<std::string, uint64_t> waits_by_address;

  // ---- SoloAdaptor
  bool HasPendingTxs() override { return pool->HasExecutable(); }
  std::optional<uint64_t> NextDeadlineMs() override { return app->NextDeadline(); }
  uint64_t LastBlockTimeMs() override { return app->Info().last_block_time_ms; }
  base::Status ProduceAndCommitBlock(uint64_t time_ms) override;

  void EngineLoop();
  void BftEngineLoop();
  void OnBftCommitted(const BftCommitted& c);
  void PublishCommitted(const codec::Block& block, const ledger::FinalizeBlockResponse& finalized,
                        const ledger::CommitResponse& committed, double seconds);
  void ExpireWaiters(uint64_t now_ms);
  // Takes a waiter out of `waiters` and its address's count (wait_mu held).
  Waiter TakeWaiterLocked(std::multimap<base::Hash32, Waiter>::iterator it,
                          std::multimap<base::Hash32, Waiter>::iterator* next = nullptr);
  std::optional<Response> RefuseUnexecutableWait(base::ByteSpan tx_bytes);
  void AnswerWaiters(const base::Hash32& hash, const Response& r);
  bool HasWaiter(const base::Hash32& hash);
  void RegisterRoutes();
  Response SimulateTx(const Request& req);
  Response CommittedResponse(const ledger::TxRecord& rec);
  void PostTx(Request req, Responder responder);
  mempool::AddResult Admit(base::ByteSpan tx_bytes);
};

base::Status Node::Impl::ProduceAndCommitBlock(uint64_t time_ms) {
  // A duration for the metric and the log, in fractions of a millisecond: read from
  // steady_clock itself, not options.clock (whole milliseconds; a test's ManualClock
  // would make every commit take 0 s).
  const auto started = std::chrono::steady_clock::now();
  ledger::AppInfo info = app->Info();
  ledger::PrepareProposalRequest prep;
  prep.height = info.last_height + 1;
  prep.time_ms = time_ms;
  prep.proposer = proposer;
  prep.checked_txs =
      pool->ReapChecked(info.consensus_params.block_bytes_max, info.consensus_params.block_txs_max,
                        info.consensus_params.block_gas_max);
  GPUNET_TRY_ASSIGN(prepared, app->PrepareProposal(prep));
  for (const auto& s : prepared.skipped) {
    if (s.code == codec::TxCode::kOk) continue;  // valid, over the block limits: next block
    pool->Remove(s.tx_hash);
    AnswerWaiters(s.tx_hash,
                  TxRejected(s.code, "dropped before inclusion: " + s.message, s.tx_hash));
  }
  // The block moves from request to request: thousands of txs are not copied.
  ledger::ProcessProposalRequest process{std::move(prepared.block), {}, {}};
  GPUNET_TRY_ASSIGN(processed, app->ProcessProposal(process));
  if (!processed.accept)
    return Fail(ErrorCode::kInternal, "own proposal rejected: " + processed.reason);
  ledger::FinalizeBlockRequest finalize{std::move(process.block), {}, {}};
  GPUNET_TRY_ASSIGN(finalized, app->FinalizeBlock(finalize));
  const codec::Block& block = finalize.block;
  GPUNET_TRY_ASSIGN(committed, app->Commit());  // synced: from here on it is durable
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  m_commit_seconds->Observe(seconds);

  for (const auto& d : pool->Update(block, finalized.receipts))
    AnswerWaiters(d.tx_hash, TxRejected(d.code, d.message, d.tx_hash));
  PublishCommitted(block, finalized, committed, seconds);
  return base::Ok();
}

void Node::Impl::PublishCommitted(const codec::Block& block,
                                  const ledger::FinalizeBlockResponse& finalized,
                                  const ledger::CommitResponse& committed, double seconds) {
  const std::vector<codec::Receipt>& receipts = finalized.receipts;
  // Per-tx answers and events are built only for someone who listens: under load
  // most txs have neither a waiting client nor a subscriber.
  const bool tx_subscribers = server->Stats().ws_subscribers > 0;
  // One "txs" event per block, not per tx: a subscriber's send queue counts frames,
  // and a block of thousands of txs must not overflow it and cut the subscriber.
  json txs = json::array();
  for (size_t i = 0; i < receipts.size(); ++i) {
    const codec::Receipt& r = receipts[i];
    if (HasWaiter(r.tx_hash)) {
      ledger::TxRecord rec{{committed.height, static_cast<uint32_t>(i)}, block.txs[i], r};
      AnswerWaiters(r.tx_hash, CommittedResponse(rec));
    }
    if (!tx_subscribers) continue;
    txs.push_back({{"tx_hash", base::ToHex(r.tx_hash)},
                   {"height", committed.height},
                   {"index", i},
                   {"code", r.code},
                   {"code_name", CodeName(r.code)},
                   {"events", EventsJson(r.events)}});
  }
  if (!txs.empty()) {
    json ev = {{"topic", "txs"}, {"height", committed.height}, {"txs", std::move(txs)}};
    server->Publish("txs", ev.dump());
  }
  json bj = {{"topic", "blocks"},
             {"height", committed.height},
             {"hash", base::ToHex(committed.block_hash)},
             {"txs", block.txs.size()},
             {"time_ms", block.header.time_ms},
             // End-of-block work (auction awards, faults, expiries): not in any
             // receipt, so the stream is where clients see it.
             {"events", EventsJson(finalized.events)}};
  server->Publish("blocks", bj.dump());
  m_height->Set(static_cast<double>(committed.height));
  m_txs_committed->Inc(block.txs.size());
  m_mempool_txs->Set(static_cast<double>(pool->Stats().txs));
  if (options.log_blocks)
    std::fprintf(stderr, "block height=%llu txs=%zu hash=%s commit_ms=%.1f\n",
                 static_cast<unsigned long long>(committed.height), block.txs.size(),
                 base::ToHex(committed.block_hash).c_str(), seconds * 1000);
}

void Node::Impl::OnBftCommitted(const BftCommitted& c) {
  for (const auto& d : c.dropped)
    AnswerWaiters(d.tx_hash, TxRejected(d.code, d.message, d.tx_hash));
  PublishCommitted(c.block, c.finalized, c.committed, 0);
}

// The bft engine's loop: the driver's timers on options.clock (no peers yet, so no
// network input); a tx arriving needs no wake-up, the next proposal reaps it.
void Node::Impl::BftEngineLoop() {
  bft->Adaptor().SetOnCommitted([this](const BftCommitted& c) { OnBftCommitted(c); });
  bft->Adaptor().SetOnSkipped([this](const std::vector<ledger::SkippedTx>& skipped) {
    for (const auto& s : skipped)
      AnswerWaiters(s.tx_hash,
                    TxRejected(s.code, "dropped before inclusion: " + s.message, s.tx_hash));
  });
  base::Status status = bft->Driver().Start(WallMs(*options.clock));
  std::unique_lock lock(engine_mu);
  while (status && !stopping) {
    lock.unlock();
    const uint64_t now = WallMs(*options.clock);
    ExpireWaiters(now);
    status = bft->Driver().FireDueTimers(now);
    lock.lock();
    if (!status) break;
    const uint64_t next = bft->Driver().NextTimerMs().value_or(now + 100);
    const uint64_t wait_ms = std::clamp<uint64_t>(next > now ? next - now : 1, 1, 100);
    engine_cv.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return stopping; });
  }
  if (!status) {
    engine_error = status.error();
    std::fprintf(stderr, "engine stopped: %s\n", status.error().ToString().c_str());
  }
  engine_done = true;
  stop_requested = true;
  engine_cv.notify_all();
}

void Node::Impl::EngineLoop() {
  if (bft) return BftEngineLoop();
  std::unique_lock lock(engine_mu);
  while (!stopping) {
    tx_arrived = false;  // before the step: an arrival during it is seen below
    lock.unlock();
    const uint64_t now = WallMs(*options.clock);
    ExpireWaiters(now);
    auto step = engine->Step(*this, now);
    lock.lock();
    if (!step) {
      engine_error = step.error();
      std::fprintf(stderr, "engine stopped: %s\n", step.error().ToString().c_str());
      break;
    }
    if (step->produce) continue;
    uint64_t wait_ms = step->wake_at_ms > now ? step->wake_at_ms - now : 1;
    wait_ms = std::min<uint64_t>(wait_ms, 100);  // also bounds waiter-timeout latency
    engine_wants_tx = step->wake_on_tx;
    engine_cv.wait_for(lock, std::chrono::milliseconds(wait_ms),
                       [&] { return stopping || (step->wake_on_tx && tx_arrived); });
    engine_wants_tx = false;
  }
  engine_done = true;
  stop_requested = true;
  engine_cv.notify_all();
}

void Node::Impl::ExpireWaiters(uint64_t now_ms) {
  std::vector<Waiter> expired;
  {
    std::lock_guard lock(wait_mu);
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (it->second.deadline_ms <= now_ms) {
        expired.push_back(TakeWaiterLocked(it, &it));
      } else {
        ++it;
      }
    }
  }
  for (auto& w : expired)
    w.responder.Respond(JsonError(504, "timeout",
                                  "the tx was accepted but not committed within timeout_ms; it "
                                  "may still commit later: check GET /tx/<hash>"));
}

bool Node::Impl::HasWaiter(const base::Hash32& hash) {
  std::lock_guard lock(wait_mu);
  return waiters.contains(hash);
}

void Node::Impl::AnswerWaiters(const base::Hash32& hash, const Response& r) {
  std::vector<Waiter> found;
  {
    std::lock_guard lock(wait_mu);
    auto [it, end] = waiters.equal_range(hash);
    while (it != end) found.push_back(TakeWaiterLocked(it, &it));
  }
  for (auto& w : found) w.responder.Respond(r);
}

Node::Impl::Waiter Node::Impl::TakeWaiterLocked(
    std::multimap<base::Hash32, Waiter>::iterator it,
    std::multimap<base::Hash32, Waiter>::iterator* next) {
  Waiter w = std::move(it->second);
  auto after = waiters.erase(it);
  if (next != nullptr) *next = after;
  if (!w.address.empty()) {
    auto count = waits_by_address.find(w.address);
    GPUNET_CHECK(count != waits_by_address.end() && count->second >= 1);
    if (--count->second == 0) waits_by_address.erase(count);
  }
  return w;
}

// wait=committed holds a request open until its tx commits or the timeout: it is
// refused up front for a tx that cannot execute before other txs arrive, which
// would hold the request (and a pending slot) for nothing.
std::optional<Response> Node::Impl::RefuseUnexecutableWait(base::ByteSpan tx_bytes) {
  auto tx = codec::DecodeTx(tx_bytes);
  if (!tx) return std::nullopt;  // Admit refuses it with the decoder's reason
  const codec::Address sender = crypto::AddressOf(tx->body.sender);
  uint64_t account_nonce = 0;  // the last read, which the pool's answer agrees with
  auto read_nonce = [&]() -> base::Result<uint64_t> {
    auto q = app->Query(
        ledger::QueryRequest{"/account", base::Bytes(sender.begin(), sender.end()), 0, false});
    if (!q) return std::unexpected(q.error());
    if (!q->value) return account_nonce = 0;
    auto account = codec::DecodeAccount(*q->value);
    if (!account) return std::unexpected(account.error());
    return account_nonce = account->nonce;
  };
  const uint64_t nonce = tx->body.nonce;
  // Stale nonces and replacements are Admit's to judge; a tx right after the
  // sender's pending ones executes once they have.
  auto free = pool->NextFreeNonce(sender, read_nonce);
  if (!free) return ErrorResponse(free.error());
  const uint64_t next_free = *free;
  if (nonce > next_free) {
    const std::string missing = next_free + 1 == nonce ? "nonce " + std::to_string(next_free)
                                                       : "nonces " + std::to_string(next_free) +
                                                             ".." + std::to_string(nonce - 1);
    const std::string pending =
        next_free > account_nonce
            ? " and its pending txs run only to nonce " + std::to_string(next_free - 1)
            : std::string();
    return JsonError(409, "conflict",
                     "wait=committed refused: the tx has nonce " + std::to_string(nonce) +
                         " but the sender's next nonce is " + std::to_string(account_nonce) +
                         pending + ", so it cannot execute yet (missing: " + missing +
                         "); send those first, or post this one with \"wait\":\"none\"");
  }
  return std::nullopt;
}

Response Node::Impl::CommittedResponse(const ledger::TxRecord& rec) {
  const auto code = codec::TxCodeFromU16(rec.receipt.code);
  json j = {{"tx_hash", base::ToHex(rec.receipt.tx_hash)},
            {"status", "committed"},
            {"height", rec.location.height},
            {"index", rec.location.index},
            {"code", rec.receipt.code},
            {"code_name", CodeName(rec.receipt.code)},
            {"message", rec.receipt.code == 0 || !code ? std::string()
                                                       : std::string(codec::TxCodeMessage(*code))},
            {"fee_ugpn", U64(rec.receipt.fee_ugpn)}};
  return JsonResponse(j);
}

mempool::AddResult Node::Impl::Admit(base::ByteSpan tx_bytes) {
  // A thread that admits txs (an RPC worker, an embedder's thread) runs at a
  // lower priority than the engine thread: signature checks are the bulk of the
  // CPU under load, and a node should finish the blocks it owes before it takes
  // more txs. At equal priority the engine got a third of a two-core machine and
  // blocks lagged behind admission (issue 3's benchmark: 12k -> 16k transfers/s).
  thread_local const bool niced = [] {
    return setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kAdmissionNice) == 0;
  }();
  (void)niced;  // best effort: a failure leaves the thread as it was
  mempool::AddResult added = pool->Add(tx_bytes);
  m_mempool_txs->Set(static_cast<double>(pool->Txs()));
  for (const auto& ev : added.evicted)
    AnswerWaiters(ev.tx_hash, TxRejected(ev.code, ev.message, ev.tx_hash));
  if (added.Ok() || added.code == codec::TxCode::kAlreadyKnown) {
    bool wake = false;
    {
      std::lock_guard lock(engine_mu);
      tx_arrived = true;
      wake = engine_wants_tx;
    }
    // Only an idle engine is woken: one with txs already waiting makes its block
    // when the interval has passed, and a wake-up per tx would cost a futex call
    // and a decision each.
    if (wake) engine_cv.notify_all();
  }
  return added;
}

void Node::Impl::PostTx(Request req, Responder responder) {
  auto body = ParseJsonBody(req);
  if (!body) return responder.Respond(ErrorResponse(body.error()));
  const json& j = *body;
  if (!j.contains("tx") || !j["tx"].is_string())
    return responder.Respond(JsonError(400, "invalid_argument",
                                       "body must be {\"tx\":\"<hex of the encoded signed tx>\", "
                                       "\"wait\":\"none\"|\"committed\", \"timeout_ms\":N}"));
  std::string wait = "none";
  if (j.contains("wait")) {
    if (!j["wait"].is_string() ||
        (j["wait"].get<std::string>() != "none" && j["wait"].get<std::string>() != "committed"))
      return responder.Respond(
          JsonError(400, "invalid_argument", "\"wait\" must be \"none\" or \"committed\""));
    wait = j["wait"].get<std::string>();
  }
  uint64_t timeout_ms = 30000;
  if (j.contains("timeout_ms")) {
    if (!j["timeout_ms"].is_number_unsigned() || j["timeout_ms"].get<uint64_t>() > 600000)
      return responder.Respond(
          JsonError(400, "invalid_argument", "\"timeout_ms\" must be an integer 0..600000"));
    timeout_ms = j["timeout_ms"].get<uint64_t>();
  }
  auto bytes = base::FromHex(j["tx"].get<std::string>());
  if (!bytes)
    return responder.Respond(
        JsonError(400, "invalid_argument", "\"tx\" is not valid hex: " + bytes.error().message));
  const base::Hash32 hash = codec::TxHashOfEncoded(*bytes);
  if (wait == "committed") {
    if (auto refused = RefuseUnexecutableWait(*bytes))
      return responder.Respond(std::move(*refused));
    // Register first, so a block committed right after admission still finds us.
    std::unique_lock lock(wait_mu);
    const std::string address = req.per_address_exempt ? std::string() : req.remote_address;
    const uint64_t cap = config.rpc_limits.waits_per_address_max;
    if (!address.empty() && waits_by_address[address] >= cap) {
      lock.unlock();
      return responder.Respond(JsonError(
          429, "limit_exceeded",
          "your address " + address + " has " + std::to_string(cap) +
              " requests waiting for a commit, its limit; post with \"wait\":\"none\" and "
              "poll GET /tx/<hash>, or let those finish first"));
    }
    if (!address.empty()) ++waits_by_address[address];
    waiters.emplace(hash,
                    Waiter{WallMs(*options.clock) + timeout_ms, std::move(responder), address});
  }
  auto taken = [&]() -> std::optional<Responder> {
    if (wait != "committed") return std::nullopt;
    std::lock_guard lock(wait_mu);
    auto it = waiters.find(hash);
    if (it == waiters.end()) return std::nullopt;  // already answered by the engine
    return TakeWaiterLocked(it).responder;
  };
  auto answer = [&](Response r) {
    if (wait != "committed") return responder.Respond(std::move(r));
    if (auto mine = taken()) mine->Respond(std::move(r));
  };

  mempool::AddResult added = Admit(*bytes);
  if (!added.Ok()) {
    // A resubmitted tx that is already in a block: report where it is.
    if (added.code == codec::TxCode::kStaleNonce || added.code == codec::TxCode::kAlreadyKnown) {
      auto rec = ledger::FindTx(app->Store(), hash);
      if (rec && *rec) return answer(CommittedResponse(**rec));
    }
    if (added.code != codec::TxCode::kAlreadyKnown || wait != "committed")
      return answer(TxRejected(added.code, added.message, added.tx_hash));
  }
  if (wait == "committed") return;  // the engine (or the timeout) answers
  json r = {{"tx_hash", base::ToHex(hash)},
            {"status", "pending"},
            {"height", 0},
            {"index", 0},
            {"code", 0},
            {"code_name", "ok"},
            {"message", added.Ok() ? "" : added.message},
            {"fee_ugpn", U64(added.check.fee_ugpn)}};
  responder.Respond(JsonResponse(r));
}

// POST /tx/simulate {"tx": hex}: what the tx would do on the committed state now,
// with a block's whole gas limit; nothing is committed or admitted. One at a time
// (m_simulation); a second concurrent request gets 503 and retries.
Response Node::Impl::SimulateTx(const Request& req) {
  auto body = ParseJsonBody(req);
  if (!body) return ErrorResponse(body.error());
  const json& j = *body;
  if (!j.contains("tx") || !j["tx"].is_string())
    return JsonError(400, "invalid_argument",
                     "body must be {\"tx\":\"<hex of the encoded tx, signed or with an "
                     "all-zero signature>\"}");
  auto bytes = base::FromHex(j["tx"].get<std::string>());
  if (!bytes)
    return JsonError(400, "invalid_argument", "\"tx\" is not valid hex: " + bytes.error().message);
  auto ran = m_simulation.TryRun([&] {
    m_simulations->Inc();
    return app->Simulate(*bytes);
  });
  if (!ran) {
    m_simulations_refused->Inc();
    return JsonError(503, "unavailable",
                     "a simulation is running (one runs at a time); retry in a moment");
  }
  auto& sim = *ran;
  if (!sim) return ErrorResponse(sim.error());
  json r = {{"code", static_cast<uint16_t>(sim->code)},
            {"code_name", std::string(codec::TxCodeName(sim->code))},
            {"message", sim->message},
            {"gas_used", sim->gas_used},
            {"gas_price_ugpn", U64(app->GetGenesis().params.gas_price_ugpn)},
            {"fee_ugpn", U64(sim->fee_ugpn)},
            {"events", EventsJson(sim->events)}};
  return JsonResponse(r);
}

void Node::Impl::RegisterRoutes() {
  server->Handle("GET", "/status", [this](const Request&) {
    ledger::AppInfo info = app->Info();
    json j = {{"chain_id", info.chain_id},
              {"engine", config.engine},
              {"app_version", info.app_version},
              {"genesis_hash", base::ToHex(info.genesis_hash)},
              {"latest_height", info.last_height},
              {"latest_block_hash", base::ToHex(info.last_block_hash)},
              {"latest_state_root", base::ToHex(info.state_root)},
              {"latest_time_ms", info.last_block_time_ms},
              {"mempool_txs", pool->Stats().txs},
              {"node_version", kNodeVersion}};
    const ledger::GenesisParams& fees = app->GetGenesis().params;
    j["fee_per_byte_ugpn"] = U64(fees.fee_per_byte_ugpn);
    j["fee_per_msg_ugpn"] = U64(fees.fee_per_msg_ugpn);
    j["fee_min_ugpn"] = U64(fees.fee_min_ugpn);
    j["gas_price_ugpn"] = U64(fees.gas_price_ugpn);
    j["block_gas_max"] = fees.block_gas_max;
    return JsonResponse(j);
  });
  server->Handle("POST", "/tx/simulate", [this](const Request& req) { return SimulateTx(req); });
  server->HandleAsync("POST", "/tx",
                      [this](Request req, Responder r) { PostTx(std::move(req), std::move(r)); });
  server->HandlePrefix("GET", "/tx/", [this](const Request& req) {
    auto hash = base::FixedFromHex<32>(req.path_rest);
    if (!hash)
      return JsonError(400, "invalid_argument",
                       "'" + req.path_rest + "' is not a tx hash (64 hex characters)");
    auto rec = ledger::FindTx(app->Store(), *hash);
    if (!rec) return ErrorResponse(rec.error());
    if (!*rec) {
      if (pool->Contains(*hash))
        return JsonError(404, "not_found",
                         "tx " + req.path_rest + " is pending in the mempool, not yet in a block");
      return JsonError(404, "not_found",
                       "no committed tx " + req.path_rest +
                           "; it was never included (or "
                           "was rejected)");
    }
    const auto& r = **rec;
    json j = {{"tx_hash", req.path_rest},
              {"height", r.location.height},
              {"index", r.location.index},
              {"tx", TxJson(r.tx)},
              {"receipt", ReceiptJson(r.receipt)}};
    return JsonResponse(j);
  });
  server->HandlePrefix("GET", "/account/", [this](const Request& req) {
    auto address = crypto::ParseAddress(req.path_rest);
    if (!address) return ErrorResponse(address.error());
    bool prove = false;
    if (auto it = req.query.find("prove"); it != req.query.end()) prove = it->second == "true";
    auto q = app->Query(
        ledger::QueryRequest{"/account", base::Bytes(address->begin(), address->end()), 0, prove});
    if (!q) return ErrorResponse(q.error());
    codec::Account account;
    if (q->value) {
      auto decoded = codec::DecodeAccount(*q->value);
      if (!decoded) return ErrorResponse(decoded.error());
      account = *decoded;
    }
    json j = {{"address", req.path_rest},
              {"balance_ugpn", U64(account.balance_ugpn)},
              {"nonce", account.nonce},
              {"height", q->height},
              {"exists", q->value.has_value()}};
    if (prove) {
      j["state_key"] = base::ToHex(q->key);
      j["value"] = q->value ? json(base::ToHex(*q->value)) : json(nullptr);
      j["proof"] = q->proof ? json(base::ToHex(codec::EncodeSmtProof(*q->proof))) : json(nullptr);
      j["header"] = nullptr;
      if (q->height > 0) {
        auto block = ledger::ReadBlock(app->Store(), q->height);
        if (!block) return ErrorResponse(block.error());
        if (*block) j["header"] = base::ToHex(codec::EncodeBlockHeader((*block)->header));
      }
      j["state_root"] = base::ToHex(q->state_root);
    }
    return JsonResponse(j);
  });
  server->HandlePrefix("GET", "/block/", [this](const Request& req) {
    uint64_t height = 0;
    if (req.path_rest == "latest") {
      height = app->Info().last_height;
    } else {
      char* end = nullptr;
      height = std::strtoull(req.path_rest.c_str(), &end, 10);
      if (req.path_rest.empty() || *end != '\0' || req.path_rest[0] == '-')
        return JsonError(400, "invalid_argument",
                         "'" + req.path_rest + "' is not a height; use a number or 'latest'");
    }
    auto block = ledger::ReadBlock(app->Store(), height);
    if (!block) return ErrorResponse(block.error());
    if (!*block)
      return JsonError(404, "not_found",
                       "no block at height " + std::to_string(height) + "; the latest is " +
                           std::to_string(app->Info().last_height));
    auto receipts = ledger::ReadReceipts(app->Store(), height);
    if (!receipts) return ErrorResponse(receipts.error());
    const codec::Block& b = **block;
    json txs = json::array();
    for (const auto& tx : b.txs) txs.push_back(base::ToHex(codec::TxHash(tx)));
    json rs = json::array();
    for (const auto& r : *receipts) {
      json rj = ReceiptJson(r);
      rj["tx_hash"] = base::ToHex(r.tx_hash);
      rs.push_back(rj);
    }
    json j = {{"height", height},
              {"hash", base::ToHex(codec::BlockHash(b.header))},
              {"header", HeaderJson(b.header)},
              {"header_hex", base::ToHex(codec::EncodeBlockHeader(b.header))},
              {"txs", txs},
              {"receipts", rs}};
    return JsonResponse(j);
  });
  // GET /market/..., /conservation (market_routes.h)
  RegisterMarketRoutes(*server, *app, *market_index, registry);
  server->Handle("GET", "/metrics", [this](const Request&) {
    m_mempool_txs->Set(static_cast<double>(pool->Stats().txs));
    Response r;
    r.content_type = std::string(metrics::kContentType);
    r.body = registry.Render();
    return r;
  });
}

Node::Node(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Node::~Node() {
  Stop();
}

base::Result<std::unique_ptr<Node>> Node::Start(const NodeOptions& options) {
  GPUNET_CHECK(options.clock != nullptr);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  const std::string genesis_path = options.home + "/config/genesis.json";
  GPUNET_TRY_ASSIGN(initialised, Exists(genesis_path));
  if (!initialised)
    return Fail(ErrorCode::kNotFound, genesis_path +
                                          " not found: initialise the home first with "
                                          "`gpunet init --home " +
                                          options.home + "`");
  GPUNET_TRY_ASSIGN(genesis, ledger::LoadGenesisFile(genesis_path));
  impl->genesis = genesis;
  GPUNET_TRY_ASSIGN(config, LoadNodeConfig(options.home + "/config/node.json"));
  impl->config = config;
  if (options.rpc) {
    GPUNET_TRY_ASSIGN(hp, ParseHostPort(*options.rpc));
    impl->config.rpc_host = hp.first;
    impl->config.rpc_port = hp.second;
  }
  if (options.block_interval_ms) impl->config.block_interval_ms = *options.block_interval_ms;
  if (impl->config.block_interval_ms == 0) impl->config.block_interval_ms = 1;
  GPUNET_TRY_ASSIGN(seed_text, base::ReadFileNoFollow(options.home + "/config/validator.seed",
                                                      kValidatorSeedFileBytesMax));
  while (!seed_text.empty() && (seed_text.back() == '\n' || seed_text.back() == ' '))
    seed_text.pop_back();
  GPUNET_TRY_ASSIGN(seed, base::FixedFromHex<32>(seed_text));
  const crypto::KeyPair validator_key = crypto::KeyPair::FromSeed(seed);
  impl->proposer = crypto::AddressOf(validator_key.Public());

  storage::RocksKvOptions kvo;
  const char* env = std::getenv("GPUNET_FAULT_FS");
  kvo.fault_injection = options.fault_fs || (env && std::string(env) == "1");
  GPUNET_TRY_ASSIGN(kv, storage::RocksKvStore::Open(options.home + "/data", kvo));
  impl->kv = std::move(kv);
  if (kvo.fault_injection) {
    auto faults = impl->kv->Faults();
    GPUNET_CHECK(faults.has_value());
    GPUNET_TRY(storage::CutPowerOnSignal(*faults, SIGUSR1, 99));
  }
  impl->indexed_kv = std::make_unique<IndexedKvStore>(*impl->kv);
  ledger::AppOptions app_options;
  app_options.check_block_invariants = options.check_block_invariants;
  GPUNET_TRY_ASSIGN(app, ledger::LedgerApp::Open(*impl->indexed_kv, impl->genesis, app_options));
  impl->app = std::move(app);
  // Built from the committed state before any block can commit, then kept up to
  // date by every commit: nothing is missed between the two.
  GPUNET_TRY_ASSIGN(market_index, MarketIndex::Build(impl->app->Store()));
  impl->market_index = std::move(market_index);
  impl->indexed_kv->SetObserver(
      [index = impl->market_index.get()](const state::WriteBatch& b) { index->Apply(b); });
  impl->pool = std::make_unique<mempool::Mempool>(*impl->app);
  impl->engine = std::make_unique<consensus::SoloEngine>(impl->config.block_interval_ms);
  if (impl->config.engine == "bft") {
    GPUNET_TRY_ASSIGN(
        bft, BftNodeEngine::Open(options.home + "/data", validator_key, impl->genesis.chain_id,
                                 impl->genesis.genesis_time_ms, impl->config.block_interval_ms,
                                 *impl->app, *impl->kv, *impl->pool));
    impl->bft = std::move(bft);
  }

  auto& reg = impl->registry;
  impl->m_height = &reg.GetGauge("gpunet_height", "Last committed block height.");
  impl->m_txs_committed =
      &reg.GetCounter("gpunet_txs_committed_total", "Transactions in committed blocks.");
  impl->m_mempool_txs = &reg.GetGauge("gpunet_mempool_txs", "Transactions waiting in the mempool.");
  impl->m_commit_seconds = &reg.GetHistogram("gpunet_block_commit_seconds",
                                             "Time to build, execute and durably commit one block.",
                                             metrics::LatencyBucketsSeconds());
  impl->m_simulations =
      &reg.GetCounter("gpunet_simulations_total", "POST /tx/simulate requests that ran.");
  impl->m_simulations_refused = &reg.GetCounter(
      "gpunet_simulations_refused_total",
      "POST /tx/simulate requests answered 503 because another simulation was running.");
  impl->m_height->Set(static_cast<double>(impl->app->Info().last_height));

  ServerOptions so = RpcServerOptions(impl->config);
  so.metrics = &reg;
  impl->server = std::make_unique<HttpServer>(so);
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
  std::lock_guard lock(m_impl->engine_mu);
  if (m_impl->engine_error) return std::unexpected(*m_impl->engine_error);
  return base::Ok();
}

void Node::RequestStop() {
  m_impl->stop_requested.store(true);
}

void Node::Stop() {
  if (!m_impl || m_impl->stopped.exchange(true)) return;
  {
    std::lock_guard lock(m_impl->engine_mu);
    m_impl->stopping = true;
  }
  m_impl->engine_cv.notify_all();
  if (m_impl->engine_thread.joinable()) m_impl->engine_thread.join();
  m_impl->ExpireWaiters(UINT64_MAX);
  m_impl->server->Stop();
  m_impl->bft.reset();  // holds the app, store and pool by reference
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
