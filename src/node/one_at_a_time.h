// A gate that lets one call of a costly handler run at a time and turns the others
// away at once (the caller answers 503 "retry"): a request never holds an RPC
// worker waiting for another request's work. POST /tx/simulate uses it, since a
// simulation holds the ledger's lock against the engine's commits while it runs;
// GET /conservation's OneScanPerHeight (market_routes.h) runs its full scan in one.
#pragma once

#include <mutex>
#include <optional>
#include <utility>

namespace gpunet::node {

class OneAtATime {
 public:
  /// Runs `work` and returns its answer, or nullopt without running it when
  /// another call's work is running.
  template <typename Work>
  auto TryRun(Work&& work) -> std::optional<decltype(work())> {
    std::unique_lock running(m_running, std::try_to_lock);
    if (!running.owns_lock()) return std::nullopt;
    return std::forward<Work>(work)();
  }

 private:
  std::mutex m_running;  ///< held by the one call running
};

}  // namespace gpunet::node
