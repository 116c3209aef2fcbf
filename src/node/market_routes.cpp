#include "node/market_routes.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "base/checked_math.h"
#include "crypto/address.h"
#include "ledger/app.h"
#include "ledger/block_store.h"
#include "market/keys.h"
#include "market/math.h"
#include "market/query.h"
#include "market/records.h"
#include "node/market_index.h"
#include "node/rpc_json.h"
#include "server/metrics.h"
#include "state/conservation.h"
#include "state/market_store.h"

namespace gpunet::node {

using server::ErrorResponse;
using server::HttpServer;
using server::JsonError;
using server::JsonResponse;
using server::Request;
using server::Response;
namespace metrics = server::metrics;

namespace {

using base::ErrorCode;
using base::Fail;
using nlohmann::json;
namespace keys = market::keys;

std::string Addr(const codec::Address& a) {
  return crypto::AddressToString(a);
}

json Addrs(const std::vector<codec::Address>& v) {
  json out = json::array();
  for (const auto& a : v) out.push_back(Addr(a));
  return out;
}

/// `text` as a decimal number: digits only (no sign, space or other base), and
/// no larger than a uint64_t; nullopt otherwise.
std::optional<uint64_t> DecimalOf(std::string_view text) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [at, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || at != end) return std::nullopt;
  return v;
}

/// Parsed list options: ?limit=N.
base::Result<size_t> LimitOf(const Request& req) {
  auto it = req.query.find("limit");
  if (it == req.query.end()) return kMarketListDefault;
  auto v = DecimalOf(it->second);
  if (!v || *v == 0 || *v > kMarketListMax)
    return Fail(ErrorCode::kInvalidArgument,
                "limit must be a number 1.." + std::to_string(kMarketListMax));
  return static_cast<size_t>(*v);
}

/// Parsed ?after=ID: where a page starts (the `next` of the page before; 0 or
/// absent: from the start).
base::Result<uint64_t> AfterOf(const Request& req) {
  auto it = req.query.find("after");
  if (it == req.query.end()) return 0;
  auto v = DecimalOf(it->second);
  if (!v || *v == UINT64_MAX)
    return Fail(ErrorCode::kInvalidArgument,
                "after must be an id (a number 0, 1, ...): pass the `next` of the page before");
  return *v;
}

base::Result<uint64_t> IdOf(std::string_view text, std::string_view what) {
  auto v = DecimalOf(text);
  if (!v || *v == 0)
    return Fail(ErrorCode::kInvalidArgument, "'" + std::string(text) + "' is not a " +
                                                 std::string(what) + " id (a number 1, 2, ...)");
  return *v;
}

base::Result<codec::Address> AddressParam(const Request& req, const std::string& name) {
  auto it = req.query.find(name);
  GPUNET_CHECK(it != req.query.end());
  auto a = crypto::ParseAddress(it->second);
  if (!a) return Fail(ErrorCode::kInvalidArgument, name + ": " + a.error().message);
  return *a;
}

/// The value at `key` decoded as T; kNotFound naming `what` when absent.
template <class T>
base::Result<T> Load(const state::KvStore& kv, const base::Bytes& key, const std::string& what) {
  auto v = kv.Get(key);
  if (!v) return std::unexpected(v.error());
  if (!*v) return Fail(ErrorCode::kNotFound, "no " + what);
  return market::Decode<T>(**v);
}

/// 0x01 table: the start of one market table.
base::Bytes Prefix(uint8_t table) {
  return keys::KeyBuilder(table);
}
/// 0x01 table address[20]: one provider's (or tenant's) entries of a table.
base::Bytes Prefix(uint8_t table, const codec::Address& a) {
  return keys::KeyBuilder(table).Addr(a);
}
/// 0x01 table id[8]: the entries of one order (its bids).
base::Bytes Prefix(uint8_t table, uint64_t id) {
  return keys::KeyBuilder(table).U64(id);
}

/// A key under a market table's prefix that is not of the table's layout
/// (keys::Parse* refused it): the stored state is corrupt.
base::Status BadKey(base::ByteSpan key) {
  return Fail(ErrorCode::kCorrupt,
              "market key " + base::ToHex(key) + " is not of its table's layout");
}

/// Visits the keys of [prefix, PrefixEnd(prefix)).
base::Status ScanPrefix(const state::KvStore& kv, const base::Bytes& prefix,
                        const state::KvVisitor& visit) {
  return kv.Scan(prefix, keys::PrefixEnd(prefix), visit);
}

/// The id an entry of `table` points to: a record key's own id, or a party
/// index entry's; nullopt when the key is not of the table's layout.
std::optional<uint64_t> IdOfEntry(uint8_t table, base::ByteSpan key) {
  if (!keys::IsPartyIndex(table)) return keys::ParseIdKey(table, key);
  auto entry = keys::ParsePartyIndexKey(table, key);
  if (!entry) return std::nullopt;
  return entry->id;
}

/// Up to `count` ids above `after`, in id order, from a state table keyed by id
/// (kOffer, kOrder) or, when keys::IsPartyIndex(table), from `party`'s entries
/// of that index.
base::Result<std::vector<uint64_t>> StateIds(const state::KvStore& kv, uint8_t table,
                                             const codec::Address& party, uint64_t after,
                                             size_t count) {
  std::vector<uint64_t> ids;
  if (after == UINT64_MAX || count == 0) return ids;
  const bool by_party = keys::IsPartyIndex(table);
  const base::Bytes prefix = by_party ? Prefix(table, party) : Prefix(table);
  const base::Bytes begin =
      by_party ? keys::PartyIndexKey(table, party, after + 1) : keys::IdKey(table, after + 1);
  base::Status bad = base::Ok();
  GPUNET_TRY(kv.Scan(begin, keys::PrefixEnd(prefix), [&](base::ByteSpan key, base::ByteSpan) {
    auto id = IdOfEntry(table, key);
    if (!id) return (bad = BadKey(key)), false;
    ids.push_back(*id);
    return ids.size() < count;
  }));
  GPUNET_TRY(bad);
  return ids;
}

/// Where a list page's ids come from: the node's index or the state.
struct IdSource {
  std::optional<MarketList> index;  ///< set: the node's index (with `party`)
  codec::Address party{};
  uint8_t table = 0;  ///< otherwise: this state table, or `party`'s entries of this index
};

/// Where each form of a list with one optional party filter reads (docs/rpc.md).
struct ListSources {
  const char* party;       ///< the query parameter naming the party
  MarketList party_every;  ///< every record of the party: the node's index
  uint8_t party_open;      ///< the party's open records: this state index
  uint8_t every;           ///< every record: this state table
  MarketList open;         ///< the open records: the node's index
};
constexpr ListSources kOfferSources{"provider", MarketList::kProviderOffers,
                                    keys::kProviderOpenOffers, keys::kOffer,
                                    MarketList::kOpenOffers};
constexpr ListSources kOrderSources{"tenant", MarketList::kTenantOrders, keys::kTenantOpenOrders,
                                    keys::kOrder, MarketList::kOpenOrders};

// ---------------------------------------------------------------- JSON of records

json ProviderJson(const market::Provider& p, const market::Params& params) {
  json payouts = json::array();
  for (const auto& s : p.payouts) payouts.push_back({{"payee", Addr(s.payee)}, {"bp", s.bp}});
  json unbonding = json::array();
  for (const auto& u : p.unbonding)
    unbonding.push_back({{"amount_ugpn", U64(u.amount_ugpn)}, {"release_ms", u.release_ms}});
  return {{"owner", Addr(p.owner)},
          {"operator", Addr(p.operator_address)},
          {"tenant_api_uri", p.tenant_api_uri},
          {"tls_fingerprint", base::ToHex(p.tls_fingerprint)},
          {"region", p.region},
          {"payouts", payouts},
          {"policy", {{"allow", Addrs(p.policy.allow)}, {"deny", Addrs(p.policy.deny)}}},
          {"active", p.active},
          {"bond_ugpn", U64(p.bond_ugpn)},
          {"unbonding", unbonding},
          {"registered_ms", p.registered_ms},
          {"last_heartbeat_ms", p.last_heartbeat_ms},
          {"last_heartbeat_height", p.last_heartbeat_height},
          {"heartbeat_deadline_ms", p.heartbeat_deadline_ms},
          {"sites", p.sites},
          {"machines", p.machines},
          {"open_offers", p.open_offers},
          {"open_leases", p.open_leases},
          {"started_leases", p.started_leases},
          {"leases_completed", p.leases_completed},
          {"faults", p.faults},
          {"fault_rate_ppm", market::FaultRatePpm(p.leases_completed, p.faults)},
          {"penalties_paid_ugpn", U64(p.penalties_paid_ugpn)},
          {"penalties_unpaid_ugpn", U64(p.penalties_unpaid_ugpn)},
          {"earned_ugpn", U64(p.earned_ugpn)},
          {"promised_penalties_ugpn", U64(p.promised_penalties_ugpn)},
          {"required_bond_ugpn", U64(market::RequiredBond(p.promised_penalties_ugpn, params))},
          {"self_reported", true}};
}

json SiteJson(uint32_t id, const market::Site& s) {
  return {{"site_id", id},
          {"fabric", codec::FabricName(s.fabric)},
          {"bandwidth_gbps", s.bandwidth_gbps},
          {"machines", s.machines}};
}

json MachineJson(uint32_t id, const market::Machine& m) {
  return {{"machine_id", id},
          {"site_id", m.site_id},
          {"gpu_model", m.gpu_model},
          {"gpu_count", m.gpu_count},
          {"free_gpus", m.free_gpus},
          {"vram_gib", m.vram_gib},
          {"link", codec::GpuLinkName(m.link)},
          {"driver_version", m.driver_version},
          {"cuda_version", m.cuda_version},
          {"compute_capability", m.compute_capability},
          {"cpu_cores", m.cpu_cores},
          {"memory_gib", m.memory_gib},
          {"disk_gib", m.disk_gib},
          {"self_reported", true}};
}

json OfferJson(const market::Offer& o) {
  return {{"offer_id", o.offer_id},
          {"provider", Addr(o.provider)},
          {"gpu_model", o.gpu_model},
          {"site_id", o.site_id},
          {"price_ugpn_per_gpu_hour", U64(o.price_ugpn_per_gpu_hour)},
          {"tenants", Addrs(o.tenants)},
          {"private", !o.tenants.empty()},
          {"open", o.open},
          {"created_ms", o.created_ms},
          {"min_hours", o.min_hours},
          {"max_hours", o.max_hours}};
}

json OrderJson(const market::Order& o) {
  const auto& q = o.requirements;
  json attrs = json::object();
  for (const auto& a : q.attributes) attrs[a.key] = a.value;
  return {{"order_id", o.order_id},
          {"tenant", Addr(o.tenant)},
          {"requirements",
           {{"gpu_models", q.gpu_models},
            {"gpus_per_machine", q.gpus_per_machine},
            {"machines", q.machines},
            {"min_vram_gib", q.min_vram_gib},
            {"region", q.region},
            {"fabric", codec::FabricName(q.fabric)},
            {"same_site", q.same_site},
            {"min_cuda_version", q.min_cuda_version},
            {"auditors", Addrs(q.auditors)},
            {"attributes", attrs}}},
          {"max_price_ugpn_per_gpu_hour", U64(o.max_price_ugpn_per_gpu_hour)},
          {"deposit_ugpn", U64(o.deposit_ugpn)},
          {"manifest_hash", base::ToHex(o.manifest_hash)},
          {"created_ms", o.created_ms},
          {"window_end_ms", o.window_end_ms},
          {"state", market::OrderStateName(o.state)},
          {"bids", o.bids},
          {"lease_id", o.lease_id},
          {"providers",
           {{"min_bond_ugpn", U64(o.providers.min_bond_ugpn)},
            {"min_earned_ugpn", U64(o.providers.min_earned_ugpn)},
            {"max_fault_rate_ppm", o.providers.max_fault_rate_ppm},
            {"excluded", Addrs(o.providers.excluded)}}}};
}

json BidJson(const market::Bid& b) {
  return {
      {"bid_id", b.bid_id},           {"order_id", b.order_id},
      {"provider", Addr(b.provider)}, {"price_ugpn_per_gpu_hour", U64(b.price_ugpn_per_gpu_hour)},
      {"machine_ids", b.machine_ids}, {"created_ms", b.created_ms}};
}

/// "" for none, the one's name, or "mixed": an offer class's links or fabrics.
template <class E>
std::string OneOrMixed(const std::set<E>& values, std::string_view (*name)(E)) {
  if (values.empty()) return {};
  return values.size() == 1 ? std::string(name(*values.begin())) : "mixed";
}

/// A lease, with what has accrued by `now_ms` (the last block's time) computed by
/// the market's own query (market/query.h, what the ledger pays), so the CLI never
/// re-derives it.
json LeaseJson(const market::Lease& l, uint64_t now_ms) {
  json allocations = json::array();
  for (const auto& a : l.allocations)
    allocations.push_back({{"machine_id", a.machine_id}, {"gpus", a.gpus}});
  const market::LeaseAccrual accrual = market::AccrualAt(l, now_ms);
  return {{"lease_id", l.lease_id},
          {"tenant", Addr(l.tenant)},
          {"provider", Addr(l.provider)},
          {"offer_id", l.offer_id},
          {"order_id", l.order_id},
          {"allocations", allocations},
          {"gpus", l.Gpus()},
          {"price_ugpn_per_gpu_hour", U64(l.price_ugpn_per_gpu_hour)},
          {"rate_ugpn_per_hour", U64(l.rate_ugpn_per_hour)},
          {"manifest_hash", base::ToHex(l.manifest_hash)},
          {"state", market::LeaseStateName(l.state)},
          {"end", market::LeaseEndName(l.end)},
          {"created_ms", l.created_ms},
          {"start_deadline_ms", l.start_deadline_ms},
          {"started_ms", l.started_ms},
          {"paid_until_ms", l.paid_until_ms},
          {"deposited_ugpn", U64(l.deposited_ugpn)},
          {"escrow_ugpn", U64(l.escrow_ugpn)},
          {"paid_ugpn", U64(l.paid_ugpn)},
          {"refunded_ugpn", U64(l.refunded_ugpn)},
          {"penalty_ugpn", U64(l.penalty_ugpn)},
          {"closed_ms", l.closed_ms},
          {"min_hours", l.min_hours},
          {"max_hours", l.max_hours},
          {"as_of_ms", now_ms},
          {"accrued_ugpn", U64(accrual.accrued_ugpn)},
          {"withdrawable_ugpn", U64(accrual.unpaid_ugpn)}};
}

// ---------------------------------------------------------------- handlers

class MarketRoutes {
 public:
  MarketRoutes(const ledger::LedgerApp& app, const MarketIndex& index, metrics::Registry& registry)
      : m_app(app),
        m_index(index),
        m_records_read(&registry.GetCounter(
            "gpunet_market_list_records_read_total",
            "Records the market list endpoints loaded: offers, orders and leases, and the "
            "providers, sites and machines an offer page read for the offers' classes.")),
        m_conservation_scans(&registry.GetCounter(
            "gpunet_conservation_scans_total",
            "Full state scans GET /conservation ran (one per height at most, when asked).")) {}

