#include "node/tx_waiters.h"

#include <utility>

#include "base/check.h"

namespace gpunet::node {

std::optional<TxWaiters::Waiter> TxWaiters::Add(const base::Hash32& hash, Waiter waiter,
                                                uint64_t cap) {
  base::MutexLock lock(m_mutex);
  if (!waiter.address.empty()) {
    uint64_t& count = m_by_address[waiter.address];
    if (count >= cap) {
      if (count == 0) m_by_address.erase(waiter.address);  // cap 0: leave no entry
      return waiter;
    }
    ++count;
  }
  m_waiters.emplace(hash, std::move(waiter));
  return std::nullopt;
}

std::optional<TxWaiters::Waiter> TxWaiters::Take(const base::Hash32& hash) {
  base::MutexLock lock(m_mutex);
  auto it = m_waiters.find(hash);
  if (it == m_waiters.end()) return std::nullopt;
  return TakeLocked(it);
}

bool TxWaiters::Has(const base::Hash32& hash) const {
  base::MutexLock lock(m_mutex);
  return m_waiters.contains(hash);
}

void TxWaiters::Answer(const base::Hash32& hash, const server::Response& r) {
  std::vector<Waiter> found;
  {
    base::MutexLock lock(m_mutex);
    auto [it, end] = m_waiters.equal_range(hash);
    while (it != end) found.push_back(TakeLocked(it, &it));
  }
  for (auto& w : found) w.responder.Respond(r);
}

void TxWaiters::Expire(uint64_t now_ms) {
  std::vector<Waiter> expired;
  {
    base::MutexLock lock(m_mutex);
    for (auto it = m_waiters.begin(); it != m_waiters.end();) {
      if (it->second.deadline_ms <= now_ms) {
        expired.push_back(TakeLocked(it, &it));
      } else {
        ++it;
      }
    }
  }
  for (auto& w : expired)
    w.responder.Respond(server::JsonError(
        504, "timeout",
        "the tx was accepted but not committed within timeout_ms; it may still commit later: "
        "check GET /tx/<hash>"));
}

TxWaiters::Waiter TxWaiters::TakeLocked(Map::iterator it, Map::iterator* next) {
  Waiter w = std::move(it->second);
  auto after = m_waiters.erase(it);
  if (next != nullptr) *next = after;
  if (!w.address.empty()) {
    auto count = m_by_address.find(w.address);
    GPUNET_CHECK(count != m_by_address.end());
    GPUNET_CHECK(count->second >= 1);
    if (--count->second == 0) m_by_address.erase(count);
  }
  return w;
}

}  // namespace gpunet::node
