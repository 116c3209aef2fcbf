#include "ledger/app.h"

#include <algorithm>

#include "base/check.h"
#include "base/limits.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "ledger/block_store.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "state/market_store.h"
#include "state/state_db.h"

namespace gpunet::ledger {

namespace keyspace = state::keyspace;
using base::ErrorCode;
using base::Fail;

struct LedgerApp::Executed {
  codec::Block block;
  base::Hash32 block_hash;
  /// Handed to FinalizeBlock's response (moved: thousands of events); what
  /// Commit stores are the encodings and hashes below, made once.
  std::vector<codec::Receipt> receipts;
  bool receipts_taken = false;
  std::vector<base::Bytes> encoded_receipts;
  std::vector<base::Hash32> tx_hashes;
  state::WriteBatch state_changes;
  std::vector<state::SmtChange> forward;  ///< committed tree -> tree after the block
  std::vector<state::SmtChange> inverse;  ///< and back
  std::vector<codec::Event> events;       ///< end-of-block events (market)
};

namespace {

/// The genesis state: every genesis account and the supply record.
state::WriteBatch GenesisState(const Genesis& genesis) {
  state::WriteBatch batch;
  for (const auto& a : genesis.accounts)
    batch.Put(keyspace::AccountKey(a.address),
              codec::EncodeAccount(codec::Account{a.balance_ugpn, 0}));
  state::Supply supply;
  supply.genesis_ugpn = GenesisSupply(genesis);
  batch.Put(state::SupplyKey(), state::EncodeSupply(supply));
  return batch;
}

bool HasValidator(const codec::ValidatorSet& set, const codec::Address& address) {
  return std::any_of(set.validators.begin(), set.validators.end(), [&](const codec::Validator& v) {
    return crypto::AddressOf(v.public_key) == address;
  });
}

/// Encodes the receipts once (the receipts root hashes them, Commit stores them) and
/// keeps their tx hashes; returns the receipts root.
base::Hash32 SealReceipts(const std::vector<codec::Receipt>& receipts,
                          std::vector<base::Bytes>& encoded, std::vector<base::Hash32>& tx_hashes) {
  encoded.clear();
  tx_hashes.clear();
  encoded.reserve(receipts.size());
  tx_hashes.reserve(receipts.size());
  for (const auto& r : receipts) {
    encoded.push_back(codec::EncodeReceipt(r));
    tx_hashes.push_back(r.tx_hash);
  }
  return codec::ReceiptsRootOfEncoded(encoded);
}

std::string TxRefusal(size_t index, const base::Hash32& hash, const codec::TxError& error) {
  return "tx " + std::to_string(index) + " (" + base::ToHex(hash) +
         ") may not be in a block: " + error.ToString();
}

}  // namespace

// ---------------------------------------------------------------- open / load

LedgerApp::LedgerApp(std::unique_ptr<state::ResidentKvStore> kv, const Genesis& genesis,
                     const AppOptions& options)
    : m_resident(std::move(kv)),
      m_kv(m_resident.get()),
      m_genesis(genesis),
      m_genesis_hash(GenesisHash(genesis)),
      m_params(PipelineParamsOf(genesis)),
      m_signatures(options.signature_cache_capacity),
      m_check_block(options.check_block_invariants),
      m_before_block_check(options.before_block_check_for_test) {}

base::Result<std::unique_ptr<LedgerApp>> LedgerApp::Open(state::KvStore& kv, const Genesis& genesis,
                                                         const AppOptions& options) {
  GPUNET_TRY(ValidateGenesis(genesis));
  auto resident =
      state::ResidentKvStore::Open(kv, keyspace::AppStateBegin(), keyspace::AppStateEnd());
  if (!resident) return std::unexpected(resident.error());
  std::unique_ptr<LedgerApp> app(new LedgerApp(std::move(*resident), genesis, options));
  GPUNET_TRY(app->Load());
  return app;
}

base::Status LedgerApp::Load() {
  auto stored_hash = m_kv->Get(keyspace::MetaKey(keyspace::kMetaGenesisHash));
  if (!stored_hash) return std::unexpected(stored_hash.error());
  if (!stored_hash->has_value()) {
    // A fresh store: the genesis state and meta in one synced commit.
    state::WriteBatch batch = GenesisState(m_genesis);
    batch.Put(keyspace::ValidatorSetKey(1), codec::EncodeValidatorSet(m_genesis.validators));
    batch.Put(keyspace::MetaKey(keyspace::kMetaGenesisHash),
              base::Bytes(m_genesis_hash.begin(), m_genesis_hash.end()));
    batch.Put(keyspace::MetaKey(keyspace::kMetaChainId),
              base::Bytes(m_genesis.chain_id.begin(), m_genesis.chain_id.end()));
    batch.Put(keyspace::MetaKey(keyspace::kMetaAppVersion),
              keyspace::EncodeU64(m_genesis.app_version));
    batch.Put(keyspace::MetaKey(keyspace::kMetaSchemaVersion),
              keyspace::EncodeU64(keyspace::kSchemaVersion));
    batch.Put(keyspace::MetaKey(keyspace::kMetaLastHeight), keyspace::EncodeU64(0));
    GPUNET_TRY(m_kv->Commit(batch));
  } else if (base::ByteSpan(**stored_hash).size() != 32 ||
             !std::equal(m_genesis_hash.begin(), m_genesis_hash.end(), (*stored_hash)->begin())) {
    return Fail(ErrorCode::kConflict,
                "the store holds a chain with genesis hash " + base::ToHex(**stored_hash) +
                    ", the genesis file given has " + base::ToHex(m_genesis_hash) +
                    "; use the genesis this home was initialised with");
  }

  auto last = ReadLastHeight(*m_kv);
  if (!last) return std::unexpected(last.error());
  m_last_height = *last;
  base::Hash32 expected_root;
  if (m_last_height == 0) {
    m_last_block_hash = base::Hash32{};
    m_last_time_ms = m_genesis.genesis_time_ms;
    state::SparseMerkleTree genesis_tree;
    GPUNET_TRY(genesis_tree.Apply(GenesisState(m_genesis)));
    expected_root = genesis_tree.Root();
  } else {
    auto block = ReadBlock(*m_kv, m_last_height);
    if (!block) return std::unexpected(block.error());
    if (!block->has_value())
      return Fail(ErrorCode::kCorrupt,
                  "last height is " + std::to_string(m_last_height) + " but its block is missing");
    m_last_block_hash = codec::BlockHash((*block)->header);
    m_last_time_ms = (*block)->header.time_ms;
    expected_root = (*block)->header.state_root;
  }

  std::optional<base::Bytes> validators;
  GPUNET_TRY(m_kv->Scan(keyspace::ValidatorSetKey(0), keyspace::ValidatorSetKey(m_last_height + 2),
                        [&](base::ByteSpan, base::ByteSpan value) {
                          validators = base::Bytes(value.begin(), value.end());
                          return true;
                        }));
  if (!validators) return Fail(ErrorCode::kCorrupt, "no validator set stored");
  auto set = codec::DecodeValidatorSet(*validators);
  if (!set) return base::Wrap(set.error(), "stored validator set");
  m_validators = std::move(*set);

  auto tree = state::SparseMerkleTree::BuildFromKvStore(*m_kv, keyspace::AppStateBegin(),
                                                        keyspace::AppStateEnd());
  if (!tree) return std::unexpected(tree.error());
  base::MutexLock lock(
      m_mutex);  // no other thread has the app yet: m_tree is always accessed under it
  m_tree = std::move(*tree);
  m_state_root = m_tree.Root();
  if (m_state_root != expected_root)
    return Fail(ErrorCode::kCorrupt, "state tree rebuilt from the store has root " +
                                         base::ToHex(m_state_root) + ", the header of height " +
                                         std::to_string(m_last_height) + " says " +
                                         base::ToHex(expected_root));
  return base::Ok();
}

base::Status LedgerApp::CheckBlock(state::StateDb& db, uint64_t height) const {
  if (m_before_block_check) m_before_block_check(db);
  if (!m_check_block) return base::Ok();
  if (auto held = state::CheckBlockChanges(db, m_params.market); !held)
    return Fail(ErrorCode::kCorrupt,
                "block " + std::to_string(height) +
                    " breaks an invariant and is not committed: " + held.error().message);
  return base::Ok();
}

// ---------------------------------------------------------------- tree

void LedgerApp::TreeToCommitted() const {
  if (!m_tree_pending) return;
  const base::Hash32 pending = *m_tree_pending;  // a lambda is analysed without the lock
  auto it = std::find_if(m_executed.begin(), m_executed.end(),
                         [&](const auto& entry) { return entry.second->block_hash == pending; });
  GPUNET_CHECK(it != m_executed.end());
  auto status = m_tree.Update(it->second->inverse);
  GPUNET_CHECK(status.has_value());
  m_tree_pending.reset();
  GPUNET_CHECK(m_tree.Root() == m_state_root);
}

void LedgerApp::TreeToPending(const base::Hash32& block_hash) const {
  if (m_tree_pending == block_hash) return;
  TreeToCommitted();
  auto it = m_executed.find(block_hash);
  GPUNET_CHECK(it != m_executed.end());
  auto status = m_tree.Update(it->second->forward);
  GPUNET_CHECK(status.has_value());
  m_tree_pending = block_hash;
}

// ---------------------------------------------------------------- CheckTx / Info / Query

AppInfo LedgerApp::Info() const {
  base::MutexLock lock(m_info_mutex);
  AppInfo info;
  info.chain_id = m_genesis.chain_id;
  info.app_version = m_genesis.app_version;
  info.genesis_hash = m_genesis_hash;
  info.last_height = m_last_height;
  info.last_block_hash = m_last_block_hash;
  info.last_block_time_ms = m_last_time_ms;
  info.state_root = m_state_root;
  info.consensus_params =
      ConsensusParams{m_genesis.params.block_bytes_max, m_genesis.params.block_txs_max,
                      m_genesis.params.block_interval_ms, m_genesis.params.block_gas_max};
  info.validators = m_validators;
  return info;
}

CheckTxResponse LedgerApp::CheckTx(base::ByteSpan tx_bytes, CheckTxMode mode) {
  (void)mode;  // both modes run every check; the signature cache makes a recheck cheap
  auto checked = state::CheckStateless(tx_bytes, m_params, &m_signatures);
  if (!checked) {
    CheckTxResponse response;
    response.code = checked.error().code;
    response.message = checked.error().message;
    if (auto tx = codec::DecodeTx(tx_bytes)) response.tx_hash = codec::TxHashOfEncoded(tx_bytes);
    return response;
  }
  return RecheckTx(std::make_shared<const state::CheckedTx>(std::move(*checked)));
}

CheckTxResponse LedgerApp::RecheckTx(std::shared_ptr<const state::CheckedTx> shared) {
  GPUNET_CHECK(shared != nullptr);
  const state::CheckedTx& tx = *shared;
  const codec::TxBody& body = tx.tx.body;
  CheckTxResponse response;
  response.tx_hash = tx.hash;
  response.sender = tx.sender;
  response.nonce = body.nonce;
  response.fee_ugpn = body.fee_ugpn;
  response.required_fee_ugpn = tx.required_fee_ugpn;
  response.amount_ugpn = tx.amount_ugpn;
  response.bytes = tx.encoded_bytes;
  response.msgs = body.msgs.size();
  response.timeout_height = body.timeout_height;
  uint64_t next_height = 0;
  {
    base::MutexLock lock(m_info_mutex);
    next_height = m_last_height + 1;
  }
  state::StateDb db(*m_kv);
  auto account = db.GetAccount(tx.sender);
  if (!account) {
    // The store could not be read: not the tx's fault, but it cannot be admitted.
    response.code = codec::TxCode::kMalformed;
    response.message = "node could not read its state: " + account.error().ToString();
    return response;
  }
  response.account_nonce = account->nonce;
  response.account_balance_ugpn = account->balance_ugpn;
  auto stateful = state::CheckStatefulAgainst(*account, tx, next_height, m_params,
                                              state::NonceRule::kAllowAhead);
  if (!stateful) {
    response.code = stateful.error().code;
    response.message = stateful.error().message;
  }
  response.checked = std::move(shared);
  return response;
}

base::Result<QueryResponse> LedgerApp::Query(const QueryRequest& request) const {
  base::MutexLock lock(m_mutex);
  if (request.height != 0 && request.height != m_last_height)
    return Fail(ErrorCode::kUnsupported, "only the latest committed height (" +
                                             std::to_string(m_last_height) +
                                             ") can be queried; this node keeps no state history");
  QueryResponse response;
  response.height = m_last_height;
  response.state_root = m_state_root;
  if (request.path == "/account") {
    if (request.data.size() != codec::Address::kSize)
      return Fail(ErrorCode::kInvalidArgument, "/account takes a 20-byte address, got " +
                                                   std::to_string(request.data.size()) + " bytes");
    codec::Address address;
    std::copy(request.data.begin(), request.data.end(), address.begin());
    response.key = keyspace::AccountKey(address);
  } else if (request.path == "/state") {
    if (request.data.empty() || request.data.size() > base::limits::kStateKeyBytesMax ||
        request.data[0] != keyspace::kAppState)
      return Fail(ErrorCode::kInvalidArgument,
                  "/state takes an application-state key (first byte 0x01, at most " +
                      std::to_string(base::limits::kStateKeyBytesMax) + " bytes)");
    response.key = request.data;
  } else {
    return Fail(ErrorCode::kNotFound,
                "unknown query path '" + request.path + "'; paths are /account and /state");
  }
  auto value = m_kv->Get(response.key);
  if (!value) return std::unexpected(value.error());
  response.value = std::move(*value);
  if (request.prove) {
    TreeToCommitted();
    response.proof = m_tree.Prove(codec::SmtKeyHash(response.key));
  }
  return response;
}

std::optional<uint64_t> LedgerApp::NextDeadline() const {
  state::MarketKvView view(*m_kv);
  auto deadline = market::NextDeadline(view);
  // An unreadable store surfaces at the next block; no deadline until then.
  if (!deadline) return std::nullopt;
  return *deadline;
}

// ---------------------------------------------------------------- blocks

// Over 70 lines: the candidate loop's byte, gas and execution limits share the block
// being built; one pass in the mempool's order.
// NOLINTNEXTLINE(readability-function-size)
base::Result<PrepareProposalResponse> LedgerApp::PrepareProposal(
    const PrepareProposalRequest& request) {
  if (request.height != m_last_height + 1)
    return Fail(ErrorCode::kInvalidArgument,
                "proposal for height " + std::to_string(request.height) + ", the next height is " +
                    std::to_string(m_last_height + 1));
  const bool first = m_last_height == 0;
  if (first ? request.time_ms < m_last_time_ms : request.time_ms <= m_last_time_ms)
    return Fail(ErrorCode::kInvalidArgument, "proposal time " + std::to_string(request.time_ms) +
                                                 " ms is not after the previous block's " +
                                                 std::to_string(m_last_time_ms) + " ms");
  if (!HasValidator(m_validators, request.proposer))
    return Fail(
        ErrorCode::kInvalidArgument,
        "proposer " + crypto::AddressToString(request.proposer) + " is not in the validator set");

  PrepareProposalResponse response;
  codec::Block& block = response.block;
  codec::BlockHeader& h = block.header;
  h.chain_id = m_genesis.chain_id;
  h.app_version = m_genesis.app_version;
  h.height = request.height;
  h.time_ms = request.time_ms;
  h.last_block_hash = m_last_block_hash;
  h.proposer = request.proposer;
  h.validator_set_hash = codec::ValidatorSetHash(m_validators);
  h.next_validator_set_hash = h.validator_set_hash;  // no validator updates yet
  block.last_commit = request.last_commit;
  h.last_commit_hash = codec::CommitHash(block.last_commit);
  block.evidence = request.evidence;
  h.evidence_hash = codec::EvidenceHash(block.evidence);

  uint64_t max_bytes = m_genesis.params.block_bytes_max;
  if (request.max_block_bytes != 0)
    max_bytes = std::min<uint64_t>(max_bytes, request.max_block_bytes);
  // Each tx adds its bytes and a length prefix (<= 4 bytes); 8 bytes cover the
  // growth of the tx count.
  uint64_t bytes = codec::EncodeBlock(block).size() + 8;
  if (bytes > max_bytes)
    return Fail(ErrorCode::kInvalidArgument, "max_block_bytes " + std::to_string(max_bytes) +
                                                 " is below the size of an empty block (" +
                                                 std::to_string(bytes) + ")");

  auto executed = std::make_shared<Executed>();
  state::StateDb db(*m_kv);
  const state::BlockContext context{h.height, h.time_ms, h.proposer};
  const auto full = [&] { return block.txs.size() >= m_genesis.params.block_txs_max; };
  // The block's gas is the sum of its txs' limits (what they may use, known before
  // executing them): a tx that would take it over the limit stays in the mempool.
  uint64_t gas = 0;
  const auto gas_fits = [&](const state::CheckedTx& checked) {
    return checked.gas_limit <= m_params.gas.block_max - gas;
  };
  // Executes one candidate that passed the stateless checks; false when it stays out.
  const auto include = [&](const state::CheckedTx& checked) -> base::Result<bool> {
    auto applied =
        state::ApplyTx(db, checked, context, static_cast<uint32_t>(block.txs.size()), m_params);
    if (!applied) return std::unexpected(applied.error());
    if (!*applied) {
      response.skipped.push_back(
          SkippedTx{checked.hash, applied->error().code, applied->error().message});
      return false;
    }
    executed->receipts.push_back(std::move(**applied));
    bytes += checked.encoded_bytes + 4;
    gas += checked.gas_limit;
    GPUNET_CHECK(gas <= m_params.gas.block_max);
    return true;
  };
  for (const base::Bytes& candidate : request.txs) {
    if (full()) break;
    if (bytes + candidate.size() + 4 > max_bytes) continue;  // stays in the mempool
    auto checked = state::CheckStateless(candidate, m_params, &m_signatures);
    if (!checked) {
      base::Hash32 hash;
      if (codec::DecodeTx(candidate)) hash = codec::TxHashOfEncoded(candidate);
      response.skipped.push_back(SkippedTx{hash, checked.error().code, checked.error().message});
      continue;
    }
    if (!gas_fits(*checked)) continue;  // stays in the mempool
    auto included = include(*checked);
    if (!included) return std::unexpected(included.error());
    if (*included) block.txs.push_back(std::move(checked->tx));
  }
  for (const auto& checked : request.checked_txs) {
    GPUNET_CHECK(checked != nullptr);
    if (full()) break;
    if (bytes + checked->encoded_bytes + 4 > max_bytes || !gas_fits(*checked)) continue;
    auto included = include(*checked);
    if (!included) return std::unexpected(included.error());
    if (*included) block.txs.push_back(checked->tx);
  }
  // End of block (architecture §3.5): market awards -> faults -> expiries, after the txs.
  GPUNET_TRY(state::MarketEndBlock(db, h.height, h.time_ms, executed->events, m_params.gas,
                                   m_params.market));
  GPUNET_TRY(CheckBlock(db, h.height));
  // The receipts carry each tx's hash (of its canonical bytes): no re-encoding.
  h.receipts_root =
      SealReceipts(executed->receipts, executed->encoded_receipts, executed->tx_hashes);
  h.tx_root = codec::TxRootOfHashes(executed->tx_hashes);
  executed->state_changes = db.TakeChanges();
  executed->forward = state::SmtChangesOf(executed->state_changes);
  {
    base::MutexLock lock(m_mutex);
    TreeToCommitted();
    auto status = m_tree.Update(executed->forward, &executed->inverse);
    GPUNET_CHECK(status.has_value());
    h.state_root = m_tree.Root();
    executed->block = block;
    executed->block_hash = codec::BlockHash(h);
    m_executed[executed->block_hash] = executed;
    m_tree_pending = executed->block_hash;
  }
  return response;
}

// Over 70 lines: txs, end of block, receipts and the invariant check are one ordered
// sequence over one pending state (architecture §3.5).
// NOLINTNEXTLINE(readability-function-size)
base::Result<ProcessProposalResponse> LedgerApp::ExecuteProposal(const codec::Block& block) {
  auto reject = [](std::string reason) {
    return ProcessProposalResponse{false, std::move(reason)};
  };
  const codec::BlockHeader& h = block.header;
  if (auto valid = codec::ValidateBlock(block); !valid)
    return reject("block is not canonical: " + valid.error().ToString());
  const uint64_t size = codec::EncodeBlock(block).size();
  if (size > m_genesis.params.block_bytes_max)
    return reject("block is " + std::to_string(size) + " bytes, the limit is " +
                  std::to_string(m_genesis.params.block_bytes_max));
  if (block.txs.size() > m_genesis.params.block_txs_max)
    return reject(std::to_string(block.txs.size()) + " txs, the limit is " +
                  std::to_string(m_genesis.params.block_txs_max));
  if (h.chain_id != m_genesis.chain_id)
    return reject("chain id '" + h.chain_id + "' is not this chain's");
  if (h.app_version != m_genesis.app_version)
    return reject("app version " + std::to_string(h.app_version));
  if (h.height != m_last_height + 1)
    return reject("height " + std::to_string(h.height) + ", expected " +
                  std::to_string(m_last_height + 1));
  if (m_last_height == 0 ? h.time_ms < m_last_time_ms : h.time_ms <= m_last_time_ms)
    return reject("time " + std::to_string(h.time_ms) + " ms is not after the previous block's");
  if (h.last_block_hash != m_last_block_hash)
    return reject("last block hash does not match the chain");
  if (!HasValidator(m_validators, h.proposer)) return reject("proposer is not a validator");
  const base::Hash32 set_hash = codec::ValidatorSetHash(m_validators);
  if (h.validator_set_hash != set_hash || h.next_validator_set_hash != set_hash)
    return reject("validator set hashes do not match");
  if (h.last_commit_hash != codec::CommitHash(block.last_commit))
    return reject("last commit hash does not match");
  if (h.evidence_hash != codec::EvidenceHash(block.evidence))
    return reject("evidence hash does not match");
  if (h.tx_root != codec::TxRoot(block.txs)) return reject("tx root does not match the txs");

  auto executed = std::make_shared<Executed>();
  state::StateDb db(*m_kv);
  const state::BlockContext context{h.height, h.time_ms, h.proposer};
  uint64_t gas = 0;
  for (size_t i = 0; i < block.txs.size(); ++i) {
    auto checked = state::CheckStateless(block.txs[i], m_params, &m_signatures);
    if (!checked) return reject(TxRefusal(i, codec::TxHash(block.txs[i]), checked.error()));
    // Each limit is <= block_max (stage 1), so the sum cannot wrap before this.
    gas += checked->gas_limit;
    if (gas > m_params.gas.block_max)
      return reject("the gas limits of txs 0.." + std::to_string(i) + " add up to " +
                    std::to_string(gas) + ", the block gas limit is " +
                    std::to_string(m_params.gas.block_max));
    auto applied = state::ApplyTx(db, *checked, context, static_cast<uint32_t>(i), m_params);
    if (!applied) return std::unexpected(applied.error());
    if (!*applied) return reject(TxRefusal(i, checked->hash, applied->error()));
    executed->receipts.push_back(std::move(**applied));
  }
  if (h.receipts_root !=
      SealReceipts(executed->receipts, executed->encoded_receipts, executed->tx_hashes))
    return reject("receipts root does not match execution");
  GPUNET_TRY(state::MarketEndBlock(db, h.height, h.time_ms, executed->events, m_params.gas,
                                   m_params.market));
  GPUNET_TRY(CheckBlock(db, h.height));
  executed->state_changes = db.TakeChanges();
  executed->forward = state::SmtChangesOf(executed->state_changes);
  executed->block = block;
  executed->block_hash = codec::BlockHash(h);
  base::MutexLock lock(m_mutex);
  TreeToCommitted();
  auto status = m_tree.Update(executed->forward, &executed->inverse);
  GPUNET_CHECK(status.has_value());
  m_executed[executed->block_hash] = executed;
  m_tree_pending = executed->block_hash;
  if (m_tree.Root() != h.state_root) {
    std::string reason = "state root after execution is " + base::ToHex(m_tree.Root()) +
                         ", the header says " + base::ToHex(h.state_root);
    TreeToCommitted();
    m_executed.erase(executed->block_hash);
    return reject(reason);
  }
  return ProcessProposalResponse{true, ""};
}

base::Result<ProcessProposalResponse> LedgerApp::ProcessProposal(
    const ProcessProposalRequest& request) {
  auto it = m_executed.find(codec::BlockHash(request.block.header));
  if (it != m_executed.end()) {
    // The header hash binds the body through its roots, but compare anyway: a body
    // that differs from the one executed under this header is not that block.
    if (it->second->block == request.block) return ProcessProposalResponse{true, ""};
    return ProcessProposalResponse{false,
                                   "block body differs from the one executed under this header"};
  }
  return ExecuteProposal(request.block);
}

base::Result<FinalizeBlockResponse> LedgerApp::FinalizeBlock(const FinalizeBlockRequest& request) {
  const base::Hash32 hash = codec::BlockHash(request.block.header);
  if (!m_executed.contains(hash)) {
    auto processed = ExecuteProposal(request.block);
    if (!processed) return std::unexpected(processed.error());
    if (!processed->accept)
      return Fail(ErrorCode::kInvalidArgument, "block " +
                                                   std::to_string(request.block.header.height) +
                                                   " cannot be finalized: " + processed->reason);
  }
  m_finalized = m_executed.at(hash);
  if (!(m_finalized->block == request.block)) {
    m_finalized.reset();
    return Fail(ErrorCode::kInvalidArgument,
                "block " + std::to_string(request.block.header.height) +
                    ": body differs from the one executed under this header");
  }
  FinalizeBlockResponse response;
  response.height = m_finalized->block.header.height;
  response.block_hash = hash;
  response.state_root = m_finalized->block.header.state_root;
  if (!m_finalized->receipts_taken) {
    response.receipts = std::move(m_finalized->receipts);
    m_finalized->receipts_taken = true;
  } else {
    // Finalized again before Commit: the receipts were handed out once already.
    response.receipts.reserve(m_finalized->encoded_receipts.size());
    for (const auto& encoded : m_finalized->encoded_receipts) {
      auto receipt = codec::DecodeReceipt(encoded);
      GPUNET_CHECK(receipt.has_value());  // encoded here, so it decodes
      response.receipts.push_back(std::move(*receipt));
    }
  }
  response.events = m_finalized->events;
  return response;
}

base::Result<CommitResponse> LedgerApp::Commit() {
  if (!m_finalized) return Fail(ErrorCode::kInvalidArgument, "Commit without a finalized block");
  Executed& e = *m_finalized;
  const codec::BlockHeader& h = e.block.header;
  // Moved, not copied: thousands of keys per block. On failure the block is
  // forgotten below, so nothing can commit it without its state changes.
  state::WriteBatch batch = std::move(e.state_changes);
  base::Bytes encoded = codec::EncodeBlock(e.block);
  // PrepareProposal counts an upper bound of the size as it adds txs; the
  // encoding made here anyway checks it (no block over the limit is stored).
  GPUNET_CHECK(encoded.size() <= m_genesis.params.block_bytes_max);
  batch.Put(keyspace::BlockKey(h.height), std::move(encoded));
  batch.Put(keyspace::BlockHashKey(e.block_hash), keyspace::EncodeU64(h.height));
  GPUNET_CHECK(e.tx_hashes.size() == e.block.txs.size());
  GPUNET_CHECK(e.encoded_receipts.size() == e.block.txs.size());
  for (size_t i = 0; i < e.block.txs.size(); ++i) {
    const uint32_t index = static_cast<uint32_t>(i);
    batch.Put(keyspace::TxHashKey(e.tx_hashes[i]), keyspace::EncodeTxLocation({h.height, index}));
    batch.Put(keyspace::ReceiptKey(h.height, index), std::move(e.encoded_receipts[i]));
  }
  batch.Put(keyspace::MetaKey(keyspace::kMetaLastHeight), keyspace::EncodeU64(h.height));

  base::MutexLock lock(m_mutex);
  // Under the lock so a Query never pairs a new value with the old tree.
  if (auto written = m_kv->Commit(batch); !written) {
    TreeToCommitted();
    m_executed.erase(e.block_hash);
    m_finalized.reset();
    return std::unexpected(written.error());
  }
  TreeToPending(e.block_hash);
  m_tree_pending.reset();  // the pending block is now the committed state
  GPUNET_CHECK(m_tree.Root() == h.state_root);
  {
    base::MutexLock info_lock(m_info_mutex);
    m_state_root = h.state_root;
    m_last_height = h.height;
    m_last_block_hash = e.block_hash;
    m_last_time_ms = h.time_ms;
  }
  CommitResponse response{h.height, e.block_hash, h.state_root, 0};
  m_executed.clear();
  m_finalized.reset();
  return response;
}

// ---------------------------------------------------------------- simulate

base::Result<SimulateResponse> LedgerApp::Simulate(base::ByteSpan tx_bytes) const {
  SimulateResponse out;
  auto refuse = [&](const codec::TxError& e) {
    out.code = e.code;
    out.message = e.message;
    return out;
  };
  // The pipeline's own stage 1, less what a tx being priced cannot have yet: its
  // fee (it gets the most gas one tx can buy) and, when all zero, its signature.
  auto checked = state::CheckStateless(tx_bytes, m_params, nullptr,
                                       {.allow_unsigned = true, .skip_fee_and_gas = true});
  if (!checked) return refuse(checked.error());
  state::CheckedTx tx = std::move(*checked);
  const codec::TxBody& body = tx.tx.body;
  auto price = state::ByteAndMsgPrice(m_params.fees, tx.encoded_bytes, body.msgs.size());
  GPUNET_CHECK(price.has_value());  // <= the required fee, which stage 1 computed
  // Under the lock: Commit writes the store under it, so the simulation reads one
  // committed state, never half of a block's writes.
  base::MutexLock lock(m_mutex);
  state::StateDb db(*m_kv);
  auto account = db.GetAccount(tx.sender);
  if (!account) return std::unexpected(account.error());
  const uint64_t next = account->nonce;
  if (body.nonce >= next && body.nonce - next <= m_params.nonce_ahead_max && body.nonce != next) {
    account->nonce = body.nonce;  // as if the txs in between were applied first
    db.PutAccount(tx.sender, *account);
  }
  const state::BlockContext context{m_last_height + 1, m_last_time_ms + 1, {}};
  state::GasUsed used;
  auto applied = state::ApplyTx(db, tx, context, 0, m_params, &used);
  if (!applied) return std::unexpected(applied.error());
  if (!*applied) return refuse(applied->error());
  out.code = static_cast<codec::TxCode>((*applied)->code);
  out.gas_used = used.gas;
  out.fee_ugpn =
      std::max(state::FeeForGas(*price, used.gas, m_params.gas.price_ugpn), m_params.fees.min_ugpn);
  out.events = std::move((*applied)->events);
  for (const auto& e : out.events)
    if (e.type == "failure" && e.attributes.contains("message"))
      out.message = e.attributes.at("message");
  return out;
}

// ---------------------------------------------------------------- replay

base::Result<ReplayReport> ReplayFromGenesis(const state::KvStore& stored, const Genesis& genesis) {
  auto stored_hash = stored.Get(keyspace::MetaKey(keyspace::kMetaGenesisHash));
  if (!stored_hash) return std::unexpected(stored_hash.error());
  const base::Hash32 hash = GenesisHash(genesis);
  if (!stored_hash->has_value() || **stored_hash != base::Bytes(hash.begin(), hash.end()))
    return Fail(ErrorCode::kConflict, "the store was not initialised from this genesis");
  state::MemoryKvStore scratch;
  auto app = LedgerApp::Open(scratch, genesis);
  if (!app) return std::unexpected(app.error());
  auto last = ReadLastHeight(stored);
  if (!last) return std::unexpected(last.error());
  ReplayReport report;
  report.state_root = (*app)->Info().state_root;
  for (uint64_t height = 1; height <= *last; ++height) {
    auto block = ReadBlock(stored, height);
    if (!block) return std::unexpected(block.error());
    if (!block->has_value())
      return Fail(ErrorCode::kCorrupt, "replay: block " + std::to_string(height) + " is missing");
    auto finalized = (*app)->FinalizeBlock(FinalizeBlockRequest{**block, {}, {}});
    if (!finalized)
      return Fail(ErrorCode::kCorrupt,
                  "replay: height " + std::to_string(height) + ": " + finalized.error().message);
    auto receipts = ReadReceipts(stored, height);
    if (!receipts) return std::unexpected(receipts.error());
    if (*receipts != finalized->receipts)
      return Fail(ErrorCode::kCorrupt,
                  "replay: height " + std::to_string(height) + ": stored receipts differ");
    auto committed = (*app)->Commit();
    if (!committed) return std::unexpected(committed.error());
    if (auto conserved = state::CheckConservation(scratch); !conserved)
      return Fail(ErrorCode::kCorrupt,
                  "replay: height " + std::to_string(height) + ": " + conserved.error().message);
    report.blocks = height;
    report.state_root = committed->state_root;
  }
  return report;
}

}  // namespace gpunet::ledger
