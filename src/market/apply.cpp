#include "market/apply.h"

#include "market/apply_internal.h"
#include "market/preflight.h"

// The rules are split by the objects they rule: apply_providers.cpp (providers,
// sites, machines, bonds, heartbeats, attestations), apply_leases.cpp (offers and
// leases), apply_orders.cpp (orders, bids, the auction), apply_end_block.cpp (end of
// block). This file holds what they share and the dispatch.

namespace gpunet::market {

using codec::TxError;

namespace internal {

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

// ---------------------------------------------------------------- ids

namespace {

Counters LoadCountersOr(const std::optional<Counters>& c) {
  return c ? *c : Counters{};
}

}  // namespace

R<uint64_t> NextId(Store& store, uint64_t Counters::*field) {
  M_TRY(stored, Load<Counters>(store, keys::CountersKey()));
  Counters c = LoadCountersOr(stored);
  uint64_t id = c.*field;
  c.*field = id + 1;
  Save(store, keys::CountersKey(), c);
  return id;
}

R<> Do(Ctx&, const codec::MsgSend&) {
  GPUNET_UNREACHABLE();  // MsgSend is the bank's (state/tx_pipeline), not a market message
}

}  // namespace internal

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
  internal::Ctx ctx{store, block, sender, events};
  internal::R<> result = std::visit([&](const auto& m) { return internal::Do(ctx, m); }, msg);
  if (result) return std::optional<TxError>{};
  if (result.error().op) return std::unexpected(*result.error().op);
  GPUNET_CHECK(codec::IsIncludedFailure(result.error().tx.code));
  return std::optional<TxError>(std::move(result.error().tx));
}

base::Status EndBlock(Store& store, const BlockTime& block, std::vector<codec::Event>& events) {
  auto result = internal::RunEndBlock(store, block, events);
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