  const state::KvStore& Kv() const { return m_app.Store(); }

  /// Every answer says at which committed height and block time it was read.
  json Envelope() const {
    auto info = m_app.Info();
    return {{"height", info.last_height}, {"time_ms", info.last_block_time_ms}};
  }

  base::Result<json> Provider(const codec::Address& owner) const {
    auto p = Load<market::Provider>(Kv(), keys::ProviderKey(owner),
                                    "provider " + Addr(owner) +
                                        " (a provider is named by its owner's address; "
                                        "`gpunet provider list` shows them)");
    if (!p) return std::unexpected(p.error());
    json j = ProviderJson(*p, m_app.GetGenesis().params.market);
    json sites = json::array(), machines = json::array(), offers = json::array();
    base::Status bad = base::Ok();
    GPUNET_TRY(
        ScanPrefix(Kv(), Prefix(keys::kSite, owner), [&](base::ByteSpan key, base::ByteSpan value) {
          auto s = market::DecodeSite(value);
          if (!s) return (bad = std::unexpected(s.error())), false;
          auto site = keys::ParseSiteKey(key);
          if (!site) return (bad = BadKey(key)), false;
          sites.push_back(SiteJson(site->id, *s));
          return true;
        }));
    GPUNET_TRY(bad);
    GPUNET_TRY(ScanPrefix(Kv(), Prefix(keys::kMachine, owner),
                          [&](base::ByteSpan key, base::ByteSpan value) {
                            auto m = market::DecodeMachine(value);
                            if (!m) return (bad = std::unexpected(m.error())), false;
                            auto machine = keys::ParseMachineKey(key);
                            if (!machine) return (bad = BadKey(key)), false;
                            machines.push_back(MachineJson(machine->id, *m));
                            return true;
                          }));
    GPUNET_TRY(bad);
    GPUNET_TRY(ScanPrefix(Kv(), Prefix(keys::kProviderOpenOffers, owner),
                          [&](base::ByteSpan key, base::ByteSpan) {
                            auto entry = keys::ParsePartyIndexKey(keys::kProviderOpenOffers, key);
                            if (!entry) return (bad = BadKey(key)), false;
                            auto o = Load<market::Offer>(Kv(), keys::OfferKey(entry->id), "offer");
                            if (!o) return (bad = std::unexpected(o.error())), false;
                            offers.push_back(OfferJson(*o));
                            return true;
                          }));
    GPUNET_TRY(bad);
    j["site_list"] = sites;
    j["machine_list"] = machines;
    j["offer_list"] = offers;
    return j;
  }

