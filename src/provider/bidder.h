// The daemon's bidding (docs/provider.md, "Bidding"; issue 17 item 3): which open
// orders this machine bids on and which of the provider's bids it withdraws. A pure
// function of what the daemon read from the ledger, the pool's free healthy GPUs and
// daemon.bidding; the daemon calls it each reconcile and sends what it returns.
//
// One daemon = one machine: only orders asking for one machine are bid on. The
// ledger checks every bid again (market/apply_orders.cpp); WhyNotServe applies the
// ledger's own rules (market/query.h: MachineMismatch, FabricMismatch,
// RegionMismatch, TenantNotAdmitted, ProviderUnqualified) to what the daemon read, so the daemon
// sends no bid the ledger would refuse for those reasons. Orders that ask for attested attributes
// are not bid on (the daemon does not read attestations).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "client/market_answers.h"
#include "client/market_config.h"
#include "codec/types.h"
#include "provider/engine.h"

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

/// Why this machine cannot serve `order` for the provider; "" when it can: the
/// ledger's rules of market/query.h on the records read, then this daemon's own
/// (one machine, no attested attributes, enough free healthy GPUs now).
std::string WhyNotServe(const BidderInput& in, const client::OrderInfo& order);

/// The provider's own bids on the open orders, read again only where something may
/// have changed, so a reconcile does not ask the node for the bids of every open
/// order on every block: an order's bids are read when it is new to the cache, when
/// its bid count differs from the one read last time, or after Forget (the daemon
/// sent a bid or a withdrawal on it); an order without bids is not read at all.
/// Orders no longer open leave the cache.
class OwnBids {
 public:
  /// Reads the provider's bids on one order (the daemon: GET /market/order/<id>/bids,
  /// keeping its own).
  using Fetch = std::function<base::Result<std::vector<client::BidInfo>>(uint64_t order_id)>;

  /// The own bids on `open_orders`, in their order; the first fetch error stops it
  /// (what was read before it is kept).
  base::Result<std::vector<client::BidInfo>> Update(
      const std::vector<client::OrderInfo>& open_orders, const Fetch& fetch);
  /// Reads `order_id`'s bids again on the next Update.
  void Forget(uint64_t order_id) { m_seen.erase(order_id); }

 private:
  struct Seen {
    uint32_t bids = 0;  ///< the order's bid count when its bids were read
    std::vector<client::BidInfo> own;
  };
  std::map<uint64_t, Seen> m_seen;
};

/// The price to bid on `order` for a GPU of `model`: max - max*undercut_bp/10000;
/// 0 when that is under the model's floor or the model has no floor.
uint64_t BidPrice(const client::BiddingConfig& policy, const std::string& model,
                  uint64_t max_price_ugpn_per_gpu_hour);

/// The bids to create (never a second bid on an order: one with an own bid is
/// skipped) and to withdraw (own bids naming this machine on orders still in their
/// window whose GPUs are no longer free and healthy, or all of them when draining).
BidPlan PlanBids(const BidderInput& in, const client::BiddingConfig& policy);

/// The free healthy GPUs of an Engine::StatusJson(): healthy and in no lease, at most
/// `sold` (the machine's gpu_count on the ledger).
uint32_t FreeHealthyGpus(const nlohmann::json& engine_status, uint32_t sold);

/// Whether <state_dir>/draining exists (`gpunet provider drain` wrote it).
bool Draining(const std::string& state_dir);

/// The daemon's side of bidding: each Reconcile reads the provider's record and every
/// open order (a full catch-up each time, so an order created while the block watch
/// was reconnecting is not missed) and the provider's bids on those orders whose bid
/// count changed (OwnBids), runs PlanBids and
/// sends its withdrawals, then its bids, one tx each (a refusal is logged once).
/// Before that it brings the machine record's gpu_count to the healthy GPUs
/// (PlanMachineRecord). Orders are read only when bidding or draining.
class Bidder {
 public:
  struct Options {
    std::string node_url;
    codec::Address provider;
    uint32_t machine_id = 0;
    client::BiddingConfig policy;
    std::string state_dir;  ///< where `draining` is looked for
    /// This machine's MsgMachineUpsert from provider.yaml: its gpu_count on the
    /// ledger follows the healthy GPUs (machine_record.h). Unset: left alone.
    std::optional<codec::MsgMachineUpsert> machine_config;
  };
  Bidder(Options options, ChainPort& chain, std::function<void(std::string_view)> log);

  /// One pass; an error (logged once) when the node could not be read (nothing was
  /// sent then).
  base::Status Reconcile(const nlohmann::json& engine_status);

 private:
  base::Result<BidderInput> Read(const nlohmann::json& engine_status);
  void Send(const codec::Msg& msg, const std::string& what);

  Options m_options;
  ChainPort& m_chain;
  std::function<void(std::string_view)> m_log;
  std::set<std::string> m_logged;  ///< refusals already logged
  bool m_said_draining = false;
  std::set<uint64_t> m_leases_seen;  ///< of the engine's status, to log arrivals while draining
  bool m_first_pass = true;
  OwnBids m_own_bids;
};

}  // namespace gpunet::provider
