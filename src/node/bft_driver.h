// Runs the pure BFT core (consensus/bft.h) against real effects: it executes the
// core's actions in order — WAL append + sync and sign-guard replacement BEFORE
// anything after them (so no vote leaves before it is durable), broadcasts through
// a transport, timers kept in a queue the caller polls — and restarts the core from
// the WAL and the guard after a crash.
//
// The same driver runs the node (real files, wall clock, no peers or the p2p layer
// later) and every validator of the simulator (tests/sim: fake disks, fake network,
// simulated clock), so the simulator exercises this code, not a copy of it.
//
// Single-threaded: the caller serialises every call. Any error is fatal for the
// node (a disk that cannot sync, a store that cannot commit): stop, do not retry.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "codec/types.h"
#include "consensus/bft.h"
#include "node/bft_adaptor.h"
#include "node/bft_wal.h"

namespace gpunet::node {

/// Where broadcasts go. Sends are fire-and-forget (a lossy network is fine: the core
/// re-gossips and times out).
class BftTransport {
 public:
  virtual ~BftTransport() = default;
  virtual void SendProposal(const codec::Proposal& proposal, const codec::Block& block) = 0;
  virtual void SendVote(const codec::Vote& vote) = 0;
  virtual void SendCommit(const codec::Block& block, const codec::Commit& commit) = 0;
};

/// A validator alone (one-validator chain): nothing to send to.
class NoPeersTransport final : public BftTransport {
 public:
  void SendProposal(const codec::Proposal&, const codec::Block&) override {}
  void SendVote(const codec::Vote&) override {}
  void SendCommit(const codec::Block&, const codec::Commit&) override {}
};

struct BftDriverStats {
  uint64_t wal_records_replayed = 0;  ///< handed to the core at Start
  uint64_t wal_torn_bytes = 0;        ///< cut off at open
  uint64_t wal_appends = 0;
  uint64_t wal_clears = 0;  ///< one per committed height
  uint64_t guard_writes = 0;
  uint64_t broadcasts = 0;
  uint64_t timeouts_fired = 0;
};

class BftDriver {
 public:
  /// Reads the WAL (cutting a torn tail) and the guard, creates the core. A guard
  /// that does not decode is kCorrupt: refuse to sign with a guard we cannot read.
  /// `app`, `signer` (nullptr: observer) and `transport` must outlive the driver.
  static base::Result<std::unique_ptr<BftDriver>> Open(
      consensus::BftConfig config, consensus::BftStartState start, consensus::BftApplication& app,
      const consensus::BftSigner* signer, std::unique_ptr<WalDisk> wal_disk,
      std::unique_ptr<GuardDisk> guard_disk, BftTransport& transport);

  /// Starts the core, replaying the WAL records read at Open. Once.
  base::Status Start(uint64_t now_ms);

  // Inputs from the network. An input the core ignores is not an error.
  base::Status OnProposal(const codec::Proposal& proposal, const codec::Block& block,
                          uint64_t now_ms);
  base::Status OnVote(const codec::Vote& vote, uint64_t now_ms);
  base::Status OnCommittedBlock(const codec::Block& block, const codec::Commit& commit,
                                uint64_t now_ms);
  base::Status OnEvidence(const codec::Evidence& evidence, uint64_t now_ms);

  /// Fires every timer due at now_ms, earliest first (ties: scheduling order).
  base::Status FireDueTimers(uint64_t now_ms);
  /// When the next timer is due; nullopt when none is set.
  std::optional<uint64_t> NextTimerMs() const;
  /// Re-broadcasts what the core holds for the current height (lossy networks).
  base::Status Gossip(uint64_t now_ms);

  /// Informational callback for every Decided action (after FinalizeAndCommit).
  void SetOnDecided(std::function<void(const consensus::Decided&)> on_decided) {
    m_on_decided = std::move(on_decided);
  }
  /// Why the last input was ignored by the core (empty when it was used).
  const std::string& LastIgnored() const { return m_last_ignored; }

  consensus::BftCore& Core() { return *m_core; }
  const consensus::BftCore& Core() const { return *m_core; }
  const BftDriverStats& Stats() const { return m_stats; }

 private:
  BftDriver(std::unique_ptr<consensus::BftCore> core, std::unique_ptr<BftWal> wal,
            std::unique_ptr<GuardDisk> guard, BftTransport& transport,
            std::vector<consensus::WalRecord> replay)
      : m_core(std::move(core)),
        m_wal(std::move(wal)),
        m_guard(std::move(guard)),
        m_transport(transport),
        m_replay(std::move(replay)) {}
  base::Status Execute(base::Result<consensus::BftStep> step, uint64_t now_ms);
  base::Status ExecuteActions(const std::vector<consensus::Action>& actions, uint64_t now_ms);

  std::unique_ptr<consensus::BftCore> m_core;
  std::unique_ptr<BftWal> m_wal;
  std::unique_ptr<GuardDisk> m_guard;
  BftTransport& m_transport;
  std::vector<consensus::WalRecord> m_replay;
  bool m_started = false;
  /// (due ms, sequence) -> timeout: a deterministic firing order.
  std::map<std::pair<uint64_t, uint64_t>, consensus::TimeoutInfo> m_timers;
  uint64_t m_timer_seq = 0;
  std::function<void(const consensus::Decided&)> m_on_decided;
  std::string m_last_ignored;
  BftDriverStats m_stats;
};

}  // namespace gpunet::node

namespace gpunet::node {

/// The bft engine of a running node (gpunet node with "engine":"bft"): the adaptor,
/// the signer, the driver over <home>/data/bft.wal and <home>/data/sign_guard. No
/// peers yet (p2p is a later issue): a one-validator chain commits alone.
class BftNodeEngine {
 public:
  /// `app`, `kv` (its store) and `pool` must outlive the engine.
  static base::Result<std::unique_ptr<BftNodeEngine>> Open(
      const std::string& data_dir, const crypto::KeyPair& key, const std::string& chain_id,
      uint64_t genesis_time_ms, uint64_t block_interval_ms, ledger::Application& app,
      state::KvStore& kv, mempool::Mempool& pool);

  LedgerBftAdaptor& Adaptor() { return *m_adaptor; }
  BftDriver& Driver() { return *m_driver; }

 private:
  BftNodeEngine() = default;
  std::unique_ptr<consensus::KeyPairSigner> m_signer;
  std::unique_ptr<LedgerBftAdaptor> m_adaptor;
  NoPeersTransport m_transport;
  std::unique_ptr<BftDriver> m_driver;
};

}  // namespace gpunet::node
