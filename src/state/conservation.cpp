#include "state/conservation.h"

#include <algorithm>
#include <vector>

#include "base/checked_math.h"
#include "codec/encoding.h"
#include "codec/reader.h"
#include "codec/writer.h"
#include "market/invariants.h"
#include "state/keyspace.h"

namespace gpunet::state {

using base::U128ToString;

base::Bytes SupplyKey() {
  const uint8_t rest[] = {0x01};
  return keyspace::AppStateKey(keyspace::kAppSupply, rest);
}

base::Bytes EncodeSupply(const Supply& supply) {
  codec::Writer w(32);
  w.U64(supply.genesis_ugpn);
  w.U64(supply.minted_ugpn);
  w.U64(supply.burned_ugpn);
  w.U64(supply.fee_pool_ugpn);
  return std::move(w).Take();
}

base::Result<Supply> DecodeSupply(base::ByteSpan bytes) {
  codec::Reader r(bytes, "supply");
  Supply s;
  auto read = [&](std::string_view field, uint64_t& out) -> base::Status {
    auto v = r.U64(field);
    if (!v) return std::unexpected(v.error());
    out = *v;
    return base::Ok();
  };
  GPUNET_TRY(read("genesis_ugpn", s.genesis_ugpn));
  GPUNET_TRY(read("minted_ugpn", s.minted_ugpn));
  GPUNET_TRY(read("burned_ugpn", s.burned_ugpn));
  GPUNET_TRY(read("fee_pool_ugpn", s.fee_pool_ugpn));
  GPUNET_TRY(r.Finish());
  return s;
}

base::Result<Supply> GetSupply(const StateDb& db) {
  auto stored = db.Get(SupplyKey());
  if (!stored) return std::unexpected(stored.error());
  if (!stored->has_value())
    return base::Fail(base::ErrorCode::kCorrupt,
                      "the supply record is missing (written at genesis)");
  return DecodeSupply(**stored);
}

void PutSupply(StateDb& db, const Supply& supply) {
  db.Put(SupplyKey(), EncodeSupply(supply));
}

bool ConservationReport::Holds() const {
  unsigned __int128 left =
      balances_ugpn + escrow_ugpn + bonds_ugpn + stake_ugpn + unbonding_ugpn + supply.fee_pool_ugpn;
  unsigned __int128 right =
      static_cast<unsigned __int128>(supply.genesis_ugpn) + supply.minted_ugpn;
  if (right < supply.burned_ugpn) return false;
  right -= supply.burned_ugpn;
  return left == right;
}

std::string ConservationReport::ToString() const {
  return "balances " + U128ToString(balances_ugpn) + " (" + std::to_string(accounts) +
         " accounts) + escrow " + U128ToString(escrow_ugpn) + " + bonds " +
         U128ToString(bonds_ugpn) + " + stake " + U128ToString(stake_ugpn) + " + unbonding " +
         U128ToString(unbonding_ugpn) + " + fee pool " + std::to_string(supply.fee_pool_ugpn) +
         " vs genesis " + std::to_string(supply.genesis_ugpn) + " + minted " +
         std::to_string(supply.minted_ugpn) + " - burned " + std::to_string(supply.burned_ugpn);
}

namespace {

/// Read-only market view over a StateDb (pending writes included).
class DbView final : public market::StoreView {
 public:
  explicit DbView(const StateDb& db) : m_db(db) {}
  base::Result<std::optional<base::Bytes>> Get(base::ByteSpan key) const override {
    return m_db.Get(key);
  }
  base::Status Scan(base::ByteSpan begin, base::ByteSpan end,
                    const market::Visitor& visit) const override {
    return m_db.Scan(begin, end, visit);
  }
  base::Result<codec::Account> GetAccount(const codec::Address& address) const override {
    return m_db.GetAccount(address);
  }

