// AdminServer's documents without a socket: /admin/endpoints is valid JSON describing the
// snapshot and live state, /readyz follows pool health and draining, /metrics carries the
// snapshot's labels.
#include "gateway/admin_server.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>

#include "common/duration.h"
#include "control/scaling_signals.h"
#include "gateway/worker.h"
#include "rollout/rollout_controller.h"

namespace tokenway {
namespace {

// Without engine metrics, flow control decides room by in-flight counts alone.
constexpr const char* kConfig = R"(engine_metrics: {enabled: false}
pools:
  - name: main
    accelerators: {H100-80GB: 2.0}
    flow_control: {max_in_flight: 4}
    endpoints:
      - http://127.0.0.1:9001
      - {url: "http://127.0.0.1:9002", accelerator: H100-80GB}
  - name: spare
    endpoints: [http://127.0.0.1:9003]
models:
  - {name: llama, pool: main}
  - {name: mistral, pool: spare}
)";

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = ParseConfig(kConfig, "admin.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto rt = BuildRuntime(*config, registry_, slots_, 7, 0);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    runtime_ = *rt;
    AdminView view;
    view.shared = &shared_;
    view.metrics = {&metrics_};
    view.slots = &slots_;
    view.runtime = [this] { return runtime_; };
    view.reloads_ok = &reloads_ok_;
    view.reloads_failed = &reloads_failed_;
    view.scaling = &scaling_;
    admin_ = std::make_unique<AdminServer>(ioc_, std::move(view));
  }

  const Pool& pool(size_t i) const { return *runtime_->pools[i]; }

