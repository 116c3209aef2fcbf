// The rules of providers and their inventory (sites, machines, attestations), the
// bond (lock, unbond, claim) and heartbeats; the checks on a provider that every
// message makes (architecture §3, docs/market.md).
#include "market/apply_internal.h"

#include "market/math.h"
#include "market/query.h"

namespace gpunet::market::internal {

namespace {

/// Moves `amount` of the bond into a new unbonding entry.
R<> StartUnbonding(Ctx& c, Provider& p, uint64_t amount) {
  GPUNET_CHECK(amount <= p.bond_ugpn);  // the callers refuse more
  if (p.unbonding.size() >= limits::kUnbondingEntriesMax)
    return Reject(TxCode::kMarketLimitReached,
                  Str(p.unbonding.size()) + " unbondings pending, the limit is " +
                      Str(limits::kUnbondingEntriesMax) + "; claim matured ones first");
  p.bond_ugpn -= amount;
  uint64_t release = c.block.time_ms + c.params.unbonding_delay_ms;
  p.unbonding.push_back(Unbonding{amount, release});
  c.events.push_back(Ev("provider_unbonding", {{"provider", AddrStr(p.owner)},
                                               {"amount_ugpn", Str(amount)},
                                               {"release_ms", Str(release)}}));
  return {};
}

}  // namespace

R<Provider> NeedProvider(const StoreView& view, const codec::Address& owner) {
  return Need<Provider>(view, keys::ProviderKey(owner), TxCode::kMarketUnknownProvider,
                        "no provider " + AddrStr(owner));
}

R<> RequireOwner(const Provider& p, const codec::Address& sender) {
  if (sender != p.owner)
    return Reject(TxCode::kMarketNotOwner, "sender " + AddrStr(sender) +
                                               " is not the owner of provider " + AddrStr(p.owner));
  return {};
}

R<> RequireOperator(const Provider& p, const codec::Address& sender) {
  if (sender != p.owner && sender != p.operator_address)
    return Reject(TxCode::kMarketNotOperator, "sender " + AddrStr(sender) +
                                                  " is neither owner nor operator of provider " +
                                                  AddrStr(p.owner));
  return {};
}

R<> RequireActive(const Provider& p) {
  if (!p.active)
    return Reject(TxCode::kMarketProviderInactive,
                  "provider " + AddrStr(p.owner) + " is deregistered; register again first");
  return {};
}

/// Active and bonded: may offer, bid and be leased.
R<> RequireInBusiness(const Provider& p, const Params& params) {
  GPUNET_TRY(RequireActive(p));
  if (p.bond_ugpn < params.provider_bond_min_ugpn)
    return Reject(TxCode::kMarketBondTooLow, "bond " + Str(p.bond_ugpn) +
                                                 " ugpn is below the minimum of " +
                                                 Str(params.provider_bond_min_ugpn) + " ugpn");
  return {};
}

/// The bond covers the penalties of the open leases plus `extra_penalty` (a lease
/// about to be made): bond >= max(minimum, sum).
R<> RequireCovers(const Provider& p, uint64_t extra_penalty, const Params& params) {
  auto promised = base::CheckedAdd(p.promised_penalties_ugpn, extra_penalty);
  if (!promised || p.bond_ugpn < RequiredBond(*promised, params))
    return Reject(TxCode::kMarketBondUncovered,
                  "provider " + AddrStr(p.owner) + "'s bond " + Str(p.bond_ugpn) +
                      " ugpn does not cover the fault penalties of its open leases (" +
                      Str(p.promised_penalties_ugpn) + " ugpn) plus this lease's (" +
                      Str(extra_penalty) + " ugpn); the owner must bond more");
  return {};
}

/// Within the heartbeat timeout of its last proof of life (heartbeat, LeaseStarted
/// or registration): a provider that went away is not leased.
R<> RequireOnline(const Provider& p, uint64_t now_ms, const Params& params) {
  if (now_ms > p.last_heartbeat_ms + params.heartbeat_timeout_ms)
    return Reject(TxCode::kMarketProviderOffline,
                  "provider " + AddrStr(p.owner) + "'s last heartbeat was at " +
                      Str(p.last_heartbeat_ms) + " ms, more than " +
                      Str(params.heartbeat_timeout_ms) + " ms ago; lease from a live provider");
  return {};
}

/// The order's requirements on the provider (exclusions, bond, earnings from other
/// tenants, fault rate).
R<> RequireQualifies(const Provider& p, const codec::ProviderRequirements& q) {
  if (auto why = ProviderUnqualified(p, q)) return Reject(TxCode::kMarketProviderUnqualified, *why);
  return {};
}

R<> RequireAdmits(const Provider& p, const codec::Address& tenant) {
  if (auto why = TenantNotAdmitted(p, tenant)) return Reject(TxCode::kMarketNotAllowed, *why);
  return {};
}

void MoveHeartbeatDeadline(Store& store, Provider& p, uint64_t deadline_ms) {
  if (p.heartbeat_deadline_ms != 0)
    store.Delete(keys::HeartbeatIndexKey(p.heartbeat_deadline_ms, p.owner));
  p.heartbeat_deadline_ms = deadline_ms;
  if (deadline_ms != 0) store.Put(keys::HeartbeatIndexKey(deadline_ms, p.owner), {});
}

uint64_t HeartbeatDeadline(uint64_t last_ms, const Params& params) {
  return last_ms + params.heartbeat_timeout_ms + 1;  // "longer than the timeout"
}

R<> Do(Ctx& c, const codec::MsgProviderRegister& m) {
  GPUNET_TRY_ASSIGN(auto existing, Load<Provider>(c.store, keys::ProviderKey(c.sender)));
  if (existing && existing->active)
    return Reject(TxCode::kMarketProviderExists,
                  "provider " + AddrStr(c.sender) + " is already registered");
  GPUNET_TRY(Debit(c.store, c.sender, m.bond_ugpn, "bond"));
  // A provider that registers again keeps its history (reputation is not reset).
  Provider p = existing ? *existing : Provider{};
  p.owner = c.sender;
  p.operator_address = m.operator_address;
  p.tenant_api_uri = m.tenant_api_uri;
  p.tls_fingerprint = m.tls_fingerprint;
  p.region = m.region;
  p.payouts = m.payouts;
  p.policy = m.policy;
  p.active = true;
  auto bond = base::CheckedAdd(p.bond_ugpn, m.bond_ugpn);
  GPUNET_CHECK(bond.has_value());  // part of the supply
  p.bond_ugpn = *bond;
  p.registered_ms = c.block.time_ms;
  // Registration counts as a heartbeat: a new provider's offers can be leased at once.
  p.last_heartbeat_ms = c.block.time_ms;
  p.last_heartbeat_height = c.block.height;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("provider_registered", {{"provider", AddrStr(p.owner)},
                                                {"operator", AddrStr(p.operator_address)},
                                                {"bond_ugpn", Str(p.bond_ugpn)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderUpdate& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, c.sender));
  GPUNET_TRY(RequireOwner(p, c.sender));
  GPUNET_TRY(RequireActive(p));
  p.operator_address = m.operator_address;
  p.tenant_api_uri = m.tenant_api_uri;
  p.tls_fingerprint = m.tls_fingerprint;
  p.region = m.region;
  p.payouts = m.payouts;
  p.policy = m.policy;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("provider_updated", {{"provider", AddrStr(p.owner)},
                                             {"operator", AddrStr(p.operator_address)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderDeregister&) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, c.sender));
  GPUNET_TRY(RequireOwner(p, c.sender));
  GPUNET_TRY(RequireActive(p));
  if (p.open_leases > 0)
    return Reject(TxCode::kMarketOpenLeases,
                  "provider has " + Str(p.open_leases) + " open leases; they must end first");
  // Open offers close with the provider (at most kOffersPerProviderMax).
  base::Bytes prefix = keys::KeyBuilder(keys::kProviderOpenOffers).Addr(p.owner);
  GPUNET_TRY_ASSIGN(auto offer_keys,
                    Keys(c.store, prefix, keys::PrefixEnd(prefix), limits::kOffersPerProviderMax));
  for (const auto& k : offer_keys) {
    GPUNET_TRY_ASSIGN(auto entry,
                      Parsed(keys::ParsePartyIndexKey(keys::kProviderOpenOffers, k), k));
    const uint64_t id = entry.id;
    GPUNET_TRY_ASSIGN(
        auto offer, Need<Offer>(c.store, keys::OfferKey(id), TxCode::kMarketUnknownOffer, "offer"));
    offer.open = false;
    Save(c.store, keys::OfferKey(id), offer);
    c.store.Delete(k);
  }
  p.open_offers = 0;
  if (p.bond_ugpn > 0) GPUNET_TRY(StartUnbonding(c, p, p.bond_ugpn));
  p.active = false;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("provider_deregistered", {{"provider", AddrStr(p.owner)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderBond& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, c.sender));
  GPUNET_TRY(RequireOwner(p, c.sender));
  GPUNET_TRY(Debit(c.store, c.sender, m.amount_ugpn, "bond"));
  auto sum = base::CheckedAdd(p.bond_ugpn, m.amount_ugpn);
  GPUNET_CHECK(sum.has_value());  // part of the supply
  p.bond_ugpn = *sum;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("provider_bonded", {{"provider", AddrStr(p.owner)},
                                            {"amount_ugpn", Str(m.amount_ugpn)},
                                            {"bond_ugpn", Str(p.bond_ugpn)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderUnbond& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, c.sender));
  GPUNET_TRY(RequireOwner(p, c.sender));
  if (m.amount_ugpn > p.bond_ugpn)
    return Reject(TxCode::kMarketInsufficientBond,
                  "unbond of " + Str(m.amount_ugpn) + " ugpn, the bond is " + Str(p.bond_ugpn));
  // With open leases the bond stays at RequiredBond (without, nothing is promised);
  // the code says which part of it the unbond would break.
  GPUNET_CHECK(p.open_leases > 0 || p.promised_penalties_ugpn == 0);
  const uint64_t left = p.bond_ugpn - m.amount_ugpn;
  const uint64_t required =
      p.open_leases > 0 ? RequiredBond(p.promised_penalties_ugpn, c.params) : 0;
  if (left < required && left < c.params.provider_bond_min_ugpn)
    return Reject(TxCode::kMarketOpenLeases,
                  "the bond may not drop below the minimum while leases are open");
  if (left < required)
    return Reject(TxCode::kMarketBondUncovered,
                  "the bond may not drop below the fault penalties of the open leases (" +
                      Str(p.promised_penalties_ugpn) + " ugpn); at most " +
                      Str(p.bond_ugpn - p.promised_penalties_ugpn) + " ugpn can be unbonded now");
  GPUNET_TRY(StartUnbonding(c, p, m.amount_ugpn));
  Save(c.store, keys::ProviderKey(p.owner), p);
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderClaimUnbonded&) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, c.sender));
  GPUNET_TRY(RequireOwner(p, c.sender));
  const uint64_t unbonding_before = UnbondingUgpn(p);
  uint64_t total = 0;
  std::vector<Unbonding> rest;
  for (const auto& u : p.unbonding) {
    if (u.release_ms <= c.block.time_ms)
      total += u.amount_ugpn;
    else
      rest.push_back(u);
  }
  if (total == 0)
    return Reject(TxCode::kMarketNothingToClaim,
                  p.unbonding.empty() ? std::string("nothing is unbonding")
                                      : "the next unbonding matures at " +
                                            Str(p.unbonding.front().release_ms) + " ms");
  p.unbonding = std::move(rest);
  GPUNET_CHECK(UnbondingUgpn(p) + total == unbonding_before);  // claimed: what left unbonding
  GPUNET_TRY(Credit(c.store, p.owner, total));
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(
      Ev("provider_unbonded", {{"provider", AddrStr(p.owner)}, {"amount_ugpn", Str(total)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgSiteUpsert& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY(RequireActive(p));
  GPUNET_TRY_ASSIGN(auto existing, Load<Site>(c.store, keys::SiteKey(p.owner, m.site_id)));
  Site site = existing ? *existing : Site{};
  if (!existing) {
    if (p.sites >= limits::kSitesPerProviderMax)
      return Reject(TxCode::kMarketLimitReached,
                    "the provider has " + Str(p.sites) + " sites (kSitesPerProviderMax)");
    ++p.sites;
    Save(c.store, keys::ProviderKey(p.owner), p);
  } else if (site.fabric != m.fabric && site.machines > 0) {
    return Reject(TxCode::kMarketInventoryInUse,
                  "site " + Str(m.site_id) + " has machines; remove them to change its fabric");
  }
  site.fabric = m.fabric;
  site.bandwidth_gbps = m.bandwidth_gbps;
  Save(c.store, keys::SiteKey(p.owner, m.site_id), site);
  c.events.push_back(Ev("site_upserted", {{"provider", AddrStr(p.owner)},
                                          {"site_id", Str(m.site_id)},
                                          {"fabric", Str(static_cast<uint8_t>(m.fabric))}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgMachineUpsert& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY(RequireActive(p));
  GPUNET_TRY_ASSIGN(
      auto site, Need<Site>(c.store, keys::SiteKey(p.owner, m.site_id), TxCode::kMarketUnknownSite,
                            "provider has no site " + Str(m.site_id)));
  GPUNET_TRY_ASSIGN(auto existing, Load<Machine>(c.store, keys::MachineKey(p.owner, m.machine_id)));
  uint32_t leased = 0;
  if (existing) {
    leased = LeasedGpus(*existing);
    if (leased > 0 && (existing->site_id != m.site_id || existing->gpu_model != m.gpu_model ||
                       m.gpu_count < leased))
      return Reject(TxCode::kMarketInventoryInUse,
                    Str(leased) + " GPUs of machine " + Str(m.machine_id) +
                        " are leased: its site and model may not change and its count may not "
                        "drop below that");
    if (existing->site_id != m.site_id) {
      GPUNET_TRY_ASSIGN(auto old_site,
                        Need<Site>(c.store, keys::SiteKey(p.owner, existing->site_id),
                                   TxCode::kMarketUnknownSite, "old site"));
      --old_site.machines;
      Save(c.store, keys::SiteKey(p.owner, existing->site_id), old_site);
      ++site.machines;
    }
  } else {
    if (p.machines >= limits::kMachinesPerProviderMax)
      return Reject(TxCode::kMarketLimitReached,
                    "the provider has " + Str(p.machines) + " machines (kMachinesPerProviderMax)");
    ++p.machines;
    ++site.machines;
    Save(c.store, keys::ProviderKey(p.owner), p);
  }
  Save(c.store, keys::SiteKey(p.owner, m.site_id), site);
  Machine machine{m.site_id,    m.gpu_model,      m.gpu_count,    m.gpu_count - leased, m.vram_gib,
                  m.link,       m.driver_version, m.cuda_version, m.compute_capability, m.cpu_cores,
                  m.memory_gib, m.disk_gib};
  Save(c.store, keys::MachineKey(p.owner, m.machine_id), machine);
  c.events.push_back(Ev("machine_upserted", {{"provider", AddrStr(p.owner)},
                                             {"machine_id", Str(m.machine_id)},
                                             {"gpu_model", m.gpu_model},
                                             {"gpu_count", Str(m.gpu_count)},
                                             {"free_gpus", Str(machine.free_gpus)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgMachineRemove& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY_ASSIGN(auto machine, Need<Machine>(c.store, keys::MachineKey(p.owner, m.machine_id),
                                                TxCode::kMarketUnknownMachine,
                                                "provider has no machine " + Str(m.machine_id)));
  if (LeasedGpus(machine) > 0)
    return Reject(TxCode::kMarketInventoryInUse, Str(LeasedGpus(machine)) + " GPUs of machine " +
                                                     Str(m.machine_id) + " are leased");
  GPUNET_TRY_ASSIGN(auto site, Need<Site>(c.store, keys::SiteKey(p.owner, machine.site_id),
                                          TxCode::kMarketUnknownSite, "site"));
  --site.machines;
  Save(c.store, keys::SiteKey(p.owner, machine.site_id), site);
  --p.machines;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.store.Delete(keys::MachineKey(p.owner, m.machine_id));
  c.events.push_back(
      Ev("machine_removed", {{"provider", AddrStr(p.owner)}, {"machine_id", Str(m.machine_id)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgHeartbeat& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY(RequireActive(p));
  p.last_heartbeat_ms = c.block.time_ms;
  p.last_heartbeat_height = c.block.height;
  if (p.started_leases > 0)
    MoveHeartbeatDeadline(c.store, p, HeartbeatDeadline(c.block.time_ms, c.params));
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("heartbeat", {{"provider", AddrStr(p.owner)},
                                      {"deadline_ms", Str(p.heartbeat_deadline_ms)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgAttest& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  if (m.expires_at_ms <= c.block.time_ms)
    return Reject(TxCode::kMarketInvalidField, "expires_at_ms " + Str(m.expires_at_ms) +
                                                   " is not after the block time " +
                                                   Str(c.block.time_ms));
  if (m.machine_id != 0) {
    GPUNET_TRY_ASSIGN(auto machine,
                      Load<Machine>(c.store, keys::MachineKey(p.owner, m.machine_id)));
    if (!machine)
      return Reject(TxCode::kMarketUnknownMachine, "provider has no machine " + Str(m.machine_id));
  }
  for (const auto& a : m.attributes)
    Save(c.store, keys::AttestationKey(p.owner, m.machine_id, a.key, c.sender),
         Attestation{a.value, m.expires_at_ms});
  c.events.push_back(Ev("attested", {{"provider", AddrStr(p.owner)},
                                     {"machine_id", Str(m.machine_id)},
                                     {"auditor", AddrStr(c.sender)},
                                     {"attributes", Str(m.attributes.size())},
                                     {"expires_at_ms", Str(m.expires_at_ms)}}));
  return {};
}

}  // namespace gpunet::market::internal
