#include "client/market_answers.h"

#include <algorithm>
#include <utility>

#include "base/check.h"
#include "client/json_fields.h"
#include "client/market_tx.h"
#include "crypto/address.h"

namespace gpunet::client {
namespace {

using Json = nlohmann::json;

/// The list at `name` of gpn1 addresses (`addresses`) or plain strings.
base::Result<std::vector<std::string>> StrList(const JsonFields& f, std::string_view name,
                                               bool addresses) {
  const Json* list = nullptr;
  GPUNET_TRY_ASSIGN(list, f.Array(name));
  std::vector<std::string> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& v = (*list)[i];
    const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    if (!v.is_string()) return f.Bad(item, "is not a string");
    std::string s = v.get<std::string>();
    if (addresses && !crypto::ParseAddress(s)) return f.Bad(item, "is not a gpn1 address");
    out.push_back(std::move(s));
  }
  return out;
}

/// Each object of the list at `name`, parsed by `parse`.
template <class T, class Parse>
base::Result<std::vector<T>> ObjectList(const JsonFields& f, std::string_view name,
                                        const Parse& parse) {
  const Json* list = nullptr;
  GPUNET_TRY_ASSIGN(list, f.Array(name));
  std::vector<T> out;
  out.reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    JsonFields item = f.Item((*list)[i], name, i);
    GPUNET_TRY(item.IsObject());
    T v;
    GPUNET_TRY_ASSIGN(v, parse(item));
    out.push_back(std::move(v));
  }
  return out;
}

base::Result<PayoutShare> ParsePayout(const JsonFields& f) {
  PayoutShare p;
  GPUNET_TRY_ASSIGN(p.payee, f.Address("payee"));
  GPUNET_TRY_ASSIGN(p.bp, f.Number<uint32_t>("bp"));
  return p;
}

base::Result<UnbondingInfo> ParseUnbonding(const JsonFields& f) {
  UnbondingInfo u;
  GPUNET_TRY_ASSIGN(u.amount_ugpn, f.Ugpn("amount_ugpn"));
  GPUNET_TRY_ASSIGN(u.release_ms, f.Number<uint64_t>("release_ms"));
  return u;
}

base::Result<SiteInfo> ParseSite(const JsonFields& f) {
  SiteInfo s;
  GPUNET_TRY_ASSIGN(s.site_id, f.Number<uint32_t>("site_id"));
  GPUNET_TRY_ASSIGN(s.fabric, f.Str("fabric"));
  GPUNET_TRY_ASSIGN(s.bandwidth_gbps, f.Number<uint32_t>("bandwidth_gbps"));
  GPUNET_TRY_ASSIGN(s.machines, f.Number<uint32_t>("machines"));
  return s;
}

base::Result<MachineInfo> ParseMachine(const JsonFields& f) {
  MachineInfo m;
  GPUNET_TRY_ASSIGN(m.machine_id, f.Number<uint32_t>("machine_id"));
  GPUNET_TRY_ASSIGN(m.site_id, f.Number<uint32_t>("site_id"));
  GPUNET_TRY_ASSIGN(m.gpu_model, f.Str("gpu_model"));
  GPUNET_TRY_ASSIGN(m.gpu_count, f.Number<uint32_t>("gpu_count"));
  GPUNET_TRY_ASSIGN(m.free_gpus, f.Number<uint32_t>("free_gpus"));
  GPUNET_TRY_ASSIGN(m.vram_gib, f.Number<uint32_t>("vram_gib"));
  GPUNET_TRY_ASSIGN(m.link, f.Str("link"));
  GPUNET_TRY_ASSIGN(m.driver_version, f.Str("driver_version"));
  GPUNET_TRY_ASSIGN(m.cuda_version, f.Number<uint32_t>("cuda_version"));
  GPUNET_TRY_ASSIGN(m.compute_capability, f.Number<uint32_t>("compute_capability"));
  GPUNET_TRY_ASSIGN(m.cpu_cores, f.Number<uint32_t>("cpu_cores"));
  GPUNET_TRY_ASSIGN(m.memory_gib, f.Number<uint32_t>("memory_gib"));
  GPUNET_TRY_ASSIGN(m.disk_gib, f.Number<uint32_t>("disk_gib"));
  return m;
}

