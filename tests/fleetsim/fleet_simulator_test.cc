#include "fleetsim/fleet_simulator.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "bench/report.h"
#include "bench/trace_file.h"
#include "fleetsim/oracle_policy.h"
#include "fleetsim/simulate.h"
#include "routing/endpoint_state.h"
#include "sim/profiles.h"

namespace tokenway::fleetsim {
namespace {

// A small shared-prefix experiment: `endpoints` fast engines, one configuration.
bench::Experiment SmallExperiment(int64_t endpoints, const std::string& policy) {
  bench::Experiment e;
  e.name = "test";
  e.rates = {40};
  e.duration_s = 3;
  e.warmup_s = 0.5;
  e.drain_s = 30;
  e.slo = {1.0, 0.05, 0, 0};
  e.workload.kind = "shared-prefix";
  e.workload.seed = 5;
  e.workload.shared_prefix = {8, 8, 512, 32, 32};
  e.fleet_count = endpoints;
  e.fleet_speed = 4;
  e.configurations.push_back({policy, policy, ""});
  return e;
}

bench::RunSummary Simulate(const bench::Experiment& e, FleetResult* raw = nullptr) {
  auto fleet = FleetFor(e);
  EXPECT_TRUE(fleet.ok()) << fleet.status().message();
  auto workload = WorkloadFor(e, LoadFor(e, e.rates.front()), nullptr, nullptr);
  EXPECT_TRUE(workload.ok()) << workload.status().message();
  auto s =
      SimulatePoint(e, e.configurations.front(), e.rates.front(), *fleet, *workload, nullptr, raw);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return *s;
}

std::string Json(const bench::RunSummary& s) {
  return bench::ToJson({s}, "{}");
}

TEST(FleetSimulatorTest, RunIsConsistentAndEveryRequestFinishes) {
  FleetResult raw;
  bench::RunSummary s = Simulate(SmallExperiment(4, "least-request"), &raw);
  EXPECT_GT(s.measured, 80);
  EXPECT_EQ(s.measured, s.succeeded + s.error_total);
  EXPECT_EQ(s.error_total, 0);
  EXPECT_EQ(s.unfinished, 0);
  EXPECT_EQ(s.ttft.count, s.succeeded);
  EXPECT_LE(s.ttft.p50, s.ttft.p90);
  EXPECT_LE(s.ttft.p90, s.ttft.p99);
  EXPECT_GT(s.tpot.p50, 0);
  EXPECT_GE(s.prefix_hit_rate, 0);
  EXPECT_LE(s.prefix_hit_rate, 1);
  EXPECT_LE(s.goodput, s.request_rate + 1e-9);
  for (const auto& r : raw.load.records) {
    if (!r.ok()) continue;
    EXPECT_EQ(r.output_tokens, 32);
    EXPECT_GT(r.ttft, 0);
    EXPECT_GE(r.e2e, r.ttft);
  }
}

TEST(FleetSimulatorTest, SameSeedGivesTheSameResultByteForByte) {
  bench::Experiment e = SmallExperiment(4, "power-of-two");
  e.simulation.gateway_replicas = 3;
  const std::string a = Json(Simulate(e));
  const std::string b = Json(Simulate(e));
  EXPECT_EQ(a, b);
  e.simulation.seed = 99;  // another seed: other replica choices and picks
  EXPECT_NE(a, Json(Simulate(e)));
}

TEST(FleetSimulatorTest, SimulateWritesAByteIdenticalResultsFileForTheSameSeed) {
  const std::string dir = ::testing::TempDir() + "/fleetsim_determinism";
  const std::string file = dir + ".yaml";
  {
    std::ofstream f(file);
    f << "name: det\nduration: 2s\nwarmup: 500ms\ndrain: 20s\nrates: [20, 40]\n"
         "slo: ttft=1s,tpot=50ms\n"
         "workload: {kind: shared-prefix, seed: 2, groups: 4, prompts_per_group: 4,"
         " system_len: 256, question_len: 16, output_len: 16}\n"
         "fleet: {count: 3, speed: 4, args: [--max-num-seqs, '64']}\n"
         "simulation: {seed: 4, gateway_replicas: 2, network_delay: 300us}\n"
         "configurations:\n"
         "  - {name: gie, config: \"pools:\\n  - name: fleet\\n    scheduler: {preset: "
         "gie-default}\\n    endpoints:\\n{endpoints}\\nmodels:\\n{models}\"}\n"
         "  - {name: oracle, policy: oracle}\n";
  }
  auto read = [](const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  ASSERT_EQ(RunSimulation({file, dir + "/a", false, "test"}, nullptr), 0);
  ASSERT_EQ(RunSimulation({file, dir + "/b", false, "test"}, nullptr), 0);
  const std::string a = read(dir + "/a/results.json");
  EXPECT_GT(a.size(), 1000u);
  EXPECT_EQ(a, read(dir + "/b/results.json"));
  EXPECT_NE(read(dir + "/a/report.md").find("simulated"), std::string::npos);
  EXPECT_FALSE(read(dir + "/a/ttft_p90_vs_rate.svg").empty());
}

// A policy that always takes the first candidate and records what the gateway saw of each
// endpoint against the engine's true state.
struct Observation {
  int64_t now_ns;
  bool valid;
  int64_t updated_at_ns;
  int32_t scraped_waiting;
  int64_t true_waiting;
};

class RecordingPolicy final : public RoutingPolicy {
 public:
  RecordingPolicy(const PolicyEnvironment& env, std::vector<Observation>& out)
      : env_(env), out_(out) {}
  uint32_t Choose(const PolicyRequest&, std::span<const PickCandidate> candidates, uint64_t,
                  int64_t now_ns) override {
    const PickCandidate& c = candidates.front();
    const EngineSignals& g = c.state->engine;
    out_.push_back(
        {now_ns, g.valid.load(), g.updated_at_ns.load(), g.waiting.load(),
         static_cast<int64_t>((*env_.engines)[(*env_.engine_of)[c.index]].engine->num_waiting())});
    return c.index;
  }
  std::string_view name() const override { return "recording"; }

 private:
  PolicyEnvironment env_;
  std::vector<Observation>& out_;
};

TEST(FleetSimulatorTest, TheGatewaySeesTheLastScrapeNotTheEngineNow) {
  bench::Experiment e = SmallExperiment(2, "round-robin");
  e.rates = {300};  // a burst onto one endpoint: its queue grows between scrapes
  e.duration_s = 1.5;
  e.warmup_s = 0;
  e.fleet_speed = 1;
  e.fleet_args = {"--max-num-seqs", "4"};
  e.simulation.engine_metrics_interval_s = 0.25;
  auto fleet = FleetFor(e);
  ASSERT_TRUE(fleet.ok());
  auto gateway = GatewayFor(e, e.configurations.front());
  ASSERT_TRUE(gateway.ok()) << gateway.status().message();
  std::vector<Observation> seen;
  gateway->policy_factory = [&](const PolicyEnvironment& env) {
    return std::make_unique<RecordingPolicy>(env, seen);
  };
  LoadSpec load;
  load.options = LoadFor(e, 300);
  auto workload = WorkloadFor(e, load.options, nullptr, nullptr);
  ASSERT_TRUE(workload.ok());
  auto result = RunFleet(*fleet, *gateway, load, *workload);
  ASSERT_TRUE(result.ok()) << result.status().message();
  ASSERT_GT(seen.size(), 300u);

  const int64_t interval = 250'000'000;
  int differs = 0;
  std::map<int64_t, int32_t> value_of_scrape;
  int64_t first_scrape = -1;
  for (const Observation& o : seen) {
    if (o.valid && first_scrape < 0) first_scrape = o.updated_at_ns;
  }
  for (const Observation& o : seen) {
    if (!o.valid) {
      EXPECT_LT(o.now_ns, interval);  // only before the replica's first scrape
      continue;
    }
    // The signals are from a scrape at most one interval old...
    EXPECT_LE(o.updated_at_ns, o.now_ns);
    EXPECT_LT(o.now_ns - o.updated_at_ns, interval + 1);
    EXPECT_EQ((o.updated_at_ns - first_scrape) % interval, 0);  // the replica's own phase
    // ...and hold that scrape's value until the next one, whatever the engine does meanwhile.
    auto [it, inserted] = value_of_scrape.emplace(o.updated_at_ns, o.scraped_waiting);
    if (!inserted) {
      EXPECT_EQ(it->second, o.scraped_waiting);
    }
    if (o.scraped_waiting != o.true_waiting) ++differs;
  }
  EXPECT_GE(value_of_scrape.size(), 4u);
  EXPECT_GT(differs, static_cast<int>(seen.size()) / 2);  // the queue moved between scrapes
  // Some scrape saw the queue the burst built up.
  int32_t most = 0;
  for (const auto& [at, v] : value_of_scrape) most = std::max(most, v);
  EXPECT_GT(most, 10);
}

TEST(FleetSimulatorTest, OraclePrefersTheEngineHoldingThePrefixUntilItIsLoaded) {
  std::vector<SimulatedEngine> engines(2);
  for (auto& e : engines) {
    sim::EngineConfig c;
    c.profile = *sim::FindProfile("h100-8b");
    e.engine = std::make_unique<sim::Engine>(c);
  }
  std::vector<uint32_t> prompt;
  for (uint32_t i = 0; i < 2000; ++i) prompt.push_back(1000 + i);
  // Engine 0 serves the prompt once: its blocks stay cached.
  sim::GenerationRequest warm;
  warm.prompt_tokens = prompt;
  warm.max_output_tokens = 2;
  engines[0].engine->Add(warm, 0);
  double t = 0;
  while (engines[0].engine->HasWork()) {
    t += engines[0].engine->BeginStep(t);
    engines[0].engine->FinishStep(t);
  }
  OraclePolicy oracle(engines, {0, 1}, 0, 0);
  InspectedRequest inspected;
  PolicyRequest request;
  request.inspected = &inspected;
  request.tokens = &prompt;
  request.prompt_tokens = static_cast<int64_t>(prompt.size());
  request.max_tokens = 16;
  EndpointState s0("a"), s1("b");
  const PickCandidate candidates[] = {{0, &s0}, {1, &s1}};
  for (uint64_t r = 0; r < 4; ++r) EXPECT_EQ(oracle.Choose(request, candidates, r, 0), 0u);
  EXPECT_GT(oracle.Predict(request, 0, 0).cached_tokens, 1900);
  EXPECT_EQ(oracle.Predict(request, 1, 0).cached_tokens, 0);
  EXPECT_LT(oracle.Predict(request, 0, 0).ttft_s, oracle.Predict(request, 1, 0).ttft_s);
  // Pile work onto engine 0: the prefix no longer pays for the queue.
  for (uint32_t i = 0; i < 12; ++i) {
    sim::GenerationRequest other;
    for (uint32_t k = 0; k < 8000; ++k) other.prompt_tokens.push_back(900000 + i * 10000 + k);
    engines[0].engine->Add(other, t);
  }
  for (uint64_t r = 0; r < 4; ++r) EXPECT_EQ(oracle.Choose(request, candidates, r, 0), 1u);
}

TEST(FleetSimulatorTest, OracleIsSelectableAsAPolicyOrAPresetOnlyInSimulation) {
  bench::Experiment e = SmallExperiment(2, "oracle");
  auto g = GatewayFor(e, e.configurations.front());
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->oracle_pools, std::vector<std::string>{"fleet"});
  bench::Configuration preset{"p", "",
                              "pools:\n  - name: fleet\n    scheduler: {preset: oracle}\n"
                              "    endpoints:\n{endpoints}\nmodels:\n{models}"};
  auto p = GatewayFor(e, preset);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->oracle_pools, std::vector<std::string>{"fleet"});
  // The gateway itself refuses it.
  auto real = ParseConfig(
      "pools:\n  - name: fleet\n    scheduler: {preset: oracle}\n"
      "    endpoints: [http://127.0.0.1:1]\nmodels:\n  - name: m\n"
      "    pool: fleet\n",
      "x.yaml");
  ASSERT_FALSE(real.ok());
  EXPECT_NE(real.status().message().find("oracle"), std::string::npos);
  bench::RunSummary s = Simulate(e);
  EXPECT_EQ(s.error_total, 0);
  EXPECT_GT(s.succeeded, 80);
}

TEST(FleetSimulatorTest, PrefixAwareRoutingHitsTheCacheMoreThanRoundRobin) {
  bench::Experiment rr = SmallExperiment(8, "round-robin");
  bench::Experiment gie = rr;
  gie.configurations = {{"gie", "",
                         "pools:\n  - name: fleet\n    scheduler: {preset: gie-default}\n"
                         "    endpoints:\n{endpoints}\nmodels:\n{models}"}};
  const double rr_hits = Simulate(rr).prefix_hit_rate;
  const double gie_hits = Simulate(gie).prefix_hit_rate;
  EXPECT_GT(gie_hits, rr_hits + 0.1) << rr_hits << " " << gie_hits;
}

TEST(FleetSimulatorTest, FlowControlAndReplicasKeepCountsConsistent) {
  bench::Experiment e = SmallExperiment(2, "fc");
  e.rates = {200};
  e.fleet_args = {"--max-num-seqs", "8"};
  e.simulation.gateway_replicas = 2;
  e.configurations = {{"fc", "",
                       "pools:\n  - name: fleet\n    policy: least-request\n"
                       "    flow_control: {enabled: true, queue_threshold: 2, max_queue: 50,"
                       " queue_ttl: 1s}\n    endpoints:\n{endpoints}\nmodels:\n{models}"}};
  bench::RunSummary s = Simulate(e);
  EXPECT_EQ(s.measured, s.succeeded + s.error_total);
  EXPECT_GT(s.succeeded, 0);
  EXPECT_GT(s.error_total, 0);  // saturated: queue full or queue timeouts (503)
  EXPECT_EQ(s.error_total, s.errors[static_cast<size_t>(bench::ErrorKind::kHttp5xx)]);
  EXPECT_EQ(s.unfinished, 0);
}

TEST(FleetSimulatorTest, TraceReplaySkipsAndCountsMalformedLines) {
  const std::string path = ::testing::TempDir() + "/fleetsim_trace.jsonl";
  bench::SyntheticTraceOptions t;
  t.requests = 120;
  t.rate = 40;
  t.input_median = 600;
  t.output_median = 20;
  t.block_size = 128;
  ASSERT_TRUE(bench::WriteSyntheticTrace(t, path).ok());
  {
    std::ofstream f(path, std::ios::app);
    f << "{\"timestamp\": 5, \"input_length\": \"many\", \"output_length\": 3}\nnot json\n";
  }
  bench::Experiment e = SmallExperiment(4, "least-request");
  e.rates.clear();
  e.duration_s = 0;
  e.workload.kind = "trace";
  e.workload.trace.path = path;
  e.workload.trace.block_size = 128;
  int64_t malformed = 0;
  std::vector<std::string> errors;
  auto workload = WorkloadFor(e, LoadFor(e, 0), &malformed, &errors);
  ASSERT_TRUE(workload.ok()) << workload.status().message();
  EXPECT_EQ(malformed, 2);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find(":121: 'input_length' must be a number"), std::string::npos)
      << errors[0];
  EXPECT_EQ(workload->trace.size(), 120u);
  auto fleet = FleetFor(e);
  ASSERT_TRUE(fleet.ok());
  auto s = SimulatePoint(e, e.configurations.front(), 0, *fleet, *workload, nullptr);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->measured + s->warmup, 120);
  EXPECT_EQ(s->error_total, 0);
  EXPECT_GT(s->prefix_hit_rate, 0.2);  // the groups' shared hash ids are cached
}

