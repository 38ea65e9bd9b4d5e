// Running benchmarks: one measured point (a rate against a URL, with /metrics scraped before and
// after) and whole experiments (a simulated fleet, one gateway per configuration, the same
// workload and rate sweep through each, one comparison report).
//
// Experiment file format: docs/bench.md, "Experiments". Every process an experiment starts is
// stopped before RunExperiment returns, also when `stop` is raised (SIGINT) or the time limit
// runs out.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "bench/load_generator.h"
#include "bench/report.h"
#include "bench/workload.h"
#include "tokenway/status.h"

namespace tokenway::bench {

// Runs `options` against its target once and summarises it; `metrics_urls` are scraped before
// and after for the prefix-cache hit rate (an unreachable one leaves the rate unknown).
RunSummary RunPoint(const LoadOptions& options, const std::vector<WorkloadRequest>& workload,
                    const std::vector<std::string>& metrics_urls, const Slo& slo,
                    const std::string& label, const std::string& workload_name,
                    const std::atomic<bool>* stop);

// How many requests to generate for a run (finite workloads use their natural size: 0).
int64_t WorkloadCountFor(const LoadOptions& options, const std::string& kind);

// {"date", "git_commit", "machine", "command"} as a JSON object text.
std::string RunMetadataJson(const std::string& command_line);

struct ExperimentOptions {
  std::string file;
  std::string out_dir;  // overrides the file's `out`
  std::string bin_dir;  // where tokenway and tokenway-sim are (default: next to tokenway-bench)
  bool progress = false;
  std::string command_line;
};

// Returns the process exit status (0: report written).
int RunExperiment(const ExperimentOptions& options, const std::atomic<bool>* stop);

}  // namespace tokenway::bench
