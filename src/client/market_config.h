// provider.yaml and order.yaml: how a provider describes itself and its machines,
// and how a tenant describes what it wants to rent (docs/market-cli.md has the
// schema with examples).
//
// Parsing is strict so that a typo never turns into a signed transaction: unknown
// and duplicate keys are refused, numbers are whole and in range, amounts are
// exact (client/amount.h), and every error names the file, the line and the field,
// e.g. `provider.yaml:14: sites[0].machines[1].gpus: "eight" is not a whole number`.
//
// The result is a plain config value: parties (operator, payees, tenants,
// auditors) stay as written (key names or gpn1 addresses) with their line, and are
// resolved and turned into ledger messages by client/market_tx.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/limits.h"
#include "base/result.h"
#include "client/offer_filter.h"

namespace gpunet::client {

/// Where a value came from, for messages after parsing: "provider.yaml:14: payouts[1].to".
struct ConfigPlace {
  std::string file;
  int line = 0;  ///< 1-based; 0 = unknown
  std::string field;
  /// "file:line: field"
  std::string Describe() const;
};

/// A key name in the keystore or a gpn1 address, resolved later.
struct PartyText {
  std::string text;
  ConfigPlace place;
};

struct PayoutConfig {
  PartyText payee;
  uint32_t bp = 0;  ///< basis points; all payouts sum to 10,000
};

struct MachineConfig {
  uint32_t id = 0;   ///< unique within the provider, >= 1
  std::string name;  ///< optional label, off-ledger
  std::string gpu_model;
  uint32_t gpu_count = 0;
  uint32_t vram_gib = 0;
  std::string link;  ///< "nvlink" | "pcie"
  std::string driver_version;
  Version cuda;
  Version compute_capability;
  uint32_t cpu_cores = 0;
  uint32_t memory_gib = 0;
  uint32_t disk_gib = 0;
  ConfigPlace place;
};

struct SiteConfig {
  uint32_t id = 0;     ///< unique within the provider, >= 1
  std::string name;    ///< optional label, off-ledger
  std::string fabric;  ///< "infiniband" | "roce" | "ethernet"
  uint32_t bandwidth_gbps = 0;
  std::vector<MachineConfig> machines;
  ConfigPlace place;
};

struct OfferConfig {
  std::string gpu_model;
  uint32_t site_id = 0;  ///< 0 = any site
  uint64_t price_ugpn_per_gpu_hour = 0;
  std::vector<PartyText> tenants;  ///< empty = public
  uint32_t min_hours = 0;          ///< a lease must pay for at least this (0 = chain's minimum)
  uint32_t max_hours = 0;          ///< and may run at most this (0 = no limit)
  ConfigPlace place;
};

/// A GPU that provider.yaml declares on a host without NVIDIA GPUs, backed by a
/// device node (development chains only: the daemon refuses it on any other chain,
/// says so in `provider status` and marks every offer; docs/provider.md).
struct DeclaredGpuConfig {
  std::string uuid;    ///< "GPU-..." as CUDA_VISIBLE_DEVICES would name it
  uint32_t minor = 0;  ///< N of <device_dir>/nvidiaN
  ConfigPlace place;
};

/// How the daemon bids on open orders its machine can serve (docs/provider.md,
/// "Bidding"). Off-ledger policy; nothing here is sent except the bids.
struct BiddingConfig {
  bool enabled = false;
  /// Never bid under this, per GPU model ("H100": 2.5 GPN). A model not listed is
  /// not bid on.
  std::map<std::string, uint64_t> floor_ugpn_per_gpu_hour;
  /// Bid this far under the order's max price (basis points), never under the floor.
  uint32_t undercut_bp = 0;
};

/// The shortest daemon.withdraw_every on a chain that is not a development chain:
/// each withdrawal is a tx whose fee the operator pays.
inline constexpr uint64_t kWithdrawEveryMinMs = 60'000;

/// provider.yaml's `daemon:` section: how `gpunet provider run` operates this
/// host (off-ledger; docs/provider.md). Every field has a default, so the section
/// may be absent.
struct DaemonConfig {
  std::string node_url = "http://127.0.0.1:26657";
  std::string listen = "0.0.0.0:8443";  ///< the tenant API (HTTPS), host:port
  /// Prometheus /metrics and the operator's local status (plain HTTP, keep it local).
  std::string metrics_listen = "127.0.0.1:9464";
  /// Which machine of `sites` this host is (0 = the only machine there is).
  uint32_t machine_id = 0;
  /// 0 = a third of the chain's heartbeat_timeout_ms (market params).
  uint64_t heartbeat_every_ms = 0;
  /// At least 1 s here; `provider run` refuses less than kWithdrawEveryMinMs unless
  /// the chain is a development chain (a test sees a withdrawal in seconds).
  uint64_t withdraw_every_ms = 60ull * 60 * 1000;
  /// How long a closed lease's logs and outputs stay readable; at least one hour.
  uint64_t outputs_retention_ms = 24ull * 60 * 60 * 1000;
  uint64_t health_poll_ms = 10'000;
  std::string nvml_library = "libnvidia-ml.so.1";
  /// The operator key's passphrase, for unattended start: a file readable only by
  /// the daemon's user ("" = ask on the terminal). docs/provider.md, "Keys".
  std::string passphrase_file;
  /// The unprivileged user the tenant-facing process runs as.
  std::string api_user = "nobody";
  std::string device_dir = "/dev";
  std::vector<DeclaredGpuConfig> declared_gpus;  ///< non-empty = development mode
  BiddingConfig bidding;
  ConfigPlace place;
};

/// provider.yaml.
struct ProviderConfig {
  PartyText operator_key;  ///< the key for daily txs; defaults to the owner when absent
  bool has_operator = false;
  std::string tenant_api_uri;
  base::Hash32 tls_fingerprint;
  std::string region;
  uint64_t bond_ugpn = 0;
  std::vector<PayoutConfig> payouts;
  std::vector<PartyText> allow;
  std::vector<PartyText> deny;
  std::vector<SiteConfig> sites;
  std::vector<OfferConfig> offers;
  DaemonConfig daemon;  ///< the `daemon:` section (defaults when absent)
  std::string file;
};

/// order.yaml.
struct OrderConfig {
  std::vector<std::string> gpu_models;  ///< empty = any
  uint32_t gpus_per_machine = 0;
  uint32_t machines = 1;
  uint32_t min_vram_gib = 0;
  std::string region;  ///< empty = any
  std::string fabric;  ///< empty = any
  bool same_site = false;
  Version min_cuda;  ///< 0.0 = any
  std::vector<PartyText> auditors;
  std::map<std::string, std::string> attributes;
  uint64_t max_price_ugpn_per_gpu_hour = 0;
  uint64_t deposit_ugpn = 0;
  base::Hash32 manifest_hash;
  std::string manifest_path;  ///< when the hash came from a file
  uint64_t bid_window_ms = 0;
  // providers: who may bid (docs/market.md "Orders"); defaults admit everyone.
  uint64_t min_provider_bond_ugpn = 0;
  uint64_t min_provider_earned_ugpn = 0;  ///< from tenants other than itself
  uint32_t max_provider_fault_rate_ppm = base::limits::kFaultRatePpmAny;
  std::vector<PartyText> excluded_providers;
  std::string file;
};

/// Parses provider.yaml text; `file` names it in errors. kInvalidArgument for
/// anything wrong, with file:line: field.
base::Result<ProviderConfig> ParseProviderConfig(std::string_view yaml_text, std::string_view file);
/// Reads and parses a provider.yaml (kNotFound / kIo when the file cannot be read).
base::Result<ProviderConfig> LoadProviderConfig(const std::string& path);

/// Parses order.yaml text. A `manifest: FILE` is read relative to `base_dir`, parsed
/// (client/manifest.h) and its canonical JSON hashed with BLAKE2b-256: the hash the
/// provider checks the submitted manifest against (docs/manifest.md).
base::Result<OrderConfig> ParseOrderConfig(std::string_view yaml_text, std::string_view file,
                                           const std::string& base_dir);
base::Result<OrderConfig> LoadOrderConfig(const std::string& path);

/// "30s", "500ms", "5m", "2h" -> ms. A unit is required.
base::Result<uint64_t> ParseDurationMs(std::string_view text);
/// "70%", "12.5%", "7000bp" -> basis points (at most 2 decimals of a percent).
base::Result<uint32_t> ParseShareBp(std::string_view text);

}  // namespace gpunet::client
