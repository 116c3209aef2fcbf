// Turning what a provider or tenant wrote (client/market_config.h) or typed into
// market messages (codec/types.h, docs/market.md), and packing messages into
// signed transactions.
//
// The canonical forms the ledger demands are made here, so a user never has to
// sort anything: payout splits, policy lists, tenants and auditors ascending by
// address, GPU models and attributes ascending, versions in the ledger's integer
// form (CUDA 12.1 -> 12010, compute capability 9.0 -> 90). A party named twice (a
// key name and its address) is refused with both places in the message.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/market_config.h"
#include "client/tx_builder.h"
#include "codec/types.h"
#include "crypto/ed25519.h"
#include "market/params.h"

namespace gpunet::client {

/// Turns a key name or gpn1 address into an address; errors should name the place.
using PartyResolver = std::function<base::Result<codec::Address>(const PartyText&)>;

/// CUDA version as the ledger stores it: major*1000 + minor*10 (12.1 -> 12010).
/// kInvalidArgument when minor > 99 or the value does not fit.
base::Result<uint32_t> CudaToLedger(const Version& v);
Version CudaFromLedger(uint32_t cuda);
/// Compute capability as the ledger stores it: major*10 + minor (9.0 -> 90), minor <= 9.
base::Result<uint32_t> ComputeCapabilityToLedger(const Version& v);
Version ComputeCapabilityFromLedger(uint32_t cc);

codec::Fabric FabricFromText(std::string_view text);  ///< "" or unknown -> kAny

/// The MsgProviderRegister of a provider.yaml (operator defaults to `owner`). The
/// bond is checked against the chain's `params` (GET /status "market_params").
base::Result<codec::MsgProviderRegister> ProviderRegisterMsg(const ProviderConfig& config,
                                                             const codec::Address& owner,
                                                             const PartyResolver& resolve,
                                                             const market::Params& params);
/// The MsgProviderUpdate of a provider.yaml (the bond is changed by bond/unbond).
base::Result<codec::MsgProviderUpdate> ProviderUpdateMsg(const ProviderConfig& config,
                                                         const codec::Address& owner,
                                                         const PartyResolver& resolve);
/// The driver_version a machine record of declared GPUs carries (daemon.declared_gpus,
/// development chains only; docs/provider.md, "Declared GPUs on the ledger"): it
/// sorts before every real version, so an offer class's driver_version_min shows it
/// whenever one of its machines is declared, and `gpunet offers` marks such offers.
inline constexpr std::string_view kDeclaredDriverVersion = "(declared)";

/// One MsgSiteUpsert per site and one MsgMachineUpsert per machine, sites first.
/// With daemon.declared_gpus, every machine's driver_version is kDeclaredDriverVersion.
base::Result<std::vector<codec::Msg>> InventoryMsgs(const ProviderConfig& config,
                                                    const codec::Address& provider);
/// One MsgOfferCreate per offer of the config.
base::Result<std::vector<codec::Msg>> OfferMsgs(const ProviderConfig& config,
                                                const codec::Address& provider,
                                                const PartyResolver& resolve);

/// The MsgOrderCreate of an order.yaml; the bid window and the deposit are checked
/// against the chain's `params`.
base::Result<codec::MsgOrderCreate> OrderCreateMsg(const OrderConfig& config,
                                                   const PartyResolver& resolve,
                                                   const market::Params& params);

/// Splits messages, in order, into transactions of at most kMsgsPerTxMax messages.
std::vector<std::vector<codec::Msg>> ChunkMsgs(std::vector<codec::Msg> msgs);

/// The lowest fee of a tx carrying `msgs` (every field fixed width except strings
/// and lists, so the size is the size of this exact tx).
base::Result<uint64_t> MarketTxFee(const FeeSchedule& schedule, std::string_view chain_id,
                                   const std::vector<codec::Msg>& msgs, std::string_view memo);

/// A signed tx of `msgs` from `key`. Refuses before signing what ValidateTxBody
/// refuses, with the message named.
base::Result<codec::Tx> BuildMarketTx(const crypto::KeyPair& key, std::string_view chain_id,
                                      uint64_t nonce, std::vector<codec::Msg> msgs,
                                      uint64_t fee_ugpn, uint64_t timeout_height,
                                      std::string_view memo);

/// What a deposit buys, for the confirmation the CLI shows before money moves.
struct LeaseEstimate {
  uint64_t rate_ugpn_per_hour = 0;  ///< price x GPUs
  uint64_t deposit_ugpn = 0;
  uint64_t covered_ms = 0;        ///< how long the deposit pays at the rate
  uint64_t min_deposit_ugpn = 0;  ///< deposit_min_hours at the rate (the chain's minimum)
};
/// kOverflow when price x gpus does not fit; kInvalidArgument for zero gpus or price.
base::Result<LeaseEstimate> EstimateLease(uint64_t price_ugpn_per_gpu_hour, uint64_t gpus,
                                          uint64_t deposit_ugpn, const market::Params& params);
/// "one hour", "3 hours".
std::string DescribeHours(uint64_t hours);
/// "2 h 30 min", "45 s": a duration for people.
std::string DescribeDurationMs(uint64_t ms);

}  // namespace gpunet::client
