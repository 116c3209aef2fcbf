// The rules of offers and leases: a lease made from an offer or an order's award,
// started, funded, withdrawn from and closed (settlement, refund, penalty)
// (architecture §3, docs/market.md).
#include "market/apply_internal.h"

#include "market/math.h"
#include "market/preflight.h"
#include "market/query.h"

namespace gpunet::market::internal {

namespace {

/// What a withdrawal or a close at `at_ms` pays the provider (query.h's accrual,
/// the one the RPC shows). 0 when the provider was already paid past `at_ms`: a
/// heartbeat fault settles at the last proof of life, which may precede a
/// withdrawal; what was withdrawn is kept (no claw-back) and the tenant gets the
/// escrow that is left. The lease's money invariants are checked here, where the
/// rules pay from it.
uint64_t DueAt(const Lease& l, uint64_t at_ms) {
  const LeaseAccrual a = AccrualAt(l, at_ms);
  GPUNET_CHECK(a.accrued_ugpn <= l.deposited_ugpn);
  GPUNET_CHECK(l.paid_ugpn <= l.deposited_ugpn);
  GPUNET_CHECK(a.unpaid_ugpn <= l.escrow_ugpn);
  return a.unpaid_ugpn;
}

/// Whether `who` is the provider itself: its owner, operator or one of its payees.
/// Money such a tenant pays goes back to the provider's own side.
bool IsSelf(const Provider& p, const codec::Address& who) {
  if (who == p.owner || who == p.operator_address) return true;
  return std::any_of(p.payouts.begin(), p.payouts.end(),
                     [&](const codec::PayoutSplit& s) { return s.payee == who; });
}

/// What a payment is for: GPU time (counts in the provider's earnings from other
/// tenants) or a reserved lease's close charge (does not).
enum class Pay : uint8_t { kService, kCharge };

/// Pays `amount` of the lease's escrow to the provider's payees. The caller saves p.
R<> PayProvider(Store& store, Provider& p, Lease& l, uint64_t amount, Pay what,
                std::vector<codec::Event>& events) {
  if (amount == 0) return {};
  GPUNET_CHECK(amount <= l.escrow_ugpn);
  // A lifetime total (cycled deposits can grow it past the supply): it saturates.
  if (what == Pay::kService && !IsSelf(p, l.tenant))
    p.earned_ugpn = SaturatingAdd(p.earned_ugpn, amount);
  auto shares = SplitPayout(amount, p.payouts, p.owner);
  codec::Event e = Ev("payout", {{"lease_id", Str(l.lease_id)}, {"amount_ugpn", Str(amount)}});
  size_t i = 0;
  uint64_t credited = 0;
  for (const auto& s : shares) {
    GPUNET_TRY(Credit(store, s.payee, s.amount_ugpn));
    credited += s.amount_ugpn;
    if (e.attributes.size() >= limits::kEventAttributesMax) {
      events.push_back(std::move(e));
      e = Ev("payout", {{"lease_id", Str(l.lease_id)}});
    }
    char name[16];
    std::snprintf(name, sizeof name, "payee_%02zu", i++);
    e.attributes[name] = AddrStr(s.payee) + "=" + Str(s.amount_ugpn);
  }
  events.push_back(std::move(e));
  GPUNET_CHECK(credited == amount);  // what the payees got is what leaves the escrow
  const uint64_t escrow_before = l.escrow_ugpn;
  l.escrow_ugpn -= amount;
  l.paid_ugpn += amount;
  GPUNET_CHECK(l.escrow_ugpn + amount == escrow_before);
  GPUNET_CHECK(l.paid_ugpn <= l.deposited_ugpn);
  return {};
}

void RemoveLeaseIndexes(Store& store, const Lease& l) {
  store.Delete(keys::PartyIndexKey(keys::kProviderOpenLeases, l.provider, l.lease_id));
  if (l.state == LeaseState::kReserved)
    store.Delete(keys::DeadlineIndexKey(keys::kStartIndex, l.start_deadline_ms, l.lease_id));
  if (l.state == LeaseState::kStarted)
    store.Delete(keys::DeadlineIndexKey(keys::kExpiryIndex, l.paid_until_ms, l.lease_id));
}

/// Ends that count against the provider's reputation: the two faults and a close by
/// the provider (walking away from a lease it took).
bool IsFault(LeaseEnd end) {
  return end == LeaseEnd::kMissedStart || end == LeaseEnd::kMissedHeartbeat ||
         end == LeaseEnd::kProviderClosed;
}

/// What the provider pays the tenant when a lease ends with `end`; `promised` is the
/// lease's FaultPenalty. The faults pay it in full, and so does a provider closing a
/// lease it has not started: otherwise a provider could win at 1 ugpn and close
/// before the start deadline for free (docs/market.md "Bonds", the floor). A started
/// lease closed by the provider pays the floor only: the tenant had what it paid for
/// until then, but leaving must not be free or start-then-close reopens that attack.
uint64_t PenaltyAtClose(LeaseEnd end, bool started, uint64_t promised, const Params& params) {
  if (end == LeaseEnd::kMissedStart || end == LeaseEnd::kMissedHeartbeat) return promised;
  if (end != LeaseEnd::kProviderClosed) return 0;
  return started ? std::min(promised, params.fault_penalty_floor_ugpn) : promised;
}

R<Lease> NeedOpenLease(const StoreView& view, uint64_t id) {
  GPUNET_TRY_ASSIGN(auto l, Need<Lease>(view, keys::LeaseKey(id), TxCode::kMarketUnknownLease,
                                        "no lease " + Str(id)));
  if (l.state == LeaseState::kClosed)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(id) + " is closed");
  return l;
}

/// What a close moved out of the escrow besides the payment for GPU time.
struct Settled {
  uint64_t charge_ugpn = 0;  ///< the reserved-close charge paid to the provider
  uint64_t refund_ugpn = 0;  ///< what the tenant got back
};

/// A close's money out of the escrow: the provider's due at `settle_ms`, the
/// reserved-close charge when the tenant walks away before the start deadline, the
/// rest back to the tenant. The escrow is empty afterwards.
R<Settled> EmptyEscrow(Store& store, const Params& params, const BlockTime& block, Provider& p,
                       Lease& l, LeaseEnd end, uint64_t settle_ms,
                       std::vector<codec::Event>& events) {
  const uint64_t escrow_before = l.escrow_ugpn;
  const uint64_t paid_before = l.paid_ugpn;
  GPUNET_TRY(PayProvider(store, p, l, DueAt(l, settle_ms), Pay::kService, events));
  // A tenant walking away before the start deadline pays for the capacity it held,
  // net of the GPU time it paid (so waiting for the start does not avoid it); not
  // once the deadline has passed (a provider that has not started is late).
  Settled settled;
  if (end == LeaseEnd::kTenantClosed && block.time_ms < l.start_deadline_ms) {
    settled.charge_ugpn =
        ReservedCloseCharge(l.rate_ugpn_per_hour, l.paid_ugpn, l.escrow_ugpn, params);
    GPUNET_TRY(PayProvider(store, p, l, settled.charge_ugpn, Pay::kCharge, events));
  }
  settled.refund_ugpn = l.escrow_ugpn;
  GPUNET_TRY(Credit(store, l.tenant, settled.refund_ugpn));
  l.refunded_ugpn += settled.refund_ugpn;
  l.escrow_ugpn = 0;
  // The escrow went out whole: to the provider or back to the tenant.
  GPUNET_CHECK(escrow_before == (l.paid_ugpn - paid_before) + settled.refund_ugpn);
  GPUNET_CHECK(l.deposited_ugpn == l.paid_ugpn + l.refunded_ugpn);
  return settled;
}

/// Releases the lease's promised penalty from the provider's cover and, when `end`
/// calls for one, draws the penalty (bond first, then unbonding stake not yet
/// matured) and pays it to the tenant.
R<> SettlePenalty(Store& store, const Params& params, const BlockTime& block, Provider& p, Lease& l,
                  LeaseEnd end, bool started) {
  const uint64_t promised = FaultPenalty(l.rate_ugpn_per_hour, params);
  GPUNET_CHECK(p.promised_penalties_ugpn >= promised);
  p.promised_penalties_ugpn -= promised;
  // A provider that leased from itself is owed nothing by itself: paying the penalty
  // would move bond to its own balance at once, past the unbonding delay.
  const uint64_t penalty = IsSelf(p, l.tenant) ? 0 : PenaltyAtClose(end, started, promised, params);
  GPUNET_CHECK(penalty <= promised);
  if (penalty == 0) return {};
  // From the bond (which covers every open lease's promised penalty), then from
  // unbonding stake that has not matured, to the tenant. What neither can pay is
  // recorded as unpaid (written off).
  const uint64_t bond_before = p.bond_ugpn;
  PenaltyDraw draw = DrawPenalty(p, penalty, block.time_ms);
  GPUNET_CHECK(p.bond_ugpn + draw.from_bond_ugpn == bond_before);
  GPUNET_CHECK(draw.Paid() <= penalty);
  GPUNET_TRY(Credit(store, l.tenant, draw.Paid()));
  l.penalty_ugpn = draw.Paid();
  p.penalties_paid_ugpn = SaturatingAdd(p.penalties_paid_ugpn, draw.Paid());
  p.penalties_unpaid_ugpn = SaturatingAdd(p.penalties_unpaid_ugpn, draw.unpaid_ugpn);
  return {};
}

/// Gives the lease's GPUs back to its machines.
R<> FreeGpus(Store& store, const Lease& l) {
  for (const auto& a : l.allocations) {
    GPUNET_TRY_ASSIGN(auto m, Need<Machine>(store, keys::MachineKey(l.provider, a.machine_id),
                                            TxCode::kMarketUnknownMachine,
                                            "machine of an open lease is missing"));
    GPUNET_CHECK(m.free_gpus + a.gpus <= m.gpu_count);
    m.free_gpus += a.gpus;
    Save(store, keys::MachineKey(l.provider, a.machine_id), m);
  }
  return {};
}

/// The machines an offer's lease takes: first fit in key order over the provider's
/// machines of the offer's class, one machine, or the lowest site id with enough
/// fitting machines (lowest ids first). Empty when none fit.
R<std::vector<Allocation>> FirstFit(const StoreView& view, const Provider& p, const Offer& offer,
                                    const codec::MsgLeaseCreate& m) {
  base::Bytes prefix = keys::KeyBuilder(keys::kMachine).Addr(p.owner);
  std::map<uint32_t, std::vector<uint32_t>> fits_by_site;
  std::optional<std::string> error;
  size_t seen = 0;
  auto scanned =
      view.Scan(prefix, keys::PrefixEnd(prefix), [&](base::ByteSpan key, base::ByteSpan value) {
        if (++seen > limits::kOfferScanMachinesMax) return false;
        auto machine = DecodeMachine(value);
        if (!machine) {
          error = machine.error().message;
          return false;
        }
        if (!InOfferClass(offer, *machine)) return true;
        if (!HasFreeGpus(*machine, m.gpus_per_machine)) return true;
        auto& fits = fits_by_site[m.machines == 1 ? 0 : machine->site_id];
        auto machine_key = keys::ParseMachineKey(key);
        if (!machine_key) {
          error = "market key " + base::ToHex(key) + " is not a machine key";
          return false;
        }
        fits.push_back(machine_key->id);
        return m.machines != 1;  // one machine: the first fit ends the scan
      });
  if (!scanned) return Op(scanned.error());
  if (error) return Op(base::Error{base::ErrorCode::kCorrupt, *error});
  std::vector<Allocation> allocations;
  for (const auto& [site, fits] : fits_by_site) {
    if (fits.size() < m.machines) continue;
    for (uint32_t i = 0; i < m.machines; ++i) allocations.push_back({fits[i], m.gpus_per_machine});
    break;
  }
  return allocations;
}

}  // namespace

