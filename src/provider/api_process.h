// The tenant-facing process, as the agent (`gpunet provider run`, root) keeps it
// (docs/provider.md "Two processes").
//
// Each start makes `broker_connections` socketpairs (AF_UNIX, SOCK_STREAM) and opens
// the TLS key and certificate as root; it forks, and the child, with raw system calls
// only (the agent has threads), moves the sockets to fds 3.. and the key and
// certificate after them, closes every other fd, drops root for good
// (provider::DropPrivileges(api_user): no groups, uid/gid, no_new_privs) and execs
//   <command...> --broker-fds 3,4,5,6 --key-fd 7 --cert /proc/self/fd/8 --listen <listen>
//                --chain-id <chain> --provider <address>
// The agent's ends of the sockets go to `on_spawn` (the BrokerService serves them).
// When the child dies it is started again after a backoff (1 s doubling to 30 s,
// back to 1 s after a minute up); Stop sends SIGTERM, then SIGKILL after 2 s.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "provider/privileges.h"

namespace gpunet::provider {

struct ApiProcessOptions {
  std::vector<std::string> command;  ///< {"/abs/gpunet", "provider", "api"}
  std::string listen;                ///< daemon.listen, host:port
  /// What a request's signature covers beside the request (client::RequestScope): the
  /// front checks signatures before it counts a long-poll (docs/tenant-api.md).
  std::string chain_id;
  std::string provider;  ///< this provider's address, as crypto::AddressToString writes it
  std::string key_path;  ///< the TLS key (PEM), readable by root only
  std::string cert_path;
  UserIds user;  ///< daemon.api_user, looked up
  size_t broker_connections = 4;
  /// The first restart's backoff (doubling to 30 s); tests shorten it.
  int64_t restart_backoff_first_ms = 1'000;
  /// Gets the agent's ends of each new start's sockets (owned by the callee).
  std::function<void(std::vector<int> agent_fds)> on_spawn;
  std::function<void(std::string_view)> log;
};

class ApiProcess {
 public:
  explicit ApiProcess(ApiProcessOptions options);
  ~ApiProcess();
  ApiProcess(const ApiProcess&) = delete;
  ApiProcess& operator=(const ApiProcess&) = delete;

  /// Starts the keeper thread (which starts the process).
  void Start();
  /// Stops the process and the keeper. Idempotent.
  void Stop();
  /// OK when the process runs and accepts a TCP connection on `listen` (the
  /// engine's tenant_api_ready); kUnavailable saying why not.
  base::Status Ready() const;
  /// Starts so far (tests).
  uint64_t Starts() const { return m_starts; }

 private:
  void Keep();
  base::Result<pid_t> Spawn();

  const ApiProcessOptions m_options;
  std::thread m_thread;
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  bool m_stop = false;
  std::atomic<pid_t> m_pid{0};
  std::atomic<uint64_t> m_starts{0};
};

}  // namespace gpunet::provider
