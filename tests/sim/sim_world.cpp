#include "sim/sim_world.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>

#include "base/check.h"
#include "base/clock.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "consensus/bft.h"
#include "crypto/address.h"
#include "crypto/hash.h"
#include "ledger/app.h"
#include "ledger/block_store.h"
#include "mempool/mempool.h"
#include "node/bft_adaptor.h"
#include "node/bft_driver.h"
#include "state/conservation.h"
#include "state/kv.h"
#include "util/keys.h"

#ifndef GPUNET_GIT_COMMIT
#define GPUNET_GIT_COMMIT "unknown"
#endif

namespace gpunet::sim {

namespace {

using base::ErrorCode;

constexpr uint64_t kGenesisMs = 1'700'000'000'000;
constexpr const char* kChain = "gpunet-sim";
constexpr uint64_t kClientBalanceUgpn = 1'000'000'000'000;
constexpr uint64_t kFeeUgpn = 1000;
constexpr size_t kClients = 4;
constexpr uint64_t kGossipMs = 400;
constexpr uint64_t kClientTickMs = 150;
constexpr uint64_t kTxResendMs = 3000;

base::Error CrashError() {
  return base::Error{ErrorCode::kIo, "simulated crash"};
}

// Exact seeds (tag, the run's seed, zeros, i) rather than util/keys.h's numbered
// ones: a seed's trace, and which hard cases the bounded seed set reaches, depend on
// the keys.
crypto::KeyPair KeyFor(uint8_t tag, uint64_t seed, uint32_t i) {
  crypto::Seed s;
  s[0] = tag;
  for (int b = 0; b < 8; ++b) s[1 + b] = static_cast<uint8_t>(seed >> (8 * b));
  s[31] = static_cast<uint8_t>(i);
  return gpunet::testing::TestKey(s);
}

// ---------------------------------------------------------------- fake disks

/// Kills a node at its k-th disk operation once armed: that operation and every
/// later one fail, as if the power went out during it.
struct CrashSwitch {
  bool armed = false;
  uint64_t ops_left = 0;
  bool crashed = false;
  bool Op() {
    if (crashed) return true;
    if (!armed) return false;
    if (ops_left == 0) {
      crashed = true;
      return true;
    }
    --ops_left;
    return false;
  }
};

/// What survives a crash: the synced prefix of the WAL (plus whatever part of the
/// unsynced bytes the disk happened to write), the last stored guard, the store.
struct DiskState {
  base::Bytes wal;
  size_t wal_synced = 0;
  std::optional<base::Bytes> guard;
};

class SimWalDisk final : public node::WalDisk {
 public:
  SimWalDisk(DiskState& d, CrashSwitch& sw, base::SeededRng& rng) : m_d(d), m_sw(sw), m_rng(rng) {}
  base::Result<base::Bytes> ReadAll() override { return m_d.wal; }
  base::Status Append(base::ByteSpan bytes) override {
    if (m_sw.Op()) {
      // Power lost mid-write: some prefix reached the page cache.
      const size_t keep = static_cast<size_t>(m_rng.Below(bytes.size() + 1));
      m_d.wal.insert(m_d.wal.end(), bytes.begin(), bytes.begin() + static_cast<long>(keep));
      return std::unexpected(CrashError());
    }
    m_d.wal.insert(m_d.wal.end(), bytes.begin(), bytes.end());
    return base::Ok();
  }
  base::Status Sync() override {
    if (m_sw.Op()) return std::unexpected(CrashError());
    m_d.wal_synced = m_d.wal.size();
    return base::Ok();
  }
  base::Status Truncate(uint64_t size) override {
    if (m_sw.Op()) return std::unexpected(CrashError());
    m_d.wal.resize(std::min<size_t>(m_d.wal.size(), size));
    m_d.wal_synced = m_d.wal.size();
    return base::Ok();
  }

 private:
  DiskState& m_d;
  CrashSwitch& m_sw;
  base::SeededRng& m_rng;
};

class SimGuardDisk final : public node::GuardDisk {
 public:
  SimGuardDisk(DiskState& d, CrashSwitch& sw) : m_d(d), m_sw(sw) {}
  base::Result<std::optional<base::Bytes>> Load() override { return m_d.guard; }
  base::Status Store(base::ByteSpan bytes) override {
    if (m_sw.Op()) return std::unexpected(CrashError());  // rename never happened
    m_d.guard = base::Bytes(bytes.begin(), bytes.end());
    return base::Ok();
  }

 private:
  DiskState& m_d;
  CrashSwitch& m_sw;
};

/// The node's store: each Commit is one synced batch (or, at the crash, none of it).
class CrashKv final : public state::KvStore {
 public:
  CrashKv(state::MemoryKvStore& mem, CrashSwitch& sw) : m_mem(mem), m_sw(sw) {}
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    return m_mem.Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const state::KvVisitor& visit) const override {
    return m_mem.Scan(begin, end, visit);
  }
  base::Status Commit(const state::WriteBatch& batch) override {
    if (m_sw.Op()) return std::unexpected(CrashError());
    return m_mem.Commit(batch);
  }

