#include "rollout/rollout_analysis.h"

#include <gtest/gtest.h>

#include <array>

namespace tokenway {
namespace {

constexpr std::array<double, 4> kBounds = {0.1, 0.2, 0.5, 1.0};

// `n` requests, `errors` of them failed, every successful one with TTFT and TPOT in bucket
// `bucket` of kBounds.
VersionFigures Figures(uint64_t n, uint64_t errors, size_t bucket) {
  VersionFigures f;
  f.requests = n;
  f.errors = errors;
  f.output_tokens = (n - errors) * 10;
  f.ttft_bounds = kBounds;
  f.tpot_bounds = kBounds;
  f.ttft.assign(kBounds.size() + 1, 0);
  f.tpot.assign(kBounds.size() + 1, 0);
  f.ttft[bucket] = n - errors;
  f.tpot[bucket] = n - errors;
  return f;
}

TEST(HistogramQuantile, InterpolatesWithinTheBucketAsPrometheusDoes) {
  const std::array<uint64_t, 5> counts = {0, 10, 0, 0, 0};
  EXPECT_DOUBLE_EQ(HistogramQuantile(kBounds, counts, 0.9), 0.1 + 0.1 * 0.9);
  const std::array<uint64_t, 5> spread = {50, 40, 10, 0, 0};
  EXPECT_DOUBLE_EQ(HistogramQuantile(kBounds, spread, 0.9), 0.2);
  const std::array<uint64_t, 5> inf = {0, 0, 0, 0, 3};
  EXPECT_DOUBLE_EQ(HistogramQuantile(kBounds, inf, 0.9), 1.0);
  const std::array<uint64_t, 5> none = {};
  EXPECT_EQ(HistogramQuantile(kBounds, none, 0.9), -1);
}

TEST(FiguresDelta, SubtractsAndRestartsFromZeroAfterAReset) {
  VersionFigures later = Figures(100, 10, 1), earlier = Figures(40, 4, 1);
  VersionFigures d = FiguresDelta(later, earlier);
  EXPECT_EQ(d.requests, 60u);
  EXPECT_EQ(d.errors, 6u);
  EXPECT_EQ(d.ttft[1], 54u);
  VersionFigures reset = FiguresDelta(earlier, later);
  EXPECT_EQ(reset.requests, 40u);
  EXPECT_EQ(reset.ttft[1], 36u);
}

TEST(Analyse, PassesAHealthyCandidate) {
  RolloutAnalysisConfig c;
  c.min_samples = 20;
  c.max_ttft_p90_ratio = 1.2;
  c.max_tpot_p90_ratio = 1.2;
  AnalysisResult r = Analyse(c, Figures(30, 0, 1), Figures(300, 1, 1));
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.reason;
  EXPECT_EQ(r.candidate_requests, 30u);
  EXPECT_NEAR(r.candidate_ttft_p90, 0.19, 1e-9);
  EXPECT_NEAR(r.candidate_output_tokens, 10, 1e-9);
}

TEST(Analyse, WaitsBelowMinSamplesEvenWhenEverythingLooksFine) {
  RolloutAnalysisConfig c;
  c.min_samples = 50;
  AnalysisResult r = Analyse(c, Figures(49, 0, 1), Figures(1000, 0, 1));
  EXPECT_EQ(r.verdict, Verdict::kWait);
  EXPECT_NE(r.reason.find("too few samples"), std::string::npos);
  // And a breach below min_samples is not judged either.
  r = Analyse(c, Figures(10, 10, 1), Figures(1000, 0, 1));
  EXPECT_EQ(r.verdict, Verdict::kWait);
}

TEST(Analyse, FailsOnErrorRateDeltaAndAbsoluteLimit) {
  RolloutAnalysisConfig c;
  c.min_samples = 20;
  c.max_error_rate_delta = 0.05;
  AnalysisResult r = Analyse(c, Figures(100, 10, 1), Figures(1000, 40, 1));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_NE(r.reason.find("error rate"), std::string::npos);
  r = Analyse(c, Figures(100, 8, 1), Figures(1000, 40, 1));  // 0.08 <= 0.04 + 0.05
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.reason;
  c.max_error_rate = 0.05;
  r = Analyse(c, Figures(100, 8, 1), Figures(1000, 40, 1));
  EXPECT_EQ(r.verdict, Verdict::kFail);
}

TEST(Analyse, FailsOnSlowTtftAndHonoursTheSlack) {
  RolloutAnalysisConfig c;
  c.min_samples = 20;
  c.max_ttft_p90_ratio = 1.2;
  AnalysisResult r = Analyse(c, Figures(100, 0, 2), Figures(1000, 0, 1));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_NE(r.reason.find("ttft p90"), std::string::npos);
  c.ttft_p90_slack = std::chrono::milliseconds(300);  // 0.19 × 1.2 + 0.3 >= 0.47
  r = Analyse(c, Figures(100, 0, 2), Figures(1000, 0, 1));
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.reason;
}

TEST(Analyse, LatencyNeedsItsOwnSamples) {
  RolloutAnalysisConfig c;
  c.min_samples = 20;
  c.max_tpot_p90_ratio = 1.2;
  VersionFigures candidate = Figures(100, 0, 1);
  candidate.tpot.assign(kBounds.size() + 1, 0);  // no streams: no TPOT
  AnalysisResult r = Analyse(c, candidate, Figures(1000, 0, 1));
  EXPECT_EQ(r.verdict, Verdict::kWait);
  EXPECT_NE(r.reason.find("tpot p90 samples"), std::string::npos);
}

TEST(Analyse, FailsOnShortAnswers) {
  RolloutAnalysisConfig c;
  c.min_samples = 20;
  c.min_output_tokens_ratio = 0.8;
  VersionFigures candidate = Figures(100, 0, 1);
  candidate.output_tokens = 500;  // 5 per request against 10
  AnalysisResult r = Analyse(c, candidate, Figures(1000, 0, 1));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_NE(r.reason.find("output tokens"), std::string::npos);
}

}  // namespace
}  // namespace tokenway
