// FleetSimulator: one simulated run — a fleet of engines (tokenway-sim's engine model) behind one
// or more gateway replicas running the real routing library, driven by a workload, in
// discrete-event virtual time on one thread with no sockets.
//
// What is modelled (docs/fleetsim.md):
//   client ──▶ gateway replica (a seeded random one per request; + gateway_overhead)
//           ──▶ flow control (the pool's real FlowController, if configured)
//           ──▶ pick (the pool's real Picker / SchedulerPicker over the replica's own
//               EndpointState counters and scraped engine signals, or a simulator-only policy)
//           ──(network_delay)──▶ engine: sim::Engine stepped in virtual time (one event per step)
//           ──(network_delay)──▶ gateway: first token and completion update its counters
// Each replica scrapes every engine every engine_metrics.interval (its own phase) and publishes
// the engine's state at that moment through the same PublishEngineReading the gateway's scraper
// uses; between scrapes the replica sees that old value. The gateway's own counters (in flight,
// sent since the last scrape, outstanding prefill and decode tokens) change at dispatch, first
// token and completion, as in the gateway. Client-side times equal gateway-side times (the
// client is next to the gateway).
//
// Cost: O(log events) per event; one event per engine step (not per token), five per request,
// one per scrape of a replica; the pick is the real picker's cost. Deterministic: the same
// inputs and seed give the same LoadResult, bit for bit.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/load_generator.h"
#include "bench/stats.h"
#include "bench/workload.h"
#include "control/config.h"
#include "control/runtime.h"
#include "fleetsim/routing_policy.h"
#include "sim/engine.h"
#include "tokenway/status.h"

namespace tokenway::fleetsim {

// The simulated fleet: `endpoints` engines, the profile list cycled over them.
struct FleetSpec {
  int64_t endpoints = 4;
  std::vector<sim::HardwareProfile> profiles;  // at least one
  std::string model = "meta-llama/Llama-3.1-8B-Instruct";
  std::vector<std::string> loras;  // adapters the engines know
  int max_loras = 4;
  int64_t kv_blocks = 0;  // 0: the profile's pool
  int64_t max_waiting = 4096;
  double speed = 1;  // engine seconds per virtual second (tokenway-sim --speed)
  uint64_t seed = 0;
};

// What a policy factory is given for one pool of one replica.
struct PolicyEnvironment {
  const Pool* pool = nullptr;                             // the replica's pool (its picker, states)
  const std::vector<SimulatedEngine>* engines = nullptr;  // the whole fleet, true state
  const std::vector<uint32_t>* engine_of = nullptr;       // pool endpoint index -> engine index
  const bench::Slo* slo = nullptr;
};
using PolicyFactory = std::function<std::unique_ptr<RoutingPolicy>(const PolicyEnvironment&)>;

// The gateway side: a parsed gateway configuration whose pool endpoints are the fleet's URLs
// (FleetUrl(i)), and which of its pools use the oracle instead of their picker. A policy
// factory, when set, supplies every pool's policy instead (tests and policies under study).
struct GatewaySpec {
  GatewayConfig config;
  std::vector<std::string> oracle_pools;
  PolicyFactory policy_factory;
  int replicas = 1;
  double network_delay_s = 0.0002;
  double gateway_overhead_s = 0.00005;
};

// The load, as tokenway-bench run takes it (rate, concurrency, warm-up, duration, drain,
// timeout, stream, seed) plus the SLO the oracle aims for and the ITL sample budget.
struct LoadSpec {
  bench::LoadOptions options;
  bench::Slo slo;
  int64_t itl_samples = 20'000'000;
  uint64_t seed = 1;                        // replica choice and picker randomness
  const std::atomic<bool>* stop = nullptr;  // raised (SIGINT): the run ends early
};

// Where requests come from: a generated workload (request i is items[i % size]) or trace
// records materialised one by one as they arrive.
struct WorkloadSource {
  std::vector<bench::WorkloadRequest> items;
  std::vector<bench::TraceRecord> trace;  // when non-empty: replay these instead of `items`
  bench::TraceParams trace_params;
  std::string model;
  uint64_t seed = 1;
};

// What a run produced: the per-request records the reports summarise, and the fleet's engine
// counters.
struct FleetResult {
  bench::LoadResult load;
  double prefix_queries = 0, prefix_hits = 0;  // tokens, summed over the engines
  double adapter_loads = 0;
  uint64_t preemptions = 0;
  // The latency predictor (pools with a predicted-latency scorer), over measured streams: the
  // prediction made at the pick against what the stream then took, before it was learned from
  // (held-back, prequential), and requests refused for their objective.
  double ttft_error_sum = 0, tpot_error_sum = 0;  // Σ |predicted − observed| / observed
  uint64_t ttft_predictions = 0, tpot_predictions = 0;
  uint64_t slo_refused = 0;
  uint64_t events = 0;  // events processed
  uint64_t steps = 0;   // engine steps
  double virtual_s = 0;
  bool interrupted = false;  // LoadSpec::stop was raised
};

// The URL the simulator gives endpoint i (a stable, unroutable address).
std::string FleetUrl(int64_t i);

// Runs one point. Errors: the gateway configuration cannot be built, or a pool names no
// simulated endpoint.
StatusOr<FleetResult> RunFleet(const FleetSpec& fleet, const GatewaySpec& gateway,
                               const LoadSpec& load, const WorkloadSource& workload);

}  // namespace tokenway::fleetsim
