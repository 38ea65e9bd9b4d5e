// RenderMetricsExposition: the /metrics document from worker counters and a plain description of
// the configuration — fixed family order, labels from the description, sections of other units at
// their place, and a document promtool accepts.
#include "telemetry/metrics_exposition.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include "support/test_env.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace tokenway {
namespace {

bool Has(const std::string& doc, const std::string& line) {
  return doc.find("\n" + line + "\n") != std::string::npos;
}

class MetricsExpositionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    workers_[0] = std::make_unique<WorkerMetrics>();
    workers_[1] = std::make_unique<WorkerMetrics>();
    raw_ = {workers_[0].get(), workers_[1].get()};
    // Model slot 1 ("llama") on pool slot 1, endpoint slot 1; slot 2 ("gone") is no longer
    // configured but has traffic from before a reload.
    RequestSample ok;
    ok.model_slot = 1;
    ok.pool_slot = 1;
    ok.endpoint_slot = 1;
    ok.status = 200;
    ok.stream = true;
    ok.seconds = 0.5;
    ok.first_byte = 0.1;
    ok.prompt_tokens = 20;
    ok.completion_tokens = 5;
    ok.cached_tokens = 4;
    workers_[0]->CountRequest(ok);
    workers_[1]->CountRequest(ok);
    workers_[1]->CountRequest(2, 404, 0.01);
    workers_[0]->Count(UpstreamError::kConnect);
    workers_[1]->retries.fetch_add(3);

    in_.workers = raw_;
    in_.models = {
        {"unknown", false, "", ""}, {"llama", true, "main", "vllm"}, {"gone", false, "", ""}};
    PoolSeries& pool = in_.pools.emplace_back();
    pool.name = "main";
    pool.metrics_slot = 1;
    EndpointSeries& ep = pool.endpoints.emplace_back();
    ep.url = "http://10.0.0.1:8000";
    ep.metrics_slot = 1;
    ep.in_flight = 2;
    ep.requests_total = 7;
    ep.engine_valid = true;
    ep.engine_kv_utilisation = 0.25;
    ep.engine_age_seconds = 0.05;
    pool.flow_controlled = true;
    pool.flow.saturated = true;
    pool.flow.bands = {{10, 3}, {0, 1}};
    pool.flow.queued = 4;
    pool.flow.queue_bounds = kBounds;
    pool.flow.queue_time_buckets = {1, 2, 0};
    pool.flow.queue_time_sum_seconds = 0.75;
    PoolSeries& plain = in_.pools.emplace_back();
    plain.name = "plain";
    plain.metrics_slot = 2;
    in_.scaling = {{"main", 100, 25, 4, 0.5, 1, 2}};
    in_.reloads_ok = 2;
    in_.generation = 3;
  }

  static constexpr std::array<double, 2> kBounds = {0.1, 1};
  std::array<std::unique_ptr<WorkerMetrics>, 2> workers_;
  std::array<WorkerMetrics*, 2> raw_{};
  ExpositionInput in_;
};

TEST_F(MetricsExpositionTest, SumsWorkersUnderTheConfiguredLabels) {
  std::string doc = RenderMetricsExposition(in_);
  EXPECT_EQ(doc.rfind("# HELP tokenway_requests_total ", 0), 0u) << doc;
  EXPECT_TRUE(Has(doc, R"(tokenway_requests_total{model="llama",pool="main",code="200"} 2)"));
  // A model from before a reload keeps its series, without a pool and without GenAI families.
  EXPECT_TRUE(Has(doc, R"(tokenway_requests_total{model="gone",pool="",code="404"} 1)"));
  EXPECT_EQ(doc.find(R"(gen_ai_request_model="gone")"), std::string::npos);
  EXPECT_TRUE(Has(doc, R"(tokenway_tokens_total{model="llama",pool="main",type="cached"} 8)"));
  EXPECT_TRUE(Has(doc, R"(gen_ai_client_token_usage_count{gen_ai_operation_name="chat",)"
                       R"(gen_ai_provider_name="vllm",gen_ai_request_model="llama",)"
                       R"(gen_ai_response_model="llama",gen_ai_token_type="input"} 2)"))
      << doc;
  EXPECT_TRUE(Has(doc, "tokenway_retries_total 3"));
  EXPECT_TRUE(Has(doc, R"(tokenway_upstream_errors_total{kind="connect"} 1)"));
  EXPECT_TRUE(Has(doc, "tokenway_workers 2"));
  EXPECT_TRUE(Has(doc, "tokenway_config_generation 3"));
  EXPECT_TRUE(Has(doc, R"(tokenway_config_reloads_total{result="success"} 2)"));
}

