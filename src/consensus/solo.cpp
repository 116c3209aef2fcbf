#include "consensus/solo.h"

#include <algorithm>

#include "base/check.h"

namespace gpunet::consensus {

SoloEngine::SoloEngine(uint64_t block_interval_ms) : m_interval_ms(block_interval_ms) {
  GPUNET_CHECK(block_interval_ms >= 1);
}

SoloDecision SoloEngine::Decide(uint64_t now_ms, uint64_t last_block_time_ms, bool pending_txs,
                                std::optional<uint64_t> deadline_ms) const {
  const uint64_t earliest = last_block_time_ms + m_interval_ms;
  const bool deadline_due = deadline_ms.has_value() && *deadline_ms <= now_ms;
  SoloDecision d;
  if ((pending_txs || deadline_due) && now_ms >= earliest) {
    d.produce = true;
    d.block_time_ms = std::max(now_ms, last_block_time_ms + 1);
    return d;
  }
  if (pending_txs) {
    d.wake_at_ms = earliest;
    d.wake_on_tx = false;
  } else if (deadline_ms) {
    d.wake_at_ms = std::max(*deadline_ms, earliest);
  } else {
    d.wake_at_ms = now_ms + m_interval_ms;
  }
  if (d.wake_at_ms <= now_ms) d.wake_at_ms = now_ms + 1;
  return d;
}

base::Result<SoloDecision> SoloEngine::Step(SoloAdaptor& adaptor, uint64_t now_ms) const {
  SoloDecision d =
      Decide(now_ms, adaptor.LastBlockTimeMs(), adaptor.HasPendingTxs(), adaptor.NextDeadlineMs());
  if (d.produce) GPUNET_TRY(adaptor.ProduceAndCommitBlock(d.block_time_ms));
  return d;
}

}  // namespace gpunet::consensus
