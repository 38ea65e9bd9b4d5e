// KedaScaler: trigger metadata → pool, metric and target; the metric mapping; IsActive; and the
// four gRPC methods served in process over loopback from real scaling signals.
#include "gateway/keda_scaler.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "control/config.h"
#include "control/runtime.h"
#include "externalscaler/externalscaler.grpc.pb.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

TEST(ParseScalerQuery, DefaultsToDesiredReplicasOfTheObjectsPool) {
  auto q = ParseScalerQuery({{"scalerAddress", "gw:9100"}}, "llama-8b");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->pool, "llama-8b");
  EXPECT_EQ(q->metric, ScalerMetric::kDesiredReplicas);
  EXPECT_EQ(q->target, 1);
  EXPECT_EQ(q->metric_name, "llama-8b-desired-replicas");
}

TEST(ParseScalerQuery, MetadataNamesPoolMetricAndTarget) {
  auto q = ParseScalerQuery({{"pool", "Pool_A.1"}, {"metric", "queue_depth"}, {"target", "2.5"}},
                            "ignored");
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->pool, "Pool_A.1");
  EXPECT_EQ(q->metric, ScalerMetric::kQueueDepth);
  EXPECT_EQ(q->target, 2.5);
  EXPECT_EQ(q->metric_name, "pool-a-1-queue-depth");
  for (size_t m = 0; m < static_cast<size_t>(ScalerMetric::kCount); ++m) {
    auto metric = static_cast<ScalerMetric>(m);
    auto r = ParseScalerQuery({{"metric", std::string(ScalerMetricName(metric))}}, "p");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->metric, metric);
    EXPECT_EQ(r->target, DefaultScalerTarget(metric));
    EXPECT_GT(r->target, 0);
  }
}

TEST(ParseScalerQuery, BadMetadataIsExplained) {
  struct Case {
    std::map<std::string, std::string> metadata;
    const char* object;
    const char* words;
  };
  for (const Case& c : {
           Case{{}, "", "no pool"},
           Case{{{"pool", ""}}, "x", "no pool"},
           Case{{{"metric", "tokens"}}, "p", "metric 'tokens' is unknown (known: desired_replicas"},
           Case{{{"target", "0"}}, "p", "positive number"},
           Case{{{"target", "-1"}}, "p", "positive number"},
           Case{{{"target", "4x"}}, "p", "positive number"},
           Case{{{"target", ""}}, "p", "positive number"},
           Case{{{"target", "nan"}}, "p", "positive number"},
       }) {
    auto r = ParseScalerQuery(c.metadata, c.object);
    ASSERT_FALSE(r.ok()) << c.words;
    EXPECT_NE(r.status().message().find(c.words), std::string::npos) << r.status().message();
  }
}

TEST(ScalerMetricValue, MapsEverySignal) {
  PoolScalingSignals s;
  s.desired_replicas = 3;
  s.queue_depth = 7;
  s.output_tokens_per_second = 1234.5;
  s.input_tokens_per_second = 6789.25;
  s.saturation = 0.6;
  EXPECT_EQ(ScalerMetricValue(s, ScalerMetric::kDesiredReplicas), 3);
  EXPECT_EQ(ScalerMetricValue(s, ScalerMetric::kQueueDepth), 7);
  EXPECT_EQ(ScalerMetricValue(s, ScalerMetric::kOutputTokensPerSecond), 1234.5);
  EXPECT_EQ(ScalerMetricValue(s, ScalerMetric::kInputTokensPerSecond), 6789.25);
  EXPECT_EQ(ScalerMetricValue(s, ScalerMetric::kSaturation), 0.6);
}

TEST(PoolIsActive, AnyWorkOrThroughputMakesThePoolActive) {
  PoolScalingSignals idle;
  idle.desired_replicas = 1;  // the recommendation's floor alone is not activity
  EXPECT_FALSE(PoolIsActive(idle, 0));
  EXPECT_TRUE(PoolIsActive(idle, 1));
  PoolScalingSignals s = idle;
  s.in_flight = 1;
  EXPECT_TRUE(PoolIsActive(s, 0));
  s = idle;
  s.queue_depth = 0.5;
  EXPECT_TRUE(PoolIsActive(s, 0));
  s = idle;
  s.output_tokens_per_second = 0.1;
  EXPECT_TRUE(PoolIsActive(s, 0));
  s = idle;
  s.input_tokens_per_second = 0.1;
  EXPECT_TRUE(PoolIsActive(s, 0));
}