TEST_F(MetricsExpositionTest, EndpointAndPoolSeriesFollowTheDescription) {
  std::string doc = RenderMetricsExposition(in_);
  EXPECT_TRUE(
      Has(doc, R"(tokenway_endpoint_in_flight{pool="main",endpoint="http://10.0.0.1:8000"} 2)"));
  EXPECT_TRUE(Has(
      doc, R"(tokenway_endpoint_requests_total{pool="main",endpoint="http://10.0.0.1:8000"} 7)"));
  EXPECT_TRUE(Has(
      doc, R"(tokenway_engine_kv_utilisation{pool="main",endpoint="http://10.0.0.1:8000"} 0.25)"));
  EXPECT_TRUE(
      Has(doc, R"(tokenway_endpoint_responses_total{pool="main",endpoint="http://10.0.0.1:8000",)"
               R"(class="2xx"} 2)"));
  EXPECT_TRUE(Has(doc,
                  R"(tokenway_endpoint_tokens_total{pool="main",endpoint="http://10.0.0.1:8000",)"
                  R"(type="output"} 10)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_pool_time_to_first_token_seconds_count{pool="main"} 2)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_prefix_affinity_blocks_total{pool="plain",result="hit"} 0)"));
  // Flow control only for the flow-controlled pool.
  EXPECT_TRUE(Has(doc, R"(tokenway_pool_saturated{pool="main"} 1)"));
  EXPECT_EQ(doc.find(R"(tokenway_pool_saturated{pool="plain"})"), std::string::npos);
  EXPECT_TRUE(Has(doc, R"(tokenway_flow_queue_depth{pool="main",priority="10"} 3)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_flow_requests_total{pool="main",outcome="queued"} 4)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_flow_queue_duration_seconds_bucket{pool="main",le="1"} 3)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_flow_queue_duration_seconds_sum{pool="main"} 0.75)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_pool_desired_replicas{pool="main"} 2)"));
  EXPECT_TRUE(Has(doc, R"(tokenway_pool_token_throughput{pool="main",type="output"} 25)"));
}

TEST_F(MetricsExpositionTest, InconsistentQueueBucketsRenderAnEmptyHistogram) {
  in_.pools[0].flow.queue_time_buckets = {5};  // one short of bounds + 1
  std::string doc = RenderMetricsExposition(in_);
  EXPECT_TRUE(Has(doc, R"(tokenway_flow_queue_duration_seconds_count{pool="main"} 0)")) << doc;
}

TEST_F(MetricsExpositionTest, OtherUnitsSectionsComeAtTheirPlace) {
  in_.trace_section = [](PrometheusText& t) {
    t.Family("tokenway_trace_spans_total", "counter", "Spans.");
  };
  in_.governance_section = [](PrometheusText& t) {
    t.Family("tokenway_governance_requests_total", "counter", "Governance.");
  };
  std::string doc = RenderMetricsExposition(in_);
  size_t flow = doc.find("# HELP tokenway_flow_queue_duration_seconds ");
  size_t trace = doc.find("# HELP tokenway_trace_spans_total ");
  size_t scaling = doc.find("# HELP tokenway_pool_token_throughput ");
  size_t governance = doc.find("# HELP tokenway_governance_requests_total ");
  size_t reloads = doc.find("# HELP tokenway_config_reloads_total ");
  ASSERT_NE(trace, std::string::npos);
  ASSERT_NE(governance, std::string::npos);
  EXPECT_LT(flow, trace);
  EXPECT_LT(trace, scaling);
  EXPECT_LT(scaling, governance);
  EXPECT_LT(governance, reloads);
}

TEST_F(MetricsExpositionTest, PassesPromtool) {
  if (!testing::HavePromtool()) GTEST_SKIP() << "promtool is not installed";
  std::string doc = RenderMetricsExposition(in_);
  std::string output;
  EXPECT_EQ(testing::PromtoolCheckMetrics(doc, output), 0) << output << "\n--- exposition ---\n"
                                                           << doc;
}

}  // namespace
}  // namespace tokenway
