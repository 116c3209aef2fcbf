// The rules of orders, bids and the auction: an order and its deposit, bids that
// match its requirements, the award by the tenant or at the window end
// (architecture §3, docs/market.md).
#include "market/apply_internal.h"

#include "market/math.h"
#include "market/preflight.h"
#include "market/query.h"

namespace gpunet::market::internal {

namespace {

R<bool> Attested(const StoreView& view, const codec::Address& provider, uint32_t machine_id,
                 const codec::Attribute& attribute, const std::vector<codec::Address>& auditors,
                 uint64_t now_ms) {
  for (const auto& auditor : auditors) {
    GPUNET_TRY_ASSIGN(
        auto a, Load<Attestation>(
                    view, keys::AttestationKey(provider, machine_id, attribute.key, auditor)));
    if (a && a->value == attribute.value && a->expires_at_ms > now_ms) return true;
  }
  return false;
}

/// Whether `machine_ids` of provider `p` meet the order's requirements now. The
/// reason when not.
R<std::optional<std::string>> Mismatch(const StoreView& view, const Provider& p,
                                       const codec::Requirements& q,
                                       const std::vector<uint32_t>& machine_ids, uint64_t now_ms) {
  if (machine_ids.size() != q.machines)
    return std::optional<std::string>("the order asks for " + Str(q.machines) +
                                      " machines, the bid names " + Str(machine_ids.size()));
  if (auto region = RegionMismatch(q, p)) return region;
  uint32_t first_site = 0;
  for (uint32_t id : machine_ids) {
    GPUNET_TRY_ASSIGN(
        auto m, Need<Machine>(view, keys::MachineKey(p.owner, id), TxCode::kMarketUnknownMachine,
                              "provider has no machine " + Str(id)));
    if (auto why = MachineMismatch(q, id, m)) return why;
    if (first_site == 0) first_site = m.site_id;
    if (q.same_site && m.site_id != first_site)
      return std::optional<std::string>("machine " + Str(id) +
                                        ": not on the same site as the first machine");
    if (q.fabric != codec::Fabric::kAny) {
      GPUNET_TRY_ASSIGN(auto site, Need<Site>(view, keys::SiteKey(p.owner, m.site_id),
                                              TxCode::kMarketUnknownSite, "site missing"));
      if (auto why = FabricMismatch(q, id, site.fabric)) return why;
    }
  }
  for (const auto& attribute : q.attributes) {
    GPUNET_TRY_ASSIGN(auto on_provider, Attested(view, p.owner, 0, attribute, q.auditors, now_ms));
    if (on_provider) continue;
    for (uint32_t id : machine_ids) {
      GPUNET_TRY_ASSIGN(auto on_machine,
                        Attested(view, p.owner, id, attribute, q.auditors, now_ms));
      if (!on_machine)
        return std::optional<std::string>("attribute " + attribute.key + "=" + attribute.value +
                                          " is not attested by a named auditor on the provider "
                                          "or machine " +
                                          Str(id));
    }
  }
  return std::optional<std::string>{};
}

/// Awards `order` to `bid` when its provider can serve and its machines are free
/// and still match; the refusal otherwise (the caller decides what it means).
R<uint64_t> Award(Store& store, const Params& params, const BlockTime& block, Order& order,
                  const Bid& bid, std::vector<codec::Event>& events) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(store, bid.provider));
  GPUNET_TRY(RequireInBusiness(p, params));
  // A bid outlives the daemon that made it, as an offer does: a provider gone quiet
  // is passed over (the award moves to the next bid) rather than made to fault.
  GPUNET_TRY(RequireOnline(p, block.time_ms, params));
  GPUNET_TRY(RequireAdmits(p, order.tenant));
  GPUNET_TRY(RequireQualifies(p, order.providers));
  const codec::Requirements& q = order.requirements;
  GPUNET_TRY_ASSIGN(auto mismatch, Mismatch(store, p, q, bid.machine_ids, block.time_ms));
  if (mismatch) return Reject(TxCode::kMarketBidMismatch, *mismatch);
  std::vector<Allocation> allocations;
  for (uint32_t id : bid.machine_ids) allocations.push_back({id, q.gpus_per_machine});
  GPUNET_TRY_ASSIGN(auto rate,
                    Rule(RateFor(bid.price_ugpn_per_gpu_hour, q.machines, q.gpus_per_machine)));
  GPUNET_TRY(Rule(RequireDeposit(order.deposit_ugpn, rate, params)));
  GPUNET_TRY_ASSIGN(auto lease_id,
                    CreateLease(store, params, block, p,
                                LeaseTerms{.tenant = order.tenant,
                                           .allocations = std::move(allocations),
                                           .price_ugpn_per_gpu_hour = bid.price_ugpn_per_gpu_hour,
                                           .rate_ugpn_per_hour = rate,
                                           .deposit_ugpn = order.deposit_ugpn,
                                           .manifest_hash = order.manifest_hash,
                                           .order_id = order.order_id},
                                events));
  order.deposit_ugpn = 0;
  order.state = OrderState::kAwarded;
  order.lease_id = lease_id;
  store.Delete(keys::DeadlineIndexKey(keys::kWindowIndex, order.window_end_ms, order.order_id));
  store.Delete(keys::PartyIndexKey(keys::kTenantOpenOrders, order.tenant, order.order_id));
  Save(store, keys::OrderKey(order.order_id), order);
  events.push_back(Ev("order_awarded", {{"order_id", Str(order.order_id)},
                                        {"bid_id", Str(bid.bid_id)},
                                        {"lease_id", Str(lease_id)},
                                        {"provider", AddrStr(bid.provider)}}));
  return lease_id;
}

