// A gate that lets one call of a costly handler run at a time and turns the others
// away at once (the caller answers 503 "retry"): a request never holds an RPC
// worker waiting for another request's work. POST /tx/simulate uses it, since a
// simulation holds the ledger's lock against the engine's commits while it runs;
// GET /conservation's OneScanPerHeight (market_routes.h) runs its full scan in one.
#pragma once

#include <optional>
#include <utility>

#include "base/mutex.h"

namespace gpunet::node {

class OneAtATime {
 public:
  /// Runs `work` and returns its answer, or nullopt without running it when
  /// another call's work is running.
  template <typename Work>
  auto TryRun(Work&& work) -> std::optional<decltype(work())> {
    if (!m_running.TryLock()) return std::nullopt;
    Held held(m_running);  // released however `work` ends
    return std::forward<Work>(work)();
  }

 private:
  /// Holds a Mutex already locked (by TryLock) until destruction.
  class SCOPED_CAPABILITY Held {
   public:
    explicit Held(base::Mutex& mu) REQUIRES(mu) : m_mu(mu) {}
    ~Held() RELEASE() { m_mu.Unlock(); }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

   private:
    base::Mutex& m_mu;
  };

  base::Mutex m_running;  ///< held by the one call running
};

}  // namespace gpunet::node
