// Model versions (models[].versions, sticky, response_model, shadow): the YAML walk and its
// errors, ValidateConfig for configurations built in code, the snapshot's routes and weight
// cells (a run-time weight survives a rebuild), and the per-version figures summed over workers.
#include <gtest/gtest.h>

#include <string>

#include "control/config.h"
#include "control/runtime.h"
#include "telemetry/metrics.h"

namespace tokenway {
namespace {

constexpr const char* kPools = R"(pools:
  - name: stable-pool
    endpoints: [http://127.0.0.1:9001]
  - name: canary-pool
    endpoints: [http://127.0.0.1:9002]
)";

std::string WithModels(const std::string& models) {
  return std::string(kPools) + "models:\n" + models;
}

constexpr const char* kVersions = R"(  - name: chat
    versions:
      - {name: v1, model: chat-v1, pool: stable-pool, weight: 90}
      - name: v2
        model: chat-v2
        pool: canary-pool
        weight: 10
        match: {headers: {X-Canary: "yes"}, tenants: [testers]}
    sticky: {by: {header: x-session}}
    response_model: version
    shadow: {version: v2, percent: 25, max_concurrency: 4}
  - {name: plain, pool: stable-pool}
)";

std::string ErrorOf(const std::string& models) {
  auto r = ParseConfig(WithModels(models), "gw.yaml");
  return r.ok() ? "" : r.status().message();
}

TEST(ModelVersionsConfigTest, ParsesEveryField) {
  auto r = ParseConfig(WithModels(kVersions), "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelConfig& m = r->models[0];
  EXPECT_EQ(m.pool, "stable-pool");  // the first version's when the alias names none
  ASSERT_EQ(m.versions.size(), 2u);
  EXPECT_EQ(m.versions[0].model, "chat-v1");
  EXPECT_EQ(m.versions[1].pool, "canary-pool");
  EXPECT_EQ(m.versions[1].weight, 10);
  EXPECT_EQ(m.versions[1].match.headers.at("x-canary"), "yes");  // names lower-cased
  ASSERT_EQ(m.versions[1].match.tenants.size(), 1u);
  EXPECT_EQ(m.sticky.by, StickyBy::kHeader);
  EXPECT_EQ(m.sticky.header, "x-session");
  EXPECT_EQ(m.response_model, ResponseModel::kVersion);
  EXPECT_EQ(m.shadow.version, "v2");
  EXPECT_EQ(m.shadow.percent, 25);
  EXPECT_EQ(m.shadow.max_concurrency, 4u);
  EXPECT_TRUE(r->models[1].versions.empty());
  EXPECT_EQ(r->models[1].response_model, ResponseModel::kAlias);
}

TEST(ModelVersionsConfigTest, VersionModelDefaultsToItsName) {
  auto r = ParseConfig(WithModels("  - name: m\n    versions: [{name: m-2, pool: stable-pool, "
                                  "weight: 1}]\n"),
                       "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->models[0].versions[0].model, "m-2");
  EXPECT_EQ(r->models[0].sticky.by, StickyBy::kUser);
}

TEST(ModelVersionsConfigTest, RejectsBadVersions) {
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: -1}]\n")
                .find("weight"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 0}]\n")
                .find("add up to more than 0"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: nope, weight: 1}]\n")
                .find("no pool named 'nope'"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 1}, "
                    "{name: a, pool: canary-pool, weight: 1}]\n")
                .find("defined twice"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: []\n").find("non-empty list"), std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 1}]\n"
                    "    shadow: {version: b, percent: 5}\n")
                .find("no version named 'b'"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 1}]\n"
                    "    shadow: {version: a, percent: 101}\n")
                .find("between 0 and 100"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 1}]\n"
                    "    sticky: {by: cookie}\n")
                .find("must be user, tenant or {header: <name>}"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 1}]\n"
                    "    response_model: upstream\n")
                .find("alias or version"),
            std::string::npos);
  EXPECT_NE(ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: 1, "
                    "colour: red}]\n")
                .find("colour"),
            std::string::npos);
  // The field path and line are in the message.
  const std::string e =
      ErrorOf("  - name: m\n    versions: [{name: a, pool: stable-pool, weight: x}]\n");
  EXPECT_NE(e.find("models[0].versions[0].weight"), std::string::npos) << e;
  EXPECT_NE(e.find("gw.yaml"), std::string::npos) << e;
}

