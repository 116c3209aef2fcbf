// Time and randomness as inputs. Ledger, market and consensus code never call
// these directly: they receive time from consensus and randomness from chain data.
// I/O layers choose the implementation: the node reads its block-proposal times
// through the Clock in its NodeOptions (a ManualClock in tests), the runtime its
// wall and monotonic times through SystemClock.
#pragma once

#include <atomic>
#include <cstdint>

namespace gpunet::base {

class Clock {
 public:
  virtual ~Clock() = default;
  /// Milliseconds since the Unix epoch.
  virtual int64_t NowMs() const = 0;
  /// Monotonic milliseconds for measuring intervals.
  virtual int64_t MonotonicMs() const = 0;
};

/// The operating system's clocks (CLOCK_REALTIME and CLOCK_MONOTONIC).
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  int64_t MonotonicMs() const override;
  /// The process's one SystemClock (it holds no state): the default wherever a
  /// Clock is taken.
  static const SystemClock& Instance();
};

/// A clock that moves only when told to (tests, simulation). Thread-safe: a test
/// moves it while a node's engine thread reads it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 0) : m_now_ms(start_ms) {}
  int64_t NowMs() const override { return m_now_ms.load(); }
  int64_t MonotonicMs() const override { return m_now_ms.load(); }
  void AdvanceMs(int64_t ms) { m_now_ms += ms; }
  void SetMs(int64_t ms) { m_now_ms = ms; }

 private:
  std::atomic<int64_t> m_now_ms;
};

class Rng {
 public:
  virtual ~Rng() = default;
  virtual uint64_t Next() = 0;
  /// Uniform in [0, bound); bound > 0.
  uint64_t Below(uint64_t bound);
};

/// Deterministic generator (xoshiro256**, seeded through SplitMix64): one seed
/// reproduces a whole simulation or randomized test.
class SeededRng final : public Rng {
 public:
  explicit SeededRng(uint64_t seed);
  uint64_t Next() override;

 private:
  uint64_t m_s[4];
};

}  // namespace gpunet::base
