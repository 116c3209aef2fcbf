// A small, slow reference model of the market (docs/market.md, architecture §3.1), written
// separately from src/market: it calls none of the rules' functions and keeps its
// own plain records (maps keyed by id, derived values recomputed by scanning), so
// the randomized model test (model_test.cpp) can compare the real state machine
// against an independent reading of the spec after every tx and every block.
//
// Covered: providers (register, update, deregister, bond, unbond, claim), sites,
// machines (upsert, remove), offers (create, close, private tenants), LeaseCreate
// (first fit), LeaseStarted, LeaseDeposit, LeaseWithdraw (payout splits), LeaseClose
// (tenant, provider, no_manifest), heartbeats, orders (create, close), bids
// (requirements: models, GPUs per machine, machines, min VRAM, region, fabric,
// same site, min CUDA), BidAccept, and the end-of-block awards at window end
// (price, fault rate, bid id; capacity; refund when none), missed starts, missed
// heartbeats (timeout + grace blocks) with bond penalties, and expiries.
// Provider policy (allow/deny lists) applies to LeaseCreate, bids and awards.
// Issue 14: the bond covers the open leases' penalties (max(minimum, sum)), penalty
// floor, penalties drawn from unmatured unbonding after the bond, the order's
// provider requirements (bond, earnings from others, fault rate, exclusions), the
// missed-start and heartbeat grace in blocks (from the first block that sees the
// deadline due), leasing and awarding only to a provider heard from within the
// heartbeat timeout (registration counts), the charge for closing a lease before its
// start deadline (net of the GPU time paid), the penalty of a provider's close (in
// full when reserved, the floor when started), no penalty to the provider itself.
// Issue 17: BidWithdraw (the bid's provider, while the order is open and bidding);
// an offer's min_hours and max_hours (first deposit, and every deposit in all).
// The market parameters are a default genesis's (market/params.h).
// NOT covered: attestations and attribute requirements, MsgSend, and the per-block work budget (the
// test stays far below kEndBlockWorkMax).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "codec/types.h"
#include "market/params.h"

namespace gpunet::market::model {

using codec::Address;

struct Split {
  Address payee;
  uint32_t bp = 0;
};

struct Provider {
  Address owner;
  Address op;
  std::string region;
  std::vector<Address> allow;  ///< non-empty: only these tenants
  std::vector<Address> deny;   ///< never these tenants
  std::vector<Split> splits;
  bool active = true;
  uint64_t bond = 0;
  std::vector<std::pair<uint64_t, uint64_t>> unbonding;  ///< (amount, release_ms)
  uint64_t last_hb_ms = 0;
  uint64_t last_hb_height = 0;
  /// Height up to which the heartbeat fault waits, set by the first block that sees
  /// the heartbeat deadline due; 0 until then (a heartbeat or start resets it).
  uint64_t hb_grace_until = 0;
  uint64_t completed = 0;
  uint64_t faults = 0;
  uint64_t penalties_paid = 0;
  uint64_t penalties_unpaid = 0;
  uint64_t earned = 0;  ///< paid for GPU time by tenants other than owner, operator, payees
};

struct Machine {
  uint32_t site = 0;
  std::string model;
  uint32_t count = 0;
  uint32_t vram = 0;
  uint32_t cuda = 0;
};

enum class OrderState { kOpen = 1, kAwarded = 2, kClosed = 3 };  ///< as market::OrderState

struct Order {
  uint64_t id = 0;
  Address tenant;
  codec::Requirements req;
  uint64_t max_price = 0;
  uint64_t deposit = 0;  ///< held while open
  uint64_t window_end = 0;
  OrderState state = OrderState::kOpen;
  uint32_t bids = 0;
  uint64_t lease = 0;
  codec::ProviderRequirements providers;
};

struct Bid {
  uint64_t id = 0;
  uint64_t order = 0;
  Address provider;
  uint64_t price = 0;
  std::vector<uint32_t> machines;
};

struct Offer {
  uint64_t id = 0;
  Address provider;
  std::string model;
  uint32_t site = 0;
  uint64_t price = 0;
  std::vector<Address> tenants;
  bool open = true;
  uint64_t min_hours = 0;  ///< a first deposit covers at least this (and deposit_min_hours)
  uint64_t max_hours = 0;  ///< deposits in all cover at most this; 0 = no limit
};

enum class State { kReserved, kStarted, kClosed };
/// Same numbering as market::LeaseEnd (compared as integers).
enum class End { kNone = 0, kTenant, kProvider, kNoManifest, kExpired, kMissedStart, kMissedHb };

struct Lease {
  uint64_t id = 0;
  Address tenant;
  Address provider;
  uint64_t order = 0;                                ///< 0 when from an offer
  std::vector<std::pair<uint32_t, uint32_t>> alloc;  ///< (machine id, gpus)
  uint64_t rate = 0;
  State state = State::kReserved;
  uint64_t start_deadline = 0;
  uint64_t started = 0;
  uint64_t paid_until = 0;
  uint64_t deposited = 0;
  uint64_t escrow = 0;
  uint64_t paid = 0;
  uint64_t refunded = 0;
  uint64_t penalty = 0;
  uint64_t charge = 0;  ///< paid to the provider when the tenant closed it reserved
  uint64_t created_height = 0;
  uint64_t grace_until = 0;  ///< as Provider::hb_grace_until, for the start deadline
  uint64_t max_hours = 0;    ///< the offer's, kept: deposited <= rate x max_hours
  End end = End::kNone;
};

/// The whole market as the model sees it; copied for the all-or-nothing of a tx.
struct World {
  std::map<Address, uint64_t> balances;
  std::map<Address, Provider> providers;
  std::map<std::pair<Address, uint32_t>, uint8_t> sites;  ///< -> fabric
  std::map<std::pair<Address, uint32_t>, Machine> machines;
  std::map<uint64_t, Offer> offers;
  std::map<uint64_t, Lease> leases;
  std::map<uint64_t, Order> orders;
  std::map<uint64_t, Bid> bids;
  uint64_t next_order = 1;
  uint64_t next_bid = 1;
  uint64_t next_offer = 1;
  uint64_t next_lease = 1;
  uint64_t fees = 0;  ///< fees charged (burned or pooled: gone from balances)