  base::Result<json> Providers(size_t limit) const {
    json j = Envelope();  // first: the records read below are at least this new
    json list = json::array();
    bool truncated = false;
    base::Status bad = base::Ok();
    GPUNET_TRY(ScanPrefix(Kv(), Prefix(keys::kProvider), [&](base::ByteSpan, base::ByteSpan value) {
      if (list.size() == limit) return (truncated = true), false;
      auto p = market::DecodeProvider(value);
      if (!p) return (bad = std::unexpected(p.error())), false;
      list.push_back(ProviderJson(*p, m_app.GetGenesis().params.market));
      return true;
    }));
    GPUNET_TRY(bad);
    j["providers"] = list;
    j["truncated"] = truncated;
    return j;
  }

  /// The class of machines an offer sells, summarised so a client can filter on
  /// it: the provider's machines of the offer's model (on its site, or any when
  /// site_id is 0). The same for every offer of one provider, model and site.
  /// Adds the records it read (the provider, its sites and machines) to `reads`.
  base::Result<json> OfferClass(const market::Offer& o, uint64_t& reads) const {
    ++reads;
    auto p = Load<market::Provider>(Kv(), keys::ProviderKey(o.provider), "provider");
    if (!p) return std::unexpected(p.error());
    auto c = market::OfferClassOf(state::MarketKvView(Kv()), o);
    if (!c) return std::unexpected(c.error());
    reads += c->records_read;
    json j = json::object();
    j["region"] = p->region;
    j["provider_active"] = p->active;
    j["fault_rate_ppm"] = market::FaultRatePpm(p->leases_completed, p->faults);
    j["machines"] = c->machines;
    j["sites"] = c->sites;
    j["gpus_per_machine_max"] = c->gpus_per_machine_max;
    j["free_gpus"] = c->free_gpus;
    j["vram_gib_min"] = c->vram_gib_min;
    j["cuda_version_min"] = c->cuda_version_min;
    j["compute_capability_min"] = c->compute_capability_min;
    j["driver_version_min"] = c->driver_version_min;
    j["link"] = OneOrMixed(c->links, codec::GpuLinkName);
    j["fabric"] = OneOrMixed(c->fabrics, codec::FabricName);
    return j;
  }