/// Settles at `settle_ms` (accrual capped at paid_until), refunds the rest to the
/// tenant, applies the fault penalty when `end` is a fault, frees the GPUs and
/// updates the provider's counters. The one way a lease closes.
// Over 70 lines: settlement, refund, penalty and the provider's counters move money
// together, under one set of pre- and postconditions.
// NOLINTNEXTLINE(readability-function-size)
R<> CloseLease(Store& store, const Params& params, const BlockTime& block, Lease& l, LeaseEnd end,
               uint64_t settle_ms, std::vector<codec::Event>& events) {
  GPUNET_CHECK(l.state != LeaseState::kClosed);
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(store, l.provider));
  const bool started = l.state == LeaseState::kStarted;
  GPUNET_TRY_ASSIGN(const Settled settled,
                    EmptyEscrow(store, params, block, p, l, end, settle_ms, events));
  GPUNET_TRY(SettlePenalty(store, params, block, p, l, end, started));
  if (IsFault(end))
    ++p.faults;  // a provider close counts against reputation too
  else if (started)
    ++p.leases_completed;

  GPUNET_TRY(FreeGpus(store, l));
  RemoveLeaseIndexes(store, l);
  GPUNET_CHECK(p.open_leases > 0);
  --p.open_leases;
  if (started) {
    GPUNET_CHECK(p.started_leases > 0);
    if (--p.started_leases == 0) MoveHeartbeatDeadline(store, p, 0);
  }
  Save(store, keys::ProviderKey(p.owner), p);

  l.state = LeaseState::kClosed;
  l.end = end;
  l.closed_ms = block.time_ms;
  Save(store, keys::LeaseKey(l.lease_id), l);
  events.push_back(
      Ev("lease_closed", {{"lease_id", Str(l.lease_id)},
                          {"reason", std::string(LeaseEndName(end))},
                          {"paid_ugpn", Str(l.paid_ugpn)},
                          {"refund_ugpn", Str(settled.refund_ugpn)},
                          {"penalty_ugpn", Str(l.penalty_ugpn)},
                          {"charge_ugpn", Str(settled.charge_ugpn)},
                          {"settled_at_ms", Str(started ? AccrualEnd(l, settle_ms) : 0)},
                          {"tenant", AddrStr(l.tenant)},
                          {"provider", AddrStr(l.provider)}}));
  return {};
}

