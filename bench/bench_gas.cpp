// bench-libs: gpunet_market gpunet_state gpunet_ledger
// Gas against time (issue 14 item 3): every case of tests/unit/state/gas_cases.h
// (every message type at its limits, and the end-of-block award checking 64 bids)
// executed on the same committed state, each repeated on a fresh overlay; one line
// per case, then the summary line
//
//   worst_msg_us=N transfer_us=M worst_block_ms=B ...
//
// worst_msg_us is the slowest message; transfer_us a plain send; worst_block_ms an
// upper estimate of one block's execution on a validator that has seen none of its
// txs, the sum of:
//  - block_fill_ms: the block gas limit filled with the message that costs the most
//    time per gas (its time x block_gas_max / its gas);
//  - end_block_ms: the whole end-of-block budget at the densest rate measured (any
//    message's or the end-of-block case's), plus one worst item per section
//    (awards, faults, expiries may each finish an item past their share; the
//    measured worst item, the 64-bid award, stands for all three);
//  - signatures_ms: block_txs_max signature checks at the one-core ed25519 verify
//    rate measured in the same run (txs the validator's cache has not seen; the
//    byte and tx-count limits bound this, gas does not).
// All from the same set in the same run. Fields after worst_block_ms give the parts.
//
//   bench_gas [min_seconds_per_case=0.2]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "baseline.h"
#include "ledger/genesis.h"
#include "unit/state/gas_cases.h"

using namespace gpunet;

namespace {

struct Timed {
  double us = 0;  ///< per execution
  uint64_t gas = 0;
  uint16_t code = 0;
};

Timed Time(state::gas_cases::World& world, const state::gas_cases::Case& c, double min_seconds) {
  state::CheckedTx tx;
  if (!c.end_block) tx = world.Tx(c);
  const state::CheckedTx* tx_ptr = c.end_block ? nullptr : &tx;
  Timed out;
  const auto first = state::gas_cases::RunCase(world, c, tx_ptr);  // warm-up
  out.gas = first.gas_used;
  out.code = first.code;
  size_t runs = 0;
  const double t0 = bench::NowSeconds();
  double elapsed = 0;
  while (runs < 3 || elapsed < min_seconds) {
    const auto o = state::gas_cases::RunCase(world, c, tx_ptr);
    GPUNET_CHECK(o.gas_used == out.gas);  // deterministic
    ++runs;
    elapsed = bench::NowSeconds() - t0;
  }
  out.us = elapsed * 1e6 / static_cast<double>(runs);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const double min_seconds = argc > 1 ? std::strtod(argv[1], nullptr) : 0.2;
  bench::Baseline base = bench::MeasureBaseline(0.5);
  state::gas_cases::World world;
  const state::GasParams gas = world.Params().gas;

  std::string worst_msg, densest_msg;
  Timed worst, densest, transfer, end_block;
  double densest_us_per_gas = 0;
  for (const auto& c : world.Cases()) {
    const Timed t = Time(world, c, min_seconds);
    std::printf("%-30s %10.1f us %10llu gas %8.1f gas/us code %u\n", c.name.c_str(), t.us,
                static_cast<unsigned long long>(t.gas), static_cast<double>(t.gas) / t.us, t.code);
    if (c.end_block) {
      end_block = t;
      continue;
    }
    if (c.name == "send") transfer = t;
    if (t.us > worst.us) {
      worst = t;
      worst_msg = c.name;
    }
    const double us_per_gas = t.us / static_cast<double>(t.gas);
    if (us_per_gas > densest_us_per_gas) {
      densest_us_per_gas = us_per_gas;
      densest = t;
      densest_msg = c.name;
    }
  }
  const double fill_ms = densest_us_per_gas * static_cast<double>(gas.block_max) / 1e3;
  const double end_block_us_per_gas = end_block.us / static_cast<double>(end_block.gas);
  const double budget_ms = std::max(densest_us_per_gas, end_block_us_per_gas) *
                           static_cast<double>(state::EndBlockGasBudget(gas)) / 1e3;
  constexpr int kEndBlockSections = 3;  // awards, faults, expiries
  const double end_block_ms = budget_ms + kEndBlockSections * end_block.us / 1e3;
  const uint64_t block_txs_max = ledger::GenesisParams{}.block_txs_max;
  const double signatures_ms =
      static_cast<double>(block_txs_max) * 1e3 / static_cast<double>(base.verify_per_s_1core);
  const double worst_block_ms = fill_ms + end_block_ms + signatures_ms;
  std::printf(
      "worst_msg_us=%.0f transfer_us=%.1f worst_block_ms=%.0f block_fill_ms=%.0f "
      "end_block_ms=%.0f signatures_ms=%.0f worst_msg=%s worst_msg_gas=%llu transfer_gas=%llu "
      "block_fill_msg=%s end_block_item_ms=%.0f end_block_item_gas=%llu "
      "end_block_budget_gas=%llu block_gas_max=%llu block_txs_max=%llu; baseline: verify "
      "%llu/s (1 core) -> a transfer costs %.2f verifies\n",
      worst.us, transfer.us, worst_block_ms, fill_ms, end_block_ms, signatures_ms,
      worst_msg.c_str(), static_cast<unsigned long long>(worst.gas),
      static_cast<unsigned long long>(transfer.gas), densest_msg.c_str(), end_block.us / 1e3,
      static_cast<unsigned long long>(end_block.gas),
      static_cast<unsigned long long>(state::EndBlockGasBudget(gas)),
      static_cast<unsigned long long>(gas.block_max),
      static_cast<unsigned long long>(block_txs_max),
      static_cast<unsigned long long>(base.verify_per_s_1core),
      transfer.us * static_cast<double>(base.verify_per_s_1core) / 1e6);
  return 0;
}
