// What must hold in the market's state after every transaction (issue 4 item 9,
// rippled's InvariantCheck): computed from the stored records, never from counters
// the rules keep, so a rule that loses or double-counts shows up here.
//
// Two ways to check the same rules (architecture §2.9):
//  - CheckInvariants scans every record: tests call it after every tx, replay
//    after every block; state's full conservation check uses SumHoldings.
//  - CheckChanged looks only at the records a block changed and what they point
//    to (point reads; the providers' counters and machines' free GPUs by deltas
//    over the changes): the ledger runs it on every block before Commit, with
//    HoldingsOf for the market's terms of the conservation equation over the
//    same changes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

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

/// One application-state key a block changed, with its value before the block
/// (the committed store's) and after it (nullopt: absent).
struct RecordChange {
  base::Bytes key;
  std::optional<base::Bytes> before;
  std::optional<base::Bytes> after;
};

/// The holdings of the changed records only (leases, orders, providers; other keys
/// are ignored), before and after the block: after - before is what the block
/// moved into or out of the market. kCorrupt naming the key when a record does
/// not decode.
struct HoldingsChange {
  Holdings before;
  Holdings after;
};
base::Result<HoldingsChange> HoldingsOf(std::span<const RecordChange> changes);

/// kCorrupt naming the first broken rule:
///  - per machine: free + GPUs of open leases on it == gpu_count (free <= count);
///  - per lease: deposited == paid + refunded + escrow; closed leases hold nothing;
///    started leases: paid <= accrued at paid_until <= deposited; index entries
///    exist for open leases (start index when reserved, expiry when started);
///  - per start/expiry index entry: its lease is reserved with that start
///    deadline (start index) or started and paid until then (expiry index);
///  - per provider: open_leases / started_leases / machines / sites / open_offers
///    equal the counts scanned; promised_penalties equals the sum of FaultPenalty over
///    its open leases and the bond covers it (bond >= promised); open orders hold a
///    deposit only while open;
///  - per order: `bids` equals its bid records; each bid is in its order's bids
///    and its provider's one-bid entry names it; every entry of those two indexes
///    names such a bid (a withdrawn bid leaves all three).
/// `params` are the chain's (the penalties depend on them).
base::Status CheckInvariants(const StoreView& view, const Params& params);

/// The same rules over what a block changed, given `view` = the state after it,
/// in O(changes) (point reads only, no scan):
///  - each changed lease (and order) keeps its per-record rules and index entries;
///    an open offer is in its provider's open offers; an entry dropped from the
///    open-leases, start or expiry index belongs to no lease that still needs it,
///    one dropped from a provider's open offers to no offer of its still open; an
///    entry added to a provider's open leases or open offers names an open record
///    of that provider, one added to the start or expiry index a lease that needs
///    that entry (reserved with that start deadline, or started and paid until it);
///  - by deltas: each touched machine's GPUs in use (gpu_count - free) move by as
///    much as the GPUs the changed leases hold on it (free <= count); each
///    provider's counters (open_leases, started_leases, machines, sites,
///    open_offers, promised_penalties) move by as much as the records they count
///    among the changed ones (leases' states and FaultPenalty, keys created or
///    deleted, offers' open flags, its index entries) — a provider whose record
///    did not change must have every delta zero; a changed provider record keeps
///    its bond over its promised penalties and its heartbeat rule;
///  - a changed bid keeps its entries (or, deleted, leaves them); an added entry
///    of an order's bids or a provider's one-bid entry names such a bid, a dropped
///    one of an order's bids no bid still on the order; each order's `bids` moves
///    by as much as the entries of its bids.
/// Relies on the state before the block having held (the previous block's check,
/// or genesis): a count wrong before the block stays unseen here, which the full
/// scan (CheckInvariants) finds. kCorrupt naming the rule and the key
/// ("... (key 0118..)").
base::Status CheckChanged(const StoreView& view, std::span<const RecordChange> changes,
                          const Params& params);

}  // namespace gpunet::market