  /// An offer with the class of machines it sells (OfferClass), adding what it
  /// read to `reads`. `classes` keeps the classes one answer has made: a page of
  /// a provider's offers scans its machines once per model and site, not once per
  /// offer.
  using OfferClasses = std::map<std::tuple<codec::Address, std::string, uint32_t>, json>;
  base::Result<json> OfferWithClass(const market::Offer& o, OfferClasses& classes,
                                    uint64_t& reads) const {
    OfferClasses& known = classes;
    auto key = std::make_tuple(o.provider, o.gpu_model, o.site_id);
    auto it = known.find(key);
    if (it == known.end()) {
      auto made = OfferClass(o, reads);
      if (!made) return std::unexpected(made.error());
      it = known.emplace(std::move(key), std::move(*made)).first;
    }
    json j = OfferJson(o);
    j.update(it->second);
    return j;
  }

  /// Up to `count` ids of `source` above `after`.
  base::Result<std::vector<uint64_t>> Ids(const IdSource& source, uint64_t after,
                                          size_t count) const {
    if (source.index) return m_index.Page(*source.index, source.party, after, count);
    return StateIds(Kv(), source.table, source.party, after, count);
  }

  /// Renders a record of a list page, adding any records it reads besides it
  /// (an offer's provider, sites and machines) to the `uint64_t&`.
  template <class T>
  using Render = std::function<base::Result<json>(const T&, uint64_t&)>;

