// The root side of the broker (issue 17 item 5; docs/provider.md "Two processes",
// docs/tenant-api.md): serves the frames of provider/broker_wire.h that the
// unprivileged tenant-facing process sends on a few inherited socketpairs.
//
// The tenant-facing process is not trusted: a frame it cannot decode closes that
// socket; every signed op is verified again here with RequestVerifier over the
// exact method, raw target and headers the tenant sent and the hash of the body
// computed here; the op must match the route its target names (method, path, the
// lease id, and the query values it forwards as fields); only then does the agent
// act. So a compromised front gains nothing a tenant's own key would not give.
//
// Secrets (POST /leases/{id}/secrets): values never enter spec.json, argv, logs or
// events. A manifest that names secrets gets its command gated (GateOnSecrets): the
// workload starts at once with the lease's GPUs, but a small sh wrapper waits for
// /work/.gpunet/ready before it exports /work/.gpunet/secrets/<NAME> into the
// environment and execs the tenant's argv. The agent writes those files as the
// workload's uid, each whole or not at all (runtime::WriteUploadFileOnce: openat2
// beneath the work dir, a temporary name renamed into place, once), so a secret's
// file exists only with its whole value; and after every secrets request, whatever
// it did, it writes the ready marker (checked) once every named secret is set. So the
// order is: manifest, uploads, secrets (the last secret starts the command; a retry
// that finds them all set opens the gate too); without secrets the command starts
// with the manifest.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "provider/broker_wire.h"
#include "provider/engine.h"
#include "provider/event_log.h"
#include "provider/request_auth.h"
#include "runtime/runtime.h"
#include "runtime/uploads.h"

namespace gpunet::provider {

/// Where the gate looks, inside the workload (its work dir is /work).
inline constexpr std::string_view kSecretsDirInside = "/work/.gpunet/secrets";
inline constexpr std::string_view kSecretsReadyInside = "/work/.gpunet/ready";
/// The same, relative to the work dir (what the agent writes as the workload's uid).
inline constexpr std::string_view kSecretsDirRelative = ".gpunet/secrets";
inline constexpr std::string_view kSecretsReadyRelative = ".gpunet/ready";
inline constexpr size_t kSecretValueBytesMax = 64u << 10;
inline constexpr uint64_t kBrokerWaitMsMax = 25'000;  ///< long-polls (events, logs)
/// Long-polls (events or logs with wait_ms > 0) that may wait at once on one lease,
/// whoever signed them (the tenant and every key it granted together), counted once
/// the request is verified and allowed; the next gets 429 at once. Each holds one of
/// the tenant-facing process's broker sockets (all of them together but one may
/// wait), so one lease's grant keys never take every socket.
inline constexpr size_t kBrokerLongPollsPerLeaseMax = 2;
inline constexpr uint64_t kBrokerLogReadMax = 1u << 20;
inline constexpr size_t kBrokerEventsPerReply = 1000;
inline constexpr size_t kBrokerOutputEntriesMax = 10'000;

/// What a signed target names beside its lease: the path after /leases/{id},
/// percent-decoded, and the query's raw values. The agent reads these from the
/// target the tenant signed, never from the front's fields.
struct BrokerRoute {
  std::string rest;                          ///< "", "/events", "/files/a/b.bin", ...
  std::map<std::string, std::string> query;  ///< each key once
};
/// kInvalidArgument for a target client::CheckRequestTarget refuses, one that does not
/// name `lease_id`, or a query key given twice.
base::Result<BrokerRoute> ParseBrokerRoute(std::string_view target, uint64_t lease_id);

/// Wraps spec.command so it runs only once the secrets `names` are set (see above).
/// No-op when `names` is empty.
void GateOnSecrets(runtime::WorkloadSpec& spec, const std::vector<std::string>& names);

/// What the service needs; all pointers outlive it.
struct BrokerDeps {
  Engine* engine = nullptr;
  RequestVerifier* verifier = nullptr;
  EventLog* events = nullptr;
  /// The lease's workload as the runtime has it (work dir, run dir, uid, outputs).
  std::function<base::Result<runtime::WorkloadInfo>(const std::string& id)> attach;
  /// How it ended, or nullopt while it runs.
  std::function<base::Result<std::optional<runtime::ExitStatus>>(const std::string& id)> poll;
  std::function<std::vector<runtime::Environment>()> environments;
  /// A connected socket to the workload's in-sandbox init (runtime::Runtime::
  /// OpenSession), owned by the caller once returned. Unset: this host serves no
  /// sessions (503).
  std::function<base::Result<int>(const std::string& id)> open_session;
  /// Counts a session handed out (the daemon's /metrics; nullable).
  std::function<void()> session_opened;
  /// Root-only (0700) directory where the names of each lease's secrets are kept
  /// (<id>.names; never the values), so a restarted agent still checks them.
  std::string secrets_dir;
  std::function<void(std::string_view)> log;
};

class BrokerService {
 public:
  explicit BrokerService(BrokerDeps deps);
  ~BrokerService();
  BrokerService(const BrokerService&) = delete;
  BrokerService& operator=(const BrokerService&) = delete;

