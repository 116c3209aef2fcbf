#include "market/preflight.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/limits.h"
#include "market/math.h"

namespace gpunet::market {

namespace limits = base::limits;
using codec::TxCode;
using codec::TxFail;
using codec::TxResult;

namespace {

TxResult<void> Pass() {
  return {};
}

/// `value` in 1..max, else kMarketInvalidField naming `field`.
TxResult<void> CountInRange(std::string_view field, uint64_t value, uint64_t max) {
  if (value == 0 || value > max)
    return TxFail(TxCode::kMarketInvalidField, std::string(field) + " " + std::to_string(value) +
                                                   " not in 1.." + std::to_string(max));
  return Pass();
}

/// Offers, orders, bids and leases are numbered from 1 (Counters): id 0 names none.
TxResult<void> IdNotZero(uint64_t id, TxCode unknown, std::string_view what) {
  if (id == 0) return TxFail(unknown, "no " + std::string(what) + " 0 (ids start at 1)");
  return Pass();
}

TxResult<void> NotZero(uint64_t amount, std::string_view what) {
  if (amount == 0) return TxFail(TxCode::kMarketZeroAmount, std::string(what) + " of 0 ugpn");
  return Pass();
}

TxResult<void> PriceNotZero(uint64_t price, std::string_view what) {
  if (price == 0)
    return TxFail(TxCode::kMarketZeroAmount, std::string(what) + " of 0 ugpn per GPU-hour");
  return Pass();
}

TxResult<void> Payouts(const std::vector<codec::PayoutSplit>& payouts) {
  if (!ValidSplits(payouts))
    return TxFail(TxCode::kMarketBadSplits,
                  "payout splits must name 1.." + std::to_string(limits::kPayoutSplitsMax) +
                      " payees with 1.." + std::to_string(limits::kPayoutBpTotal) +
                      " bp each, summing to exactly " + std::to_string(limits::kPayoutBpTotal) +
                      " bp");
  return Pass();
}

TxResult<void> Check(const codec::MsgProviderRegister& m, const Params& params) {
  // The bond is the message's own: below the chain's minimum it can never register.
  if (m.bond_ugpn < params.provider_bond_min_ugpn)
    return TxFail(TxCode::kMarketBondTooLow,
                  "bond " + std::to_string(m.bond_ugpn) + " ugpn is below the minimum of " +
                      std::to_string(params.provider_bond_min_ugpn) + " ugpn");
  return Payouts(m.payouts);
}
TxResult<void> Check(const codec::MsgProviderUpdate& m, const Params&) {
  return Payouts(m.payouts);
}
TxResult<void> Check(const codec::MsgProviderDeregister&, const Params&) {
  return Pass();
}
TxResult<void> Check(const codec::MsgProviderBond& m, const Params&) {
  return NotZero(m.amount_ugpn, "bond");
}
TxResult<void> Check(const codec::MsgProviderUnbond& m, const Params&) {
  return NotZero(m.amount_ugpn, "unbond");
}
TxResult<void> Check(const codec::MsgProviderClaimUnbonded&, const Params&) {
  return Pass();
}

TxResult<void> Check(const codec::MsgSiteUpsert& m, const Params&) {
  if (m.site_id == 0) return TxFail(TxCode::kMarketInvalidField, "site_id must be >= 1");
  return Pass();
}

TxResult<void> Check(const codec::MsgMachineUpsert& m, const Params&) {
  if (m.machine_id == 0) return TxFail(TxCode::kMarketInvalidField, "machine_id must be >= 1");
  return CountInRange("gpu_count", m.gpu_count, limits::kGpusPerMachineMax);
}

TxResult<void> Check(const codec::MsgMachineRemove& m, const Params&) {
  if (m.machine_id == 0)
    return TxFail(TxCode::kMarketUnknownMachine, "no machine 0 (ids start at 1)");
  return Pass();
}

TxResult<void> Check(const codec::MsgOfferCreate& m, const Params& params) {
  // max_hours under the least a first deposit must cover would make every lease
  // from the offer impossible.
  const uint64_t least = std::max<uint64_t>(m.min_hours, params.deposit_min_hours);
  if (m.max_hours != 0 && m.max_hours < least)
    return TxFail(TxCode::kMarketInvalidField,
                  "max_hours " + std::to_string(m.max_hours) + " is under " +
                      std::to_string(least) +
                      " (min_hours, or the chain's deposit_min_hours when higher); 0 = no limit");
  return PriceNotZero(m.price_ugpn_per_gpu_hour, "price");
}
TxResult<void> Check(const codec::MsgOfferClose& m, const Params&) {
  return IdNotZero(m.offer_id, TxCode::kMarketUnknownOffer, "offer");
}

TxResult<void> Check(const codec::MsgLeaseCreate& m, const Params&) {
  if (auto ok = CountInRange("machines", m.machines, limits::kMachinesPerLeaseMax); !ok) return ok;
  if (auto ok = CountInRange("gpus_per_machine", m.gpus_per_machine, limits::kGpusPerMachineMax);
      !ok)
    return ok;
  return IdNotZero(m.offer_id, TxCode::kMarketUnknownOffer, "offer");
}

TxResult<void> Check(const codec::MsgOrderCreate& m, const Params& params) {
  const codec::Requirements& q = m.requirements;
  if (auto ok = CountInRange("machines", q.machines, limits::kMachinesPerLeaseMax); !ok) return ok;
  if (auto ok = CountInRange("gpus_per_machine", q.gpus_per_machine, limits::kGpusPerMachineMax);
      !ok)
    return ok;
  if (!q.attributes.empty() && q.auditors.empty())
    return TxFail(TxCode::kMarketInvalidField,
                  "required attributes need at least one named auditor");
  if (auto ok = PriceNotZero(m.max_price_ugpn_per_gpu_hour, "max price"); !ok) return ok;
  if (m.bid_window_ms < params.bid_window_min_ms || m.bid_window_ms > params.bid_window_max_ms)
    return TxFail(TxCode::kMarketInvalidField, "bid window " + std::to_string(m.bid_window_ms) +
                                                   " ms not in " +
                                                   std::to_string(params.bid_window_min_ms) + ".." +
                                                   std::to_string(params.bid_window_max_ms));
  // The order's own price bounds what it may pay: its deposit is judged on it alone.
  auto rate = RateFor(m.max_price_ugpn_per_gpu_hour, q.machines, q.gpus_per_machine);
  if (!rate) return std::unexpected(std::move(rate.error()));
  return RequireDeposit(m.deposit_ugpn, *rate, params);
}

TxResult<void> Check(const codec::MsgOrderClose& m, const Params&) {
  return IdNotZero(m.order_id, TxCode::kMarketUnknownOrder, "order");
}
TxResult<void> Check(const codec::MsgBidCreate& m, const Params&) {
  if (auto ok = IdNotZero(m.order_id, TxCode::kMarketUnknownOrder, "order"); !ok) return ok;
  return PriceNotZero(m.price_ugpn_per_gpu_hour, "price");
}
TxResult<void> Check(const codec::MsgBidAccept& m, const Params&) {
  return IdNotZero(m.bid_id, TxCode::kMarketUnknownBid, "bid");
}
TxResult<void> Check(const codec::MsgBidWithdraw& m, const Params&) {
  return IdNotZero(m.bid_id, TxCode::kMarketUnknownBid, "bid");
}
TxResult<void> Check(const codec::MsgLeaseStarted& m, const Params&) {
  return IdNotZero(m.lease_id, TxCode::kMarketUnknownLease, "lease");
}
TxResult<void> Check(const codec::MsgLeaseDeposit& m, const Params&) {
  if (auto ok = NotZero(m.amount_ugpn, "deposit"); !ok) return ok;
  return IdNotZero(m.lease_id, TxCode::kMarketUnknownLease, "lease");
}
TxResult<void> Check(const codec::MsgLeaseWithdraw& m, const Params&) {
  return IdNotZero(m.lease_id, TxCode::kMarketUnknownLease, "lease");
}
TxResult<void> Check(const codec::MsgLeaseClose& m, const Params&) {
  return IdNotZero(m.lease_id, TxCode::kMarketUnknownLease, "lease");
}
TxResult<void> Check(const codec::MsgHeartbeat&, const Params&) {
  return Pass();
}
TxResult<void> Check(const codec::MsgAttest& m, const Params&) {
  // Whether it has expired needs the block's time: the rules check that.
  if (m.attributes.empty())
    return TxFail(TxCode::kMarketInvalidField, "an attestation needs at least one attribute");
  return Pass();
}

TxResult<void> Check(const codec::MsgSend&, const Params&) {
  GPUNET_UNREACHABLE();  // the bank's, checked by state/tx_pipeline
}

}  // namespace

TxResult<void> Preflight(const codec::Msg& msg, const Params& params) {
  GPUNET_CHECK(!std::holds_alternative<codec::MsgSend>(msg));
  auto result = std::visit([&params](const auto& m) { return Check(m, params); }, msg);
  GPUNET_CHECK(result || codec::IsIncludedFailure(result.error().code));
  return result;
}

TxResult<uint64_t> RateFor(uint64_t price_ugpn_per_gpu_hour, uint64_t machines,
                           uint64_t gpus_per_machine) {
  auto gpus = base::CheckedMul(machines, gpus_per_machine);
  std::optional<uint64_t> rate = gpus ? RateOf(price_ugpn_per_gpu_hour, *gpus) : std::nullopt;
  if (!rate) return TxFail(TxCode::kMarketAmountOverflow, "price x GPUs does not fit in 64 bits");
  return *rate;
}

TxResult<void> RequireDeposit(uint64_t deposit_ugpn, uint64_t rate_ugpn_per_hour,
                              const Params& params) {
  const unsigned __int128 need =
      static_cast<unsigned __int128>(rate_ugpn_per_hour) * params.deposit_min_hours;
  if (deposit_ugpn < need)
    return TxFail(TxCode::kMarketDepositTooLow,
                  "deposit " + std::to_string(deposit_ugpn) + " ugpn is under " +
                      std::to_string(params.deposit_min_hours) + " hour(s) at " +
                      std::to_string(rate_ugpn_per_hour) + " ugpn/hour");
  return Pass();
}

}  // namespace gpunet::market
