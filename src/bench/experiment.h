// Running benchmarks: one measured point (a rate against a URL, with /metrics scraped before and
// after) and whole experiments (a simulated fleet, one gateway per configuration, the same
// workload and rate sweep through each, one comparison report).
//
// Experiment file format: docs/bench.md, "Experiments". Every process an experiment starts is
// stopped before RunExperiment returns, also when `stop` is raised (SIGINT) or the time limit
// runs out.
#pragma once

#include <atomic>
#include <cstdint>
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

// One gateway configuration of an experiment: a picker policy, or a whole gateway YAML with
// {endpoints} / {models} / {model} placeholders.
struct Configuration {
  std::string name;
  std::string policy;  // used when `config` is empty
  std::string config;
};

// The `simulation:` section: read only by `tokenway-bench simulate` (src/fleetsim/), ignored by
// real-socket experiments, so one file can drive both.
struct SimulationSettings {
  uint64_t seed = 1;                      // gateway replica choice, picker randomness, engines
  int gateway_replicas = 1;               // each with its own routing state
  double network_delay_s = 0.0002;        // one way, gateway <-> engine
  double gateway_overhead_s = 0.00005;    // per request, before it is dispatched
  double engine_metrics_interval_s = -1;  // < 0: the gateway configuration's
  int64_t requests = 0;                   // > 0: arrivals stop after this many (else duration)
  int64_t itl_samples = 20'000'000;       // inter-token gaps kept for the ITL percentiles
  // max_goodput: {attainment, steps}: per configuration, the highest offered rate whose SLO
  // attainment is at least `attainment`, bisected `steps` times between the grid's rates
  // (0: no search).
  double goodput_attainment = 0;
  int goodput_steps = 5;
};

// An experiment file (docs/bench.md, "Experiments").
struct Experiment {
  std::string name = "experiment";
  std::string out_dir = "bench-results";
  std::vector<double> rates;
  int64_t concurrency = 0;
  double duration_s = 10, warmup_s = 2, timeout_s = 120, drain_s = 10;
  double time_limit_s = 0;
  bool stream = true;
  Slo slo;
  WorkloadOptions workload;
  int64_t fleet_count = 2;
  std::string fleet_profile = "h100-8b";
  double fleet_speed = 1;
  std::vector<std::string> fleet_args;
  std::vector<std::string> loras;
  int gateway_workers = 1;
  std::vector<Configuration> configurations;
  SimulationSettings simulation;
  std::string source_text;
};

// Reads and checks an experiment file; errors name the file, line and field.
StatusOr<Experiment> LoadExperiment(const std::string& path);

// The gateway YAML of configuration `c` in front of endpoints `urls`.
std::string GatewayYaml(const Experiment& e, const Configuration& c,
                        const std::vector<std::string>& urls);

// Writes an experiment's results into `out_dir`: results.json (`meta_json` as "meta"), the SVG
// plots (latency, goodput and throughput against offered rate per configuration, TTFT CDF at the
// highest rate) and report.md (`preamble` under the title), and prints the table on stdout.
// Shared by `experiment` and `simulate` so both report the same way.
void WriteExperimentReport(const Experiment& e, const std::vector<RunSummary>& runs,
                           const std::string& out_dir, const std::string& meta_json,
                           const std::string& preamble);

// Formats numbers as "1, 2.5, 4" (%g each).
std::string FormatList(const std::vector<double>& values);

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
