// The state machine's implementations of market::Store (market/store.h): the
// market's rules read and write the block overlay (StateDb) through it, and read
// committed state (KvStore) for NextDeadline, queries and the conservation scan.
#pragma once

#include <algorithm>
#include <optional>

#include "base/check.h"
#include "market/apply.h"
#include "market/store.h"
#include "state/kv.h"
#include "state/state_db.h"

namespace gpunet::state {

/// The end-of-block gas budget split between its sections, so that expensive
/// awards cannot starve faults and expiries: awards may start items while they
/// have used less than half of it, faults while they have used less than a quarter
/// (plus whatever the awards left unused), expiries likewise with the rest. An item
/// that started finishes, so a block's end-of-block gas is at most the budget plus
/// one item per section.
class EndBlockBudget {
 public:
  explicit EndBlockBudget(uint64_t total) : m_total(total) {}

  /// Whether `section` may start another item, `used` gas into the block's
  /// end-of-block work. Sections are asked in their order.
  bool Left(market::EndBlockSection section, uint64_t used) {
    if (!m_section || *m_section != section) {
      GPUNET_CHECK(!m_section || *m_section < section);  // awards, faults, expiries
      m_section = section;
      m_section_start = used;
    }
    // This section's own share, or what is left of the shares up to it if more.
    const uint64_t until = std::max(UpTo(section), m_section_start + Share(section));
    return used < until;
  }

 private:
  uint64_t Share(market::EndBlockSection section) const {
    return section == market::EndBlockSection::kAwards ? m_total / 2 : m_total / 4;
  }
  uint64_t UpTo(market::EndBlockSection section) const {
    switch (section) {
      case market::EndBlockSection::kAwards:
        return m_total / 2;
      case market::EndBlockSection::kFaults:
        return m_total / 2 + m_total / 4;
      case market::EndBlockSection::kExpiries:
        return m_total;
    }
    return m_total;
  }

  uint64_t m_total;
  std::optional<market::EndBlockSection> m_section;  ///< the one asked last
  uint64_t m_section_start = 0;                      ///< gas used when it began
};

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
  /// With a budget set, each end-of-block section stops taking items once the
  /// meter attached to the overlay shows it used its share (EndBlockBudget).
  void SetEndBlockBudget(uint64_t gas) { m_end_block_budget.emplace(gas); }
  bool EndBlockBudgetLeft(market::EndBlockSection section) const override {
    if (!m_end_block_budget || m_db->Meter() == nullptr) return true;
    return m_end_block_budget->Left(section, m_db->Meter()->Used());
  }

 private:
  StateDb* m_db;
  mutable std::optional<EndBlockBudget> m_end_block_budget;  ///< none: no budget
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

/// Runs the market's end-of-block work on the block's overlay under the genesis's
/// market rules `market_params`, every operation metered at the genesis prices
/// `gas`, against `meter` when given (tests read its counts). No tx pays for this work, so it has a
/// budget of its own: once EndBlockGasBudget(gas) is used, no further item starts and the due items
/// left wait in their indexes for the next blocks (each settled at its own deadline). An item that
/// started finishes (it cannot stop half-way without breaking the market's state), so a block's
/// end-of-block gas is at most the budget plus one item.
inline base::Status MarketEndBlock(StateDb& db, uint64_t height, uint64_t time_ms,
                                   std::vector<codec::Event>& events, const GasParams& gas,
                                   const market::Params& market_params, GasMeter* meter = nullptr) {
  GasMeter own(gas, GasMeter::kUnlimited);
  MeterScope metered(db, meter != nullptr ? meter : &own);
  MarketStateStore store(db);
  store.SetEndBlockBudget(EndBlockGasBudget(gas));
  return market::EndBlock(store, market_params, market::BlockTime{height, time_ms}, events);
}

}  // namespace gpunet::state
