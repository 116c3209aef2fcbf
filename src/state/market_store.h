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

 private:
  StateDb* m_db;
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
/// metered at the genesis prices `gas`, against `meter` when given (the app and the
/// tests read what it used). No tx pays for this work and it cannot stop half-way
/// (a batch left undone would halt the chain), so the meter counts without a
/// limit: what bounds the work is limits::kEndBlockWorkMax items with their per-item
/// limits, and gas_coverage_test runs the biggest batch those allow and checks it
/// stays under kEndBlockGasMax.
inline base::Status MarketEndBlock(StateDb& db, uint64_t height, uint64_t time_ms,
                                   std::vector<codec::Event>& events, const GasParams& gas = {},
                                   GasMeter* meter = nullptr) {
  GasMeter own(gas, GasMeter::kUnlimited);
  MeterScope metered(db, meter != nullptr ? meter : &own);
  MarketStateStore store(db);
  return market::EndBlock(store, market::BlockTime{height, time_ms}, events);
}

}  // namespace gpunet::state
