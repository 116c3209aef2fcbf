// LedgerApp: the Application (application.h) over a KvStore: the token ledger of
// architecture §2 with its block store, state tree and replay.
//
// State lives in the KvStore (state/keyspace.h); the authenticated state tree and
// the state's values are held in memory too, rebuilt from the store at Open.
// Block execution runs the pipeline of state/tx_pipeline.h over a StateDb overlay;
// Commit writes the block, receipts, state changes, tx index and meta in ONE
// synced KvStore::Commit.
//
// Threads: one engine thread calls PrepareProposal / ProcessProposal /
// FinalizeBlock / Commit; any thread may call Info, CheckTx and Query at the same
// time. The KvStore must allow Get/Scan concurrently with Commit (RocksKvStore does;
// MemoryKvStore does not, so single-threaded tests only).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "base/mutex.h"
#include "base/result.h"
#include "ledger/application.h"
#include "ledger/genesis.h"
#include "state/kv.h"
#include "state/resident_kv.h"
#include "state/smt.h"
#include "state/state_db.h"
#include "state/tx_pipeline.h"

namespace gpunet::ledger {

/// What a tx would do if it executed now (LedgerApp::Simulate).
struct SimulateResponse {
  codec::TxCode code = codec::TxCode::kOk;  ///< its receipt's code, or why it is refused
  std::string message;
  uint64_t gas_used = 0;  ///< with a block's whole gas limit to use
  /// The fee that buys exactly gas_used: the byte and message price plus gas_used
  /// at the gas price, and at least the chain's minimum.
  uint64_t fee_ugpn = 0;
  std::vector<codec::Event> events;
};

struct AppOptions {
  /// Tx hashes whose signature verified, remembered between CheckTx and execution.
  size_t signature_cache_capacity = 1u << 20;
  /// The per-block invariant check (architecture §2.9, state::CheckBlockChanges):
  /// every executed block, before it can be committed. Off only to measure its
  /// cost (bench_node --no-block-check).
  bool check_block_invariants = true;
  /// Tests only: runs on each executed block's overlay just before the per-block
  /// check, to inject a write the check must catch.
  std::function<void(state::StateDb&)> before_block_check_for_test;
};

class LedgerApp final : public Application {
 public:
  /// Opens the ledger stored in `kv` (not owned; must outlive the app). An empty
  /// store is initialised from `genesis` (one synced commit). Otherwise the stored
  /// genesis hash must match (kConflict), and the state tree rebuilt from the
  /// stored leaves must give the last header's state root (kCorrupt): the app
  /// resumes at the last committed height.
  static base::Result<std::unique_ptr<LedgerApp>> Open(state::KvStore& kv, const Genesis& genesis,
                                                       const AppOptions& options = {});

  AppInfo Info() const override;
  CheckTxResponse CheckTx(base::ByteSpan tx_bytes, CheckTxMode mode) override;
  CheckTxResponse RecheckTx(std::shared_ptr<const state::CheckedTx> tx) override;
  base::Result<PrepareProposalResponse> PrepareProposal(
      const PrepareProposalRequest& request) override;
  base::Result<ProcessProposalResponse> ProcessProposal(
      const ProcessProposalRequest& request) override;
  base::Result<FinalizeBlockResponse> FinalizeBlock(const FinalizeBlockRequest& request) override;
  base::Result<CommitResponse> Commit() override;
  base::Result<QueryResponse> Query(const QueryRequest& request) const override;
  /// The earliest market deadline in committed state (bid-window end, start
  /// deadline, heartbeat deadline, paid_until): a block is due then even without
  /// txs, so leases close when their funds run out with no keeper.
  std::optional<uint64_t> NextDeadline() const override;

  /// Executes `tx_bytes` (an encoded tx, signed or with an all-zero signature)
  /// against the committed state as the next block would, with the block's whole
  /// gas limit whatever its fee, and commits nothing. The nonce may be ahead of the
  /// account's (up to nonce_ahead_max): it runs as if the txs before it had not
  /// changed the state. Refusals come back as a code, not an error.
  base::Result<SimulateResponse> Simulate(base::ByteSpan tx_bytes) const;

  const Genesis& GetGenesis() const { return m_genesis; }
  const state::PipelineParams& Params() const { return m_params; }
  const state::KvStore& Store() const { return *m_kv; }
  state::SignatureCache& Signatures() { return m_signatures; }

 private:
  struct Executed;  // one executed block, awaiting Commit

  LedgerApp(std::unique_ptr<state::ResidentKvStore> kv, const Genesis& genesis,
            const AppOptions& options);
  base::Status Load();
  // The per-block invariant check over the executed block's overlay; kCorrupt
  // naming the height, the invariant and the key stops the block here.
  base::Status CheckBlock(state::StateDb& db, uint64_t height) const;
  // Executes a proposed block against committed state; accept=false with a reason
  // when the block breaks a rule.
  base::Result<ProcessProposalResponse> ExecuteProposal(const codec::Block& block);
  // The tree at committed state / with the executed block `hash` applied.
  void TreeToCommitted() const REQUIRES(m_mutex);
  void TreeToPending(const base::Hash32& block_hash) const REQUIRES(m_mutex);

  // The store given to Open, with the application state resident in memory in
  // front of it (state/resident_kv.h): every read and write goes through here.
  std::unique_ptr<state::ResidentKvStore> m_resident;
  state::KvStore* m_kv;
  Genesis m_genesis;
  base::Hash32 m_genesis_hash;
  state::PipelineParams m_params;
  state::SignatureCache m_signatures;
  bool m_check_block;
  std::function<void(state::StateDb&)> m_before_block_check;

  // m_mutex guards everything below (the engine thread against Query). The
  // committed-block fields that follow are written only by the engine thread,
  // under m_mutex AND m_info_mutex; Info and CheckTx read them under
  // m_info_mutex alone, so they never wait for a commit's fsync or a tree update
  // (signature checks on the RPC threads ran in lock-step with commits before).
  // The engine thread reads what only it writes without a lock, which GUARDED_BY
  // (one mutex, every access) cannot say: only the tree is annotated.
  mutable base::Mutex m_mutex;
  mutable base::Mutex m_info_mutex;
  uint64_t m_last_height = 0;
  base::Hash32 m_last_block_hash;
  uint64_t m_last_time_ms = 0;
  base::Hash32 m_state_root;  ///< committed
  codec::ValidatorSet m_validators;
  // The tree holds committed state, or committed state plus one executed block
  // (m_tree_pending): executing applies a block's changes once, Commit keeps them,
  // a Query or another proposal undoes them first. mutable: Query may undo.
  mutable state::SparseMerkleTree m_tree GUARDED_BY(m_mutex);
  mutable std::optional<base::Hash32> m_tree_pending GUARDED_BY(m_mutex);
  std::map<base::Hash32, std::shared_ptr<Executed>> m_executed;  ///< by block hash, this height
  std::shared_ptr<Executed> m_finalized;                         ///< what Commit persists
};

/// Result of ReplayFromGenesis.
struct ReplayReport {
  uint64_t blocks = 0;      ///< blocks re-executed (1..blocks)
  base::Hash32 state_root;  ///< after the last one
};

/// Re-executes every block stored in `stored` from genesis on a fresh in-memory
/// ledger, checking each block's header (state root, receipts root, every other
/// field) and the conservation equation after every block. kCorrupt names the first
/// height whose stored block does not reproduce.
base::Result<ReplayReport> ReplayFromGenesis(const state::KvStore& stored, const Genesis& genesis);

}  // namespace gpunet::ledger