/// Creates a reserved lease of provider `p` on the terms: checks the provider's
/// lease limit, its bond's cover and each machine's free GPUs, then takes them.
R<uint64_t> CreateLease(Store& store, const Params& params, const BlockTime& block, Provider& p,
                        LeaseTerms terms, std::vector<codec::Event>& events) {
  const uint64_t rate = terms.rate_ugpn_per_hour;
  if (p.open_leases >= limits::kOpenLeasesPerProviderMax)
    return Reject(TxCode::kMarketLimitReached,
                  "provider has " + Str(p.open_leases) + " open leases, the limit is " +
                      Str(limits::kOpenLeasesPerProviderMax) + " (kOpenLeasesPerProviderMax)");
  const uint64_t penalty = FaultPenalty(rate, params);
  GPUNET_TRY(RequireCovers(p, penalty, params));
  for (const auto& a : terms.allocations) {
    GPUNET_TRY_ASSIGN(auto m,
                      Need<Machine>(store, keys::MachineKey(p.owner, a.machine_id),
                                    TxCode::kMarketUnknownMachine, "machine " + Str(a.machine_id)));
    if (!HasFreeGpus(m, a.gpus))
      return Reject(TxCode::kMarketNoCapacity, "machine " + Str(a.machine_id) + " has " +
                                                   Str(m.free_gpus) + " free GPUs, " + Str(a.gpus) +
                                                   " asked");
    m.free_gpus -= a.gpus;
    Save(store, keys::MachineKey(p.owner, a.machine_id), m);
  }
  GPUNET_TRY_ASSIGN(auto id, NextId(store, &Counters::next_lease_id));
  Lease l;
  l.lease_id = id;
  l.tenant = terms.tenant;
  l.provider = p.owner;
  l.offer_id = terms.offer_id;
  l.order_id = terms.order_id;
  l.allocations = std::move(terms.allocations);
  l.price_ugpn_per_gpu_hour = terms.price_ugpn_per_gpu_hour;
  l.rate_ugpn_per_hour = rate;
  l.manifest_hash = terms.manifest_hash;
  l.created_ms = block.time_ms;
  l.start_deadline_ms = block.time_ms + params.lease_start_timeout_ms;
  l.created_height = block.height;
  l.deposited_ugpn = terms.deposit_ugpn;
  l.escrow_ugpn = terms.deposit_ugpn;
  l.min_hours = terms.min_hours;
  l.max_hours = terms.max_hours;
  Save(store, keys::LeaseKey(id), l);
  store.Put(keys::DeadlineIndexKey(keys::kStartIndex, l.start_deadline_ms, id), {});
  store.Put(keys::PartyIndexKey(keys::kProviderOpenLeases, p.owner, id), {});
  store.Put(keys::PartyIndexKey(keys::kTenantLeases, l.tenant, id), {});
  store.Put(keys::PartyIndexKey(keys::kProviderLeases, p.owner, id), {});
  ++p.open_leases;
  p.promised_penalties_ugpn += penalty;  // covered: RequireCovers checked the sum
  Save(store, keys::ProviderKey(p.owner), p);
  events.push_back(Ev("lease_created", {{"lease_id", Str(id)},
                                        {"tenant", AddrStr(l.tenant)},
                                        {"provider", AddrStr(p.owner)},
                                        {"gpus", Str(l.Gpus())},
                                        {"machines", Str(l.allocations.size())},
                                        {"price_ugpn_per_gpu_hour", Str(l.price_ugpn_per_gpu_hour)},
                                        {"rate_ugpn_per_hour", Str(rate)},
                                        {"deposit_ugpn", Str(l.deposited_ugpn)},
                                        {"start_deadline_ms", Str(l.start_deadline_ms)},
                                        {"offer_id", Str(l.offer_id)},
                                        {"order_id", Str(l.order_id)}}));
  return id;
}

