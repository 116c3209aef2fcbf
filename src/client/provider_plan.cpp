#include "client/provider_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <variant>

#include "base/check.h"
#include "client/amount.h"
#include "crypto/address.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;

std::string Gpn(uint64_t ugpn) {
  return FormatGpn(ugpn) + " GPN";
}

base::Result<codec::Address> LedgerAddress(const std::string& text, const std::string& what) {
  auto a = crypto::ParseAddress(text);
  if (!a)
    return base::Fail(ErrorCode::kCorrupt,
                      "the node's answer has " + what + " \"" + text + "\", not a gpn1 address");
  return *a;
}

base::Result<std::vector<codec::Address>> LedgerAddresses(const std::vector<std::string>& texts,
                                                          const std::string& what) {
  std::vector<codec::Address> out;
  for (const auto& t : texts) {
    GPUNET_TRY_ASSIGN(auto a, LedgerAddress(t, what));
    out.push_back(a);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The ledger's provider record as the MsgProviderUpdate that would leave it as is.
base::Result<codec::MsgProviderUpdate> UpdateOfLedger(const ProviderInfo& p) {
  codec::MsgProviderUpdate m;
  GPUNET_TRY_ASSIGN(m.operator_address, LedgerAddress(p.operator_address, "operator"));
  m.tenant_api_uri = p.tenant_api_uri;
  m.tls_fingerprint = p.tls_fingerprint;
  m.region = p.region;
  for (const auto& s : p.payouts) {
    GPUNET_TRY_ASSIGN(auto payee, LedgerAddress(s.payee, "payee"));
    m.payouts.push_back({payee, s.bp});
  }
  GPUNET_TRY_ASSIGN(m.policy.allow, LedgerAddresses(p.policy_allow, "policy.allow"));
  GPUNET_TRY_ASSIGN(m.policy.deny, LedgerAddresses(p.policy_deny, "policy.deny"));
  return m;
}

/// "operator, region": the provider fields `want` changes.
std::string ChangedFields(const codec::MsgProviderUpdate& have,
                          const codec::MsgProviderUpdate& want) {
  std::string out;
  auto add = [&out](bool differs, std::string_view name) {
    if (differs) out += (out.empty() ? "" : ", ") + std::string(name);
  };
  add(have.operator_address != want.operator_address, "operator");
  add(have.tenant_api_uri != want.tenant_api_uri, "tenant_api");
  add(have.tls_fingerprint != want.tls_fingerprint, "tls_fingerprint");
  add(have.region != want.region, "region");
  add(have.payouts != want.payouts, "payouts");
  add(have.policy != want.policy, "policy");
  return out;
}

std::string SiteText(const codec::MsgSiteUpsert& s) {
  return std::string(codec::FabricName(s.fabric)) + ", " + std::to_string(s.bandwidth_gbps) +
         " Gb/s";
}

std::string MachineText(const codec::MsgMachineUpsert& m) {
  return "site " + std::to_string(m.site_id) + ", " + std::to_string(m.gpu_count) + "x " +
         m.gpu_model + " " + std::to_string(m.vram_gib) + " GiB " +
         std::string(codec::GpuLinkName(m.link)) + ", driver " + m.driver_version + ", CUDA " +
         FormatVersion(CudaFromLedger(m.cuda_version)) + ", cc " +
         FormatVersion(ComputeCapabilityFromLedger(m.compute_capability)) + ", " +
         std::to_string(m.cpu_cores) + " cores, " + std::to_string(m.memory_gib) + " GiB RAM, " +
         std::to_string(m.disk_gib) + " GiB disk";
}

std::string OfferText(const codec::MsgOfferCreate& o) {
  return o.gpu_model + " at " + FormatGpn(o.price_ugpn_per_gpu_hour) + " GPN/GPU-h, " +
         (o.site_id == 0 ? "any site" : "site " + std::to_string(o.site_id)) + ", " +
         (o.tenants.empty() ? "public" : std::to_string(o.tenants.size()) + " tenant(s) only") +
         (o.min_hours == 0 ? "" : ", at least " + std::to_string(o.min_hours) + " h") +
         (o.max_hours == 0 ? "" : ", at most " + std::to_string(o.max_hours) + " h");
}

base::Result<codec::MsgMachineUpsert> MachineOfLedger(const MachineInfo& m,
                                                      const codec::Address& provider) {
  codec::MsgMachineUpsert u;
  u.provider = provider;
  u.machine_id = m.machine_id;
  u.site_id = m.site_id;
  u.gpu_model = m.gpu_model;
  u.gpu_count = m.gpu_count;
  u.vram_gib = m.vram_gib;
  if (m.link != "nvlink" && m.link != "pcie")
    return base::Fail(ErrorCode::kCorrupt, "the node's answer has machine " +
                                               std::to_string(m.machine_id) + " link \"" + m.link +
                                               "\"");
  u.link = m.link == "nvlink" ? codec::GpuLink::kNvlink : codec::GpuLink::kPcie;
  u.driver_version = m.driver_version;
  u.cuda_version = m.cuda_version;
  u.compute_capability = m.compute_capability;
  u.cpu_cores = m.cpu_cores;
  u.memory_gib = m.memory_gib;
  u.disk_gib = m.disk_gib;
  return u;
}

/// The ledger's open offer as the MsgOfferCreate that would have made it.
/// Extend with every term MsgOfferCreate gains, else apply replaces offers whose
/// new term it cannot see.
base::Result<codec::MsgOfferCreate> OfferOfLedger(const OfferInfo& o,
                                                  const codec::Address& provider) {
  codec::MsgOfferCreate c;
  c.provider = provider;
  c.gpu_model = o.gpu_model;
  c.site_id = o.site_id;
  c.price_ugpn_per_gpu_hour = o.price_ugpn_per_gpu_hour;
  c.min_hours = o.min_hours;
  c.max_hours = o.max_hours;
  GPUNET_TRY_ASSIGN(c.tenants, LedgerAddresses(o.tenants, "offer tenant"));
  return c;
}

/// The owner's steps: register, or update and top up the bond.
base::Status PlanRegistration(const ProviderConfig& config, const codec::Address& owner,
                              const PartyResolver& resolve, const market::Params& params,
                              const std::optional<ProviderInfo>& ledger, ProviderPlan& plan) {
  if (!ledger) {
    GPUNET_TRY_ASSIGN(auto reg, ProviderRegisterMsg(config, owner, resolve, params));
    plan.diff.push_back("+ register provider " + crypto::AddressToString(owner) + " (operator " +
                        crypto::AddressToString(reg.operator_address) + ", region " + reg.region +
                        ", tenant API " + reg.tenant_api_uri + ", bond " + Gpn(reg.bond_ugpn) +
                        ")");
    plan.bond_ugpn = reg.bond_ugpn;
    plan.steps.push_back({PlanSigner::kOwner, reg});
    return base::Ok();
  }
  if (!ledger->active)
    return base::Fail(ErrorCode::kInvalidArgument,
                      "provider " + ledger->owner +
                          " is deregistered on the ledger; apply does not revive it (claim the "
                          "unbonded bond with `gpunet provider claim`)");
  GPUNET_TRY_ASSIGN(auto want, ProviderUpdateMsg(config, owner, resolve));
  GPUNET_TRY_ASSIGN(auto have, UpdateOfLedger(*ledger));
  if (want != have) {
    plan.diff.push_back("~ provider: " + ChangedFields(have, want) + " differ from the ledger");
    plan.steps.push_back({PlanSigner::kOwner, want});
  }
  if (config.bond_ugpn > ledger->bond_ugpn) {
    plan.bond_ugpn = config.bond_ugpn - ledger->bond_ugpn;
    plan.diff.push_back("+ bond " + Gpn(plan.bond_ugpn) + " (the ledger holds " +
                        Gpn(ledger->bond_ugpn) + ", provider.yaml says " + Gpn(config.bond_ugpn) +
                        ")");
    plan.steps.push_back({PlanSigner::kOwner, codec::MsgProviderBond{plan.bond_ugpn}});
  } else if (config.bond_ugpn < ledger->bond_ugpn) {
    plan.diff.push_back("! bond: the ledger holds " + Gpn(ledger->bond_ugpn) +
                        ", more than provider.yaml's " + Gpn(config.bond_ugpn) +
                        "; apply never unbonds (`gpunet provider unbond` does)");
  }
  return base::Ok();
}

/// Sites and machines: upserts for what is new or differs, removals for machines
/// the file no longer lists.
struct InventoryPlan {
  std::vector<codec::Msg> upserts, removals;
};

base::Result<InventoryPlan> PlanInventory(const ProviderConfig& config, const codec::Address& owner,
                                          const std::optional<ProviderInfo>& ledger,
                                          std::vector<std::string>& diff) {
  std::map<uint32_t, SiteInfo> sites;
  std::map<uint32_t, MachineInfo> machines;
  if (ledger) {
    for (const auto& s : ledger->site_list) sites[s.site_id] = s;
    for (const auto& m : ledger->machine_list) machines[m.machine_id] = m;
  }
  GPUNET_TRY_ASSIGN(auto msgs, InventoryMsgs(config, owner));
  InventoryPlan out;
  std::set<uint32_t> wanted_sites, wanted_machines;
  for (auto& msg : msgs) {
    if (auto* s = std::get_if<codec::MsgSiteUpsert>(&msg)) {
      wanted_sites.insert(s->site_id);
      auto it = sites.find(s->site_id);
      codec::MsgSiteUpsert have{
          owner, s->site_id,
          it == sites.end() ? codec::Fabric::kAny : FabricFromText(it->second.fabric),
          it == sites.end() ? 0 : it->second.bandwidth_gbps};
      if (it != sites.end() && have == *s) continue;
      diff.push_back(it == sites.end()
                         ? "+ site " + std::to_string(s->site_id) + ": " + SiteText(*s)
                         : "~ site " + std::to_string(s->site_id) + ": " + SiteText(have) + " -> " +
                               SiteText(*s));
      out.upserts.push_back(msg);
      continue;
    }
    auto* m = std::get_if<codec::MsgMachineUpsert>(&msg);
    GPUNET_CHECK(m != nullptr);
    wanted_machines.insert(m->machine_id);
    auto it = machines.find(m->machine_id);
    if (it == machines.end()) {
      diff.push_back("+ machine " + std::to_string(m->machine_id) + ": " + MachineText(*m));
      out.upserts.push_back(msg);
      continue;
    }
    GPUNET_TRY_ASSIGN(auto have, MachineOfLedger(it->second, owner));
    if (have == *m) continue;
    uint32_t leased = it->second.gpu_count - std::min(it->second.free_gpus, it->second.gpu_count);
    codec::MsgMachineUpsert grown = have;
    grown.gpu_count = m->gpu_count;
    if (leased > 0 && (grown != *m || m->gpu_count < have.gpu_count)) {
      diff.push_back("! machine " + std::to_string(m->machine_id) + ": " + std::to_string(leased) +
                     " GPU(s) are leased, and while they are only the GPU count may grow; "
                     "apply again once its leases end");
      continue;
    }
    diff.push_back("~ machine " + std::to_string(m->machine_id) + ": " + MachineText(have) +
                   " -> " + MachineText(*m));
    out.upserts.push_back(msg);
  }
  for (const auto& [id, info] : machines) {
    if (wanted_machines.contains(id)) continue;
    if (info.free_gpus < info.gpu_count) {
      diff.push_back("! machine " + std::to_string(id) +
                     " is not in provider.yaml but has leased GPUs; apply removes it once its "
                     "leases end");
      continue;
    }
    diff.push_back("- machine " + std::to_string(id) + ": removed (not in provider.yaml)");
    out.removals.push_back(codec::MsgMachineRemove{owner, id});
  }
  for (const auto& [id, info] : sites)
    if (!wanted_sites.contains(id))
      diff.push_back("! site " + std::to_string(id) +
                     " is not in provider.yaml; the market has no site removal, so it stays (" +
                     std::to_string(info.machines) + " machine(s) on it)");
  return out;
}

/// Offers: each open offer that matches one of the file's (every term) stays;
/// the rest close, and the file's unmatched offers are created. A changed price
/// or tenant list is therefore a close and a create (the ledger has no offer
/// update: leases keep the terms of the offer they came from).
base::Status PlanOffers(const ProviderConfig& config, const codec::Address& owner,
                        const PartyResolver& resolve, const std::optional<ProviderInfo>& ledger,
                        std::vector<codec::Msg>& closes, std::vector<codec::Msg>& creates,
                        std::vector<std::string>& diff) {
  GPUNET_TRY_ASSIGN(auto wanted, OfferMsgs(config, owner, resolve));
  std::vector<bool> kept(wanted.size(), false);
  std::vector<std::pair<uint64_t, codec::MsgOfferCreate>> closing;
  if (ledger) {
    for (const auto& o : ledger->offer_list) {
      if (!o.open) continue;
      GPUNET_TRY_ASSIGN(auto have, OfferOfLedger(o, owner));
      bool matched = false;
      for (size_t i = 0; i < wanted.size() && !matched; ++i)
        if (!kept[i] && std::get<codec::MsgOfferCreate>(wanted[i]) == have)
          kept[i] = matched = true;
      if (!matched) closing.emplace_back(o.offer_id, have);
    }
  }
  for (const auto& [id, have] : closing) {
    diff.push_back("- offer " + std::to_string(id) + ": " + OfferText(have) +
                   " (closed; its open leases are unaffected)");
    closes.push_back(codec::MsgOfferClose{owner, id});
  }
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (kept[i]) continue;
    const auto& want = std::get<codec::MsgOfferCreate>(wanted[i]);
    std::string replaces;
    for (const auto& [id, have] : closing)
      if (have.gpu_model == want.gpu_model && have.site_id == want.site_id)
        replaces = " (replaces offer " + std::to_string(id) + ")";
    diff.push_back("+ offer: " + OfferText(want) + replaces);
    creates.push_back(wanted[i]);
  }
  return base::Ok();
}

}  // namespace

