// Rollout analysis: compares a candidate version's figures with the stable version's over the
// same window — TTFT p90, TPOT p90, error rate, output tokens per request — and says pass, fail
// or wait (too few samples to judge).
//
// Pure functions on plain values; the RolloutController (control thread) calls Analyse once per
// tick with the window's deltas of the cumulative per-version figures it reads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rollout/rollout_config.h"

namespace tokenway {

// One version's cumulative figures, summed across workers (or the difference of two readings).
struct VersionFigures {
  uint64_t requests = 0;       // finished requests routed to the version
  uint64_t errors = 0;         // of which 5xx answers or upstream failures
  uint64_t output_tokens = 0;  // completion tokens of its successful requests
  // Histogram bucket counts (not cumulative; one more than the bounds: +Inf), in seconds.
  std::span<const double> ttft_bounds;
  std::vector<uint64_t> ttft;
  std::span<const double> tpot_bounds;
  std::vector<uint64_t> tpot;
};

// later − earlier, field by field; a counter that went down (a restart of the figures) counts
// from zero.
VersionFigures FiguresDelta(const VersionFigures& later, const VersionFigures& earlier);

// The q-quantile (0..1) of a histogram, interpolated linearly within its bucket as Prometheus'
// histogram_quantile does; an observation in +Inf reads as the largest finite bound. -1 when
// the histogram is empty.
double HistogramQuantile(std::span<const double> bounds, std::span<const uint64_t> counts,
                         double q);

enum class Verdict : uint8_t { kWait, kPass, kFail };
std::string_view VerdictName(Verdict v);

struct AnalysisResult {
  Verdict verdict = Verdict::kWait;
  std::string reason;  // what failed, or what is still missing; empty on a pass
  uint64_t candidate_requests = 0;
  uint64_t stable_requests = 0;
  double candidate_error_rate = -1;  // -1: no requests
  double stable_error_rate = -1;
  double candidate_ttft_p90 = -1;  // seconds; -1: no samples
  double stable_ttft_p90 = -1;
  double candidate_tpot_p90 = -1;
  double stable_tpot_p90 = -1;
  double candidate_output_tokens = -1;  // per successful request
  double stable_output_tokens = -1;
};

// Judges the window: any checked criterion that has its samples and breaks its limit fails; a
// pass needs every checked criterion to have `min_samples` on both sides and hold.
AnalysisResult Analyse(const RolloutAnalysisConfig& config, const VersionFigures& candidate,
                       const VersionFigures& stable);

}  // namespace tokenway