 private:
  const StateDb& m_db;
};

}  // namespace

base::Result<ConservationReport> CheckConservation(const StateDb& db) {
  ConservationReport report;
  std::optional<base::Error> error;
  const base::Bytes begin = keyspace::AppStateKey(keyspace::kAppAccount, {});
  const base::Bytes end = keyspace::PrefixEnd(begin);
  GPUNET_TRY(db.Scan(begin, end, [&](base::ByteSpan key, base::ByteSpan value) {
    auto account = codec::DecodeAccount(value);
    if (!account) {
      error = base::Error{base::ErrorCode::kCorrupt,
                          "account at key " + base::ToHex(key) + ": " + account.error().message};
      return false;
    }
    report.balances_ugpn += account->balance_ugpn;
    ++report.accounts;
    return true;
  }));
  if (error) return std::unexpected(*error);
  DbView view(db);
  auto holdings = market::SumHoldings(view);
  if (!holdings) return base::Wrap(holdings.error(), "market holdings");
  report.escrow_ugpn = holdings->escrow_ugpn;
  report.bonds_ugpn = holdings->bonds_ugpn;
  report.unbonding_ugpn = holdings->unbonding_ugpn;
  auto stored = db.Get(SupplyKey());
  if (!stored) return std::unexpected(stored.error());
  if (!stored->has_value())
    return base::Fail(base::ErrorCode::kCorrupt, "the supply record is missing");
  auto supply = DecodeSupply(**stored);
  if (!supply) return base::Wrap(supply.error(), "supply record");
  report.supply = *supply;
  if (!report.Holds())
    return base::Fail(base::ErrorCode::kCorrupt, "conservation broken: " + report.ToString());
  return report;
}

base::Result<ConservationReport> CheckConservation(const KvStore& kv) {
  const StateDb committed(kv);
  return CheckConservation(committed);
}

namespace {

/// One side of the conservation equation summed over changed keys only: the terms
/// that may change (balances, holdings, fee pool, burned) and the supply they
/// must match (genesis + minted).
struct ChangedSums {
  unsigned __int128 held = 0;    ///< balances + escrow + bonds + unbonding + fee pool + burned
  unsigned __int128 supply = 0;  ///< genesis + minted
  std::optional<uint64_t> genesis_ugpn;
};

base::Status AddAccount(base::ByteSpan key, const std::optional<base::Bytes>& value,
                        ChangedSums& sums) {
  if (!value) return base::Ok();
  auto account = codec::DecodeAccount(*value);
  if (!account)
    return base::Fail(
        base::ErrorCode::kCorrupt,
        "conservation: account at key " + base::ToHex(key) + ": " + account.error().message);
  sums.held += account->balance_ugpn;
  return base::Ok();
}

base::Status AddSupply(const std::optional<base::Bytes>& value, ChangedSums& sums) {
  if (!value)
    return base::Fail(base::ErrorCode::kCorrupt, "conservation: the supply record at key " +
                                                     base::ToHex(SupplyKey()) + " is missing");
  auto supply = DecodeSupply(*value);
  if (!supply) return base::Wrap(supply.error(), "conservation: supply record");
  sums.held += static_cast<unsigned __int128>(supply->fee_pool_ugpn) + supply->burned_ugpn;
  sums.supply += static_cast<unsigned __int128>(supply->genesis_ugpn) + supply->minted_ugpn;
  sums.genesis_ugpn = supply->genesis_ugpn;
  return base::Ok();
}

void AddHoldings(const market::Holdings& h, ChangedSums& sums) {
  sums.held += h.escrow_ugpn + h.bonds_ugpn + h.unbonding_ugpn;
}

}  // namespace

base::Status CheckBlockChanges(const StateDb& db) {
  ChangedSums before;
  ChangedSums after;
  std::vector<market::RecordChange> market_changes;
  const base::Bytes supply_key = SupplyKey();
  std::optional<base::Error> error;
  GPUNET_TRY(db.ForEachChange([&](base::ByteSpan key, const std::optional<base::Bytes>& old_value,
                                  const std::optional<base::Bytes>& new_value) {
    base::Status added = base::Ok();
    if (key.size() < 2 || key[0] != keyspace::kAppState) return true;
    if (key[1] == keyspace::kAppAccount) {
      added = AddAccount(key, old_value, before);
      if (added) added = AddAccount(key, new_value, after);
    } else if (std::equal(key.begin(), key.end(), supply_key.begin(), supply_key.end())) {
      added = AddSupply(old_value, before);
      if (added) added = AddSupply(new_value, after);
    } else if (key[1] >= keyspace::kAppMarketFirst && key[1] <= keyspace::kAppMarketLast) {
      market_changes.push_back({base::Bytes(key.begin(), key.end()), old_value, new_value});
    }
    if (!added) error = added.error();
    return added.has_value();
  }));
  if (error) return std::unexpected(*error);
  auto holdings = market::HoldingsOf(market_changes);
  if (!holdings) return base::Wrap(holdings.error(), "conservation");
  AddHoldings(holdings->before, before);
  AddHoldings(holdings->after, after);
  if (before.genesis_ugpn != after.genesis_ugpn)
    return base::Fail(
        base::ErrorCode::kCorrupt,
        "conservation broken: the genesis supply changed at key " + base::ToHex(supply_key));
  // held_after - held_before == supply_after - supply_before, without negatives.
  if (after.held + before.supply != before.held + after.supply)
    return base::Fail(base::ErrorCode::kCorrupt,
                      "conservation broken by the block's changes: balances + escrow + bonds + "
                      "unbonding + fee pool + burned over the changed keys went from " +
                          U128ToString(before.held) + " to " + U128ToString(after.held) +
                          ", genesis + minted from " + U128ToString(before.supply) + " to " +
                          U128ToString(after.supply));
  DbView view(db);
  return market::CheckChanged(view, market_changes);
}

base::Status CheckInvariants(const StateDb& db) {
  GPUNET_TRY(CheckConservation(db));
  DbView view(db);
  return market::CheckInvariants(view);
}

}  // namespace gpunet::state
