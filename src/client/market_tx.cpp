#include "client/market_tx.h"

#include <algorithm>
#include <map>

#include "base/checked_math.h"
#include "base/limits.h"
#include "client/amount.h"
#include "codec/encoding.h"
#include "codec/hashes.h"
#include "market/params.h"

namespace gpunet::client {
namespace {

using base::ErrorCode;
using base::Fail;
namespace limits = base::limits;

std::unexpected<base::Error> AtPlace(const ConfigPlace& place, const std::string& msg) {
  return Fail(ErrorCode::kInvalidArgument, place.Describe() + ": " + msg);
}

/// The ledger's identifier rule (codec StringRule::kIdent): 1..max bytes of
/// printable ASCII without spaces.
base::Status CheckIdent(std::string_view value, size_t max, const ConfigPlace& place,
                        std::string_view what) {
  if (value.empty() || value.size() > max)
    return AtPlace(place, std::string(what) + " must be 1.." + std::to_string(max) + " characters");
  for (char c : value)
    if (c < 0x21 || c > 0x7e)
      return AtPlace(place, std::string(what) + " \"" + std::string(value) +
                                "\" may hold only printable ASCII without spaces");
  return base::Ok();
}

/// Resolves parties and returns their addresses ascending, refusing one named twice.
base::Result<std::vector<codec::Address>> ResolveSet(const std::vector<PartyText>& parties,
                                                     const PartyResolver& resolve, size_t max,
                                                     std::string_view what) {
  if (parties.size() > max)
    return AtPlace(parties[max].place,
                   "at most " + std::to_string(max) + " " + std::string(what) + " are allowed");
  std::map<codec::Address, const PartyText*> seen;
  for (const auto& p : parties) {
    auto address = resolve(p);
    if (!address) return std::unexpected(address.error());
    auto [it, fresh] = seen.emplace(*address, &p);
    if (!fresh)
      return AtPlace(p.place, "\"" + p.text + "\" is the same account as \"" + it->second->text +
                                  "\" at " + it->second->place.Describe() + "; list it once");
  }
  std::vector<codec::Address> out;
  for (const auto& [address, _] : seen) out.push_back(address);
  return out;
}

template <class M>
base::Status FillProviderFields(M& msg, const ProviderConfig& c, const codec::Address& owner,
                                const PartyResolver& resolve) {
  ConfigPlace file_place{c.file, 0, ""};
  if (c.has_operator) {
    auto op = resolve(c.operator_key);
    if (!op) return std::unexpected(op.error());
    msg.operator_address = *op;
  } else {
    msg.operator_address = owner;
  }
  ConfigPlace uri_place = file_place;
  uri_place.field = "tenant_api";
  GPUNET_TRY(CheckIdent(c.tenant_api_uri, limits::kUriBytesMax, uri_place, "the URI"));
  msg.tenant_api_uri = c.tenant_api_uri;
  msg.tls_fingerprint = c.tls_fingerprint;
  ConfigPlace region_place = file_place;
  region_place.field = "region";
  GPUNET_TRY(CheckIdent(c.region, limits::kRegionBytesMax, region_place, "the region"));
  msg.region = c.region;

  if (c.payouts.size() > limits::kPayoutSplitsMax)
    return AtPlace(c.payouts[limits::kPayoutSplitsMax].payee.place,
                   "at most " + std::to_string(limits::kPayoutSplitsMax) + " payees are allowed");
  std::map<codec::Address, std::pair<uint32_t, const PartyText*>> splits;
  for (const auto& p : c.payouts) {
    auto payee = resolve(p.payee);
    if (!payee) return std::unexpected(payee.error());
    auto [it, fresh] = splits.emplace(*payee, std::make_pair(p.bp, &p.payee));
    if (!fresh)
      return AtPlace(p.payee.place, "\"" + p.payee.text + "\" is the same account as \"" +
                                        it->second.second->text + "\" at " +
                                        it->second.second->place.Describe() +
                                        "; give each payee one share");
  }
  msg.payouts.clear();
  for (const auto& [payee, share] : splits) msg.payouts.push_back({payee, share.first});
  auto allow = ResolveSet(c.allow, resolve, limits::kPolicyTenantsMax, "allowed tenants");
  if (!allow) return std::unexpected(allow.error());
  auto deny = ResolveSet(c.deny, resolve, limits::kPolicyTenantsMax, "denied tenants");
  if (!deny) return std::unexpected(deny.error());
  msg.policy.allow = std::move(*allow);
  msg.policy.deny = std::move(*deny);
  return base::Ok();
}

}  // namespace

base::Result<uint32_t> CudaToLedger(const Version& v) {
  if (v.minor > 99 || v.patch != 0 || v.major > 4'000'000)
    return Fail(ErrorCode::kInvalidArgument,
                "CUDA version " + FormatVersion(v) +
                    " cannot be stored: the ledger keeps major.minor with minor <= 99");
  return v.major * 1000 + v.minor * 10;
}

Version CudaFromLedger(uint32_t cuda) {
  return Version{cuda / 1000, (cuda % 1000) / 10, 0};
}

base::Result<uint32_t> ComputeCapabilityToLedger(const Version& v) {
  if (v.minor > 9 || v.patch != 0 || v.major > 400'000'000)
    return Fail(ErrorCode::kInvalidArgument,
                "compute capability " + FormatVersion(v) +
                    " cannot be stored: the ledger keeps major.minor with minor <= 9");
  return v.major * 10 + v.minor;
}

Version ComputeCapabilityFromLedger(uint32_t cc) {
  return Version{cc / 10, cc % 10, 0};
}

codec::Fabric FabricFromText(std::string_view text) {
  if (text == "infiniband") return codec::Fabric::kInfiniband;
  if (text == "roce") return codec::Fabric::kRoce;
  if (text == "ethernet") return codec::Fabric::kEthernet;
  return codec::Fabric::kAny;
}

base::Result<codec::MsgProviderRegister> ProviderRegisterMsg(const ProviderConfig& config,
                                                             const codec::Address& owner,
                                                             const PartyResolver& resolve,
                                                             const market::Params& params) {
  codec::MsgProviderRegister msg;
  GPUNET_TRY(FillProviderFields(msg, config, owner, resolve));
  if (config.bond_ugpn < params.provider_bond_min_ugpn)
    return AtPlace({config.file, 0, "bond"},
                   DescribeAmount(config.bond_ugpn) + " is under this chain's minimum bond of " +
                       DescribeAmount(params.provider_bond_min_ugpn) +
                       " (provider_bond_min_ugpn); a provider needs it to register");
  msg.bond_ugpn = config.bond_ugpn;
  return msg;
}

base::Result<codec::MsgProviderUpdate> ProviderUpdateMsg(const ProviderConfig& config,
                                                         const codec::Address& owner,
                                                         const PartyResolver& resolve) {
  codec::MsgProviderUpdate msg;
  GPUNET_TRY(FillProviderFields(msg, config, owner, resolve));
  return msg;
}

base::Result<std::vector<codec::Msg>> InventoryMsgs(const ProviderConfig& config,
                                                    const codec::Address& provider) {
  std::vector<codec::Msg> sites, machines;
  size_t machine_count = 0;
  for (const auto& s : config.sites) machine_count += s.machines.size();
  if (config.sites.size() > limits::kSitesPerProviderMax)
    return AtPlace(config.sites[limits::kSitesPerProviderMax].place,
                   "at most " + std::to_string(limits::kSitesPerProviderMax) + " sites");
  if (machine_count > limits::kMachinesPerProviderMax)
    return AtPlace({config.file, 0, "sites"},
                   std::to_string(machine_count) + " machines; at most " +
                       std::to_string(limits::kMachinesPerProviderMax) + " per provider");
  for (const auto& s : config.sites) {
    sites.push_back(
        codec::MsgSiteUpsert{provider, s.id, FabricFromText(s.fabric), s.bandwidth_gbps});
    for (const auto& m : s.machines) {
      codec::MsgMachineUpsert mu;
      mu.provider = provider;
      mu.machine_id = m.id;
      mu.site_id = s.id;
      GPUNET_TRY(CheckIdent(m.gpu_model, limits::kGpuModelBytesMax,
                            {m.place.file, m.place.line, m.place.field + ".gpu"}, "the GPU model"));
      mu.gpu_model = m.gpu_model;
      if (m.gpu_count > limits::kGpusPerMachineMax)
        return AtPlace({m.place.file, m.place.line, m.place.field + ".gpus"},
                       std::to_string(m.gpu_count) + " GPUs; a machine may report at most " +
                           std::to_string(limits::kGpusPerMachineMax));
      mu.gpu_count = m.gpu_count;
      mu.vram_gib = m.vram_gib;
      mu.link = m.link == "nvlink" ? codec::GpuLink::kNvlink : codec::GpuLink::kPcie;
      GPUNET_TRY(CheckIdent(m.driver_version, limits::kVersionBytesMax,
                            {m.place.file, m.place.line, m.place.field + ".driver"},
                            "the driver version"));
      mu.driver_version = m.driver_version;
      auto cuda = CudaToLedger(m.cuda);
      if (!cuda)
        return AtPlace({m.place.file, m.place.line, m.place.field + ".cuda"}, cuda.error().message);
      mu.cuda_version = *cuda;
      auto cc = ComputeCapabilityToLedger(m.compute_capability);
      if (!cc)
        return AtPlace({m.place.file, m.place.line, m.place.field + ".compute_capability"},
                       cc.error().message);
      mu.compute_capability = *cc;
      mu.cpu_cores = m.cpu_cores;
      mu.memory_gib = m.memory_gib;
      mu.disk_gib = m.disk_gib;
      machines.push_back(std::move(mu));
    }
  }
  sites.insert(sites.end(), std::make_move_iterator(machines.begin()),
               std::make_move_iterator(machines.end()));
  return sites;
}

base::Result<std::vector<codec::Msg>> OfferMsgs(const ProviderConfig& config,
                                                const codec::Address& provider,
                                                const PartyResolver& resolve) {
  std::vector<codec::Msg> out;
  if (config.offers.size() > limits::kOffersPerProviderMax)
    return AtPlace(config.offers[limits::kOffersPerProviderMax].place,
                   "at most " + std::to_string(limits::kOffersPerProviderMax) + " offers");
  for (const auto& o : config.offers) {
    codec::MsgOfferCreate msg;
    msg.provider = provider;
    msg.gpu_model = o.gpu_model;
    msg.site_id = o.site_id;
    msg.price_ugpn_per_gpu_hour = o.price_ugpn_per_gpu_hour;
    auto tenants = ResolveSet(o.tenants, resolve, limits::kOfferTenantsMax, "tenants");
    if (!tenants) return std::unexpected(tenants.error());
    msg.tenants = std::move(*tenants);
    msg.min_hours = o.min_hours;
    msg.max_hours = o.max_hours;
    out.push_back(std::move(msg));
  }
  return out;
}

// Over 70 lines on purpose: one straight mapping of order.yaml onto the message,
// field by field in the message's order (docs/market-cli.md), each with its check.
// NOLINTNEXTLINE(readability-function-size)
base::Result<codec::MsgOrderCreate> OrderCreateMsg(const OrderConfig& c,
                                                   const PartyResolver& resolve,
                                                   const market::Params& params) {
  codec::MsgOrderCreate msg;
  codec::Requirements& q = msg.requirements;
  auto place = [&](std::string field) { return ConfigPlace{c.file, 0, std::move(field)}; };
  if (c.gpu_models.size() > limits::kOrderGpuModelsMax)
    return AtPlace(place("requirements.gpu"),
                   "at most " + std::to_string(limits::kOrderGpuModelsMax) + " models");
  for (const auto& m : c.gpu_models)
    GPUNET_TRY(
        CheckIdent(m, limits::kGpuModelBytesMax, place("requirements.gpu"), "the GPU model"));
  q.gpu_models = c.gpu_models;
  std::sort(q.gpu_models.begin(), q.gpu_models.end());
  q.gpu_models.erase(std::unique(q.gpu_models.begin(), q.gpu_models.end()), q.gpu_models.end());
  q.gpus_per_machine = c.gpus_per_machine;
  if (c.gpus_per_machine > limits::kGpusPerMachineMax)
    return AtPlace(
        place("requirements.gpus_per_machine"),
        "no machine has more than " + std::to_string(limits::kGpusPerMachineMax) + " GPUs");
  if (c.machines > limits::kMachinesPerLeaseMax)
    return AtPlace(
        place("requirements.machines"),
        "at most " + std::to_string(limits::kMachinesPerLeaseMax) + " machines per lease");
  q.machines = c.machines;
  q.min_vram_gib = c.min_vram_gib;
  if (!c.region.empty())
    GPUNET_TRY(
        CheckIdent(c.region, limits::kRegionBytesMax, place("requirements.region"), "the region"));
  q.region = c.region;
  q.fabric = FabricFromText(c.fabric);
  q.same_site = c.same_site;
  auto cuda = CudaToLedger(c.min_cuda);
  if (!cuda) return AtPlace(place("requirements.min_cuda"), cuda.error().message);
  q.min_cuda_version = *cuda;
  auto auditors = ResolveSet(c.auditors, resolve, limits::kOrderAuditorsMax, "auditors");
  if (!auditors) return std::unexpected(auditors.error());
  q.auditors = std::move(*auditors);
  if (c.attributes.size() > limits::kAttributesMax)
    return AtPlace(place("requirements.attributes"),
                   "at most " + std::to_string(limits::kAttributesMax) + " attributes");
  for (const auto& [k, v] : c.attributes) {
    GPUNET_TRY(CheckIdent(k, limits::kAttributeKeyBytesMax, place("requirements.attributes." + k),
                          "the attribute name"));
    if (v.size() > limits::kAttributeValueBytesMax)
      return AtPlace(place("requirements.attributes." + k),
                     "at most " + std::to_string(limits::kAttributeValueBytesMax) + " bytes");
    q.attributes.push_back({k, v});
  }
  msg.max_price_ugpn_per_gpu_hour = c.max_price_ugpn_per_gpu_hour;
  msg.deposit_ugpn = c.deposit_ugpn;
  msg.manifest_hash = c.manifest_hash;
  if (c.bid_window_ms < params.bid_window_min_ms || c.bid_window_ms > params.bid_window_max_ms)
    return AtPlace(place("bid_window"), DescribeDurationMs(c.bid_window_ms) +
                                            " is not within this chain's " +
                                            DescribeDurationMs(params.bid_window_min_ms) + " .. " +
                                            DescribeDurationMs(params.bid_window_max_ms) +
                                            " (bid_window_min_ms .. bid_window_max_ms)");
  msg.bid_window_ms = c.bid_window_ms;
  codec::ProviderRequirements& pq = msg.providers;
  pq.min_bond_ugpn = c.min_provider_bond_ugpn;
  pq.min_earned_ugpn = c.min_provider_earned_ugpn;
  pq.max_fault_rate_ppm = c.max_provider_fault_rate_ppm;
  auto excluded =
      ResolveSet(c.excluded_providers, resolve, limits::kOrderExclusionsMax, "excluded providers");
  if (!excluded) return std::unexpected(excluded.error());
  pq.excluded = std::move(*excluded);
  auto estimate = EstimateLease(c.max_price_ugpn_per_gpu_hour,
                                uint64_t{c.gpus_per_machine} * c.machines, c.deposit_ugpn, params);
  if (!estimate) return AtPlace(place("max_price"), estimate.error().message);
  if (c.deposit_ugpn < estimate->min_deposit_ugpn)
    return AtPlace(place("deposit"),
                   DescribeAmount(c.deposit_ugpn) + " is under " +
                       DescribeHours(params.deposit_min_hours) + " at the max price (" +
                       DescribeAmount(estimate->min_deposit_ugpn) + " for " +
                       std::to_string(uint64_t{c.gpus_per_machine} * c.machines) + " GPUs)");
  return msg;
}

std::vector<std::vector<codec::Msg>> ChunkMsgs(std::vector<codec::Msg> msgs) {
  std::vector<std::vector<codec::Msg>> out;
  for (auto& m : msgs) {
    if (out.empty() || out.back().size() == limits::kMsgsPerTxMax) out.emplace_back();
    out.back().push_back(std::move(m));
  }
  return out;
}

base::Result<uint64_t> MarketTxFee(const FeeSchedule& schedule, std::string_view chain_id,
                                   const std::vector<codec::Msg>& msgs, std::string_view memo) {
  codec::Tx tx;
  tx.body.chain_id = std::string(chain_id);
  tx.body.msgs = msgs;
  tx.body.memo = std::string(memo);
  size_t bytes = codec::EncodeTx(tx).size();
  auto fee = MinimumFee(schedule, bytes, msgs.size());
  if (!fee)
    return Fail(ErrorCode::kOverflow, "the node's fee schedule asks for more than 2^64-1 ugpn");
  return *fee;
}

base::Result<codec::Tx> BuildMarketTx(const crypto::KeyPair& key, std::string_view chain_id,
                                      uint64_t nonce, std::vector<codec::Msg> msgs,
                                      uint64_t fee_ugpn, uint64_t timeout_height,
                                      std::string_view memo) {
  if (msgs.empty())
    return Fail(ErrorCode::kInvalidArgument, "a transaction needs at least one message");
  codec::TxBody body;
  body.chain_id = std::string(chain_id);
  body.sender = key.Public();
  body.nonce = nonce;
  body.fee_ugpn = fee_ugpn;
  body.timeout_height = timeout_height;
  body.msgs = std::move(msgs);
  body.memo = std::string(memo);
  if (auto valid = codec::ValidateTxBody(body); !valid)
    return base::Wrap(valid.error(), "the transaction is not valid");
  return codec::SignTx(std::move(body), key);
}

base::Result<LeaseEstimate> EstimateLease(uint64_t price_ugpn_per_gpu_hour, uint64_t gpus,
                                          uint64_t deposit_ugpn, const market::Params& params) {
  if (price_ugpn_per_gpu_hour == 0 || gpus == 0)
    return Fail(ErrorCode::kInvalidArgument, "the price and the number of GPUs must be above 0");
  auto rate = base::CheckedMul(price_ugpn_per_gpu_hour, gpus);
  if (!rate) return Fail(ErrorCode::kOverflow, "price x GPUs is over 2^64-1 ugpn per hour");
  LeaseEstimate e;
  e.rate_ugpn_per_hour = *rate;
  e.deposit_ugpn = deposit_ugpn;
  // Saturates: a minimum past 2^64-1 ugpn is one no deposit reaches.
  e.min_deposit_ugpn = base::CheckedMul(*rate, params.deposit_min_hours).value_or(UINT64_MAX);
  auto covered = base::MulDivFloor(deposit_ugpn, limits::kMsPerHour, *rate);
  e.covered_ms = covered ? covered->quotient : UINT64_MAX;
  return e;
}

std::string DescribeHours(uint64_t hours) {
  return hours == 1 ? "one hour" : std::to_string(hours) + " hours";
}

std::string DescribeDurationMs(uint64_t ms) {
  if (ms < 1000) return std::to_string(ms) + " ms";
  uint64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600)
    return std::to_string(s / 60) + " min" + (s % 60 ? " " + std::to_string(s % 60) + " s" : "");
  uint64_t h = s / 3600, min = (s % 3600) / 60;
  if (h < 48) return std::to_string(h) + " h" + (min ? " " + std::to_string(min) + " min" : "");
  return std::to_string(h / 24) + " d " + std::to_string(h % 24) + " h";
}

}  // namespace gpunet::client