namespace {

/// The most a lease at `rate` from an offer with `max_hours` (> 0) may hold in
/// deposits over its life.
unsigned __int128 MostDeposited(uint64_t rate, uint32_t max_hours) {
  GPUNET_CHECK(max_hours > 0);
  return static_cast<unsigned __int128>(rate) * max_hours;
}

/// An offer's hours on a lease's first deposit (docs/market.md "Offers"): at least
/// min_hours of the rate (deposit_min_hours, checked before, when higher), at most
/// max_hours.
R<> RequireOfferHours(const Offer& offer, uint64_t deposit_ugpn, uint64_t rate) {
  const unsigned __int128 least = static_cast<unsigned __int128>(rate) * offer.min_hours;
  if (deposit_ugpn < least)
    return Reject(TxCode::kMarketDepositTooLow,
                  "deposit " + Str(deposit_ugpn) + " ugpn is under offer " + Str(offer.offer_id) +
                      "'s min_hours " + Str(offer.min_hours) + " at " + Str(rate) + " ugpn/hour (" +
                      base::U128ToString(least) + " ugpn)");
  if (offer.max_hours != 0 && deposit_ugpn > MostDeposited(rate, offer.max_hours))
    return Reject(TxCode::kMarketDepositOverMax,
                  "deposit " + Str(deposit_ugpn) + " ugpn is over offer " + Str(offer.offer_id) +
                      "'s max_hours " + Str(offer.max_hours) + " at " + Str(rate) +
                      " ugpn/hour: at most " +
                      base::U128ToString(MostDeposited(rate, offer.max_hours)) + " ugpn");
  return {};
}

}  // namespace

