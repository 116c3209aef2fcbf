#include "provider/init_config.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <sstream>

#include "base/check.h"

namespace gpunet::provider {
namespace {

constexpr uint64_t kGib = 1ull << 30;

/// Whole GiB, rounded to the nearest: NVML reports an "80 GB" card as 79.6 GiB,
/// and tenants ask for 80.
uint32_t NearestGib(uint64_t bytes) {
  return static_cast<uint32_t>(std::min<uint64_t>((bytes + kGib / 2) / kGib, UINT32_MAX));
}

bool HasDigit(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// The model most GPUs of the host have (a machine on the ledger has one model).
std::string MainModel(const std::vector<runtime::GpuInfo>& gpus,
                      std::map<std::string, int>& count) {
  for (const auto& g : gpus) ++count[GpuModelFromName(g.name)];
  std::string best;
  for (const auto& [model, n] : count)
    if (best.empty() || n > count[best]) best = model;
  return best;
}

void WriteHeader(std::ostringstream& y, const HostInventory& host, const InitValues& v) {
  y << "# provider.yaml: what this provider sells and how its daemon runs this host.\n"
       "# Written by `gpunet provider init` on "
    << host.host_name
    << "; docs/provider.md explains every field.\n"
       "# Check the values marked CHECK, then `gpunet provider apply --dry-run` shows what\n"
       "# would change on the ledger and `gpunet provider apply` sends it.\n\n"
       "# The operator key (heartbeats, offers, lease starts) is the one init made in keys/.\n"
       "# The owner key (registration, bond, payouts) is not on this host, on purpose: a\n"
       "# stolen host must not be able to take the bond. `provider apply --owner NAME` uses\n"
       "# it from your wallet only to register, update or bond.\n"
    << "operator: " << v.operator_address << "\n"
    << "# The URL tenants reach the tenant API at. CHECK: your public host name and port.\n"
    << "tenant_api: " << v.tenant_api_uri << "\n"
    << "# SHA-256 of the tenant API's TLS key (tls/cert.pem); tenants pin it. Do not edit:\n"
       "# a new key (docs/provider.md, \"Keys\") comes with its own fingerprint.\n"
    << "tls_fingerprint: " << base::ToHex(v.tls_fingerprint) << "\n"
    << "region: " << v.region << "            # CHECK: where this host is, e.g. eu-west\n"
    << "bond: " << v.bond_gpn
    << "                 # GPN staked as a guarantee (the chain's minimum or more)\n"
    << "payouts:                  # who is paid what share of earnings (100% in all)\n";
  if (v.payee.empty())
    y << "  - to: " << v.operator_address
      << "  # CHECK: the operator for now; name an address that is NOT on this host\n";
  else
    y << "  - to: " << v.payee << "\n";
  y << "    share: 100%\n";
}

void WriteMachine(std::ostringstream& y, const HostInventory& host) {
  std::map<std::string, int> count;
  std::string model = MainModel(host.gpus, count);
  y << "    machines:\n      - id: 1\n        name: " << host.host_name << "\n";
  if (model.empty()) {
    y << "        # No NVIDIA GPU answered on this host"
      << (host.nvml_problem.empty() ? "" : " (" + host.nvml_problem + ")")
      << ".\n        # These values describe the declared GPUs of daemon.declared_gpus "
         "below,\n        # which only a development chain accepts. CHECK all of them.\n"
         "        gpu: DEV\n        gpus: 1\n        vram_gib: 1\n        link: pcie\n"
         "        driver: \"none\"\n        cuda: \"0.0\"\n        compute_capability: \"0.0\"\n";
    return;
  }
  uint64_t vram = UINT64_MAX;
  std::string nvml_name;
  for (const auto& g : host.gpus)
    if (GpuModelFromName(g.name) == model) {
      vram = std::min(vram, g.memory_total_bytes);
      nvml_name = g.name;
    }
  GPUNET_CHECK(vram != UINT64_MAX);
  std::string cc = KnownComputeCapability(model);
  y << "        gpu: " << model << "             # NVML: " << nvml_name << "\n"
    << "        gpus: " << count[model] << "\n";
  for (const auto& [other, n] : count)
    if (other != model)
      y << "        # this host also has " << n << " x " << other
        << ": a machine sells one model, so they are not listed\n";
  y << "        vram_gib: " << NearestGib(vram) << "             # per GPU, from NVML\n"
    << "        link: pcie            # CHECK: nvlink when the GPUs are NVLink-connected\n"
    << "        driver: \"" << host.driver_version << "\"\n"
    << "        cuda: \"12.0\"           # CHECK: the CUDA version the driver supports "
       "(nvidia-smi)\n"
    << "        compute_capability: \"" << (cc.empty() ? "0.0" : cc) << "\""
    << (cc.empty() ? "  # CHECK: not known for this model" : "  # of the model") << "\n";
}

void WriteDaemon(std::ostringstream& y, const HostInventory& host, const InitValues& v) {
  y << "\n# How `gpunet provider run` works this host (off-ledger).\n"
    << "daemon:\n"
    << "  node: " << v.node_url << "\n"
    << "  listen: " << v.listen << "       # the tenant API (HTTPS)\n"
    << "  metrics_listen: 127.0.0.1:9464   # Prometheus /metrics; keep it local\n"
    << "  machine: 1\n"
    << "  outputs_retention: 24h   # closed leases' logs and outputs stay readable (>= 1h)\n"
    << "  withdraw_every: 1h\n"
    << (v.passphrase_file.empty() ? "  # passphrase_file: /etc/gpunet/operator.pass"
                                  : "  passphrase_file: " + v.passphrase_file)
    << "   # unattended start (docs/provider.md, \"Keys\")\n";
  if (host.gpus.empty())
    y << "  # No NVIDIA GPU here: on a DEVELOPMENT chain only, the daemon can sell GPUs\n"
         "  # declared here, backed by device nodes (it refuses this on any other chain\n"
         "  # and marks every offer). Uncomment and match machine 1's gpus:\n"
         "  # declared_gpus:\n"
         "  #   - uuid: GPU-dev-0\n"
         "  #     minor: 0      # <device_dir>/nvidia0\n";
  y << "  bidding:\n"
    << "    enabled: false          # bid on open orders; needs a floor per model\n"
    << "    # floor: {H100: 2.5}    # never bid under this, GPN per GPU-hour\n"
    << "    # undercut: 5%          # bid this far under the order's max price\n";
}

}  // namespace

std::string GpuModelFromName(std::string_view nvml_name) {
  std::vector<std::string> words;
  std::istringstream in{std::string(nvml_name)};
  for (std::string w; in >> w;)
    if (w != "NVIDIA" && w != "Tesla" && w != "GeForce" && w != "Quadro") words.push_back(w);
  std::string model;
  for (const auto& w : words) {
    model += w;
    if (HasDigit(w)) break;
  }
  if (!HasDigit(model) && !words.empty()) model = words.front();
  model = model.substr(0, model.find('-'));
  std::erase_if(model, [](char c) { return c < 0x21 || c > 0x7e; });
  if (model.size() > 32) model.resize(32);
  return model.empty() ? "GPU" : model;
}

std::string KnownComputeCapability(std::string_view model) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 14> kKnown{{
      {"B200", "10.0"},
      {"GH200", "9.0"},
      {"H200", "9.0"},
      {"H100", "9.0"},
      {"L40S", "8.9"},
      {"L40", "8.9"},
      {"L4", "8.9"},
      {"RTX4090", "8.9"},
      {"A100", "8.0"},
      {"A30", "8.0"},
      {"A40", "8.6"},
      {"A10", "8.6"},
      {"T4", "7.5"},
      {"V100", "7.0"},
  }};
  for (const auto& [name, cc] : kKnown)
    if (name == model) return std::string(cc);
  return "";
}

HostInventory ProbeHost(const std::string& disk_dir, const std::string& nvml_library) {
  HostInventory host;
  char name[256] = {};
  host.host_name = ::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0' ? name : "host";
  std::erase_if(host.host_name, [](char c) { return c < 0x21 || c > 0x7e || c == '#'; });
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  host.cpu_cores = cores > 0 ? static_cast<uint32_t>(cores) : 0;
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0)
    host.memory_gib =
        static_cast<uint32_t>(static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / kGib);
  struct statvfs fs {};
  if (::statvfs(disk_dir.c_str(), &fs) == 0)
    host.disk_gib = static_cast<uint32_t>(static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize / kGib);
  auto nvml = runtime::ProbeNvml(nvml_library);
  if (nvml) {
    host.nvml_answered = true;
    host.driver_version = nvml->driver_version;
    host.gpus = nvml->gpus;
  } else {
    host.nvml_problem = nvml.error().message;
  }
  return host;
}

std::string RenderProviderYaml(const HostInventory& host, const InitValues& v) {
  std::ostringstream y;
  WriteHeader(y, host, v);
  y << "sites:\n  - id: 1\n"
    << "    fabric: ethernet          # CHECK: infiniband | roce | ethernet between machines\n"
    << "    bandwidth_gbps: 10        # CHECK: the fabric's bandwidth\n";
  WriteMachine(y, host);
  y << "        cpu_cores: " << host.cpu_cores << "\n"
    << "        memory_gib: " << host.memory_gib << "\n"
    << "        disk_gib: " << host.disk_gib << "         # free under the provider home\n"
    << "# Standing offers (rent-now prices). Uncomment and set your price:\n"
    << "# offers:\n"
    << "#   - gpu: " << (host.gpus.empty() ? "DEV" : GpuModelFromName(host.gpus.front().name))
    << "\n#     price: 2.5              # GPN per GPU-hour\n";
  WriteDaemon(y, host, v);
  return y.str();
}

}  // namespace gpunet::provider