base::Result<OfferClass> ParseOfferClass(const JsonFields& f) {
  OfferClass c;
  GPUNET_TRY_ASSIGN(c.region, f.Str("region"));
  GPUNET_TRY_ASSIGN(c.provider_active, f.Bool("provider_active"));
  GPUNET_TRY_ASSIGN(c.fault_rate_ppm, f.Number<uint32_t>("fault_rate_ppm"));
  GPUNET_TRY_ASSIGN(c.machines, f.Number<uint32_t>("machines"));
  GPUNET_TRY_ASSIGN(c.sites, f.Number<uint32_t>("sites"));
  GPUNET_TRY_ASSIGN(c.gpus_per_machine_max, f.Number<uint32_t>("gpus_per_machine_max"));
  GPUNET_TRY_ASSIGN(c.free_gpus, f.Number<uint64_t>("free_gpus"));
  GPUNET_TRY_ASSIGN(c.vram_gib_min, f.Number<uint32_t>("vram_gib_min"));
  GPUNET_TRY_ASSIGN(c.cuda_version_min, f.Number<uint32_t>("cuda_version_min"));
  GPUNET_TRY_ASSIGN(c.compute_capability_min, f.Number<uint32_t>("compute_capability_min"));
  GPUNET_TRY_ASSIGN(c.driver_version_min, f.Str("driver_version_min"));
  GPUNET_TRY_ASSIGN(c.link, f.Str("link"));
  GPUNET_TRY_ASSIGN(c.fabric, f.Str("fabric"));
  return c;
}

/// An offer; `with_class`: with the class summary GET /market/offer(s) add.
base::Result<OfferInfo> ParseOffer(const JsonFields& f, bool with_class) {
  OfferInfo o;
  GPUNET_TRY_ASSIGN(o.offer_id, f.Number<uint64_t>("offer_id"));
  GPUNET_TRY_ASSIGN(o.provider, f.Address("provider"));
  GPUNET_TRY_ASSIGN(o.gpu_model, f.Str("gpu_model"));
  GPUNET_TRY_ASSIGN(o.site_id, f.Number<uint32_t>("site_id"));
  GPUNET_TRY_ASSIGN(o.price_ugpn_per_gpu_hour, f.Ugpn("price_ugpn_per_gpu_hour"));
  GPUNET_TRY_ASSIGN(o.tenants, StrList(f, "tenants", true));
  GPUNET_TRY_ASSIGN(o.is_private, f.Bool("private"));
  GPUNET_TRY_ASSIGN(o.open, f.Bool("open"));
  GPUNET_TRY_ASSIGN(o.created_ms, f.Number<uint64_t>("created_ms"));
  GPUNET_TRY_ASSIGN(o.min_hours, f.Number<uint32_t>("min_hours"));
  GPUNET_TRY_ASSIGN(o.max_hours, f.Number<uint32_t>("max_hours"));
  if (with_class) {
    OfferClass c;
    GPUNET_TRY_ASSIGN(c, ParseOfferClass(f));
    o.machine_class = std::move(c);
  }
  return o;
}