std::vector<codec::Msg> ProviderPlan::MsgsOf(PlanSigner signer) const {
  std::vector<codec::Msg> out;
  for (const auto& s : steps)
    if (s.signer == signer) out.push_back(s.msg);
  return out;
}

base::Result<ProviderPlan> PlanProvider(const ProviderConfig& config, const codec::Address& owner,
                                        const PartyResolver& resolve, const market::Params& params,
                                        const std::optional<ProviderInfo>& ledger) {
  ProviderPlan plan;
  GPUNET_TRY(PlanRegistration(config, owner, resolve, params, ledger, plan));
  GPUNET_TRY_ASSIGN(auto inventory, PlanInventory(config, owner, ledger, plan.diff));
  std::vector<codec::Msg> closes, creates;
  GPUNET_TRY(PlanOffers(config, owner, resolve, ledger, closes, creates, plan.diff));
  for (auto* group : {&closes, &inventory.upserts, &inventory.removals, &creates})
    for (auto& m : *group) plan.steps.push_back({PlanSigner::kOperator, std::move(m)});
  GPUNET_CHECK(plan.steps.empty() || !plan.diff.empty());
  return plan;
}

base::Result<PlanFees> EstimatePlanFees(const ProviderPlan& plan, const FeeSchedule& schedule,
                                        std::string_view chain_id) {
  PlanFees fees;
  for (auto signer : {PlanSigner::kOwner, PlanSigner::kOperator}) {
    uint64_t& total = signer == PlanSigner::kOwner ? fees.owner_ugpn : fees.operator_ugpn;
    for (const auto& chunk : ChunkMsgs(plan.MsgsOf(signer))) {
      GPUNET_TRY_ASSIGN(uint64_t fee, MarketTxFee(schedule, chain_id, chunk, ""));
      total += fee;
    }
  }
  return fees;
}

}  // namespace gpunet::client