R<> Do(Ctx& c, const codec::MsgOfferCreate& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY(RequireInBusiness(p, c.params));
  if (m.site_id != 0) {
    GPUNET_TRY_ASSIGN(auto site, Load<Site>(c.store, keys::SiteKey(p.owner, m.site_id)));
    if (!site) return Reject(TxCode::kMarketUnknownSite, "provider has no site " + Str(m.site_id));
  }
  if (p.open_offers >= limits::kOffersPerProviderMax)
    return Reject(TxCode::kMarketLimitReached, "the provider has " + Str(p.open_offers) +
                                                   " open offers (kOffersPerProviderMax)");
  GPUNET_TRY_ASSIGN(auto id, NextId(c.store, &Counters::next_offer_id));
  Offer offer{id,        p.owner, m.gpu_model,     m.site_id,   m.price_ugpn_per_gpu_hour,
              m.tenants, true,    c.block.time_ms, m.min_hours, m.max_hours};
  Save(c.store, keys::OfferKey(id), offer);
  c.store.Put(keys::PartyIndexKey(keys::kProviderOpenOffers, p.owner, id), {});
  ++p.open_offers;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(
      Ev("offer_created", {{"offer_id", Str(id)},
                           {"provider", AddrStr(p.owner)},
                           {"gpu_model", m.gpu_model},
                           {"price_ugpn_per_gpu_hour", Str(m.price_ugpn_per_gpu_hour)},
                           {"private", m.tenants.empty() ? "false" : "true"},
                           {"min_hours", Str(m.min_hours)},
                           {"max_hours", Str(m.max_hours)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgOfferClose& m) {
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, m.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  GPUNET_TRY_ASSIGN(auto offer,
                    Need<Offer>(c.store, keys::OfferKey(m.offer_id), TxCode::kMarketUnknownOffer,
                                "no offer " + Str(m.offer_id)));
  if (offer.provider != p.owner)
    return Reject(TxCode::kMarketUnknownOffer,
                  "offer " + Str(m.offer_id) + " belongs to another provider");
  if (!offer.open) return Reject(TxCode::kMarketOfferClosed, "offer already closed");
  offer.open = false;
  Save(c.store, keys::OfferKey(m.offer_id), offer);
  c.store.Delete(keys::PartyIndexKey(keys::kProviderOpenOffers, p.owner, m.offer_id));
  --p.open_offers;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("offer_closed", {{"offer_id", Str(m.offer_id)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseCreate& m) {
  GPUNET_TRY_ASSIGN(auto offer,
                    Need<Offer>(c.store, keys::OfferKey(m.offer_id), TxCode::kMarketUnknownOffer,
                                "no offer " + Str(m.offer_id)));
  if (!offer.open)
    return Reject(TxCode::kMarketOfferClosed, "offer " + Str(m.offer_id) + " is closed");
  if (!offer.tenants.empty() && !Contains(offer.tenants, c.sender))
    return Reject(TxCode::kMarketNotAllowed, "offer " + Str(m.offer_id) + " is private");
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, offer.provider));
  GPUNET_TRY(RequireInBusiness(p, c.params));
  GPUNET_TRY(RequireOnline(p, c.block.time_ms, c.params));
  GPUNET_TRY(RequireAdmits(p, c.sender));
  GPUNET_TRY_ASSIGN(auto rate,
                    Rule(RateFor(offer.price_ugpn_per_gpu_hour, m.machines, m.gpus_per_machine)));
  GPUNET_TRY(Rule(RequireDeposit(m.deposit_ugpn, rate, c.params)));
  GPUNET_TRY(RequireOfferHours(offer, m.deposit_ugpn, rate));

  GPUNET_TRY_ASSIGN(std::vector<Allocation> allocations, FirstFit(c.store, p, offer, m));
  if (allocations.empty())
    return Reject(TxCode::kMarketNoCapacity,
                  "offer " + Str(m.offer_id) + " has no " + Str(m.machines) + " machine(s) with " +
                      Str(m.gpus_per_machine) + " free " + offer.gpu_model + " GPUs" +
                      (m.machines > 1 ? " on one site" : ""));
  std::sort(allocations.begin(), allocations.end(),
            [](const Allocation& a, const Allocation& b) { return a.machine_id < b.machine_id; });
  GPUNET_TRY(Debit(c.store, c.sender, m.deposit_ugpn, "deposit"));
  GPUNET_TRY(CreateLease(c.store, c.params, c.block, p,
                         LeaseTerms{.tenant = c.sender,
                                    .allocations = std::move(allocations),
                                    .price_ugpn_per_gpu_hour = offer.price_ugpn_per_gpu_hour,
                                    .rate_ugpn_per_hour = rate,
                                    .deposit_ugpn = m.deposit_ugpn,
                                    .manifest_hash = m.manifest_hash,
                                    .offer_id = offer.offer_id,
                                    .min_hours = offer.min_hours,
                                    .max_hours = offer.max_hours},
                         c.events));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseStarted& m) {
  GPUNET_TRY_ASSIGN(auto l, NeedOpenLease(c.store, m.lease_id));
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, l.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  // Still reserved means the missed-start fault has not fired: past the deadline,
  // during its grace blocks, the start is still accepted (a congested or halted
  // chain is not the provider's fault).
  if (l.state != LeaseState::kReserved)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(m.lease_id) + " already started");
  c.store.Delete(keys::DeadlineIndexKey(keys::kStartIndex, l.start_deadline_ms, l.lease_id));
  l.state = LeaseState::kStarted;
  l.started_ms = c.block.time_ms;
  uint64_t paid_ms = PaidMs(l.deposited_ugpn, l.rate_ugpn_per_hour);
  l.paid_until_ms = paid_ms > UINT64_MAX - l.started_ms ? UINT64_MAX : l.started_ms + paid_ms;
  c.store.Put(keys::DeadlineIndexKey(keys::kExpiryIndex, l.paid_until_ms, l.lease_id), {});
  Save(c.store, keys::LeaseKey(l.lease_id), l);
  // LeaseStarted is proof of life.
  ++p.started_leases;
  p.last_heartbeat_ms = c.block.time_ms;
  p.last_heartbeat_height = c.block.height;
  MoveHeartbeatDeadline(c.store, p, HeartbeatDeadline(c.block.time_ms, c.params));
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("lease_started", {{"lease_id", Str(l.lease_id)},
                                          {"started_ms", Str(l.started_ms)},
                                          {"paid_until_ms", Str(l.paid_until_ms)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseDeposit& m) {
  GPUNET_TRY_ASSIGN(auto l, NeedOpenLease(c.store, m.lease_id));
  if (l.state == LeaseState::kStarted && c.block.time_ms >= l.paid_until_ms)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(m.lease_id) + " ran out of funds at " +
                                                 Str(l.paid_until_ms) + " ms and is closing");
  auto deposited = base::CheckedAdd(l.deposited_ugpn, m.amount_ugpn);
  if (!deposited) return Reject(TxCode::kMarketAmountOverflow, "deposits exceed 2^64-1 ugpn");
  if (l.max_hours != 0 && *deposited > MostDeposited(l.rate_ugpn_per_hour, l.max_hours)) {
    const unsigned __int128 most = MostDeposited(l.rate_ugpn_per_hour, l.max_hours);
    return Reject(TxCode::kMarketDepositOverMax,
                  "lease " + Str(l.lease_id) + " is funded for at most " + Str(l.max_hours) +
                      " hours of its rate (its offer's max_hours): " + base::U128ToString(most) +
                      " ugpn in all; it has " + Str(l.deposited_ugpn) +
                      ", so it can take at most " + base::U128ToString(most - l.deposited_ugpn) +
                      " ugpn more");
  }
  GPUNET_TRY(Debit(c.store, c.sender, m.amount_ugpn, "deposit"));
  l.deposited_ugpn = *deposited;
  l.escrow_ugpn += m.amount_ugpn;
  // An open lease holds what was deposited and not yet paid out.
  GPUNET_CHECK(l.refunded_ugpn == 0);
  GPUNET_CHECK(l.paid_ugpn + l.escrow_ugpn == l.deposited_ugpn);
  if (l.state == LeaseState::kStarted) {
    c.store.Delete(keys::DeadlineIndexKey(keys::kExpiryIndex, l.paid_until_ms, l.lease_id));
    uint64_t paid_ms = PaidMs(l.deposited_ugpn, l.rate_ugpn_per_hour);
    l.paid_until_ms = paid_ms > UINT64_MAX - l.started_ms ? UINT64_MAX : l.started_ms + paid_ms;
    c.store.Put(keys::DeadlineIndexKey(keys::kExpiryIndex, l.paid_until_ms, l.lease_id), {});
  }
  Save(c.store, keys::LeaseKey(l.lease_id), l);
  c.events.push_back(Ev("lease_deposit", {{"lease_id", Str(l.lease_id)},
                                          {"amount_ugpn", Str(m.amount_ugpn)},
                                          {"from", AddrStr(c.sender)},
                                          {"paid_until_ms", Str(l.paid_until_ms)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseWithdraw& m) {
  GPUNET_TRY_ASSIGN(auto l, NeedOpenLease(c.store, m.lease_id));
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, l.provider));
  GPUNET_TRY(RequireOperator(p, c.sender));
  if (l.state != LeaseState::kStarted)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(m.lease_id) + " has not started");
  uint64_t due = DueAt(l, c.block.time_ms);
  if (due == 0)
    return Reject(TxCode::kMarketNothingToWithdraw,
                  "nothing accrued on lease " + Str(m.lease_id) + " since the last withdrawal");
  GPUNET_TRY(PayProvider(c.store, p, l, due, Pay::kService, c.events));
  Save(c.store, keys::LeaseKey(l.lease_id), l);
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev(
      "lease_withdrawn",
      {{"lease_id", Str(l.lease_id)}, {"amount_ugpn", Str(due)}, {"paid_ugpn", Str(l.paid_ugpn)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseClose& m) {
  GPUNET_TRY_ASSIGN(auto l, NeedOpenLease(c.store, m.lease_id));
  GPUNET_TRY_ASSIGN(auto p, NeedProvider(c.store, l.provider));
  const bool is_tenant = c.sender == l.tenant;
  const bool is_provider = c.sender == p.owner || c.sender == p.operator_address;
  if (!is_tenant && !is_provider)
    return Reject(TxCode::kMarketNotParty, "sender is neither the tenant nor the provider");
  LeaseEnd end = LeaseEnd::kTenantClosed;
  if (m.reason == codec::CloseReason::kNoManifest) {
    if (!is_provider)
      return Reject(TxCode::kMarketNotParty, "only the provider closes with reason no_manifest");
    if (l.state != LeaseState::kStarted)
      return Reject(TxCode::kMarketLeaseState, "no_manifest needs a started lease");
    if (c.block.time_ms < l.started_ms + c.params.manifest_timeout_ms)
      return Reject(TxCode::kMarketTooEarly, "no_manifest is allowed from " +
                                                 Str(l.started_ms + c.params.manifest_timeout_ms) +
                                                 " ms (start + manifest_timeout_ms)");
    end = LeaseEnd::kNoManifest;
  } else if (!is_tenant) {
    end = LeaseEnd::kProviderClosed;
  }
  return CloseLease(c.store, c.params, c.block, l, end, c.block.time_ms, c.events);
}

}  // namespace gpunet::market::internal
