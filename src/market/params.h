// The market's timing and bond rules (docs/market.md, docs/ledger.md "Genesis"):
// genesis parameters, fixed for a chain's life and covered by its GenesisHash. The
// ledger passes them to every rule that reads one (Preflight, ApplyMarketMsg,
// EndBlock, math.h); the market keeps no copy and reads no global. The sizes and
// counts of the protocol stay in base/limits.h.
#pragma once

#include <cstdint>
#include <iterator>

#include "base/result.h"

namespace gpunet::market {

/// Defaults are the values of a default genesis (`gpunet init`, devnets).
struct Params {
  /// A provider needs this much bond to register and to be in business.
  uint64_t provider_bond_min_ugpn = 100'000'000;  // 100 GPN
  /// Unbonded stake is released after this; until then a fault still draws from it.
  uint64_t unbonding_delay_ms = 7ull * 24 * 3600 * 1000;  // 7 days
  /// A reserved lease must get its LeaseStarted within this, or it is a missed start.
  uint64_t lease_start_timeout_ms = 10ull * 60 * 1000;
  /// A tenant may close a started lease as NoManifest only after this.
  uint64_t manifest_timeout_ms = 30ull * 60 * 1000;
  /// The longest gap between a provider's proofs of life while it runs leases.
  uint64_t heartbeat_timeout_ms = 5ull * 60 * 1000;
  /// A due start or heartbeat deadline waits this many blocks past the first block
  /// that saw it due before it is a fault (a halted chain is no provider's fault).
  uint64_t heartbeat_grace_blocks = 10;
  /// An order's bid window is within these.
  uint64_t bid_window_min_ms = 1000;
  uint64_t bid_window_max_ms = 7ull * 24 * 3600 * 1000;  // 7 days
  /// A lease's or order's deposit covers at least this many hours at its rate.
  uint64_t deposit_min_hours = 1;
  /// A fault costs the provider rate x this, from its bond...
  uint64_t fault_penalty_hours = 1;
  /// ...and at least this (1 GPN): winning at 1 ugpn and never starting is not free.
  uint64_t fault_penalty_floor_ugpn = 1'000'000;
  /// A tenant closing a lease before its start deadline pays the provider this much
  /// of the rate (the capacity the reservation held)...
  uint64_t reserved_close_charge_ms = 10ull * 60 * 1000;
  /// ...and at least this (0.1 GPN), capped at the lease's escrow.
  uint64_t reserved_close_charge_floor_ugpn = 100'000;
  bool operator==(const Params&) const = default;
};

/// One parameter: its name in genesis "params" and in GET /status "market_params"
/// (docs/ledger.md, docs/rpc.md) and its member. One list drives the genesis's strict
/// parse, JSON and hash, the node's answer and the client's strict reader.
struct ParamField {
  const char* name;
  uint64_t Params::*member;
  bool amount;  ///< `_ugpn`: an integer string in JSON
};
inline constexpr ParamField kParamFields[] = {
    {"provider_bond_min_ugpn", &Params::provider_bond_min_ugpn, true},
    {"unbonding_delay_ms", &Params::unbonding_delay_ms, false},
    {"lease_start_timeout_ms", &Params::lease_start_timeout_ms, false},
    {"manifest_timeout_ms", &Params::manifest_timeout_ms, false},
    {"heartbeat_timeout_ms", &Params::heartbeat_timeout_ms, false},
    {"heartbeat_grace_blocks", &Params::heartbeat_grace_blocks, false},
    {"bid_window_min_ms", &Params::bid_window_min_ms, false},
    {"bid_window_max_ms", &Params::bid_window_max_ms, false},
    {"deposit_min_hours", &Params::deposit_min_hours, false},
    {"fault_penalty_hours", &Params::fault_penalty_hours, false},
    {"fault_penalty_floor_ugpn", &Params::fault_penalty_floor_ugpn, true},
    {"reserved_close_charge_ms", &Params::reserved_close_charge_ms, false},
    {"reserved_close_charge_floor_ugpn", &Params::reserved_close_charge_floor_ugpn, true},
};
static_assert(std::size(kParamFields) * sizeof(uint64_t) == sizeof(Params),
              "every market parameter is in kParamFields");

/// Ok, or kInvalidArgument naming the first parameter out of its range
/// ("params.<name> is V, must be in [lo, hi]"): no zero timeout, delay or hour count;
/// durations at most a year; bid_window_min_ms <= bid_window_max_ms;
/// fault_penalty_floor_ugpn <= provider_bond_min_ugpn (a minimal bond covers one
/// lease's floor). The ranges keep every sum of a time and a duration, and every
/// product the rules form, within 64 bits.
[[nodiscard]] base::Status ValidateParams(const Params& params);

}  // namespace gpunet::market
