// PrometheusParser: samples, labels, hostile input.
#include "routing/prometheus_parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace tokenway {
namespace {

struct Seen {
  std::string name, labels;
  double value;
};

std::vector<Seen> ParseAll(std::string_view text, PrometheusParseResult* result = nullptr,
                           size_t max = 1 << 20) {
  std::vector<Seen> out;
  auto r = ParsePrometheusText(text, max, [&](const PrometheusSample& s) {
    out.push_back({std::string(s.name), std::string(s.labels), s.value});
  });
  if (result) *result = r;
  return out;
}

TEST(PrometheusParserTest, ParsesSamplesLabelsAndSkipsComments) {
  PrometheusParseResult r;
  auto s = ParseAll(
      "# HELP x help\n# TYPE x gauge\nx 1\ny{a=\"b\",c=\"d,}e\"} 2.5 1700000000\r\n"
      "z{} -3e2\n\n  w_total{le=\"+Inf\"} +Inf\n",
      &r);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].name, "x");
  EXPECT_EQ(s[0].value, 1);
  EXPECT_EQ(s[1].name, "y");
  EXPECT_EQ(s[1].labels, "a=\"b\",c=\"d,}e\"");
  EXPECT_EQ(s[1].value, 2.5);
  EXPECT_EQ(s[2].value, -300);
  EXPECT_TRUE(std::isinf(s[3].value));
  EXPECT_EQ(r.malformed, 0u);
  std::string_view v;
  ASSERT_TRUE(FindPrometheusLabel(s[1].labels, "c", v));
  EXPECT_EQ(v, "d,}e");
  EXPECT_FALSE(FindPrometheusLabel(s[1].labels, "zz", v));
}

TEST(PrometheusParserTest, MalformedLinesAreSkippedAndCounted) {
  PrometheusParseResult r;
  auto s = ParseAll("ok 1\n1bad 2\nx{a=\"unterminated} 3\nx{a=b} 4\nx 1abc\nx\nx{} \nok 2\n", &r);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(r.malformed, 6u);
}

TEST(PrometheusParserTest, NaNPassesThrough) {
  auto s = ParseAll("x NaN\n");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(std::isnan(s[0].value));
}

TEST(PrometheusParserTest, OversizedBodyIsRejectedWhole) {
  PrometheusParseResult r;
  auto s = ParseAll("x 1\ny 2\n", &r, 4);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(s.empty());
}

TEST(PrometheusParserTest, OverlongLineIsSkipped) {
  std::string text = "x{a=\"" + std::string(kMaxPrometheusLineBytes, 'a') + "\"} 1\ny 2\n";
  PrometheusParseResult r;
  auto s = ParseAll(text, &r);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].name, "y");
  EXPECT_EQ(r.malformed, 1u);
}

TEST(PrometheusParserTest, BinaryGarbageNeverCrashes) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) & 0xff));
  PrometheusParseResult r;
  ParseAll(junk, &r);
  EXPECT_TRUE(r.ok);
}

}  // namespace
}  // namespace tokenway