// A scaler over real signals from a one-pool runtime, served on a loopback port.
class KedaScalerService : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = ParseConfig(
        "pools:\n  - name: llama\n    endpoints: [http://127.0.0.1:9]\n"
        "models:\n  - {name: m, pool: llama}\n",
        "gw.yaml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto rt = BuildRuntime(*config, registry_, slots_, 1, 0);
    ASSERT_TRUE(rt.ok()) << rt.status().message();
    rt_ = *rt;
    slot_ = rt_->pools[0]->metrics_slot;
    Update(0);
    scaler_ = std::make_unique<KedaScaler>(signals_, std::vector<const WorkerMetrics*>{&worker_});
    auto port = scaler_->Start("127.0.0.1:0");
    ASSERT_TRUE(port.ok()) << port.status().message();
    ASSERT_GT(*port, 0);
    stub_ = externalscaler::ExternalScaler::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(*port), grpc::InsecureChannelCredentials()));
  }

  void Update(int64_t seconds) {
    WorkerMetrics* w = &worker_;
    signals_.Update(*rt_, std::span<WorkerMetrics* const>(&w, 1), seconds * 1'000'000'000);
  }

  static externalscaler::ScaledObjectRef Ref(std::map<std::string, std::string> metadata,
                                             const std::string& name = "so") {
    externalscaler::ScaledObjectRef ref;
    ref.set_name(name);
    ref.set_namespace_("llm");
    for (auto& [k, v] : metadata) (*ref.mutable_scalermetadata())[k] = v;
    return ref;
  }

  bool IsActive() {
    grpc::ClientContext ctx;
    externalscaler::IsActiveResponse out;
    grpc::Status st = stub_->IsActive(&ctx, Ref({{"pool", "llama"}}), &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out.result();
  }

  uint64_t Count(std::string_view method, std::string_view outcome) {
    PrometheusText t;
    scaler_->RenderMetrics(t);
    std::string line = "tokenway_keda_requests_total{method=\"" + std::string(method) +
                       "\",outcome=\"" + std::string(outcome) + "\"} ";
    size_t at = t.str().find(line);
    if (at == std::string::npos) return ~uint64_t{0};
    return std::stoull(t.str().substr(at + line.size()));
  }

  EndpointRegistry registry_;
  MetricSlots slots_;
  std::shared_ptr<const Runtime> rt_;
  uint16_t slot_ = 0;
  WorkerMetrics worker_;
  ScalingSignals signals_;
  std::unique_ptr<KedaScaler> scaler_;
  std::unique_ptr<externalscaler::ExternalScaler::Stub> stub_;
};

TEST_F(KedaScalerService, MetricSpecAndValuesFollowTheSignals) {
  {
    grpc::ClientContext ctx;
    externalscaler::GetMetricSpecResponse out;
    grpc::Status st = stub_->GetMetricSpec(
        &ctx, Ref({{"pool", "llama"}, {"metric", "output_tokens_per_second"}, {"target", "250"}}),
        &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_EQ(out.metricspecs_size(), 1);
    EXPECT_EQ(out.metricspecs(0).metricname(), "llama-output-tokens-per-second");
    EXPECT_EQ(out.metricspecs(0).targetsize(), 250);
    EXPECT_EQ(out.metricspecs(0).targetsizefloat(), 250.0);
  }
  {
    // A fractional target keeps an integer of at least 1 for older KEDA.
    grpc::ClientContext ctx;
    externalscaler::GetMetricSpecResponse out;
    ASSERT_TRUE(stub_->GetMetricSpec(&ctx, Ref({{"metric", "saturation"}}, "llama"), &out).ok());
    EXPECT_EQ(out.metricspecs(0).targetsize(), 1);
    EXPECT_EQ(out.metricspecs(0).targetsizefloat(), 0.75);
  }
  {
    // A huge target saturates the integer instead of overflowing it.
    grpc::ClientContext ctx;
    externalscaler::GetMetricSpecResponse out;
    ASSERT_TRUE(
        stub_->GetMetricSpec(&ctx, Ref({{"pool", "llama"}, {"target", "1e300"}}), &out).ok());
    EXPECT_EQ(out.metricspecs(0).targetsize(), 1'000'000'000'000'000);
    EXPECT_EQ(out.metricspecs(0).targetsizefloat(), 1e300);
  }
  // 500 output tokens over 2 s: 250 tokens/s.
  worker_.pools[slot_].output_tokens.fetch_add(500);
  Update(2);
  grpc::ClientContext ctx;
  externalscaler::GetMetricsRequest request;
  *request.mutable_scaledobjectref() =
      Ref({{"pool", "llama"}, {"metric", "output_tokens_per_second"}});
  request.set_metricname("llama-output-tokens-per-second");
  externalscaler::GetMetricsResponse out;
  grpc::Status st = stub_->GetMetrics(&ctx, request, &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(out.metricvalues_size(), 1);
  EXPECT_EQ(out.metricvalues(0).metricname(), "llama-output-tokens-per-second");
  EXPECT_EQ(out.metricvalues(0).metricvalue(), 250);
  EXPECT_DOUBLE_EQ(out.metricvalues(0).metricvaluefloat(), 250.0);
  EXPECT_EQ(Count("GetMetrics", "ok"), 1u);
  EXPECT_EQ(Count("GetMetricSpec", "ok"), 3u);
}

TEST_F(KedaScalerService, UnknownPoolIsNotFoundAndBadMetadataInvalid) {
  grpc::ClientContext ctx;
  externalscaler::IsActiveResponse out;
  grpc::Status st = stub_->IsActive(&ctx, Ref({{"pool", "mistral"}}), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find("pool 'mistral' is not configured"), std::string::npos)
      << st.error_message();
  EXPECT_NE(st.error_message().find("pools: llama"), std::string::npos) << st.error_message();
  grpc::ClientContext ctx2;
  externalscaler::GetMetricSpecResponse spec;
  st = stub_->GetMetricSpec(&ctx2, Ref({{"pool", "llama"}, {"metric", "rps"}}), &spec);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("metric 'rps'"), std::string::npos);
  EXPECT_EQ(Count("IsActive", "not_found"), 1u);
  EXPECT_EQ(Count("GetMetricSpec", "invalid_argument"), 1u);
  EXPECT_EQ(Count("IsActive", "ok"), 0u);
}

TEST_F(KedaScalerService, IsActiveSeesRequestsWaitingForAnEndpointAtOnce) {
  EXPECT_FALSE(IsActive());
  // No signal update in between: the live per-worker count is read on the call.
  worker_.pools[slot_].waiting_for_endpoint.fetch_add(2);
  EXPECT_TRUE(IsActive());
  worker_.pools[slot_].waiting_for_endpoint.fetch_sub(2);
  EXPECT_FALSE(IsActive());
}

TEST_F(KedaScalerService, StreamIsActivePushesTheValueThenEveryChange) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub_->StreamIsActive(&ctx, Ref({}, "llama"));
  externalscaler::IsActiveResponse out;
  ASSERT_TRUE(reader->Read(&out));
  EXPECT_FALSE(out.result());
  worker_.pools[slot_].waiting_for_endpoint.fetch_add(1);
  ASSERT_TRUE(reader->Read(&out));
  EXPECT_TRUE(out.result());
  worker_.pools[slot_].waiting_for_endpoint.fetch_sub(1);
  ASSERT_TRUE(reader->Read(&out));
  EXPECT_FALSE(out.result());
  EXPECT_EQ(Count("StreamIsActive", "ok"), 1u);
  // Stopping the scaler ends the open stream with UNAVAILABLE (not the CANCELLED of a shutdown
  // that gave up waiting for it).
  std::thread stopper([this] { scaler_->Stop(); });
  EXPECT_FALSE(reader->Read(&out));
  grpc::Status st = reader->Finish();
  stopper.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_EQ(st.error_message(), "tokenway is stopping");
}

TEST_F(KedaScalerService, SecondScalerOnTheSamePortFailsToStart) {
  KedaScaler first(signals_, {&worker_});
  auto port = first.Start("127.0.0.1:0");
  ASSERT_TRUE(port.ok());
  KedaScaler second(signals_, {&worker_});
  auto again = second.Start("127.0.0.1:" + std::to_string(*port));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("autoscaling.keda.listen"), std::string::npos);
}

}  // namespace
}  // namespace tokenway
