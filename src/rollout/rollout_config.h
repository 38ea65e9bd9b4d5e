// RolloutConfig: the `rollouts:` section of the configuration — per model alias, a progressive
// rollout of a candidate version against the stable one (weight steps with bake times) and the
// analysis that decides, each tick, whether the candidate may go on — and its YAML loader.
//
// Loaded on the control thread with the rest of the configuration (control/config.cc calls
// LoadRolloutsConfig; it checks the names against the models afterwards); the RolloutController
// (rollout_controller.h) runs it. docs/configuration.md documents each field.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/duration.h"
#include "tokenway/status.h"

namespace tokenway {

class JsonWriter;

// One step of a rollout: the candidate's share of the alias's traffic (percent) and how long it
// bakes there before a passing analysis moves it on. The last step is 100 and has no bake:
// reaching it promotes the candidate.
struct RolloutStep {
  uint32_t weight = 0;  // 1..100, strictly increasing
  Duration bake{0};
};

// What the candidate must show against the stable version over the last `window`. A criterion
// whose limit is 0 is not checked. Each checked criterion needs `min_samples` observations of
// both versions in the window before it can pass; below that the analysis waits.
struct RolloutAnalysisConfig {
  Duration window = std::chrono::minutes(1);
  uint64_t min_samples = 50;
  // candidate p90 <= stable p90 × ratio + slack
  double max_ttft_p90_ratio = 0;
  Duration ttft_p90_slack{0};
  double max_tpot_p90_ratio = 0;
  Duration tpot_p90_slack{0};
  // candidate error rate <= stable error rate + delta (errors: 5xx answers and upstream
  // failures, per request). Checked unless negative.
  double max_error_rate_delta = 0.01;
  // candidate error rate <= this, whatever the stable version does; 0: not checked.
  double max_error_rate = 0;
  // candidate output tokens per request >= stable's × ratio (answers cut short); 0: not checked.
  double min_output_tokens_ratio = 0;
};

struct RolloutConfig {
  std::string model;      // the alias clients send
  std::string candidate;  // version names of that alias
  std::string stable;
  std::vector<RolloutStep> steps;
  RolloutAnalysisConfig analysis;
  // A digest of everything above: a reload that changes it restarts the rollout.
  std::string Definition() const;
};

struct RolloutsConfig {
  // Where the rollouts' state is kept across restarts (JSON, replaced atomically); empty: in
  // memory only (a restart begins every rollout again at its first step).
  std::string state_file;
  Duration tick = std::chrono::seconds(1);  // how often the analysis runs
  std::vector<RolloutConfig> rollouts;
  bool empty() const { return rollouts.empty(); }
};

// `node` is the `rollouts:` mapping; errors name source, line and field.
StatusOr<RolloutsConfig> LoadRolloutsConfig(const YAML::Node& node, const std::string& source);

// The section as /admin/config shows it.
void WriteRolloutsConfigJson(JsonWriter& w, const RolloutsConfig& c);

}  // namespace tokenway
