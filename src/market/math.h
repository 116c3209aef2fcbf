// The market's money arithmetic (architecture §3.4, settlement without keepers): integer
// only, exact in unsigned __int128, floor everywhere, so no ugpn is created or lost.
//
//   rate        = price_ugpn_per_gpu_hour x gpus                      (ugpn per hour)
//   accrued(t)  = floor(rate x (t - started_ms) / 3,600,000)          always from start
//   paid_until  = started_ms + floor(deposited x 3,600,000 / rate)    accrued <= deposited
//
// Accrual is computed from the lease start each time and the amount already paid is
// subtracted, so the sub-ugpn remainder of every partial settlement is carried
// implicitly: the sum of the withdrawals equals accrued(t) exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "codec/types.h"
#include "market/params.h"
#include "market/records.h"

namespace gpunet::market {

/// price x gpus; nullopt on overflow.
std::optional<uint64_t> RateOf(uint64_t price_ugpn_per_gpu_hour, uint64_t gpus);

/// floor(rate x elapsed_ms / kMsPerHour). Saturates at UINT64_MAX (never reached:
/// callers cap elapsed at paid_until, where accrued <= the deposit).
uint64_t Accrued(uint64_t rate_ugpn_per_hour, uint64_t elapsed_ms);

/// The last ms (relative to the start) up to which `deposited_ugpn` pays at `rate`:
/// floor(deposited x kMsPerHour / rate), saturating at UINT64_MAX - started_ms by
/// the caller. rate must be > 0.
uint64_t PaidMs(uint64_t deposited_ugpn, uint64_t rate_ugpn_per_hour);

/// One payee's share of a payout.
struct Share {
  codec::Address payee;
  uint64_t amount_ugpn = 0;
  bool operator==(const Share&) const = default;
};

/// Splits `amount_ugpn` by the splits: floor(amount x bp / 10,000) per payee; the
/// remainder (< number of payees ugpn) goes to `owner` (added to the owner's share
/// when the owner is a payee, else as an extra share at the end). The shares sum
/// to amount_ugpn exactly. splits must sum to 10,000 bp (checked).
std::vector<Share> SplitPayout(uint64_t amount_ugpn, const std::vector<codec::PayoutSplit>& splits,
                               const codec::Address& owner);

/// Whether splits are valid: 1..kPayoutSplitsMax payees, each 1..10,000 bp, summing
/// to exactly 10,000.
bool ValidSplits(const std::vector<codec::PayoutSplit>& splits);

/// The penalty a fault (missed start, missed heartbeat) of a lease at `rate` costs its
/// provider: max(rate x fault_penalty_hours, fault_penalty_floor_ugpn), saturating.
uint64_t FaultPenalty(uint64_t rate_ugpn_per_hour, const Params& params);

/// What a tenant pays the provider, on top of the GPU time already paid
/// (`paid_ugpn`), for closing its lease before the start deadline, started or not: the
/// provider gets at least max(accrued(rate, reserved_close_charge_ms),
/// reserved_close_charge_floor_ugpn) in all; at most the escrow.
uint64_t ReservedCloseCharge(uint64_t rate_ugpn_per_hour, uint64_t paid_ugpn, uint64_t escrow_ugpn,
                             const Params& params);

/// The bond a provider must hold with `promised_penalties_ugpn` of open leases:
/// max(provider_bond_min_ugpn, promised) (docs/market.md "Bonds").
uint64_t RequiredBond(uint64_t promised_penalties_ugpn, const Params& params);

/// Where a penalty came from.
struct PenaltyDraw {
  uint64_t from_bond_ugpn = 0;
  uint64_t from_unbonding_ugpn = 0;
  uint64_t unpaid_ugpn = 0;  ///< what neither could pay (written off)
  uint64_t Paid() const { return from_bond_ugpn + from_unbonding_ugpn; }
};

/// What the provider's unbonding entries hold, matured or not.
uint64_t UnbondingUgpn(const Provider& p);

/// Takes `want_ugpn` from the provider: the bond first, then the unbonding entries
/// that have not matured at `now_ms` (release_ms > now), the latest release first;
/// entries drawn to 0 are removed. Matured entries are the owner's and are not touched.
PenaltyDraw DrawPenalty(Provider& p, uint64_t want_ugpn, uint64_t now_ms);

/// Fault-rate in parts per million: faults x 1,000,000 / (completed + faults); 0
/// without history. Orders tie-break on it (lower first).
uint64_t FaultRatePpm(uint64_t completed, uint64_t faults);

}  // namespace gpunet::market
