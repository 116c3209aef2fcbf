// The tenant-facing process's end of the broker (docs/tenant-api.md "Two processes";
// the frames: broker_wire.h).
//
// `gpunet provider run` (the agent, root) makes a few connected socketpairs before it
// starts `gpunet provider api` and hands it one end of each (--broker-fds 3,4,5,6).
// BrokerClient holds those descriptors as a pool: Call() takes a free one, writes one
// frame, reads the one reply frame, and gives the descriptor back, so each carries one
// request at a time and a long-poll (events, log follow) holds only its own. A
// descriptor that fails — write or read error, a torn frame, a clean end, a reply that
// is not kReply — is closed and dropped for good (the agent closes a connection whose
// frame it cannot decode); that request fails with kUnavailable (the API answers 502).
// An idle descriptor the agent closes is noticed at once by a watcher thread. When the
// last one is gone the process has nothing left to serve: WaitAllGone() returns and
// the process exits, and the agent starts a fresh one.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "base/result.h"
#include "provider/broker_wire.h"

namespace gpunet::provider {

class BrokerClient {
 public:
  /// Takes ownership of `fds` (connected stream sockets; closed when dropped or at
  /// destruction). An empty list leaves the client with nothing alive.
  explicit BrokerClient(std::vector<int> fds);
  ~BrokerClient();
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  /// One request, one reply (op kReply). Waits for a free descriptor while all alive
  /// ones are busy. kUnavailable when none is alive, or when the one used broke (it
  /// is dropped; the message says how); kInvalidArgument when `request` cannot be
  /// encoded (nothing sent). A kSession request needs `session`: its 200 reply
  /// carries exactly one descriptor (the session's socket), which lands there, and
  /// any other reply none. A reply that breaks that, or a descriptor with the reply to
  /// any other op, is a broken agent: the descriptor is closed and the connection
  /// dropped. The broker connection is free again as soon as the reply is read.
  [[nodiscard]] base::Result<BrokerFrame> Call(const BrokerFrame& request,
                                               BrokerFd* session = nullptr);

  /// Descriptors still in the pool.
  size_t Alive() const;
  /// Blocks until no descriptor is alive.
  void WaitAllGone();

 private:
  struct Slot {
    int fd = -1;  ///< -1 once dropped
    bool busy = false;
  };
  void Drop(Slot& slot);  // m_mutex held
  void Watch();
  void Wake();

  mutable std::mutex m_mutex;
  std::condition_variable m_changed;
  std::vector<Slot> m_slots;
  size_t m_alive = 0;
  bool m_stopping = false;
  int m_wake_fd = -1;  ///< eventfd: the watcher rebuilds its poll set
  std::thread m_watcher;
};

/// "3,4,5" → {3,4,5}: 1 to 64 distinct descriptors, each 3..65535 written in plain
/// decimal. kInvalidArgument naming the bad entry.
[[nodiscard]] base::Result<std::vector<int>> ParseFdList(std::string_view text);

}  // namespace gpunet::provider