  /// One page of a list under `name`: the records of the first `limit` ids of
  /// `source` above `after` that `keep` accepts (the index and a record may
  /// disagree for the moment a block commits; a record that is gone is skipped),
  /// rendered by `render`. The page also ends early, after the record whose
  /// reads took it to kMarketPageReadsMax. `next` (and `truncated`) when the
  /// source has more: the cursor is the last id the page consumed, so the pages
  /// cover the source exactly once.
  template <class T>
  base::Result<json> ListPage(const IdSource& source, const Request& req, size_t limit,
                              const std::string& name, base::Bytes (*key_of)(uint64_t),
                              const std::function<bool(const T&)>& keep,
                              const Render<T>& render) const {
    json j = Envelope();  // first: the records read below are at least this new
    auto after = AfterOf(req);
    if (!after) return std::unexpected(after.error());
    GPUNET_CHECK(limit >= 1 && limit <= kMarketListMax);
    auto ids = Ids(source, *after, limit + 1);
    if (!ids) return std::unexpected(ids.error());
    bool more = ids->size() > limit;
    if (more) ids->resize(limit);
    json list = json::array();
    uint64_t reads = 0;
    size_t consumed = 0;
    for (; consumed < ids->size() && reads < kMarketPageReadsMax; ++consumed) {
      ++reads;
      auto record = Load<T>(Kv(), key_of((*ids)[consumed]), name);
      if (!record && record.error().code == ErrorCode::kNotFound) continue;
      if (record && !keep(*record)) continue;
      base::Result<json> rendered =
          record ? render(*record, reads) : std::unexpected(record.error());
      if (!rendered) {
        m_records_read->Inc(reads);
        return std::unexpected(rendered.error());
      }
      list.push_back(std::move(*rendered));
    }
    m_records_read->Inc(reads);
    if (consumed < ids->size()) {  // over the budget: the rest is the next page's
      more = true;
      ids->resize(consumed);
    }
    j[name] = std::move(list);
    j["truncated"] = more;
    if (more) j["next"] = ids->back();
    return j;
  }

