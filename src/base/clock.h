// Time and randomness as inputs. Ledger, market and consensus code never call
// these directly: they receive time from consensus and randomness from chain data.
// I/O layers (node, provider, tests) choose the implementation.
#pragma once

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

/// The operating system's clocks.
class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  int64_t MonotonicMs() const override;
};

/// A clock that moves only when told to (tests, simulation).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 0) : m_now_ms(start_ms) {}
  int64_t NowMs() const override { return m_now_ms; }
  int64_t MonotonicMs() const override { return m_now_ms; }
  void AdvanceMs(int64_t ms) { m_now_ms += ms; }
  void SetMs(int64_t ms) { m_now_ms = ms; }

 private:
  int64_t m_now_ms;
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
