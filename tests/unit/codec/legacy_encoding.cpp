// A frozen copy of src/codec/encoding.cpp as it stood before issue 16 item 5 gave each
// type one field list for both directions (main at 3f7cfcf). It exists
// ONLY for legacy_equivalence_test.cpp, which decodes the whole fuzz corpus and the
// golden vectors with this code and with the new and compares the answers; it is
// compiled into codec_test and nowhere else. Do not fix or restyle it: it is the
// reference the new code is held to. (MsgName, FabricName, GpuLinkName and TagOf
// are left out: they did not change.)
#include "unit/codec/legacy_encoding.h"

#include <algorithm>
#include <string>
#include <utility>

#include "base/check.h"
#include "base/limits.h"

namespace gpunet::codec::legacy {

using base::ErrorCode;
using base::Status;
namespace limits = base::limits;

// Reads a Result<T> expression into `dst`, or returns its error.
#define CODEC_READ(dst, expr)                                \
  do {                                                       \
    auto codec_r_ = (expr);                                  \
    if (!codec_r_) return std::unexpected(codec_r_.error()); \
    dst = std::move(*codec_r_);                              \
  } while (0)

// Limit arguments: the value and its name for error messages.
#define CODEC_LIMIT(name) limits::name, #name

namespace {

// A list of items each read under "<name>[i]".
template <class T, class ReadOne>
Status ReadList(Reader& r, std::string_view name, size_t max, std::string_view limit_name,
                std::vector<T>& out, ReadOne read_one) {
  size_t n = 0;
  CODEC_READ(n, r.Count(name, max, limit_name));
  out.clear();
  // Every item takes at least one byte: a count alone cannot make us allocate
  // more than the input could fill.
  out.reserve(std::min(n, r.Remaining()));
  for (size_t i = 0; i < n; ++i) {
    auto s = r.Enter(name, i);
    T item{};
    GPUNET_TRY(read_one(item));
    out.push_back(std::move(item));
  }
  return base::Ok();
}

// ---- message bodies ----

void WriteBody(Writer& w, const MsgSend& m) {
  w.Fixed(m.to);
  w.U64(m.amount_ugpn);
}

Status ReadBody(Reader& r, MsgSend& m) {
  CODEC_READ(m.to, r.Fixed<20>("to"));
  CODEC_READ(m.amount_ugpn, r.U64("amount_ugpn"));
  return base::Ok();
}

// ---- market message bodies (docs/encoding.md "Market messages") ----

void WriteAddresses(Writer& w, const std::vector<Address>& v) {
  w.Count(v.size());
  for (const auto& a : v) w.Fixed(a);
}

// A set of addresses: strictly ascending (sorted, no duplicates).
Status ReadAddresses(Reader& r, std::string_view name, size_t max, std::string_view limit_name,
                     std::vector<Address>& out) {
  GPUNET_TRY(ReadList(r, name, max, limit_name, out, [&](Address& a) -> Status {
    CODEC_READ(a, r.Fixed<20>("address"));
    return base::Ok();
  }));
  for (size_t i = 1; i < out.size(); ++i)
    if (!(out[i - 1] < out[i]))
      return r.Error(ErrorCode::kNonCanonical, name,
                     "addresses must be strictly ascending (sorted, no duplicates)");
  return base::Ok();
}

Status ReadFabric(Reader& r, std::string_view field, bool allow_any, Fabric& out) {
  uint8_t v = 0;
  CODEC_READ(v, r.U8(field));
  if (v > static_cast<uint8_t>(Fabric::kEthernet) || (!allow_any && v == 0))
    return r.Error(ErrorCode::kCorrupt, field,
                   "fabric " + std::to_string(v) + " is not " + (allow_any ? "0 (any), " : "") +
                       "1 (infiniband), 2 (roce) or 3 (ethernet)");
  out = static_cast<Fabric>(v);
  return base::Ok();
}

void WriteBody(Writer& w, const PayoutSplit& p) {
  w.Fixed(p.payee);
  w.U32(p.bp);
}

void WriteBody(Writer& w, const TenantPolicy& p) {
  WriteAddresses(w, p.allow);
  WriteAddresses(w, p.deny);
}

Status ReadPayouts(Reader& r, std::vector<PayoutSplit>& out) {
  GPUNET_TRY(
      ReadList(r, "payouts", CODEC_LIMIT(kPayoutSplitsMax), out, [&](PayoutSplit& p) -> Status {
        CODEC_READ(p.payee, r.Fixed<20>("payee"));
        CODEC_READ(p.bp, r.U32("bp"));
        return base::Ok();
      }));
  for (size_t i = 1; i < out.size(); ++i)
    if (!(out[i - 1].payee < out[i].payee))
      return r.Error(ErrorCode::kNonCanonical, "payouts",
                     "payees must be strictly ascending by address (sorted, no duplicates)");
  return base::Ok();
}

Status ReadPolicy(Reader& r, TenantPolicy& out) {
  auto s = r.Enter("policy");
  GPUNET_TRY(ReadAddresses(r, "allow", CODEC_LIMIT(kPolicyTenantsMax), out.allow));
  return ReadAddresses(r, "deny", CODEC_LIMIT(kPolicyTenantsMax), out.deny);
}

void WriteAttributes(Writer& w, const std::vector<Attribute>& v) {
  w.Count(v.size());
  for (const auto& a : v) {
    w.String(a.key);
    w.String(a.value);
  }
}

Status ReadAttributes(Reader& r, std::vector<Attribute>& out) {
  GPUNET_TRY(
      ReadList(r, "attributes", CODEC_LIMIT(kAttributesMax), out, [&](Attribute& a) -> Status {
        CODEC_READ(a.key, r.String("key", limits::kAttributeKeyBytesMax, StringRule::kIdent,
                                   "kAttributeKeyBytesMax"));
        CODEC_READ(a.value, r.String("value", limits::kAttributeValueBytesMax, StringRule::kText,
                                     "kAttributeValueBytesMax"));
        return base::Ok();
      }));
  for (size_t i = 1; i < out.size(); ++i)
    if (!(out[i - 1].key < out[i].key))
      return r.Error(ErrorCode::kNonCanonical, "attributes",
                     "attribute keys must be strictly ascending (sorted, no duplicates)");
  return base::Ok();
}

void WriteBody(Writer& w, const Requirements& q) {
  w.Count(q.gpu_models.size());
  for (const auto& m : q.gpu_models) w.String(m);
  w.U32(q.gpus_per_machine);
  w.U32(q.machines);
  w.U32(q.min_vram_gib);
  w.String(q.region);
  w.U8(static_cast<uint8_t>(q.fabric));
  w.Bool(q.same_site);
  w.U32(q.min_cuda_version);
  WriteAddresses(w, q.auditors);
  WriteAttributes(w, q.attributes);
}

Status ReadBody(Reader& r, Requirements& q) {
  auto s = r.Enter("requirements");
  GPUNET_TRY(ReadList(r, "gpu_models", CODEC_LIMIT(kOrderGpuModelsMax), q.gpu_models,
                      [&](std::string& m) -> Status {
                        CODEC_READ(m, r.String("model", limits::kGpuModelBytesMax,
                                               StringRule::kIdent, "kGpuModelBytesMax"));
                        return base::Ok();
                      }));
  for (size_t i = 1; i < q.gpu_models.size(); ++i)
    if (!(q.gpu_models[i - 1] < q.gpu_models[i]))
      return r.Error(ErrorCode::kNonCanonical, "gpu_models",
                     "models must be strictly ascending (sorted, no duplicates)");
  CODEC_READ(q.gpus_per_machine, r.U32("gpus_per_machine"));
  CODEC_READ(q.machines, r.U32("machines"));
  CODEC_READ(q.min_vram_gib, r.U32("min_vram_gib"));
  CODEC_READ(q.region,
             r.String("region", limits::kRegionBytesMax, StringRule::kText, "kRegionBytesMax"));
  if (!q.region.empty())
    if (auto ident = CheckString(q.region, limits::kRegionBytesMax, StringRule::kIdent, "region");
        !ident)
      return r.Error(ErrorCode::kCorrupt, "region",
                     "a region is empty (any) or printable ASCII without spaces");
  GPUNET_TRY(ReadFabric(r, "fabric", true, q.fabric));
  CODEC_READ(q.same_site, r.Bool("same_site"));
  CODEC_READ(q.min_cuda_version, r.U32("min_cuda_version"));
  GPUNET_TRY(ReadAddresses(r, "auditors", CODEC_LIMIT(kOrderAuditorsMax), q.auditors));
  return ReadAttributes(r, q.attributes);
}

// Fields shared by register and update, in their encoded order.
template <class M>
void WriteProviderFields(Writer& w, const M& m) {
  w.Fixed(m.operator_address);
  w.String(m.tenant_api_uri);
  w.Fixed(m.tls_fingerprint);
  w.String(m.region);
}

template <class M>
Status ReadProviderFields(Reader& r, M& m) {
  CODEC_READ(m.operator_address, r.Fixed<20>("operator_address"));
  CODEC_READ(m.tenant_api_uri,
             r.String("tenant_api_uri", limits::kUriBytesMax, StringRule::kIdent, "kUriBytesMax"));
  CODEC_READ(m.tls_fingerprint, r.Fixed<32>("tls_fingerprint"));
  CODEC_READ(m.region,
             r.String("region", limits::kRegionBytesMax, StringRule::kIdent, "kRegionBytesMax"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgProviderRegister& m) {
  WriteProviderFields(w, m);
  w.U64(m.bond_ugpn);
  w.Count(m.payouts.size());
  for (const auto& p : m.payouts) WriteBody(w, p);
  WriteBody(w, m.policy);
}

Status ReadBody(Reader& r, MsgProviderRegister& m) {
  GPUNET_TRY(ReadProviderFields(r, m));
  CODEC_READ(m.bond_ugpn, r.U64("bond_ugpn"));
  GPUNET_TRY(ReadPayouts(r, m.payouts));
  return ReadPolicy(r, m.policy);
}

void WriteBody(Writer& w, const MsgProviderUpdate& m) {
  WriteProviderFields(w, m);
  w.Count(m.payouts.size());
  for (const auto& p : m.payouts) WriteBody(w, p);
  WriteBody(w, m.policy);
}

Status ReadBody(Reader& r, MsgProviderUpdate& m) {
  GPUNET_TRY(ReadProviderFields(r, m));
  GPUNET_TRY(ReadPayouts(r, m.payouts));
  return ReadPolicy(r, m.policy);
}

void WriteBody(Writer&, const MsgProviderDeregister&) {}
Status ReadBody(Reader&, MsgProviderDeregister&) {
  return base::Ok();
}
void WriteBody(Writer&, const MsgProviderClaimUnbonded&) {}
Status ReadBody(Reader&, MsgProviderClaimUnbonded&) {
  return base::Ok();
}

void WriteBody(Writer& w, const MsgProviderBond& m) {
  w.U64(m.amount_ugpn);
}
Status ReadBody(Reader& r, MsgProviderBond& m) {
  CODEC_READ(m.amount_ugpn, r.U64("amount_ugpn"));
  return base::Ok();
}
void WriteBody(Writer& w, const MsgProviderUnbond& m) {
  w.U64(m.amount_ugpn);
}
Status ReadBody(Reader& r, MsgProviderUnbond& m) {
  CODEC_READ(m.amount_ugpn, r.U64("amount_ugpn"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgSiteUpsert& m) {
  w.Fixed(m.provider);
  w.U32(m.site_id);
  w.U8(static_cast<uint8_t>(m.fabric));
  w.U32(m.bandwidth_gbps);
}
Status ReadBody(Reader& r, MsgSiteUpsert& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.site_id, r.U32("site_id"));
  GPUNET_TRY(ReadFabric(r, "fabric", false, m.fabric));
  CODEC_READ(m.bandwidth_gbps, r.U32("bandwidth_gbps"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgMachineUpsert& m) {
  w.Fixed(m.provider);
  w.U32(m.machine_id);
  w.U32(m.site_id);
  w.String(m.gpu_model);
  w.U32(m.gpu_count);
  w.U32(m.vram_gib);
  w.U8(static_cast<uint8_t>(m.link));
  w.String(m.driver_version);
  w.U32(m.cuda_version);
  w.U32(m.compute_capability);
  w.U32(m.cpu_cores);
  w.U32(m.memory_gib);
  w.U32(m.disk_gib);
}
Status ReadBody(Reader& r, MsgMachineUpsert& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.machine_id, r.U32("machine_id"));
  CODEC_READ(m.site_id, r.U32("site_id"));
  CODEC_READ(m.gpu_model, r.String("gpu_model", limits::kGpuModelBytesMax, StringRule::kIdent,
                                   "kGpuModelBytesMax"));
  CODEC_READ(m.gpu_count, r.U32("gpu_count"));
  CODEC_READ(m.vram_gib, r.U32("vram_gib"));
  uint8_t link = 0;
  CODEC_READ(link, r.U8("link"));
  if (link != static_cast<uint8_t>(GpuLink::kNvlink) &&
      link != static_cast<uint8_t>(GpuLink::kPcie))
    return r.Error(ErrorCode::kCorrupt, "link",
                   "link " + std::to_string(link) + " is not 1 (nvlink) or 2 (pcie)");
  m.link = static_cast<GpuLink>(link);
  CODEC_READ(m.driver_version, r.String("driver_version", limits::kVersionBytesMax,
                                        StringRule::kIdent, "kVersionBytesMax"));
  CODEC_READ(m.cuda_version, r.U32("cuda_version"));
  CODEC_READ(m.compute_capability, r.U32("compute_capability"));
  CODEC_READ(m.cpu_cores, r.U32("cpu_cores"));
  CODEC_READ(m.memory_gib, r.U32("memory_gib"));
  CODEC_READ(m.disk_gib, r.U32("disk_gib"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgMachineRemove& m) {
  w.Fixed(m.provider);
  w.U32(m.machine_id);
}
Status ReadBody(Reader& r, MsgMachineRemove& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.machine_id, r.U32("machine_id"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgOfferCreate& m) {
  w.Fixed(m.provider);
  w.String(m.gpu_model);
  w.U32(m.site_id);
  w.U64(m.price_ugpn_per_gpu_hour);
  WriteAddresses(w, m.tenants);
  w.U32(m.min_hours);  // issue 17, after the freeze (as MsgBidWithdraw below)
  w.U32(m.max_hours);
}
Status ReadBody(Reader& r, MsgOfferCreate& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.gpu_model, r.String("gpu_model", limits::kGpuModelBytesMax, StringRule::kIdent,
                                   "kGpuModelBytesMax"));
  CODEC_READ(m.site_id, r.U32("site_id"));
  CODEC_READ(m.price_ugpn_per_gpu_hour, r.U64("price_ugpn_per_gpu_hour"));
  GPUNET_TRY(ReadAddresses(r, "tenants", CODEC_LIMIT(kOfferTenantsMax), m.tenants));
  CODEC_READ(m.min_hours, r.U32("min_hours"));
  CODEC_READ(m.max_hours, r.U32("max_hours"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgOfferClose& m) {
  w.Fixed(m.provider);
  w.U64(m.offer_id);
}
Status ReadBody(Reader& r, MsgOfferClose& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.offer_id, r.U64("offer_id"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgLeaseCreate& m) {
  w.U64(m.offer_id);
  w.U32(m.machines);
  w.U32(m.gpus_per_machine);
  w.U64(m.deposit_ugpn);
  w.Fixed(m.manifest_hash);
}
Status ReadBody(Reader& r, MsgLeaseCreate& m) {
  CODEC_READ(m.offer_id, r.U64("offer_id"));
  CODEC_READ(m.machines, r.U32("machines"));
  CODEC_READ(m.gpus_per_machine, r.U32("gpus_per_machine"));
  CODEC_READ(m.deposit_ugpn, r.U64("deposit_ugpn"));
  CODEC_READ(m.manifest_hash, r.Fixed<32>("manifest_hash"));
  return base::Ok();
}

void WriteBody(Writer& w, const ProviderRequirements& q) {
  w.U64(q.min_bond_ugpn);
  w.U64(q.min_earned_ugpn);
  w.U32(q.max_fault_rate_ppm);
  WriteAddresses(w, q.excluded);
}
Status ReadBody(Reader& r, ProviderRequirements& q) {
  auto s = r.Enter("providers");
  CODEC_READ(q.min_bond_ugpn, r.U64("min_bond_ugpn"));
  CODEC_READ(q.min_earned_ugpn, r.U64("min_earned_ugpn"));
  CODEC_READ(q.max_fault_rate_ppm, r.U32("max_fault_rate_ppm"));
  if (q.max_fault_rate_ppm > limits::kFaultRatePpmAny)
    return r.Error(ErrorCode::kCorrupt, "max_fault_rate_ppm",
                   "a fault rate is 0..1000000 ppm (1000000 = any)");
  return ReadAddresses(r, "excluded", CODEC_LIMIT(kOrderExclusionsMax), q.excluded);
}

void WriteBody(Writer& w, const MsgOrderCreate& m) {
  WriteBody(w, m.requirements);
  w.U64(m.max_price_ugpn_per_gpu_hour);
  w.U64(m.deposit_ugpn);
  w.Fixed(m.manifest_hash);
  w.U64(m.bid_window_ms);
  WriteBody(w, m.providers);
}
Status ReadBody(Reader& r, MsgOrderCreate& m) {
  GPUNET_TRY(ReadBody(r, m.requirements));
  CODEC_READ(m.max_price_ugpn_per_gpu_hour, r.U64("max_price_ugpn_per_gpu_hour"));
  CODEC_READ(m.deposit_ugpn, r.U64("deposit_ugpn"));
  CODEC_READ(m.manifest_hash, r.Fixed<32>("manifest_hash"));
  CODEC_READ(m.bid_window_ms, r.U64("bid_window_ms"));
  return ReadBody(r, m.providers);
}

void WriteBody(Writer& w, const MsgOrderClose& m) {
  w.U64(m.order_id);
}
Status ReadBody(Reader& r, MsgOrderClose& m) {
  CODEC_READ(m.order_id, r.U64("order_id"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgBidCreate& m) {
  w.Fixed(m.provider);
  w.U64(m.order_id);
  w.U64(m.price_ugpn_per_gpu_hour);
  w.Count(m.machine_ids.size());
  for (uint32_t id : m.machine_ids) w.U32(id);
}
Status ReadBody(Reader& r, MsgBidCreate& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.order_id, r.U64("order_id"));
  CODEC_READ(m.price_ugpn_per_gpu_hour, r.U64("price_ugpn_per_gpu_hour"));
  GPUNET_TRY(ReadList(r, "machine_ids", CODEC_LIMIT(kMachinesPerLeaseMax), m.machine_ids,
                      [&](uint32_t& id) -> Status {
                        CODEC_READ(id, r.U32("machine_id"));
                        return base::Ok();
                      }));
  for (size_t i = 1; i < m.machine_ids.size(); ++i)
    if (!(m.machine_ids[i - 1] < m.machine_ids[i]))
      return r.Error(ErrorCode::kNonCanonical, "machine_ids",
                     "machine ids must be strictly ascending (sorted, no duplicates)");
  return base::Ok();
}

// Messages whose body is one u64 id.
#define CODEC_ID_BODY(Type, field)           \
  void WriteBody(Writer& w, const Type& m) { \
    w.U64(m.field);                          \
  }                                          \
  Status ReadBody(Reader& r, Type& m) {      \
    CODEC_READ(m.field, r.U64(#field));      \
    return base::Ok();                       \
  }
CODEC_ID_BODY(MsgBidAccept, bid_id)
CODEC_ID_BODY(MsgLeaseStarted, lease_id)
CODEC_ID_BODY(MsgLeaseWithdraw, lease_id)
// Issue 17 appended MsgBidWithdraw (tag 24) and MsgOfferCreate's hours after the
// freeze: the wire changes since, mirrored here so that both codes read the same.
CODEC_ID_BODY(MsgBidWithdraw, bid_id)
#undef CODEC_ID_BODY

void WriteBody(Writer& w, const MsgLeaseDeposit& m) {
  w.U64(m.lease_id);
  w.U64(m.amount_ugpn);
}
Status ReadBody(Reader& r, MsgLeaseDeposit& m) {
  CODEC_READ(m.lease_id, r.U64("lease_id"));
  CODEC_READ(m.amount_ugpn, r.U64("amount_ugpn"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgLeaseClose& m) {
  w.U64(m.lease_id);
  w.U8(static_cast<uint8_t>(m.reason));
}
Status ReadBody(Reader& r, MsgLeaseClose& m) {
  CODEC_READ(m.lease_id, r.U64("lease_id"));
  uint8_t reason = 0;
  CODEC_READ(reason, r.U8("reason"));
  if (reason > static_cast<uint8_t>(CloseReason::kNoManifest))
    return r.Error(
        ErrorCode::kCorrupt, "reason",
        "close reason " + std::to_string(reason) + " is not 0 (normal) or 1 (no_manifest)");
  m.reason = static_cast<CloseReason>(reason);
  return base::Ok();
}

void WriteBody(Writer& w, const MsgHeartbeat& m) {
  w.Fixed(m.provider);
}
Status ReadBody(Reader& r, MsgHeartbeat& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  return base::Ok();
}

void WriteBody(Writer& w, const MsgAttest& m) {
  w.Fixed(m.provider);
  w.U32(m.machine_id);
  WriteAttributes(w, m.attributes);
  w.U64(m.expires_at_ms);
}
Status ReadBody(Reader& r, MsgAttest& m) {
  CODEC_READ(m.provider, r.Fixed<20>("provider"));
  CODEC_READ(m.machine_id, r.U32("machine_id"));
  GPUNET_TRY(ReadAttributes(r, m.attributes));
  CODEC_READ(m.expires_at_ms, r.U64("expires_at_ms"));
  return base::Ok();
}

// ---- evidence bodies ----

void WriteBody(Writer& w, const DuplicateVoteEvidence& e) {
  Write(w, e.vote_a);
  Write(w, e.vote_b);
}

Status ReadBody(Reader& r, DuplicateVoteEvidence& e) {
  {
    auto s = r.Enter("vote_a");
    GPUNET_TRY(Read(r, e.vote_a));
  }
  {
    auto s = r.Enter("vote_b");
    GPUNET_TRY(Read(r, e.vote_b));
  }
  if (e.vote_a.block_hash == e.vote_b.block_hash)
    return r.Error(ErrorCode::kCorrupt, "vote_b.block_hash",
                   "both votes name the same block: not a conflict");
  if (e.vote_b.block_hash < e.vote_a.block_hash)
    return r.Error(ErrorCode::kNonCanonical, "vote_b.block_hash",
                   "votes out of order: vote_a must have the smaller block hash");
  return base::Ok();
}

// ---- tagged unions: tag N is alternative N-1 (append-only tables) ----

template <class Variant, size_t I = 0>
Status ReadAlternative(Reader& r, uint16_t tag, Variant& out) {
  if constexpr (I == std::variant_size_v<Variant>) {
    return r.Error(ErrorCode::kCorrupt, "tag",
                   "unknown tag " + std::to_string(tag) + "; this build knows tags 1.." +
                       std::to_string(I) + " (a newer protocol version?)");
  } else {
    using T = std::variant_alternative_t<I, Variant>;
    static_assert(static_cast<uint16_t>(T::kTag) == I + 1,
                  "variant alternatives must be listed in tag order, tags from 1");
    if (tag != I + 1) return ReadAlternative<Variant, I + 1>(r, tag, out);
    T v;
    GPUNET_TRY(ReadBody(r, v));
    out = std::move(v);
    return base::Ok();
  }
}

template <class Variant>
Status ReadTagged(Reader& r, Variant& out) {
  uint16_t tag = 0;
  CODEC_READ(tag, r.U16("tag"));
  return ReadAlternative(r, tag, out);
}

template <class Variant>
void WriteTagged(Writer& w, const Variant& v) {
  std::visit(
      [&](const auto& alt) {
        w.U16(static_cast<uint16_t>(alt.kTag));
        WriteBody(w, alt);
      },
      v);
}

template <class T>
base::Bytes EncodeWith(const T& v, size_t reserve = 128) {
  Writer w(reserve);
  Write(w, v);
  return std::move(w).Take();
}

template <class T>
base::Result<T> DecodeWhole(base::ByteSpan bytes, std::string_view what, size_t max_bytes,
                            std::string_view limit_name) {
  Reader r(bytes, what);
  if (bytes.size() > max_bytes)
    return r.OverLimit("", bytes.size(), "bytes", max_bytes, limit_name);
  T out{};
  GPUNET_TRY(Read(r, out));
  GPUNET_TRY(r.Finish());
  return out;
}

}  // namespace

// ---------------------------------------------------------------- Write

void Write(Writer& w, const Msg& v) {
  WriteTagged(w, v);
}

void Write(Writer& w, const TxBody& v) {
  w.String(v.chain_id);
  w.Fixed(v.sender);
  w.U64(v.nonce);
  w.U64(v.fee_ugpn);
  w.U64(v.timeout_height);
  w.Count(v.msgs.size());
  for (const auto& m : v.msgs) Write(w, m);
  w.String(v.memo);
}

void Write(Writer& w, const Tx& v) {
  Write(w, v.body);
  w.Fixed(v.signature);
}

void Write(Writer& w, const Account& v) {
  w.U64(v.balance_ugpn);
  w.U64(v.nonce);
}

void Write(Writer& w, const Validator& v) {
  w.Fixed(v.public_key);
  w.U64(v.power);
}

void Write(Writer& w, const ValidatorSet& v) {
  w.Count(v.validators.size());
  for (const auto& val : v.validators) Write(w, val);
}

void Write(Writer& w, const Vote& v) {
  w.U8(static_cast<uint8_t>(v.type));
  w.U64(v.height);
  w.U32(v.round);
  w.Fixed(v.block_hash);
  w.U64(v.time_ms);
  w.Fixed(v.validator);
  w.Fixed(v.signature);
}

void Write(Writer& w, const CommitSig& v) {
  w.Fixed(v.validator);
  w.U64(v.time_ms);
  w.Fixed(v.signature);
}

void Write(Writer& w, const Commit& v) {
  w.U64(v.height);
  w.U32(v.round);
  w.Fixed(v.block_hash);
  w.Count(v.sigs.size());
  for (const auto& s : v.sigs) Write(w, s);
}

void Write(Writer& w, const Proposal& v) {
  w.U64(v.height);
  w.U32(v.round);
  w.I32(v.pol_round);
  w.Fixed(v.block_hash);
  w.U64(v.time_ms);
  w.Fixed(v.signature);
}

void Write(Writer& w, const Evidence& v) {
  WriteTagged(w, v);
}

void Write(Writer& w, const BlockHeader& v) {
  w.String(v.chain_id);
  w.U64(v.app_version);
  w.U64(v.height);
  w.U64(v.time_ms);
  w.Fixed(v.last_block_hash);
  w.Fixed(v.tx_root);
  w.Fixed(v.receipts_root);
  w.Fixed(v.state_root);
  w.Fixed(v.proposer);
  w.Fixed(v.validator_set_hash);
  w.Fixed(v.next_validator_set_hash);
  w.Fixed(v.last_commit_hash);
  w.Fixed(v.evidence_hash);
}

void Write(Writer& w, const Block& v) {
  Write(w, v.header);
  w.Count(v.txs.size());
  Writer tx_writer(512);
  for (const auto& tx : v.txs) {
    tx_writer = Writer(512);
    Write(tx_writer, tx);
    w.LenBytes(tx_writer.Data());
  }
  w.Count(v.evidence.size());
  for (const auto& e : v.evidence) Write(w, e);
  Write(w, v.last_commit);
}

void Write(Writer& w, const Event& v) {
  w.String(v.type);
  w.Count(v.attributes.size());
  for (const auto& [key, value] : v.attributes) {
    w.String(key);
    w.String(value);
  }
}

void Write(Writer& w, const Receipt& v) {
  w.Fixed(v.tx_hash);
  w.U16(v.code);
  w.U64(v.fee_ugpn);
  w.U64(v.height);
  w.U32(v.index);
  w.Count(v.events.size());
  for (const auto& e : v.events) Write(w, e);
}

// ---------------------------------------------------------------- Read

Status Read(Reader& r, Msg& out) {
  return ReadTagged(r, out);
}

Status Read(Reader& r, TxBody& out) {
  CODEC_READ(out.chain_id, r.String("chain_id", limits::kChainIdBytesMax, StringRule::kIdent,
                                    "kChainIdBytesMax"));
  CODEC_READ(out.sender, r.Fixed<32>("sender"));
  CODEC_READ(out.nonce, r.U64("nonce"));
  CODEC_READ(out.fee_ugpn, r.U64("fee_ugpn"));
  CODEC_READ(out.timeout_height, r.U64("timeout_height"));
  GPUNET_TRY(ReadList(r, "msgs", CODEC_LIMIT(kMsgsPerTxMax), out.msgs,
                      [&](Msg& m) { return Read(r, m); }));
  if (out.msgs.empty())
    return r.Error(ErrorCode::kCorrupt, "msgs", "a transaction needs at least one message");
  CODEC_READ(out.memo, r.String("memo", limits::kMemoBytesMax, StringRule::kText, "kMemoBytesMax"));
  return base::Ok();
}

Status Read(Reader& r, Tx& out) {
  {
    auto s = r.Enter("body");
    GPUNET_TRY(Read(r, out.body));
  }
  CODEC_READ(out.signature, r.Fixed<64>("signature"));
  return base::Ok();
}

Status Read(Reader& r, Account& out) {
  CODEC_READ(out.balance_ugpn, r.U64("balance_ugpn"));
  CODEC_READ(out.nonce, r.U64("nonce"));
  return base::Ok();
}

Status Read(Reader& r, Validator& out) {
  CODEC_READ(out.public_key, r.Fixed<32>("public_key"));
  CODEC_READ(out.power, r.U64("power"));
  if (out.power == 0)
    return r.Error(ErrorCode::kCorrupt, "power", "a validator in a set has power > 0");
  return base::Ok();
}

Status Read(Reader& r, ValidatorSet& out) {
  GPUNET_TRY(ReadList(r, "validators", CODEC_LIMIT(kValidatorsMax), out.validators,
                      [&](Validator& v) { return Read(r, v); }));
  uint64_t total = 0;
  for (size_t i = 0; i < out.validators.size(); ++i) {
    const auto& v = out.validators[i];
    if (i > 0 && !(out.validators[i - 1].public_key < v.public_key)) {
      auto s = r.Enter("validators", i);
      return r.Error(ErrorCode::kNonCanonical, "public_key",
                     "validators must be in strictly ascending public key order (no duplicates)");
    }
    // Each power is <= UINT64_MAX and the running total stays <= the limit, so the
    // sum cannot wrap before the comparison.
    if (v.power > limits::kTotalVotingPowerMax - total)
      return r.Error(ErrorCode::kLimitExceeded, "validators",
                     "total voting power over the limit of " +
                         std::to_string(limits::kTotalVotingPowerMax) +
                         " (limits::kTotalVotingPowerMax)");
    total += v.power;
  }
  return base::Ok();
}

Status Read(Reader& r, Vote& out) {
  uint8_t type = 0;
  CODEC_READ(type, r.U8("type"));
  if (type != static_cast<uint8_t>(VoteType::kPrevote) &&
      type != static_cast<uint8_t>(VoteType::kPrecommit))
    return r.Error(
        ErrorCode::kCorrupt, "type",
        "vote type " + std::to_string(type) + " is neither prevote (1) nor precommit (2)");
  out.type = static_cast<VoteType>(type);
  CODEC_READ(out.height, r.U64("height"));
  CODEC_READ(out.round, r.U32("round"));
  CODEC_READ(out.block_hash, r.Fixed<32>("block_hash"));
  CODEC_READ(out.time_ms, r.U64("time_ms"));
  CODEC_READ(out.validator, r.Fixed<20>("validator"));
  CODEC_READ(out.signature, r.Fixed<64>("signature"));
  return base::Ok();
}

Status Read(Reader& r, CommitSig& out) {
  CODEC_READ(out.validator, r.Fixed<20>("validator"));
  CODEC_READ(out.time_ms, r.U64("time_ms"));
  CODEC_READ(out.signature, r.Fixed<64>("signature"));
  return base::Ok();
}

Status Read(Reader& r, Commit& out) {
  CODEC_READ(out.height, r.U64("height"));
  CODEC_READ(out.round, r.U32("round"));
  CODEC_READ(out.block_hash, r.Fixed<32>("block_hash"));
  GPUNET_TRY(ReadList(r, "sigs", CODEC_LIMIT(kValidatorsMax), out.sigs,
                      [&](CommitSig& s) { return Read(r, s); }));
  for (size_t i = 1; i < out.sigs.size(); ++i) {
    if (!(out.sigs[i - 1].validator < out.sigs[i].validator)) {
      auto s = r.Enter("sigs", i);
      return r.Error(ErrorCode::kNonCanonical, "validator",
                     "commit signatures must be in strictly ascending validator address order "
                     "(no duplicates)");
    }
  }
  return base::Ok();
}

Status Read(Reader& r, Proposal& out) {
  CODEC_READ(out.height, r.U64("height"));
  CODEC_READ(out.round, r.U32("round"));
  CODEC_READ(out.pol_round, r.I32("pol_round"));
  if (out.pol_round < -1 ||
      (out.pol_round >= 0 && static_cast<uint32_t>(out.pol_round) >= out.round))
    return r.Error(ErrorCode::kCorrupt, "pol_round",
                   "pol_round " + std::to_string(out.pol_round) +
                       " must be -1 (none) or in [0, round) with round " +
                       std::to_string(out.round));
  CODEC_READ(out.block_hash, r.Fixed<32>("block_hash"));
  CODEC_READ(out.time_ms, r.U64("time_ms"));
  CODEC_READ(out.signature, r.Fixed<64>("signature"));
  return base::Ok();
}

Status Read(Reader& r, Evidence& out) {
  return ReadTagged(r, out);
}

Status Read(Reader& r, BlockHeader& out) {
  CODEC_READ(out.chain_id, r.String("chain_id", limits::kChainIdBytesMax, StringRule::kIdent,
                                    "kChainIdBytesMax"));
  CODEC_READ(out.app_version, r.U64("app_version"));
  CODEC_READ(out.height, r.U64("height"));
  CODEC_READ(out.time_ms, r.U64("time_ms"));
  CODEC_READ(out.last_block_hash, r.Fixed<32>("last_block_hash"));
  CODEC_READ(out.tx_root, r.Fixed<32>("tx_root"));
  CODEC_READ(out.receipts_root, r.Fixed<32>("receipts_root"));
  CODEC_READ(out.state_root, r.Fixed<32>("state_root"));
  CODEC_READ(out.proposer, r.Fixed<20>("proposer"));
  CODEC_READ(out.validator_set_hash, r.Fixed<32>("validator_set_hash"));
  CODEC_READ(out.next_validator_set_hash, r.Fixed<32>("next_validator_set_hash"));
  CODEC_READ(out.last_commit_hash, r.Fixed<32>("last_commit_hash"));
  CODEC_READ(out.evidence_hash, r.Fixed<32>("evidence_hash"));
  return base::Ok();
}

Status Read(Reader& r, Block& out) {
  {
    auto s = r.Enter("header");
    GPUNET_TRY(Read(r, out.header));
  }
  // A named lambda: GPUNET_TRY inside a GPUNET_TRY's argument would shadow its local.
  auto read_tx = [&](Tx& tx) -> Status {
    size_t len = 0;
    {
      auto n = r.VarUint("length");
      if (!n) return std::unexpected(n.error());
      if (*n > limits::kTxBytesMax)
        return r.OverLimit("length", *n, "bytes", CODEC_LIMIT(kTxBytesMax));
      if (*n > r.Remaining())
        return r.Error(ErrorCode::kCorrupt, "length",
                       "truncated: the tx claims " + std::to_string(*n) + " bytes, " +
                           std::to_string(r.Remaining()) + " left");
      len = static_cast<size_t>(*n);
    }
    size_t start = r.Offset();
    GPUNET_TRY(Read(r, tx));
    if (r.Offset() - start != len)
      return r.Error(ErrorCode::kCorrupt, "length",
                     "length prefix says " + std::to_string(len) + " bytes but the tx takes " +
                         std::to_string(r.Offset() - start));
    return base::Ok();
  };
  GPUNET_TRY(ReadList(r, "txs", CODEC_LIMIT(kTxsPerBlockMax), out.txs, read_tx));
  GPUNET_TRY(ReadList(r, "evidence", CODEC_LIMIT(kEvidencePerBlockMax), out.evidence,
                      [&](Evidence& e) { return Read(r, e); }));
  auto s = r.Enter("last_commit");
  return Read(r, out.last_commit);
}

Status Read(Reader& r, Event& out) {
  CODEC_READ(out.type, r.String("type", limits::kEventTypeBytesMax, StringRule::kIdent,
                                "kEventTypeBytesMax"));
  size_t n = 0;
  CODEC_READ(n, r.Count("attributes", CODEC_LIMIT(kEventAttributesMax)));
  out.attributes.clear();
  for (size_t i = 0; i < n; ++i) {
    auto s = r.Enter("attributes", i);
    std::string key, value;
    CODEC_READ(key, r.String("key", limits::kEventAttributeKeyBytesMax, StringRule::kIdent,
                             "kEventAttributeKeyBytesMax"));
    CODEC_READ(value, r.String("value", limits::kEventAttributeValueBytesMax, StringRule::kText,
                               "kEventAttributeValueBytesMax"));
    if (!out.attributes.empty() && !(out.attributes.rbegin()->first < key))
      return r.Error(ErrorCode::kNonCanonical, "key",
                     "attribute keys must be strictly ascending (sorted, no duplicates)");
    out.attributes.emplace_hint(out.attributes.end(), std::move(key), std::move(value));
  }
  return base::Ok();
}

Status Read(Reader& r, Receipt& out) {
  CODEC_READ(out.tx_hash, r.Fixed<32>("tx_hash"));
  CODEC_READ(out.code, r.U16("code"));
  CODEC_READ(out.fee_ugpn, r.U64("fee_ugpn"));
  CODEC_READ(out.height, r.U64("height"));
  CODEC_READ(out.index, r.U32("index"));
  return ReadList(r, "events", CODEC_LIMIT(kEventsPerReceiptMax), out.events,
                  [&](Event& e) { return Read(r, e); });
}

// ---------------------------------------------------------------- whole buffers

base::Bytes EncodeTxBody(const TxBody& v) {
  return EncodeWith(v, 256);
}
base::Result<TxBody> DecodeTxBody(base::ByteSpan b) {
  return DecodeWhole<TxBody>(b, "tx_body", CODEC_LIMIT(kTxBytesMax));
}
base::Bytes EncodeTx(const Tx& v) {
  return EncodeWith(v, 256);
}
base::Result<Tx> DecodeTx(base::ByteSpan b) {
  return DecodeWhole<Tx>(b, "tx", CODEC_LIMIT(kTxBytesMax));
}
base::Bytes EncodeAccount(const Account& v) {
  return EncodeWith(v, 16);
}
base::Result<Account> DecodeAccount(base::ByteSpan b) {
  return DecodeWhole<Account>(b, "account", CODEC_LIMIT(kStateValueBytesMax));
}
base::Bytes EncodeValidatorSet(const ValidatorSet& v) {
  return EncodeWith(v, 1024);
}
base::Result<ValidatorSet> DecodeValidatorSet(base::ByteSpan b) {
  return DecodeWhole<ValidatorSet>(b, "validator_set", CODEC_LIMIT(kConsensusMsgBytesMax));
}
base::Bytes EncodeVote(const Vote& v) {
  return EncodeWith(v, 160);
}
base::Result<Vote> DecodeVote(base::ByteSpan b) {
  return DecodeWhole<Vote>(b, "vote", CODEC_LIMIT(kConsensusMsgBytesMax));
}
base::Bytes EncodeCommit(const Commit& v) {
  return EncodeWith(v, 1024);
}
base::Result<Commit> DecodeCommit(base::ByteSpan b) {
  return DecodeWhole<Commit>(b, "commit", CODEC_LIMIT(kConsensusMsgBytesMax));
}
base::Bytes EncodeProposal(const Proposal& v) {
  return EncodeWith(v, 160);
}
base::Result<Proposal> DecodeProposal(base::ByteSpan b) {
  return DecodeWhole<Proposal>(b, "proposal", CODEC_LIMIT(kConsensusMsgBytesMax));
}
base::Bytes EncodeEvidence(const Evidence& v) {
  return EncodeWith(v, 320);
}
base::Result<Evidence> DecodeEvidence(base::ByteSpan b) {
  return DecodeWhole<Evidence>(b, "evidence", CODEC_LIMIT(kConsensusMsgBytesMax));
}
base::Bytes EncodeBlockHeader(const BlockHeader& v) {
  return EncodeWith(v, 384);
}
base::Result<BlockHeader> DecodeBlockHeader(base::ByteSpan b) {
  return DecodeWhole<BlockHeader>(b, "block_header", CODEC_LIMIT(kConsensusMsgBytesMax));
}
base::Bytes EncodeBlock(const Block& v) {
  return EncodeWith(v, 4096);
}
base::Result<Block> DecodeBlock(base::ByteSpan b) {
  return DecodeWhole<Block>(b, "block", CODEC_LIMIT(kBlockBytesMax));
}
base::Bytes EncodeReceipt(const Receipt& v) {
  return EncodeWith(v, 128);
}
base::Result<Receipt> DecodeReceipt(base::ByteSpan b) {
  return DecodeWhole<Receipt>(b, "receipt", CODEC_LIMIT(kReceiptBytesMax));
}

// ---------------------------------------------------------------- validation

namespace {
template <class T>
Status StatusOf(const base::Result<T>& r) {
  if (!r) return std::unexpected(r.error());
  return base::Ok();
}
}  // namespace

Status ValidateTx(const Tx& v) {
  return StatusOf(DecodeTx(EncodeTx(v)));
}
Status ValidateTxBody(const TxBody& v) {
  return StatusOf(DecodeTxBody(EncodeTxBody(v)));
}
Status ValidateBlock(const Block& v) {
  return StatusOf(DecodeBlock(EncodeBlock(v)));
}
Status ValidateValidatorSet(const ValidatorSet& v) {
  return StatusOf(DecodeValidatorSet(EncodeValidatorSet(v)));
}
Status ValidateReceipt(const Receipt& v) {
  return StatusOf(DecodeReceipt(EncodeReceipt(v)));
}

}  // namespace gpunet::codec::legacy
