// The provider daemon's home directory: one place that names its files, so
// `provider init`, `provider apply`, `provider run` and `provider status` agree.
//
//   <home>/provider.yaml        what the provider sells (docs/provider.md)
//   <home>/keys/                the operator's keystore (never the owner key)
//   <home>/tls/key.pem          the tenant API's TLS key (0600)
//   <home>/tls/cert.pem         its self-signed certificate; the ledger pins the key
//   <home>/state/               the daemon's own state (leases, nonces), 0700
//   <home>/sandbox/             the workload runtime's state_dir (root-owned, 0711)
#pragma once

#include <string>

#include "base/result.h"

namespace gpunet::provider {

struct ProviderHome {
  std::string dir;  ///< absolute

  std::string ConfigPath() const { return dir + "/provider.yaml"; }
  std::string KeysDir() const { return dir + "/keys"; }
  std::string TlsDir() const { return dir + "/tls"; }
  std::string TlsKeyPath() const { return dir + "/tls/key.pem"; }
  std::string TlsCertPath() const { return dir + "/tls/cert.pem"; }
  std::string StateDir() const { return dir + "/state"; }
  std::string SandboxDir() const { return dir + "/sandbox"; }
};

/// The home at `dir` (made absolute), which must exist and hold a provider.yaml:
/// kNotFound otherwise, with a message that says to run `gpunet provider init`.
base::Result<ProviderHome> OpenProviderHome(const std::string& dir);

/// The default home: $GPUNET_PROVIDER_HOME, else /var/lib/gpunet/provider as root,
/// else $HOME/.gpunet/provider.
std::string DefaultProviderHome();

}  // namespace gpunet::provider
