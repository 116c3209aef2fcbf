// The POST /tx requests with "wait":"committed" held open until their tx commits,
// is dropped, or their deadline passes (docs/rpc.md). The engine answers them from
// its thread, the RPC workers add them from theirs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/mutex.h"
#include "server/http_server.h"

namespace gpunet::node {

class TxWaiters {
 public:
  struct Waiter {
    uint64_t deadline_ms = 0;
    server::Responder responder;
    std::string address;  ///< the peer's, counted against its cap; empty: not counted
  };

  /// Registers `waiter` for `hash`, unless its address already holds `cap` waiters:
  /// then gives it back untouched (the caller answers 429).
  std::optional<Waiter> Add(const base::Hash32& hash, Waiter waiter, uint64_t cap)
      EXCLUDES(m_mutex);
  /// Takes out one waiter of `hash`; nullopt when there is none (already answered).
  std::optional<Waiter> Take(const base::Hash32& hash) EXCLUDES(m_mutex);
  bool Has(const base::Hash32& hash) const EXCLUDES(m_mutex);
  /// Answers every waiter of `hash` with `r`.
  void Answer(const base::Hash32& hash, const server::Response& r) EXCLUDES(m_mutex);
  /// Answers 504 every waiter whose deadline is at or before `now_ms`.
  void Expire(uint64_t now_ms) EXCLUDES(m_mutex);

 private:
  using Map = std::multimap<base::Hash32, Waiter>;
  // Takes a waiter out of m_waiters and its address's count; `next` gets the
  // iterator after it.
  Waiter TakeLocked(Map::iterator it, Map::iterator* next = nullptr) REQUIRES(m_mutex);

  mutable base::Mutex m_mutex;
  Map m_waiters GUARDED_BY(m_mutex);
  /// Waiters per peer address (the non-exempt ones); an address leaves at zero.
  std::map<std::string, uint64_t> m_by_address GUARDED_BY(m_mutex);
};

}  // namespace gpunet::node
