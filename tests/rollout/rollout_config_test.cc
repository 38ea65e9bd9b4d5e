#include "rollout/rollout_config.h"

#include <gtest/gtest.h>

namespace tokenway {
namespace {

StatusOr<RolloutsConfig> Load(const std::string& yaml) {
  return LoadRolloutsConfig(YAML::Load(yaml), "gw.yaml");
}

const char* kGood = R"(
state_file: /tmp/rollouts.json
tick: 500ms
models:
  - model: chat
    candidate: v2
    stable: v1
    steps: [{weight: 1, bake: 5m}, {weight: 25, bake: 10m}, {weight: 100}]
    analysis: {window: 1m, min_samples: 20, max_ttft_p90_ratio: 1.2, ttft_p90_slack: 50ms,
               max_tpot_p90_ratio: 1.5, max_error_rate_delta: 0.02, max_error_rate: 0.1}
)";

TEST(RolloutConfig, LoadsEveryField) {
  auto c = Load(kGood);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->state_file, "/tmp/rollouts.json");
  EXPECT_EQ(c->tick, std::chrono::milliseconds(500));
  ASSERT_EQ(c->rollouts.size(), 1u);
  const RolloutConfig& r = c->rollouts[0];
  EXPECT_EQ(r.model, "chat");
  EXPECT_EQ(r.candidate, "v2");
  EXPECT_EQ(r.stable, "v1");
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.steps[0].weight, 1u);
  EXPECT_EQ(r.steps[0].bake, std::chrono::minutes(5));
  EXPECT_EQ(r.steps[2].weight, 100u);
  EXPECT_EQ(r.analysis.window, std::chrono::minutes(1));
  EXPECT_EQ(r.analysis.min_samples, 20u);
  EXPECT_DOUBLE_EQ(r.analysis.max_ttft_p90_ratio, 1.2);
  EXPECT_EQ(r.analysis.ttft_p90_slack, std::chrono::milliseconds(50));
  EXPECT_DOUBLE_EQ(r.analysis.max_tpot_p90_ratio, 1.5);
  EXPECT_DOUBLE_EQ(r.analysis.max_error_rate_delta, 0.02);
  EXPECT_DOUBLE_EQ(r.analysis.max_error_rate, 0.1);
}

TEST(RolloutConfig, DefinitionChangesWithTheDefinitionOnly) {
  auto a = Load(kGood);
  auto b = Load(kGood);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->rollouts[0].Definition(), b->rollouts[0].Definition());
  b->rollouts[0].steps[1].bake += std::chrono::seconds(1);
  EXPECT_NE(a->rollouts[0].Definition(), b->rollouts[0].Definition());
  b = Load(kGood);
  b->rollouts[0].analysis.min_samples = 21;
  EXPECT_NE(a->rollouts[0].Definition(), b->rollouts[0].Definition());
}

struct BadCase {
  const char* yaml;
  const char* message;
};

TEST(RolloutConfig, RejectsBadDefinitionsNamingTheField) {
  const BadCase cases[] = {
      {"models: [{model: m, candidate: a, stable: a, steps: [{weight: 100}]}]",
       "rollouts.models[0].candidate: must differ from stable"},
      {"models: [{model: m, candidate: a, stable: b, steps: []}]",
       "rollouts.models[0].steps: must be a non-empty list"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 5, bake: 1m}]}]",
       "the last step must be 100"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 5}, {weight: 100}]}]",
       "steps[0].bake: is required"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 5, bake: 1m}, {weight: "
       "5, bake: 1m}, {weight: 100}]}]",
       "must be larger than the previous step's"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 101}]}]",
       "must be between 1 and 100"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 100, bake: 1m}]}]",
       "has no bake"},
      {"models: [{model: m, stable: b, steps: [{weight: 100}]}]",
       "rollouts.models[0].candidate: is required"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 100}], analysis: "
       "{max_ttft_p90_ratio: fast}}]",
       "analysis.max_ttft_p90_ratio: must be a number"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 100}], analysis: "
       "{ttft_p90_slack: 10ms}}]",
       "needs max_ttft_p90_ratio"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 100}], analysis: "
       "{min_samples: 0}}]",
       "min_samples: must be between 1"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 100}], analysis: "
       "{windw: 1m}}]",
       "windw"},
      {"models: [{model: m, candidate: a, stable: b, steps: [{weight: 100}]}, {model: m, "
       "candidate: a, stable: b, steps: [{weight: 100}]}]",
       "model 'm' has two rollouts"},
      {"statefile: x", "statefile"},
  };
  for (const BadCase& c : cases) {
    auto r = Load(c.yaml);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.yaml << " -> " << r.status().message();
    EXPECT_NE(r.status().message().find("gw.yaml:"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace tokenway
