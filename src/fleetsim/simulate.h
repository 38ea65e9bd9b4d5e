// `tokenway-bench simulate`: runs an experiment file (the shape `tokenway-bench experiment`
// reads, plus its `simulation:` section) in virtual time with FleetSimulator instead of real
// processes, and writes the same report, JSON and plots (bench/experiment.h).
//
// Every configuration × rate point gets a fresh fleet (cold caches, idle engines) and fresh
// gateway replicas; every configuration sees the same requests at the same arrival times.
// results.json holds only what the inputs determine (no date, no wall-clock time), so the same
// file and seed give a byte-identical results.json; report.md adds the date, machine and the
// wall-clock cost of each point. Called from main on the main thread.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "bench/experiment.h"
#include "fleetsim/fleet_simulator.h"
#include "tokenway/status.h"

namespace tokenway::fleetsim {

struct SimulateOptions {
  std::string file;
  std::string out_dir;  // overrides the file's `out`
  bool progress = false;
  std::string command_line;
};

// Returns the process exit status (0: report written; 2: bad input; 130: interrupted).
int RunSimulation(const SimulateOptions& options, const std::atomic<bool>* stop);

// The pieces RunSimulation builds from an experiment, for tests and tools.
// The fleet: fleet.count engines of fleet.profile, with the engine flags of fleet.args
// (--max-num-seqs, --max-num-batched-tokens, --kv-blocks, --max-loras, --max-waiting,
// --profile, --profiles, --lora, --seed; --dialect and --output-len-mean change nothing the
// simulation measures); other flags are an error.
StatusOr<FleetSpec> FleetFor(const bench::Experiment& e);
// The gateway of configuration `c`: its YAML with the fleet's URLs, parsed like the gateway's
// own file; pools whose `policy` is `oracle` or whose `scheduler.preset` is `oracle` use the
// oracle (simulation only) and a plain picker otherwise.
StatusOr<GatewaySpec> GatewayFor(const bench::Experiment& e, const bench::Configuration& c);
// The workload: generated as `experiment` generates it, or a trace read with malformed lines
// skipped (counted in `malformed`, the first reasons in `errors`).
StatusOr<WorkloadSource> WorkloadFor(const bench::Experiment& e, const bench::LoadOptions& base,
                                     int64_t* malformed, std::vector<std::string>* errors);
// The load options of one point at `rate` (0: closed loop or trace).
bench::LoadOptions LoadFor(const bench::Experiment& e, double rate);

// One point, summarised as `experiment` summarises a real one.
StatusOr<bench::RunSummary> SimulatePoint(const bench::Experiment& e, const bench::Configuration& c,
                                          double rate, const FleetSpec& fleet,
                                          const WorkloadSource& workload,
                                          const std::atomic<bool>* stop,
                                          FleetResult* raw = nullptr);

}  // namespace tokenway::fleetsim
