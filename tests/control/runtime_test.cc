// BuildRuntime: per-endpoint engine and capacity reach the snapshot and the shared live state,
// and a configuration that fails to build leaves the live state as it was.
#include "control/runtime.h"

#include <gtest/gtest.h>

#include "telemetry/metrics.h"

namespace tokenway {
namespace {

GatewayConfig Parse(const std::string& yaml) {
  auto r = ParseConfig(yaml, "gw.yaml");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : GatewayConfig{};
}

constexpr const char* kMixed = R"(pools:
  - name: mixed
    engine: trtllm-serve
    accelerators: {H100-80GB: 1.0, A100-40GB: 0.45}
    endpoints:
      - http://127.0.0.1:9001
      - {url: "http://127.0.0.1:9002", accelerator: A100-40GB}
      - {url: "http://127.0.0.1:9003", engine: triton-tensorrt-llm, capacity: 2.5}
  - name: other
    engine: sglang
    endpoints: [http://127.0.0.1:9004]
models:
  - {name: m, pool: mixed}
)";

TEST(RuntimeTest, EndpointsCarryEngineAndCapacity) {
  EndpointRegistry registry;
  MetricSlots slots;
  auto rt = BuildRuntime(Parse(kMixed), registry, slots, 1, 0);
  ASSERT_TRUE(rt.ok()) << rt.status().message();
  const Pool& mixed = *(*rt)->pools[0];
  EXPECT_EQ(mixed.engine, EngineKind::kTrtllmServe);
  ASSERT_EQ(mixed.endpoints.size(), 3u);
  EXPECT_EQ(mixed.endpoints[0].engine, EngineKind::kTrtllmServe);
  EXPECT_EQ(mixed.endpoints[1].engine, EngineKind::kTrtllmServe);
  EXPECT_EQ(mixed.endpoints[2].engine, EngineKind::kTritonTensorrtLlm);
  EXPECT_EQ(mixed.endpoints[1].accelerator, "A100-40GB");
  EXPECT_EQ(mixed.endpoints[0].capacity, 1.0);
  EXPECT_EQ(mixed.endpoints[1].capacity, 0.45);
  EXPECT_EQ(mixed.endpoints[2].capacity, 2.5);
  EXPECT_EQ(mixed.endpoints[1].state->capacity.load(), 0.45);
  EXPECT_EQ(mixed.endpoints[2].state->capacity.load(), 2.5);
  EXPECT_EQ((*rt)->pools[1]->endpoints[0].engine, EngineKind::kSglang);
  EXPECT_EQ(registry.Get("http://127.0.0.1:9003").get(), mixed.endpoints[2].state.get());
}

TEST(RuntimeTest, ReloadUpdatesCapacityOnlyWhenTheBuildSucceeds) {
  EndpointRegistry registry;
  MetricSlots slots;
  ASSERT_TRUE(BuildRuntime(Parse(kMixed), registry, slots, 1, 0).ok());
  auto state = registry.Get("http://127.0.0.1:9002");
  ASSERT_EQ(state->capacity.load(), 0.45);

  // A reload that changes the accelerator's capacity but then fails to build (an engine the
  // loader would have rejected, so the config is assembled by hand) changes nothing.
  GatewayConfig bad = Parse(kMixed);
  bad.pools[0].accelerators["A100-40GB"] = 0.3;
  bad.pools[1].endpoints[0].engine = "tgi";
  auto failed = BuildRuntime(bad, registry, slots, 2, 0);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("tgi"), std::string::npos);
  EXPECT_EQ(state->capacity.load(), 0.45);

  GatewayConfig good = Parse(kMixed);
  good.pools[0].accelerators["A100-40GB"] = 0.3;
  auto rebuilt = BuildRuntime(good, registry, slots, 3, 0);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  EXPECT_EQ(state->capacity.load(), 0.3);  // the same live state, a new capacity
  EXPECT_EQ((*rebuilt)->pools[0]->endpoints[1].state.get(), state.get());
}

}  // namespace
}  // namespace tokenway

namespace tokenway {
namespace {

TEST(EndpointRegistryPrune, ForgetsOnlyUnreferencedEndpoints) {
  EndpointRegistry registry;
  auto kept = registry.Get("http://10.0.0.1:8000");
  registry.Get("http://10.0.0.2:8000")->requests_total = 5;
  EXPECT_EQ(registry.Prune(), 1u);
  ASSERT_EQ(registry.All().size(), 1u);
  EXPECT_EQ(registry.All()[0].get(), kept.get());
  EXPECT_EQ(registry.Get("http://10.0.0.2:8000")->requests_total.load(), 0u);  // a new state
}

}  // namespace
}  // namespace tokenway
