#include "rollout/rollout_config.h"

#include <xxhash.h>

#include <charconv>
#include <set>

#include "common/json_writer.h"
#include "common/yaml_fields.h"

namespace tokenway {

namespace {

class RolloutsLoader : public YamlFields {
 public:
  using YamlFields::YamlFields;

  RolloutsConfig Load(const YAML::Node& node) {
    RolloutsConfig c;
    if (!node.IsMap()) Fail(node, "rollouts", "must be a mapping");
    ExpectMap(node, "rollouts", {"state_file", "tick", "models"});
    if (auto n = node["state_file"]) c.state_file = String(n, "rollouts.state_file");
    if (auto n = node["tick"]) c.tick = Dur(n, "rollouts.tick");
    if (auto n = node["models"]) {
      if (!n.IsSequence()) Fail(n, "rollouts.models", "must be a list");
      std::set<std::string> seen;
      for (size_t i = 0; i < n.size(); ++i) {
        const std::string field = "rollouts.models[" + std::to_string(i) + "]";
        RolloutConfig r = Rollout(n[i], field);
        if (!seen.insert(r.model).second) {
          Fail(n[i], field + ".model", "model '" + r.model + "' has two rollouts");
        }
        c.rollouts.push_back(std::move(r));
      }
    }
    return c;
  }

 private:
  double Number(const YAML::Node& node, const std::string& field, double min, double max) const {
    if (!node.IsScalar()) Fail(node, field, "must be a number");
    const std::string& s = node.Scalar();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size()) {
      Fail(node, field, "must be a number, got '" + s + "'");
    }
    if (!(v >= min && v <= max)) {
      Fail(node, field, "must be between " + FormatNumber(min) + " and " + FormatNumber(max));
    }
    return v;
  }
  static std::string FormatNumber(double v) {
    std::string s;
    AppendJsonNumber(s, v);
    return s;
  }
  // A duration that may be zero ("0" or "0s"), for slack.
  Duration Slack(const YAML::Node& node, const std::string& field) const {
    if (node.IsScalar() && (node.Scalar() == "0" || node.Scalar() == "0s")) return Duration{0};
    return Dur(node, field);
  }

  RolloutConfig Rollout(const YAML::Node& node, const std::string& field) const {
    if (!node.IsMap()) Fail(node, field, "must be a mapping");
    ExpectMap(node, field, {"model", "candidate", "stable", "steps", "analysis"});
    RolloutConfig r;
    for (const char* key : {"model", "candidate", "stable", "steps"}) {
      if (!node[key]) Fail(node, Join(field, key), "is required");
    }
    r.model = String(node["model"], Join(field, "model"));
    r.candidate = String(node["candidate"], Join(field, "candidate"));
    r.stable = String(node["stable"], Join(field, "stable"));
    if (r.model.empty()) Fail(node["model"], Join(field, "model"), "must not be empty");
    if (r.candidate.empty()) Fail(node["candidate"], Join(field, "candidate"), "must not be empty");
    if (r.stable.empty()) Fail(node["stable"], Join(field, "stable"), "must not be empty");
    if (r.candidate == r.stable) {
      Fail(node["candidate"], Join(field, "candidate"), "must differ from stable");
    }
    const YAML::Node steps = node["steps"];
    const std::string steps_field = Join(field, "steps");
    if (!steps.IsSequence() || steps.size() == 0) {
      Fail(steps, steps_field, "must be a non-empty list");
    }
    for (size_t i = 0; i < steps.size(); ++i) {
      const std::string sf = steps_field + "[" + std::to_string(i) + "]";
      const YAML::Node s = steps[i];
      if (!s.IsMap()) Fail(s, sf, "must be a mapping");
      ExpectMap(s, sf, {"weight", "bake"});
      if (!s["weight"]) Fail(s, Join(sf, "weight"), "is required");
      RolloutStep step;
      step.weight = Integer<uint32_t>(s["weight"], Join(sf, "weight"), 1, 100);
      if (!r.steps.empty() && step.weight <= r.steps.back().weight) {
        Fail(s["weight"], Join(sf, "weight"), "must be larger than the previous step's");
      }
      const bool last = i + 1 == steps.size();
      if (last && step.weight != 100) {
        Fail(s["weight"], Join(sf, "weight"), "the last step must be 100 (promotion)");
      }
      if (!last) {
        if (!s["bake"]) Fail(s, Join(sf, "bake"), "is required on every step but the last");
        step.bake = Dur(s["bake"], Join(sf, "bake"));
      } else if (s["bake"]) {
        Fail(s["bake"], Join(sf, "bake"), "the last step promotes at once and has no bake");
      }
      r.steps.push_back(step);
    }
    if (auto a = node["analysis"]) r.analysis = Analysis(a, Join(field, "analysis"));
    return r;
  }

