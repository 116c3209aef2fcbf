#include "market/apply.h"

#include <algorithm>
#include <map>
#include <string>
#include <type_traits>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/limits.h"
#include "crypto/address.h"
#include "market/keys.h"
#include "market/math.h"
#include "market/preflight.h"
#include "market/query.h"
#include "market/records.h"

namespace gpunet::market {

namespace limits = base::limits;
using codec::TxCode;
using codec::TxError;

namespace {

// ---------------------------------------------------------------- plumbing

/// Why a rule stopped: a refusal (tx) or an operational error (op).
struct Stop {
  std::optional<base::Error> op;
  TxError tx;
};
template <class T = void>
using R = std::expected<T, Stop>;

std::unexpected<Stop> Reject(TxCode code, std::string message) {
  return std::unexpected(Stop{std::nullopt, TxError{code, std::move(message)}});
}
std::unexpected<Stop> Op(base::Error e) {
  return std::unexpected(Stop{std::move(e), {}});
}
/// A refusal of preflight.h's functions as a rule's.
template <class T>
R<T> Rule(codec::TxResult<T> result) {
  if (!result) return std::unexpected(Stop{std::nullopt, std::move(result.error())});
  if constexpr (std::is_void_v<T>)
    return {};
  else
    return std::move(*result);
}

#define M_TRY(var, expr)                                                        \
  auto var##_result_ = (expr);                                                  \
  if (!var##_result_) return std::unexpected(std::move(var##_result_.error())); \
  auto& var = *var##_result_
#define M_DO(expr)                                                \
  do {                                                            \
    auto m_do_ = (expr);                                          \
    if (!m_do_) return std::unexpected(std::move(m_do_.error())); \
  } while (0)

std::string Str(uint64_t v) {
  return std::to_string(v);
}
std::string AddrStr(const codec::Address& a) {
  return crypto::AddressToString(a);
}

template <class T>
R<std::optional<T>> Load(const StoreView& view, const base::Bytes& key) {
  auto raw = view.Get(key);
  if (!raw) return Op(raw.error());
  if (!raw->has_value()) return std::optional<T>{};
  auto v = Decode<T>(**raw);
  if (!v)
    return Op(base::Error{base::ErrorCode::kCorrupt,
                          "market record at " + base::ToHex(key) + ": " + v.error().message});
  return std::optional<T>(std::move(*v));
}

template <class T>
R<T> Need(const StoreView& view, const base::Bytes& key, TxCode code, std::string what) {
  M_TRY(v, Load<T>(view, key));
  if (!v) return Reject(code, std::move(what));
  return std::move(*v);
}

template <class T>
void Save(Store& store, base::Bytes key, const T& record) {
  store.Put(std::move(key), Encode(record));
}

/// Keys in [begin, end), at most `max` of them.
R<std::vector<base::Bytes>> Keys(const StoreView& view, const base::Bytes& begin,
                                 const base::Bytes& end, size_t max) {
  std::vector<base::Bytes> out;
  auto s = view.Scan(begin, end, [&](base::ByteSpan key, base::ByteSpan) {
    if (out.size() >= max) return false;
    out.emplace_back(key.begin(), key.end());
    return true;
  });
  if (!s) return Op(s.error());
  return out;
}

/// What a keys::Parse* function read out of `key`, or kCorrupt when the key found
/// under a table's prefix is not of its layout.
template <class T>
R<T> Parsed(std::optional<T> parts, base::ByteSpan key) {
  if (!parts)
    return Op(base::Error{base::ErrorCode::kCorrupt,
                          "market key " + base::ToHex(key) + " is not of its table's layout"});
  return std::move(*parts);
}

codec::Event Ev(std::string type, std::map<std::string, std::string> attributes) {
  return codec::Event{"market." + type, std::move(attributes)};
}

// ---------------------------------------------------------------- money

/// a + b, at most UINT64_MAX: for lifetime counters that no rule depends on being
/// exact at 2^64 (a validator must not halt on them).
uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  auto sum = base::CheckedAdd(a, b);
  return sum ? *sum : UINT64_MAX;
}

R<> Debit(Store& store, const codec::Address& who, uint64_t amount, std::string_view what) {
  auto account = store.GetAccount(who);
  if (!account) return Op(account.error());
  if (account->balance_ugpn < amount)
    return Reject(TxCode::kMarketInsufficientFunds, std::string(what) + " of " + Str(amount) +
                                                        " ugpn, balance after the fee is " +
                                                        Str(account->balance_ugpn) + " ugpn");
  account->balance_ugpn -= amount;
  store.PutAccount(who, *account);
  return {};
}

R<> Credit(Store& store, const codec::Address& who, uint64_t amount) {
  if (amount == 0) return {};
  auto account = store.GetAccount(who);
  if (!account) return Op(account.error());
  auto sum = base::CheckedAdd(account->balance_ugpn, amount);
  // Every balance is part of a supply that fits in 64 bits (conservation).
  GPUNET_CHECK(sum.has_value());
  account->balance_ugpn = *sum;
  store.PutAccount(who, *account);
  return {};
}

// ---------------------------------------------------------------- providers

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
R<> RequireInBusiness(const Provider& p) {
  M_DO(RequireActive(p));
  if (p.bond_ugpn < limits::kProviderBondMinUgpn)
    return Reject(TxCode::kMarketBondTooLow, "bond " + Str(p.bond_ugpn) +
                                                 " ugpn is below the minimum of " +
                                                 Str(limits::kProviderBondMinUgpn) + " ugpn");
  return {};
}

bool Contains(const std::vector<codec::Address>& set, const codec::Address& a) {
  return std::binary_search(set.begin(), set.end(), a);
}

/// The bond covers the penalties of the open leases plus `extra_penalty` (a lease
/// about to be made): bond >= max(minimum, sum).
R<> RequireCovers(const Provider& p, uint64_t extra_penalty) {
  auto promised = base::CheckedAdd(p.promised_penalties_ugpn, extra_penalty);
  if (!promised || p.bond_ugpn < RequiredBond(*promised))
    return Reject(TxCode::kMarketBondUncovered,
                  "provider " + AddrStr(p.owner) + "'s bond " + Str(p.bond_ugpn) +
                      " ugpn does not cover the fault penalties of its open leases (" +
                      Str(p.promised_penalties_ugpn) + " ugpn) plus this lease's (" +
                      Str(extra_penalty) + " ugpn); the owner must bond more");
  return {};
}

/// Within the heartbeat timeout of its last proof of life (heartbeat, LeaseStarted
/// or registration): a provider that went away is not leased.
R<> RequireOnline(const Provider& p, uint64_t now_ms) {
  if (now_ms > p.last_heartbeat_ms + limits::kHeartbeatTimeoutMs)
    return Reject(TxCode::kMarketProviderOffline,
                  "provider " + AddrStr(p.owner) + "'s last heartbeat was at " +
                      Str(p.last_heartbeat_ms) + " ms, more than " +
                      Str(limits::kHeartbeatTimeoutMs) + " ms ago; lease from a live provider");
  return {};
}

/// The order's requirements on the provider (exclusions, bond, earnings from other
/// tenants, fault rate).
R<> RequireQualifies(const Provider& p, const codec::ProviderRequirements& q) {
  std::string at = "provider " + AddrStr(p.owner);
  if (Contains(q.excluded, p.owner))
    return Reject(TxCode::kMarketProviderUnqualified, at + " is excluded by the order");
  if (p.bond_ugpn < q.min_bond_ugpn)
    return Reject(TxCode::kMarketProviderUnqualified, at + " has a bond of " + Str(p.bond_ugpn) +
                                                          " ugpn, the order asks for " +
                                                          Str(q.min_bond_ugpn));
  if (p.earned_ugpn < q.min_earned_ugpn)
    return Reject(TxCode::kMarketProviderUnqualified,
                  at + " earned " + Str(p.earned_ugpn) +
                      " ugpn from other tenants, the order asks for " + Str(q.min_earned_ugpn));
  uint64_t rate = FaultRatePpm(p.leases_completed, p.faults);
  if (rate > q.max_fault_rate_ppm)
    return Reject(TxCode::kMarketProviderUnqualified, at + " has a fault rate of " + Str(rate) +
                                                          " ppm, the order allows " +
                                                          Str(q.max_fault_rate_ppm));
  return {};
}

R<> RequireAdmits(const Provider& p, const codec::Address& tenant) {
  if (Contains(p.policy.deny, tenant) ||
      (!p.policy.allow.empty() && !Contains(p.policy.allow, tenant)))
    return Reject(TxCode::kMarketNotAllowed,
                  "provider " + AddrStr(p.owner) + "'s policy does not admit " + AddrStr(tenant));
  return {};
}

void MoveHeartbeatDeadline(Store& store, Provider& p, uint64_t deadline_ms) {
  if (p.heartbeat_deadline_ms != 0)
    store.Delete(keys::HeartbeatIndexKey(p.heartbeat_deadline_ms, p.owner));
  p.heartbeat_deadline_ms = deadline_ms;
  if (deadline_ms != 0) store.Put(keys::HeartbeatIndexKey(deadline_ms, p.owner), {});
}

uint64_t HeartbeatDeadline(uint64_t last_ms) {
  return last_ms + limits::kHeartbeatTimeoutMs + 1;  // "longer than the timeout"
}

// ---------------------------------------------------------------- leases

Counters LoadCountersOr(const std::optional<Counters>& c) {
  return c ? *c : Counters{};
}

R<uint64_t> NextId(Store& store, uint64_t Counters::*field) {
  M_TRY(stored, Load<Counters>(store, keys::CountersKey()));
  Counters c = LoadCountersOr(stored);
  uint64_t id = c.*field;
  c.*field = id + 1;
  Save(store, keys::CountersKey(), c);
  return id;
}

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
  for (const auto& s : shares) {
    M_DO(Credit(store, s.payee, s.amount_ugpn));
    if (e.attributes.size() >= limits::kEventAttributesMax) {
      events.push_back(std::move(e));
      e = Ev("payout", {{"lease_id", Str(l.lease_id)}});
    }
    char name[16];
    std::snprintf(name, sizeof name, "payee_%02zu", i++);
    e.attributes[name] = AddrStr(s.payee) + "=" + Str(s.amount_ugpn);
  }
  events.push_back(std::move(e));
  l.escrow_ugpn -= amount;
  l.paid_ugpn += amount;
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
uint64_t PenaltyAtClose(LeaseEnd end, bool started, uint64_t promised) {
  if (end == LeaseEnd::kMissedStart || end == LeaseEnd::kMissedHeartbeat) return promised;
  if (end != LeaseEnd::kProviderClosed) return 0;
  return started ? std::min(promised, limits::kFaultPenaltyFloorUgpn) : promised;
}

/// Settles at `settle_ms` (accrual capped at paid_until), refunds the rest to the
/// tenant, applies the fault penalty when `end` is a fault, frees the GPUs and
/// updates the provider's counters. The one way a lease closes.
R<> CloseLease(Store& store, const BlockTime& block, Lease& l, LeaseEnd end, uint64_t settle_ms,
               std::vector<codec::Event>& events) {
  GPUNET_CHECK(l.state != LeaseState::kClosed);
  M_TRY(p, NeedProvider(store, l.provider));
  const bool started = l.state == LeaseState::kStarted;
  M_DO(PayProvider(store, p, l, DueAt(l, settle_ms), Pay::kService, events));
  // A tenant walking away before the start deadline pays for the capacity it held,
  // net of the GPU time it paid (so waiting for the start does not avoid it); not
  // once the deadline has passed (a provider that has not started is late).
  uint64_t charge = 0;
  if (end == LeaseEnd::kTenantClosed && block.time_ms < l.start_deadline_ms) {
    charge = ReservedCloseCharge(l.rate_ugpn_per_hour, l.paid_ugpn, l.escrow_ugpn);
    M_DO(PayProvider(store, p, l, charge, Pay::kCharge, events));
  }
  const uint64_t refund = l.escrow_ugpn;
  M_DO(Credit(store, l.tenant, refund));
  l.refunded_ugpn += refund;
  l.escrow_ugpn = 0;
  GPUNET_CHECK(l.deposited_ugpn == l.paid_ugpn + l.refunded_ugpn);

  const uint64_t promised = FaultPenalty(l.rate_ugpn_per_hour);
  GPUNET_CHECK(p.promised_penalties_ugpn >= promised);
  p.promised_penalties_ugpn -= promised;
  // A provider that leased from itself is owed nothing by itself: paying the penalty
  // would move bond to its own balance at once, past the unbonding delay.
  const uint64_t penalty = IsSelf(p, l.tenant) ? 0 : PenaltyAtClose(end, started, promised);
  GPUNET_CHECK(penalty <= promised);
  if (penalty > 0) {
    // From the bond (which covers every open lease's promised penalty), then from
    // unbonding stake that has not matured, to the tenant. What neither can pay is
    // recorded as unpaid (written off).
    PenaltyDraw draw = DrawPenalty(p, penalty, block.time_ms);
    M_DO(Credit(store, l.tenant, draw.Paid()));
    l.penalty_ugpn = draw.Paid();
    p.penalties_paid_ugpn = SaturatingAdd(p.penalties_paid_ugpn, draw.Paid());
    p.penalties_unpaid_ugpn = SaturatingAdd(p.penalties_unpaid_ugpn, draw.unpaid_ugpn);
  }
  if (IsFault(end))
    ++p.faults;  // a provider close counts against reputation too
  else if (started)
    ++p.leases_completed;

  for (const auto& a : l.allocations) {
    M_TRY(m, Need<Machine>(store, keys::MachineKey(l.provider, a.machine_id),
                           TxCode::kMarketUnknownMachine, "machine of an open lease is missing"));
    GPUNET_CHECK(m.free_gpus + a.gpus <= m.gpu_count);
    m.free_gpus += a.gpus;
    Save(store, keys::MachineKey(l.provider, a.machine_id), m);
  }
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
                          {"refund_ugpn", Str(refund)},
                          {"penalty_ugpn", Str(l.penalty_ugpn)},
                          {"charge_ugpn", Str(charge)},
                          {"settled_at_ms", Str(started ? AccrualEnd(l, settle_ms) : 0)},
                          {"tenant", AddrStr(l.tenant)},
                          {"provider", AddrStr(l.provider)}}));
  return {};
}

