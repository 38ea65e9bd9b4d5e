#include "bench/stats.h"

#include <gtest/gtest.h>

namespace tokenway::bench {
namespace {

TEST(StatsTest, PercentilesInterpolateLinearly) {
  std::vector<double> v = {5, 1, 4, 2, 3};
  Summary s = Summarize(v);
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_DOUBLE_EQ(s.p50, 3);
  EXPECT_DOUBLE_EQ(s.p90, 4.6);  // numpy.percentile([1..5], 90)
  EXPECT_DOUBLE_EQ(s.p99, 4.96);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  std::vector<double> sorted = {10, 20};
  EXPECT_DOUBLE_EQ(Percentile(sorted, 0), 10);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 50), 15);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 100), 20);
}

TEST(StatsTest, EmptyAndSingle) {
  std::vector<double> none;
  EXPECT_EQ(Summarize(none).count, 0);
  EXPECT_EQ(Percentile(none, 50), 0);
  std::vector<double> one = {7};
  Summary s = Summarize(one);
  EXPECT_DOUBLE_EQ(s.p50, 7);
  EXPECT_DOUBLE_EQ(s.p99, 7);
}

TEST(StatsTest, PercentilesAreOrdered) {
  std::vector<double> v;
  for (int i = 0; i < 1000; ++i) v.push_back((i * 7919) % 1000 / 10.0);
  Summary s = Summarize(v);
  EXPECT_LE(s.min, s.p50);
  EXPECT_LE(s.p50, s.p90);
  EXPECT_LE(s.p90, s.p99);
  EXPECT_LE(s.p99, s.max);
}

TEST(StatsTest, ParseSlo) {
  auto slo = ParseSlo("ttft=1s,tpot=50ms");
  ASSERT_TRUE(slo.ok());
  EXPECT_DOUBLE_EQ(slo->ttft, 1.0);
  EXPECT_DOUBLE_EQ(slo->tpot, 0.05);
  EXPECT_EQ(slo->e2e, 0);
  EXPECT_EQ(slo->ToString(), "ttft=1s,tpot=50ms");
  auto colon = ParseSlo("e2el:2.5");  // vLLM style, bare seconds
  ASSERT_TRUE(colon.ok());
  EXPECT_DOUBLE_EQ(colon->e2e, 2.5);
  EXPECT_FALSE(ParseSlo("foo=1s").ok());
  EXPECT_FALSE(ParseSlo("ttft").ok());
  EXPECT_FALSE(ParseSlo("ttft=fast").ok());
  EXPECT_TRUE(ParseSlo("").ok());
  EXPECT_FALSE(ParseSlo("")->any());
}

TEST(StatsTest, GoodputCountsOnlySuccessfulRequestsMeetingEverySlo) {
  Slo slo{1.0, 0.05, 0, 0};
  EXPECT_TRUE(MeetsSlo({true, 0.5, 0.04, 0.1, 3}, slo));
  EXPECT_TRUE(MeetsSlo({true, 1.0, 0.05, 0.1, 3}, slo));  // boundary meets
  EXPECT_FALSE(MeetsSlo({true, 1.2, 0.04, 0.1, 3}, slo));
  EXPECT_FALSE(MeetsSlo({true, 0.5, 0.06, 0.1, 3}, slo));
  EXPECT_FALSE(MeetsSlo({false, 0.5, 0.04, 0.1, 3}, slo));
  EXPECT_TRUE(MeetsSlo({true, 0.5, -1, -1, 3}, slo));    // one output token: no TPOT
  EXPECT_FALSE(MeetsSlo({true, -1, 0.01, -1, 3}, slo));  // no token at all fails a TTFT SLO
  EXPECT_TRUE(MeetsSlo({true, 9, 9, 9, 9}, Slo{}));      // no SLO: every success counts
  EXPECT_FALSE(MeetsSlo({true, 0.1, 0.01, 0.1, 11}, Slo{0, 0, 0, 10}));
  // Goodput for a run = qualifying requests / duration.
  std::vector<RequestTiming> run = {{true, 0.2, 0.01, 0.1, 1},
                                    {true, 2.0, 0.01, 0.1, 3},
                                    {false, 0.1, 0.01, 0.1, 1},
                                    {true, 0.3, 0.2, 0.3, 4}};
  int good = 0;
  for (const auto& r : run) good += MeetsSlo(r, slo);
  EXPECT_EQ(good, 1);
}

}  // namespace
}  // namespace tokenway::bench