  /// The source of a list filtered by `s.party` when the request names one;
  /// `all`: closed records too.
  static base::Result<IdSource> SourceOf(const Request& req, const ListSources& s, bool all) {
    if (!req.query.contains(s.party))
      return all ? IdSource{std::nullopt, {}, s.every} : IdSource{s.open, {}, 0};
    auto a = AddressParam(req, s.party);
    if (!a) return std::unexpected(a.error());
    return all ? IdSource{s.party_every, *a, 0} : IdSource{std::nullopt, *a, s.party_open};
  }

  base::Result<json> Offers(const Request& req, size_t limit) const {
    bool all = req.query.contains("all") && req.query.at("all") == "true";
    auto source = SourceOf(req, kOfferSources, all);
    if (!source) return std::unexpected(source.error());
    OfferClasses classes;
    return ListPage<market::Offer>(
        *source, req, limit, "offers", keys::OfferKey,
        [all](const market::Offer& o) { return all || o.open; },
        [this, &classes](const market::Offer& o, uint64_t& reads) {
          return OfferWithClass(o, classes, reads);
        });
  }

  base::Result<json> Orders(const Request& req, size_t limit) const {
    bool all = req.query.contains("state") && req.query.at("state") == "all";
    if (req.query.contains("state") && !all && req.query.at("state") != "open")
      return Fail(ErrorCode::kInvalidArgument, "state must be open or all");
    auto source = SourceOf(req, kOrderSources, all);
    if (!source) return std::unexpected(source.error());
    return ListPage<market::Order>(
        *source, req, limit, "orders", keys::OrderKey,
        [all](const market::Order& o) { return all || o.state == market::OrderState::kOpen; },
        [](const market::Order& o, uint64_t&) -> base::Result<json> { return OrderJson(o); });
  }

  base::Result<json> Order(uint64_t id, bool with_bids) const {
    json j = Envelope();  // first: the records read below are at least this new
    auto o =
        Load<market::Order>(Kv(), keys::OrderKey(id),
                            "order " + std::to_string(id) + " (`gpunet order list` shows yours)");
    if (!o) return std::unexpected(o.error());
    j["order"] = OrderJson(*o);
    if (with_bids) {
      std::vector<market::Bid> found;
      base::Status bad = base::Ok();
      GPUNET_TRY(
          ScanPrefix(Kv(), Prefix(keys::kOrderBids, id), [&](base::ByteSpan key, base::ByteSpan) {
            auto entry = keys::ParseOrderBidKey(key);
            if (!entry) return (bad = BadKey(key)), false;
            auto b = Load<market::Bid>(Kv(), keys::BidKey(entry->bid_id), "bid");
            if (!b) return (bad = std::unexpected(b.error())), false;
            found.push_back(std::move(*b));
            return true;
          }));
      GPUNET_TRY(bad);
      // In the order the auction tries them (docs/rpc.md, market/query.h).
      GPUNET_TRY_ASSIGN(auto ranked, market::RankBids(state::MarketKvView(Kv()), std::move(found)));
      json bids = json::array();
      for (const auto& r : ranked) bids.push_back(BidJson(r.bid));
      j["bids"] = bids;
    }
    return j;
  }

