// Latency statistics and goodput: the numbers a benchmark run reports.
//
// Definitions (docs/bench.md, after reference/serving-sim.md §6):
//   TTFT  request sent -> first chunk with a non-empty token;     per request
//   TPOT  (E2E - TTFT) / (output_tokens - 1);                      per request, output > 1
//   ITL   every gap between consecutive token chunks;              pooled over requests
//   E2E   request sent -> last byte of the response;               per request
//   goodput  successful requests meeting every SLO / measured duration
// Percentiles interpolate linearly between order statistics (numpy's default).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenway/status.h"

namespace tokenway::bench {

struct Summary {
  int64_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};

// Sorts `values` in place and summarises them.
Summary Summarize(std::vector<double>& values);

// Percentile q in [0,100] of sorted `values` (linear interpolation); 0 when empty.
double Percentile(const std::vector<double>& sorted, double q);

// SLO thresholds in seconds; <= 0 means "not constrained".
struct Slo {
  double ttft = 0, tpot = 0, itl = 0, e2e = 0;
  bool any() const { return ttft > 0 || tpot > 0 || itl > 0 || e2e > 0; }
  std::string ToString() const;
};

// Parses "ttft=1s,tpot=50ms,e2e=10s" (durations as in configuration: 250ms, 1s, or seconds).
StatusOr<Slo> ParseSlo(std::string_view text);

// What the goodput check needs from one finished request.
struct RequestTiming {
  bool ok = false;
  double ttft = -1, tpot = -1, max_itl = -1, e2e = -1;  // seconds; -1 = not measured
};

// True when `r` succeeded and meets every constrained SLO (an unmeasured TPOT, e.g. one output
// token, passes that constraint).
bool MeetsSlo(const RequestTiming& r, const Slo& slo);

}  // namespace tokenway::bench
