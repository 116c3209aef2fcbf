#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "base/check.h"

namespace gpunet::server::metrics {

namespace {

enum Type : int { kCounter = 0, kGauge = 1, kHistogram = 2 };

constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram"};

bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Series key: labels rendered as they appear between the braces, sorted by label
// name so that {a,b} and {b,a} are one series.
std::string LabelKey(Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::string key;
  for (size_t i = 0; i < labels.size(); ++i) {
    GPUNET_CHECK(IsValidLabelName(labels[i].first));
    GPUNET_CHECK(labels[i].first != "le");  // reserved by histograms
    if (i > 0) {
      GPUNET_CHECK(labels[i].first != labels[i - 1].first);  // duplicate label name
      key += ',';
    }
    key += labels[i].first + "=\"" + EscapeLabelValue(labels[i].second) + "\"";
  }
  return key;
}

std::string Braces(const std::string& key, std::string_view extra = {}) {
  if (key.empty() && extra.empty()) return "";
  std::string out = "{" + key;
  if (!key.empty() && !extra.empty()) out += ',';
  out += extra;
  out += '}';
  return out;
}

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  GPUNET_CHECK(ec == std::errc());
  return std::string(buf, end);
}

Histogram::Histogram(std::vector<double> bounds)
    : m_bounds(std::move(bounds)), m_counts(m_bounds.size() + 1, 0) {
  for (size_t i = 0; i < m_bounds.size(); ++i) {
    GPUNET_CHECK(std::isfinite(m_bounds[i]));
    GPUNET_CHECK(i == 0 || m_bounds[i - 1] < m_bounds[i]);
  }
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < m_bounds.size() && v > m_bounds[i]) ++i;
  base::MutexLock lock(m_mu);
  ++m_counts[i];
  m_sum += v;
  ++m_count;
}

Histogram::Snapshot Histogram::Snap() const {
  Snapshot s;
  s.bounds = m_bounds;
  base::MutexLock lock(m_mu);
  uint64_t running = 0;
  for (uint64_t c : m_counts) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = m_sum;
  s.count = m_count;
  GPUNET_CHECK(running == m_count);
  return s;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

struct Registry::Family {
  int type = 0;
  std::string help;
  std::vector<double> bounds;  // histograms: every series of a family shares them
  std::map<std::string, std::unique_ptr<Counter>> counters;
  std::map<std::string, std::unique_ptr<Gauge>> gauges;
  std::map<std::string, std::unique_ptr<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::FamilyFor(std::string_view name, std::string_view help, int type) {
  GPUNET_CHECK(IsValidMetricName(name));
  auto it = m_families.find(name);
  if (it == m_families.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = std::string(help);
    it = m_families.emplace(std::string(name), std::move(family)).first;
  }
  // One name, one meaning: a second registration must agree with the first.
  GPUNET_CHECK(it->second->type == type);
  GPUNET_CHECK(it->second->help == help);
  return *it->second;
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  std::string key = LabelKey(labels);
  base::MutexLock lock(m_mu);
  Family& f = FamilyFor(name, help, kCounter);
  auto& slot = f.counters[key];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::string key = LabelKey(labels);
  base::MutexLock lock(m_mu);
  Family& f = FamilyFor(name, help, kGauge);
  auto& slot = f.gauges[key];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  std::vector<double> bounds, const Labels& labels) {
  // Histogram names get _bucket/_sum/_count suffixes; the base must not collide.
  GPUNET_CHECK(!name.ends_with("_bucket") && !name.ends_with("_sum") && !name.ends_with("_count"));
  std::string key = LabelKey(labels);
  base::MutexLock lock(m_mu);
  Family& f = FamilyFor(name, help, kHistogram);
  if (f.histograms.empty()) f.bounds = bounds;
  GPUNET_CHECK(f.bounds == bounds);
  auto& slot = f.histograms[key];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

std::string Registry::Render() const {
  std::string out;
  base::MutexLock lock(m_mu);
  for (const auto& [name, f] : m_families) {
    out += "# HELP " + name + " " + EscapeHelp(f->help) + "\n";
    out += "# TYPE " + name + " " + std::string(kTypeNames[f->type]) + "\n";
    for (const auto& [key, c] : f->counters) {
      out += name + Braces(key) + " " + std::to_string(c->Value()) + "\n";
    }
    for (const auto& [key, g] : f->gauges) {
      out += name + Braces(key) + " " + FormatValue(g->Value()) + "\n";
    }
    for (const auto& [key, h] : f->histograms) {
      Histogram::Snapshot s = h->Snap();
      for (size_t i = 0; i <= s.bounds.size(); ++i) {
        std::string le = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
        out += name + "_bucket" + Braces(key, "le=\"" + le + "\"") + " " +
               std::to_string(s.cumulative[i]) + "\n";
      }
      out += name + "_sum" + Braces(key) + " " + FormatValue(s.sum) + "\n";
      out += name + "_count" + Braces(key) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace gpunet::server::metrics