 private:
  state::MemoryKvStore& m_mem;
  CrashSwitch& m_sw;
};

// ---------------------------------------------------------------- messages

struct Msg {
  enum class Kind : uint8_t { kProposal = 1, kVote = 2, kCommit = 3 } kind = Kind::kVote;
  codec::Proposal proposal;
  codec::Block block;
  codec::Vote vote;
  codec::Commit commit;
  base::Hash32 digest;  ///< identifies the message in the trace
};

class World;

class SimTransport final : public node::BftTransport {
 public:
  SimTransport(World& world, uint32_t from) : m_world(world), m_from(from) {}
  void SendProposal(const codec::Proposal& proposal, const codec::Block& block) override;
  void SendVote(const codec::Vote& vote) override;
  void SendCommit(const codec::Block& block, const codec::Commit& commit) override;

 private:
  World& m_world;
  uint32_t m_from;
};

// ---------------------------------------------------------------- nodes

struct SimNode {
  uint32_t index = 0;
  uint32_t key_index = 0;
  bool byzantine = false;  ///< one of the twins
  bool twin_b = false;     ///< the twin that hears less
  crypto::KeyPair key;
  std::unique_ptr<consensus::KeyPairSigner> signer;
  state::MemoryKvStore store;  // survives crashes (every commit is synced)
  DiskState disk;
  CrashSwitch sw;
  std::unique_ptr<CrashKv> kv;
  std::unique_ptr<ledger::LedgerApp> app;
  std::unique_ptr<mempool::Mempool> pool;
  std::unique_ptr<node::LedgerBftAdaptor> adaptor;
  std::unique_ptr<SimTransport> transport;
  std::unique_ptr<node::BftDriver> driver;
  bool up = false;
  uint64_t restart_at = 0;
  uint64_t next_gossip = 0;
  uint64_t height = 0;                                  ///< last committed (kept while down)
  std::tuple<uint64_t, uint32_t, int, int64_t> traced;  ///< last traced core position

  explicit SimNode(crypto::KeyPair k) : key(std::move(k)) {}
};

struct Client {
  crypto::KeyPair key;
  codec::Address address;
  std::optional<base::Bytes> in_flight;
  uint64_t in_flight_nonce = 0;
  uint64_t resend_at = 0;
};

struct Partition {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t side_mask = 0;  ///< nodes with their bit set are on side B
};

// ---------------------------------------------------------------- the world

class World {
 public:
  World(uint64_t seed, const SimOptions& options) : m_seed(seed), m_opt(options), m_rng(seed) {
    m_report.seed = seed;
  }

  SimReport Run();
  void Broadcast(uint32_t from, std::shared_ptr<const Msg> msg);
  void SendTo(uint32_t from, uint32_t to, std::shared_ptr<const Msg> msg);
  void TraceSend(uint32_t from, const Msg& m) {
    if (m_opt.trace && m.kind == Msg::Kind::kVote &&
        m.vote.validator == crypto::AddressOf(m_nodes[from]->key.Public()))
      Trace("node %u sends own vote %" PRIu64 "/%u/%d for %s", from, m.vote.height, m.vote.round,
            static_cast<int>(m.vote.type), base::ToHex(m.vote.block_hash).substr(0, 8).c_str());
  }

