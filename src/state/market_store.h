// The state machine's implementations of market::Store (market/store.h): the
// market's rules read and write the block overlay (StateDb) through it, and read
// committed state (KvStore) for NextDeadline, queries and the conservation scan.
#pragma once

#include "market/apply.h"
#include "market/store.h"
#include "state/kv.h"
#include "state/state_db.h"

namespace gpunet::state {

/// market::Store over a block's StateDb (pending writes included).
class MarketStateStore final : public market::Store {
 public:
  explicit MarketStateStore(StateDb& db) : m_db(&db) {}
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    return m_db->Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const market::Visitor& visit) const override {
    return m_db->Scan(begin, end, visit);
  }
  base::Result<codec::Account> GetAccount(const codec::Address& address) const override {
    return m_db->GetAccount(address);
  }
  void Put(base::Bytes key, base::Bytes value) override {
    m_db->Put(std::move(key), std::move(value));
  }
  void Delete(base::Bytes key) override { m_db->Delete(std::move(key)); }
  void PutAccount(const codec::Address& address, const codec::Account& account) override {
    m_db->PutAccount(address, account);
  }
  /// With a budget set, end-of-block work stops taking items once the meter
  /// attached to the overlay has used it.
  void SetEndBlockBudget(uint64_t gas) { m_end_block_budget = gas; }
  bool EndBlockBudgetLeft() const override {
    return m_end_block_budget == 0 || m_db->Meter() == nullptr ||
           m_db->Meter()->Used() < m_end_block_budget;
  }

 private:
  StateDb* m_db;
  uint64_t m_end_block_budget = 0;  ///< 0: none
};

/// Read-only market::StoreView over committed state.
class MarketKvView final : public market::StoreView {
 public:
  explicit MarketKvView(const KvStore& kv) : m_db(kv) {}
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    return m_db.Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const market::Visitor& visit) const override {
    return m_db.Scan(begin, end, visit);
  }
  base::Result<codec::Account> GetAccount(const codec::Address& address) const override {
    return m_db.GetAccount(address);
  }

 private:
  StateDb m_db;  ///< an empty overlay: reads go to the committed store
};

/// Runs the market's end-of-block work on the block's overlay, every operation
/// metered at the genesis prices `gas`, against `meter` when given (tests read its
/// counts). No tx pays for this work, so it has a budget of its own: once
/// EndBlockGasBudget(gas) is used, no further item starts and the due items left wait
/// in their indexes for the next blocks (each settled at its own deadline). An item
/// that started finishes (it cannot stop half-way without breaking the market's
/// state), so a block's end-of-block gas is at most the budget plus one item.
inline base::Status MarketEndBlock(StateDb& db, uint64_t height, uint64_t time_ms,
                                   std::vector<codec::Event>& events, const GasParams& gas,
                                   GasMeter* meter = nullptr) {
  GasMeter own(gas, GasMeter::kUnlimited);
  MeterScope metered(db, meter != nullptr ? meter : &own);
  MarketStateStore store(db);
  store.SetEndBlockBudget(EndBlockGasBudget(gas));
  return market::EndBlock(store, market::BlockTime{height, time_ms}, events);
}

}  // namespace gpunet::state
