// PrometheusText: the exposition the admin endpoint serves must pass `promtool check metrics`.
#include "telemetry/prometheus_text.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include "support/test_env.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

namespace tokenway {
namespace {

std::string SmallExposition() {
  PrometheusText t;
  t.Family("tokenway_requests_total", "counter", "Requests by model and status.");
  t.Sample("tokenway_requests_total", {{"model", "llama-3"}, {"status", "200"}}, uint64_t{42});
  t.Sample("tokenway_requests_total", {{"model", "we\"ird\\mo\ndel"}, {"status", "500"}},
           uint64_t{1});
  t.Family("tokenway_in_flight", "gauge", "Requests in flight.");
  t.Sample("tokenway_in_flight", {}, 3.0);
  t.Family("tokenway_endpoint_up", "gauge", "Whether the endpoint is eligible.");
  t.Sample("tokenway_endpoint_up", {{"endpoint", "http://10.0.0.1:8000"}}, 1.0);
  t.Sample("tokenway_endpoint_up", {{"endpoint", "http://10.0.0.2:8000"}}, 0.0);
  t.Family("tokenway_request_duration_seconds", "histogram", "Request latency.");
  const double bounds[] = {0.005, 0.1, 1, 10};
  const uint64_t counts[] = {1, 2, 0, 4};
  t.Histogram("tokenway_request_duration_seconds", {{"model", "llama-3"}}, bounds, counts, 4, 3,
              12.5);
  t.Histogram("tokenway_request_duration_seconds", {}, bounds, counts, 4, 0, 0.25);
  return t.str();
}

TEST(PrometheusTextTest, PassesPromtool) {
  if (!testing::HavePromtool()) GTEST_SKIP() << "promtool is not installed";
  std::string output;
  EXPECT_EQ(testing::PromtoolCheckMetrics(SmallExposition(), output), 0)
      << output << "\n--- exposition ---\n"
      << SmallExposition();
}

TEST(PrometheusTextTest, LabelValuesAreEscaped) {
  PrometheusText t;
  t.Sample("m", {{"a", "x\"y"}, {"b", "back\\slash"}, {"c", "new\nline"}}, uint64_t{1});
  EXPECT_EQ(t.str(), "m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"new\\nline\"} 1\n");
}

TEST(PrometheusTextTest, FamilyAndPlainSamples) {
  PrometheusText t;
  t.Family("up", "gauge", "Is it up.");
  t.Sample("up", {}, 1.0);
  t.Sample("up", {}, 0.5);
  t.Sample("up", {}, std::numeric_limits<double>::infinity());
  t.Sample("up", {}, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(t.str(), "# HELP up Is it up.\n# TYPE up gauge\nup 1\nup 0.5\nup +Inf\nup -Inf\n");
}

TEST(PrometheusTextTest, NanIsSpelledTheWayPrometheusParsesIt) {
  PrometheusText t;
  t.Sample("x", {}, std::nan(""));
  t.Sample("x", {}, -std::nan(""));
  EXPECT_EQ(t.str(), "x NaN\nx NaN\n");
}

TEST(PrometheusTextTest, HelpTextIsEscaped) {
  PrometheusText t;
  t.Family("x", "counter", "line one\nline \\two");
  EXPECT_EQ(t.str(), "# HELP x line one\\nline \\\\two\n# TYPE x counter\n");
}

TEST(PrometheusTextTest, HistogramIsCumulative) {
  PrometheusText t;
  const double bounds[] = {0.5, 2};
  const uint64_t counts[] = {3, 4};
  t.Histogram("lat", {{"m", "a"}}, bounds, counts, 2, 5, 9.75);
  EXPECT_EQ(t.str(),
            "lat_bucket{m=\"a\",le=\"0.5\"} 3\n"
            "lat_bucket{m=\"a\",le=\"2\"} 7\n"
            "lat_bucket{m=\"a\",le=\"+Inf\"} 12\n"
            "lat_sum{m=\"a\"} 9.75\n"
            "lat_count{m=\"a\"} 12\n");
}

}  // namespace
}  // namespace tokenway