/// Counts, reputation and money of a provider (a list entry has these only).
base::Status ParseProviderCounts(const JsonFields& f, ProviderInfo& p) {
  GPUNET_TRY_ASSIGN(p.registered_ms, f.Number<uint64_t>("registered_ms"));
  GPUNET_TRY_ASSIGN(p.last_heartbeat_ms, f.Number<uint64_t>("last_heartbeat_ms"));
  GPUNET_TRY_ASSIGN(p.last_heartbeat_height, f.Number<uint64_t>("last_heartbeat_height"));
  GPUNET_TRY_ASSIGN(p.heartbeat_deadline_ms, f.Number<uint64_t>("heartbeat_deadline_ms"));
  GPUNET_TRY_ASSIGN(p.sites, f.Number<uint32_t>("sites"));
  GPUNET_TRY_ASSIGN(p.machines, f.Number<uint32_t>("machines"));
  GPUNET_TRY_ASSIGN(p.open_offers, f.Number<uint32_t>("open_offers"));
  GPUNET_TRY_ASSIGN(p.open_leases, f.Number<uint32_t>("open_leases"));
  GPUNET_TRY_ASSIGN(p.started_leases, f.Number<uint32_t>("started_leases"));
  GPUNET_TRY_ASSIGN(p.leases_completed, f.Number<uint64_t>("leases_completed"));
  GPUNET_TRY_ASSIGN(p.faults, f.Number<uint64_t>("faults"));
  GPUNET_TRY_ASSIGN(p.fault_rate_ppm, f.Number<uint32_t>("fault_rate_ppm"));
  GPUNET_TRY_ASSIGN(p.penalties_paid_ugpn, f.Ugpn("penalties_paid_ugpn"));
  GPUNET_TRY_ASSIGN(p.penalties_unpaid_ugpn, f.Ugpn("penalties_unpaid_ugpn"));
  GPUNET_TRY_ASSIGN(p.earned_ugpn, f.Ugpn("earned_ugpn"));
  GPUNET_TRY_ASSIGN(p.promised_penalties_ugpn, f.Ugpn("promised_penalties_ugpn"));
  GPUNET_TRY_ASSIGN(p.required_bond_ugpn, f.Ugpn("required_bond_ugpn"));
  return base::Ok();
}

/// A provider; `details`: with its sites, machines and open offers (GET
/// /market/provider/<owner>).
base::Result<ProviderInfo> ParseProvider(const JsonFields& f, bool details) {
  ProviderInfo p;
  GPUNET_TRY_ASSIGN(p.owner, f.Address("owner"));
  GPUNET_TRY_ASSIGN(p.operator_address, f.Address("operator"));
  GPUNET_TRY_ASSIGN(p.tenant_api_uri, f.Str("tenant_api_uri"));
  GPUNET_TRY_ASSIGN(p.tls_fingerprint, f.Hash("tls_fingerprint"));
  GPUNET_TRY_ASSIGN(p.region, f.Str("region"));
  GPUNET_TRY_ASSIGN(p.payouts, ObjectList<PayoutShare>(f, "payouts", ParsePayout));
  const Json* policy = nullptr;
  GPUNET_TRY_ASSIGN(policy, f.Object("policy"));
  JsonFields fp = f.Sub(*policy, "policy");
  GPUNET_TRY_ASSIGN(p.policy_allow, StrList(fp, "allow", true));
  GPUNET_TRY_ASSIGN(p.policy_deny, StrList(fp, "deny", true));
  GPUNET_TRY_ASSIGN(p.active, f.Bool("active"));
  GPUNET_TRY_ASSIGN(p.bond_ugpn, f.Ugpn("bond_ugpn"));
  GPUNET_TRY_ASSIGN(p.unbonding, ObjectList<UnbondingInfo>(f, "unbonding", ParseUnbonding));
  GPUNET_TRY(ParseProviderCounts(f, p));
  if (details) {
    GPUNET_TRY_ASSIGN(p.site_list, ObjectList<SiteInfo>(f, "site_list", ParseSite));
    GPUNET_TRY_ASSIGN(p.machine_list, ObjectList<MachineInfo>(f, "machine_list", ParseMachine));
    GPUNET_TRY_ASSIGN(p.offer_list, ObjectList<OfferInfo>(f, "offer_list", [](const JsonFields& o) {
                        return ParseOffer(o, false);
                      }));
  }
  return p;
}

