#include "provider/bidder.h"

#include <algorithm>
#include <set>

#include "crypto/address.h"

namespace gpunet::provider {

namespace {

constexpr uint64_t kBasisPoints = 10'000;

bool InWindow(const client::OrderInfo& o, uint64_t now_ms) {
  return o.state == "open" && o.window_end_ms > now_ms;
}

}  // namespace

std::string WhyNotServe(const BidderInput& in, const client::OrderInfo& order) {
  const auto& q = order.requirements;
  const auto& m = in.machine;
  const auto& p = in.provider_info;
  if (q.machines != 1) return "asks for " + std::to_string(q.machines) + " machines";
  if (q.gpus_per_machine > m.gpu_count) return "more GPUs than the machine has";
  if (q.gpus_per_machine > in.free_healthy_gpus) return "not enough free healthy GPUs";
  if (!q.gpu_models.empty() &&
      std::find(q.gpu_models.begin(), q.gpu_models.end(), m.gpu_model) == q.gpu_models.end())
    return "model " + m.gpu_model + " not accepted";
  if (m.vram_gib < q.min_vram_gib) return "VRAM below the minimum";
  if (m.cuda_version < q.min_cuda_version) return "CUDA version below the minimum";
  if (!q.region.empty() && q.region != p.region) return "region differs";
  if (!q.fabric.empty() && q.fabric != "any" && q.fabric != in.site.fabric) return "fabric differs";
  if (!q.attributes.empty()) return "asks for attested attributes";
  const auto& r = order.providers;
  if (p.bond_ugpn < r.min_bond_ugpn) return "bond below the order's minimum";
  if (p.earned_ugpn < r.min_earned_ugpn) return "earnings below the order's minimum";
  if (p.fault_rate_ppm > r.max_fault_rate_ppm) return "fault rate above the order's maximum";
  if (std::find(r.excluded.begin(), r.excluded.end(), crypto::AddressToString(in.provider)) !=
      r.excluded.end())
    return "provider excluded";
  return "";
}

uint64_t BidPrice(const client::BiddingConfig& policy, const std::string& model,
                  uint64_t max_price_ugpn_per_gpu_hour) {
  auto floor = policy.floor_ugpn_per_gpu_hour.find(model);
  if (floor == policy.floor_ugpn_per_gpu_hour.end()) return 0;
  const uint64_t bp = std::min<uint64_t>(policy.undercut_bp, kBasisPoints);
  // max * (10000 - bp) / 10000 without overflow: split max into its quotient and rest.
  const uint64_t q = max_price_ugpn_per_gpu_hour / kBasisPoints;
  const uint64_t r = max_price_ugpn_per_gpu_hour % kBasisPoints;
  const uint64_t price = q * (kBasisPoints - bp) + r * (kBasisPoints - bp) / kBasisPoints;
  if (price == 0 || price < floor->second) return 0;
  return price;
}

BidPlan PlanBids(const BidderInput& in, const client::BiddingConfig& policy) {
  BidPlan plan;
  std::set<uint64_t> bid_on;
  std::set<uint64_t> withdraw;
  for (const auto& b : in.own_bids) {
    bid_on.insert(b.order_id);
    if (std::find(b.machine_ids.begin(), b.machine_ids.end(), in.machine.machine_id) ==
        b.machine_ids.end())
      continue;
    auto o = std::find_if(in.open_orders.begin(), in.open_orders.end(),
                          [&](const auto& x) { return x.order_id == b.order_id; });
    if (o == in.open_orders.end() || !InWindow(*o, in.now_ms)) continue;  // the ledger refuses
    if (in.draining || o->requirements.gpus_per_machine > in.free_healthy_gpus)
      withdraw.insert(b.bid_id);
  }
  plan.withdraw.assign(withdraw.begin(), withdraw.end());
  if (in.draining || !policy.enabled) return plan;
  for (const auto& o : in.open_orders) {
    if (!InWindow(o, in.now_ms) || bid_on.contains(o.order_id)) continue;
    if (!WhyNotServe(in, o).empty()) continue;
    const uint64_t price = BidPrice(policy, in.machine.gpu_model, o.max_price_ugpn_per_gpu_hour);
    if (price == 0) continue;
    plan.create.push_back({in.provider, o.order_id, price, {in.machine.machine_id}});
  }
  return plan;
}

}  // namespace gpunet::provider