  // Derived by scanning (never stored).
  uint32_t FreeGpus(const Address& provider, uint32_t machine) const;
  uint32_t OpenLeases(const Address& provider) const;
  uint32_t StartedLeases(const Address& provider) const;
  uint32_t OpenOffers(const Address& provider) const;
  uint32_t MachinesOnSite(const Address& provider, uint32_t site) const;
  /// Sum over the provider's open leases of max(rate x penalty hours, floor).
  uint64_t Promised(const Address& provider) const;
  /// last_hb + timeout + 1 while the provider has started leases, else 0.
  uint64_t HeartbeatDeadline(const Address& provider) const;
  /// Every ugpn: balances + bonds + unbonding + escrow + fees.
  unsigned __int128 Total() const;
};

class Model {
 public:
  World w;

  /// One tx: refused unchanged when a message fails the preflight (the stateless
  /// rules) or fee + amounts overflow; else the fee from `sender` first, then the
  /// messages in order, all or none. Returns 0 or the code of the first failure.
  uint16_t Tx(const Address& sender, const std::vector<codec::Msg>& msgs, uint64_t fee,
              uint64_t height, uint64_t now_ms);
  /// End-of-block work at (height, now): missed starts, missed heartbeats, expiries.
  void EndBlock(uint64_t height, uint64_t now_ms);

  /// Test hook: breaks one rule on purpose, to show the test can fail.
  bool break_rounding = false;
  /// Blocks in which a due deadline waited out its grace (the test asserts some did).
  uint64_t grace_waits = 0;

 private:
  /// docs/market.md "Preflight": 0, or the code that refuses `msg` before inclusion.
  static uint16_t Preflight(const codec::Msg& msg);
  uint16_t Apply(World& world, const Address& s, const codec::Msg& msg, uint64_t height,
                 uint64_t now);
  /// Whether a deadline due now has passed its grace: the first block that sees it
  /// due sets `grace_until` to height + grace blocks; the fault fires after that.
  bool GraceOver(uint64_t& grace_until, uint64_t height);
  void Close(World& world, Lease& l, End end, uint64_t settle_ms, uint64_t now);
  /// Whether the provider's policy admits `tenant`.
  static bool Admits(const Provider& p, const Address& tenant);
  /// 0 when the bid's machines meet the order now, else 210 or 224.
  uint16_t Mismatch(const World& world, const Order& o, const Bid& b) const;
  /// Awards `o` to `b` (lease at the bid's price on its machines, funded by the
  /// order's deposit) or the code that refuses it; nothing changes on refusal.
  uint16_t Award(World& world, Order& o, const Bid& b, uint64_t height, uint64_t now);
  /// Pays `amount` of the lease's escrow by the splits; `service`: for GPU time
  /// (counts in the provider's earnings unless the tenant is the provider itself).
  void Pay(World& world, Lease& l, uint64_t amount, bool service = true);
  /// 0 when the provider meets the order's provider requirements, else 235.
  static uint16_t Unqualified(const Provider& p, const codec::ProviderRequirements& q);
};

}  // namespace gpunet::market::model