TEST(FleetSimulatorTest, UnsimulatedFleetFlagsAreRejected) {
  bench::Experiment e = SmallExperiment(2, "round-robin");
  e.fleet_args = {"--fault-error-rate", "0.1"};
  auto f = FleetFor(e);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("--fault-error-rate"), std::string::npos);
  e.fleet_args = {"--max-num-seqs", "x"};
  EXPECT_FALSE(FleetFor(e).ok());
  e.fleet_args = {"--kv-blocks", "100", "--profiles", "h100-8b,l4-8b"};
  auto ok = FleetFor(e);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->kv_blocks, 100);
  EXPECT_EQ(ok->profiles.size(), 2u);
}

// The predicted-latency scorer in simulation: its predictions, each made before the stream it
// predicts was learned from, are compared with what the stream took (held-back error, MAPE).
// Fixed seed: the bound guards against a predictor that stops learning.
bench::Experiment PredictingExperiment(const std::string& extra, const std::string& model_extra) {
  bench::Experiment e = SmallExperiment(4, "predicted");
  e.rates = {200};
  e.duration_s = 6;
  e.warmup_s = 1;
  e.configurations.front().policy.clear();
  e.configurations.front().config =
      "pools:\n  - name: fleet\n    scheduler:\n      scorers: [{name: prefix-cache, weight: "
      "3}, {name: queue-depth, weight: 2}, {name: predicted-latency, weight: 4}]\n" +
      extra + "    endpoints:\n{endpoints}\nmodels:\n  - name: {model}\n    pool: fleet\n" +
      model_extra;
  return e;
}

