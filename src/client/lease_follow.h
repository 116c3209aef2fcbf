// Following a lease's output to its end (issue 18 item 4; `gpunet logs -f`, `gpunet
// run`): the tenant API's logs of both streams, long-polled (wait_ms) each on its own
// thread and handed over as they come; the ledger read every few seconds for the
// funds warnings (client/topup.h) and the close; one end, said plainly.
//
// Nothing lost, nothing repeated: each stream's offset moves only by what was handed
// over (Gpunet-Next-Offset), and a failed request is sent again from the same offset.
// So a provider daemon restarted (or SIGKILLed and started again) under a follow is
// resumed where it stopped. A provider that does not answer is retried with backoff
// (up to kFollowRetryMaxMs apart) for up to FollowOptions::unreachable_ms, with one
// notice ("provider unreachable, retrying…") and one when it answers again.
//
// The end, whichever comes first:
//   - the workload ended and both streams are drained: kWorkloadEnded with its exit
//     code (GET /leases/{id});
//   - the lease closed on the ledger (its workload is stopped with it): the streams
//     are drained for up to kFollowDrainMs, then kLeaseClosed with the ledger's
//     lease (its end reason: LeaseClosedText);
//   - the provider unreachable past the bound: kUnreachable;
//   - FollowOptions::cancel set: kCancelled within a fifth of a second (a long-poll in
//     flight is not waited for: its thread ends by itself when the request returns).
// An answer that no retry can change (401, 403, 404, a malformed answer) is an error.
//
// No CLI code here: the caller prints (terminal_text.h makes the bytes harmless).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/result.h"
#include "client/market_answers.h"
#include "client/tenant_client.h"
#include "client/topup.h"

namespace gpunet::client {

enum class LogStream : uint8_t { kStdout, kStderr };

/// The most a retry of an unreachable provider waits, and how long the streams are
/// drained after the ledger shows the lease closed.
inline constexpr int64_t kFollowRetryMaxMs = 5'000;
inline constexpr int64_t kFollowDrainMs = 10'000;

/// Where the follow reads from. Both functions are called from several threads at
/// once and must be safe for that (TenantFollowSource's are).
struct FollowSource {
  /// A signed GET of the lease's tenant API (the request target as LogsTarget makes it).
  std::function<base::Result<TenantResponse>(const std::string& target)> get;
  /// The lease as the ledger has it now.
  std::function<base::Result<LeaseInfo>()> lease;
};

/// The real source: `client` (copied per request, so each thread has its own) and the
/// node at `node_url` (MarketClient) for lease `lease_id`.
FollowSource TenantFollowSource(const TenantClient& client, std::string node_url,
                                uint64_t lease_id);

struct LogOffsets {
  uint64_t stdout_offset = 0;
  uint64_t stderr_offset = 0;
};

struct FollowOptions {
  uint64_t lease_id = 0;
  bool want_stdout = true;
  bool want_stderr = true;
  LogOffsets from;  ///< where each stream starts (0: the beginning)
  /// Give up (kUnreachable) after the provider answered nothing for this long.
  int64_t unreachable_ms = 5 * 60 * 1000;
  int64_t ledger_every_ms = 2'000;            ///< how often the ledger is read
  uint32_t wait_ms = 25'000;                  ///< each long-poll (the API's cap)
  const base::Clock* clock = nullptr;         ///< SystemClock when null
  const std::atomic<bool>* cancel = nullptr;  ///< set it to end the follow (kCancelled)
  StopGrace stop_grace;  ///< when the funds warnings come (the manifest's, when known)
};

struct FollowCallbacks {
  /// New bytes of a stream, in order per stream, one call at a time.
  std::function<void(LogStream stream, std::string_view bytes)> data;
  /// A funds warning (FundsWarner: once per level; re-armed by a deposit).
  std::function<void(const FundsWarning& warning)> funds;
  /// A line about the follow itself ("provider unreachable, retrying…").
  std::function<void(std::string_view line)> notice;
  /// The lease each time the ledger is read (`gpunet run` tops up from here with
  /// DecideWatch). Called on the follow's own thread, never at once with `data`.
  std::function<void(const LeaseInfo& lease)> ledger;
};

enum class FollowEndKind : uint8_t { kWorkloadEnded, kLeaseClosed, kUnreachable, kCancelled };

struct FollowEnd {
  FollowEndKind kind = FollowEndKind::kWorkloadEnded;
  /// kWorkloadEnded: GET /leases/{id}'s workload (state "exited", its exit code and
  /// reason when the provider gave them).
  std::optional<int> exit_code;
  std::string workload_reason;
  /// The lease as the ledger had it last (kLeaseClosed: closed, with its end reason).
  std::optional<LeaseInfo> lease;
  LogOffsets offsets;   ///< where each stream stopped (to resume a later follow)
  std::string message;  ///< one line for people: what ended and why
};

/// Follows until one of the ends above (see the file comment).
[[nodiscard]] base::Result<FollowEnd> FollowLease(const FollowSource& source,
                                                  const FollowOptions& options,
                                                  const FollowCallbacks& callbacks);

/// The workload's exit as GET /leases/{id} gives it ({"workload":{"state","exit_code"?,
/// "reason"?}}): the exit code and reason when it ended, nullopt while it runs or
/// when the answer says nothing of it.
struct WorkloadExit {
  int exit_code = 0;
  std::string reason;
};
std::optional<WorkloadExit> ParseWorkloadExit(std::string_view status_body);

}  // namespace gpunet::client