  base::Result<json> Leases(const Request& req, size_t limit) const {
    bool has_tenant = req.query.contains("tenant"), has_provider = req.query.contains("provider");
    if (has_tenant == has_provider)
      return Fail(ErrorCode::kInvalidArgument,
                  "give exactly one of tenant=ADDRESS or provider=ADDRESS");
    bool all = req.query.contains("state") && req.query.at("state") == "all";
    if (req.query.contains("state") && !all && req.query.at("state") != "open")
      return Fail(ErrorCode::kInvalidArgument, "state must be open or all");
    auto who = AddressParam(req, has_tenant ? "tenant" : "provider");
    if (!who) return std::unexpected(who.error());
    IdSource source;
    if (all)
      source = {std::nullopt, *who, has_tenant ? keys::kTenantLeases : keys::kProviderLeases};
    else if (has_tenant)
      source = {MarketList::kTenantOpenLeases, *who, 0};
    else
      source = {std::nullopt, *who, keys::kProviderOpenLeases};
    const uint64_t now = m_app.Info().last_block_time_ms;
    return ListPage<market::Lease>(
        source, req, limit, "leases", keys::LeaseKey,
        [all](const market::Lease& l) { return all || l.state != market::LeaseState::kClosed; },
        [now](const market::Lease& l, uint64_t&) -> base::Result<json> {
          return LeaseJson(l, now);
        });
  }

  base::Result<json> Lease(uint64_t id) const {
    json j = Envelope();  // first: the record read below is at least this new
    auto l =
        Load<market::Lease>(Kv(), keys::LeaseKey(id),
                            "lease " + std::to_string(id) + " (`gpunet lease list` shows yours)");
    if (!l) return std::unexpected(l.error());
    j["lease"] = LeaseJson(*l, j["time_ms"].get<uint64_t>());
    return j;
  }

  /// The conservation check at the current height (OneScanPerHeight): cached,
  /// scanned now, or 503 while another request's scan runs or when a block
  /// committed during the scan.
  Response Conservation() {
    auto answer = m_conservation.Get(
        m_app.Info().last_height,
        [this] {
          m_conservation_scans->Inc();
          return ConservationScan();
        },
        [this] {
          // The durable store's height, which a commit writes in the same atomic
          // batch as the state and before it updates Info() (and the resident
          // copy): a block whose writes the scan may have seen shows here, even
          // while Info() still names the height before it. A failed read is a
          // "retry" too (the height then compares as moved).
          auto stored = ledger::ReadLastHeight(Kv());
          return stored ? *stored : UINT64_MAX;
        });
    if (!answer) return ErrorResponse(answer.error());
    return JsonResponse(*answer);
  }

 private:
  json ConservationScan() const {
    json j = Envelope();  // first: the height the scan reads from
    auto r = state::CheckConservation(Kv());
    if (!r) {
      // A broken equation is an answer, not a transport error: say so plainly.
      j["holds"] = false;
      j["message"] = r.error().message;
      return j;
    }
    j["holds"] = r->Holds();
    j["balances_ugpn"] = base::U128ToString(r->balances_ugpn);
    j["escrow_ugpn"] = base::U128ToString(r->escrow_ugpn);
    j["bonds_ugpn"] = base::U128ToString(r->bonds_ugpn);
    j["stake_ugpn"] = base::U128ToString(r->stake_ugpn);
    j["unbonding_ugpn"] = base::U128ToString(r->unbonding_ugpn);
    j["fee_pool_ugpn"] = U64(r->supply.fee_pool_ugpn);
    j["genesis_ugpn"] = U64(r->supply.genesis_ugpn);
    j["minted_ugpn"] = U64(r->supply.minted_ugpn);
    j["burned_ugpn"] = U64(r->supply.burned_ugpn);
    j["accounts"] = r->accounts;
    j["equation"] = r->ToString();
    return j;
  }

  const ledger::LedgerApp& m_app;
  const MarketIndex& m_index;
  metrics::Counter* m_records_read;
  metrics::Counter* m_conservation_scans;
  OneScanPerHeight m_conservation;
};

Response Answer(const base::Result<json>& r) {
  if (!r) return ErrorResponse(r.error());
  return JsonResponse(*r);
}

}  // namespace

base::Result<json> OneScanPerHeight::Get(uint64_t height, const std::function<json()>& scan,
                                         const std::function<uint64_t()>& height_now) {
  if (auto cached = Cached(height)) return *cached;
  auto ran = m_scan.TryRun([&]() -> base::Result<json> {
    if (auto cached = Cached(height)) return *cached;  // a scan finished meanwhile
    json answer = scan();
    const uint64_t after = height_now();
    GPUNET_CHECK(after >= height);  // committed heights only grow
    if (after != height)
      return base::Fail(base::ErrorCode::kUnavailable,
                        "a block committed during the conservation check, so its sums may mix "
                        "two heights; retry");
    base::MutexLock lock(m_cache_mutex);
    m_cache = std::make_pair(height, answer);
    return answer;
  });
  if (!ran)
    return base::Fail(base::ErrorCode::kUnavailable,
                      "a conservation check is running; retry in a moment (its answer is then "
                      "served from a cache until the next block)");
  return *std::move(ran);
}