/// What a new lease is made of: from an offer (MsgLeaseCreate) or an order's award.
struct LeaseTerms {
  codec::Address tenant;
  std::vector<Allocation> allocations;  ///< ascending machine_id
  uint64_t price_ugpn_per_gpu_hour = 0;
  uint64_t rate_ugpn_per_hour = 0;  ///< price x GPUs (RateFor)
  uint64_t deposit_ugpn = 0;        ///< already taken from the tenant or the order
  codec::Hash32 manifest_hash;
  uint64_t offer_id = 0;  ///< 0 when from an order
  uint64_t order_id = 0;  ///< 0 when from an offer
};

/// Creates a reserved lease of provider `p` on the terms: checks the provider's
/// lease limit, its bond's cover and each machine's free GPUs, then takes them.
R<uint64_t> CreateLease(Store& store, const BlockTime& block, Provider& p, LeaseTerms terms,
                        std::vector<codec::Event>& events) {
  const uint64_t rate = terms.rate_ugpn_per_hour;
  if (p.open_leases >= limits::kOpenLeasesPerProviderMax)
    return Reject(TxCode::kMarketLimitReached,
                  "provider has " + Str(p.open_leases) + " open leases, the limit is " +
                      Str(limits::kOpenLeasesPerProviderMax) + " (kOpenLeasesPerProviderMax)");
  const uint64_t penalty = FaultPenalty(rate);
  M_DO(RequireCovers(p, penalty));
  for (const auto& a : terms.allocations) {
    M_TRY(m, Need<Machine>(store, keys::MachineKey(p.owner, a.machine_id),
                           TxCode::kMarketUnknownMachine, "machine " + Str(a.machine_id)));
    if (!HasFreeGpus(m, a.gpus))
      return Reject(TxCode::kMarketNoCapacity, "machine " + Str(a.machine_id) + " has " +
                                                   Str(m.free_gpus) + " free GPUs, " + Str(a.gpus) +
                                                   " asked");
    m.free_gpus -= a.gpus;
    Save(store, keys::MachineKey(p.owner, a.machine_id), m);
  }
  M_TRY(id, NextId(store, &Counters::next_lease_id));
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
  l.start_deadline_ms = block.time_ms + limits::kLeaseStartTimeoutMs;
  l.created_height = block.height;
  l.deposited_ugpn = terms.deposit_ugpn;
  l.escrow_ugpn = terms.deposit_ugpn;
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

// ---------------------------------------------------------------- matching

R<bool> Attested(const StoreView& view, const codec::Address& provider, uint32_t machine_id,
                 const codec::Attribute& attribute, const std::vector<codec::Address>& auditors,
                 uint64_t now_ms) {
  for (const auto& auditor : auditors) {
    M_TRY(a, Load<Attestation>(view,
                               keys::AttestationKey(provider, machine_id, attribute.key, auditor)));
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
  if (!q.region.empty() && q.region != p.region)
    return std::optional<std::string>("provider region '" + p.region + "', the order wants '" +
                                      q.region + "'");
  uint32_t first_site = 0;
  for (uint32_t id : machine_ids) {
    M_TRY(m, Need<Machine>(view, keys::MachineKey(p.owner, id), TxCode::kMarketUnknownMachine,
                           "provider has no machine " + Str(id)));
    std::string at = "machine " + Str(id) + ": ";
    if (m.gpu_count < q.gpus_per_machine)
      return std::optional<std::string>(at + Str(m.gpu_count) + " GPUs, the order wants " +
                                        Str(q.gpus_per_machine) + " per machine");
    if (!q.gpu_models.empty() &&
        !std::binary_search(q.gpu_models.begin(), q.gpu_models.end(), m.gpu_model))
      return std::optional<std::string>(at + "model " + m.gpu_model + " is not accepted");
    if (m.vram_gib < q.min_vram_gib)
      return std::optional<std::string>(at + "VRAM below the minimum");
    if (m.cuda_version < q.min_cuda_version)
      return std::optional<std::string>(at + "CUDA version below the minimum");
    if (first_site == 0) first_site = m.site_id;
    if (q.same_site && m.site_id != first_site)
      return std::optional<std::string>(at + "not on the same site as the first machine");
    if (q.fabric != codec::Fabric::kAny) {
      M_TRY(site, Need<Site>(view, keys::SiteKey(p.owner, m.site_id), TxCode::kMarketUnknownSite,
                             "site missing"));
      if (site.fabric != q.fabric)
        return std::optional<std::string>(at + "site fabric does not match");
    }
  }
  for (const auto& attribute : q.attributes) {
    M_TRY(on_provider, Attested(view, p.owner, 0, attribute, q.auditors, now_ms));
    if (on_provider) continue;
    for (uint32_t id : machine_ids) {
      M_TRY(on_machine, Attested(view, p.owner, id, attribute, q.auditors, now_ms));
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
R<uint64_t> Award(Store& store, const BlockTime& block, Order& order, const Bid& bid,
                  std::vector<codec::Event>& events) {
  M_TRY(p, NeedProvider(store, bid.provider));
  M_DO(RequireInBusiness(p));
  // A bid outlives the daemon that made it, as an offer does: a provider gone quiet
  // is passed over (the award moves to the next bid) rather than made to fault.
  M_DO(RequireOnline(p, block.time_ms));
  M_DO(RequireAdmits(p, order.tenant));
  M_DO(RequireQualifies(p, order.providers));
  const codec::Requirements& q = order.requirements;
  M_TRY(mismatch, Mismatch(store, p, q, bid.machine_ids, block.time_ms));
  if (mismatch) return Reject(TxCode::kMarketBidMismatch, *mismatch);
  std::vector<Allocation> allocations;
  for (uint32_t id : bid.machine_ids) allocations.push_back({id, q.gpus_per_machine});
  M_TRY(rate, Rule(RateFor(bid.price_ugpn_per_gpu_hour, q.machines, q.gpus_per_machine)));
  M_DO(Rule(RequireDeposit(order.deposit_ugpn, rate)));
  M_TRY(lease_id, CreateLease(store, block, p,
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

// ---------------------------------------------------------------- messages

struct Ctx {
  Store& store;
  const BlockTime& block;
  const codec::Address& sender;
  std::vector<codec::Event>& events;
};

R<> Do(Ctx& c, const codec::MsgProviderRegister& m) {
  M_TRY(existing, Load<Provider>(c.store, keys::ProviderKey(c.sender)));
  if (existing && existing->active)
    return Reject(TxCode::kMarketProviderExists,
                  "provider " + AddrStr(c.sender) + " is already registered");
  if (m.bond_ugpn < limits::kProviderBondMinUgpn)
    return Reject(TxCode::kMarketBondTooLow, "bond " + Str(m.bond_ugpn) +
                                                 " ugpn is below the minimum of " +
                                                 Str(limits::kProviderBondMinUgpn) + " ugpn");
  M_DO(Debit(c.store, c.sender, m.bond_ugpn, "bond"));
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
  p.bond_ugpn += m.bond_ugpn;
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
  M_TRY(p, NeedProvider(c.store, c.sender));
  M_DO(RequireOwner(p, c.sender));
  M_DO(RequireActive(p));
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

R<> StartUnbonding(Ctx& c, Provider& p, uint64_t amount) {
  if (p.unbonding.size() >= limits::kUnbondingEntriesMax)
    return Reject(TxCode::kMarketLimitReached,
                  Str(p.unbonding.size()) + " unbondings pending, the limit is " +
                      Str(limits::kUnbondingEntriesMax) + "; claim matured ones first");
  p.bond_ugpn -= amount;
  uint64_t release = c.block.time_ms + limits::kBondUnbondingDelayMs;
  p.unbonding.push_back(Unbonding{amount, release});
  c.events.push_back(Ev("provider_unbonding", {{"provider", AddrStr(p.owner)},
                                               {"amount_ugpn", Str(amount)},
                                               {"release_ms", Str(release)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderDeregister&) {
  M_TRY(p, NeedProvider(c.store, c.sender));
  M_DO(RequireOwner(p, c.sender));
  M_DO(RequireActive(p));
  if (p.open_leases > 0)
    return Reject(TxCode::kMarketOpenLeases,
                  "provider has " + Str(p.open_leases) + " open leases; they must end first");
  // Open offers close with the provider (at most kOffersPerProviderMax).
  base::Bytes prefix = keys::KeyBuilder(keys::kProviderOpenOffers).Addr(p.owner);
  M_TRY(offer_keys, Keys(c.store, prefix, keys::PrefixEnd(prefix), limits::kOffersPerProviderMax));
  for (const auto& k : offer_keys) {
    M_TRY(entry, Parsed(keys::ParsePartyIndexKey(keys::kProviderOpenOffers, k), k));
    const uint64_t id = entry.id;
    M_TRY(offer, Need<Offer>(c.store, keys::OfferKey(id), TxCode::kMarketUnknownOffer, "offer"));
    offer.open = false;
    Save(c.store, keys::OfferKey(id), offer);
    c.store.Delete(k);
  }
  p.open_offers = 0;
  if (p.bond_ugpn > 0) M_DO(StartUnbonding(c, p, p.bond_ugpn));
  p.active = false;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("provider_deregistered", {{"provider", AddrStr(p.owner)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderBond& m) {
  M_TRY(p, NeedProvider(c.store, c.sender));
  M_DO(RequireOwner(p, c.sender));
  M_DO(Debit(c.store, c.sender, m.amount_ugpn, "bond"));
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
  M_TRY(p, NeedProvider(c.store, c.sender));
  M_DO(RequireOwner(p, c.sender));
  if (m.amount_ugpn > p.bond_ugpn)
    return Reject(TxCode::kMarketInsufficientBond,
                  "unbond of " + Str(m.amount_ugpn) + " ugpn, the bond is " + Str(p.bond_ugpn));
  // With open leases the bond stays at RequiredBond (without, nothing is promised);
  // the code says which part of it the unbond would break.
  GPUNET_CHECK(p.open_leases > 0 || p.promised_penalties_ugpn == 0);
  const uint64_t left = p.bond_ugpn - m.amount_ugpn;
  const uint64_t required = p.open_leases > 0 ? RequiredBond(p.promised_penalties_ugpn) : 0;
  if (left < required && left < limits::kProviderBondMinUgpn)
    return Reject(TxCode::kMarketOpenLeases,
                  "the bond may not drop below the minimum while leases are open");
  if (left < required)
    return Reject(TxCode::kMarketBondUncovered,
                  "the bond may not drop below the fault penalties of the open leases (" +
                      Str(p.promised_penalties_ugpn) + " ugpn); at most " +
                      Str(p.bond_ugpn - p.promised_penalties_ugpn) + " ugpn can be unbonded now");
  M_DO(StartUnbonding(c, p, m.amount_ugpn));
  Save(c.store, keys::ProviderKey(p.owner), p);
  return {};
}

R<> Do(Ctx& c, const codec::MsgProviderClaimUnbonded&) {
  M_TRY(p, NeedProvider(c.store, c.sender));
  M_DO(RequireOwner(p, c.sender));
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
  M_DO(Credit(c.store, p.owner, total));
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(
      Ev("provider_unbonded", {{"provider", AddrStr(p.owner)}, {"amount_ugpn", Str(total)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgSiteUpsert& m) {
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_DO(RequireActive(p));
  M_TRY(existing, Load<Site>(c.store, keys::SiteKey(p.owner, m.site_id)));
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
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_DO(RequireActive(p));
  M_TRY(site, Need<Site>(c.store, keys::SiteKey(p.owner, m.site_id), TxCode::kMarketUnknownSite,
                         "provider has no site " + Str(m.site_id)));
  M_TRY(existing, Load<Machine>(c.store, keys::MachineKey(p.owner, m.machine_id)));
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
      M_TRY(old_site, Need<Site>(c.store, keys::SiteKey(p.owner, existing->site_id),
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
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_TRY(machine, Need<Machine>(c.store, keys::MachineKey(p.owner, m.machine_id),
                               TxCode::kMarketUnknownMachine,
                               "provider has no machine " + Str(m.machine_id)));
  if (LeasedGpus(machine) > 0)
    return Reject(TxCode::kMarketInventoryInUse, Str(LeasedGpus(machine)) + " GPUs of machine " +
                                                     Str(m.machine_id) + " are leased");
  M_TRY(site, Need<Site>(c.store, keys::SiteKey(p.owner, machine.site_id),
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

R<> Do(Ctx& c, const codec::MsgOfferCreate& m) {
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_DO(RequireInBusiness(p));
  if (m.site_id != 0) {
    M_TRY(site, Load<Site>(c.store, keys::SiteKey(p.owner, m.site_id)));
    if (!site) return Reject(TxCode::kMarketUnknownSite, "provider has no site " + Str(m.site_id));
  }
  if (p.open_offers >= limits::kOffersPerProviderMax)
    return Reject(TxCode::kMarketLimitReached, "the provider has " + Str(p.open_offers) +
                                                   " open offers (kOffersPerProviderMax)");
  M_TRY(id, NextId(c.store, &Counters::next_offer_id));
  Offer offer{id,        p.owner, m.gpu_model,    m.site_id, m.price_ugpn_per_gpu_hour,
              m.tenants, true,    c.block.time_ms};
  Save(c.store, keys::OfferKey(id), offer);
  c.store.Put(keys::PartyIndexKey(keys::kProviderOpenOffers, p.owner, id), {});
  ++p.open_offers;
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(
      Ev("offer_created", {{"offer_id", Str(id)},
                           {"provider", AddrStr(p.owner)},
                           {"gpu_model", m.gpu_model},
                           {"price_ugpn_per_gpu_hour", Str(m.price_ugpn_per_gpu_hour)},
                           {"private", m.tenants.empty() ? "false" : "true"}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgOfferClose& m) {
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_TRY(offer, Need<Offer>(c.store, keys::OfferKey(m.offer_id), TxCode::kMarketUnknownOffer,
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
  M_TRY(offer, Need<Offer>(c.store, keys::OfferKey(m.offer_id), TxCode::kMarketUnknownOffer,
                           "no offer " + Str(m.offer_id)));
  if (!offer.open)
    return Reject(TxCode::kMarketOfferClosed, "offer " + Str(m.offer_id) + " is closed");
  if (!offer.tenants.empty() && !Contains(offer.tenants, c.sender))
    return Reject(TxCode::kMarketNotAllowed, "offer " + Str(m.offer_id) + " is private");
  M_TRY(p, NeedProvider(c.store, offer.provider));
  M_DO(RequireInBusiness(p));
  M_DO(RequireOnline(p, c.block.time_ms));
  M_DO(RequireAdmits(p, c.sender));
  M_TRY(rate, Rule(RateFor(offer.price_ugpn_per_gpu_hour, m.machines, m.gpus_per_machine)));
  M_DO(Rule(RequireDeposit(m.deposit_ugpn, rate)));

  // First fit in key order over the provider's machines of the offer's class: one
  // machine, or the lowest site id with enough fitting machines (lowest ids first).
  base::Bytes prefix = keys::KeyBuilder(keys::kMachine).Addr(p.owner);
  std::map<uint32_t, std::vector<uint32_t>> fits_by_site;
  std::optional<std::string> error;
  size_t seen = 0;
  auto scanned =
      c.store.Scan(prefix, keys::PrefixEnd(prefix), [&](base::ByteSpan key, base::ByteSpan value) {
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
  if (allocations.empty())
    return Reject(TxCode::kMarketNoCapacity,
                  "offer " + Str(m.offer_id) + " has no " + Str(m.machines) + " machine(s) with " +
                      Str(m.gpus_per_machine) + " free " + offer.gpu_model + " GPUs" +
                      (m.machines > 1 ? " on one site" : ""));
  std::sort(allocations.begin(), allocations.end(),
            [](const Allocation& a, const Allocation& b) { return a.machine_id < b.machine_id; });
  M_DO(Debit(c.store, c.sender, m.deposit_ugpn, "deposit"));
  M_DO(CreateLease(c.store, c.block, p,
                   LeaseTerms{.tenant = c.sender,
                              .allocations = std::move(allocations),
                              .price_ugpn_per_gpu_hour = offer.price_ugpn_per_gpu_hour,
                              .rate_ugpn_per_hour = rate,
                              .deposit_ugpn = m.deposit_ugpn,
                              .manifest_hash = m.manifest_hash,
                              .offer_id = offer.offer_id},
                   c.events));
  return {};
}

R<> Do(Ctx& c, const codec::MsgOrderCreate& m) {
  // Counts, prices, the window and the deposit: Preflight.
  const codec::Requirements& q = m.requirements;
  base::Bytes prefix = keys::KeyBuilder(keys::kTenantOpenOrders).Addr(c.sender);
  M_TRY(open, Keys(c.store, prefix, keys::PrefixEnd(prefix), limits::kOpenOrdersPerAccountMax));
  if (open.size() >= limits::kOpenOrdersPerAccountMax)
    return Reject(TxCode::kMarketLimitReached,
                  "this account has " + Str(open.size()) +
                      " open orders (kOpenOrdersPerAccountMax); close one first");
  M_DO(Debit(c.store, c.sender, m.deposit_ugpn, "deposit"));
  M_TRY(id, NextId(c.store, &Counters::next_order_id));
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

/// Closes an open order and refunds its deposit.
R<> CloseOrder(Store& store, Order& order, std::string_view reason,
               std::vector<codec::Event>& events) {
  GPUNET_CHECK(order.state == OrderState::kOpen);
  const uint64_t refund = order.deposit_ugpn;
  M_DO(Credit(store, order.tenant, refund));
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
  M_TRY(order,
        Need<Order>(view, keys::OrderKey(id), TxCode::kMarketUnknownOrder, "no order " + Str(id)));
  if (order.state != OrderState::kOpen)
    return Reject(TxCode::kMarketOrderClosed,
                  "order " + Str(id) + " is " + std::string(OrderStateName(order.state)));
  return std::move(order);
}

R<> Do(Ctx& c, const codec::MsgOrderClose& m) {
  M_TRY(order, NeedOpenOrder(c.store, m.order_id));
  if (order.tenant != c.sender)
    return Reject(TxCode::kMarketNotParty, "only the order's tenant may close it");
  return CloseOrder(c.store, order, "tenant", c.events);
}

R<> Do(Ctx& c, const codec::MsgBidCreate& m) {
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_DO(RequireInBusiness(p));
  M_TRY(order, NeedOpenOrder(c.store, m.order_id));
  if (c.block.time_ms >= order.window_end_ms)
    return Reject(TxCode::kMarketBidWindowClosed, "the bid window of order " + Str(m.order_id) +
                                                      " ended at " + Str(order.window_end_ms) +
                                                      " ms");
  M_DO(RequireAdmits(p, order.tenant));
  M_DO(RequireQualifies(p, order.providers));
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
  M_TRY(mismatch, Mismatch(c.store, p, order.requirements, m.machine_ids, c.block.time_ms));
  if (mismatch) return Reject(TxCode::kMarketBidMismatch, *mismatch);
  M_TRY(id, NextId(c.store, &Counters::next_bid_id));
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
  M_TRY(bid, Need<Bid>(c.store, keys::BidKey(m.bid_id), TxCode::kMarketUnknownBid,
                       "no bid " + Str(m.bid_id)));
  M_TRY(order, NeedOpenOrder(c.store, bid.order_id));
  if (order.tenant != c.sender)
    return Reject(TxCode::kMarketNotParty, "only the order's tenant may accept a bid");
  M_DO(Award(c.store, c.block, order, bid, c.events));
  return {};
}

R<Lease> NeedOpenLease(const StoreView& view, uint64_t id) {
  M_TRY(l,
        Need<Lease>(view, keys::LeaseKey(id), TxCode::kMarketUnknownLease, "no lease " + Str(id)));
  if (l.state == LeaseState::kClosed)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(id) + " is closed");
  return std::move(l);
}

R<> Do(Ctx& c, const codec::MsgLeaseStarted& m) {
  M_TRY(l, NeedOpenLease(c.store, m.lease_id));
  M_TRY(p, NeedProvider(c.store, l.provider));
  M_DO(RequireOperator(p, c.sender));
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
  MoveHeartbeatDeadline(c.store, p, HeartbeatDeadline(c.block.time_ms));
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("lease_started", {{"lease_id", Str(l.lease_id)},
                                          {"started_ms", Str(l.started_ms)},
                                          {"paid_until_ms", Str(l.paid_until_ms)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseDeposit& m) {
  M_TRY(l, NeedOpenLease(c.store, m.lease_id));
  if (l.state == LeaseState::kStarted && c.block.time_ms >= l.paid_until_ms)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(m.lease_id) + " ran out of funds at " +
                                                 Str(l.paid_until_ms) + " ms and is closing");
  auto deposited = base::CheckedAdd(l.deposited_ugpn, m.amount_ugpn);
  if (!deposited) return Reject(TxCode::kMarketAmountOverflow, "deposits exceed 2^64-1 ugpn");
  M_DO(Debit(c.store, c.sender, m.amount_ugpn, "deposit"));
  l.deposited_ugpn = *deposited;
  l.escrow_ugpn += m.amount_ugpn;
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
  M_TRY(l, NeedOpenLease(c.store, m.lease_id));
  M_TRY(p, NeedProvider(c.store, l.provider));
  M_DO(RequireOperator(p, c.sender));
  if (l.state != LeaseState::kStarted)
    return Reject(TxCode::kMarketLeaseState, "lease " + Str(m.lease_id) + " has not started");
  uint64_t due = DueAt(l, c.block.time_ms);
  if (due == 0)
    return Reject(TxCode::kMarketNothingToWithdraw,
                  "nothing accrued on lease " + Str(m.lease_id) + " since the last withdrawal");
  M_DO(PayProvider(c.store, p, l, due, Pay::kService, c.events));
  Save(c.store, keys::LeaseKey(l.lease_id), l);
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev(
      "lease_withdrawn",
      {{"lease_id", Str(l.lease_id)}, {"amount_ugpn", Str(due)}, {"paid_ugpn", Str(l.paid_ugpn)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgLeaseClose& m) {
  M_TRY(l, NeedOpenLease(c.store, m.lease_id));
  M_TRY(p, NeedProvider(c.store, l.provider));
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
    if (c.block.time_ms < l.started_ms + limits::kManifestTimeoutMs)
      return Reject(TxCode::kMarketTooEarly, "no_manifest is allowed from " +
                                                 Str(l.started_ms + limits::kManifestTimeoutMs) +
                                                 " ms (start + kManifestTimeoutMs)");
    end = LeaseEnd::kNoManifest;
  } else if (!is_tenant) {
    end = LeaseEnd::kProviderClosed;
  }
  return CloseLease(c.store, c.block, l, end, c.block.time_ms, c.events);
}

R<> Do(Ctx& c, const codec::MsgHeartbeat& m) {
  M_TRY(p, NeedProvider(c.store, m.provider));
  M_DO(RequireOperator(p, c.sender));
  M_DO(RequireActive(p));
  p.last_heartbeat_ms = c.block.time_ms;
  p.last_heartbeat_height = c.block.height;
  if (p.started_leases > 0) MoveHeartbeatDeadline(c.store, p, HeartbeatDeadline(c.block.time_ms));
  Save(c.store, keys::ProviderKey(p.owner), p);
  c.events.push_back(Ev("heartbeat", {{"provider", AddrStr(p.owner)},
                                      {"deadline_ms", Str(p.heartbeat_deadline_ms)}}));
  return {};
}

R<> Do(Ctx& c, const codec::MsgAttest& m) {
  M_TRY(p, NeedProvider(c.store, m.provider));
  if (m.expires_at_ms <= c.block.time_ms)
    return Reject(TxCode::kMarketInvalidField, "expires_at_ms " + Str(m.expires_at_ms) +
                                                   " is not after the block time " +
                                                   Str(c.block.time_ms));
  if (m.machine_id != 0) {
    M_TRY(machine, Load<Machine>(c.store, keys::MachineKey(p.owner, m.machine_id)));
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

R<> Do(Ctx&, const codec::MsgSend&) {
  GPUNET_UNREACHABLE();  // MsgSend is the bank's (state/tx_pipeline), not a market message
}

// ---------------------------------------------------------------- end of block

/// Index entries of `table` due at `now` (key deadline <= now), at most `max`.
R<std::vector<base::Bytes>> ScanDueIndex(const StoreView& view, uint8_t table, uint64_t now,
                                         size_t max) {
  base::Bytes begin = keys::KeyBuilder(table);
  base::Bytes end = now == UINT64_MAX ? keys::PrefixEnd(begin)
                                      : base::Bytes(keys::KeyBuilder(table).U64(now + 1));
  return Keys(view, begin, end, max);
}

/// The height up to which the fault of a due deadline-index entry `key` waits: the
/// first block that sees the entry due stores height + kHeartbeatGraceBlocks as its
/// value (empty until then), so the grace counts from when the deadline came due. A
/// chain that halts and resumes past a deadline gives the provider those blocks to
/// get its LeaseStarted or heartbeat in, wherever in the timeout the halt fell.
R<uint64_t> GraceUntil(Store& store, const base::Bytes& key, uint64_t height) {
  auto raw = store.Get(key);
  if (!raw) return Op(raw.error());
  GPUNET_CHECK(raw->has_value());  // the caller found the key by scanning
  const base::Bytes& value = **raw;
  if (value.size() == 8) return base::ReadU64BE(value.data());
  if (!value.empty())
    return Op(base::Error{base::ErrorCode::kCorrupt, "deadline index entry " + base::ToHex(key) +
                                                         " holds " + Str(value.size()) +
                                                         " bytes, not 0 or 8"});
  const uint64_t until = height + limits::kHeartbeatGraceBlocks;
  base::Bytes stored;
  base::AppendU64BE(stored, until);
  store.Put(key, std::move(stored));
  return until;
}

R<> AwardAtWindowEnd(Store& store, const BlockTime& block, uint64_t order_id,
                     std::vector<codec::Event>& events) {
  M_TRY(order, Need<Order>(store, keys::OrderKey(order_id), TxCode::kMarketUnknownOrder, "order"));
  GPUNET_CHECK(order.state == OrderState::kOpen);
  base::Bytes prefix = keys::KeyBuilder(keys::kOrderBids).U64(order_id);
  M_TRY(bid_keys, Keys(store, prefix, keys::PrefixEnd(prefix), limits::kBidsPerOrderMax));
  struct Ranked {
    uint64_t price;
    uint64_t fault_rate_ppm;
    uint64_t bid_id;
    Bid bid;
  };
  std::vector<Ranked> ranked;
  for (const auto& k : bid_keys) {
    M_TRY(entry, Parsed(keys::ParseOrderBidKey(k), k));
    const uint64_t bid_id = entry.bid_id;
    M_TRY(bid, Need<Bid>(store, keys::BidKey(bid_id), TxCode::kMarketUnknownBid, "bid"));
    M_TRY(p, NeedProvider(store, bid.provider));
    ranked.push_back(
        {bid.price_ugpn_per_gpu_hour, FaultRatePpm(p.leases_completed, p.faults), bid_id, bid});
  }
  // Lowest price; ties: lower fault rate, then the earlier bid (lower id).
  std::sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) {
    return std::tie(a.price, a.fault_rate_ppm, a.bid_id) <
           std::tie(b.price, b.fault_rate_ppm, b.bid_id);
  });
  for (const auto& r : ranked) {
    // No checkpoint at end of block: check capacity read-only first; Award's other
    // refusals all come before its first write.
    bool free = true;
    for (uint32_t id : r.bid.machine_ids) {
      M_TRY(m, Load<Machine>(store, keys::MachineKey(r.bid.provider, id)));
      if (!m || !HasFreeGpus(*m, order.requirements.gpus_per_machine)) free = false;
    }
    if (!free) continue;
    auto awarded = Award(store, block, order, r.bid, events);
    if (awarded) return {};
    if (awarded.error().op) return std::unexpected(awarded.error());
    // Refused (provider out of business, machines no longer matching): next bid.
  }
  return CloseOrder(store, order, ranked.empty() ? "no_bids" : "no_bid_honourable", events);
}

R<> RunEndBlock(Store& store, const BlockTime& block, std::vector<codec::Event>& events) {
  size_t budget = limits::kEndBlockWorkMax;
  const uint64_t now = block.time_ms;

  // Each section has its own share of the gas budget, so expensive awards cannot
  // starve faults and expiries (EndBlockSection).
  // 1. Awards at window end.
  M_TRY(windows, ScanDueIndex(store, keys::kWindowIndex, now, budget));
  for (const auto& k : windows) {
    // The rest waits for the next block; faults and expiries still run.
    if (!store.EndBlockBudgetLeft(EndBlockSection::kAwards)) break;
    M_TRY(entry, Parsed(keys::ParseDeadlineIndexKey(keys::kWindowIndex, k), k));
    M_DO(AwardAtWindowEnd(store, block, entry.id, events));
    --budget;
  }

  // 2a. Faults: missed starts.
  M_TRY(starts, ScanDueIndex(store, keys::kStartIndex, now, budget));
  for (const auto& k : starts) {
    // Faults left waiting: expiries wait too, so a lease whose provider went silent
    // is closed as a fault, never settled as an expiry ahead of it.
    if (!store.EndBlockBudgetLeft(EndBlockSection::kFaults)) return {};
    M_TRY(entry, Parsed(keys::ParseDeadlineIndexKey(keys::kStartIndex, k), k));
    M_TRY(l, Need<Lease>(store, keys::LeaseKey(entry.id), TxCode::kMarketUnknownLease, "lease"));
    GPUNET_CHECK(l.state == LeaseState::kReserved);
    --budget;
    M_TRY(grace_until, GraceUntil(store, k, block.height));
    if (block.height <= grace_until) continue;  // a halted chain is not the provider's fault
    M_DO(CloseLease(store, block, l, LeaseEnd::kMissedStart, now, events));
  }

  // 2b. Faults: heartbeats missing past the timeout and the grace in blocks.
  M_TRY(silent, ScanDueIndex(store, keys::kHeartbeatIndex, now, budget));
  for (const auto& k : silent) {
    if (budget == 0) break;
    if (!store.EndBlockBudgetLeft(EndBlockSection::kFaults)) return {};  // as above
    --budget;
    M_TRY(entry, Parsed(keys::ParseHeartbeatIndexKey(k), k));
    M_TRY(p, NeedProvider(store, entry.owner));
    M_TRY(grace_until, GraceUntil(store, k, block.height));
    if (block.height <= grace_until) continue;  // a halted chain: wait for the grace blocks
    base::Bytes prefix = keys::KeyBuilder(keys::kProviderOpenLeases).Addr(p.owner);
    M_TRY(open, Keys(store, prefix, keys::PrefixEnd(prefix), limits::kOpenLeasesPerProviderMax));
    for (const auto& lk : open) {
      if (budget == 0) break;
      M_TRY(open_entry, Parsed(keys::ParsePartyIndexKey(keys::kProviderOpenLeases, lk), lk));
      M_TRY(l, Need<Lease>(store, keys::LeaseKey(open_entry.id), TxCode::kMarketUnknownLease,
                           "lease"));
      if (l.state != LeaseState::kStarted) continue;
      --budget;
      // Funds that ran out before the provider went silent: an expiry, not a fault.
      LeaseEnd end =
          l.paid_until_ms <= p.last_heartbeat_ms ? LeaseEnd::kExpired : LeaseEnd::kMissedHeartbeat;
      M_DO(CloseLease(store, block, l, end, std::max(p.last_heartbeat_ms, l.started_ms), events));
    }
    // The index entry goes when its last started lease closed (CloseLease).
  }

  // 3. Expiries: funds ran out; settled at paid_until exactly.
  M_TRY(expired, ScanDueIndex(store, keys::kExpiryIndex, now, budget));
  for (const auto& k : expired) {
    if (!store.EndBlockBudgetLeft(EndBlockSection::kExpiries)) return {};
    M_TRY(entry, Parsed(keys::ParseDeadlineIndexKey(keys::kExpiryIndex, k), k));
    M_TRY(l, Need<Lease>(store, keys::LeaseKey(entry.id), TxCode::kMarketUnknownLease, "lease"));
    GPUNET_CHECK(l.state == LeaseState::kStarted);
    M_DO(CloseLease(store, block, l, LeaseEnd::kExpired, l.paid_until_ms, events));
    --budget;
  }
  return {};
}

}  // namespace

bool IsMarketMsg(const codec::Msg& msg) {
  return !std::holds_alternative<codec::MsgSend>(msg);
}

MsgOutcome ApplyMarketMsg(Store& store, const BlockTime& block, const codec::Address& sender,
                          const codec::Msg& msg, std::vector<codec::Event>& events) {
  GPUNET_CHECK(IsMarketMsg(msg));
  // The stateless rules first, as CheckStateless ran them: a tx refused there is in
  // no valid block, and a caller that applies without stage 1 (the fuzzer, a test)
  // gets the same code.
  if (auto pre = Preflight(msg); !pre) return std::optional<TxError>(std::move(pre.error()));
  Ctx ctx{store, block, sender, events};
  R<> result = std::visit([&](const auto& m) { return Do(ctx, m); }, msg);
  if (result) return std::optional<TxError>{};
  if (result.error().op) return std::unexpected(*result.error().op);
  GPUNET_CHECK(codec::IsIncludedFailure(result.error().tx.code));
  return std::optional<TxError>(std::move(result.error().tx));
}

base::Status EndBlock(Store& store, const BlockTime& block, std::vector<codec::Event>& events) {
  auto result = RunEndBlock(store, block, events);
  if (result) return base::Ok();
  if (result.error().op) return std::unexpected(*result.error().op);
  // A refusal here means the stored state broke a market invariant.
  return base::Fail(base::ErrorCode::kCorrupt,
                    "market end-of-block: " + result.error().tx.ToString());
}

base::Result<std::optional<uint64_t>> NextDeadline(const StoreView& view) {
  std::optional<uint64_t> earliest;
  for (uint8_t table :
       {keys::kWindowIndex, keys::kStartIndex, keys::kHeartbeatIndex, keys::kExpiryIndex}) {
    base::Bytes begin = keys::KeyBuilder(table);
    std::optional<base::Bytes> first_key;
    GPUNET_TRY(view.Scan(begin, keys::PrefixEnd(begin), [&](base::ByteSpan key, base::ByteSpan) {
      first_key.emplace(key.begin(), key.end());
      return false;
    }));
    if (!first_key) continue;
    std::optional<uint64_t> first = keys::ParseIndexDeadline(*first_key);
    if (!first)
      return base::Fail(base::ErrorCode::kCorrupt,
                        "market key " + base::ToHex(*first_key) + " is not a deadline-index key");
    if (!earliest || *first < *earliest) earliest = first;
  }
  return earliest;
}

}  // namespace gpunet::market
