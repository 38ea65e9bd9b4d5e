// VersionsRolloutBackend: the rollout controller reads a version's figures summed over the
// workers (histogram buckets in the GenAI layouts, +Inf last) and sets the split weights the
// snapshot's versions read; unknown versions read as absent.
#include "control/rollout_versions.h"

#include <gtest/gtest.h>

#include "control/config.h"
#include "control/runtime.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

constexpr const char* kConfig = R"(pools:
  - name: stable-pool
    endpoints: [http://127.0.0.1:9001]
  - name: canary-pool
    endpoints: [http://127.0.0.1:9002]
models:
  - name: chat
    versions:
      - {name: v1, model: chat-v1, pool: stable-pool, weight: 100}
      - {name: v2, model: chat-v2, pool: canary-pool, weight: 0}
)";

TEST(VersionsRolloutBackendTest, ReadsSummedFiguresAndSetsWeights) {
  auto config = ParseConfig(kConfig, "gw.yaml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EndpointRegistry endpoints;
  MetricSlots slots;
  PoolStateRegistry pools;
  auto rt = BuildRuntime(*config, endpoints, slots, 1, 0, &pools);
  ASSERT_TRUE(rt.ok()) << rt.status().message();
  std::shared_ptr<const Runtime> runtime = *rt;
  const RouteVersion* v2 = runtime->FindModel("chat")->FindVersion("v2");
  ASSERT_NE(v2, nullptr);

  WorkerMetrics a, b;
  for (WorkerMetrics* w : {&a, &b}) {
    auto& f = w->versions[v2->metrics_slot];
    f.requests.fetch_add(10);
    f.errors.fetch_add(2);
    f.output_tokens.fetch_add(80);
    f.time_to_first_token.Observe(0.03, kGenAiTtftBuckets, 1e6);  // bucket (0.02, 0.04]
    f.time_to_first_token.Observe(100, kGenAiTtftBuckets, 1e6);   // +Inf
    f.time_per_output_token.Observe(0.02, kGenAiTpotBuckets, 1e6);
  }
  VersionsRolloutBackend backend(pools.versions(), [&] { return runtime; }, {&a, &b});

  VersionFigures f;
  ASSERT_TRUE(backend.ReadFigures("chat", "v2", f));
  EXPECT_EQ(f.requests, 20u);
  EXPECT_EQ(f.errors, 4u);
  EXPECT_EQ(f.output_tokens, 160u);
  ASSERT_EQ(f.ttft.size(), kGenAiTtftBuckets.size() + 1);
  EXPECT_EQ(f.ttft[4], 2u);
  EXPECT_EQ(f.ttft.back(), 2u);
  ASSERT_EQ(f.tpot.size(), kGenAiTpotBuckets.size() + 1);
  EXPECT_EQ(f.tpot[1], 2u);
  EXPECT_EQ(f.ttft_bounds.size(), kGenAiTtftBuckets.size());
  EXPECT_FALSE(backend.ReadFigures("chat", "v3", f));
  EXPECT_FALSE(backend.ReadFigures("other", "v1", f));

  backend.SetWeight("chat", "v2", 25);
  backend.SetWeight("chat", "v1", 75);
  EXPECT_EQ(v2->weight->weight.load(), 25);
  EXPECT_EQ(pools.versions().Weight("chat", "v1"), 75);
  backend.ResetWeight("chat", "v2");
  EXPECT_EQ(v2->weight->weight.load(), 0);  // its configured weight
}

}  // namespace
}  // namespace tokenway