  RolloutAnalysisConfig Analysis(const YAML::Node& node, const std::string& field) const {
    if (!node.IsMap()) Fail(node, field, "must be a mapping");
    ExpectMap(
        node, field,
        {"window", "min_samples", "max_ttft_p90_ratio", "ttft_p90_slack", "max_tpot_p90_ratio",
         "tpot_p90_slack", "max_error_rate_delta", "max_error_rate", "min_output_tokens_ratio"});
    RolloutAnalysisConfig a;
    if (auto n = node["window"]) a.window = Dur(n, Join(field, "window"));
    if (auto n = node["min_samples"]) {
      a.min_samples = Integer<uint64_t>(n, Join(field, "min_samples"), 1, 1000000000);
    }
    if (auto n = node["max_ttft_p90_ratio"]) {
      a.max_ttft_p90_ratio = Number(n, Join(field, "max_ttft_p90_ratio"), 0, 1000);
    }
    if (auto n = node["ttft_p90_slack"]) a.ttft_p90_slack = Slack(n, Join(field, "ttft_p90_slack"));
    if (auto n = node["max_tpot_p90_ratio"]) {
      a.max_tpot_p90_ratio = Number(n, Join(field, "max_tpot_p90_ratio"), 0, 1000);
    }
    if (auto n = node["tpot_p90_slack"]) a.tpot_p90_slack = Slack(n, Join(field, "tpot_p90_slack"));
    if (auto n = node["max_error_rate_delta"]) {
      a.max_error_rate_delta = Number(n, Join(field, "max_error_rate_delta"), -1, 1);
    }
    if (auto n = node["max_error_rate"]) {
      a.max_error_rate = Number(n, Join(field, "max_error_rate"), 0, 1);
    }
    if (auto n = node["min_output_tokens_ratio"]) {
      a.min_output_tokens_ratio = Number(n, Join(field, "min_output_tokens_ratio"), 0, 1);
    }
    if (a.ttft_p90_slack.count() > 0 && a.max_ttft_p90_ratio == 0) {
      Fail(node["ttft_p90_slack"], Join(field, "ttft_p90_slack"),
           "needs max_ttft_p90_ratio (the slack is added to the ratio's limit)");
    }
    if (a.tpot_p90_slack.count() > 0 && a.max_tpot_p90_ratio == 0) {
      Fail(node["tpot_p90_slack"], Join(field, "tpot_p90_slack"),
           "needs max_tpot_p90_ratio (the slack is added to the ratio's limit)");
    }
    return a;
  }
};

void WriteAnalysisJson(JsonWriter& w, const RolloutAnalysisConfig& a) {
  w.BeginObject();
  w.Key("window").String(FormatDuration(a.window));
  w.Key("min_samples").Uint(a.min_samples);
  w.Key("max_ttft_p90_ratio").Number(a.max_ttft_p90_ratio);
  w.Key("ttft_p90_slack").String(FormatDuration(a.ttft_p90_slack));
  w.Key("max_tpot_p90_ratio").Number(a.max_tpot_p90_ratio);
  w.Key("tpot_p90_slack").String(FormatDuration(a.tpot_p90_slack));
  w.Key("max_error_rate_delta").Number(a.max_error_rate_delta);
  w.Key("max_error_rate").Number(a.max_error_rate);
  w.Key("min_output_tokens_ratio").Number(a.min_output_tokens_ratio);
  w.EndObject();
}

void WriteRolloutJson(JsonWriter& w, const RolloutConfig& r) {
  w.BeginObject();
  w.Key("model").String(r.model);
  w.Key("candidate").String(r.candidate);
  w.Key("stable").String(r.stable);
  w.Key("steps").BeginArray();
  for (const RolloutStep& s : r.steps) {
    w.BeginObject().Key("weight").Uint(s.weight);
    if (s.bake.count() > 0) w.Key("bake").String(FormatDuration(s.bake));
    w.EndObject();
  }
  w.EndArray();
  w.Key("analysis");
  WriteAnalysisJson(w, r.analysis);
  w.EndObject();
}

}  // namespace

std::string RolloutConfig::Definition() const {
  std::string text;
  JsonWriter w(text);
  WriteRolloutJson(w, *this);
  // Durations at full precision too: FormatDuration may round.
  for (const RolloutStep& s : steps) text += "," + std::to_string(s.bake.count());
  text += "," + std::to_string(analysis.window.count()) + "," +
          std::to_string(analysis.ttft_p90_slack.count()) + "," +
          std::to_string(analysis.tpot_p90_slack.count());
  char hex[17];
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t h = XXH3_64bits(text.data(), text.size());
  for (int i = 15; i >= 0; --i, h >>= 4) hex[i] = kHex[h & 0xF];
  hex[16] = '\0';
  return hex;
}

StatusOr<RolloutsConfig> LoadRolloutsConfig(const YAML::Node& node, const std::string& source) {
  try {
    return RolloutsLoader(source).Load(node);
  } catch (const YamlFieldError& e) {
    return Status::Error(e.message);
  }
}

void WriteRolloutsConfigJson(JsonWriter& w, const RolloutsConfig& c) {
  w.BeginObject();
  w.Key("state_file").String(c.state_file);
  w.Key("tick").String(FormatDuration(c.tick));
  w.Key("models").BeginArray();
  for (const RolloutConfig& r : c.rollouts) WriteRolloutJson(w, r);
  w.EndArray();
  w.EndObject();
}

}  // namespace tokenway
