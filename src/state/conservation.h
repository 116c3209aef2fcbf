// The token's supply record and the conservation check (architecture §2.9):
//
//   sum(balances) + escrow + provider bonds + validator stake + unbonding + fee pool
//     == genesis supply + minted - burned
//
// The supply record holds only what cannot be recomputed from balances: the
// genesis supply, what was minted and burned since, and the fee pool. The left
// side is ALWAYS computed by scanning the stored state, never from counters the
// apply code keeps for balances, so a bug that creates or destroys tokens in a
// balance shows up as a broken equation.
//
// Where the record lives: under the application state (so the state tree commits
// to it and replay compares it) at AppStateKey(keyspace::kAppSupply, {0x01}).
#pragma once

#include <cstdint>
#include <string>

#include "base/bytes.h"
#include "base/result.h"
#include "state/keyspace.h"
#include "state/kv.h"
#include "state/state_db.h"

namespace gpunet::state {

/// Sub-table of the bank-wide records (now in state/keyspace.h; kept as an alias).
inline constexpr uint8_t kAppSupply = keyspace::kAppSupply;

/// The key of the supply record.
base::Bytes SupplyKey();

struct Supply {
  uint64_t genesis_ugpn = 0;   ///< sum of genesis balances
  uint64_t minted_ugpn = 0;    ///< created since genesis (block rewards; none yet)
  uint64_t burned_ugpn = 0;    ///< destroyed since genesis (the burned fee share)
  uint64_t fee_pool_ugpn = 0;  ///< fees held for later distribution (see fees.h)
  bool operator==(const Supply&) const = default;
};

base::Bytes EncodeSupply(const Supply& supply);
base::Result<Supply> DecodeSupply(base::ByteSpan bytes);

/// The supply record as the block sees it; kCorrupt when missing (written at genesis).
base::Result<Supply> GetSupply(const StateDb& db);
void PutSupply(StateDb& db, const Supply& supply);

/// Both sides of the equation, from one scan.
struct ConservationReport {
  unsigned __int128 balances_ugpn = 0;   ///< scanned: every account's balance
  unsigned __int128 escrow_ugpn = 0;     ///< scanned: lease escrow + open order deposits
  unsigned __int128 bonds_ugpn = 0;      ///< scanned: provider bonds
  unsigned __int128 stake_ugpn = 0;      ///< scanned: validator stake (0: no staking yet)
  unsigned __int128 unbonding_ugpn = 0;  ///< scanned: provider bond unbonding (no staking yet)
  Supply supply;                         ///< the record
  uint64_t accounts = 0;                 ///< accounts scanned
  bool Holds() const;
  std::string ToString() const;
};

/// Scans the application state of `kv` (committed state) and checks the equation.
/// kCorrupt with both sides in the message when it does not hold or a stored value
/// does not decode. Escrow, bonds and unbonding come from scanning the market's
/// records (market::SumHoldings).
base::Result<ConservationReport> CheckConservation(const KvStore& kv);
/// The same over a block's overlay (pending writes included): tests check it after
/// every tx.
base::Result<ConservationReport> CheckConservation(const StateDb& db);

/// The per-block check the ledger runs on every block before Commit (architecture
/// §2.9), over the keys `db`'s pending writes change against its committed store
/// (StateDb::ForEachChange), never a scan of the whole state:
///  - conservation kept incrementally: over the changed accounts, leases, orders,
///    providers and the supply record, (balances + escrow + bonds + unbonding +
///    fee pool + burned) after - before == minted after - before, and the genesis
///    supply never changes; given the committed state held it (genesis does, and
///    each committed block was checked), the whole equation holds after the block;
///  - market::CheckChanged for the market records the block changed.
/// kCorrupt naming the invariant and the key (conservation: the sums it compared).
base::Status CheckBlockChanges(const StateDb& db);

/// "Invariants after every tx" (issue 4 item 9): the conservation equation by
/// scanning state, then market::CheckInvariants (no negative or lost amounts, free +
/// leased GPUs = inventory per machine, indexes and counters agree). kCorrupt names
/// the first broken rule. Exported for tests and the reference-model test.
base::Status CheckInvariants(const StateDb& db);

}  // namespace gpunet::state
