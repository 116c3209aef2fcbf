#include "provider/bidder.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "client/market_client.h"
#include "client/market_tx.h"
#include "crypto/address.h"
#include "market/query.h"
#include "provider/machine_record.h"

namespace gpunet::provider {

namespace {

constexpr uint64_t kBasisPoints = 10'000;

bool InWindow(const client::OrderInfo& o, uint64_t now_ms) {
  return o.state == "open" && o.window_end_ms > now_ms;
}

}  // namespace

std::string WhyNotServe(const BidderInput& in, const client::OrderInfo& order) {
  const auto& asked = order.requirements;
  if (asked.machines != 1) return "asks for " + std::to_string(asked.machines) + " machines";
  if (!asked.attributes.empty()) return "asks for attested attributes";
  // The ledger's rules (market/query.h) on the records as the node showed them.
  codec::Requirements q;
  q.gpu_models = asked.gpu_models;
  std::sort(q.gpu_models.begin(), q.gpu_models.end());
  q.gpus_per_machine = asked.gpus_per_machine;
  q.machines = asked.machines;
  q.min_vram_gib = asked.min_vram_gib;
  q.region = asked.region;
  q.fabric = client::FabricFromText(asked.fabric);
  q.same_site = asked.same_site;
  q.min_cuda_version = asked.min_cuda_version;
  market::Machine machine;
  machine.site_id = in.machine.site_id;
  machine.gpu_model = in.machine.gpu_model;
  machine.gpu_count = in.machine.gpu_count;
  machine.vram_gib = in.machine.vram_gib;
  machine.cuda_version = in.machine.cuda_version;
  market::Provider provider;
  provider.owner = in.provider;
  provider.region = in.provider_info.region;
  provider.bond_ugpn = in.provider_info.bond_ugpn;
  provider.earned_ugpn = in.provider_info.earned_ugpn;
  provider.leases_completed = in.provider_info.leases_completed;
  provider.faults = in.provider_info.faults;
  const auto addresses = [](const std::vector<std::string>& texts) {
    std::vector<codec::Address> out;
    for (const auto& text : texts)
      if (auto a = crypto::ParseAddress(text)) out.push_back(*a);
    std::sort(out.begin(), out.end());
    return out;
  };
  provider.policy.allow = addresses(in.provider_info.policy_allow);
  provider.policy.deny = addresses(in.provider_info.policy_deny);
  const auto tenant = crypto::ParseAddress(order.tenant);
  if (!tenant) return "tenant " + order.tenant + " is not an address";
  codec::ProviderRequirements r;
  r.min_bond_ugpn = order.providers.min_bond_ugpn;
  r.min_earned_ugpn = order.providers.min_earned_ugpn;
  r.max_fault_rate_ppm = order.providers.max_fault_rate_ppm;
  r.excluded = addresses(order.providers.excluded);
  const uint32_t id = in.machine.machine_id;
  for (auto why :
       {market::RegionMismatch(q, provider), market::MachineMismatch(q, id, machine),
        market::FabricMismatch(q, id, client::FabricFromText(in.site.fabric)),
        market::TenantNotAdmitted(provider, *tenant), market::ProviderUnqualified(provider, r)})
    if (why) return *why;
  // This daemon's own: the GPUs must be free and healthy now, not only on the ledger.
  if (q.gpus_per_machine > in.free_healthy_gpus) return "not enough free healthy GPUs";
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

uint32_t FreeHealthyGpus(const nlohmann::json& engine_status, uint32_t sold) {
  uint32_t free = 0;
  uint32_t leased = 0;
  for (const auto& g : engine_status.value("gpus", nlohmann::json::array())) {
    if (g.value("lease_id", uint64_t{0}) != 0) {
      ++leased;
    } else if (g.value("healthy", false)) {
      ++free;
    }
  }
  const uint32_t sellable = sold > leased ? sold - leased : 0;
  return std::min(free, sellable);
}

bool Draining(const std::string& state_dir) {
  std::error_code ec;
  return std::filesystem::exists(state_dir + "/draining", ec);
}

base::Result<std::vector<client::BidInfo>> OwnBids::Update(
    const std::vector<client::OrderInfo>& open_orders, const Fetch& fetch) {
  std::map<uint64_t, Seen> seen;
  std::vector<client::BidInfo> own;
  for (const auto& o : open_orders) {
    auto it = m_seen.find(o.order_id);
    if (o.bids == 0) {
      seen[o.order_id] = {};
    } else if (it != m_seen.end() && it->second.bids == o.bids) {
      seen[o.order_id] = std::move(it->second);
    } else {
      auto read = fetch(o.order_id);
      if (!read) {
        for (auto& [id, s] : seen) m_seen[id] = std::move(s);
        return std::unexpected(read.error());
      }
      seen[o.order_id] = {o.bids, std::move(*read)};
    }
    const auto& mine = seen[o.order_id].own;
    own.insert(own.end(), mine.begin(), mine.end());
  }
  m_seen = std::move(seen);
  return own;
}

Bidder::Bidder(Options options, ChainPort& chain, std::function<void(std::string_view)> log)
    : m_options(std::move(options)), m_chain(chain), m_log(std::move(log)) {}

base::Result<BidderInput> Bidder::Read(const nlohmann::json& engine_status) {
  client::MarketClient market(m_options.node_url);
  BidderInput in;
  in.provider = m_options.provider;
  const std::string me = crypto::AddressToString(m_options.provider);
  client::MarketAnswer<client::ProviderInfo> p;
  GPUNET_TRY_ASSIGN(p, market.Provider(me));
  in.provider_info = p.value;
  in.now_ms = p.time_ms;
  bool found = false;
  for (const auto& m : p.value.machine_list)
    if (m.machine_id == m_options.machine_id) {
      in.machine = m;
      found = true;
    }
  if (!found)
    return base::Fail(base::ErrorCode::kNotFound, "machine " +
                                                      std::to_string(m_options.machine_id) +
                                                      " is not on the ledger (provider apply)");
  for (const auto& s : p.value.site_list)
    if (s.site_id == in.machine.site_id) in.site = s;
  in.free_healthy_gpus = FreeHealthyGpus(engine_status, in.machine.gpu_count);
  in.draining = Draining(m_options.state_dir);
  if (!m_options.policy.enabled && !in.draining) return in;
  client::MarketListQuery query;
  query.limit = 1000;
  for (;;) {
    client::MarketPage<client::OrderInfo> page;
    GPUNET_TRY_ASSIGN(page, market.Orders(query));
    for (auto& o : page.entries)
      if (o.state == "open") in.open_orders.push_back(std::move(o));
    if (!page.next) break;
    query.after = page.next;
  }
  GPUNET_TRY_ASSIGN(
      in.own_bids,
      m_own_bids.Update(in.open_orders,
                        [&](uint64_t order_id) -> base::Result<std::vector<client::BidInfo>> {
                          client::MarketAnswer<client::OrderBids> bids;
                          GPUNET_TRY_ASSIGN(bids, market.Bids(order_id));
                          std::vector<client::BidInfo> own;
                          for (auto& b : bids.value.bids)
                            if (b.provider == me) own.push_back(std::move(b));
                          return own;
                        }));
  return in;
}

void Bidder::Send(const codec::Msg& msg, const std::string& what) {
  auto sent = m_chain.Send({msg});
  std::string why;
  if (!sent) {
    why = sent.error().message;
  } else if (sent->code != 0) {
    why = sent->code_name + ": " + sent->message;
  }
  if (why.empty()) {
    m_log(what);
    m_logged.erase(what);
  } else if (m_logged.insert(what).second) {
    m_log(what + " failed: " + why);
  }
}

base::Status Bidder::Reconcile(const nlohmann::json& engine_status) {
  auto read = Read(engine_status);
  if (!read) {
    if (m_logged.insert("read").second) m_log("bidding: " + read.error().message);
    return std::unexpected(read.error());
  }
  m_logged.erase("read");
  BidderInput in = std::move(*read);
  if (in.draining && !m_said_draining)
    m_log("draining (" + m_options.state_dir + "/draining): no new bids, its open bids withdrawn");
  m_said_draining = in.draining;
  // A lease that still arrives while draining (an award or an offer lease in flight)
  // is started: the ledger already holds the tenant's deposit. It is logged.
  for (const auto& l : engine_status.value("leases", nlohmann::json::array())) {
    const uint64_t id = l.value("lease_id", uint64_t{0});
    if (m_leases_seen.insert(id).second && in.draining && !m_first_pass)
      m_log("lease " + std::to_string(id) +
            " arrived while draining: it is started (the ledger holds the tenant's deposit)");
  }
  m_first_pass = false;
  if (m_options.machine_config) {
    uint32_t healthy = 0, leased = 0;
    for (const auto& g : engine_status.value("gpus", nlohmann::json::array())) {
      healthy += g.value("healthy", false) ? 1 : 0;
      leased += g.value("lease_id", uint64_t{0}) != 0 ? 1 : 0;
    }
    if (auto m =
            PlanMachineRecord(*m_options.machine_config, healthy, leased, in.machine.gpu_count))
      Send(*m, "machine " + std::to_string(m->machine_id) + ": gpu_count " +
                   std::to_string(in.machine.gpu_count) + " -> " + std::to_string(m->gpu_count) +
                   " on the ledger (" + std::to_string(healthy) + " healthy, " +
                   std::to_string(leased) + " leased)");
  }
  const BidPlan plan = PlanBids(in, m_options.policy);
  // What is sent changes the order's bids: they are read again next time.
  for (uint64_t id : plan.withdraw) {
    for (const auto& b : in.own_bids)
      if (b.bid_id == id) m_own_bids.Forget(b.order_id);
    Send(codec::MsgBidWithdraw{id}, "bid " + std::to_string(id) + ": withdrawn");
  }
  for (const auto& b : plan.create) {
    m_own_bids.Forget(b.order_id);
    Send(b, "order " + std::to_string(b.order_id) + ": bid " +
                std::to_string(b.price_ugpn_per_gpu_hour) + " ugpn/GPU-hour with machine " +
                std::to_string(m_options.machine_id));
  }
  return {};
}

}  // namespace gpunet::provider
