#include "market/params.h"

#include <algorithm>
#include <string>

namespace gpunet::market {

namespace {

constexpr uint64_t kDayMs = 24ull * 3600 * 1000;
/// The longest duration a parameter may name: time + duration stays far below 2^64
/// for any consensus time up to the year 500,000,000.
constexpr uint64_t kDurationMaxMs = 365 * kDayMs;
/// A year of hours: the rules multiply a rate by these in 128 bits and saturate.
constexpr uint64_t kHoursMax = 365 * 24;
/// 10^12 GPN: more than any supply a chain could hold in practice.
constexpr uint64_t kAmountMax = 1'000'000'000'000'000'000ull;
constexpr uint64_t kGraceBlocksMax = 100'000;

base::Status InRange(uint64_t value, uint64_t lo, uint64_t hi, const char* name) {
  if (value < lo || value > hi)
    return base::Fail(base::ErrorCode::kInvalidArgument,
                      std::string("params.") + name + " is " + std::to_string(value) +
                          ", must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return base::Ok();
}

}  // namespace

base::Status ValidateParams(const Params& p) {
  GPUNET_TRY(InRange(p.fault_penalty_floor_ugpn, 0, kAmountMax, "fault_penalty_floor_ugpn"));
  // A provider with the minimal bond can take a lease at the penalty floor.
  GPUNET_TRY(InRange(p.provider_bond_min_ugpn, std::max<uint64_t>(1, p.fault_penalty_floor_ugpn),
                     kAmountMax, "provider_bond_min_ugpn"));
  GPUNET_TRY(InRange(p.unbonding_delay_ms, 1, kDurationMaxMs, "unbonding_delay_ms"));
  GPUNET_TRY(InRange(p.lease_start_timeout_ms, 1, kDurationMaxMs, "lease_start_timeout_ms"));
  GPUNET_TRY(InRange(p.manifest_timeout_ms, 1, kDurationMaxMs, "manifest_timeout_ms"));
  GPUNET_TRY(InRange(p.heartbeat_timeout_ms, 1, kDurationMaxMs, "heartbeat_timeout_ms"));
  GPUNET_TRY(InRange(p.heartbeat_grace_blocks, 1, kGraceBlocksMax, "heartbeat_grace_blocks"));
  GPUNET_TRY(InRange(p.bid_window_min_ms, 1, kDurationMaxMs, "bid_window_min_ms"));
  GPUNET_TRY(
      InRange(p.bid_window_max_ms, p.bid_window_min_ms, kDurationMaxMs, "bid_window_max_ms"));
  GPUNET_TRY(InRange(p.deposit_min_hours, 1, kHoursMax, "deposit_min_hours"));
  GPUNET_TRY(InRange(p.fault_penalty_hours, 1, kHoursMax, "fault_penalty_hours"));
  GPUNET_TRY(InRange(p.reserved_close_charge_ms, 0, kDurationMaxMs, "reserved_close_charge_ms"));
  GPUNET_TRY(InRange(p.reserved_close_charge_floor_ugpn, 0, kAmountMax,
                     "reserved_close_charge_floor_ugpn"));
  return base::Ok();
}

}  // namespace gpunet::market
