// `gpunet provider apply`: what it takes to make the ledger match provider.yaml.
//
// A pure planner: from the config (client/market_config.h) with its parties
// resolved, and the provider as the ledger holds it (client/market_answers.h,
// GET /market/provider/<owner>: the record, its sites, machines and open offers),
// it computes the ordered messages to send, a line per difference for people, and
// the money that leaves the owner's balance. Nothing here reads the network or a
// key; the CLI (apps/gpunet/cmd_provider_setup.cpp) fetches, prints and signs.
//
// Running the plan and planning again gives an empty plan: every step is
// computed from a difference, never sent "to be sure" (docs/provider.md, "apply").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "client/market_answers.h"
#include "client/market_config.h"
#include "client/market_tx.h"
#include "codec/types.h"
#include "market/params.h"

namespace gpunet::client {

/// Who signs a step: the owner (register, update, bond: its balance pays the bond
/// and the owner key never needs to sit on the provider's host) or the operator.
enum class PlanSigner : uint8_t { kOwner, kOperator };

struct PlanStep {
  PlanSigner signer = PlanSigner::kOperator;
  codec::Msg msg;
};

struct ProviderPlan {
  /// In sending order: the owner's steps first (the provider must exist before
  /// its inventory), then the operator's: offer closes, site and machine upserts,
  /// machine removals, offer creates (a machine is removed only after the offers
  /// that sold it are closed; a new offer comes after the machines it sells).
  std::vector<PlanStep> steps;
  /// One line per difference: "+" added, "~" changed, "-" removed or closed, "!"
  /// a difference the plan cannot or will not resolve (with the reason).
  std::vector<std::string> diff;
  /// Money leaving the owner's balance besides fees: the bond of a registration or
  /// the top-up to the bond in provider.yaml.
  uint64_t bond_ugpn = 0;

  bool Empty() const { return steps.empty(); }
  /// The messages of one signer, in order.
  std::vector<codec::Msg> MsgsOf(PlanSigner signer) const;
};

/// The plan for `config` (the provider's id is `owner`), given the ledger's record
/// of it (nullopt: not registered). `params` are the chain's market rules (the
/// bond minimum). kInvalidArgument for a config the chain would refuse, and for a
/// provider the ledger shows deregistered.
base::Result<ProviderPlan> PlanProvider(const ProviderConfig& config, const codec::Address& owner,
                                        const PartyResolver& resolve, const market::Params& params,
                                        const std::optional<ProviderInfo>& ledger);

/// The lowest fees of sending `plan` (per signer, in txs of at most
/// kMsgsPerTxMax messages): what `apply` shows before sending; each tx is
/// simulated again right before it is signed.
struct PlanFees {
  uint64_t owner_ugpn = 0;
  uint64_t operator_ugpn = 0;
};
base::Result<PlanFees> EstimatePlanFees(const ProviderPlan& plan, const FeeSchedule& schedule,
                                        std::string_view chain_id);

}  // namespace gpunet::client
