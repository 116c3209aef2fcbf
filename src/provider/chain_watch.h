// The daemon's side of the chain (docs/provider.md, "Running the daemon"):
//
// - ChainClient: the engine's ChainPort over the node's RPC (client library). Fetch
//   reads /status and every page of this provider's open leases, then each lease the
//   engine asks for by id (the catch-up for leases that closed since). Send signs with
//   the operator key, simulates first (a start or close the ledger already shows comes
//   back as its code without a fee paid) and waits for the block.
// - ChainWatch: a websocket subscription to `blocks` on its own thread. Every block and
//   every (re)connect wakes the daemon, whose reconcile re-reads the leases, so a block
//   missed while disconnected is caught up by that query. Reconnects with backoff
//   (250 ms doubling to 10 s) and logs once per change (lost, back), not per retry.
#pragma once

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
#include "client/market_client.h"
#include "client/node_client.h"
#include "crypto/ed25519.h"
#include "provider/engine.h"

namespace gpunet::provider {

class ChainClient final : public ChainPort {
 public:
  ChainClient(std::string node_url, codec::Address provider, const crypto::KeyPair& key);

  base::Result<ChainView> Fetch(const std::vector<uint64_t>& also) override;
  base::Result<TxOutcome> Send(const std::vector<codec::Msg>& msgs) override;

  /// Crash tests only (kCrashPoints in provider/engine.h): a tx whose first msg is a
  /// heartbeat, a withdraw or a LeaseStarted and whose point ("heartbeat_sent",
  /// "withdraw_sent", "started_sent") is `point` is submitted without waiting for
  /// its block, then `crash(point, lease_id)` runs; should it return, Send answers
  /// kUnavailable (not known to have committed).
  void SetCrashAfterSubmit(std::string point,
                           std::function<void(std::string_view point, uint64_t lease_id)> crash);

 private:
  client::HttpClientOptions Options() const;
  std::string m_url;
  codec::Address m_provider;
  crypto::KeyPair m_key;
  std::string m_crash_point;
  std::function<void(std::string_view, uint64_t)> m_crash;
};

class ChainWatch {
 public:
  struct Options {
    std::string node_url;
    int64_t backoff_min_ms = 250;
    int64_t backoff_max_ms = 10'000;
  };
  /// `wake` runs on the watch thread after each block event and each (re)connect.
  ChainWatch(Options options, std::function<void()> wake,
             std::function<void(std::string_view)> log);
  ~ChainWatch();  ///< Stop()s
  ChainWatch(const ChainWatch&) = delete;
  ChainWatch& operator=(const ChainWatch&) = delete;

  void Start();
  /// Returns within about a second (the wait for the next event is bounded).
  void Stop();
  /// Connections made after the first.
  uint64_t Reconnects() const { return m_reconnects.load(); }
  bool Connected() const { return m_connected.load(); }

 private:
  void Run();
  /// Sleeps `ms` unless Stop() comes first; false when stopping.
  bool SleepMs(int64_t ms);

  const Options m_options;
  const std::function<void()> m_wake;
  const std::function<void(std::string_view)> m_log;
  std::thread m_thread;
  std::mutex m_mu;
  std::condition_variable m_cv;
  std::atomic<bool> m_stop{false};
  std::atomic<bool> m_connected{false};
  std::atomic<uint64_t> m_reconnects{0};
};

}  // namespace gpunet::provider