/// Closes an open order and refunds its deposit.
R<> CloseOrder(Store& store, Order& order, std::string_view reason,
               std::vector<codec::Event>& events) {
  GPUNET_CHECK(order.state == OrderState::kOpen);
  const uint64_t refund = order.deposit_ugpn;
  GPUNET_TRY(Credit(store, order.tenant, refund));
  order.deposit_ugpn = 0;
  order.state = OrderState::kClosed;
  store.Delete(keys::DeadlineIndexKey(keys::kWindowIndex, order.window_end_ms, order.order_id));
  store.Delete(keys::PartyIndexKey(keys::kTenantOpenOrders, order.tenant, order.order_id));
  Save(store, keys::OrderKey(order.order_id), order);
  events.push_back(Ev("order_closed", {{"order_id", Str(order.order_id)},
                                       {"refund_ugpn", Str(refund)},
                                       {"reason", std::string(reason)}}));
  return {};
}

R<Order> NeedOpenOrder(const StoreView& view, uint64_t id) {
  GPUNET_TRY_ASSIGN(auto order, Need<Order>(view, keys::OrderKey(id), TxCode::kMarketUnknownOrder,
                                            "no order " + Str(id)));
  if (order.state != OrderState::kOpen)
    return Reject(TxCode::kMarketOrderClosed,
                  "order " + Str(id) + " is " + std::string(OrderStateName(order.state)));
  return order;
}

/// An open order whose bid window has not ended at `now_ms`: bids may be made or
/// withdrawn. `after` ends the refusal's message once the window has ended.
R<Order> NeedBiddingOrder(const StoreView& view, uint64_t id, uint64_t now_ms,
                          std::string_view after) {
  GPUNET_TRY_ASSIGN(auto order, NeedOpenOrder(view, id));
  if (now_ms >= order.window_end_ms)
    return Reject(TxCode::kMarketBidWindowClosed, "the bid window of order " + Str(id) +
                                                      " ended at " + Str(order.window_end_ms) +
                                                      " ms" + std::string(after));
  return order;
}

}  // namespace

