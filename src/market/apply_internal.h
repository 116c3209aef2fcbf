// Shared by the market's rules (apply.cpp and apply_*.cpp), not a public header:
// the plumbing of a rule (Stop, R, Reject, Op, the typed Load/Need/Save, events),
// the money helpers, the provider checks every message makes, the lease and order
// steps that more than one file runs, and one Do per message. Only those files
// include it.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/check.h"
#include "base/checked_math.h"
#include "base/limits.h"
#include "base/result.h"
#include "crypto/address.h"
#include "market/apply.h"
#include "market/keys.h"
#include "market/records.h"

namespace gpunet::market::internal {

namespace limits = base::limits;
using codec::TxCode;
using codec::TxError;

// ---------------------------------------------------------------- plumbing

/// Why a rule stopped: a refusal (tx) or an operational error (op).
struct Stop {
  std::optional<base::Error> op;
  TxError tx;
};
template <class T = void>
using R = std::expected<T, Stop>;

inline std::unexpected<Stop> Reject(TxCode code, std::string message) {
  return std::unexpected(Stop{std::nullopt, TxError{code, std::move(message)}});
}
inline std::unexpected<Stop> Op(base::Error e) {
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

inline std::string Str(uint64_t v) {
  return std::to_string(v);
}
inline std::string AddrStr(const codec::Address& a) {
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
  GPUNET_TRY_ASSIGN(auto v, Load<T>(view, key));
  if (!v) return Reject(code, std::move(what));
  return std::move(*v);
}

template <class T>
void Save(Store& store, base::Bytes key, const T& record) {
  store.Put(std::move(key), Encode(record));
}

/// Keys in [begin, end), at most `max` of them.
R<std::vector<base::Bytes>> Keys(const StoreView& view, const base::Bytes& begin,
                                 const base::Bytes& end, size_t max);

/// What a keys::Parse* function read out of `key`, or kCorrupt when the key found
/// under a table's prefix is not of its layout.
template <class T>
R<T> Parsed(std::optional<T> parts, base::ByteSpan key) {
  if (!parts)
    return Op(base::Error{base::ErrorCode::kCorrupt,
                          "market key " + base::ToHex(key) + " is not of its table's layout"});
  return std::move(*parts);
}

inline codec::Event Ev(std::string type, std::map<std::string, std::string> attributes) {
  return codec::Event{"market." + type, std::move(attributes)};
}

// ---------------------------------------------------------------- money
// (defined in apply.cpp)

/// a + b, at most UINT64_MAX: for lifetime counters that no rule depends on being
/// exact at 2^64 (a validator must not halt on them).
uint64_t SaturatingAdd(uint64_t a, uint64_t b);

R<> Debit(Store& store, const codec::Address& who, uint64_t amount, std::string_view what);

R<> Credit(Store& store, const codec::Address& who, uint64_t amount);

/// The next id of a counter (offers, orders, bids, leases), advanced.
R<uint64_t> NextId(Store& store, uint64_t Counters::*field);

// ---------------------------------------------------------------- providers
// (defined in apply_providers.cpp)

R<Provider> NeedProvider(const StoreView& view, const codec::Address& owner);

R<> RequireOwner(const Provider& p, const codec::Address& sender);

R<> RequireOperator(const Provider& p, const codec::Address& sender);

R<> RequireActive(const Provider& p);

/// Active and bonded: may offer, bid and be leased.
R<> RequireInBusiness(const Provider& p, const Params& params);

inline bool Contains(const std::vector<codec::Address>& set, const codec::Address& a) {
  return std::binary_search(set.begin(), set.end(), a);
}

/// The bond covers the penalties of the open leases plus `extra_penalty` (a lease
/// about to be made): bond >= max(minimum, sum).
R<> RequireCovers(const Provider& p, uint64_t extra_penalty, const Params& params);

/// Within the heartbeat timeout of its last proof of life (heartbeat, LeaseStarted
/// or registration): a provider that went away is not leased.
R<> RequireOnline(const Provider& p, uint64_t now_ms, const Params& params);

/// The order's requirements on the provider (exclusions, bond, earnings from other
/// tenants, fault rate).
R<> RequireQualifies(const Provider& p, const codec::ProviderRequirements& q);

R<> RequireAdmits(const Provider& p, const codec::Address& tenant);

void MoveHeartbeatDeadline(Store& store, Provider& p, uint64_t deadline_ms);

uint64_t HeartbeatDeadline(uint64_t last_ms, const Params& params);

// ---------------------------------------------------------------- leases
// (defined in apply_leases.cpp)

/// Settles at `settle_ms` (accrual capped at paid_until), refunds the rest to the
/// tenant, applies the fault penalty when `end` is a fault, frees the GPUs and
/// updates the provider's counters. The one way a lease closes.
R<> CloseLease(Store& store, const Params& params, const BlockTime& block, Lease& l, LeaseEnd end,
               uint64_t settle_ms, std::vector<codec::Event>& events);

/// What a new lease is made of: from an offer (MsgLeaseCreate) or an order's award.
struct LeaseTerms {
  codec::Address tenant;
  std::vector<Allocation> allocations;  ///< ascending machine_id
  uint64_t price_ugpn_per_gpu_hour = 0;
  uint64_t rate_ugpn_per_hour = 0;  ///< price x GPUs (RateFor)
  uint64_t deposit_ugpn = 0;        ///< already taken from the tenant or the order
  codec::Hash32 manifest_hash;
  uint64_t offer_id = 0;   ///< 0 when from an order
  uint64_t order_id = 0;   ///< 0 when from an offer
  uint32_t min_hours = 0;  ///< the offer's (0 when from an order)
  uint32_t max_hours = 0;  ///< the offer's: deposits never fund more hours (0 = no limit)
};

/// Creates a reserved lease of provider `p` on the terms: checks the provider's
/// lease limit, its bond's cover and each machine's free GPUs, then takes them.
R<uint64_t> CreateLease(Store& store, const Params& params, const BlockTime& block, Provider& p,
                        LeaseTerms terms, std::vector<codec::Event>& events);

// ---------------------------------------------------------------- orders
// (defined in apply_orders.cpp)

/// Awards order `order_id` at its window end to the best bid that can still be
/// honoured, or closes it and refunds the deposit.
R<> AwardAtWindowEnd(Store& store, const Params& params, const BlockTime& block, uint64_t order_id,
                     std::vector<codec::Event>& events);

// ---------------------------------------------------------------- messages

struct Ctx {
  Store& store;
  const Params& params;
  const BlockTime& block;
  const codec::Address& sender;
  std::vector<codec::Event>& events;
};

// One rule per message, in the file of the objects it rules.
// apply_providers.cpp:
R<> Do(Ctx& c, const codec::MsgProviderRegister& m);
R<> Do(Ctx& c, const codec::MsgProviderUpdate& m);
R<> Do(Ctx& c, const codec::MsgProviderDeregister&);
R<> Do(Ctx& c, const codec::MsgProviderBond& m);
R<> Do(Ctx& c, const codec::MsgProviderUnbond& m);
R<> Do(Ctx& c, const codec::MsgProviderClaimUnbonded&);
R<> Do(Ctx& c, const codec::MsgSiteUpsert& m);
R<> Do(Ctx& c, const codec::MsgMachineUpsert& m);
R<> Do(Ctx& c, const codec::MsgMachineRemove& m);
R<> Do(Ctx& c, const codec::MsgHeartbeat& m);
R<> Do(Ctx& c, const codec::MsgAttest& m);
// apply_leases.cpp:
R<> Do(Ctx& c, const codec::MsgOfferCreate& m);
R<> Do(Ctx& c, const codec::MsgOfferClose& m);
R<> Do(Ctx& c, const codec::MsgLeaseCreate& m);
R<> Do(Ctx& c, const codec::MsgLeaseStarted& m);
R<> Do(Ctx& c, const codec::MsgLeaseDeposit& m);
R<> Do(Ctx& c, const codec::MsgLeaseWithdraw& m);
R<> Do(Ctx& c, const codec::MsgLeaseClose& m);
// apply_orders.cpp:
R<> Do(Ctx& c, const codec::MsgOrderCreate& m);
R<> Do(Ctx& c, const codec::MsgOrderClose& m);
R<> Do(Ctx& c, const codec::MsgBidCreate& m);
R<> Do(Ctx& c, const codec::MsgBidAccept& m);
R<> Do(Ctx& c, const codec::MsgBidWithdraw& m);
// apply.cpp (never runs: MsgSend is not a market message):
R<> Do(Ctx&, const codec::MsgSend&);

// ---------------------------------------------------------------- end of block
// (defined in apply_end_block.cpp)

/// EndBlock's work (apply.h): awards, then faults, then expiries.
R<> RunEndBlock(Store& store, const Params& params, const BlockTime& block,
                std::vector<codec::Event>& events);

}  // namespace gpunet::market::internal
