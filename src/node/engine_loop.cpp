// The node's engine thread (node_impl.h): the solo loop, which steps the solo
// engine over its adaptor (solo_adaptor.h), the bft loop, which fires the bft
// driver's timers, and what both publish when a block commits.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include <nlohmann/json.hpp>

#include "node/node_impl.h"
#include "node/rpc_json.h"

namespace gpunet::node {

using nlohmann::json;

void Node::Impl::EngineLoop() {
  if (bft) return BftEngineLoop();
  SoloEngineLoop();
}

void Node::Impl::SoloEngineLoop() {
  while (true) {
    {
      base::MutexLock lock(engine_mu);
      if (stopping) break;
      tx_arrived = false;  // before the step: an arrival during it is seen below
    }
    const uint64_t now = WallMs(*options.clock);
    waiters.Expire(now);
    auto step = engine->Step(*solo, now);
    if (!step) return EngineDone(step.error());
    if (step->produce) continue;
    uint64_t wait_ms = step->wake_at_ms > now ? step->wake_at_ms - now : 1;
    wait_ms = std::min<uint64_t>(wait_ms, 100);  // also bounds waiter-timeout latency
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    base::MutexLock lock(engine_mu);
    engine_wants_tx = step->wake_on_tx;
    while (!stopping && !(step->wake_on_tx && tx_arrived))
      if (engine_cv.wait_until(lock.Native(), deadline) == std::cv_status::timeout) break;
    engine_wants_tx = false;
  }
  EngineDone(std::nullopt);
}

// The bft engine's loop: the driver's timers on options.clock (no peers yet, so no
// network input); a tx arriving needs no wake-up, the next proposal reaps it.
void Node::Impl::BftEngineLoop() {
  bft->Adaptor().SetOnCommitted([this](const BftCommitted& c) { OnBftCommitted(c); });
  bft->Adaptor().SetOnSkipped([this](const std::vector<ledger::SkippedTx>& skipped) {
    for (const auto& s : skipped)
      OnTxDropped(s.tx_hash, s.code, "dropped before inclusion: " + s.message);
  });
  base::Status status = bft->Driver().Start(WallMs(*options.clock));
  while (status) {
    {
      base::MutexLock lock(engine_mu);
      if (stopping) break;
    }
    const uint64_t now = WallMs(*options.clock);
    waiters.Expire(now);
    status = bft->Driver().FireDueTimers(now);
    if (!status) break;
    const uint64_t next = bft->Driver().NextTimerMs().value_or(now + 100);
    const uint64_t wait_ms = std::clamp<uint64_t>(next > now ? next - now : 1, 1, 100);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    base::MutexLock lock(engine_mu);
    while (!stopping)
      if (engine_cv.wait_until(lock.Native(), deadline) == std::cv_status::timeout) break;
  }
  EngineDone(status ? std::nullopt : std::optional<base::Error>(status.error()));
}

void Node::Impl::EngineDone(std::optional<base::Error> error) {
  if (error) std::fprintf(stderr, "engine stopped: %s\n", error->ToString().c_str());
  {
    base::MutexLock lock(engine_mu);
    engine_error = std::move(error);
    engine_done = true;
  }
  stop_requested = true;
  engine_cv.notify_all();
}

void Node::Impl::NotifyTxArrived() {
  bool wake = false;
  {
    base::MutexLock lock(engine_mu);
    tx_arrived = true;
    wake = engine_wants_tx;
  }
  // Only an idle engine is woken: one with txs already waiting makes its block
  // when the interval has passed, and a wake-up per tx would cost a futex call
  // and a decision each.
  if (wake) engine_cv.notify_all();
}

void Node::Impl::OnTxDropped(const base::Hash32& tx_hash, codec::TxCode code,
                             const std::string& message) {
  waiters.Answer(tx_hash, TxRejected(code, message, tx_hash));
}

void Node::Impl::OnBlockCommitted(const codec::Block& block,
                                  const ledger::FinalizeBlockResponse& finalized,
                                  const ledger::CommitResponse& committed, double seconds) {
  m_commit_seconds->Observe(seconds);
  PublishCommitted(block, finalized, committed, seconds);
}

void Node::Impl::OnBftCommitted(const BftCommitted& c) {
  for (const auto& d : c.dropped) OnTxDropped(d.tx_hash, d.code, d.message);
  PublishCommitted(c.block, c.finalized, c.committed, 0);
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
    if (waiters.Has(r.tx_hash)) {
      ledger::TxRecord rec{{committed.height, static_cast<uint32_t>(i)}, block.txs[i], r};
      waiters.Answer(r.tx_hash, CommittedResponse(rec));
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

}  // namespace gpunet::node
