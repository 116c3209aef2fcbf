#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace gpunet::server::metrics {
namespace {

TEST(Metrics, NamesFollowThePrometheusDataModel) {
  EXPECT_TRUE(IsValidMetricName("gpunet_rpc_requests_total"));
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_TRUE(IsValidMetricName("_x"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_FALSE(IsValidMetricName("é"));
  EXPECT_TRUE(IsValidLabelName("code"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
}

TEST(Metrics, ValuesAndEscapingRenderAsPrometheusParsesThem) {
  EXPECT_EQ(FormatValue(1), "1");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(NAN), "NaN");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Metrics, RendersCountersGaugesAndHistograms) {
  Registry r;
  r.GetCounter("z_total", "Last family.").Inc(3);
  auto& ok = r.GetCounter("req_total", "Requests\nby code.", {{"code", "200"}});
  ok.Inc();
  ok.Inc(2);
  r.GetCounter("req_total", "Requests\nby code.", {{"code", "404"}}).Inc();
  // Same name and labels: the same counter, whatever the label order.
  auto& two = r.GetCounter("pair_total", "Two labels.", {{"b", "2"}, {"a", "1"}});
  EXPECT_EQ(&two, &r.GetCounter("pair_total", "Two labels.", {{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(&ok, &r.GetCounter("req_total", "Requests\nby code.", {{"code", "200"}}));
  r.GetGauge("open", "Open things.").Set(2.5);
  r.GetGauge("odd_label", "Escaped label.", {{"path", "a\"b"}}).Dec();
  auto& h = r.GetHistogram("lat_seconds", "Latency.", {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.1);  // on the bound: counts in le="0.1"
  h.Observe(0.5);
  h.Observe(7);

  EXPECT_EQ(r.Render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{le=\"0.1\"} 2\n"
            "lat_seconds_bucket{le=\"1\"} 3\n"
            "lat_seconds_bucket{le=\"+Inf\"} 4\n"
            "lat_seconds_sum 7.65\n"
            "lat_seconds_count 4\n"
            "# HELP odd_label Escaped label.\n"
            "# TYPE odd_label gauge\n"
            "odd_label{path=\"a\\\"b\"} -1\n"
            "# HELP open Open things.\n"
            "# TYPE open gauge\n"
            "open 2.5\n"
            "# HELP pair_total Two labels.\n"
            "# TYPE pair_total counter\n"
            "pair_total{a=\"1\",b=\"2\"} 0\n"
            "# HELP req_total Requests\\nby code.\n"
            "# TYPE req_total counter\n"
            "req_total{code=\"200\"} 3\n"
            "req_total{code=\"404\"} 1\n"
            "# HELP z_total Last family.\n"
            "# TYPE z_total counter\n"
            "z_total 3\n");
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  auto& c = r.GetCounter("c_total", "c");
  auto& g = r.GetGauge("g", "g");
  auto& h = r.GetHistogram("h", "h", LatencyBucketsSeconds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        c.Inc();
        g.Inc();
        h.Observe(0.001);
        if (i % 1000 == 0) (void)r.Render();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value(), 40'000u);
  EXPECT_EQ(g.Value(), 40'000);
  auto s = h.Snap();
  EXPECT_EQ(s.count, 40'000u);
  EXPECT_EQ(s.cumulative.back(), 40'000u);
}

TEST(MetricsDeath, BadNamesAndConflictingRegistrationsAreBugs) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  EXPECT_DEATH(r.GetCounter("bad-name", "x"), "IsValidMetricName");
  EXPECT_DEATH(r.GetCounter("ok_total", "x", {{"__bad", "1"}}), "IsValidLabelName");
  r.GetCounter("taken", "x");
  EXPECT_DEATH(r.GetGauge("taken", "x"), "type");
  EXPECT_DEATH(r.GetHistogram("h", "x", {1, 1}), "");
}

}  // namespace
}  // namespace gpunet::server::metrics