base::Result<OrderRequirementsInfo> ParseRequirements(const JsonFields& f) {
  OrderRequirementsInfo q;
  GPUNET_TRY_ASSIGN(q.gpu_models, StrList(f, "gpu_models", false));
  GPUNET_TRY_ASSIGN(q.gpus_per_machine, f.Number<uint32_t>("gpus_per_machine"));
  GPUNET_TRY_ASSIGN(q.machines, f.Number<uint32_t>("machines"));
  GPUNET_TRY_ASSIGN(q.min_vram_gib, f.Number<uint32_t>("min_vram_gib"));
  GPUNET_TRY_ASSIGN(q.region, f.Str("region"));
  GPUNET_TRY_ASSIGN(q.fabric, f.Str("fabric"));
  GPUNET_TRY_ASSIGN(q.same_site, f.Bool("same_site"));
  GPUNET_TRY_ASSIGN(q.min_cuda_version, f.Number<uint32_t>("min_cuda_version"));
  GPUNET_TRY_ASSIGN(q.auditors, StrList(f, "auditors", true));
  const Json* attributes = nullptr;
  GPUNET_TRY_ASSIGN(attributes, f.Object("attributes"));
  for (const auto& [key, value] : attributes->items()) {
    if (!value.is_string()) return f.Bad("attributes." + key, "is not a string");
    q.attributes.emplace_back(key, value.get<std::string>());
  }
  return q;
}

base::Result<OrderProvidersInfo> ParseOrderProviders(const JsonFields& f) {
  OrderProvidersInfo p;
  GPUNET_TRY_ASSIGN(p.min_bond_ugpn, f.Ugpn("min_bond_ugpn"));
  GPUNET_TRY_ASSIGN(p.min_earned_ugpn, f.Ugpn("min_earned_ugpn"));
  GPUNET_TRY_ASSIGN(p.max_fault_rate_ppm, f.Number<uint32_t>("max_fault_rate_ppm"));
  GPUNET_TRY_ASSIGN(p.excluded, StrList(f, "excluded", true));
  return p;
}

base::Result<OrderInfo> ParseOrder(const JsonFields& f) {
  OrderInfo o;
  GPUNET_TRY_ASSIGN(o.order_id, f.Number<uint64_t>("order_id"));
  GPUNET_TRY_ASSIGN(o.tenant, f.Address("tenant"));
  const Json* requirements = nullptr;
  GPUNET_TRY_ASSIGN(requirements, f.Object("requirements"));
  GPUNET_TRY_ASSIGN(o.requirements, ParseRequirements(f.Sub(*requirements, "requirements")));
  GPUNET_TRY_ASSIGN(o.max_price_ugpn_per_gpu_hour, f.Ugpn("max_price_ugpn_per_gpu_hour"));
  GPUNET_TRY_ASSIGN(o.deposit_ugpn, f.Ugpn("deposit_ugpn"));
  GPUNET_TRY_ASSIGN(o.manifest_hash, f.Hash("manifest_hash"));
  GPUNET_TRY_ASSIGN(o.created_ms, f.Number<uint64_t>("created_ms"));
  GPUNET_TRY_ASSIGN(o.window_end_ms, f.Number<uint64_t>("window_end_ms"));
  GPUNET_TRY_ASSIGN(o.state, f.Str("state"));
  GPUNET_TRY_ASSIGN(o.bids, f.Number<uint32_t>("bids"));
  GPUNET_TRY_ASSIGN(o.lease_id, f.Number<uint64_t>("lease_id"));
  const Json* providers = nullptr;
  GPUNET_TRY_ASSIGN(providers, f.Object("providers"));
  GPUNET_TRY_ASSIGN(o.providers, ParseOrderProviders(f.Sub(*providers, "providers")));
  return o;
}

base::Result<BidInfo> ParseBid(const JsonFields& f) {
  BidInfo b;
  GPUNET_TRY_ASSIGN(b.bid_id, f.Number<uint64_t>("bid_id"));
  GPUNET_TRY_ASSIGN(b.order_id, f.Number<uint64_t>("order_id"));
  GPUNET_TRY_ASSIGN(b.provider, f.Address("provider"));
  GPUNET_TRY_ASSIGN(b.price_ugpn_per_gpu_hour, f.Ugpn("price_ugpn_per_gpu_hour"));
  const Json* machines = nullptr;
  GPUNET_TRY_ASSIGN(machines, f.Array("machine_ids"));
  for (size_t i = 0; i < machines->size(); ++i) {
    const Json& m = (*machines)[i];
    // Parsed JSON holds non-negative integers as unsigned; built JSON may hold them signed.
    const bool id = m.is_number_unsigned() || (m.is_number_integer() && m.get<int64_t>() >= 0);
    if (!id || m.get<uint64_t>() > UINT32_MAX)
      return f.Bad("machine_ids[" + std::to_string(i) + "]", "is not a machine id (a number)");
    b.machine_ids.push_back(m.get<uint32_t>());
  }
  GPUNET_TRY_ASSIGN(b.created_ms, f.Number<uint64_t>("created_ms"));
  return b;
}

