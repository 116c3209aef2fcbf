// Gas: the price of the work a transaction makes the state machine do (issue 14).
//
// Work is counted where every node does the same work: at the StateDb interface
// (state_db.h), never below it. The resident cache and RocksDB in front of the
// committed state differ between nodes, so a read that one node answers from memory
// costs the same gas as one another node reads from disk. Every Get, every entry a
// Scan visits, every Put and every Delete is charged; a meter attached to the
// StateDb does the charging, so no rule can reach the state without paying.
//
// A tx carries no gas field: its gas limit is what its fee leaves after the byte and
// message price, divided by the gas price (GasLimitOf). A tx's flat base gas pays
// for the fee/nonce bookkeeping (the sender's account, the supply record, the
// proposer's account); those operations are counted by the meter but prepaid by
// the base, a flat price below their itemised cost (docs/ledger.md). The
// signature check is not gas: it runs at admission, priced by the fee minimum and
// the byte price.
//
// Deterministic: integers only, saturating arithmetic, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

namespace gpunet::state {

/// Prices, from genesis (ledger/genesis.h; docs/ledger.md gives the reasoning).
struct GasParams {
  uint64_t price_ugpn = 1;          ///< ugpn per gas (>= 1)
  uint64_t tx_base = 200;           ///< flat per tx: fee and nonce bookkeeping (prepaid)
  uint64_t read_base = 10;          ///< per Get, and per Scan (the seek)
  uint64_t read_per_byte = 1;       ///< per key + value byte read (Get or a visited Scan entry)
  uint64_t scan_step = 5;           ///< per entry a Scan visits (returned or stepped over)
  uint64_t write_base = 30;         ///< per Put or Delete
  uint64_t write_per_byte = 1;      ///< per key + value byte written
  uint64_t block_max = 40'000'000;  ///< sum of the gas limits of a block's txs
  bool operator==(const GasParams&) const = default;
};

/// The gas end-of-block work (market awards, faults, expiries) may use before it
/// stops taking items; the rest waits for the next blocks (MarketEndBlock): half a
/// block's gas limit, so it follows the genesis prices as the txs' gas does. No tx
/// pays for that work. It is split between awards, faults and expiries
/// (market_store.h EndBlockBudget). An item that started finishes, so a block's
/// end-of-block gas is at most this plus one item per section (the most expensive:
/// an award checking 64 bids, each matching 64 machines in full, about 39M gas at
/// the default prices, measured by gas_coverage_test).
constexpr uint64_t EndBlockGasBudget(const GasParams& gas) {
  return gas.block_max / 2 > 0 ? gas.block_max / 2 : 1;  // 0 would mean "no budget"
}

/// What a meter charged, by kind of operation (the coverage test compares these
/// with what reached the store underneath).
struct GasCounts {
  uint64_t gets = 0;
  uint64_t scans = 0;
  uint64_t scan_steps = 0;  ///< entries visited, pending and committed
  uint64_t puts = 0;
  uint64_t deletes = 0;
  /// The part of the above that reached the committed store (the rest was answered
  /// by the block's pending writes): equal, in a test, to what a store underneath
  /// saw, so one unmetered store read shows.
  uint64_t store_gets = 0;
  uint64_t store_scans = 0;
  uint64_t store_scan_entries = 0;
  bool operator==(const GasCounts&) const = default;
};

/// Counts gas against a limit. Once a charge goes over the limit the meter is
/// exhausted for good: Used() stays at the limit and every later charge fails, so
/// the StateDb refuses further reads and the pipeline rolls the messages back.
class GasMeter {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  GasMeter(const GasParams& params, uint64_t limit) : m_params(params), m_limit(limit) {}

  /// Adds `gas`; false (and exhausted) when that goes over the limit. While
  /// prepaid, operations are counted and cost nothing.
  bool Charge(uint64_t gas);

  /// Where a read was answered: the block's pending writes or the committed store.
  enum class Source { kPending, kStore };

  /// The price of each kind of operation, charged and counted.
  bool ChargeGet(size_t key_bytes, size_t value_bytes, Source source);
  bool ChargeScan();
  bool ChargeScanStep(size_t key_bytes, size_t value_bytes, Source source);
  /// Counts a Scan that goes on to the committed store (after ChargeScan).
  void CountStoreScan() { ++m_counts.store_scans; }
  bool ChargePut(size_t key_bytes, size_t value_bytes);
  bool ChargeDelete(size_t key_bytes);

  /// Operations made while prepaid are counted but not charged (the tx base
  /// covers them).
  void SetPrepaid(bool prepaid) { m_prepaid = prepaid; }

  bool Exhausted() const { return m_exhausted; }
  uint64_t Used() const { return m_used; }
  uint64_t Limit() const { return m_limit; }
  const GasCounts& Counts() const { return m_counts; }
  const GasParams& Params() const { return m_params; }

 private:
  GasParams m_params;
  uint64_t m_limit;
  uint64_t m_used = 0;
  bool m_exhausted = false;
  bool m_prepaid = false;
  GasCounts m_counts;
};

/// The gas a fee buys: (fee - byte and message price) / gas price, floor; 0 when
/// the fee does not cover the byte and message price.
uint64_t GasLimitOf(uint64_t fee_ugpn, uint64_t byte_and_msg_price_ugpn, uint64_t price_ugpn);

/// The fee that buys `gas` on top of a byte and message price (saturating at
/// 2^64-1, which no account can pay).
uint64_t FeeForGas(uint64_t byte_and_msg_price_ugpn, uint64_t gas, uint64_t price_ugpn);

}  // namespace gpunet::state
