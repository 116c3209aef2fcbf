#include "market/records.h"

#include <optional>
#include <type_traits>

#include "base/check.h"
#include "base/limits.h"
#include "codec/reader.h"
#include "codec/writer.h"

namespace gpunet::market {

namespace {

// One field list per record drives both directions, so encoder and decoder cannot
// disagree on the order. Writing: WriteIO; reading: ReadIO (keeps the first error).
constexpr size_t kListMax = 1u << 16;

struct WriteIO {
  codec::Writer w;
  void operator()(const bool& v) { w.Bool(v); }
  void operator()(const uint8_t& v) { w.U8(v); }
  void operator()(const uint32_t& v) { w.U32(v); }
  void operator()(const uint64_t& v) { w.U64(v); }
  template <size_t N>
  void operator()(const base::FixedBytes<N>& v) {
    w.Fixed(v);
  }
  void operator()(const std::string& v) { w.String(v); }
  template <class E>
  requires std::is_enum_v<E>
  void operator()(const E& v) { w.U8(static_cast<uint8_t>(v)); }
  template <class T>
  void operator()(const std::vector<T>& v) {
    w.Count(v.size());
    for (const auto& item : v) Item(item);
  }
  template <class T>
  void Item(const T& v);
};

struct ReadIO {
  codec::Reader r;
  std::optional<base::Error> error;
  explicit ReadIO(base::ByteSpan b, std::string_view what) : r(b, what) {}
  template <class T>
  void Take(base::Result<T> v, T& out) {
    if (error) return;
    if (!v) {
      error = v.error();
      return;
    }
    out = std::move(*v);
  }
  void operator()(bool& v) { Take(r.Bool("field"), v); }
  void operator()(uint8_t& v) { Take(r.U8("field"), v); }
  void operator()(uint32_t& v) { Take(r.U32("field"), v); }
  void operator()(uint64_t& v) { Take(r.U64("field"), v); }
  template <size_t N>
  void operator()(base::FixedBytes<N>& v) {
    Take(r.Fixed<N>("field"), v);
  }
  void operator()(std::string& v) {
    Take(r.String("field", base::limits::kStateValueBytesMax, codec::StringRule::kText,
                  "kStateValueBytesMax"),
         v);
  }
  template <class E>
  requires std::is_enum_v<E>
  void operator()(E& v) {
    uint8_t raw = 0;
    (*this)(raw);
    v = static_cast<E>(raw);
  }
  template <class T>
  void operator()(std::vector<T>& v) {
    size_t n = 0;
    Take(r.Count("list", kListMax, "state list"), n);
    if (error) return;
    v.clear();
    for (size_t i = 0; i < n && !error; ++i) {
      T item{};
      Item(item);
      v.push_back(std::move(item));
    }
  }
  template <class T>
  void Item(T& v);
};

// ---- field lists ----

template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, codec::PayoutSplit> {
  io(v.payee);
  io(v.bp);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, codec::Attribute> {
  io(v.key);
  io(v.value);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Unbonding> {
  io(v.amount_ugpn);
  io(v.release_ms);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Allocation> {
  io(v.machine_id);
  io(v.gpus);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, codec::Requirements> {
  io(v.gpu_models);
  io(v.gpus_per_machine);
  io(v.machines);
  io(v.min_vram_gib);
  io(v.region);
  io(v.fabric);
  io(v.same_site);
  io(v.min_cuda_version);
  io(v.auditors);
  io(v.attributes);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Provider> {
  io(v.owner);
  io(v.operator_address);
  io(v.tenant_api_uri);
  io(v.tls_fingerprint);
  io(v.region);
  io(v.payouts);
  io(v.policy.allow);
  io(v.policy.deny);
  io(v.active);
  io(v.bond_ugpn);
  io(v.unbonding);
  io(v.registered_ms);
  io(v.last_heartbeat_ms);
  io(v.last_heartbeat_height);
  io(v.heartbeat_deadline_ms);
  io(v.sites);
  io(v.machines);
  io(v.open_offers);
  io(v.open_leases);
  io(v.started_leases);
  io(v.leases_completed);
  io(v.faults);
  io(v.penalties_paid_ugpn);
  io(v.penalties_unpaid_ugpn);
  io(v.earned_ugpn);
  io(v.promised_penalties_ugpn);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Site> {
  io(v.fabric);
  io(v.bandwidth_gbps);
  io(v.machines);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Machine> {
  io(v.site_id);
  io(v.gpu_model);
  io(v.gpu_count);
  io(v.free_gpus);
  io(v.vram_gib);
  io(v.link);
  io(v.driver_version);
  io(v.cuda_version);
  io(v.compute_capability);
  io(v.cpu_cores);
  io(v.memory_gib);
  io(v.disk_gib);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Offer> {
  io(v.offer_id);
  io(v.provider);
  io(v.gpu_model);
  io(v.site_id);
  io(v.price_ugpn_per_gpu_hour);
  io(v.tenants);
  io(v.open);
  io(v.created_ms);
  io(v.min_hours);
  io(v.max_hours);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Order> {
  io(v.order_id);
  io(v.tenant);
  Fields(io, v.requirements);
  io(v.max_price_ugpn_per_gpu_hour);
  io(v.deposit_ugpn);
  io(v.manifest_hash);
  io(v.created_ms);
  io(v.window_end_ms);
  io(v.state);
  io(v.bids);
  io(v.lease_id);
  io(v.providers.min_bond_ugpn);
  io(v.providers.min_earned_ugpn);
  io(v.providers.max_fault_rate_ppm);
  io(v.providers.excluded);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Bid> {
  io(v.bid_id);
  io(v.order_id);
  io(v.provider);
  io(v.price_ugpn_per_gpu_hour);
  io(v.machine_ids);
  io(v.created_ms);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Lease> {
  io(v.lease_id);
  io(v.tenant);
  io(v.provider);
  io(v.offer_id);
  io(v.order_id);
  io(v.allocations);
  io(v.price_ugpn_per_gpu_hour);
  io(v.rate_ugpn_per_hour);
  io(v.manifest_hash);
  io(v.state);
  io(v.created_ms);
  io(v.start_deadline_ms);
  io(v.started_ms);
  io(v.paid_until_ms);
  io(v.deposited_ugpn);
  io(v.escrow_ugpn);
  io(v.paid_ugpn);
  io(v.refunded_ugpn);
  io(v.penalty_ugpn);
  io(v.closed_ms);
  io(v.end);
  io(v.created_height);
  io(v.min_hours);
  io(v.max_hours);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Attestation> {
  io(v.value);
  io(v.expires_at_ms);
}
template <class IO, class P>
void Fields(IO& io, P& v) requires std::is_same_v<std::remove_const_t<P>, Counters> {
  io(v.next_offer_id);
  io(v.next_order_id);
  io(v.next_bid_id);
  io(v.next_lease_id);
}

template <class T>
void WriteIO::Item(const T& v) {
  if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string> &&
                !std::is_same_v<T, Address>)
    Fields(*this, v);
  else
    (*this)(v);
}

template <class T>
void ReadIO::Item(T& v) {
  if constexpr (std::is_class_v<T> && !std::is_same_v<T, std::string> &&
                !std::is_same_v<T, Address>)
    Fields(*this, v);
  else
    (*this)(v);
}

template <class T>
base::Bytes EncodeRecord(const T& v) {
  WriteIO io;
  Fields(io, v);
  return std::move(io.w).Take();
}

template <class T>
base::Result<T> DecodeRecord(base::ByteSpan b, std::string_view what) {
  ReadIO io(b, what);
  T v{};
  Fields(io, v);
  if (io.error) return std::unexpected(*io.error);
  GPUNET_TRY(io.r.Finish());
  // Re-encoding proves the value canonical (enums in range are checked by users).
  if (EncodeRecord(v) != base::Bytes(b.begin(), b.end()))
    return base::Fail(base::ErrorCode::kNonCanonical, std::string(what) + ": not canonical");
  return v;
}

}  // namespace

uint32_t Lease::Gpus() const {
  uint32_t total = 0;
  for (const auto& a : allocations) total += a.gpus;
  return total;
}

base::Bytes Encode(const Provider& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Site& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Machine& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Offer& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Order& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Bid& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Lease& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Attestation& v) {
  return EncodeRecord(v);
}
base::Bytes Encode(const Counters& v) {
  return EncodeRecord(v);
}

base::Result<Provider> DecodeProvider(base::ByteSpan b) {
  return DecodeRecord<Provider>(b, "provider");
}
base::Result<Site> DecodeSite(base::ByteSpan b) {
  return DecodeRecord<Site>(b, "site");
}
base::Result<Machine> DecodeMachine(base::ByteSpan b) {
  return DecodeRecord<Machine>(b, "machine");
}
base::Result<Offer> DecodeOffer(base::ByteSpan b) {
  return DecodeRecord<Offer>(b, "offer");
}
base::Result<Order> DecodeOrder(base::ByteSpan b) {
  return DecodeRecord<Order>(b, "order");
}
base::Result<Bid> DecodeBid(base::ByteSpan b) {
  return DecodeRecord<Bid>(b, "bid");
}
base::Result<Lease> DecodeLease(base::ByteSpan b) {
  return DecodeRecord<Lease>(b, "lease");
}
base::Result<Attestation> DecodeAttestation(base::ByteSpan b) {
  return DecodeRecord<Attestation>(b, "attestation");
}
base::Result<Counters> DecodeCounters(base::ByteSpan b) {
  return DecodeRecord<Counters>(b, "counters");
}

template <>
base::Result<Provider> Decode<Provider>(base::ByteSpan b) {
  return DecodeProvider(b);
}
template <>
base::Result<Site> Decode<Site>(base::ByteSpan b) {
  return DecodeSite(b);
}
template <>
base::Result<Machine> Decode<Machine>(base::ByteSpan b) {
  return DecodeMachine(b);
}
template <>
base::Result<Offer> Decode<Offer>(base::ByteSpan b) {
  return DecodeOffer(b);
}
template <>
base::Result<Order> Decode<Order>(base::ByteSpan b) {
  return DecodeOrder(b);
}
template <>
base::Result<Bid> Decode<Bid>(base::ByteSpan b) {
  return DecodeBid(b);
}
template <>
base::Result<Lease> Decode<Lease>(base::ByteSpan b) {
  return DecodeLease(b);
}
template <>
base::Result<Attestation> Decode<Attestation>(base::ByteSpan b) {
  return DecodeAttestation(b);
}
template <>
base::Result<Counters> Decode<Counters>(base::ByteSpan b) {
  return DecodeCounters(b);
}

std::string_view LeaseStateName(LeaseState s) {
  switch (s) {
    case LeaseState::kReserved:
      return "reserved";
    case LeaseState::kStarted:
      return "started";
    case LeaseState::kClosed:
      return "closed";
  }
  return "unknown";
}

std::string_view LeaseEndName(LeaseEnd e) {
  switch (e) {
    case LeaseEnd::kNone:
      return "none";
    case LeaseEnd::kTenantClosed:
      return "tenant_closed";
    case LeaseEnd::kProviderClosed:
      return "provider_closed";
    case LeaseEnd::kNoManifest:
      return "no_manifest";
    case LeaseEnd::kExpired:
      return "expired";
    case LeaseEnd::kMissedStart:
      return "missed_start";
    case LeaseEnd::kMissedHeartbeat:
      return "missed_heartbeat";
  }
  return "unknown";
}

std::string_view OrderStateName(OrderState s) {
  switch (s) {
    case OrderState::kOpen:
      return "open";
    case OrderState::kAwarded:
      return "awarded";
    case OrderState::kClosed:
      return "closed";
  }
  return "unknown";
}

}  // namespace gpunet::market
