// The offer filter language of `gpunet offers` (docs/market-cli.md):
//
//   gpunet offers gpu=H100 gpus>=8 price<=2.5 region=eu fabric=infiniband cuda>=12.1
//
// A filter is a list of terms KEY OP VALUE, all of which must hold. Prices are
// typed in GPN per GPU-hour and parsed exactly with integer math (client/amount.h),
// so `price<=2.5` compares against 2,500,000 ugpn per GPU-hour, never a float.
//
// The filter runs on the client over offers the node listed: the node answers
// plain lists, and the language can grow without a protocol change.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace gpunet::client {

/// A dotted version such as CUDA 12.1, driver 550.54.15 or compute capability 9.0.
/// Missing components are 0, so 12 == 12.0 == 12.0.0.
struct Version {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint32_t patch = 0;
  auto operator<=>(const Version&) const = default;
  bool operator==(const Version&) const = default;
};

/// Parses "12", "12.1" or "550.54.15": 1 to 3 dot-separated decimal numbers, each
/// at most 9 digits. kInvalidArgument says what form is expected.
base::Result<Version> ParseVersion(std::string_view text);
/// "12.1", "550.54.15": major.minor, and .patch when it is not 0.
std::string FormatVersion(const Version& v);

/// What the filter sees of one offer: the offer's terms and the machine class it
/// sells, as the node's /market/offers endpoint reports them (docs/rpc.md).
struct OfferView {
  std::string id;          ///< the offer id as the node prints it
  std::string provider;    ///< provider address (gpn1...)
  std::string gpu_model;   ///< e.g. "H100"
  uint32_t gpus = 0;       ///< GPUs per machine of the class
  uint32_t gpus_free = 0;  ///< GPUs free now across the offer's machines
  uint64_t vram_gb = 0;    ///< per GPU
  uint64_t price_ugpn_per_gpu_hour = 0;
  std::string region;
  std::string fabric;  ///< "infiniband", "roce", "ethernet"
  std::string link;    ///< "nvlink", "pcie"
  Version cuda;
  Version driver;
  Version compute_capability;
  uint32_t machines = 0;    ///< machines the offer covers
  bool is_private = false;  ///< restricted to named tenants
  uint32_t min_hours = 0;   ///< a lease's first deposit covers this; 0: the chain's minimum
  uint32_t max_hours = 0;   ///< a lease's deposits in all cover at most this; 0: no limit
};

/// Comparison of one term.
enum class FilterOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

/// The fields a term may name. Each has a kind (text, count, price, version) that
/// decides which operators and values it accepts.
enum class FilterField : uint8_t {
  kGpu,       ///< text, = or !=, comma list of models, case-insensitive
  kGpus,      ///< count
  kGpusFree,  ///< count
  kVram,      ///< count (GB)
  kPrice,     ///< price, GPN per GPU-hour (or ugpn with the ugpn suffix)
  kRegion,    ///< text; "eu" also matches "eu-west" (a prefix ending at '-')
  kFabric,    ///< text: infiniband | roce | ethernet
  kLink,      ///< text: nvlink | pcie
  kCuda,      ///< version
  kDriver,    ///< version
  kCompute,   ///< version (compute capability)
  kMachines,  ///< count
  kProvider,  ///< text: a gpn1 address
};

/// One parsed term, e.g. price<=2.5 → {kPrice, kLe, number = 2500000}.
struct FilterTerm {
  FilterField field = FilterField::kGpu;
  FilterOp op = FilterOp::kEq;
  std::vector<std::string> texts;  ///< text fields: lower-cased alternatives
  uint64_t number = 0;             ///< count and price fields (price in ugpn)
  Version version;                 ///< version fields
  std::string source;              ///< the term as typed, for messages
};

struct OfferFilter {
  std::vector<FilterTerm> terms;
};

/// Parses filter words. Each word may hold several terms separated by spaces
/// (`"gpu=H100 gpus>=8"` as one shell argument works too). An empty list is the
/// filter that keeps everything. Errors (kInvalidArgument) quote the term and say
/// what is allowed: unknown key (listing the known ones), an operator the key does
/// not take (e.g. `region>eu`), a missing or malformed value, a price with more than
/// 6 decimals, an unknown fabric or link. kLimitExceeded over kFilterTermsMax terms.
base::Result<OfferFilter> ParseOfferFilter(const std::vector<std::string>& words);

/// Terms one filter may hold.
inline constexpr size_t kFilterTermsMax = 32;

/// True when every term holds for `offer`.
bool Matches(const OfferFilter& filter, const OfferView& offer);

/// The offers that match, cheapest first (ties: more free GPUs, then id), so the
/// order is the same on every run.
std::vector<OfferView> FilterAndSort(const OfferFilter& filter, std::vector<OfferView> offers);

/// The help text of the language: keys, operators, examples (used by --help).
std::string_view OfferFilterHelp();

}  // namespace gpunet::client