base::Result<AllocationInfo> ParseAllocation(const JsonFields& f) {
  AllocationInfo a;
  GPUNET_TRY_ASSIGN(a.machine_id, f.Number<uint32_t>("machine_id"));
  GPUNET_TRY_ASSIGN(a.gpus, f.Number<uint32_t>("gpus"));
  return a;
}

/// The money and times of a lease (the second half of its fields).
base::Status ParseLeaseMoney(const JsonFields& f, LeaseInfo& l) {
  GPUNET_TRY_ASSIGN(l.created_ms, f.Number<uint64_t>("created_ms"));
  GPUNET_TRY_ASSIGN(l.start_deadline_ms, f.Number<uint64_t>("start_deadline_ms"));
  GPUNET_TRY_ASSIGN(l.started_ms, f.Number<uint64_t>("started_ms"));
  GPUNET_TRY_ASSIGN(l.paid_until_ms, f.Number<uint64_t>("paid_until_ms"));
  GPUNET_TRY_ASSIGN(l.deposited_ugpn, f.Ugpn("deposited_ugpn"));
  GPUNET_TRY_ASSIGN(l.escrow_ugpn, f.Ugpn("escrow_ugpn"));
  GPUNET_TRY_ASSIGN(l.paid_ugpn, f.Ugpn("paid_ugpn"));
  GPUNET_TRY_ASSIGN(l.refunded_ugpn, f.Ugpn("refunded_ugpn"));
  GPUNET_TRY_ASSIGN(l.penalty_ugpn, f.Ugpn("penalty_ugpn"));
  GPUNET_TRY_ASSIGN(l.closed_ms, f.Number<uint64_t>("closed_ms"));
  GPUNET_TRY_ASSIGN(l.as_of_ms, f.Number<uint64_t>("as_of_ms"));
  GPUNET_TRY_ASSIGN(l.accrued_ugpn, f.Ugpn("accrued_ugpn"));
  GPUNET_TRY_ASSIGN(l.withdrawable_ugpn, f.Ugpn("withdrawable_ugpn"));
  return base::Ok();
}

base::Result<LeaseInfo> ParseLease(const JsonFields& f) {
  LeaseInfo l;
  GPUNET_TRY_ASSIGN(l.lease_id, f.Number<uint64_t>("lease_id"));
  GPUNET_TRY_ASSIGN(l.tenant, f.Address("tenant"));
  GPUNET_TRY_ASSIGN(l.provider, f.Address("provider"));
  GPUNET_TRY_ASSIGN(l.offer_id, f.Number<uint64_t>("offer_id"));
  GPUNET_TRY_ASSIGN(l.order_id, f.Number<uint64_t>("order_id"));
  GPUNET_TRY_ASSIGN(l.allocations, ObjectList<AllocationInfo>(f, "allocations", ParseAllocation));
  GPUNET_TRY_ASSIGN(l.gpus, f.Number<uint64_t>("gpus"));
  GPUNET_TRY_ASSIGN(l.price_ugpn_per_gpu_hour, f.Ugpn("price_ugpn_per_gpu_hour"));
  GPUNET_TRY_ASSIGN(l.rate_ugpn_per_hour, f.Ugpn("rate_ugpn_per_hour"));
  GPUNET_TRY_ASSIGN(l.manifest_hash, f.Hash("manifest_hash"));
  GPUNET_TRY_ASSIGN(l.state, f.Str("state"));
  GPUNET_TRY_ASSIGN(l.end, f.Str("end"));
  GPUNET_TRY_ASSIGN(l.min_hours, f.Number<uint32_t>("min_hours"));
  GPUNET_TRY_ASSIGN(l.max_hours, f.Number<uint32_t>("max_hours"));
  GPUNET_TRY(ParseLeaseMoney(f, l));
  return l;
}