TEST(FleetSimulatorTest, LatencyPredictionsHaveABoundedHeldBackErrorOnAFixedSeed) {
  bench::Experiment e = PredictingExperiment("      slo: {min_samples: 16}\n", "");
  bench::RunSummary s = Simulate(e);
  EXPECT_EQ(s.error_total, 0);
  ASSERT_GE(s.ttft_prediction_mape, 0);
  ASSERT_GE(s.tpot_prediction_mape, 0);
  std::printf("held-back MAPE: TTFT %.1f %%, TPOT %.1f %% over %lld streams\n",
              s.ttft_prediction_mape * 100, s.tpot_prediction_mape * 100,
              static_cast<long long>(s.succeeded));
  EXPECT_GT(s.succeeded, 1000);
  EXPECT_LT(s.ttft_prediction_mape, 0.25);  // 15.8 % at the time of writing
  EXPECT_LT(s.tpot_prediction_mape, 0.05);  // 0.3 %
  EXPECT_EQ(s.slo_refused, 0);
  EXPECT_EQ(Json(s), Json(Simulate(e)));  // deterministic with the predictor too
}

TEST(FleetSimulatorTest, SheddableRequestsNoEndpointCanServeAreRefusedEarly) {
  // An objective of 2 ms TTFT nobody meets: sheddable requests are refused (429) once the
  // models are trained; the same objective for requests that may not be shed refuses nothing.
  bench::Experiment e =
      PredictingExperiment("      slo: {ttft: 2ms, min_samples: 16}\n", "    priority: -1\n");
  bench::RunSummary s = Simulate(e);
  EXPECT_GT(s.slo_refused, s.measured / 2);
  EXPECT_EQ(s.errors[static_cast<size_t>(bench::ErrorKind::kHttp4xx)], s.slo_refused);
  bench::RunSummary kept =
      Simulate(PredictingExperiment("      slo: {ttft: 2ms, min_samples: 16}\n", ""));
  EXPECT_EQ(kept.slo_refused, 0);
  EXPECT_EQ(kept.error_total, 0);
}

}  // namespace
}  // namespace tokenway::fleetsim