  /// Serves each fd on a thread of its own until the peer closes it, sends a frame
  /// that does not decode, or Stop. Takes ownership of the fds. The fds are one start
  /// of the tenant-facing process (ApiProcessOptions::on_spawn): the connections of
  /// the start before, whose process is gone, are retired first (shut down, a
  /// long-poll on them cut short, their threads joined, their fds closed), so a front
  /// that keeps restarting costs no fds or threads.
  void Serve(const std::vector<int>& fds);
  /// Shuts the sockets down and joins the threads. Idempotent.
  void Stop();
  /// Long-polls waiting now on lease `id` (its kBrokerLongPollsPerLeaseMax count).
  size_t LongPollsOf(uint64_t id) const;

  /// One request's answer (a kReply frame). A kSession's 200 comes with the session's
  /// socket in *session (the caller passes it with the reply, then closes its copy);
  /// without `session` a kSession is refused. Public for the unit tests.
  BrokerFrame Handle(const BrokerFrame& request, BrokerFd* session = nullptr);

 private:
  struct Lease;
  /// One broker socket and the thread serving it; `retired` cuts its long-polls short.
  struct Connection {
    int fd = -1;
    std::atomic<bool> retired{false};
    std::thread thread;
  };
  static void Retire(std::vector<std::unique_ptr<Connection>>& connections);
  void ServeFd(Connection& connection);
  /// Stop, or (on a broker thread) its connection retired: a long-poll answers now.
  bool Cancelled() const;
  BrokerFrame Signed(const BrokerFrame& request, BrokerFd* session);
  BrokerFrame Dispatch(const BrokerFrame& request, const TenantLeaseView& lease, BrokerFd* session);
  BrokerFrame Environments();
  BrokerFrame Status(const TenantLeaseView& lease);
  BrokerFrame Manifest(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Secrets(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Upload(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Events(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Logs(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Outputs(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Revoke(const BrokerFrame& request, const TenantLeaseView& lease);
  BrokerFrame Session(const TenantLeaseView& lease, BrokerFd* session);
  base::Result<std::vector<std::string>> SecretNames(uint64_t lease_id);
  /// Writes the ready marker when every secret in `names` is set: true once it is
  /// there (now or before), false while a secret is missing.
  base::Result<bool> OpenSecretsGate(uint64_t lease_id, const runtime::UploadTarget& target,
                                     const std::vector<std::string>& names) REQUIRES(m_secrets_mu);

  const BrokerDeps m_deps;
  base::Mutex m_mu;
  std::vector<std::unique_ptr<Connection>> m_connections GUARDED_BY(m_mu);
  std::atomic<bool> m_stopping{false};
  /// Serialises secret writes (the ready marker is written once per lease).
  base::Mutex m_secrets_mu;
  /// Counts a long-poll of lease `id` in, or false when kBrokerLongPollsPerLeaseMax wait
  /// on it already; EndLongPoll counts it out.
  bool AdmitLongPoll(uint64_t id);
  void EndLongPoll(uint64_t id);
  mutable base::Mutex m_polls_mu;
  std::map<uint64_t, size_t> m_polls GUARDED_BY(m_polls_mu);  ///< lease id -> waiting
};

/// A kReply frame: status, one-line message, JSON body (or `content_type`).
BrokerFrame BrokerReply(int status, std::string message, std::string body = "",
                        std::string content_type = "application/json");

}  // namespace gpunet::provider
