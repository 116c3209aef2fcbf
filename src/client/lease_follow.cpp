#include "client/lease_follow.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/market_client.h"
#include "client/tenant_transfer.h"
#include "client/terminal_text.h"

namespace gpunet::client {

using base::ErrorCode;
using base::Fail;

namespace {

/// How long the follow waits for the ledger to close a lease whose workload was
/// stopped because its funds end (the SIGTERM comes its grace before paid_until).
constexpr int64_t kExpiryWaitMs = 30'000;
constexpr int64_t kTickMs = 200;

/// An answer no retry changes: the follow ends with it.
bool Retriable(int status) {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

bool RetriableError(const base::Error& e) {
  return e.code != ErrorCode::kPermissionDenied && e.code != ErrorCode::kInvalidArgument &&
         e.code != ErrorCode::kCorrupt;
}

struct StreamState {
  LogStream stream = LogStream::kStdout;
  uint64_t offset = 0;
  bool ended = false;  ///< Gpunet-Ended with nothing more, or gone (410)
  bool gone = false;   ///< 410: closed past retention
};

/// What the stream threads and the follow's own loop share. Held by each thread too
/// (shared_ptr): a cancelled follow returns without waiting for a long-poll, and the
/// thread still in one ends by itself, touching nothing of the caller's (it checks
/// m_stop under m_mu before anything else once its request returns).
class Shared {
 public:
  Shared(FollowSource source, const FollowOptions& options, FollowCallbacks callbacks,
         const base::Clock& clock)
      : m_source(std::move(source)),
        m_lease_id(options.lease_id),
        m_wait_ms(options.wait_ms),
        m_callbacks(std::move(callbacks)),
        m_clock(clock) {}

  void Run(size_t index) {
    StreamState& s = m_streams[index];
    int failures = 0;
    for (;;) {
      uint64_t offset = 0;
      {
        std::lock_guard lock(m_mu);
        if (m_stop) return;
        offset = s.offset;
      }
      const std::string target = LogsTarget(m_lease_id, s.stream == LogStream::kStderr, offset,
                                            kLogsBytesPerRequest, m_wait_ms);
      auto r = m_source.get(target);
      std::unique_lock lock(m_mu);
      if (m_stop) return;
      if (r && r->status == 200) {
        auto next = NextOffset(offset, r->body.size(), r->Header("Gpunet-Next-Offset"));
        if (!next) return Fatal(next.error());
        Reached();
        failures = 0;
        if (!r->body.empty() && m_callbacks.data) m_callbacks.data(s.stream, r->body);
        s.offset = *next;
        if (r->Header("Gpunet-Ended").value_or("0") == "1" && r->body.empty()) {
          s.ended = true;
          m_cv.notify_all();
          return;
        }
        continue;
      }
      if (r && r->status == 410) {
        Reached();
        s.ended = s.gone = true;
        m_cv.notify_all();
        return;
      }
      if (r && !Retriable(r->status))
        return Fatal(base::Error{r->status == 401 || r->status == 403 ? ErrorCode::kPermissionDenied
                                 : r->status == 404                   ? ErrorCode::kNotFound
                                                                      : ErrorCode::kInternal,
                                 "GET " + target + ": the provider answered " +
                                     std::to_string(r->status) + ": " + AnswerMessage(r->body)});
      if (!r && !RetriableError(r.error())) return Fatal(r.error());
      Unreached(r ? "it answered " + std::to_string(r->status) + ": " + AnswerMessage(r->body)
                  : r.error().message);
      ++failures;
      const int64_t pause = std::min<int64_t>(kFollowRetryMaxMs, 250ll << std::min(failures, 5));
      m_cv.wait_for(lock, std::chrono::milliseconds(pause), [&] { return m_stop; });
    }
  }

  std::mutex m_mu;
  std::condition_variable m_cv;
  std::vector<StreamState> m_streams;  ///< set before the threads start
  bool m_stop = false;
  std::optional<base::Error> m_fatal;
  int64_t m_unreached_since = 0;  ///< monotonic ms of the first failure in a row; 0: answering

  void Notice(const std::string& line) {
    if (m_callbacks.notice) m_callbacks.notice(line);
  }

 private:
  void Fatal(base::Error e) {
    if (!m_fatal) m_fatal = std::move(e);
    m_cv.notify_all();
  }
  void Reached() {
    if (m_unreached_since != 0) Notice("provider reachable again; following on");
    m_unreached_since = 0;
  }
  void Unreached(const std::string& why) {
    if (m_unreached_since != 0) return;
    m_unreached_since = std::max<int64_t>(1, m_clock.MonotonicMs());
    Notice("provider unreachable, retrying… (" + why + ")");
  }

  const FollowSource m_source;
  const uint64_t m_lease_id;
  const uint32_t m_wait_ms;
  const FollowCallbacks m_callbacks;
  const base::Clock& m_clock;
};

/// The later of the ledger's time as of the read and this machine's clock.
uint64_t LedgerNowMs(const LeaseInfo& lease, const base::Clock& clock) {
  return std::max<uint64_t>(lease.as_of_ms,
                            static_cast<uint64_t>(std::max<int64_t>(clock.NowMs(), 0)));
}

std::string ExitText(uint64_t lease_id, const std::optional<WorkloadExit>& exit) {
  const std::string lease = "lease " + std::to_string(lease_id);
  if (!exit) return lease + ": the workload ended";
  if (exit->reason == "stopped") return lease + ": the workload was stopped";
  return lease + ": the workload exited with code " + std::to_string(exit->exit_code) +
         (exit->reason.empty() || exit->reason == "exited" ? "" : " (" + exit->reason + ")");
}

}  // namespace

FollowSource TenantFollowSource(const TenantClient& client, std::string node_url,
                                uint64_t lease_id) {
  FollowSource s;
  s.get = [client](const std::string& target) {
    TenantClient own = client;  // one call at a time per object: a copy per request
    return own.Get(target);
  };
  s.lease = [url = std::move(node_url), lease_id]() -> base::Result<LeaseInfo> {
    MarketAnswer<LeaseInfo> a;
    GPUNET_TRY_ASSIGN(a, MarketClient(url).Lease(lease_id));
    return a.value;
  };
  return s;
}

std::optional<WorkloadExit> ParseWorkloadExit(std::string_view status_body) {
  const auto j = nlohmann::json::parse(status_body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("workload") || !j["workload"].is_object())
    return std::nullopt;
  const auto& w = j["workload"];
  if (!w.contains("state") || !w["state"].is_string() || w["state"] != "exited")
    return std::nullopt;
  WorkloadExit e;
  if (w.contains("exit_code") && w["exit_code"].is_number_integer())
    e.exit_code = w["exit_code"].get<int>();
  // The provider's word, printed in the end message: one harmless line.
  if (w.contains("reason") && w["reason"].is_string())
    e.reason = TerminalLine(w["reason"].get<std::string>(), 200);
  return e;
}

base::Result<FollowEnd> FollowLease(const FollowSource& source, const FollowOptions& options,
                                    const FollowCallbacks& callbacks) {
  const base::Clock& clock = options.clock ? *options.clock : base::SystemClock::Instance();
  if (!options.want_stdout && !options.want_stderr)
    return Fail(ErrorCode::kInvalidArgument, "follow neither stream");
  const auto held = std::make_shared<Shared>(source, options, callbacks, clock);
  Shared& shared = *held;
  std::vector<StreamState>& streams = shared.m_streams;
  if (options.want_stdout)
    streams.push_back({LogStream::kStdout, options.from.stdout_offset, false, false});
  if (options.want_stderr)
    streams.push_back({LogStream::kStderr, options.from.stderr_offset, false, false});
  std::vector<std::thread> threads;
  threads.reserve(streams.size());
  for (size_t i = 0; i < streams.size(); ++i) threads.emplace_back([held, i] { held->Run(i); });

  FollowEnd end;
  FundsWarner warner(options.stop_grace);
  std::optional<LeaseInfo> last_lease;
  int64_t next_ledger_ms = 0;
  int64_t closed_seen_ms = 0;  ///< monotonic: when the ledger was seen closed
  int64_t ended_seen_ms = 0;   ///< monotonic: when both streams had ended
  std::optional<WorkloadExit> exit;
  bool exit_read = false;
  std::optional<base::Error> fatal;

  auto finish = [&](FollowEndKind kind, std::string message) {
    end.kind = kind;
    end.message = std::move(message);
  };
  for (;;) {
    const int64_t now = clock.MonotonicMs();
    bool all_ended = true, any_gone = false;
    int64_t unreached_since = 0;
    {
      std::unique_lock lock(shared.m_mu);
      shared.m_cv.wait_for(lock, std::chrono::milliseconds(kTickMs));
      for (const auto& s : streams) {
        all_ended = all_ended && s.ended;
        any_gone = any_gone || s.gone;
      }
      fatal = shared.m_fatal;
      unreached_since = shared.m_unreached_since;
    }
    if (fatal) break;
    if (options.cancel && options.cancel->load()) {
      finish(FollowEndKind::kCancelled,
             "stopped following lease " + std::to_string(options.lease_id) + "; it runs on");
      break;
    }
    if (now >= next_ledger_ms || (all_ended && ended_seen_ms == 0)) {
      next_ledger_ms = now + options.ledger_every_ms;
      if (auto lease = source.lease(); lease) {
        last_lease = *lease;
        std::lock_guard lock(shared.m_mu);  // callbacks one at a time
        if (callbacks.ledger) callbacks.ledger(*lease);
        if (auto w = warner.Check(*lease, LedgerNowMs(*lease, clock)); w && callbacks.funds)
          callbacks.funds(*w);
        if (lease->state == "closed" && closed_seen_ms == 0) closed_seen_ms = now;
      }
    }
    if (closed_seen_ms != 0 && (all_ended || now - closed_seen_ms >= kFollowDrainMs)) {
      finish(FollowEndKind::kLeaseClosed, LeaseClosedText(*last_lease));
      break;
    }
    if (all_ended && ended_seen_ms == 0) ended_seen_ms = now;
    if (all_ended && any_gone) {  // 410: closed past retention; the ledger says why
      if (now - ended_seen_ms >= kFollowDrainMs) {
        finish(FollowEndKind::kLeaseClosed, last_lease && last_lease->state == "closed"
                                                ? LeaseClosedText(*last_lease)
                                                : "lease " + std::to_string(options.lease_id) +
                                                      ": its provider says it is gone (410)");
        break;
      }
      continue;
    }
    if (all_ended) {
      if (!exit_read) {  // tried again each pass while the provider does not answer
        auto status = source.get("/leases/" + std::to_string(options.lease_id));
        if (status && status->status == 200) exit = ParseWorkloadExit(status->body);
        exit_read = (status && status->status == 200) || now - ended_seen_ms >= kFollowDrainMs;
        if (!exit_read) continue;
      }
      // Ended as its funds end (the SIGTERM comes its grace before paid_until, or the
      // workload stopped by itself just before): the ledger closes the lease at
      // paid_until, and that is what to say.
      const bool funds_stop =
          last_lease && last_lease->state == "started" &&
          FundsLeftMs(*last_lease, LedgerNowMs(*last_lease, clock)) <= kFundsLastWarnMs;
      if (!funds_stop || now - ended_seen_ms >= kExpiryWaitMs) {
        end.exit_code = exit ? std::optional<int>(exit->exit_code) : std::nullopt;
        end.workload_reason = exit ? exit->reason : "";
        finish(FollowEndKind::kWorkloadEnded, ExitText(options.lease_id, exit));
        break;
      }
    }
    if (unreached_since != 0 && now - unreached_since >= options.unreachable_ms) {
      finish(FollowEndKind::kUnreachable,
             "lease " + std::to_string(options.lease_id) + ": its provider did not answer for " +
                 std::to_string(options.unreachable_ms / 1000) +
                 " s; follow again later (nothing is lost: the provider keeps the logs)");
      break;
    }
  }
  {
    std::lock_guard lock(shared.m_mu);
    shared.m_stop = true;
    shared.m_cv.notify_all();
    for (size_t i = 0; i < streams.size(); ++i) {
      const StreamState& s = streams[i];
      (s.stream == LogStream::kStdout ? end.offsets.stdout_offset : end.offsets.stderr_offset) =
          s.offset;
      // A stream's thread that has not ended may be inside a long-poll (up to wait_ms,
      // or a provider that hangs): not waited for; it ends by itself when its request
      // returns. An ended one has returned or is about to.
      if (!s.ended) threads[i].detach();
    }
  }
  for (auto& t : threads)
    if (t.joinable()) t.join();
  if (fatal) return std::unexpected(*fatal);
  end.lease = last_lease;
  if (!options.want_stdout) end.offsets.stdout_offset = options.from.stdout_offset;
  if (!options.want_stderr) end.offsets.stderr_offset = options.from.stderr_offset;
  return end;
}

}  // namespace gpunet::client
