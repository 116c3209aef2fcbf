#include "market/math.h"

#include <algorithm>

#include "base/check.h"
#include "base/limits.h"

namespace gpunet::market {

namespace limits = base::limits;

std::optional<uint64_t> RateOf(uint64_t price_ugpn_per_gpu_hour, uint64_t gpus) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(price_ugpn_per_gpu_hour, gpus, &r)) return std::nullopt;
  return r;
}

uint64_t Accrued(uint64_t rate_ugpn_per_hour, uint64_t elapsed_ms) {
  unsigned __int128 q =
      static_cast<unsigned __int128>(rate_ugpn_per_hour) * elapsed_ms / limits::kMsPerHour;
  return q > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(q);
}

uint64_t PaidMs(uint64_t deposited_ugpn, uint64_t rate_ugpn_per_hour) {
  GPUNET_CHECK(rate_ugpn_per_hour > 0);
  unsigned __int128 q =
      static_cast<unsigned __int128>(deposited_ugpn) * limits::kMsPerHour / rate_ugpn_per_hour;
  uint64_t ms = q > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(q);
  // The defining property: what is paid for covers what accrues, never more.
  GPUNET_CHECK(ms == UINT64_MAX || Accrued(rate_ugpn_per_hour, ms) <= deposited_ugpn);
  return ms;
}

bool ValidSplits(const std::vector<codec::PayoutSplit>& splits) {
  if (splits.empty() || splits.size() > limits::kPayoutSplitsMax) return false;
  uint64_t total = 0;
  for (const auto& s : splits) {
    if (s.bp == 0 || s.bp > limits::kPayoutBpTotal) return false;
    total += s.bp;
  }
  return total == limits::kPayoutBpTotal;
}

std::vector<Share> SplitPayout(uint64_t amount_ugpn, const std::vector<codec::PayoutSplit>& splits,
                               const codec::Address& owner) {
  GPUNET_CHECK(ValidSplits(splits));
  std::vector<Share> out;
  out.reserve(splits.size() + 1);
  uint64_t paid = 0;
  for (const auto& s : splits) {
    uint64_t share = static_cast<uint64_t>(static_cast<unsigned __int128>(amount_ugpn) * s.bp /
                                           limits::kPayoutBpTotal);
    out.push_back(Share{s.payee, share});
    paid += share;
  }
  GPUNET_CHECK(paid <= amount_ugpn);
  uint64_t rest = amount_ugpn - paid;
  if (rest > 0) {
    bool added = false;
    for (auto& share : out)
      if (share.payee == owner) {
        share.amount_ugpn += rest;
        added = true;
      }
    if (!added) out.push_back(Share{owner, rest});
  }
  uint64_t total = 0;
  for (const auto& share : out) total += share.amount_ugpn;
  GPUNET_CHECK(total == amount_ugpn);  // no ugpn created or lost by the split
  return out;
}

uint64_t FaultRatePpm(uint64_t completed, uint64_t faults) {
  unsigned __int128 total = static_cast<unsigned __int128>(completed) + faults;
  if (total == 0) return 0;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(faults) * 1'000'000 / total);
}

uint64_t FaultPenalty(uint64_t rate_ugpn_per_hour, const Params& params) {
  unsigned __int128 want =
      static_cast<unsigned __int128>(rate_ugpn_per_hour) * params.fault_penalty_hours;
  uint64_t penalty = want > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(want);
  return std::max(penalty, params.fault_penalty_floor_ugpn);
}

uint64_t ReservedCloseCharge(uint64_t rate_ugpn_per_hour, uint64_t paid_ugpn, uint64_t escrow_ugpn,
                             const Params& params) {
  uint64_t charge = std::max(Accrued(rate_ugpn_per_hour, params.reserved_close_charge_ms),
                             params.reserved_close_charge_floor_ugpn);
  return std::min(charge > paid_ugpn ? charge - paid_ugpn : 0, escrow_ugpn);
}

uint64_t RequiredBond(uint64_t promised_penalties_ugpn, const Params& params) {
  return std::max(params.provider_bond_min_ugpn, promised_penalties_ugpn);
}

uint64_t UnbondingUgpn(const Provider& p) {
  uint64_t sum = 0;
  for (const auto& u : p.unbonding) sum += u.amount_ugpn;  // part of the supply
  return sum;
}

PenaltyDraw DrawPenalty(Provider& p, uint64_t want_ugpn, uint64_t now_ms) {
  const uint64_t bond_before = p.bond_ugpn;
  const uint64_t unbonding_before = UnbondingUgpn(p);
  PenaltyDraw d;
  d.from_bond_ugpn = std::min(want_ugpn, p.bond_ugpn);
  p.bond_ugpn -= d.from_bond_ugpn;
  uint64_t left = want_ugpn - d.from_bond_ugpn;
  // Entries are in release order (each is now + the same delay): walk from the back.
  for (size_t i = p.unbonding.size(); i > 0 && left > 0; --i) {
    Unbonding& u = p.unbonding[i - 1];
    if (u.release_ms <= now_ms) break;  // this and every earlier entry has matured
    uint64_t take = std::min(left, u.amount_ugpn);
    u.amount_ugpn -= take;
    d.from_unbonding_ugpn += take;
    left -= take;
  }
  std::erase_if(p.unbonding, [](const Unbonding& u) { return u.amount_ugpn == 0; });
  d.unpaid_ugpn = left;
  GPUNET_CHECK(d.Paid() + d.unpaid_ugpn == want_ugpn);
  // What was drawn left the bond and the unbonding entries, and nothing else did.
  GPUNET_CHECK(p.bond_ugpn + d.from_bond_ugpn == bond_before);
  GPUNET_CHECK(UnbondingUgpn(p) + d.from_unbonding_ugpn == unbonding_before);
  return d;
}

}  // namespace gpunet::market
