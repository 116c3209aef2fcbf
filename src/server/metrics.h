// A small Prometheus registry for the node's /metrics endpoint.
//
// Metrics are operational, never consensus: doubles and relaxed atomics are fine
// here and nothing in the ledger may read them. Names and label names are checked
// against the Prometheus data model when registered (a bad name is a bug in the
// caller, so it is a GPUNET_CHECK, not a Result). Rendering follows the text
// exposition format 0.0.4, families sorted by name so the output is stable.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/mutex.h"

namespace gpunet::server::metrics {

/// Content-Type of Registry::Render()'s output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

/// Label name/value pairs of one series, e.g. {{"code", "200"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

/// True for names matching [a-zA-Z_:][a-zA-Z0-9_:]*.
bool IsValidMetricName(std::string_view name);
/// True for names matching [a-zA-Z_][a-zA-Z0-9_]* that do not start with "__".
bool IsValidLabelName(std::string_view name);

/// Monotonic count of events (requests served, bytes sent).
class Counter {
 public:
  void Inc(uint64_t n = 1) { m_value.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return m_value.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> m_value{0};
};

/// A value that goes up and down (open connections, mempool size).
class Gauge {
 public:
  void Set(double v) { m_value.store(v, std::memory_order_relaxed); }
  void Add(double v) { m_value.fetch_add(v, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return m_value.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> m_value{0};
};

/// Distribution over fixed upper bounds (latencies, block sizes). Observations
/// take a mutex so that a render sees count, sum and buckets from one moment.
class Histogram {
 public:
  /// bounds: strictly increasing finite upper bounds; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v) EXCLUDES(m_mu);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  ///< one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Snap() const EXCLUDES(m_mu);

 private:
  const std::vector<double> m_bounds;
  mutable base::Mutex m_mu;
  std::vector<uint64_t> m_counts GUARDED_BY(m_mu);  // per bucket (not cumulative), last = +Inf
  double m_sum GUARDED_BY(m_mu) = 0;
  uint64_t m_count GUARDED_BY(m_mu) = 0;
};

/// Default latency buckets in seconds: 0.5 ms to 10 s.
std::vector<double> LatencyBucketsSeconds();

/// Owns every metric; hands out references that stay valid for its lifetime.
/// Registering the same name and labels again returns the same metric, so code
/// paths can look metrics up lazily; the same name with another type or help
/// text is a bug.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {})
      EXCLUDES(m_mu);
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {})
      EXCLUDES(m_mu);
  Histogram& GetHistogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                          const Labels& labels = {}) EXCLUDES(m_mu);

  /// The whole registry in text exposition format 0.0.4.
  std::string Render() const EXCLUDES(m_mu);

 private:
  struct Family;
  Family& FamilyFor(std::string_view name, std::string_view help, int type) REQUIRES(m_mu);
  mutable base::Mutex m_mu;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> m_families GUARDED_BY(m_mu);
};

/// Escapes a label value for the exposition format (\\, \" and \n).
std::string EscapeLabelValue(std::string_view value);
/// Formats a sample value the way Prometheus parses it (+Inf, -Inf, NaN, shortest
/// round-trip decimal otherwise).
std::string FormatValue(double v);

}  // namespace gpunet::server::metrics