/// Every market answer's envelope: the committed height and block time it was read at.
template <class Answer>
base::Status ParseEnvelope(const JsonFields& f, Answer& a) {
  GPUNET_TRY(f.IsObject());
  GPUNET_TRY_ASSIGN(a.height, f.Number<uint64_t>("height"));
  GPUNET_TRY_ASSIGN(a.time_ms, f.Number<uint64_t>("time_ms"));
  return base::Ok();
}

/// An answer holding one record under `name`, parsed by `parse`.
template <class T, class Parse>
base::Result<MarketAnswer<T>> AnswerOf(const Json& j, const std::string& what,
                                       std::string_view name, const Parse& parse) {
  JsonFields f(j, what);
  MarketAnswer<T> a;
  GPUNET_TRY(ParseEnvelope(f, a));
  const Json* record = nullptr;
  GPUNET_TRY_ASSIGN(record, f.Object(name));
  GPUNET_TRY_ASSIGN(a.value, parse(f.Sub(*record, name)));
  a.raw = j;
  a.raw_record = *record;
  return a;
}

/// A list page with its records under `name`, each parsed by `parse`.
template <class T, class Parse>
base::Result<MarketPage<T>> PageOf(const Json& j, const std::string& what, std::string_view name,
                                   const Parse& parse) {
  JsonFields f(j, what);
  MarketPage<T> page;
  GPUNET_TRY(ParseEnvelope(f, page));
  GPUNET_TRY_ASSIGN(page.entries, ObjectList<T>(f, name, parse));
  GPUNET_TRY_ASSIGN(page.truncated, f.Bool("truncated"));
  if (f.Has("next")) {
    uint64_t next = 0;
    GPUNET_TRY_ASSIGN(next, f.Number<uint64_t>("next"));
    page.next = next;
  }
  page.raw = j;
  return page;
}

base::Result<ProviderInfo> ParseProviderWithDetails(const JsonFields& f) {
  return ParseProvider(f, true);
}
base::Result<ProviderInfo> ParseProviderSummary(const JsonFields& f) {
  return ParseProvider(f, false);
}
base::Result<OfferInfo> ParseOfferWithClass(const JsonFields& f) {
  return ParseOffer(f, true);
}

}  // namespace

base::Result<MarketAnswer<ProviderInfo>> ParseProviderAnswer(const Json& j,
                                                             const std::string& what) {
  return AnswerOf<ProviderInfo>(j, what, "provider", ParseProviderWithDetails);
}

base::Result<MarketPage<ProviderInfo>> ParseProvidersPage(const Json& j, const std::string& what) {
  return PageOf<ProviderInfo>(j, what, "providers", ParseProviderSummary);
}

base::Result<MarketAnswer<OfferInfo>> ParseOfferAnswer(const Json& j, const std::string& what) {
  return AnswerOf<OfferInfo>(j, what, "offer", ParseOfferWithClass);
}

base::Result<MarketPage<OfferInfo>> ParseOffersPage(const Json& j, const std::string& what) {
  return PageOf<OfferInfo>(j, what, "offers", ParseOfferWithClass);
}

base::Result<std::vector<OfferInfo>> ParseOfferList(const Json& j, const std::string& what) {
  return ObjectList<OfferInfo>(JsonFields(j, what), "offers", ParseOfferWithClass);
}

base::Result<MarketAnswer<OrderInfo>> ParseOrderAnswer(const Json& j, const std::string& what) {
  return AnswerOf<OrderInfo>(j, what, "order", ParseOrder);
}

base::Result<MarketPage<OrderInfo>> ParseOrdersPage(const Json& j, const std::string& what) {
  return PageOf<OrderInfo>(j, what, "orders", ParseOrder);
}

