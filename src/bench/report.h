// Run summaries and how they are written: a terminal table, JSON and Markdown, and the SVG plots
// of an experiment (latency and goodput against offered rate, TTFT CDF).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/load_generator.h"
#include "bench/stats.h"

namespace tokenway::bench {

// Everything reported about one run (one rate of one configuration).
struct RunSummary {
  std::string label;  // configuration name (experiments) or "run"
  std::string workload;
  double offered_rate = 0;  // req/s; 0: closed loop
  int64_t concurrency = 0;
  bool stream = true;
  Slo slo;

  int64_t measured = 0;  // requests started after the warm-up and finished
  int64_t succeeded = 0;
  int64_t warmup = 0;
  int64_t unfinished = 0;
  int64_t client_limited = 0;
  int64_t usage_mismatch = 0;
  std::array<int64_t, kErrorKinds> errors{};  // by ErrorKind; [0] unused
  int64_t error_total = 0;

  double duration_s = 0;    // measured window
  double request_rate = 0;  // succeeded / duration
  double output_token_rate = 0, input_token_rate = 0;
  double goodput = 0;            // succeeded requests meeting the SLO / duration
  double slo_attainment = 0;     // share of measured requests meeting the SLO
  Summary ttft, tpot, itl, e2e;  // seconds
  double prefix_hit_rate = -1;   // from /metrics deltas, [0,1]; -1: not scraped
  double prefix_queries = 0, prefix_hits = 0;
  double adapter_loads = -1;  // LoRA adapter loads in the fleet during the run; -1: not scraped
  double cached_token_share = -1;  // Σcached_tokens / Σprompt_tokens from usage; -1: not reported
  std::vector<double> ttft_sorted;  // for CDF plots
  // The latency predictor's mean absolute percentage error over measured streams, each
  // prediction made before its stream was learned from (simulation of pools with a
  // predicted-latency scorer; -1: none), and requests refused for their objective.
  double ttft_prediction_mape = -1, tpot_prediction_mape = -1;
  int64_t slo_refused = 0;
};

RunSummary Summarize(const LoadResult& result, const LoadOptions& options, const Slo& slo,
                     const std::string& label, const std::string& workload);

// Fixed-width table, one row per run.
std::string FormatTable(const std::vector<RunSummary>& runs);
// {"runs":[...]} with `meta` (a JSON object text) as "meta".
std::string ToJson(const std::vector<RunSummary>& runs, const std::string& meta_json);
// A Markdown report: `title`, `preamble` (Markdown), the latency table, throughput and errors.
std::string ToMarkdown(const std::vector<RunSummary>& runs, const std::string& title,
                       const std::string& preamble);

// A line plot as a self-contained SVG. Each series is (name, points (x, y)).
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};
std::string SvgPlot(const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<Series>& series);

}  // namespace tokenway::bench
