// A market on a real state machine for tests: an in-memory store, the real tx
// pipeline (signed txs, fees, nonces, rollback of failed txs) and the end-of-block
// work, with state::CheckInvariants (conservation by scanning + market invariants)
// run after EVERY tx and every end of block, and at the end of each block the
// node's per-block check over the block's changes (state::CheckBlockChanges) before
// the block's writes are committed to the store — also for the last block of a test,
// which the destructor closes when it left writes pending. Shared with the
// reference-model test.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "codec/encoding.h"
#include "codec/hashes.h"
#include "market/apply.h"
#include "market/keys.h"
#include "market/preflight.h"
#include "market/records.h"
#include "state/conservation.h"
#include "state/keyspace.h"
#include "state/market_store.h"
#include "state/state_db.h"
#include "state/tx_pipeline.h"
#include "util/keys.h"

namespace gpunet::market::testing {

inline constexpr uint64_t kGpn = 1'000'000;
inline constexpr uint64_t kFee = 100'000;
/// A default genesis's market rules: what a Harness runs under unless given others.
inline const Params kMarket{};

using gpunet::testing::TestAddress;
using gpunet::testing::TestKey;

class Harness {
 public:
  /// Accounts 1..accounts (keys TestKey(i)) each holding `balance` ugpn, on a chain
  /// whose genesis has the market rules `market`.
  explicit Harness(uint8_t accounts = 8, uint64_t balance = 100'000 * kGpn,
                   const Params& market = kMarket) {
    state::WriteBatch batch;
    for (uint8_t i = 1; i <= accounts; ++i) {
      m_keys.emplace(i, TestKey(i));
      batch.Put(state::keyspace::AccountKey(Addr(i)), codec::EncodeAccount({balance, 0}));
    }
    batch.Put(state::SupplyKey(), state::EncodeSupply(state::Supply{balance * accounts, 0, 0, 0}));
    EXPECT_TRUE(m_kv.Commit(batch));
    m_params.chain_id = "market-test";
    m_params.fees = state::FeeParams{1, 10, 100, 2500};
    m_params.tx_bytes_max = 64 * 1024;
    m_params.msgs_per_tx_max = 16;
    m_params.nonce_ahead_max = 8;
    m_params.market = market;
  }
  /// The writes of a block that no Advance/EndBlock closed (a test that ends with
  /// h.Tx(...)) get the per-block check too, unless SkipFinalBlockCheck() was called.
  ~Harness() {
    if (m_final_block_check && !m_db.Pending().empty()) CommitBlock();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  /// For a test that corrupts the state on purpose (it checks the checker): the
  /// destructor leaves its last block's writes unchecked and uncommitted.
  void SkipFinalBlockCheck() { m_final_block_check = false; }

  codec::Address Addr(uint8_t i) const { return TestAddress(m_keys.at(i)); }
  uint64_t Now() const { return m_time_ms; }
  uint64_t Height() const { return m_height; }
  state::StateDb& Db() { return m_db; }
  const Params& MarketParams() const { return m_params.market; }

  /// Signs and applies one tx of `msgs` from account `from`. Returns the receipt
  /// code (0 = ok, 100..999 = included failure: fee charged, nonce advanced), or the
  /// code that rejected it before inclusion (1..99, e.g. amount_overflow for fee +
  /// amounts over 2^64-1, or a market code from market::Preflight): then nothing
  /// changed, the nonce is not used and `last_refused` is set.
  uint16_t Tx(uint8_t from, std::vector<codec::Msg> msgs) {
    codec::TxBody body;
    body.chain_id = m_params.chain_id;
    body.sender = m_keys.at(from).Public();
    body.nonce = m_nonces[from];
    body.fee_ugpn = kFee;
    body.msgs = std::move(msgs);
    auto checked = state::CheckStateless(codec::SignTx(body, m_keys.at(from)), m_params, nullptr);
    last_refused = !checked;
    if (!checked) {
      // A ledger refusal (1..99), or a market message's preflight with its market code.
      EXPECT_TRUE(codec::IsRejectedBeforeInclusion(checked.error().code) ||
                  RefusedByPreflight(body.msgs, checked.error().code))
          << checked.error().ToString();
      return static_cast<uint16_t>(checked.error().code);
    }
    auto receipt = state::ApplyTx(m_db, *checked, {m_height, m_time_ms, {}}, 0, m_params);
    EXPECT_TRUE(receipt.has_value());
    if (!receipt) return 0xffff;
    if (!*receipt) return static_cast<uint16_t>(receipt->error().code);
    ++m_nonces[from];
    last_receipt = **receipt;
    CheckAll();
    return (*receipt)->code;
  }
  uint16_t Tx(uint8_t from, codec::Msg msg) { return Tx(from, std::vector<codec::Msg>{msg}); }

  /// Whether one of `msgs` is a market message that market::Preflight refuses with `code`.
  bool RefusedByPreflight(const std::vector<codec::Msg>& msgs, codec::TxCode code) const {
    for (const auto& m : msgs) {
      if (!IsMarketMsg(m)) continue;
      auto pre = Preflight(m, m_params.market);
      if (!pre && pre.error().code == code) return true;
    }
    return false;
  }

  /// Advances time by `ms` over `blocks` blocks, running the end-of-block work at
  /// each; returns the events of the last one.
  std::vector<codec::Event> Advance(uint64_t ms, uint64_t blocks = 1) {
    std::vector<codec::Event> events;
    for (uint64_t b = 0; b < blocks; ++b) {
      ++m_height;
      m_time_ms += ms / blocks + (b + 1 == blocks ? ms % blocks : 0);
      events.clear();
      auto s = state::MarketEndBlock(m_db, m_height, m_time_ms, events, state::GasParams{},
                                     m_params.market);
      EXPECT_TRUE(s) << s.error().ToString();
      CheckAll();
      CommitBlock();
      for (const auto& e : events) all_events.push_back(e);
    }
    return events;
  }

  /// Starts the next block `ms` later WITHOUT its end-of-block work yet: the txs
  /// applied now execute at the new time, before the awards/faults/expiries that
  /// EndBlock() then runs (the order of a real block).
  void BeginBlock(uint64_t ms) {
    ++m_height;
    m_time_ms += ms;
  }
  std::vector<codec::Event> EndBlock() {
    std::vector<codec::Event> events;
    auto s = state::MarketEndBlock(m_db, m_height, m_time_ms, events, state::GasParams{},
                                   m_params.market);
    EXPECT_TRUE(s) << s.error().ToString();
    CheckAll();
    CommitBlock();
    for (const auto& e : events) all_events.push_back(e);
    return events;
  }

  void CheckAll() {
    auto s = state::CheckInvariants(m_db, m_params.market);
    EXPECT_TRUE(s) << s.error().ToString();
  }

  /// The end of a block as the ledger has it: the per-block check over what the
  /// block changed, then its writes committed (the next block's changes start
  /// from them).
  void CommitBlock() {
    auto s = state::CheckBlockChanges(m_db, m_params.market);
    EXPECT_TRUE(s) << "block " << m_height << ": " << s.error().ToString();
    auto committed = m_kv.Commit(m_db.TakeChanges());
    EXPECT_TRUE(committed) << committed.error().ToString();
  }

  uint64_t Balance(uint8_t i) { return Balance(Addr(i)); }
  uint64_t Balance(const codec::Address& a) {
    auto account = m_db.GetAccount(a);
    EXPECT_TRUE(account);
    return account->balance_ugpn;
  }

  template <class T>
  T Get(const base::Bytes& key) {
    auto raw = m_db.Get(key);
    EXPECT_TRUE(raw && raw->has_value());
    if (!raw || !raw->has_value()) return T{};
    auto v = Decode<T>(**raw);
    EXPECT_TRUE(v);
    return v ? *v : T{};
  }
  Lease GetLease(uint64_t id) { return Get<Lease>(keys::LeaseKey(id)); }
  Provider GetProvider(uint8_t i) { return Get<Provider>(keys::ProviderKey(Addr(i))); }
  Machine GetMachine(uint8_t owner, uint32_t id) {
    return Get<Machine>(keys::MachineKey(Addr(owner), id));
  }
  Order GetOrder(uint64_t id) { return Get<Order>(keys::OrderKey(id)); }

  /// The value of attribute `key` of the last event of `type` in the last receipt.
  std::string EventAttr(std::string_view type, std::string_view key) const {
    for (auto it = last_receipt.events.rbegin(); it != last_receipt.events.rend(); ++it)
      if (it->type == type) {
        auto a = it->attributes.find(std::string(key));
        return a == it->attributes.end() ? std::string() : a->second;
      }
    return {};
  }

  codec::Receipt last_receipt;
  /// Whether the last Tx was refused before inclusion (stage 1: no fee, no nonce).
  bool last_refused = false;
  std::vector<codec::Event> all_events;

 private:
  state::MemoryKvStore m_kv;
  state::StateDb m_db{m_kv};
  state::PipelineParams m_params;
  std::map<uint8_t, crypto::KeyPair> m_keys;
  std::map<uint8_t, uint64_t> m_nonces;
  uint64_t m_height = 1;
  uint64_t m_time_ms = 1'700'000'000'000;
  bool m_final_block_check = true;
};

inline uint16_t Code(codec::TxCode c) {
  return static_cast<uint16_t>(c);
}

}  // namespace gpunet::market::testing
