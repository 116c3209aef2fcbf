// The reference model: one branch per rule of docs/market.md, in the order the
// rules are listed there (where the doc does not fix which of two broken rules is
// reported, the order of checks is the natural one: find the object, check the
// signer, check the state, check the amounts, then move money).
#include "unit/market/reference_model.h"

#include <algorithm>
#include <tuple>
#include <variant>

#include "base/limits.h"
#include "codec/tx_result.h"

namespace gpunet::market::model {
namespace {

namespace limits = base::limits;
using codec::TxCode;
using u128 = unsigned __int128;
/// The model reads the spec's rules with a default genesis's market parameters.
const Params kMarket{};

constexpr uint16_t C(TxCode c) {
  return static_cast<uint16_t>(c);
}

constexpr uint64_t kHourMs = 3'600'000;

bool In(const std::vector<Address>& v, const Address& a) {
  return std::find(v.begin(), v.end(), a) != v.end();
}

/// floor(rate x (min(t, paid_until) - started) / 1h), never before the start.
uint64_t AccruedAt(const Lease& l, uint64_t t) {
  uint64_t end = std::min(t, l.paid_until);
  if (end < l.started) end = l.started;
  return static_cast<uint64_t>(u128(l.rate) * (end - l.started) / kHourMs);
}

uint64_t PaidUntil(uint64_t started, uint64_t deposited, uint64_t rate) {
  u128 ms = u128(deposited) * kHourMs / rate;
  u128 t = u128(started) + ms;
  return t > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(t);
}

bool SplitsOk(const std::vector<codec::PayoutSplit>& s) {
  if (s.empty() || s.size() > limits::kPayoutSplitsMax) return false;
  uint64_t sum = 0;
  for (const auto& p : s) {
    if (p.bp == 0 || p.bp > 10'000) return false;
    sum += p.bp;
  }
  return sum == 10'000;
}

std::vector<Split> ToSplits(const std::vector<codec::PayoutSplit>& s) {
  std::vector<Split> out;
  for (const auto& p : s) out.push_back({p.payee, p.bp});
  return out;
}

}  // namespace

uint32_t World::FreeGpus(const Address& provider, uint32_t machine) const {
  uint32_t used = 0;
  for (const auto& [id, l] : leases)
    if (l.provider == provider && l.state != State::kClosed)
      for (const auto& [m, g] : l.alloc)
        if (m == machine) used += g;
  return machines.at({provider, machine}).count - used;
}

uint32_t World::OpenLeases(const Address& provider) const {
  uint32_t n = 0;
  for (const auto& [id, l] : leases) n += l.provider == provider && l.state != State::kClosed;
  return n;
}

uint32_t World::StartedLeases(const Address& provider) const {
  uint32_t n = 0;
  for (const auto& [id, l] : leases) n += l.provider == provider && l.state == State::kStarted;
  return n;
}

uint32_t World::OpenOffers(const Address& provider) const {
  uint32_t n = 0;
  for (const auto& [id, o] : offers) n += o.provider == provider && o.open;
  return n;
}

uint32_t World::MachinesOnSite(const Address& provider, uint32_t site) const {
  uint32_t n = 0;
  for (const auto& [k, m] : machines) n += k.first == provider && m.site == site;
  return n;
}

/// The fault penalty of a lease at `rate` (the floor included), written out again.
static uint64_t PenaltyOf(uint64_t rate) {
  u128 want = u128(rate) * kMarket.fault_penalty_hours;
  uint64_t w = want > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(want);
  return w < kMarket.fault_penalty_floor_ugpn ? kMarket.fault_penalty_floor_ugpn : w;
}

uint64_t World::Promised(const Address& provider) const {
  u128 sum = 0;
  for (const auto& [id, l] : leases)
    if (l.provider == provider && l.state != State::kClosed) sum += PenaltyOf(l.rate);
  return sum > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(sum);
}

uint64_t World::HeartbeatDeadline(const Address& provider) const {
  if (StartedLeases(provider) == 0) return 0;
  return providers.at(provider).last_hb_ms + kMarket.heartbeat_timeout_ms + 1;
}

unsigned __int128 World::Total() const {
  u128 t = fees;
  for (const auto& [a, b] : balances) t += b;
  for (const auto& [a, p] : providers) {
    t += p.bond;
    for (const auto& [amount, release] : p.unbonding) t += amount;
  }
  for (const auto& [id, l] : leases) t += l.escrow;
  for (const auto& [id, o] : orders) t += o.deposit;
  return t;
}

void Model::Pay(World& world, Lease& l, uint64_t amount, bool service) {
  if (amount == 0) return;
  Provider& p = world.providers.at(l.provider);
  bool self = l.tenant == p.owner || l.tenant == p.op;
  for (const auto& s : p.splits) self = self || s.payee == l.tenant;
  if (service && !self) p.earned += amount;
  uint64_t given = 0;
  for (const auto& s : p.splits) {
    uint64_t share = static_cast<uint64_t>(u128(amount) * s.bp / 10'000);
    if (break_rounding) share = static_cast<uint64_t>((u128(amount) * s.bp + 9'999) / 10'000);
    world.balances[s.payee] += share;
    given += share;
  }
  world.balances[p.owner] += amount - given;  // the remainder (dust) to the owner
  l.escrow -= amount;
  l.paid += amount;
}

uint16_t Model::Unqualified(const Provider& p, const codec::ProviderRequirements& q) {
  if (In(q.excluded, p.owner) || p.bond < q.min_bond_ugpn || p.earned < q.min_earned_ugpn)
    return C(TxCode::kMarketProviderUnqualified);
  uint64_t history = p.completed + p.faults;
  uint64_t ppm = history == 0 ? 0 : static_cast<uint64_t>(u128(p.faults) * 1'000'000 / history);
  return ppm > q.max_fault_rate_ppm ? C(TxCode::kMarketProviderUnqualified) : 0;
}

bool Model::Admits(const Provider& p, const Address& tenant) {
  if (In(p.deny, tenant)) return false;
  return p.allow.empty() || In(p.allow, tenant);
}

uint16_t Model::Mismatch(const World& world, const Order& o, const Bid& b) const {
  const codec::Requirements& q = o.req;
  const Provider& p = world.providers.at(b.provider);
  if (b.machines.size() != q.machines) return C(TxCode::kMarketBidMismatch);
  if (!q.region.empty() && q.region != p.region) return C(TxCode::kMarketBidMismatch);
  uint32_t first_site = 0;
  for (uint32_t id : b.machines) {
    auto it = world.machines.find({b.provider, id});
    if (it == world.machines.end()) return C(TxCode::kMarketUnknownMachine);
    const Machine& m = it->second;
    bool ok = m.count >= q.gpus_per_machine;
    ok = ok && (q.gpu_models.empty() ||
                std::find(q.gpu_models.begin(), q.gpu_models.end(), m.model) != q.gpu_models.end());
    ok = ok && m.vram >= q.min_vram_gib && m.cuda >= q.min_cuda_version;
    if (first_site == 0) first_site = m.site;
    ok = ok && (!q.same_site || m.site == first_site);
    ok = ok && (q.fabric == codec::Fabric::kAny ||
                world.sites.at({b.provider, m.site}) == static_cast<uint8_t>(q.fabric));
    if (!ok) return C(TxCode::kMarketBidMismatch);
  }
  return 0;
}

/// Whether the provider's bond covers its open leases' penalties plus a new lease's
/// at `rate`: bond >= max(minimum, sum).
static bool Covers(const World& world, const Address& provider, uint64_t rate) {
  u128 sum = u128(world.Promised(provider)) + PenaltyOf(rate);
  u128 need = sum < kMarket.provider_bond_min_ugpn ? kMarket.provider_bond_min_ugpn : sum;
  return u128(world.providers.at(provider).bond) >= need;
}

uint16_t Model::Award(World& world, Order& o, const Bid& b, uint64_t height, uint64_t now) {
  const Provider& p = world.providers.at(b.provider);
  if (!p.active) return C(TxCode::kMarketProviderInactive);
  if (p.bond < kMarket.provider_bond_min_ugpn) return C(TxCode::kMarketBondTooLow);
  if (now > p.last_hb_ms + kMarket.heartbeat_timeout_ms) return C(TxCode::kMarketProviderOffline);
  if (!Admits(p, o.tenant)) return C(TxCode::kMarketNotAllowed);
  if (uint16_t c = Unqualified(p, o.providers)) return c;
  if (uint16_t c = Mismatch(world, o, b)) return c;
  u128 rate = u128(b.price) * o.req.machines * o.req.gpus_per_machine;
  if (rate > UINT64_MAX) return C(TxCode::kMarketAmountOverflow);
  if (u128(o.deposit) < rate * kMarket.deposit_min_hours) return C(TxCode::kMarketDepositTooLow);
  if (!Covers(world, b.provider, static_cast<uint64_t>(rate)))
    return C(TxCode::kMarketBondUncovered);
  for (uint32_t id : b.machines)
    if (world.FreeGpus(b.provider, id) < o.req.gpus_per_machine)
      return C(TxCode::kMarketNoCapacity);
  Lease l;
  l.id = world.next_lease++;
  l.tenant = o.tenant;
  l.provider = b.provider;
  l.order = o.id;
  for (uint32_t id : b.machines) l.alloc.push_back({id, o.req.gpus_per_machine});
  l.rate = static_cast<uint64_t>(rate);
  l.start_deadline = now + kMarket.lease_start_timeout_ms;
  l.created_height = height;
  l.deposited = l.escrow = o.deposit;
  world.leases[l.id] = l;
  o.deposit = 0;
  o.state = OrderState::kAwarded;
  o.lease = l.id;
  return 0;
}

void Model::Close(World& world, Lease& l, End end, uint64_t settle_ms, uint64_t now) {
  const bool started = l.state == State::kStarted;
  // A settlement point before a withdrawal (a heartbeat fault after the operator
  // withdrew past its last heartbeat) pays nothing more; what was paid stays paid.
  if (started && AccruedAt(l, settle_ms) > l.paid) Pay(world, l, AccruedAt(l, settle_ms) - l.paid);
  if (end == End::kTenant && now < l.start_deadline) {
    // Closing before the start deadline, started or not: the provider gets at least
    // max(10 minutes of the rate, floor) in all, at most the escrow.
    u128 held = u128(l.rate) * kMarket.reserved_close_charge_ms / kHourMs;
    u128 charge = held < kMarket.reserved_close_charge_floor_ugpn
                      ? u128(kMarket.reserved_close_charge_floor_ugpn)
                      : held;
    charge = charge > l.paid ? charge - l.paid : 0;
    l.charge = static_cast<uint64_t>(charge < l.escrow ? charge : u128(l.escrow));
    Pay(world, l, l.charge, false);
  }
  world.balances[l.tenant] += l.escrow;
  l.refunded += l.escrow;
  l.escrow = 0;
  Provider& p = world.providers.at(l.provider);
  // The penalty: in full for a fault and for a provider dropping a reservation; the
  // floor only for a provider closing a started lease; nothing otherwise.
  uint64_t want = 0;
  if (end == End::kMissedStart || end == End::kMissedHb || (end == End::kProvider && !started))
    want = PenaltyOf(l.rate);
  else if (end == End::kProvider)
    want = std::min(PenaltyOf(l.rate), kMarket.fault_penalty_floor_ugpn);
  bool self = l.tenant == p.owner || l.tenant == p.op;
  for (const auto& s : p.splits) self = self || s.payee == l.tenant;
  if (self) want = 0;  // the provider's own lease: no penalty to itself (no unbonding bypass)
  if (want > 0) {
    uint64_t pay = std::min(want, p.bond);
    p.bond -= pay;
    // Then unbonding stake not yet matured, the latest release first.
    for (size_t i = p.unbonding.size(); i > 0 && pay < want; --i) {
      auto& [amount, release] = p.unbonding[i - 1];
      if (release <= now) break;
      uint64_t take = std::min(want - pay, amount);
      amount -= take;
      pay += take;
    }
    std::erase_if(p.unbonding, [](const auto& e) { return e.first == 0; });
    world.balances[l.tenant] += pay;
    l.penalty = pay;
    p.penalties_paid += pay;
    p.penalties_unpaid += want - pay;
  }
  if (end == End::kMissedStart || end == End::kMissedHb || end == End::kProvider) {
    ++p.faults;
  } else if (started) {
    ++p.completed;
  }
  l.state = State::kClosed;
  l.end = end;
}

uint16_t Model::Tx(const Address& sender, const std::vector<codec::Msg>& msgs, uint64_t fee,
                   uint64_t height, uint64_t now_ms) {
  // Before inclusion (the pipeline's stage 1), message by message: the preflight
  // (stateless rules), then fee + the amounts the messages may take from the sender
  // must fit in 64 bits. Either refuses the tx unchanged: no fee, no nonce.
  u128 total = fee;
  for (const auto& msg : msgs) {
    if (uint16_t code = Preflight(msg)) return code;
    if (auto* m = std::get_if<codec::MsgProviderRegister>(&msg)) total += m->bond_ugpn;
    if (auto* m = std::get_if<codec::MsgProviderBond>(&msg)) total += m->amount_ugpn;
    if (auto* m = std::get_if<codec::MsgLeaseDeposit>(&msg)) total += m->amount_ugpn;
    if (auto* m = std::get_if<codec::MsgLeaseCreate>(&msg)) total += m->deposit_ugpn;
    if (auto* m = std::get_if<codec::MsgOrderCreate>(&msg)) total += m->deposit_ugpn;
    if (total > UINT64_MAX) return C(TxCode::kAmountOverflow);
  }
  w.balances[sender] -= fee;
  w.fees += fee;
  World trial = w;
  for (const auto& m : msgs) {
    uint16_t code = Apply(trial, sender, m, height, now_ms);
    if (code != 0) return code;  // all rolled back: w keeps only the fee
  }
  w = std::move(trial);
  return 0;
}

uint16_t Model::Preflight(const codec::Msg& msg) {
  auto count_ok = [](uint64_t v, uint64_t max) { return v >= 1 && v <= max; };
  if (auto* m = std::get_if<codec::MsgProviderRegister>(&msg)) {
    if (m->bond_ugpn < kMarket.provider_bond_min_ugpn) return C(TxCode::kMarketBondTooLow);
    return SplitsOk(m->payouts) ? 0 : C(TxCode::kMarketBadSplits);
  }
  if (auto* m = std::get_if<codec::MsgProviderUpdate>(&msg))
    return SplitsOk(m->payouts) ? 0 : C(TxCode::kMarketBadSplits);
  if (auto* m = std::get_if<codec::MsgProviderBond>(&msg))
    return m->amount_ugpn == 0 ? C(TxCode::kMarketZeroAmount) : 0;
  if (auto* m = std::get_if<codec::MsgProviderUnbond>(&msg))
    return m->amount_ugpn == 0 ? C(TxCode::kMarketZeroAmount) : 0;
  if (auto* m = std::get_if<codec::MsgSiteUpsert>(&msg))
    return m->site_id == 0 ? C(TxCode::kMarketInvalidField) : 0;
  if (auto* m = std::get_if<codec::MsgMachineUpsert>(&msg))
    return m->machine_id == 0 || !count_ok(m->gpu_count, limits::kGpusPerMachineMax)
               ? C(TxCode::kMarketInvalidField)
               : 0;
  if (auto* m = std::get_if<codec::MsgMachineRemove>(&msg))
    return m->machine_id == 0 ? C(TxCode::kMarketUnknownMachine) : 0;
  if (auto* m = std::get_if<codec::MsgOfferCreate>(&msg)) {
    uint64_t least = std::max<uint64_t>(m->min_hours, kMarket.deposit_min_hours);
    if (m->max_hours != 0 && m->max_hours < least) return C(TxCode::kMarketInvalidField);
    return m->price_ugpn_per_gpu_hour == 0 ? C(TxCode::kMarketZeroAmount) : 0;
  }
  if (auto* m = std::get_if<codec::MsgOfferClose>(&msg))
    return m->offer_id == 0 ? C(TxCode::kMarketUnknownOffer) : 0;
  if (auto* m = std::get_if<codec::MsgLeaseCreate>(&msg)) {
    if (!count_ok(m->machines, limits::kMachinesPerLeaseMax) ||
        !count_ok(m->gpus_per_machine, limits::kGpusPerMachineMax))
      return C(TxCode::kMarketInvalidField);
    return m->offer_id == 0 ? C(TxCode::kMarketUnknownOffer) : 0;
  }
  if (auto* m = std::get_if<codec::MsgOrderCreate>(&msg)) {
    const codec::Requirements& q = m->requirements;
    if (!count_ok(q.machines, limits::kMachinesPerLeaseMax) ||
        !count_ok(q.gpus_per_machine, limits::kGpusPerMachineMax))
      return C(TxCode::kMarketInvalidField);
    if (!q.attributes.empty() && q.auditors.empty()) return C(TxCode::kMarketInvalidField);
    if (m->max_price_ugpn_per_gpu_hour == 0) return C(TxCode::kMarketZeroAmount);
    if (m->bid_window_ms < kMarket.bid_window_min_ms ||
        m->bid_window_ms > kMarket.bid_window_max_ms)
      return C(TxCode::kMarketInvalidField);
    u128 rate = u128(m->max_price_ugpn_per_gpu_hour) * q.machines * q.gpus_per_machine;
    if (rate > UINT64_MAX) return C(TxCode::kMarketAmountOverflow);
    return u128(m->deposit_ugpn) < rate * kMarket.deposit_min_hours
               ? C(TxCode::kMarketDepositTooLow)
               : 0;
  }
  if (auto* m = std::get_if<codec::MsgOrderClose>(&msg))
    return m->order_id == 0 ? C(TxCode::kMarketUnknownOrder) : 0;
  if (auto* m = std::get_if<codec::MsgBidCreate>(&msg)) {
    if (m->order_id == 0) return C(TxCode::kMarketUnknownOrder);
    return m->price_ugpn_per_gpu_hour == 0 ? C(TxCode::kMarketZeroAmount) : 0;
  }
  if (auto* m = std::get_if<codec::MsgBidAccept>(&msg))
    return m->bid_id == 0 ? C(TxCode::kMarketUnknownBid) : 0;
  if (auto* m = std::get_if<codec::MsgBidWithdraw>(&msg))
    return m->bid_id == 0 ? C(TxCode::kMarketUnknownBid) : 0;
  if (auto* m = std::get_if<codec::MsgAttest>(&msg))
    return m->attributes.empty() ? C(TxCode::kMarketInvalidField) : 0;
  uint64_t lease_id = UINT64_MAX;  // messages on a lease: id 0 names none
  if (auto* m = std::get_if<codec::MsgLeaseStarted>(&msg)) lease_id = m->lease_id;
  if (auto* m = std::get_if<codec::MsgLeaseDeposit>(&msg)) {
    if (m->amount_ugpn == 0) return C(TxCode::kMarketZeroAmount);  // nothing to deposit
    lease_id = m->lease_id;
  }
  if (auto* m = std::get_if<codec::MsgLeaseWithdraw>(&msg)) lease_id = m->lease_id;
  if (auto* m = std::get_if<codec::MsgLeaseClose>(&msg)) lease_id = m->lease_id;
  return lease_id == 0 ? C(TxCode::kMarketUnknownLease) : 0;
}

uint16_t Model::Apply(World& world, const Address& s, const codec::Msg& msg, uint64_t height,
                      uint64_t now) {
  auto debit = [&](const Address& who, uint64_t amount) -> bool {
    if (world.balances[who] < amount) return false;
    world.balances[who] -= amount;
    return true;
  };
  auto is_op = [&](const Provider& p) { return s == p.owner || s == p.op; };

  if (auto* m = std::get_if<codec::MsgProviderRegister>(&msg)) {
    auto it = world.providers.find(s);
    if (it != world.providers.end() && it->second.active) return C(TxCode::kMarketProviderExists);
    if (!debit(s, m->bond_ugpn)) return C(TxCode::kMarketInsufficientFunds);
    Provider& p = world.providers[s];  // a returning provider keeps its history
    p.owner = s;
    p.op = m->operator_address;
    p.region = m->region;
    p.allow = m->policy.allow;
    p.deny = m->policy.deny;
    p.splits = ToSplits(m->payouts);
    p.active = true;
    p.bond += m->bond_ugpn;
    p.last_hb_ms = now;  // registration counts as a heartbeat
    p.last_hb_height = height;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgProviderUpdate>(&msg)) {
    auto it = world.providers.find(s);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!it->second.active) return C(TxCode::kMarketProviderInactive);
    it->second.op = m->operator_address;
    it->second.region = m->region;
    it->second.allow = m->policy.allow;
    it->second.deny = m->policy.deny;
    it->second.splits = ToSplits(m->payouts);
    return 0;
  }
  if (std::get_if<codec::MsgProviderDeregister>(&msg)) {
    auto it = world.providers.find(s);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    Provider& p = it->second;
    if (!p.active) return C(TxCode::kMarketProviderInactive);
    if (world.OpenLeases(s) > 0) return C(TxCode::kMarketOpenLeases);
    for (auto& [id, o] : world.offers)
      if (o.provider == s) o.open = false;
    if (p.bond > 0) {
      if (p.unbonding.size() >= limits::kUnbondingEntriesMax) return C(TxCode::kMarketLimitReached);
      p.unbonding.push_back({p.bond, now + kMarket.unbonding_delay_ms});
      p.bond = 0;
    }
    p.active = false;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgProviderBond>(&msg)) {
    auto it = world.providers.find(s);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!debit(s, m->amount_ugpn)) return C(TxCode::kMarketInsufficientFunds);
    it->second.bond += m->amount_ugpn;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgProviderUnbond>(&msg)) {
    auto it = world.providers.find(s);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    Provider& p = it->second;
    if (m->amount_ugpn > p.bond) return C(TxCode::kMarketInsufficientBond);
    if (world.OpenLeases(s) > 0 && p.bond - m->amount_ugpn < kMarket.provider_bond_min_ugpn)
      return C(TxCode::kMarketOpenLeases);
    if (p.bond - m->amount_ugpn < world.Promised(s)) return C(TxCode::kMarketBondUncovered);
    if (p.unbonding.size() >= limits::kUnbondingEntriesMax) return C(TxCode::kMarketLimitReached);
    p.bond -= m->amount_ugpn;
    p.unbonding.push_back({m->amount_ugpn, now + kMarket.unbonding_delay_ms});
    return 0;
  }
  if (std::get_if<codec::MsgProviderClaimUnbonded>(&msg)) {
    auto it = world.providers.find(s);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    Provider& p = it->second;
    uint64_t total = 0;
    std::vector<std::pair<uint64_t, uint64_t>> rest;
    for (const auto& e : p.unbonding) {
      if (e.second <= now)
        total += e.first;
      else
        rest.push_back(e);
    }
    if (total == 0) return C(TxCode::kMarketNothingToClaim);
    p.unbonding = rest;
    world.balances[s] += total;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgSiteUpsert>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    if (!it->second.active) return C(TxCode::kMarketProviderInactive);
    auto site = world.sites.find({m->provider, m->site_id});
    if (site != world.sites.end() && site->second != static_cast<uint8_t>(m->fabric) &&
        world.MachinesOnSite(m->provider, m->site_id) > 0)
      return C(TxCode::kMarketInventoryInUse);
    world.sites[{m->provider, m->site_id}] = static_cast<uint8_t>(m->fabric);
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgMachineUpsert>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    if (!it->second.active) return C(TxCode::kMarketProviderInactive);
    if (!world.sites.contains({m->provider, m->site_id})) return C(TxCode::kMarketUnknownSite);
    auto existing = world.machines.find({m->provider, m->machine_id});
    if (existing != world.machines.end()) {
      uint32_t leased = existing->second.count - world.FreeGpus(m->provider, m->machine_id);
      if (leased > 0 && (existing->second.site != m->site_id ||
                         existing->second.model != m->gpu_model || m->gpu_count < leased))
        return C(TxCode::kMarketInventoryInUse);
    }
    world.machines[{m->provider, m->machine_id}] =
        Machine{m->site_id, m->gpu_model, m->gpu_count, m->vram_gib, m->cuda_version};
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgMachineRemove>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    auto existing = world.machines.find({m->provider, m->machine_id});
    if (existing == world.machines.end()) return C(TxCode::kMarketUnknownMachine);
    if (world.FreeGpus(m->provider, m->machine_id) != existing->second.count)
      return C(TxCode::kMarketInventoryInUse);
    world.machines.erase(existing);
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgOfferCreate>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    if (!it->second.active) return C(TxCode::kMarketProviderInactive);
    if (it->second.bond < kMarket.provider_bond_min_ugpn) return C(TxCode::kMarketBondTooLow);
    if (m->site_id != 0 && !world.sites.contains({m->provider, m->site_id}))
      return C(TxCode::kMarketUnknownSite);
    if (world.OpenOffers(m->provider) >= limits::kOffersPerProviderMax)
      return C(TxCode::kMarketLimitReached);
    uint64_t id = world.next_offer++;
    world.offers[id] =
        Offer{id,         m->provider, m->gpu_model, m->site_id,  m->price_ugpn_per_gpu_hour,
              m->tenants, true,        m->min_hours, m->max_hours};
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgOfferClose>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    auto o = world.offers.find(m->offer_id);
    if (o == world.offers.end() || o->second.provider != m->provider)
      return C(TxCode::kMarketUnknownOffer);
    if (!o->second.open) return C(TxCode::kMarketOfferClosed);
    o->second.open = false;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgLeaseCreate>(&msg)) {
    auto o = world.offers.find(m->offer_id);
    if (o == world.offers.end()) return C(TxCode::kMarketUnknownOffer);
    const Offer offer = o->second;
    if (!offer.open) return C(TxCode::kMarketOfferClosed);
    if (!offer.tenants.empty() && !In(offer.tenants, s)) return C(TxCode::kMarketNotAllowed);
    const Provider& p = world.providers.at(offer.provider);
    if (!p.active) return C(TxCode::kMarketProviderInactive);
    if (p.bond < kMarket.provider_bond_min_ugpn) return C(TxCode::kMarketBondTooLow);
    if (now > p.last_hb_ms + kMarket.heartbeat_timeout_ms) return C(TxCode::kMarketProviderOffline);
    if (!Admits(p, s)) return C(TxCode::kMarketNotAllowed);
    u128 rate = u128(offer.price) * m->machines * m->gpus_per_machine;
    if (rate > UINT64_MAX) return C(TxCode::kMarketAmountOverflow);
    if (u128(m->deposit_ugpn) <
        rate * std::max<uint64_t>(kMarket.deposit_min_hours, offer.min_hours))
      return C(TxCode::kMarketDepositTooLow);
    if (offer.max_hours != 0 && u128(m->deposit_ugpn) > rate * offer.max_hours)
      return C(TxCode::kMarketDepositOverMax);
    // First fit: machines of the class with enough free GPUs, ascending id; one
    // machine: the first; several: the lowest site with enough, its lowest ids.
    std::map<uint32_t, std::vector<uint32_t>> fits;
    for (const auto& [k, mach] : world.machines) {
      if (k.first != offer.provider || mach.model != offer.model) continue;
      if (offer.site != 0 && mach.site != offer.site) continue;
      if (world.FreeGpus(offer.provider, k.second) < m->gpus_per_machine) continue;
      fits[m->machines == 1 ? 0 : mach.site].push_back(k.second);
    }
    std::vector<std::pair<uint32_t, uint32_t>> alloc;
    for (const auto& [site, ids] : fits) {
      if (ids.size() < m->machines) continue;
      for (uint32_t i = 0; i < m->machines; ++i) alloc.push_back({ids[i], m->gpus_per_machine});
      break;
    }
    if (alloc.empty()) return C(TxCode::kMarketNoCapacity);
    if (!debit(s, m->deposit_ugpn)) return C(TxCode::kMarketInsufficientFunds);
    if (!Covers(world, offer.provider, static_cast<uint64_t>(rate)))
      return C(TxCode::kMarketBondUncovered);
    Lease l;
    l.id = world.next_lease++;
    l.tenant = s;
    l.provider = offer.provider;
    l.alloc = alloc;
    l.rate = static_cast<uint64_t>(rate);
    l.start_deadline = now + kMarket.lease_start_timeout_ms;
    l.created_height = height;
    l.deposited = l.escrow = m->deposit_ugpn;
    l.max_hours = offer.max_hours;
    world.leases[l.id] = l;
    return 0;
  }

  if (auto* m = std::get_if<codec::MsgOrderCreate>(&msg)) {
    const codec::Requirements& q = m->requirements;  // its fields passed Preflight
    size_t open = 0;
    for (const auto& [id, o] : world.orders) open += o.tenant == s && o.state == OrderState::kOpen;
    if (open >= limits::kOpenOrdersPerAccountMax) return C(TxCode::kMarketLimitReached);
    if (!debit(s, m->deposit_ugpn)) return C(TxCode::kMarketInsufficientFunds);
    Order o;
    o.id = world.next_order++;
    o.tenant = s;
    o.req = q;
    o.max_price = m->max_price_ugpn_per_gpu_hour;
    o.deposit = m->deposit_ugpn;
    o.window_end = now + m->bid_window_ms;
    o.providers = m->providers;
    world.orders[o.id] = o;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgOrderClose>(&msg)) {
    auto it = world.orders.find(m->order_id);
    if (it == world.orders.end()) return C(TxCode::kMarketUnknownOrder);
    if (it->second.state != OrderState::kOpen) return C(TxCode::kMarketOrderClosed);
    if (it->second.tenant != s) return C(TxCode::kMarketNotParty);
    world.balances[s] += it->second.deposit;
    it->second.deposit = 0;
    it->second.state = OrderState::kClosed;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgBidCreate>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    if (!it->second.active) return C(TxCode::kMarketProviderInactive);
    if (it->second.bond < kMarket.provider_bond_min_ugpn) return C(TxCode::kMarketBondTooLow);
    auto o = world.orders.find(m->order_id);
    if (o == world.orders.end()) return C(TxCode::kMarketUnknownOrder);
    if (o->second.state != OrderState::kOpen) return C(TxCode::kMarketOrderClosed);
    if (now >= o->second.window_end) return C(TxCode::kMarketBidWindowClosed);
    if (!Admits(it->second, o->second.tenant)) return C(TxCode::kMarketNotAllowed);
    if (uint16_t c = Unqualified(it->second, o->second.providers)) return c;
    for (const auto& [id, b] : world.bids)
      if (b.order == m->order_id && b.provider == m->provider)
        return C(TxCode::kMarketDuplicateBid);
    if (o->second.bids >= limits::kBidsPerOrderMax) return C(TxCode::kMarketLimitReached);
    if (m->price_ugpn_per_gpu_hour > o->second.max_price) return C(TxCode::kMarketBidMismatch);
    Bid b{world.next_bid, m->order_id, m->provider, m->price_ugpn_per_gpu_hour, m->machine_ids};
    if (uint16_t c = Mismatch(world, o->second, b)) return c;
    ++world.next_bid;
    world.bids[b.id] = b;
    ++o->second.bids;
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgBidAccept>(&msg)) {
    auto b = world.bids.find(m->bid_id);
    if (b == world.bids.end()) return C(TxCode::kMarketUnknownBid);
    Order& o = world.orders.at(b->second.order);
    if (o.state != OrderState::kOpen) return C(TxCode::kMarketOrderClosed);
    if (o.tenant != s) return C(TxCode::kMarketNotParty);
    return Award(world, o, b->second, height, now);
  }
  if (auto* m = std::get_if<codec::MsgBidWithdraw>(&msg)) {
    // The bid's provider takes it back while its order is open and bidding: it is
    // gone (the provider may bid again) and the order counts one bid fewer.
    auto b = world.bids.find(m->bid_id);
    if (b == world.bids.end()) return C(TxCode::kMarketUnknownBid);
    if (!is_op(world.providers.at(b->second.provider))) return C(TxCode::kMarketNotOperator);
    Order& o = world.orders.at(b->second.order);
    if (o.state != OrderState::kOpen) return C(TxCode::kMarketOrderClosed);
    if (now >= o.window_end) return C(TxCode::kMarketBidWindowClosed);
    --o.bids;
    world.bids.erase(b);
    return 0;
  }

  // Messages on an existing lease.
  auto open_lease = [&](uint64_t id, Lease*& out) -> uint16_t {
    auto it = world.leases.find(id);
    if (it == world.leases.end()) return C(TxCode::kMarketUnknownLease);
    if (it->second.state == State::kClosed) return C(TxCode::kMarketLeaseState);
    out = &it->second;
    return 0;
  };
  Lease* l = nullptr;
  if (auto* m = std::get_if<codec::MsgLeaseStarted>(&msg)) {
    if (uint16_t c = open_lease(m->lease_id, l)) return c;
    Provider& p = world.providers.at(l->provider);
    if (!is_op(p)) return C(TxCode::kMarketNotOperator);
    // Past the deadline but still reserved (the grace blocks): still accepted.
    if (l->state != State::kReserved) return C(TxCode::kMarketLeaseState);
    l->state = State::kStarted;
    l->started = now;
    l->paid_until = PaidUntil(now, l->deposited, l->rate);
    p.last_hb_ms = now;
    p.last_hb_height = height;
    p.hb_grace_until = 0;  // a new heartbeat deadline
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgLeaseDeposit>(&msg)) {
    if (uint16_t c = open_lease(m->lease_id, l)) return c;
    if (l->state == State::kStarted && now >= l->paid_until) return C(TxCode::kMarketLeaseState);
    if (u128(l->deposited) + m->amount_ugpn > UINT64_MAX) return C(TxCode::kMarketAmountOverflow);
    if (l->max_hours != 0 && u128(l->deposited) + m->amount_ugpn > u128(l->rate) * l->max_hours)
      return C(TxCode::kMarketDepositOverMax);
    if (!debit(s, m->amount_ugpn)) return C(TxCode::kMarketInsufficientFunds);
    l->deposited += m->amount_ugpn;
    l->escrow += m->amount_ugpn;
    if (l->state == State::kStarted) l->paid_until = PaidUntil(l->started, l->deposited, l->rate);
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgLeaseWithdraw>(&msg)) {
    if (uint16_t c = open_lease(m->lease_id, l)) return c;
    if (!is_op(world.providers.at(l->provider))) return C(TxCode::kMarketNotOperator);
    if (l->state != State::kStarted) return C(TxCode::kMarketLeaseState);
    uint64_t due = AccruedAt(*l, now) - l->paid;
    if (due == 0) return C(TxCode::kMarketNothingToWithdraw);
    Pay(world, *l, due);
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgLeaseClose>(&msg)) {
    if (uint16_t c = open_lease(m->lease_id, l)) return c;
    const bool tenant = s == l->tenant;
    const bool provider = is_op(world.providers.at(l->provider));
    if (!tenant && !provider) return C(TxCode::kMarketNotParty);
    End end = tenant ? End::kTenant : End::kProvider;
    if (m->reason == codec::CloseReason::kNoManifest) {
      if (!provider) return C(TxCode::kMarketNotParty);
      if (l->state != State::kStarted) return C(TxCode::kMarketLeaseState);
      if (now < l->started + kMarket.manifest_timeout_ms) return C(TxCode::kMarketTooEarly);
      end = End::kNoManifest;
    }
    Close(world, *l, end, now, now);
    return 0;
  }
  if (auto* m = std::get_if<codec::MsgHeartbeat>(&msg)) {
    auto it = world.providers.find(m->provider);
    if (it == world.providers.end()) return C(TxCode::kMarketUnknownProvider);
    if (!is_op(it->second)) return C(TxCode::kMarketNotOperator);
    if (!it->second.active) return C(TxCode::kMarketProviderInactive);
    it->second.last_hb_ms = now;
    it->second.last_hb_height = height;
    it->second.hb_grace_until = 0;  // a new heartbeat deadline
    return 0;
  }
  return 0xfffe;  // a message the model does not cover: the test never sends one
}

bool Model::GraceOver(uint64_t& grace_until, uint64_t height) {
  if (grace_until == 0) grace_until = height + kMarket.heartbeat_grace_blocks;
  if (height > grace_until) return true;
  ++grace_waits;
  return false;
}

void Model::EndBlock(uint64_t height, uint64_t now) {
  // Awards: orders whose window ended, by (window end, id). Bids ranked by price,
  // then the provider's fault rate (ppm), then bid id; the first whose machines
  // have the GPUs free and that passes the award checks wins; none: refund.
  std::vector<std::pair<uint64_t, uint64_t>> ending;
  for (const auto& [id, o] : w.orders)
    if (o.state == OrderState::kOpen && o.window_end <= now) ending.push_back({o.window_end, id});
  std::sort(ending.begin(), ending.end());
  for (const auto& [t, order_id] : ending) {
    Order& o = w.orders.at(order_id);
    std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> ranked;
    for (const auto& [id, b] : w.bids) {
      if (b.order != order_id) continue;
      const Provider& p = w.providers.at(b.provider);
      uint64_t history = p.completed + p.faults;
      uint64_t ppm = history == 0 ? 0 : p.faults * 1'000'000 / history;
      ranked.push_back({b.price, ppm, id});
    }
    std::sort(ranked.begin(), ranked.end());
    bool awarded = false;
    for (const auto& [price, ppm, bid_id] : ranked) {
      const Bid& b = w.bids.at(bid_id);
      bool free = true;
      for (uint32_t id : b.machines)
        free = free && w.machines.contains({b.provider, id}) &&
               w.FreeGpus(b.provider, id) >= o.req.gpus_per_machine;
      if (free && Award(w, o, b, height, now) == 0) {
        awarded = true;
        break;
      }
    }
    if (!awarded) {
      w.balances[o.tenant] += o.deposit;
      o.deposit = 0;
      o.state = OrderState::kClosed;
    }
  }
  // Faults: missed starts, earliest deadline first (ids grow with creation time).
  for (auto& [id, l] : w.leases)
    if (l.state == State::kReserved && l.start_deadline <= now && GraceOver(l.grace_until, height))
      Close(w, l, End::kMissedStart, now, now);
  // Faults: silent providers, ordered by (deadline, owner).
  std::vector<std::pair<uint64_t, Address>> silent;
  for (auto& [owner, p] : w.providers) {
    uint64_t deadline = w.HeartbeatDeadline(owner);
    if (deadline != 0 && deadline <= now && GraceOver(p.hb_grace_until, height))
      silent.push_back({deadline, owner});
  }
  std::sort(silent.begin(), silent.end());
  for (const auto& [deadline, owner] : silent) {
    uint64_t last = w.providers.at(owner).last_hb_ms;
    for (auto& [id, l] : w.leases)
      if (l.provider == owner && l.state == State::kStarted)
        Close(w, l, l.paid_until <= last ? End::kExpired : End::kMissedHb,
              std::max(last, l.started), now);
  }
  // Expiries: settled at paid_until exactly, in (paid_until, id) order.
  std::vector<std::pair<uint64_t, uint64_t>> due;
  for (const auto& [id, l] : w.leases)
    if (l.state == State::kStarted && l.paid_until <= now) due.push_back({l.paid_until, id});
  std::sort(due.begin(), due.end());
  for (const auto& [t, id] : due) {
    Lease& l = w.leases.at(id);
    Close(w, l, End::kExpired, l.paid_until, now);
  }
}

}  // namespace gpunet::market::model
