// The market's stored values (architecture §3.2 objects) and their canonical encoding. They
// live in the application state under the keys of market/keys.h, so the state tree
// commits to them and a client can verify a proof of any one of them and decode it
// with this header alone (client may use market).
//
// Field order is the encoding order (codec Writer rules: big-endian integers,
// length-prefixed strings and lists). Changing a record is a state-layout change.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "codec/types.h"

namespace gpunet::market {

using codec::Address;
using codec::Hash32;

/// Bond on its way out: claimable by the owner from release_ms on.
struct Unbonding {
  uint64_t amount_ugpn = 0;
  uint64_t release_ms = 0;
  bool operator==(const Unbonding&) const = default;
};

/// A provider, keyed by its owner's address.
struct Provider {
  Address owner;
  Address operator_address;
  std::string tenant_api_uri;
  Hash32 tls_fingerprint;
  std::string region;
  std::vector<codec::PayoutSplit> payouts;
  codec::TenantPolicy policy;
  bool active = true;  ///< false after deregistration (the record stays for history)
  uint64_t bond_ugpn = 0;
  std::vector<Unbonding> unbonding;  ///< <= kUnbondingEntriesMax, in release order
  uint64_t registered_ms = 0;
  // Liveness: the last heartbeat (or LeaseStarted); heartbeat_deadline_ms is the key
  // of this provider's entry in the heartbeat index (0 = none: no started lease).
  uint64_t last_heartbeat_ms = 0;
  uint64_t last_heartbeat_height = 0;
  uint64_t heartbeat_deadline_ms = 0;
  // Counts the limits and the deregistration rule use.
  uint32_t sites = 0;
  uint32_t machines = 0;
  uint32_t open_offers = 0;
  uint32_t open_leases = 0;
  uint32_t started_leases = 0;
  // Reputation (architecture §3.3): orders tie-break on FaultRatePpm(completed, faults).
  uint64_t leases_completed = 0;
  uint64_t faults = 0;
  // Lifetime totals: they saturate at 2^64-1 (cycled deposits can outgrow the supply).
  uint64_t penalties_paid_ugpn = 0;
  uint64_t penalties_unpaid_ugpn = 0;  ///< owed when the bond ran dry (written off)
  /// Lifetime ugpn paid to this provider for GPU time by tenants other than its owner,
  /// operator or payees (orders may ask for a minimum: MsgOrderCreate.providers).
  uint64_t earned_ugpn = 0;
  /// Sum of FaultPenalty() over the open leases: the bond must cover it (docs/market.md).
  uint64_t promised_penalties_ugpn = 0;
  bool operator==(const Provider&) const = default;
};

struct Site {
  codec::Fabric fabric = codec::Fabric::kEthernet;
  uint32_t bandwidth_gbps = 0;
  uint32_t machines = 0;  ///< machines on this site
  bool operator==(const Site&) const = default;
};

/// A machine as its provider reports it (self-reported), with its free GPUs.
struct Machine {
  uint32_t site_id = 0;
  std::string gpu_model;
  uint32_t gpu_count = 0;
  uint32_t free_gpus = 0;  ///< gpu_count - GPUs held by open leases (invariant)
  uint32_t vram_gib = 0;
  codec::GpuLink link = codec::GpuLink::kPcie;
  std::string driver_version;
  uint32_t cuda_version = 0;
  uint32_t compute_capability = 0;
  uint32_t cpu_cores = 0;
  uint32_t memory_gib = 0;
  uint32_t disk_gib = 0;
  bool operator==(const Machine&) const = default;
};

struct Offer {
  uint64_t offer_id = 0;
  Address provider;
  std::string gpu_model;
  uint32_t site_id = 0;
  uint64_t price_ugpn_per_gpu_hour = 0;
  std::vector<Address> tenants;
  bool open = true;
  uint64_t created_ms = 0;
  uint32_t min_hours = 0;  ///< as MsgOfferCreate: 0 = the chain's deposit_min_hours
  uint32_t max_hours = 0;  ///< as MsgOfferCreate: 0 = no limit
  bool operator==(const Offer&) const = default;
};

enum class OrderState : uint8_t { kOpen = 1, kAwarded = 2, kClosed = 3 };

struct Order {
  uint64_t order_id = 0;
  Address tenant;
  codec::Requirements requirements;
  uint64_t max_price_ugpn_per_gpu_hour = 0;
  uint64_t deposit_ugpn = 0;  ///< held by the order while open (escrow), 0 after
  Hash32 manifest_hash;
  uint64_t created_ms = 0;
  uint64_t window_end_ms = 0;
  OrderState state = OrderState::kOpen;
  uint32_t bids = 0;
  uint64_t lease_id = 0;                  ///< when awarded
  codec::ProviderRequirements providers;  ///< who may bid and be awarded
  bool operator==(const Order&) const = default;
};

struct Bid {
  uint64_t bid_id = 0;
  uint64_t order_id = 0;
  Address provider;
  uint64_t price_ugpn_per_gpu_hour = 0;
  std::vector<uint32_t> machine_ids;
  uint64_t created_ms = 0;
  bool operator==(const Bid&) const = default;
};

enum class LeaseState : uint8_t { kReserved = 1, kStarted = 2, kClosed = 3 };

/// How a lease ended.
enum class LeaseEnd : uint8_t {
  kNone = 0,
  kTenantClosed = 1,
  kProviderClosed = 2,
  kNoManifest = 3,
  kExpired = 4,          ///< funds ran out (paid_until)
  kMissedStart = 5,      ///< fault: no LeaseStarted before the start deadline
  kMissedHeartbeat = 6,  ///< fault: heartbeats missing past timeout + grace
};

struct Allocation {
  uint32_t machine_id = 0;
  uint32_t gpus = 0;
  bool operator==(const Allocation&) const = default;
};

struct Lease {
  uint64_t lease_id = 0;
  Address tenant;
  Address provider;
  uint64_t offer_id = 0;                ///< 0 when from an order
  uint64_t order_id = 0;                ///< 0 when from an offer
  std::vector<Allocation> allocations;  ///< ascending machine_id
  uint64_t price_ugpn_per_gpu_hour = 0;
  uint64_t rate_ugpn_per_hour = 0;  ///< price x total GPUs
  Hash32 manifest_hash;
  LeaseState state = LeaseState::kReserved;
  uint64_t created_ms = 0;
  uint64_t start_deadline_ms = 0;
  uint64_t started_ms = 0;      ///< billing start
  uint64_t paid_until_ms = 0;   ///< when started: the expiry index key
  uint64_t deposited_ugpn = 0;  ///< every deposit ever
  uint64_t escrow_ugpn = 0;     ///< held now = deposited - paid - refunded
  uint64_t paid_ugpn = 0;       ///< paid to the provider's payees
  uint64_t refunded_ugpn = 0;   ///< returned to the tenant at close
  uint64_t penalty_ugpn = 0;    ///< moved from the provider's bond to the tenant
  uint64_t closed_ms = 0;
  LeaseEnd end = LeaseEnd::kNone;
  uint64_t created_height = 0;  ///< the height the lease was made at
  /// The offer's hours, kept so its rules outlive the offer (0 when from an order):
  /// deposited <= rate x max_hours when max_hours > 0 (docs/market.md "Offers").
  uint32_t min_hours = 0;
  uint32_t max_hours = 0;
  uint32_t Gpus() const;
  bool operator==(const Lease&) const = default;
};

struct Attestation {
  std::string value;
  uint64_t expires_at_ms = 0;
  bool operator==(const Attestation&) const = default;
};

/// Chain-wide id counters: the next id of each kind (first 1).
struct Counters {
  uint64_t next_offer_id = 1;
  uint64_t next_order_id = 1;
  uint64_t next_bid_id = 1;
  uint64_t next_lease_id = 1;
  bool operator==(const Counters&) const = default;
};

base::Bytes Encode(const Provider& v);
base::Bytes Encode(const Site& v);
base::Bytes Encode(const Machine& v);
base::Bytes Encode(const Offer& v);
base::Bytes Encode(const Order& v);
base::Bytes Encode(const Bid& v);
base::Bytes Encode(const Lease& v);
base::Bytes Encode(const Attestation& v);
base::Bytes Encode(const Counters& v);

base::Result<Provider> DecodeProvider(base::ByteSpan b);
base::Result<Site> DecodeSite(base::ByteSpan b);
base::Result<Machine> DecodeMachine(base::ByteSpan b);
base::Result<Offer> DecodeOffer(base::ByteSpan b);
base::Result<Order> DecodeOrder(base::ByteSpan b);
base::Result<Bid> DecodeBid(base::ByteSpan b);
base::Result<Lease> DecodeLease(base::ByteSpan b);
base::Result<Attestation> DecodeAttestation(base::ByteSpan b);
base::Result<Counters> DecodeCounters(base::ByteSpan b);

/// Decoders by type, for generic loaders: Decode<Lease>(bytes).
template <class T>
base::Result<T> Decode(base::ByteSpan b);

/// Stable names ("reserved", "missed_heartbeat") for events, JSON and the CLI.
std::string_view LeaseStateName(LeaseState s);
std::string_view LeaseEndName(LeaseEnd e);
std::string_view OrderStateName(OrderState s);

}  // namespace gpunet::market