base::Result<MarketAnswer<OrderBids>> ParseOrderBidsAnswer(const Json& j, const std::string& what) {
  MarketAnswer<OrderInfo> order;
  GPUNET_TRY_ASSIGN(order, ParseOrderAnswer(j, what));
  MarketAnswer<OrderBids> a{
      order.height, order.time_ms, {std::move(order.value), {}}, j, std::move(order.raw_record)};
  GPUNET_TRY_ASSIGN(a.value.bids, ObjectList<BidInfo>(JsonFields(j, what), "bids", ParseBid));
  return a;
}

base::Result<MarketAnswer<BidInfo>> ParseBidAnswer(const Json& j, const std::string& what) {
  return AnswerOf<BidInfo>(j, what, "bid", ParseBid);
}

base::Result<MarketAnswer<LeaseInfo>> ParseLeaseAnswer(const Json& j, const std::string& what) {
  return AnswerOf<LeaseInfo>(j, what, "lease", ParseLease);
}

base::Result<MarketPage<LeaseInfo>> ParseLeasesPage(const Json& j, const std::string& what) {
  return PageOf<LeaseInfo>(j, what, "leases", ParseLease);
}

base::Result<ConservationInfo> ParseConservation(const Json& j) {
  JsonFields f(j, "GET /conservation");
  ConservationInfo c;
  GPUNET_TRY(ParseEnvelope(f, c));
  GPUNET_TRY_ASSIGN(c.holds, f.Bool("holds"));
  c.raw = j;
  if (f.Has("message")) {  // the scan could not add up: no sums (docs/rpc.md)
    std::string message;
    GPUNET_TRY_ASSIGN(message, f.Str("message"));
    if (c.holds) return f.Bad("holds", "is true beside a message saying the scan failed");
    c.message = std::move(message);
    return c;
  }
  ConservationSums s;
  GPUNET_TRY_ASSIGN(s.balances_ugpn, f.Ugpn128("balances_ugpn"));
  GPUNET_TRY_ASSIGN(s.escrow_ugpn, f.Ugpn128("escrow_ugpn"));
  GPUNET_TRY_ASSIGN(s.bonds_ugpn, f.Ugpn128("bonds_ugpn"));
  GPUNET_TRY_ASSIGN(s.stake_ugpn, f.Ugpn128("stake_ugpn"));
  GPUNET_TRY_ASSIGN(s.unbonding_ugpn, f.Ugpn128("unbonding_ugpn"));
  GPUNET_TRY_ASSIGN(s.fee_pool_ugpn, f.Ugpn("fee_pool_ugpn"));
  GPUNET_TRY_ASSIGN(s.genesis_ugpn, f.Ugpn("genesis_ugpn"));
  GPUNET_TRY_ASSIGN(s.minted_ugpn, f.Ugpn("minted_ugpn"));
  GPUNET_TRY_ASSIGN(s.burned_ugpn, f.Ugpn("burned_ugpn"));
  GPUNET_TRY_ASSIGN(s.accounts, f.Number<uint64_t>("accounts"));
  GPUNET_TRY_ASSIGN(s.equation, f.Str("equation"));
  c.sums = std::move(s);
  return c;
}

OfferView OfferViewOf(const OfferInfo& offer) {
  GPUNET_CHECK(offer.machine_class.has_value());
  const OfferClass& c = *offer.machine_class;
  OfferView v;
  v.id = std::to_string(offer.offer_id);
  v.provider = offer.provider;
  v.gpu_model = offer.gpu_model;
  v.gpus = c.gpus_per_machine_max;
  v.gpus_free = static_cast<uint32_t>(std::min<uint64_t>(c.free_gpus, UINT32_MAX));
  v.vram_gb = c.vram_gib_min;
  v.price_ugpn_per_gpu_hour = offer.price_ugpn_per_gpu_hour;
  v.region = c.region;
  v.fabric = c.fabric;
  v.link = c.link;
  v.cuda = CudaFromLedger(c.cuda_version_min);
  v.compute_capability = ComputeCapabilityFromLedger(c.compute_capability_min);
  if (auto d = ParseVersion(c.driver_version_min); d) v.driver = *d;  // non-numeric: 0
  v.machines = c.machines;
  v.is_private = offer.is_private;
  v.min_hours = offer.min_hours;
  v.max_hours = offer.max_hours;
  return v;
}

}  // namespace gpunet::client