  boost::asio::io_context ioc_;
  EndpointRegistry registry_;
  MetricSlots slots_;
  GatewayShared shared_;
  WorkerMetrics metrics_;
  std::atomic<uint64_t> reloads_ok_{3};
  std::atomic<uint64_t> reloads_failed_{1};
  ScalingSignals scaling_;
  std::shared_ptr<const Runtime> runtime_;
  std::unique_ptr<AdminServer> admin_;
};

TEST_F(AdminServerTest, EndpointsDocumentDescribesPoolsAndLiveState) {
  pool(0).endpoints[1].state->in_flight.store(2);
  pool(0).endpoints[1].state->engine.kv_utilisation.store(0.000237f);
  pool(0).endpoints[0].state->ejected_until_ns.store(MonotonicNanos() + 60'000'000'000);
  std::string json = admin_->RenderEndpoints();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(uint64_t(doc["generation"]), 7u);
  simdjson::dom::array pools = doc["pools"];
  ASSERT_EQ(pools.size(), 2u);
  simdjson::dom::element main = pools.at(0);
  EXPECT_EQ(std::string_view(main["name"]), "main");
  EXPECT_EQ(bool(main["flow_control"]["saturated"]), false);
  EXPECT_EQ(main["flow_control"]["bands"].get_array().size(), 0u);
  simdjson::dom::element first = main["endpoints"].at(0);
  EXPECT_EQ(std::string_view(first["url"]), "http://127.0.0.1:9001");
  EXPECT_TRUE(bool(first["ejected"]));
  EXPECT_FALSE(bool(first["eligible"]));
  EXPECT_GT(int64_t(first["ejected_for_ms"]), 50'000);
  EXPECT_TRUE(first["accelerator"].is_null());
  EXPECT_TRUE(first["engine"]["age_ms"].is_null());
  simdjson::dom::element second = main["endpoints"].at(1);
  EXPECT_EQ(std::string_view(second["accelerator"]), "H100-80GB");
  EXPECT_EQ(double(second["capacity"]), 2.0);
  EXPECT_EQ(int64_t(second["in_flight"]), 2);
  // A small utilisation stays visible (not rounded to 0).
  EXPECT_GT(double(second["engine"]["kv_utilisation"]), 0.0);
  EXPECT_EQ(std::string_view(second["engine"]["kind"]), "vllm");
  // Every endpoint at max_in_flight: the pool is saturated.
  for (const PoolEndpoint& pe : pool(0).endpoints) pe.state->in_flight.store(4);
  json = admin_->RenderEndpoints();
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(bool(doc["pools"].at(0)["flow_control"]["saturated"]), true);
  pools = doc["pools"];
  // The pool without flow control has no flow_control member.
  EXPECT_TRUE(pools.at(1)["flow_control"].error() == simdjson::NO_SUCH_FIELD);
}

TEST_F(AdminServerTest, ReadyUntilAPoolHasNoEligibleEndpointOrTheGatewayDrains) {
  std::string reason;
  EXPECT_TRUE(admin_->Ready(reason));
  pool(1).endpoints[0].state->healthy.store(false);
  EXPECT_FALSE(admin_->Ready(reason));
  EXPECT_EQ(reason, "pool 'spare' has no healthy endpoint");
  pool(1).endpoints[0].state->healthy.store(true);
  shared_.draining.store(true);
  EXPECT_FALSE(admin_->Ready(reason));
  EXPECT_EQ(reason, "draining");
}

TEST_F(AdminServerTest, MetricsCarryTheSnapshotsLabels) {
  const ModelRoute* route = runtime_->FindModel("llama");
  ASSERT_NE(route, nullptr);
  metrics_.CountRequest(route->metrics_slot, 200, 0.25);
  pool(0).endpoints[0].state->requests_total.store(5);
  std::string doc = admin_->RenderMetrics();
  auto has = [&](const std::string& line) {
    return doc.find("\n" + line + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has(R"(tokenway_requests_total{model="llama",pool="main",code="200"} 1)")) << doc;
  EXPECT_TRUE(
      has(R"(tokenway_endpoint_requests_total{pool="main",endpoint="http://127.0.0.1:9001"} 5)"));
  EXPECT_TRUE(has(R"(tokenway_pool_saturated{pool="main"} 0)"));
  EXPECT_EQ(doc.find(R"(tokenway_pool_saturated{pool="spare"})"), std::string::npos);
  EXPECT_TRUE(has(R"(tokenway_trace_spans_total{outcome="exported"} 0)"));
  EXPECT_TRUE(has(R"(tokenway_config_reloads_total{result="failure"} 1)"));
  EXPECT_TRUE(has("tokenway_config_generation 7"));
  EXPECT_TRUE(has("tokenway_workers 1"));
  // No scaling signals computed yet: the families are announced without samples.
  EXPECT_EQ(doc.find("tokenway_pool_ready_endpoints{"), std::string::npos);
}

TEST_F(AdminServerTest, ScalingSignalsAppearInMetricsAndEndpoints) {
  WorkerMetrics* workers[] = {&metrics_};
  scaling_.Update(*runtime_, workers, MonotonicNanos());
  std::string doc = admin_->RenderMetrics();
  EXPECT_NE(doc.find("\ntokenway_pool_ready_endpoints{pool=\"main\"} 2\n"), std::string::npos)
      << doc;
  EXPECT_NE(doc.find("\ntokenway_pool_ready_endpoints{pool=\"spare\"} 1\n"), std::string::npos)
      << doc;
  simdjson::dom::parser parser;
  simdjson::dom::element endpoints;
  std::string json = admin_->RenderEndpoints();
  ASSERT_EQ(parser.parse(json).get(endpoints), simdjson::SUCCESS) << json;
  EXPECT_EQ(uint64_t(endpoints["pools"].at(0)["scaling"]["ready_endpoints"]), 2u);
}

// The rollout endpoints: status document, actions with percent-encoded model names, errors.
class NoVersions : public RolloutBackend {
 public:
  bool ReadFigures(std::string_view, std::string_view, VersionFigures&) override { return false; }
  void SetWeight(std::string_view, std::string_view version, uint32_t percent) override {
    last[std::string(version)] = percent;
  }
  void ResetWeight(std::string_view, std::string_view) override {}
  std::map<std::string, uint32_t> last;
};

TEST_F(AdminServerTest, RolloutsDocumentAndActions) {
  EXPECT_EQ(admin_->RenderRollouts(), R"({"state_file":null,"rollouts":[]})");
  EXPECT_EQ(admin_->RolloutAction("llama/pause").first, 404);

  NoVersions backend;
  RolloutController controller(backend);
  RolloutsConfig config;
  RolloutConfig r;
  r.model = "org/llama";
  r.candidate = "v2";
  r.stable = "v1";
  r.steps = {{10, std::chrono::minutes(1)}, {100, {}}};
  config.rollouts.push_back(r);
  controller.Configure(config, 1000);
  AdminView view;
  view.shared = &shared_;
  view.metrics = {&metrics_};
  view.slots = &slots_;
  view.runtime = [this] { return runtime_; };
  view.reloads_ok = &reloads_ok_;
  view.reloads_failed = &reloads_failed_;
  view.rollouts = &controller;
  AdminServer admin(ioc_, std::move(view));

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string json = admin.RenderRollouts();
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  simdjson::dom::element first = doc["rollouts"].at(0);
  EXPECT_EQ(std::string_view(first["model"]), "org/llama");
  EXPECT_EQ(std::string_view(first["state"]), "progressing");
  EXPECT_EQ(uint64_t(first["weights"]["v2"]), 10u);

  auto [status, body] = admin.RolloutAction("org%2Fllama/pause");
  EXPECT_EQ(status, 200) << body;
  EXPECT_EQ(body, R"({"model":"org/llama","state":"paused"})");
  EXPECT_EQ(admin.RolloutAction("org%2Fllama/pause").first, 409);
  EXPECT_EQ(admin.RolloutAction("org/llama/resume").first, 200);  // a raw '/' works too
  EXPECT_EQ(admin.RolloutAction("org%2Fllama/abort").first, 200);
  EXPECT_EQ(backend.last["v2"], 0u);
  EXPECT_EQ(backend.last["v1"], 100u);
  EXPECT_EQ(admin.RolloutAction("org%2Fllama/restart").first, 404);
  EXPECT_EQ(admin.RolloutAction("org%2/abort").first, 404);  // malformed escape
  EXPECT_EQ(admin.RolloutAction("pause").first, 404);
  EXPECT_EQ(admin.RolloutAction("other/pause").first, 404);
  const std::string metrics = admin.RenderMetrics();
  EXPECT_NE(metrics.find(R"(tokenway_rollout_state{model="org/llama",state="aborted"} 1)"),
            std::string::npos);
  for (const char* sample :
       {R"(tokenway_rollout_actions_total{action="pause",result="ok"} 1)",
        R"(tokenway_rollout_actions_total{action="pause",result="conflict"} 1)",
        R"(tokenway_rollout_actions_total{action="pause",result="not_found"} 1)",
        R"(tokenway_rollout_actions_total{action="invalid",result="not_found"} 3)"}) {
    EXPECT_NE(metrics.find(sample), std::string::npos) << sample << "\n" << metrics;
  }
}

}  // namespace
}  // namespace tokenway
