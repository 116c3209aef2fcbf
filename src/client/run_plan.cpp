#include "client/run_plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "base/checked_math.h"
#include "client/amount.h"
#include "client/market_tx.h"
#include "market/math.h"

namespace gpunet::client {

namespace {

using base::ErrorCode;

std::string RunGpn(uint64_t ugpn) {
  return FormatGpn(ugpn) + " GPN";
}

/// "1 offer" / "3 offers", and the verb that follows in the same number.
std::string RunCount(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}
std::string RunVerb(size_t n, std::string_view one, std::string_view many) {
  return std::string(n == 1 ? one : many);
}

/// Up to three distinct values, comma-separated, in the order first seen.
std::string RunValues(const std::vector<std::string>& values) {
  std::vector<std::string> seen;
  for (const auto& v : values)
    if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  std::string out;
  for (size_t i = 0; i < seen.size() && i < 3; ++i) out += (i ? "," : "") + seen[i];
  if (seen.size() > 3) out += ",...";
  return out;
}

/// What a group of offers that all miss `term` have instead, as a clause.
std::string MissClause(const FilterTerm& term, const std::vector<const OfferView*>& group) {
  const size_t n = group.size();
  uint64_t low = UINT64_MAX, high = 0;
  std::vector<std::string> texts;
  Version best;
  for (const OfferView* o : group) {
    switch (term.field) {
      case FilterField::kPrice:
        low = std::min(low, o->price_ugpn_per_gpu_hour);
        break;
      case FilterField::kGpus:
        high = std::max<uint64_t>(high, o->gpus);
        break;
      case FilterField::kGpusFree:
        high = std::max<uint64_t>(high, o->gpus_free);
        break;
      case FilterField::kMachines:
        high = std::max<uint64_t>(high, o->machines);
        break;
      case FilterField::kVram:
        high = std::max(high, o->vram_gb);
        break;
      case FilterField::kGpu:
        texts.push_back(o->gpu_model);
        break;
      case FilterField::kRegion:
        texts.push_back(o->region);
        break;
      case FilterField::kFabric:
        texts.push_back(o->fabric);
        break;
      case FilterField::kCuda:
        best = std::max(best, o->cuda);
        break;
      default:
        break;
    }
  }
  const std::string want = RunValues(term.texts);
  switch (term.field) {
    case FilterField::kPrice:
      return RunVerb(n, "costs ", "cost ") + (n == 1 ? "" : "from ") + FormatGpn(low) +
             " GPN/GPU-h > max_price " + FormatGpn(term.number);
    case FilterField::kGpus:
      return RunVerb(n, "has", "have") + " machines of at most " + std::to_string(high) +
             " GPU(s) < gpus " + std::to_string(term.number) + " per machine";
    case FilterField::kGpusFree:
      return RunVerb(n, "has", "have") + " at most " + std::to_string(high) + " free GPU(s) < " +
             std::to_string(term.number) + " needed";
    case FilterField::kMachines:
      return RunVerb(n, "covers", "cover") + " at most " + std::to_string(high) +
             " machine(s) < machines " + std::to_string(term.number);
    case FilterField::kVram:
      return RunVerb(n, "has", "have") + " at most " + std::to_string(high) +
             " GiB per GPU < min_vram_gib " + std::to_string(term.number);
    case FilterField::kGpu:
      return RunVerb(n, "sells ", "sell ") + RunValues(texts) + ", not " + want;
    case FilterField::kRegion:
      return RunVerb(n, "is", "are") + " in " + RunValues(texts) + ", not region " + want;
    case FilterField::kFabric:
      return RunVerb(n, "has", "have") + " fabric " + RunValues(texts) + ", not " + want;
    case FilterField::kCuda:
      return RunVerb(n, "has", "have") + " CUDA " + FormatVersion(best) + " < min_cuda " +
             FormatVersion(term.version);
    default:
      return "fail " + term.source;
  }
}

}  // namespace

std::vector<OfferView> FittingOffers(const Task& task, const std::vector<OfferView>& offers) {
  std::vector<OfferView> open;
  for (const auto& o : offers)
    if (!o.is_private) open.push_back(o);
  return FilterAndSort(TaskFilter(task).filter, std::move(open));
}

std::string ExplainNoFit(const Task& task, const std::vector<OfferView>& offers) {
  std::vector<const OfferView*> open;
  for (const auto& o : offers)
    if (!o.is_private) open.push_back(&o);
  if (open.empty())
    return offers.empty() ? "no offers on the market"
                          : "the market's " + RunCount(offers.size(), "offer is", "offers are") +
                                " private (for named tenants only)";
  const OfferFilter filter = TaskFilter(task).filter;
  // Each offer's missed terms, by index into the filter.
  std::vector<std::vector<size_t>> misses(open.size());
  size_t fewest = SIZE_MAX;
  for (size_t i = 0; i < open.size(); ++i) {
    for (size_t t = 0; t < filter.terms.size(); ++t)
      if (!Matches(OfferFilter{{filter.terms[t]}}, *open[i])) misses[i].push_back(t);
    fewest = std::min(fewest, misses[i].size());
  }
  // The nearest offers, grouped by what they miss (groups in the filter's order).
  std::map<std::vector<size_t>, std::vector<const OfferView*>> groups;
  for (size_t i = 0; i < open.size(); ++i)
    if (misses[i].size() == fewest) groups[misses[i]].push_back(open[i]);
  if (fewest == 0) return "an offer fits";  // callers ask only when none does
  size_t price_term = SIZE_MAX;
  for (size_t t = 0; t < filter.terms.size(); ++t)
    if (filter.terms[t].field == FilterField::kPrice) price_term = t;
  std::string out;
  for (const auto& [missed, group] : groups) {
    const size_t n = group.size();
    std::string clause = RunCount(n, "offer ", "offers ");
    const bool price_missed = std::find(missed.begin(), missed.end(), price_term) != missed.end();
    if (!price_missed) {
      clause += RunVerb(n, "fits", "fit") + " the price but ";
    } else {
      std::vector<std::string> models;
      for (const OfferView* o : group) models.push_back(o->gpu_model);
      clause += RunVerb(n, "has ", "have ") + RunValues(models) + " GPUs but ";
    }
    for (size_t k = 0; k < missed.size(); ++k)
      clause += (k ? " and " : "") + MissClause(filter.terms[missed[k]], group);
    out += (out.empty() ? "" : "; ") + clause;
  }
  return out;
}

base::Result<uint64_t> OfferDepositUgpn(const Task& task, uint64_t price, uint32_t offer_min_hours,
                                        const market::Params& params) {
  const uint64_t hours =
      std::max<uint64_t>({task.resources.hours, offer_min_hours, params.deposit_min_hours});
  auto rate = base::CheckedMul(TaskGpus(task), price);
  auto deposit = rate ? base::CheckedMul(*rate, hours) : std::nullopt;
  if (!deposit)
    return base::Fail(ErrorCode::kOverflow, "the deposit for " + std::to_string(hours) +
                                                " hours does not fit in 64 bits");
  return *deposit;
}

uint64_t RunBidWindowMs(const market::Params& params) {
  return std::clamp(kRunBidWindowMs, params.bid_window_min_ms,
                    std::max(params.bid_window_min_ms, params.bid_window_max_ms));
}

std::optional<BidInfo> PickBid(const std::vector<BidInfo>& bids, uint64_t max_price) {
  std::optional<BidInfo> best;
  for (const auto& b : bids) {
    if (b.price_ugpn_per_gpu_hour > max_price) continue;
    if (!best || b.price_ugpn_per_gpu_hour < best->price_ugpn_per_gpu_hour ||
        (b.price_ugpn_per_gpu_hour == best->price_ugpn_per_gpu_hour && b.bid_id < best->bid_id))
      best = b;
  }
  return best;
}

std::vector<std::string> QuoteLines(const RunQuote& q) {
  const uint64_t gpus = uint64_t{q.machines} * q.gpus_per_machine;
  const unsigned __int128 per_hour =
      static_cast<unsigned __int128>(q.price_ugpn_per_gpu_hour) * gpus;
  const unsigned __int128 total = per_hour * q.hours;
  const auto wide = [](unsigned __int128 v) {
    return v > UINT64_MAX ? std::string("more than 2^64 ugpn") : RunGpn(static_cast<uint64_t>(v));
  };
  std::vector<std::string> out;
  out.push_back("  provider    " + q.provider + " (" + q.source + ")");
  out.push_back("  machines    " + std::to_string(q.machines) + " x " +
                std::to_string(q.gpus_per_machine) + " " +
                (q.gpu_model.empty() ? "GPU(s)" : q.gpu_model) + " = " + std::to_string(gpus) +
                " GPU(s)");
  out.push_back("  price       " + FormatGpn(q.price_ugpn_per_gpu_hour) + " GPN per GPU-hour, " +
                wide(per_hour) + " per hour");
  out.push_back("  deposit     " + RunGpn(q.deposit_ugpn) +
                " into escrow now; what is not used is refunded at the close");
  out.push_back("  estimate    " + wide(total) + " for " + DescribeHours(q.hours) +
                " (less if the job ends sooner: billing is by the millisecond)");
  if (q.min_charge_ugpn)
    out.push_back("  minimum     " + RunGpn(q.min_charge_ugpn) + ": a close within " +
                  DescribeDurationMs(q.start_timeout_ms) +
                  " of the lease pays at least this (the reserved-close charge)");
  return out;
}

std::string NoFundsText(std::string_view key, std::string_view address, uint64_t balance_ugpn,
                        uint64_t needed_ugpn) {
  return "insufficient funds: " + std::string(key) + " (" + std::string(address) + ") has " +
         RunGpn(balance_ugpn) + " but the deposit needs " + RunGpn(needed_ugpn) +
         " plus the fees; nothing was signed or sent. Fund it: gpunet send FUNDED_KEY " +
         std::string(address) +
         " AMOUNT (on a devnet, from one of its funded keys), or lower "
         "resources.hours or max_price";
}

std::string MissedStartText(const LeaseInfo& lease, const market::Params& params, uint64_t now_ms) {
  const uint64_t penalty = market::FaultPenalty(lease.rate_ugpn_per_hour, params);
  const uint64_t left = lease.start_deadline_ms > now_ms ? lease.start_deadline_ms - now_ms : 0;
  return "provider " + lease.provider + " has not started lease " + std::to_string(lease.lease_id) +
         ". If it does not, the ledger closes the lease at its "
         "start deadline (" +
         (left ? "in " + DescribeDurationMs(left) : std::string("now")) + ", then " +
         std::to_string(params.heartbeat_grace_blocks) +
         " blocks of grace) as a missed start: the whole deposit " + RunGpn(lease.deposited_ugpn) +
         " comes back to you, with the provider's penalty of " + RunGpn(penalty) +
         ". Closing it yourself before the deadline would pay the provider a charge, so "
         "gpunet run waits (Ctrl-C: keep the lease reserved and return, or close it)";
}

std::string UploadOverDiskText(uint64_t workdir_bytes, std::string_view said) {
  return "the upload does not fit the lease's disk (the workdir has " +
         std::to_string(workdir_bytes) + " bytes; the provider said: " + std::string(said) +
         "): leave data out with the workdir's .gpunetignore (datasets, checkpoints, .git), "
         "or rent a machine with a bigger disk share (more GPUs of the machine get more of "
         "its disk)";
}

std::string SettlementText(const LeaseInfo& closed) {
  std::string out = "paid " + RunGpn(closed.paid_ugpn) + " to the provider, refunded " +
                    RunGpn(closed.refunded_ugpn) + " of the " + RunGpn(closed.deposited_ugpn) +
                    " deposited";
  if (closed.penalty_ugpn) out += ", and the provider's penalty of " + RunGpn(closed.penalty_ugpn);
  if (closed.started_ms && closed.closed_ms > closed.started_ms) {
    const uint64_t ran_ms = closed.closed_ms - closed.started_ms;
    out += " (ran " + DescribeDurationMs(ran_ms);
    // The ledger's accrual: floor(rate x ms / 3,600,000); above it is the charge.
    const auto gpu_time = static_cast<uint64_t>(
        static_cast<unsigned __int128>(closed.rate_ugpn_per_hour) * ran_ms / 3'600'000);
    if (closed.paid_ugpn > gpu_time)
      out += "; " + RunGpn(gpu_time) +
             " of it for GPU time, the rest the charge of a close within the start timeout";
    out += ")";
  }
  return out;
}

std::optional<char> ParseKeepOrClose(std::string_view answer) {
  while (!answer.empty() && (answer.back() == ' ' || answer.back() == '\n'))
    answer.remove_suffix(1);
  while (!answer.empty() && answer.front() == ' ') answer.remove_prefix(1);
  if (answer == "k" || answer == "K" || answer == "keep") return 'k';
  if (answer == "c" || answer == "C" || answer == "close") return 'c';
  return std::nullopt;
}

std::vector<std::string> ComeBackLines(const Task& task, uint64_t lease_id) {
  const std::string id = std::to_string(lease_id);
  std::vector<std::string> out{
      "lease " + id + " keeps running; come back with:",
      "  gpunet logs " + id + " -f --from KEY           (follow its output)",
      "  gpunet lease outputs " + id + " -o DIR --from KEY (bring back its outputs)",
      "  gpunet lease close " + id + " --from KEY       (end it: what is not used is refunded)"};
  if (task.Interactive()) {  // how to reach the machine: it waits for the user
    out.insert(out.begin() + 1,
               {"  gpunet shell " + id + " --from KEY            (a terminal on it)",
                "  gpunet exec " + id + " --from KEY -- CMD      (one command)",
                "  gpunet ssh-config " + id +
                    " --from KEY       (then ssh, scp and rsync through the config it writes)"});
    std::vector<std::string> forwards;
    for (const uint16_t port : task.ports)
      forwards.push_back("  gpunet forward " + id + " " + std::to_string(port) +
                         " --from KEY    (its port " + std::to_string(port) +
                         " on 127.0.0.1 here)");
    if (forwards.empty())
      forwards.push_back("  gpunet forward " + id +
                         " PORT[:LOCAL] --from KEY (a port inside it, e.g. Jupyter's 8888, here)");
    out.insert(out.begin() + 4, forwards.begin(), forwards.end());
  }
  std::string needs;
  if (task.auto_topup_cap_ugpn) needs = "auto_topup";
  if (!task.Interactive() && task.close_on_exit)
    needs += std::string(needs.empty() ? "" : " and ") + "close_on_exit";
  if (!needs.empty())
    out.push_back(
        "  " + needs + (needs.find(" and ") == std::string::npos ? " now needs" : " now need") +
        " `gpunet lease watch " + id + "` running; without it " +
        (needs.find(" and ") == std::string::npos ? "it does" : "they do") + " not apply");
  return out;
}

std::string TimingsLine(const RunTimings& t) {
  return "timings lease_committed_ms=" + std::to_string(t.lease_committed_ms) +
         " provider_noticed_ms=" + std::to_string(t.provider_noticed_ms) +
         " manifest_accepted_ms=" + std::to_string(t.manifest_accepted_ms) +
         " sandbox_started_ms=" + std::to_string(t.sandbox_started_ms) +
         " first_output_ms=" + std::to_string(t.first_output_ms);
}

bool OutputSelected(std::string_view name, const std::vector<std::string>& selections) {
  for (std::string_view sel : selections) {
    while (sel.ends_with('/')) sel.remove_suffix(1);
    if (sel.empty() || name == sel) return true;
    if (name.size() > sel.size() && name.starts_with(sel) && name[sel.size()] == '/') return true;
  }
  return false;
}

}  // namespace gpunet::client
