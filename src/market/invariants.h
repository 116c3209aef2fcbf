// What must hold in the market's state after every transaction (issue 4 item 9,
// rippled's InvariantCheck): computed by scanning the stored records, never from
// counters the rules keep, so a rule that loses or double-counts shows up here.
// Tests call CheckInvariants after every tx; state's conservation check uses
// SumHoldings for the escrow, bond and unbonding terms of architecture §2.9's equation.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "market/params.h"
#include "market/store.h"

namespace gpunet::market {

/// Tokens the market holds, by scanning: leases' escrow + open orders' deposits,
/// providers' bonds, providers' unbonding entries.
struct Holdings {
  unsigned __int128 escrow_ugpn = 0;
  unsigned __int128 bonds_ugpn = 0;
  unsigned __int128 unbonding_ugpn = 0;
};

base::Result<Holdings> SumHoldings(const StoreView& view);

/// kCorrupt naming the first broken rule:
///  - per machine: free + GPUs of open leases on it == gpu_count (free <= count);
///  - per lease: deposited == paid + refunded + escrow; closed leases hold nothing;
///    started leases: paid <= accrued at paid_until <= deposited; index entries
///    exist for open leases (start index when reserved, expiry when started);
///  - per provider: open_leases / started_leases / machines / sites / open_offers
///    equal the counts scanned; promised_penalties equals the sum of FaultPenalty over
///    its open leases and the bond covers it (bond >= promised); open orders hold a
///    deposit only while open.
/// `params` are the chain's (the penalties depend on them).
base::Status CheckInvariants(const StoreView& view, const Params& params);

}  // namespace gpunet::market