 private:
  void Setup();
  void Fail(const std::string& what);
  bool Failed() const { return !m_report.failure.empty(); }
  void Trace(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void Mix(std::string_view tag, uint64_t a, uint64_t b, const base::Hash32* h = nullptr);

  void BootNode(SimNode& n);
  void CrashNode(SimNode& n, const char* why);
  /// Runs a driver call; a failure is a crash when the node's switch fired, a bug
  /// otherwise.
  void Guarded(SimNode& n, const base::Status& status, const char* what);
  /// Runs one driver call, adding its thread CPU time to the report (bench figure).
  template <typename F>
  base::Status Timed(F&& call);
  void OnCommitted(SimNode& n, const node::BftCommitted& c);

  void Deliver(uint32_t to, const Msg& msg);
  void ScenarioStep();
  void ClientStep();
  void BlockSync(SimNode& n);
  bool Connected(uint32_t a, uint32_t b) const;
  uint64_t NextEventTime() const;
  void CheckLiveness();
  void Harvest(const SimNode& n);
  uint64_t HonestMinHeight() const;
  uint64_t HonestMaxHeight() const;
  SimNode* ReferenceNode();

  uint64_t m_seed;
  SimOptions m_opt;
  base::SeededRng m_rng;
  SimReport m_report;
  crypto::Blake2b256Hasher m_trace;

  uint64_t m_now = kGenesisMs;
  uint64_t m_chaos_end = 0;
  bool m_healed = false;
  uint64_t m_heal_time = 0;
  uint64_t m_heal_target = 0;

  ledger::Genesis m_genesis;
  consensus::BftConfig m_config;
  std::vector<std::unique_ptr<SimNode>> m_nodes;
  std::vector<Client> m_clients;
  std::vector<codec::Address> m_recipients;

  // Network.
  uint32_t m_loss_percent = 0;
  /// Extra loss of each directed link (from * nodes + to) during the chaos: some
  /// links are much worse than others, so one node sees a quorum the rest miss.
  std::vector<uint32_t> m_link_loss;
  uint32_t m_dup_percent = 0;
  uint64_t m_delay_max_ms = 100;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<uint32_t, std::shared_ptr<const Msg>>> m_queue;
  uint64_t m_seq = 0;
  std::vector<Partition> m_partitions;   ///< in start order
  std::optional<Partition> m_partition;  ///< in force now
  uint64_t m_partition_heal_height = 0;
  bool m_partition_heal_pending = false;

  // Scenario schedule.
  uint64_t m_next_crash = 0;
  uint64_t m_next_client = 0;
  uint32_t m_crash_percent = 0;

  // Agreement: per height, the block hash and state root first committed.
  std::map<uint64_t, std::pair<base::Hash32, base::Hash32>> m_decided;
  // Counters of cores that were torn down (crashes), added at harvest.
  consensus::BftCounters m_dead_counters;
};

void World::Trace(const char* fmt, ...) {
  if (!m_opt.trace) return;
  std::fprintf(stderr, "[%8" PRIu64 "] ", m_now - kGenesisMs);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

void World::Mix(std::string_view tag, uint64_t a, uint64_t b, const base::Hash32* h) {
  base::Bytes bytes(tag.begin(), tag.end());
  base::AppendU64BE(bytes, m_now);
  base::AppendU64BE(bytes, a);
  base::AppendU64BE(bytes, b);
  if (h != nullptr) bytes.insert(bytes.end(), h->begin(), h->end());
  m_trace.Update(bytes);
}

void World::Fail(const std::string& what) {
  if (Failed()) return;
  m_report.failure = "tick " + std::to_string(m_now - kGenesisMs) + ": " + what;
}

void World::Setup() {
  // The scenario, all from the seed.
  uint32_t n = 1 + static_cast<uint32_t>(m_rng.Below(10));
  if (m_opt.validators != 0) n = m_opt.validators;
  const bool twin = n >= 4 && m_rng.Below(2) == 0 && m_opt.faults;
  static constexpr uint32_t kLoss[] = {0, 5, 20};
  m_loss_percent = kLoss[m_rng.Below(3)];
  if (m_opt.loss_percent >= 0) m_loss_percent = static_cast<uint32_t>(m_opt.loss_percent);
  m_dup_percent = static_cast<uint32_t>(m_rng.Below(10));
  m_delay_max_ms = 20 + m_rng.Below(300);
  m_crash_percent = static_cast<uint32_t>(m_rng.Below(100));
  if (!m_opt.faults) {
    m_dup_percent = 0;
    m_crash_percent = 0;
  }
  m_report.validators = n;
  m_report.twin = twin;
  m_report.loss_percent = m_loss_percent;

  // Validators with unequal stakes; a twin's key holds < 1/3 of the power.
  std::vector<crypto::KeyPair> keys;
  std::vector<uint64_t> powers;
  uint64_t others = 0;
  for (uint32_t i = 0; i < n; ++i) {
    keys.push_back(KeyFor(0xa1, m_seed, i));
    powers.push_back(1 + m_rng.Below(100));
    if (i != 0) others += powers.back();
  }
  if (twin) powers[0] = 1 + m_rng.Below(std::max<uint64_t>(1, (others - 1) / 2));
  for (uint32_t i = 0; i < n; ++i)
    m_genesis.validators.validators.push_back({keys[i].Public(), powers[i]});
  std::sort(m_genesis.validators.validators.begin(), m_genesis.validators.validators.end(),
            [](const codec::Validator& a, const codec::Validator& b) {
              return a.public_key < b.public_key;
            });
  m_genesis.chain_id = kChain;
  m_genesis.genesis_time_ms = kGenesisMs;
  m_genesis.app_version = 1;
  for (uint32_t c = 0; c < kClients; ++c) {
    Client client{KeyFor(0xc1, m_seed, c), {}, std::nullopt, 0, 0};
    client.address = crypto::AddressOf(client.key.Public());
    m_genesis.accounts.push_back({client.address, kClientBalanceUgpn});
    m_recipients.push_back(client.address);
    m_clients.push_back(std::move(client));
  }
  for (uint32_t r = 0; r < 3; ++r)
    m_recipients.push_back(gpunet::testing::TestAddress(KeyFor(0xd1, m_seed, r)));
  std::sort(m_genesis.accounts.begin(), m_genesis.accounts.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  auto valid = ledger::ValidateGenesis(m_genesis);
  GPUNET_CHECK(valid.has_value());

  m_config.chain_id = kChain;
  m_config.timeout_propose_ms = 1000;
  m_config.timeout_propose_delta_ms = 500;
  m_config.timeout_prevote_ms = 500;
  m_config.timeout_prevote_delta_ms = 250;
  m_config.timeout_precommit_ms = 500;
  m_config.timeout_precommit_delta_ms = 250;
  m_config.commit_wait_ms = 200;
  m_config.genesis_time_ms = kGenesisMs;

  for (uint32_t i = 0; i < n; ++i) {
    auto node = std::make_unique<SimNode>(keys[i]);
    node->index = i;
    node->key_index = i;
    node->byzantine = twin && i == 0;
    m_nodes.push_back(std::move(node));
  }
  if (twin) {
    auto node = std::make_unique<SimNode>(keys[0]);
    node->index = n;
    node->key_index = 0;
    node->byzantine = true;
    node->twin_b = true;
    m_nodes.push_back(std::move(node));
  }
  // Partitions (only with someone to be cut off from).
  if (n >= 2) {
    const uint64_t count = m_opt.faults ? m_rng.Below(4) : 0;
    uint64_t t = kGenesisMs + 1000 + m_rng.Below(3000);
    for (uint64_t p = 0; p < count && t < m_chaos_end; ++p) {
      Partition part;
      part.start = t;
      part.end = std::min(m_chaos_end, t + 1000 + m_rng.Below(6000));
      part.side_mask = 1 + m_rng.Below((uint64_t{1} << m_nodes.size()) - 2);
      m_partitions.push_back(part);
      t = part.end + 500 + m_rng.Below(4000);
    }
  }
  if (m_opt.faults && m_rng.Below(2) == 0) {
    m_link_loss.resize(m_nodes.size() * m_nodes.size());
    for (uint32_t& l : m_link_loss)
      l = m_rng.Below(3) == 0 ? static_cast<uint32_t>(m_rng.Below(60)) : 0;
  }
  m_next_crash = kGenesisMs + 500 + m_rng.Below(5000);
  m_next_client = kGenesisMs + 100;
  Trace("seed %" PRIu64 ": %u validators%s, loss %u%%, dup %u%%, delay <= %" PRIu64
        " ms, crash %u%%, %zu partitions",
        m_seed, n, twin ? " + twin" : "", m_loss_percent, m_dup_percent, m_delay_max_ms,
        m_crash_percent, m_partitions.size());
  for (auto& node : m_nodes) BootNode(*node);
}

void World::BootNode(SimNode& n) {
  n.sw = CrashSwitch{};
  n.kv = std::make_unique<CrashKv>(n.store, n.sw);
  auto app = ledger::LedgerApp::Open(*n.kv, m_genesis);
  if (!app)
    return Fail("node " + std::to_string(n.index) + " ledger open: " + app.error().ToString());
  n.app = std::move(*app);
  n.pool = std::make_unique<mempool::Mempool>(*n.app);
  n.adaptor = std::make_unique<node::LedgerBftAdaptor>(
      *n.app, *n.kv, kChain, m_config.evidence_max_age_heights, n.pool.get());
  n.adaptor->SetOnCommitted([this, &n](const node::BftCommitted& c) { OnCommitted(n, c); });
  n.signer = std::make_unique<consensus::KeyPairSigner>(n.key);
  n.transport = std::make_unique<SimTransport>(*this, n.index);
  auto start = node::LoadBftStartState(*n.app, *n.kv);
  if (!start)
    return Fail("node " + std::to_string(n.index) + " start state: " + start.error().ToString());
  auto driver = node::BftDriver::Open(m_config, *start, *n.adaptor, n.signer.get(),
                                      std::make_unique<SimWalDisk>(n.disk, n.sw, m_rng),
                                      std::make_unique<SimGuardDisk>(n.disk, n.sw), *n.transport);
  if (!driver)
    return Fail("node " + std::to_string(n.index) + " driver open: " + driver.error().ToString());
  n.driver = std::move(*driver);
  n.height = n.app->Info().last_height;
  n.up = true;
  n.next_gossip = m_now + m_rng.Below(kGossipMs);
  m_report.wal_torn_bytes += n.driver->Stats().wal_torn_bytes;
  Trace("node %u boots at height %" PRIu64 " (%" PRIu64 " torn WAL bytes)", n.index, n.height,
        n.driver->Stats().wal_torn_bytes);
  Mix("boot", n.index, n.height);
  Guarded(n, Timed([&] { return n.driver->Start(m_now); }), "start");
  if (n.up) m_report.wal_records_replayed += n.driver->Stats().wal_records_replayed;
}

void World::Harvest(const SimNode& n) {
  if (!n.driver) return;
  const consensus::BftCounters& c = n.driver->Core().Counters();
  if (n.byzantine) return;
  m_dead_counters.decided_after_round0 += c.decided_after_round0;
  m_dead_counters.locks_taken += c.locks_taken;
  m_dead_counters.locks_changed += c.locks_changed + c.pol_unlocks;
  m_dead_counters.equivocations_detected += c.equivocations_detected;
  m_dead_counters.catchup_commits += c.catchup_commits;
}

void World::CrashNode(SimNode& n, const char* why) {
  Trace("node %u crashes (%s) at height %" PRIu64, n.index, why, n.height);
  Mix("crash", n.index, n.height);
  Harvest(n);
  n.driver.reset();
  n.adaptor.reset();
  n.transport.reset();
  n.pool.reset();
  n.app.reset();
  n.kv.reset();
  n.signer.reset();
  // The disk keeps what was synced and maybe part of what was not.
  const size_t unsynced = n.disk.wal.size() - n.disk.wal_synced;
  n.disk.wal.resize(n.disk.wal_synced + static_cast<size_t>(m_rng.Below(unsynced + 1)));
  n.up = false;
  n.restart_at = m_now + 300 + m_rng.Below(3000);
  ++m_report.crashes;
}

uint64_t ThreadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

template <typename F>
base::Status World::Timed(F&& call) {
  const uint64_t started = ThreadCpuNs();
  base::Status status = call();
  m_report.driver_cpu_ns += ThreadCpuNs() - started;
  return status;
}

void World::Guarded(SimNode& n, const base::Status& status, const char* what) {
  if (status && m_opt.trace && n.driver) {
    const consensus::BftCore& core = n.driver->Core();
    const auto now = std::make_tuple(core.Height(), core.Round(), static_cast<int>(core.Step()),
                                     core.LockedRound());
    if (now != n.traced) {
      n.traced = now;
      Trace("node %u at height %" PRIu64 " round %u step %d locked round %" PRId64
            " (after %s%s%s)",
            n.index, core.Height(), core.Round(), static_cast<int>(core.Step()), core.LockedRound(),
            what,
            n.driver->LastIgnored().empty() ? "" : "; ignored: ", n.driver->LastIgnored().c_str());
    }
  }
  if (status) return;
  if (n.sw.crashed) return CrashNode(n, what);
  Fail("node " + std::to_string(n.index) + " " + what + ": " + status.error().ToString());
}

void World::OnCommitted(SimNode& n, const node::BftCommitted& c) {
  const uint64_t h = c.block.header.height;
  const base::Hash32 hash = c.committed.block_hash;
  const base::Hash32 root = c.committed.state_root;
  n.height = h;
  Trace("node %u commits height %" PRIu64 " round %u txs %zu evidence %zu", n.index, h,
        c.commit.round, c.block.txs.size(), c.block.evidence.size());
  Mix("commit", n.index, h, &hash);
  if (root != c.block.header.state_root || n.app->Info().state_root != root)
    return Fail("node " + std::to_string(n.index) + " height " + std::to_string(h) +
                ": the ledger's state root differs from the block header's");
  auto [it, fresh] = m_decided.emplace(h, std::make_pair(hash, root));
  if (!fresh && (it->second.first != hash || it->second.second != root))
    return Fail(std::string(n.byzantine ? "twin" : "honest") + " node " + std::to_string(n.index) +
                " committed block " + base::ToHex(hash) + " at height " + std::to_string(h) +
                ", another node committed " + base::ToHex(it->second.first) +
                " (agreement or state-root divergence)");
  auto conserved = state::CheckConservation(n.store);
  if (!conserved || !conserved->Holds())
    return Fail("node " + std::to_string(n.index) + " height " + std::to_string(h) +
                ": conservation fails: " +
                (conserved ? conserved->ToString() : conserved.error().ToString()));
  if (!n.byzantine && n.index == ReferenceNode()->index) {
    m_report.commit_rounds_sum += c.commit.round;
    m_report.txs_committed += c.block.txs.size();
    m_report.evidence_committed += c.block.evidence.size();
  }
  if (m_partition_heal_pending && h > m_partition_heal_height && !n.byzantine) {
    m_partition_heal_pending = false;
    ++m_report.partitions_healed;
  }
}

SimNode* World::ReferenceNode() {
  // The first honest node: its view counts committed txs and evidence once.
  for (auto& n : m_nodes)
    if (!n->byzantine) return n.get();
  GPUNET_UNREACHABLE();
}

bool World::Connected(uint32_t a, uint32_t b) const {
  if (!m_partition) return true;
  return ((m_partition->side_mask >> a) & 1) == ((m_partition->side_mask >> b) & 1);
}

void World::SendTo(uint32_t from, uint32_t to, std::shared_ptr<const Msg> msg) {
  if (from == to) return;
  const uint32_t link_loss = m_link_loss.empty() ? 0 : m_link_loss[from * m_nodes.size() + to];
  if (!Connected(from, to) || m_rng.Below(100) < m_loss_percent + link_loss) {
    ++m_report.messages_dropped;
    return;
  }
  // The second twin hears only half of the proposals and votes: its view differs
  // from its sibling's, so the two sign conflicting votes.
  if (m_nodes[to]->twin_b && msg->kind != Msg::Kind::kCommit && m_rng.Below(2) == 0) {
    ++m_report.messages_dropped;
    return;
  }
  const uint32_t copies = m_rng.Below(100) < m_dup_percent ? 2 : 1;
  for (uint32_t c = 0; c < copies; ++c) {
    const uint64_t at = m_now + 1 + m_rng.Below(m_delay_max_ms);
    m_queue.emplace(std::make_pair(at, m_seq++), std::make_pair(to, msg));
  }
}

void World::Broadcast(uint32_t from, std::shared_ptr<const Msg> msg) {
  for (uint32_t to = 0; to < m_nodes.size(); ++to) SendTo(from, to, msg);
}

void SimTransport::SendProposal(const codec::Proposal& proposal, const codec::Block& block) {
  auto m = std::make_shared<Msg>();
  m->kind = Msg::Kind::kProposal;
  m->proposal = proposal;
  m->block = block;
  m->digest = crypto::Blake2b256(codec::EncodeProposal(proposal));
  m_world.Broadcast(m_from, std::move(m));
}

void SimTransport::SendVote(const codec::Vote& vote) {
  auto m = std::make_shared<Msg>();
  m->kind = Msg::Kind::kVote;
  m->vote = vote;
  m->digest = crypto::Blake2b256(codec::EncodeVote(vote));
  m_world.TraceSend(m_from, *m);
  m_world.Broadcast(m_from, std::move(m));
}

void SimTransport::SendCommit(const codec::Block& block, const codec::Commit& commit) {
  auto m = std::make_shared<Msg>();
  m->kind = Msg::Kind::kCommit;
  m->block = block;
  m->commit = commit;
  m->digest = crypto::Blake2b256(codec::EncodeCommit(commit));
  m_world.Broadcast(m_from, std::move(m));
}

void World::Deliver(uint32_t to, const Msg& msg) {
  SimNode& n = *m_nodes[to];
  if (!n.up) return;
  ++m_report.messages_delivered;
  Mix("deliver", to, static_cast<uint64_t>(msg.kind), &msg.digest);
  switch (msg.kind) {
    case Msg::Kind::kProposal:
      Guarded(n, Timed([&] { return n.driver->OnProposal(msg.proposal, msg.block, m_now); }),
              "proposal");
      if (n.up && !n.driver->LastIgnored().empty())
        Trace("node %u ignores a proposal for %" PRIu64 "/%u: %s", n.index, msg.proposal.height,
              msg.proposal.round, n.driver->LastIgnored().c_str());
      break;
    case Msg::Kind::kVote:
      Guarded(n, Timed([&] { return n.driver->OnVote(msg.vote, m_now); }), "vote");
      if (n.up && !n.driver->LastIgnored().empty())
        Trace("node %u ignores a vote %" PRIu64 "/%u/%d: %s", n.index, msg.vote.height,
              msg.vote.round, static_cast<int>(msg.vote.type), n.driver->LastIgnored().c_str());
      break;
    case Msg::Kind::kCommit:
      Guarded(n, Timed([&] { return n.driver->OnCommittedBlock(msg.block, msg.commit, m_now); }),
              "committed block");
      break;
  }
}

void World::BlockSync(SimNode& n) {
  // Stands in for the block-sync protocol of a later issue: a peer that is behind
  // gets our next block with its stored certificate, over the (lossy) network.
  for (auto& peer : m_nodes) {
    if (peer.get() == &n || !peer->up || peer->height >= n.height) continue;
    const uint64_t h = peer->height + 1;
    auto block = ledger::ReadBlock(n.store, h);
    auto commit = node::ReadCommit(n.store, h);
    if (!block || !*block || !commit || !*commit) continue;
    auto m = std::make_shared<Msg>();
    m->kind = Msg::Kind::kCommit;
    m->block = **block;
    m->commit = **commit;
    m->digest = crypto::Blake2b256(codec::EncodeCommit(m->commit));
    SendTo(n.index, peer->index, std::move(m));
  }
}

void World::ClientStep() {
  if (!m_opt.load) return;
  SimNode* ref = nullptr;
  for (auto& n : m_nodes)
    if (n->up && !n->byzantine && (ref == nullptr || n->height > ref->height)) ref = n.get();
  if (ref == nullptr) return;
  for (Client& c : m_clients) {
    if (m_rng.Below(2) != 0) continue;
    auto q = ref->app->Query(ledger::QueryRequest{
        "/account", base::Bytes(c.address.begin(), c.address.end()), 0, false});
    if (!q || !q->value) continue;
    auto account = codec::DecodeAccount(*q->value);
    GPUNET_CHECK(account.has_value());
    const bool done = !c.in_flight || account->nonce > c.in_flight_nonce;
    if (done) {
      codec::TxBody body;
      body.chain_id = kChain;
      body.sender = c.key.Public();
      body.nonce = account->nonce;
      body.fee_ugpn = kFeeUgpn;
      body.msgs.push_back(
          codec::MsgSend{m_recipients[m_rng.Below(m_recipients.size())], 1 + m_rng.Below(100'000)});
      c.in_flight = codec::EncodeTx(codec::SignTx(std::move(body), c.key));
      c.in_flight_nonce = account->nonce;
    } else if (m_now < c.resend_at) {
      continue;
    }
    c.resend_at = m_now + kTxResendMs;
    for (auto& n : m_nodes)
      if (n->up && !n->twin_b) n->pool->Add(*c.in_flight);  // twin B proposes other blocks
  }
}

void World::ScenarioStep() {
  // Partitions begin and end.
  if (m_partition && m_now >= m_partition->end) {
    Trace("partition heals");
    Mix("heal", 0, 0);
    m_partition.reset();
    m_partition_heal_pending = true;
    m_partition_heal_height = HonestMaxHeight();
  }
  if (!m_partition && !m_partitions.empty() && m_now >= m_partitions.front().start) {
    m_partition = m_partitions.front();
    m_partitions.erase(m_partitions.begin());
    ++m_report.partitions;
    Trace("partition starts (side mask %" PRIx64 ") until %" PRIu64, m_partition->side_mask,
          m_partition->end - kGenesisMs);
    Mix("partition", m_partition->side_mask, m_partition->end);
  }
  // Crashes: immediately, or armed to hit at one of the node's next disk operations.
  if (!m_healed && m_now >= m_next_crash) {
    m_next_crash = m_now + 1000 + m_rng.Below(6000);
    if (m_rng.Below(100) < m_crash_percent) {
      SimNode& n = *m_nodes[m_rng.Below(m_nodes.size())];
      if (n.up) {
        if (m_rng.Below(3) == 0) {
          CrashNode(n, "between events");
        } else {
          n.sw.armed = true;
          n.sw.ops_left = m_rng.Below(8);
          Trace("node %u will crash at its disk op +%" PRIu64, n.index, n.sw.ops_left);
        }
      }
    }
  }
  for (auto& n : m_nodes)
    if (!n->up && m_now >= n->restart_at && !Failed()) BootNode(*n);
  // The final heal: perfect network, nobody crashes, everyone back.
  if (!m_healed && m_now >= m_chaos_end) {
    m_healed = true;
    m_heal_time = m_now;
    m_partition.reset();
    m_partitions.clear();
    m_loss_percent = 0;
    m_link_loss.clear();
    m_dup_percent = 0;
    m_delay_max_ms = std::min<uint64_t>(m_delay_max_ms, 50);
    for (auto& n : m_nodes) {
      n->sw.armed = false;
      if (!n->up && !Failed()) BootNode(*n);
    }
    m_heal_target = HonestMaxHeight() + 2;
    Trace("network healed; every honest node must reach height %" PRIu64, m_heal_target);
    Mix("final-heal", m_heal_target, 0);
  }
}

uint64_t World::HonestMinHeight() const {
  uint64_t h = UINT64_MAX;
  for (auto& n : m_nodes)
    if (!n->byzantine) h = std::min(h, n->height);
  return h;
}

uint64_t World::HonestMaxHeight() const {
  uint64_t h = 0;
  for (auto& n : m_nodes)
    if (!n->byzantine) h = std::max(h, n->height);
  return h;
}

uint64_t World::NextEventTime() const {
  uint64_t t = UINT64_MAX;
  if (!m_queue.empty()) t = m_queue.begin()->first.first;
  for (auto& n : m_nodes) {
    if (n->up) {
      if (auto timer = n->driver->NextTimerMs()) t = std::min(t, *timer);
      t = std::min(t, n->next_gossip);
    } else {
      t = std::min(t, n->restart_at);
    }
  }
  t = std::min(t, m_next_client);
  if (!m_healed) {
    t = std::min({t, m_chaos_end, m_next_crash});
    if (m_partition) t = std::min(t, m_partition->end);
    if (!m_partitions.empty()) t = std::min(t, m_partitions.front().start);
  }
  return std::max(t, m_now);
}

void World::CheckLiveness() {
  if (!m_healed) return;
  if (HonestMinHeight() >= m_heal_target) {
    m_report.heal_ticks_max = m_now - m_heal_time;
    m_report.ok = true;  // done: the run ends here
    return;
  }
  if (m_now - m_heal_time > m_opt.heal_bound_ms)
    Fail("liveness: " + std::to_string(m_now - m_heal_time) +
         " ms after the network healed, an honest node is still below height " +
         std::to_string(m_heal_target) + " (lowest honest height " +
         std::to_string(HonestMinHeight()) + ")");
}

SimReport World::Run() {
  m_chaos_end = kGenesisMs + m_opt.chaos_ms;
  Setup();
  while (!Failed() && !m_report.ok) {
    m_now = NextEventTime();
    ++m_report.events;
    ScenarioStep();
    if (m_now >= m_next_client) {
      ClientStep();
      m_next_client = m_now + kClientTickMs;
    }
    while (!Failed() && !m_queue.empty() && m_queue.begin()->first.first <= m_now) {
      auto [to, msg] = m_queue.begin()->second;
      m_queue.erase(m_queue.begin());
      Deliver(to, *msg);
    }
    for (auto& n : m_nodes) {
      if (Failed() || !n->up) continue;
      Guarded(*n, Timed([&] { return n->driver->FireDueTimers(m_now); }), "timeout");
      if (n->up && m_now >= n->next_gossip) {
        n->next_gossip = m_now + kGossipMs;
        Guarded(*n, Timed([&] { return n->driver->Gossip(m_now); }), "gossip");
        if (n->up) BlockSync(*n);
      }
    }
    CheckLiveness();
  }
  for (auto& n : m_nodes) Harvest(*n);
  m_report.decided_after_round0 = m_dead_counters.decided_after_round0;
  m_report.locks_taken = m_dead_counters.locks_taken;
  m_report.locks_released = m_dead_counters.locks_changed;
  m_report.equivocations_detected = m_dead_counters.equivocations_detected;
  m_report.catchup_commits = m_dead_counters.catchup_commits;
  m_report.heights = HonestMinHeight();
  m_report.ticks = m_now - kGenesisMs;
  m_report.trace_hash = base::ToHex(m_trace.Final());
  if (Failed()) m_report.ok = false;
  return m_report;
}

}  // namespace

std::string SimReport::Summary() const {
  std::ostringstream s;
  s << "seed " << seed << (ok ? " ok" : " FAILED") << ": " << validators << " validators"
    << (twin ? " + twin" : "") << ", loss " << loss_percent << "%, heights " << heights
    << ", ticks " << ticks << ", txs " << txs_committed << ", rounds>0 " << decided_after_round0
    << ", locks " << locks_taken << "/" << locks_released << " released, equivocations "
    << equivocations_detected << ", evidence committed " << evidence_committed << ", partitions "
    << partitions_healed << "/" << partitions << " healed, crashes " << crashes << ", wal replayed "
    << wal_records_replayed << " (torn bytes " << wal_torn_bytes << "), heal " << heal_ticks_max
    << " ms, trace " << trace_hash.substr(0, 16);
  if (!ok)
    s << "\n  failure: " << failure << "\n  replay: bft_sim --seed " << seed
      << " --trace   (commit " << GitCommit() << ")";
  return s.str();
}

std::vector<std::string> CoverageGaps(const std::vector<SimReport>& reports) {
  SimReport sum;
  for (const SimReport& r : reports) {
    sum.decided_after_round0 += r.decided_after_round0;
    sum.locks_taken += r.locks_taken;
    sum.locks_released += r.locks_released;
    sum.equivocations_detected += r.equivocations_detected;
    sum.evidence_committed += r.evidence_committed;
    sum.partitions_healed += r.partitions_healed;
    sum.crashes += r.crashes;
    sum.wal_records_replayed += r.wal_records_replayed;
  }
  std::vector<std::string> gaps;
  if (sum.decided_after_round0 == 0) gaps.push_back("no height was committed in a round > 0");
  if (sum.locks_taken == 0) gaps.push_back("no validator ever locked a value");
  if (sum.locks_released == 0)
    gaps.push_back("no lock was ever released (changed or passed on a newer POL)");
  if (sum.equivocations_detected == 0) gaps.push_back("no equivocation was detected");
  if (sum.evidence_committed == 0) gaps.push_back("no evidence was committed in a block");
  if (sum.partitions_healed == 0) gaps.push_back("no partition healed into a new height");
  if (sum.crashes == 0 || sum.wal_records_replayed == 0)
    gaps.push_back("no crash restarted from a non-empty WAL");
  return gaps;
}

SimReport RunSeed(uint64_t seed, const SimOptions& options) {
  World world(seed, options);
  return world.Run();
}

std::string GitCommit() {
  if (const char* env = std::getenv("GPUNET_GIT_COMMIT"); env != nullptr && *env != '\0')
    return env;
  return GPUNET_GIT_COMMIT;
}

}  // namespace gpunet::sim
