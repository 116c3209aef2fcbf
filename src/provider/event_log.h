// The lifecycle events of each lease, as its tenant reads them (issue 17 item 5):
// "reserved", "started", "manifest accepted", "workload running", "exited 0",
// "closed by the tenant"... Persisted, so a tenant that reconnects — or a daemon
// that restarted in between — misses none: the client asks for the events after
// the last sequence number it saw.
//
// One append-only file per lease, <dir>/<lease_id>.events, one JSON line an event,
// each line fsynced before Append returns. A torn last line (a crash mid-write) is
// dropped when the file is next opened; every complete line is kept. A lease has at
// most kEventsPerLeaseMax events (by default): past it, appends are refused (kLimitExceeded) and
// the daemon logs instead — an event storm of one lease cannot fill the disk.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"

namespace gpunet::provider {

inline constexpr size_t kEventsPerLeaseMax = 10'000;
inline constexpr size_t kEventMessageBytesMax = 1024;  ///< longer messages are cut

struct LeaseEvent {
  uint64_t seq = 0;  ///< 1, 2, ... per lease
  int64_t time_ms = 0;
  std::string kind;  ///< a short stable word, e.g. "started", "workload_exited"
  std::string message;
  bool operator==(const LeaseEvent&) const = default;
};

class EventLog {
 public:
  /// Opens (creating, 0700) the directory of event files; `events_max` per lease.
  static base::Result<std::unique_ptr<EventLog>> Open(const std::string& dir,
                                                      size_t events_max = kEventsPerLeaseMax);

  /// Appends an event and returns its sequence number once it is on disk.
  base::Result<uint64_t> Append(uint64_t lease_id, std::string_view kind, std::string_view message,
                                int64_t time_ms) EXCLUDES(m_mutex);
  /// Events with seq > after_seq, oldest first, at most max_events; waits up to
  /// wait_ms (0: not at all) for the first one when there is none yet.
  base::Result<std::vector<LeaseEvent>> Since(uint64_t lease_id, uint64_t after_seq,
                                              size_t max_events, int64_t wait_ms = 0)
      EXCLUDES(m_mutex);
  /// Deletes a lease's events (after its retention).
  base::Status Remove(uint64_t lease_id) EXCLUDES(m_mutex);

 private:
  EventLog(std::string dir, size_t events_max) : m_dir(std::move(dir)), m_events_max(events_max) {}
  std::string PathOf(uint64_t lease_id) const;
  base::Result<std::vector<LeaseEvent>*> Loaded(uint64_t lease_id) REQUIRES(m_mutex);

  const std::string m_dir;
  const size_t m_events_max;
  base::Mutex m_mutex;
  std::condition_variable m_appended;
  /// Events of the leases read so far, in memory (at most kEventsPerLeaseMax each).
  std::map<uint64_t, std::vector<LeaseEvent>> m_events GUARDED_BY(m_mutex);
};

}  // namespace gpunet::provider
