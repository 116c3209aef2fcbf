#include "node/bft_driver.h"

#include <limits>

#include "base/check.h"

namespace gpunet::node {

using base::ErrorCode;
using base::Fail;

base::Result<std::unique_ptr<BftDriver>> BftDriver::Open(
    consensus::BftConfig config, consensus::BftStartState start, consensus::BftApplication& app,
    const consensus::BftSigner* signer, std::unique_ptr<WalDisk> wal_disk,
    std::unique_ptr<GuardDisk> guard_disk, BftTransport& transport) {
  GPUNET_CHECK(wal_disk != nullptr && guard_disk != nullptr);
  auto opened = BftWal::Open(std::move(wal_disk));
  if (!opened) return std::unexpected(opened.error());
  auto guard_bytes = guard_disk->Load();
  if (!guard_bytes) return std::unexpected(guard_bytes.error());
  consensus::SignGuardState guard;  // zero key: a fresh guard
  if (guard_bytes->has_value()) {
    auto decoded = consensus::DecodeSignGuard(**guard_bytes);
    if (!decoded)
      return base::Wrap(decoded.error(),
                        "the signing guard file cannot be read; refusing to sign without it "
                        "(restore it from a backup; never delete it while the key is in use)");
    guard = *decoded;
  }
  auto core = consensus::BftCore::Create(std::move(config), std::move(start), app, signer, guard);
  if (!core) return std::unexpected(core.error());
  auto [wal, report] = std::move(*opened);
  std::unique_ptr<BftDriver> driver(new BftDriver(std::move(*core), std::move(wal),
                                                  std::move(guard_disk), transport,
                                                  std::move(report.records)));
  driver->m_stats.wal_torn_bytes = report.torn_bytes;
  return driver;
}

base::Status BftDriver::Start(uint64_t now_ms) {
  GPUNET_CHECK(!m_started);
  m_started = true;
  m_stats.wal_records_replayed = m_replay.size();
  auto step = m_core->Start(now_ms, m_replay);
  m_replay.clear();
  m_replay.shrink_to_fit();
  return Execute(std::move(step), now_ms);
}

base::Status BftDriver::OnProposal(const codec::Proposal& proposal, const codec::Block& block,
                                   uint64_t now_ms) {
  GPUNET_CHECK(m_started);
  return Execute(m_core->OnProposal(proposal, block, now_ms), now_ms);
}

base::Status BftDriver::OnVote(const codec::Vote& vote, uint64_t now_ms) {
  GPUNET_CHECK(m_started);
  return Execute(m_core->OnVote(vote, now_ms), now_ms);
}

base::Status BftDriver::OnCommittedBlock(const codec::Block& block, const codec::Commit& commit,
                                         uint64_t now_ms) {
  GPUNET_CHECK(m_started);
  return Execute(m_core->OnCommittedBlock(block, commit, now_ms), now_ms);
}

base::Status BftDriver::OnEvidence(const codec::Evidence& evidence, uint64_t now_ms) {
  GPUNET_CHECK(m_started);
  return Execute(m_core->OnEvidence(evidence), now_ms);
}

base::Status BftDriver::FireDueTimers(uint64_t now_ms) {
  GPUNET_CHECK(m_started);
  // Firing may schedule new timers (possibly already due, duration 0): loop.
  while (!m_timers.empty() && m_timers.begin()->first.first <= now_ms) {
    const consensus::TimeoutInfo timeout = m_timers.begin()->second;
    m_timers.erase(m_timers.begin());
    ++m_stats.timeouts_fired;
    GPUNET_TRY(Execute(m_core->OnTimeout(timeout, now_ms), now_ms));
  }
  return base::Ok();
}

std::optional<uint64_t> BftDriver::NextTimerMs() const {
  if (m_timers.empty()) return std::nullopt;
  return m_timers.begin()->first.first;
}

base::Status BftDriver::Gossip(uint64_t now_ms) {
  GPUNET_CHECK(m_started);
  return ExecuteActions(m_core->Gossip(), now_ms);
}

base::Status BftDriver::Execute(base::Result<consensus::BftStep> step, uint64_t now_ms) {
  if (!step) return std::unexpected(step.error());
  m_last_ignored = std::move(step->ignored);
  return ExecuteActions(step->actions, now_ms);
}

base::Status BftDriver::ExecuteActions(const std::vector<consensus::Action>& actions,
                                       uint64_t now_ms) {
  for (const consensus::Action& action : actions) {
    if (const auto* wal = std::get_if<consensus::WriteWal>(&action)) {
      if (std::holds_alternative<consensus::WalEndHeight>(wal->record)) {
        // The height is in the block store: every record before this one is dead
        // weight (the core skips lower heights on replay). Emptying the log keeps
        // it one height long.
        GPUNET_TRY(m_wal->Clear());
        ++m_stats.wal_clears;
      } else {
        GPUNET_TRY(m_wal->Append(wal->record));
        GPUNET_TRY(m_wal->Sync());  // durable before the next action (a broadcast)
        ++m_stats.wal_appends;
      }
    } else if (const auto* guard = std::get_if<consensus::PersistSignGuard>(&action)) {
      GPUNET_TRY(m_guard->Store(consensus::EncodeSignGuard(guard->state)));
      ++m_stats.guard_writes;
    } else if (const auto* p = std::get_if<consensus::BroadcastProposal>(&action)) {
      m_transport.SendProposal(p->proposal, p->block);
      ++m_stats.broadcasts;
    } else if (const auto* v = std::get_if<consensus::BroadcastVote>(&action)) {
      m_transport.SendVote(v->vote);
      ++m_stats.broadcasts;
    } else if (const auto* c = std::get_if<consensus::BroadcastCommit>(&action)) {
      m_transport.SendCommit(c->block, c->commit);
      ++m_stats.broadcasts;
    } else if (const auto* t = std::get_if<consensus::ScheduleTimeout>(&action)) {
      const uint64_t due = t->duration_ms > std::numeric_limits<uint64_t>::max() - now_ms
                               ? std::numeric_limits<uint64_t>::max()
                               : now_ms + t->duration_ms;
      m_timers.emplace(std::make_pair(due, m_timer_seq++), t->timeout);
    } else if (const auto* d = std::get_if<consensus::Decided>(&action)) {
      if (m_on_decided) m_on_decided(*d);
    } else {
      GPUNET_CHECK(false);  // a new action kind must be handled here
    }
  }
  return base::Ok();
}

base::Result<std::unique_ptr<BftNodeEngine>> BftNodeEngine::Open(
    const std::string& data_dir, const crypto::KeyPair& key, const std::string& chain_id,
    uint64_t genesis_time_ms, uint64_t block_interval_ms, ledger::Application& app,
    state::KvStore& kv, mempool::Mempool& pool) {
  consensus::BftConfig config;
  config.chain_id = chain_id;
  config.genesis_time_ms = genesis_time_ms;
  config.commit_wait_ms = block_interval_ms;  // paces blocks as the solo interval does
  std::unique_ptr<BftNodeEngine> engine(new BftNodeEngine());
  engine->m_signer = std::make_unique<consensus::KeyPairSigner>(key);
  engine->m_adaptor =
      std::make_unique<LedgerBftAdaptor>(app, kv, chain_id, config.evidence_max_age_heights, &pool);
  auto start = LoadBftStartState(app, kv);
  if (!start) return std::unexpected(start.error());
  auto wal = FileWalDisk::Open(data_dir + "/bft.wal");
  if (!wal) return std::unexpected(wal.error());
  auto driver = BftDriver::Open(
      config, std::move(*start), *engine->m_adaptor, engine->m_signer.get(), std::move(*wal),
      std::make_unique<FileGuardDisk>(data_dir + "/sign_guard"), engine->m_transport);
  if (!driver) return std::unexpected(driver.error());
  engine->m_driver = std::move(*driver);
  return engine;
}

}  // namespace gpunet::node
