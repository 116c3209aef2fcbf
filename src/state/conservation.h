// The token's supply record and the conservation check (design §2):
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
// to it and replay compares it) at AppStateKey(kAppSupply, {0x01}); 0x02 is the
// first of keyspace.h's bytes reserved for bank/staking.
#pragma once

#include <cstdint>
#include <string>

#include "base/bytes.h"
#include "base/result.h"
#include "state/kv.h"
#include "state/state_db.h"

namespace gpunet::state {

/// Sub-table of the application state holding bank-wide records (the supply).
/// TODO(keyspace owner): move into state/keyspace.h next to kAppAccount.
inline constexpr uint8_t kAppSupply = 0x02;

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
  unsigned __int128 escrow_ugpn = 0;     ///< scanned: market escrow (0 until issue 4)
  unsigned __int128 bonds_ugpn = 0;      ///< scanned: provider bonds (0 until issue 4)
  unsigned __int128 stake_ugpn = 0;      ///< scanned: validator stake (0: no staking yet)
  unsigned __int128 unbonding_ugpn = 0;  ///< scanned: unbonding (0: no staking yet)
  Supply supply;                         ///< the record
  uint64_t accounts = 0;                 ///< accounts scanned
  bool Holds() const;
  std::string ToString() const;
};

/// Scans the application state of `kv` (committed state) and checks the equation.
/// kCorrupt with both sides in the message when it does not hold or a stored value
/// does not decode.
base::Result<ConservationReport> CheckConservation(const KvStore& kv);

}  // namespace gpunet::state
