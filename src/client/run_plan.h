// The decisions of `gpunet run task.yaml` (docs/task.md "gpunet run"), as pure
// functions of the task, the market's answers and the chain's rules, so each is
// unit-tested without a node (tests/unit/client/run_plan_test.cpp): which offers
// fit and, when none does, which requirement excluded the nearest ones; the
// deposit of a lease from an offer; the bid window of an order and the bid to
// accept; what is shown before money moves; and the messages of bad luck (no
// funds, a provider that does not start, an upload over the disk, the settlement).
// cmd_run.cpp does the talking (ledger, tenant API, terminal).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/market_answers.h"
#include "client/offer_filter.h"
#include "client/task.h"
#include "market/params.h"

namespace gpunet::client {

/// The offers the task may lease from, cheapest first (TaskFilter, then
/// FilterAndSort's order); private offers are left out (a lease from one is
/// refused unless the tenant is named, which the offer list does not say).
[[nodiscard]] std::vector<OfferView> FittingOffers(const Task& task,
                                                   const std::vector<OfferView>& offers);

/// When no offer fits: which requirement excluded the nearest offers (those that
/// miss the fewest requirements), one clause per requirement, e.g. "3 offer(s)
/// have H100 GPUs but cost 4 GPN/GPU-h > max_price 3; 1 fits the price but has
/// 1 free GPU(s) < 2". "no offers on the market" when there are none.
[[nodiscard]] std::string ExplainNoFit(const Task& task, const std::vector<OfferView>& offers);

/// The first deposit of a lease from an offer at `price`: the task's GPUs x price x
/// the most of the task's hours, the offer's min_hours and the chain's
/// deposit_min_hours (kOverflow past u64).
[[nodiscard]] base::Result<uint64_t> OfferDepositUgpn(const Task& task, uint64_t price,
                                                      uint32_t offer_min_hours,
                                                      const market::Params& params);

/// The bid window `gpunet run --order` asks: kRunBidWindowMs, within the chain's
/// bid_window_min_ms..bid_window_max_ms.
inline constexpr uint64_t kRunBidWindowMs = 10'000;
[[nodiscard]] uint64_t RunBidWindowMs(const market::Params& params);

/// The bid to accept: the cheapest at most `max_price` (ties: the older bid id);
/// nullopt when there is none.
[[nodiscard]] std::optional<BidInfo> PickBid(const std::vector<BidInfo>& bids, uint64_t max_price);

/// What is shown before money moves.
struct RunQuote {
  std::string provider;   ///< gpn1...
  std::string source;     ///< "offer 3" or "order (bids for 10 s)"
  std::string gpu_model;  ///< "" = any
  uint32_t machines = 1;
  uint32_t gpus_per_machine = 0;
  uint64_t price_ugpn_per_gpu_hour = 0;  ///< the offer's, or the order's max_price
  uint64_t deposit_ugpn = 0;
  uint32_t hours = 1;
  /// The least a close before the start deadline pays the provider in all (the
  /// reserved-close charge, market::ReservedCloseCharge with nothing paid yet).
  uint64_t min_charge_ugpn = 0;
  uint64_t start_timeout_ms = 0;  ///< the chain's lease_start_timeout_ms
};
/// The lines (each without a line break): provider, machines x GPUs, price per
/// GPU-hour and per hour, deposit, the estimated total for `hours` (what the
/// deposit pays for; what is not used is refunded at the close) and the minimum a
/// short job pays (the charge of a close within the start timeout).
[[nodiscard]] std::vector<std::string> QuoteLines(const RunQuote& q);

/// "the account KEY has B GPN but the deposit needs D GPN (and fees): fund it with
/// `gpunet send FUNDED_KEY ADDRESS AMOUNT` ...".
[[nodiscard]] std::string NoFundsText(std::string_view key, std::string_view address,
                                      uint64_t balance_ugpn, uint64_t needed_ugpn);

/// A provider that has not started a reserved lease (as of `now_ms`): that it has
/// not, what the ledger refunds (everything, plus the provider's penalty) and when
/// (the start deadline, then heartbeat_grace_blocks blocks), and that closing now
/// would pay the provider the reserved-close charge, so run waits.
[[nodiscard]] std::string MissedStartText(const LeaseInfo& lease, const market::Params& params,
                                          uint64_t now_ms);

/// An upload refused for the lease's disk (the provider's 413): what to do.
[[nodiscard]] std::string UploadOverDiskText(uint64_t workdir_bytes, std::string_view said);

/// What a closed lease paid and refunded, from the ledger's record: "paid P GPN to
/// the provider, refunded R GPN of the D GPN deposited[, and the provider's penalty
/// of X] (ran T[; G of it for GPU time, the rest the charge of a close within the
/// start timeout])".
[[nodiscard]] std::string SettlementText(const LeaseInfo& closed);

/// The answer to "keep the lease running (k) or close it now (c)?": 'k', 'c', or
/// nullopt for anything else.
[[nodiscard]] std::optional<char> ParseKeepOrClose(std::string_view answer);

/// How to come back to a lease `gpunet run` left running (detached or kept): the
/// logs, the close, and what then needs `gpunet lease watch` (auto_topup,
/// close_on_exit).
[[nodiscard]] std::vector<std::string> ComeBackLines(const Task& task, uint64_t lease_id);

/// Where run's time went (`--timings`, `-o json`'s "timings"): wall-clock ms since
/// run began for each mark it reached (0 = not reached).
struct RunTimings {
  uint64_t lease_committed_ms = 0;    ///< the lease's tx is in a block
  uint64_t provider_noticed_ms = 0;   ///< the ledger shows it started
  uint64_t manifest_accepted_ms = 0;  ///< the provider accepted the manifest
  uint64_t sandbox_started_ms = 0;    ///< the provider says the workload is running
  uint64_t first_output_ms = 0;       ///< the first byte of the workload's output
};
/// One line: `timings lease_committed_ms=N provider_noticed_ms=N
/// manifest_accepted_ms=N sandbox_started_ms=N first_output_ms=N`.
[[nodiscard]] std::string TimingsLine(const RunTimings& t);

/// True when output `name` (relative to the outputs folder) is one the task asked
/// for: a selection of PlanTaskOutputs ("" = all, a file, or a folder and what is
/// beneath it).
[[nodiscard]] bool OutputSelected(std::string_view name,
                                  const std::vector<std::string>& selections);

}  // namespace gpunet::client