R<> Do(Ctx& c, const codec::MsgOrderCreate& m) {
  // Counts, prices, the window and the deposit: Preflight.
  const codec::Requirements& q = m.requirements;
  base::Bytes prefix = keys::KeyBuilder(keys::kTenantOpenOrders).Addr(c.sender);
  GPUNET_TRY_ASSIGN(
      auto open, Keys(c.store, prefix, keys::PrefixEnd(prefix), limits::kOpenOrdersPerAccountMax));
  if (open.size() >= limits::kOpenOrdersPerAccountMax)
    return Reject(TxCode::kMarketLimitReached,
                  "this account has " + Str(open.size()) +
                      " open orders (kOpenOrdersPerAccountMax); close one first");
  GPUNET_TRY(Debit(c.store, c.sender, m.deposit_ugpn, "deposit"));
  GPUNET_TRY_ASSIGN(auto id, NextId(c.store, &Counters::next_order_id));
  Order order;
  order.order_id = id;
  order.tenant = c.sender;
  order.requirements = q;
  order.max_price_ugpn_per_gpu_hour = m.max_price_ugpn_per_gpu_hour;
  order.deposit_ugpn = m.deposit_ugpn;
  order.manifest_hash = m.manifest_hash;
  order.created_ms = c.block.time_ms;
  order.window_end_ms = c.block.time_ms + m.bid_window_ms;
  order.providers = m.providers;
  Save(c.store, keys::OrderKey(id), order);
  c.store.Put(keys::DeadlineIndexKey(keys::kWindowIndex, order.window_end_ms, id), {});
  c.store.Put(keys::PartyIndexKey(keys::kTenantOpenOrders, c.sender, id), {});
  c.events.push_back(Ev("order_created", {{"order_id", Str(id)},
                                          {"tenant", AddrStr(c.sender)},
                                          {"deposit_ugpn", Str(m.deposit_ugpn)},
                                          {"window_end_ms", Str(order.window_end_ms)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgOrderClose& m) {
  GPUNET_TRY_ASSIGN(auto order, NeedOpenOrder(c.store, m.order_id));
  if (order.tenant != c.sender)
    return Reject(TxCode::kMarketNotParty, "only the order's tenant may close it");
  return CloseOrder(c.store, order, "tenant", c.events);
}

R<> Do(Ctx& c, const codec::MsgBidCreate& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY(RequireInBusiness(p, c.params));
  GPUNET_TRY_ASSIGN(auto order, NeedBiddingOrder(c.store, m.order_id, c.block.time_ms, ""));
  GPUNET_TRY(RequireAdmits(p, order.tenant));
  GPUNET_TRY(RequireQualifies(p, order.providers));
  base::Bytes dedupe = keys::OrderProviderBidKey(m.order_id, p.owner);
  auto previous = c.store.Get(dedupe);
  if (!previous) return Op(previous.error());
  if (previous->has_value())
    return Reject(TxCode::kMarketDuplicateBid,
                  "provider " + AddrStr(p.owner) + " already bid on order " + Str(m.order_id));
  if (order.bids >= limits::kBidsPerOrderMax)
    return Reject(TxCode::kMarketLimitReached, "order " + Str(m.order_id) + " has " +
                                                   Str(order.bids) + " bids (kBidsPerOrderMax)");
  if (m.price_ugpn_per_gpu_hour > order.max_price_ugpn_per_gpu_hour)
    return Reject(TxCode::kMarketBidMismatch, "price " + Str(m.price_ugpn_per_gpu_hour) +
                                                  " is over the order's maximum " +
                                                  Str(order.max_price_ugpn_per_gpu_hour));
  GPUNET_TRY_ASSIGN(auto mismatch,
                    Mismatch(c.store, p, order.requirements, m.machine_ids, c.block.time_ms));
  if (mismatch) return Reject(TxCode::kMarketBidMismatch, *mismatch);
  GPUNET_TRY_ASSIGN(auto id, NextId(c.store, &Counters::next_bid_id));
  Bid bid{id, m.order_id, p.owner, m.price_ugpn_per_gpu_hour, m.machine_ids, c.block.time_ms};
  Save(c.store, keys::BidKey(id), bid);
  c.store.Put(keys::OrderBidKey(m.order_id, id), {});
  base::Bytes id_bytes;
  base::AppendU64BE(id_bytes, id);
  c.store.Put(dedupe, id_bytes);
  ++order.bids;
  Save(c.store, keys::OrderKey(m.order_id), order);
  c.events.push_back(
      Ev("bid_created", {{"bid_id", Str(id)},
                         {"order_id", Str(m.order_id)},
                         {"provider", AddrStr(p.owner)},
                         {"price_ugpn_per_gpu_hour", Str(m.price_ugpn_per_gpu_hour)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgBidAccept& m) {
  GPUNET_TRY_ASSIGN(auto bid, Need<Bid>(c.store, keys::BidKey(m.bid_id), TxCode::kMarketUnknownBid,
                                        "no bid " + Str(m.bid_id)));
  GPUNET_TRY_ASSIGN(auto order, NeedOpenOrder(c.store, bid.order_id));
  if (order.tenant != c.sender)
    return Reject(TxCode::kMarketNotParty, "only the order's tenant may accept a bid");
  GPUNET_TRY(Award(c.store, c.params, c.block, order, bid, c.events));
  return {};
}

R<> Do(Ctx& c, const codec::MsgBidWithdraw& m) {
  GPUNET_TRY_ASSIGN(auto bid, Need<Bid>(c.store, keys::BidKey(m.bid_id), TxCode::kMarketUnknownBid,
                                        "no bid " + Str(m.bid_id)));
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, bid.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  // Once the window has ended the bids are the auction's: the award ranks them as
  // they stood (a bid whose machines went elsewhere is passed over there anyway).
  GPUNET_TRY_ASSIGN(auto order, NeedBiddingOrder(c.store, bid.order_id, c.block.time_ms,
                                                 "; its bids stand until the award"));
  GPUNET_CHECK(order.bids > 0);
  // The bid, its entry in the order's bids and the provider's one-bid entry go
  // together, so the provider may bid again (other machines) and the order's count
  // stays the number of its bids.
  c.store.Delete(keys::BidKey(bid.bid_id));
  c.store.Delete(keys::OrderBidKey(order.order_id, bid.bid_id));
  c.store.Delete(keys::OrderProviderBidKey(order.order_id, bid.provider));
  --order.bids;
  Save(c.store, keys::OrderKey(order.order_id), order);
  c.events.push_back(Ev("bid_withdrawn", {{"bid_id", Str(bid.bid_id)},
                                          {"order_id", Str(order.order_id)},
                                          {"provider", AddrStr(bid.provider)}}));
  return {};
}

R<> AwardAtWindowEnd(Store& store, const Params& params, const BlockTime& block, uint64_t order_id,
                     std::vector<codec::Event>& events) {
  GPUNET_TRY_ASSIGN(auto order, Need<Order>(store, keys::OrderKey(order_id),
                                            TxCode::kMarketUnknownOrder, "order"));
  GPUNET_CHECK(order.state == OrderState::kOpen);
  base::Bytes prefix = keys::KeyBuilder(keys::kOrderBids).U64(order_id);
  GPUNET_TRY_ASSIGN(auto bid_keys,
                    Keys(store, prefix, keys::PrefixEnd(prefix), limits::kBidsPerOrderMax));
  std::vector<RankedBid> ranked;
  for (const auto& k : bid_keys) {
    GPUNET_TRY_ASSIGN(auto entry, Parsed(keys::ParseOrderBidKey(k), k));
    GPUNET_TRY_ASSIGN(
        auto bid, Need<Bid>(store, keys::BidKey(entry.bid_id), TxCode::kMarketUnknownBid, "bid"));
    GPUNET_TRY_ASSIGN(auto p, NeedProvider(store, bid.provider));
    ranked.push_back(RankBid(bid, p));
  }
  // The order GET /market/order/<id>/bids lists them in too (market/query.h).
  std::sort(ranked.begin(), ranked.end(), AuctionRanksBefore);
  for (const auto& r : ranked) {
    // No checkpoint at end of block: check capacity read-only first; Award's other
    // refusals all come before its first write.
    bool free = true;
    for (uint32_t id : r.bid.machine_ids) {
      GPUNET_TRY_ASSIGN(auto m, Load<Machine>(store, keys::MachineKey(r.bid.provider, id)));
      if (!m || !HasFreeGpus(*m, order.requirements.gpus_per_machine)) free = false;
    }
    if (!free) continue;
    auto awarded = Award(store, params, block, order, r.bid, events);
    if (awarded) return {};
    if (awarded.error().op) return std::unexpected(awarded.error());
    // Refused (provider out of business, machines no longer matching): next bid.
  }
  return CloseOrder(store, order, ranked.empty() ? "no_bids" : "no_bid_honourable", events);
}

}  // namespace gpunet::market::internal
