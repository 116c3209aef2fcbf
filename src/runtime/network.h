// Network modes of a sandboxed workload (architecture §4, issue 6 item 4).
//
// The sandbox always gets a network namespace of its own (bwrap --unshare-net);
// the host network namespace is never shared. What this file adds on top of that
// empty namespace depends on WorkloadSpec::network:
//   - kNone:   nothing. The workload sees only `lo`.
//   - kEgress: a slirp4netns user-mode stack (tap0, 10.0.2.100/24) for outbound
//              traffic, with host loopback disabled in slirp and firewall rules
//              installed inside the namespace that reject the host's own addresses,
//              private ranges, CGNAT, link-local and slirp's gateway/DNS addresses.
//              The workload holds no capabilities, so it cannot remove the rules.
//   - kPorts:  no outbound route at all. The runtime listens on the host's
//              127.0.0.1:host_port and, per accepted connection, opens a socket
//              inside the sandbox namespace to 127.0.0.1:container_port and copies
//              bytes both ways. Only the listed ports are reachable from the host.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/spec.h"

namespace gpunet::runtime {

/// What AttachNetwork set up for one sandbox. Owning it keeps the network up;
/// destroying it tears everything down (slirp4netns killed and reaped, forwarder
/// threads joined, listening sockets closed). It must be destroyed before the
/// sandbox's run_dir is removed.
class NetworkAttachment {
 public:
  virtual ~NetworkAttachment() = default;
  /// The ports actually bound on the host's 127.0.0.1 (host_port filled in when the
  /// spec asked for 0). Empty unless the mode is kPorts.
  virtual std::vector<PortSpec> BoundPorts() const = 0;
};

/// Gives the network namespace of a freshly created sandbox the connectivity its
/// mode allows. Called by the sandbox launcher, inside its supervisor process,
/// after the sandbox's user and network namespaces exist and BEFORE the workload
/// command is released (bwrap --block-fd), so the workload never runs without its
/// firewall. `pid_in_netns` is the sandboxed child's pid as seen from the caller
/// (its /proc/<pid>/ns/{net,user} are used); `run_dir` is a private directory of
/// the runtime for this workload (slirp's API socket and logs go there). Must be
/// called by root (setns into the namespace, install firewall rules). For
/// NetworkMode::kNone it checks nothing and returns an attachment that does nothing.
base::Result<std::unique_ptr<NetworkAttachment>> AttachNetwork(const WorkloadSpec& spec,
                                                               pid_t pid_in_netns,
                                                               const std::string& run_dir);

/// Bounds of the ports mode (not protocol limits: local resource caps of one sandbox).
inline constexpr size_t kForwardedPortsMax = 16;          ///< PortSpecs per workload
inline constexpr size_t kForwardedConnectionsMax = 128;   ///< open forwarded connections, all ports
inline constexpr size_t kForwardBufferBytes = 64 * 1024;  ///< per direction per connection
/// Lowest host port a workload may ask for: the ones below are bound by root only,
/// and local clients trust what answers there (the forwarder binds as root).
inline constexpr uint16_t kHostPortMin = 1024;
/// How long AttachNetwork waits for slirp4netns to configure tap0.
inline constexpr int kSlirpReadyTimeoutMs = 10000;
/// Address of slirp's DNS forwarder, the only 10/8 address an egress workload may
/// reach (port 53 only). Bind a resolv.conf naming it (SandboxResolvConf).
inline constexpr const char* kSlirpDnsAddress = "10.0.2.3";

/// The /etc/resolv.conf a sandbox of this mode should see (bind it read-only before
/// start): slirp's DNS forwarder for kEgress; for kNone/kPorts a file with no
/// nameserver, so lookups fail fast instead of timing out against the host's resolver.
std::string SandboxResolvConf(NetworkMode mode);

/// Checks a spec's network part before anything is started: ports only with kPorts,
/// container ports non-zero and unique, host ports unique, count within limits.
base::Status ValidateNetworkSpec(const WorkloadSpec& spec);

/// What this host can do for each mode (used by `gpunet sandbox check`): empty
/// string when the mode works, otherwise why not (e.g. "slirp4netns not found").
std::string EgressUnavailableReason();

}  // namespace gpunet::runtime
