// What `gpunet provider init` finds on the host and the commented provider.yaml it
// writes from it (docs/provider.md, "init").
//
// ProbeHost asks NVML (runtime/nvml.h) for the GPUs and the driver, and the OS for
// CPU cores, memory and the disk under the home; RenderProviderYaml turns that into
// a provider.yaml that parses (client/market_config.h) as written, with a comment
// on every value saying where it came from and what to check. What NVML does not
// report (CUDA version, NVLink) is filled with a stated guess for the operator to
// confirm before `provider apply` puts it on the ledger.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "runtime/nvml.h"

namespace gpunet::provider {

struct HostInventory {
  std::string host_name;
  bool nvml_answered = false;
  std::string nvml_problem;  ///< why NVML gave no answer ("" when it answered)
  std::string driver_version;
  std::vector<runtime::GpuInfo> gpus;
  uint32_t cpu_cores = 0;
  uint32_t memory_gib = 0;
  uint32_t disk_gib = 0;  ///< free space under the home
};

/// Probes this host (never fails: what cannot be read stays 0 or empty, with NVML's
/// reason in nvml_problem). `disk_dir`: where the daemon's workloads will live.
HostInventory ProbeHost(const std::string& disk_dir,
                        const std::string& nvml_library = runtime::kNvmlLibrary);

/// The ledger's GPU model ident from NVML's name: "NVIDIA H100 80GB HBM3" -> "H100",
/// "NVIDIA A100-SXM4-80GB" -> "A100", "NVIDIA GeForce RTX 4090" -> "RTX4090",
/// "Tesla T4" -> "T4". "GPU" when nothing usable is left.
std::string GpuModelFromName(std::string_view nvml_name);

/// The compute capability of a known model ("9.0" for H100), "" when unknown.
std::string KnownComputeCapability(std::string_view model);

/// Everything provider.yaml needs that is not probed.
struct InitValues {
  std::string operator_address;  ///< gpn1: the operator key init made
  std::string payee;             ///< key name or gpn1 address; "" = the operator (with a warning)
  std::string tenant_api_uri;    ///< https://HOST:PORT
  base::Hash32 tls_fingerprint{};
  std::string region;
  std::string bond_gpn;  ///< e.g. "100"
  std::string node_url;
  std::string listen;           ///< the tenant API's host:port
  std::string passphrase_file;  ///< absolute; "" = commented out (ask on the terminal)
};

/// The commented provider.yaml of `host` and `values`.
std::string RenderProviderYaml(const HostInventory& host, const InitValues& values);

}  // namespace gpunet::provider