std::optional<json> OneScanPerHeight::Cached(uint64_t height) const {
  base::MutexLock lock(m_cache_mutex);
  if (m_cache && m_cache->first == height) return m_cache->second;
  return std::nullopt;
}

// Over 70 lines by design: a table of routes, one short handler each.
// NOLINTNEXTLINE(readability-function-size)
void RegisterMarketRoutes(HttpServer& server, const ledger::LedgerApp& app,
                          const MarketIndex& index, metrics::Registry& registry) {
  auto routes = std::make_shared<MarketRoutes>(app, index, registry);
  server.Handle("GET", "/market/providers", [routes](const Request& req) {
    auto limit = LimitOf(req);
    if (!limit) return ErrorResponse(limit.error());
    return Answer(routes->Providers(*limit));
  });
  server.HandlePrefix("GET", "/market/provider/", [routes](const Request& req) {
    auto owner = crypto::ParseAddress(req.path_rest);
    if (!owner)
      return JsonError(
          400, "invalid_argument",
          "'" + req.path_rest + "' is not a provider address (gpn1...): " + owner.error().message);
    json out = routes->Envelope();  // first: the records read below are at least this new
    auto j = routes->Provider(*owner);
    if (!j) return ErrorResponse(j.error());
    out["provider"] = std::move(*j);
    return JsonResponse(out);
  });
  server.Handle("GET", "/market/offers", [routes](const Request& req) {
    auto limit = LimitOf(req);
    if (!limit) return ErrorResponse(limit.error());
    return Answer(routes->Offers(req, *limit));
  });
  server.HandlePrefix("GET", "/market/offer/", [routes](const Request& req) {
    auto id = IdOf(req.path_rest, "offer");
    if (!id) return ErrorResponse(id.error());
    json out = routes->Envelope();  // first: the records read below are at least this new
    auto o = Load<market::Offer>(routes->Kv(), keys::OfferKey(*id),
                                 "offer " + req.path_rest + " (`gpunet offers` lists them)");
    if (!o) return ErrorResponse(o.error());
    MarketRoutes::OfferClasses classes;
    uint64_t reads = 0;  // one offer's class: bounded by a provider's sites and machines
    auto j = routes->OfferWithClass(*o, classes, reads);
    if (!j) return ErrorResponse(j.error());
    out["offer"] = std::move(*j);
    return JsonResponse(out);
  });
  server.Handle("GET", "/market/orders", [routes](const Request& req) {
    auto limit = LimitOf(req);
    if (!limit) return ErrorResponse(limit.error());
    return Answer(routes->Orders(req, *limit));
  });
  server.HandlePrefix("GET", "/market/order/", [routes](const Request& req) {
    std::string_view rest = req.path_rest;
    bool bids = rest.ends_with("/bids");
    if (bids) rest.remove_suffix(5);
    auto id = IdOf(rest, "order");
    if (!id) return ErrorResponse(id.error());
    return Answer(routes->Order(*id, bids));
  });
  server.HandlePrefix("GET", "/market/bid/", [routes](const Request& req) {
    auto id = IdOf(req.path_rest, "bid");
    if (!id) return ErrorResponse(id.error());
    json out = routes->Envelope();  // first: the record read below is at least this new
    auto b = Load<market::Bid>(routes->Kv(), keys::BidKey(*id),
                               "bid " + req.path_rest + " (`gpunet bids ORDER` lists them)");
    if (!b) return ErrorResponse(b.error());
    out["bid"] = BidJson(*b);
    return JsonResponse(out);
  });
  server.Handle("GET", "/market/leases", [routes](const Request& req) {
    auto limit = LimitOf(req);
    if (!limit) return ErrorResponse(limit.error());
    return Answer(routes->Leases(req, *limit));
  });
  server.HandlePrefix("GET", "/market/lease/", [routes](const Request& req) {
    auto id = IdOf(req.path_rest, "lease");
    if (!id) return ErrorResponse(id.error());
    return Answer(routes->Lease(*id));
  });
  server.Handle("GET", "/conservation",
                [routes](const Request&) { return routes->Conservation(); });
}

}  // namespace gpunet::node
