// The daemon's bidding (docs/provider.md, "Bidding"; issue 17 item 3): which open
// orders this machine bids on and which of the provider's bids it withdraws. A pure
// function of what the daemon read from the ledger, the pool's free healthy GPUs and
// daemon.bidding; the daemon calls it each reconcile and sends what it returns.
//
// One daemon = one machine: only orders asking for one machine are bid on. The
// ledger checks every bid again (market/apply_orders.cpp, Mismatch); the checks here
// only keep the daemon from sending bids the ledger would refuse. Orders that ask
// for attested attributes are not bid on (the daemon does not read attestations).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/market_answers.h"
#include "client/market_config.h"
#include "codec/types.h"

namespace gpunet::provider {

struct BidderInput {
  codec::Address provider;
  client::ProviderInfo provider_info;  ///< region, bond, earned, fault rate
  client::MachineInfo machine;         ///< this host's machine as the ledger has it
  client::SiteInfo site;               ///< its site
  /// GPUs of this machine free in the pool and healthy now.
  uint32_t free_healthy_gpus = 0;
  std::vector<client::OrderInfo> open_orders;
  std::vector<client::BidInfo> own_bids;  ///< the provider's bids on those orders
  bool draining = false;                  ///< <home>/state/draining: no new bids
  uint64_t now_ms = 0;                    ///< the last block's time
};

struct BidPlan {
  std::vector<codec::MsgBidCreate> create;
  std::vector<uint64_t> withdraw;  ///< bid ids, ascending
  bool operator==(const BidPlan&) const = default;
};

/// Why this machine cannot serve `order` for the provider; "" when it can.
std::string WhyNotServe(const BidderInput& in, const client::OrderInfo& order);

/// The price to bid on `order` for a GPU of `model`: max - max*undercut_bp/10000;
/// 0 when that is under the model's floor or the model has no floor.
uint64_t BidPrice(const client::BiddingConfig& policy, const std::string& model,
                  uint64_t max_price_ugpn_per_gpu_hour);

/// The bids to create (never a second bid on an order: one with an own bid is
/// skipped) and to withdraw (own bids naming this machine on orders still in their
/// window whose GPUs are no longer free and healthy, or all of them when draining).
BidPlan PlanBids(const BidderInput& in, const client::BiddingConfig& policy);

}  // namespace gpunet::provider