TEST(ModelVersionsConfigTest, ValidateCatchesConfigurationsBuiltInCode) {
  auto r = ParseConfig(WithModels(kVersions), "gw.yaml");
  ASSERT_TRUE(r.ok());
  GatewayConfig c = *r;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.models[0].versions[1].pool = "missing";
  EXPECT_NE(ValidateConfig(c).message().find("unknown pool 'missing'"), std::string::npos);
  c = *r;
  c.models[0].versions[0].weight = 0;
  c.models[0].versions[1].weight = 0;
  EXPECT_NE(ValidateConfig(c).message().find("add up to more than 0"), std::string::npos);
  c = *r;
  c.models[0].versions[1].name = "v1";
  EXPECT_NE(ValidateConfig(c).message().find("defined twice"), std::string::npos);
  c = *r;
  c.models[0].shadow.version = "v9";
  EXPECT_NE(ValidateConfig(c).message().find("not one of its versions"), std::string::npos);
}

TEST(ModelVersionsRuntimeTest, RoutesVersionsAndKeepsRunTimeWeightsAcrossRebuilds) {
  auto r = ParseConfig(WithModels(kVersions), "gw.yaml");
  ASSERT_TRUE(r.ok());
  EndpointRegistry endpoints;
  MetricSlots slots;
  PoolStateRegistry pools;
  auto rt = BuildRuntime(*r, endpoints, slots, 1, 0, &pools);
  ASSERT_TRUE(rt.ok()) << rt.status().message();
  const ModelRoute* chat = (*rt)->FindModel("chat");
  ASSERT_NE(chat, nullptr);
  ASSERT_EQ(chat->versions.size(), 2u);
  EXPECT_EQ(chat->versions[1].pool->name, "canary-pool");
  EXPECT_EQ(chat->versions[1].model, "chat-v2");
  EXPECT_EQ(chat->shadow, 1);
  EXPECT_EQ(chat->shadow_percent, 25);
  EXPECT_NE(chat->versions[0].metrics_slot, chat->versions[1].metrics_slot);
  EXPECT_NE(chat->versions[0].metrics_slot, kNoSlot);
  // Versions are not models of their own: /v1/models lists the aliases.
  EXPECT_EQ((*rt)->FindModel("chat-v2"), nullptr);
  EXPECT_NE((*rt)->models_json.find("\"chat\""), std::string::npos);
  EXPECT_EQ((*rt)->models_json.find("chat-v2"), std::string::npos);

  ASSERT_TRUE(pools.versions().Set("chat", "v2", 50));
  EXPECT_EQ(chat->versions[1].weight->weight.load(), 50);  // workers see it at once
  auto rebuilt = BuildRuntime(*r, endpoints, slots, 2, 0, &pools);
  ASSERT_TRUE(rebuilt.ok());
  const ModelRoute* again = (*rebuilt)->FindModel("chat");
  EXPECT_EQ(again->versions[1].weight->weight.load(), 50);
  EXPECT_EQ(again->versions[0].weight->weight.load(), 90);
  EXPECT_EQ(again->versions[1].metrics_slot, chat->versions[1].metrics_slot);
}

TEST(ModelVersionsMetricsTest, SumVersionAddsWorkersAndSeparatesShadowCopies) {
  WorkerMetrics a, b;
  RequestSample s;
  s.model_slot = 1;
  s.pool_slot = 1;
  s.version_slot = 3;
  s.status = 200;
  s.stream = true;
  s.seconds = 1.0;
  s.first_byte = 0.1;
  s.prompt_tokens = 10;
  s.completion_tokens = 10;
  a.CountRequest(s);
  b.CountRequest(s);
  s.status = 502;
  b.CountRequest(s);
  s.status = 200;
  a.CountVersion(s, true);
  a.Count(3, ShadowOutcome::kSkippedConcurrency);
  std::vector<const WorkerMetrics*> workers = {&a, &b};
  VersionTotals t = SumVersion(workers, 3);
  EXPECT_EQ(t.requests, 3u);
  EXPECT_EQ(t.errors, 1u);
  EXPECT_EQ(t.output_tokens, 20u);
  EXPECT_EQ(t.input_tokens, 20u);
  EXPECT_EQ(t.time_to_first_token.count, 2u);
  EXPECT_EQ(t.time_per_output_token.count, 2u);
  EXPECT_NEAR(t.time_per_output_token.sum, 0.2, 1e-6);  // (1.0 - 0.1) / 9 each
  EXPECT_GT(t.time_to_first_token.Quantile(0.9, kGenAiTtftBuckets), 0.08);
  EXPECT_LE(t.time_to_first_token.Quantile(0.9, kGenAiTtftBuckets), 0.1);
  EXPECT_EQ(t.shadow[static_cast<size_t>(ShadowOutcome::kCompleted)], 1u);
  EXPECT_EQ(t.shadow[static_cast<size_t>(ShadowOutcome::kSkippedConcurrency)], 1u);
  EXPECT_EQ(t.shadow_time_to_first_token.count, 1u);
  EXPECT_EQ(SumVersion(workers, 4).requests, 0u);
  const VersionTotals earlier = t;
  a.CountRequest(s);
  EXPECT_EQ(SumVersion(workers, 3).Minus(earlier).requests, 1u);
}

}  // namespace
}  // namespace tokenway
