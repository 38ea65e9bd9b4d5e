#include "rollout/rollout_controller.h"

#include "common/json_writer.h"
#include "common/log.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {

namespace {

int64_t Ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

void WriteSide(JsonWriter& w, uint64_t requests, double error_rate, double ttft, double tpot,
               double output_tokens) {
  auto opt = [&](const char* key, double v) {
    w.Key(key);
    if (v < 0) {
      w.Null();
    } else {
      w.Number(v);
    }
  };
  w.BeginObject();
  w.Key("requests").Uint(requests);
  opt("error_rate", error_rate);
  opt("ttft_p90_seconds", ttft);
  opt("tpot_p90_seconds", tpot);
  opt("output_tokens_per_request", output_tokens);
  w.EndObject();
}

}  // namespace

std::optional<RolloutAction> ParseRolloutAction(std::string_view name) {
  if (name == "pause") return RolloutAction::kPause;
  if (name == "resume") return RolloutAction::kResume;
  if (name == "promote") return RolloutAction::kPromote;
  if (name == "abort") return RolloutAction::kAbort;
  return std::nullopt;
}

void RolloutController::Configure(const RolloutsConfig& config, int64_t now_ms) {
  if (!state_read_ || config.state_file != state_file_) {
    state_file_ = config.state_file;
    state_read_ = true;
    from_file_.clear();
    if (!state_file_.empty()) {
      auto records = ReadRolloutStateFile(state_file_);
      if (!records.ok()) {
        ++state_file_errors_;
        LogError("rollout state file unusable, every rollout begins at its first step: " +
                 records.status().message());
      } else {
        for (RolloutRecord& r : *records) from_file_[r.model] = std::move(r);
      }
    }
  }
  std::map<std::string, Rollout, std::less<>> next;
  for (const RolloutConfig& c : config.rollouts) {
    const std::string definition = c.Definition();
    Rollout r;
    r.config = c;
    auto running = rollouts_.find(c.model);
    auto saved = from_file_.find(c.model);
    if (running != rollouts_.end() && running->second.record.definition == definition) {
      r = std::move(running->second);
      r.config = c;
    } else if (saved != from_file_.end() && saved->second.definition == definition &&
               saved->second.step < c.steps.size()) {
      r.record = std::move(saved->second);
      LogInfo("rollout " + c.model + ": resumed from the state file, " +
              std::string(RolloutPhaseName(r.record.phase)) + " at step " +
              std::to_string(r.record.step + 1) + " (" + std::to_string(r.record.weight) + " %)");
    } else {
      const bool changed = running != rollouts_.end() || saved != from_file_.end();
      if (running != rollouts_.end() && running->second.config.candidate != c.candidate) {
        backend_.ResetWeight(c.model, running->second.config.candidate);
      }
      Begin(r, now_ms, changed ? "definition changed: begun again" : "begun");
    }
    if (saved != from_file_.end()) from_file_.erase(saved);
    next.emplace(c.model, std::move(r));
  }
  for (auto& [model, old] : rollouts_) {
    if (next.count(model)) continue;
    backend_.ResetWeight(model, old.config.candidate);
    backend_.ResetWeight(model, old.config.stable);
    LogInfo("rollout " + model +
            ": removed from the configuration; versions keep their "
            "configured weights");
  }
  rollouts_ = std::move(next);
  for (const auto& [model, r] : rollouts_) ApplyWeights(r);
  Persist();
}

void RolloutController::Begin(Rollout& r, int64_t now_ms, const std::string& reason) {
  r.record = RolloutRecord{};
  r.record.model = r.config.model;
  r.record.definition = r.config.Definition();
  r.record.phase = RolloutPhase::kProgressing;
  r.record.step = 0;
  r.record.weight = r.config.steps.front().weight;
  r.record.step_started_unix_ms = now_ms;
  r.readings.clear();
  r.last.reset();
  RolloutTransition t;
  t.at_unix_ms = now_ms;
  t.from = t.to = RolloutPhase::kProgressing;
  t.step = 0;
  t.weight = r.record.weight;
  t.reason = reason;
  r.record.history.push_back(std::move(t));
  ++counters_[r.config.model].transitions[static_cast<size_t>(RolloutPhase::kProgressing)];
  LogInfo("rollout " + r.config.model + ": " + reason + ", candidate " + r.config.candidate +
          " at " + std::to_string(r.record.weight) + " % (step 1 of " +
          std::to_string(r.config.steps.size()) + ")");
  if (r.config.steps.front().weight == 100) {
    Transition(r, RolloutPhase::kPromoted, 0, now_ms, "single step of 100 %");
  }
}

void RolloutController::Transition(Rollout& r, RolloutPhase to, uint32_t step, int64_t now_ms,
                                   std::string reason) {
  RolloutRecord& rec = r.record;
  const RolloutPhase from = rec.phase;
  if (to == RolloutPhase::kRolledBack || to == RolloutPhase::kAborted) {
    rec.weight = 0;
  } else if (to == RolloutPhase::kPromoted) {
    rec.weight = 100;
    step = static_cast<uint32_t>(r.config.steps.size() - 1);
  } else {
    rec.weight = r.config.steps[step].weight;
  }
  if (to == RolloutPhase::kPaused) {
    rec.baked_ms = now_ms - rec.step_started_unix_ms;  // the bake clock stops
  } else if (to == RolloutPhase::kProgressing && from == RolloutPhase::kPaused &&
             step == rec.step) {
    rec.step_started_unix_ms = now_ms - rec.baked_ms;  // and goes on where it stopped
    rec.baked_ms = 0;
  } else if (step != rec.step) {
    rec.step_started_unix_ms = now_ms;
    rec.baked_ms = 0;
  }
  rec.phase = to;
  rec.step = step;
  RolloutTransition t;
  t.at_unix_ms = now_ms;
  t.from = from;
  t.to = to;
  t.step = step;
  t.weight = rec.weight;
  t.reason = std::move(reason);
  const std::string line =
      "rollout " + r.config.model + ": " + std::string(RolloutPhaseName(from)) + " -> " +
      std::string(RolloutPhaseName(to)) + ", step " + std::to_string(step + 1) + " of " +
      std::to_string(r.config.steps.size()) + ", candidate " + r.config.candidate + " at " +
      std::to_string(rec.weight) + " %: " + t.reason;
  if (to == RolloutPhase::kRolledBack) {
    LogError(line);
  } else {
    LogInfo(line);
  }
  rec.history.push_back(std::move(t));
  if (rec.history.size() > kMaxRolloutHistory) {
    rec.history.erase(rec.history.begin() + 1);  // keep the beginning, drop the oldest after it
  }
  ++counters_[r.config.model].transitions[static_cast<size_t>(to)];
  ApplyWeights(r);
  Persist();
}

void RolloutController::ApplyWeights(const Rollout& r) {
  backend_.SetWeight(r.config.model, r.config.candidate, r.record.weight);
  backend_.SetWeight(r.config.model, r.config.stable, 100 - r.record.weight);
}

void RolloutController::Persist() {
  if (state_file_.empty()) return;
  std::vector<RolloutRecord> records;
  records.reserve(rollouts_.size());
  for (const auto& [model, r] : rollouts_) records.push_back(r.record);
  Status st = WriteRolloutStateFile(state_file_, records);
  if (!st.ok()) {
    ++state_file_errors_;
    LogError("rollout state not saved: " + st.message());
  }
}

void RolloutController::Tick(int64_t now_ms) {
  for (auto& [model, r] : rollouts_) TickOne(r, now_ms);
}

void RolloutController::TickOne(Rollout& r, int64_t now_ms) {
  ApplyWeights(r);  // idempotent; covers weights a reload of the versions may have reset
  if (Finished(r.record.phase)) return;
  Reading reading;
  reading.at_ms = now_ms;
  const bool have = backend_.ReadFigures(r.config.model, r.config.candidate, reading.candidate) &&
                    backend_.ReadFigures(r.config.model, r.config.stable, reading.stable);
  if (!have) {
    r.last.reset();
    r.readings.clear();
    return;
  }
  r.readings.push_back(std::move(reading));
  // Keep one reading at or before the window's start as the base of the deltas.
  const int64_t start = now_ms - Ms(r.config.analysis.window);
  while (r.readings.size() > 2 && r.readings[1].at_ms <= start) r.readings.pop_front();
  const Reading& base = r.readings.front();
  const Reading& last = r.readings.back();
  AnalysisResult result;
  if (r.readings.size() < 2) {
    result.verdict = Verdict::kWait;
    result.reason = "first reading";
  } else {
    result = Analyse(r.config.analysis, FiguresDelta(last.candidate, base.candidate),
                     FiguresDelta(last.stable, base.stable));
  }
  ++counters_[r.config.model].verdicts[static_cast<size_t>(result.verdict)];
  r.last = result;
  r.last_at_ms = now_ms;
  if (result.verdict == Verdict::kFail) {
    Transition(r, RolloutPhase::kRolledBack, r.record.step, now_ms,
               "analysis failed: " + result.reason);
    return;
  }
  if (r.record.phase != RolloutPhase::kProgressing) return;  // paused: analysis only
  const RolloutStep& step = r.config.steps[r.record.step];
  if (now_ms - r.record.step_started_unix_ms < Ms(step.bake)) return;
  if (result.verdict != Verdict::kPass) return;
  const uint32_t next = r.record.step + 1;
  if (r.config.steps[next].weight == 100) {
    Transition(r, RolloutPhase::kPromoted, next, now_ms, "analysis passed at the last step");
  } else {
    Transition(r, RolloutPhase::kProgressing, next, now_ms, "analysis passed");
  }
}

RolloutActionResult RolloutController::Act(std::string_view model, RolloutAction action,
                                           int64_t now_ms) {
  RolloutActionResult result = Apply(model, action, now_ms);
  const size_t outcome = result.http_status == 200 ? 0 : result.http_status == 404 ? 1 : 2;
  ++actions_[static_cast<size_t>(action)][outcome];
  return result;
}

RolloutActionResult RolloutController::Apply(std::string_view model, RolloutAction action,
                                             int64_t now_ms) {
  auto it = rollouts_.find(model);
  if (it == rollouts_.end()) {
    return {404, "no rollout for model '" + std::string(model) + "'"};
  }
  Rollout& r = it->second;
  const RolloutPhase phase = r.record.phase;
  auto refuse = [&](const char* what) {
    return RolloutActionResult{409, std::string("cannot ") + what + " a rollout that is " +
                                        std::string(RolloutPhaseName(phase))};
  };
  switch (action) {
    case RolloutAction::kPause:
      if (phase != RolloutPhase::kProgressing) return refuse("pause");
      Transition(r, RolloutPhase::kPaused, r.record.step, now_ms, "manual pause");
      break;
    case RolloutAction::kResume:
      if (phase != RolloutPhase::kPaused) return refuse("resume");
      Transition(r, RolloutPhase::kProgressing, r.record.step, now_ms, "manual resume");
      break;
    case RolloutAction::kPromote:
      if (phase == RolloutPhase::kPromoted) return refuse("promote");
      Transition(r, RolloutPhase::kPromoted, r.record.step, now_ms, "manual promote");
      break;
    case RolloutAction::kAbort:
      if (Finished(phase)) return refuse("abort");
      Transition(r, RolloutPhase::kAborted, r.record.step, now_ms, "manual abort");
      break;
  }
  return {200, std::string(RolloutPhaseName(r.record.phase))};
}

const RolloutRecord* RolloutController::Find(std::string_view model) const {
  auto it = rollouts_.find(model);
  return it == rollouts_.end() ? nullptr : &it->second.record;
}

std::optional<AnalysisResult> RolloutController::LastAnalysis(std::string_view model) const {
  auto it = rollouts_.find(model);
  if (it == rollouts_.end()) return std::nullopt;
  return it->second.last;
}

void RolloutController::WriteStatusJson(JsonWriter& w, int64_t now_ms) const {
  w.BeginObject();
  w.Key("state_file");
  if (state_file_.empty()) {
    w.Null();
  } else {
    w.String(state_file_);
  }
  w.Key("state_file_errors").Uint(state_file_errors_);
  w.Key("rollouts").BeginArray();
  for (const auto& [model, r] : rollouts_) {
    const RolloutRecord& rec = r.record;
    const RolloutStep& step = r.config.steps[rec.step];
    w.BeginObject();
    w.Key("model").String(model);
    w.Key("candidate").String(r.config.candidate);
    w.Key("stable").String(r.config.stable);
    w.Key("state").String(RolloutPhaseName(rec.phase));
    w.Key("step").Uint(rec.step + 1);
    w.Key("steps").Uint(r.config.steps.size());
    w.Key("weights").BeginObject();
    w.Key(r.config.candidate).Uint(rec.weight);
    w.Key(r.config.stable).Uint(100 - rec.weight);
    w.EndObject();
    w.Key("bake_seconds").Number(static_cast<double>(Ms(step.bake)) / 1000.0);
    int64_t baked = 0;
    if (rec.phase == RolloutPhase::kProgressing) baked = now_ms - rec.step_started_unix_ms;
    if (rec.phase == RolloutPhase::kPaused) baked = rec.baked_ms;
    w.Key("baked_seconds").Double(static_cast<double>(std::max<int64_t>(baked, 0)) / 1000.0);
    w.Key("analysis");
    if (!r.last) {
      w.Null();
    } else {
      const AnalysisResult& a = *r.last;
      w.BeginObject();
      w.Key("at_unix_ms").Int(r.last_at_ms);
      w.Key("window_seconds").Number(static_cast<double>(Ms(r.config.analysis.window)) / 1000.0);
      w.Key("verdict").String(VerdictName(a.verdict));
      w.Key("reason").String(a.reason);
      w.Key("candidate");
      WriteSide(w, a.candidate_requests, a.candidate_error_rate, a.candidate_ttft_p90,
                a.candidate_tpot_p90, a.candidate_output_tokens);
      w.Key("stable");
      WriteSide(w, a.stable_requests, a.stable_error_rate, a.stable_ttft_p90, a.stable_tpot_p90,
                a.stable_output_tokens);
      w.EndObject();
    }
    w.Key("history").BeginArray();
    for (const RolloutTransition& t : rec.history) {
      w.BeginObject();
      w.Key("at_unix_ms").Int(t.at_unix_ms);
      w.Key("from").String(RolloutPhaseName(t.from));
      w.Key("to").String(RolloutPhaseName(t.to));
      w.Key("step").Uint(t.step + 1);
      w.Key("weight").Uint(t.weight);
      w.Key("reason").String(t.reason);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void RolloutController::RenderMetrics(PrometheusText& t) const {
  t.Family("tokenway_rollout_weight", "gauge",
           "Share of the model's traffic a rollout gives each of its versions, percent.");
  for (const auto& [model, r] : rollouts_) {
    t.Sample("tokenway_rollout_weight", {{"model", model}, {"version", r.config.candidate}},
             static_cast<double>(r.record.weight));
    t.Sample("tokenway_rollout_weight", {{"model", model}, {"version", r.config.stable}},
             static_cast<double>(100 - r.record.weight));
  }
  t.Family("tokenway_rollout_state", "gauge",
           "1 for the state each rollout is in (progressing, paused, promoted, rolled_back, "
           "aborted), else 0.");
  for (const auto& [model, r] : rollouts_) {
    for (size_t p = 0; p < kRolloutPhases; ++p) {
      const auto phase = static_cast<RolloutPhase>(p);
      t.Sample("tokenway_rollout_state", {{"model", model}, {"state", RolloutPhaseName(phase)}},
               r.record.phase == phase ? 1.0 : 0.0);
    }
  }
  t.Family("tokenway_rollout_step", "gauge", "The step each rollout is at (1-based).");
  for (const auto& [model, r] : rollouts_) {
    t.Sample("tokenway_rollout_step", {{"model", model}}, static_cast<double>(r.record.step + 1));
  }
  t.Family("tokenway_rollout_transitions_total", "counter",
           "Rollout transitions, by the state entered (progressing counts starts and steps).");
  for (const auto& [model, c] : counters_) {
    for (size_t p = 0; p < kRolloutPhases; ++p) {
      t.Sample("tokenway_rollout_transitions_total",
               {{"model", model}, {"state", RolloutPhaseName(static_cast<RolloutPhase>(p))}},
               c.transitions[p]);
    }
  }
  t.Family("tokenway_rollout_analyses_total", "counter",
           "Rollout analysis rounds, by verdict (wait: too few samples).");
  for (const auto& [model, c] : counters_) {
    for (size_t v = 0; v < c.verdicts.size(); ++v) {
      t.Sample("tokenway_rollout_analyses_total",
               {{"model", model}, {"verdict", VerdictName(static_cast<Verdict>(v))}},
               c.verdicts[v]);
    }
  }
  t.Family("tokenway_rollout_actions_total", "counter",
           "Manual rollout actions on the admin listener, by action and result (ok, not_found, "
           "conflict; action invalid: an unknown action or a malformed path).");
  static constexpr std::string_view kActions[] = {"pause", "resume", "promote", "abort"};
  static constexpr std::string_view kResults[] = {"ok", "not_found", "conflict"};
  for (size_t a = 0; a < actions_.size(); ++a) {
    for (size_t r = 0; r < actions_[a].size(); ++r) {
      t.Sample("tokenway_rollout_actions_total", {{"action", kActions[a]}, {"result", kResults[r]}},
               actions_[a][r]);
    }
  }
  t.Sample("tokenway_rollout_actions_total", {{"action", "invalid"}, {"result", "not_found"}},
           invalid_actions_);
  t.Family("tokenway_rollout_state_file_errors_total", "counter",
           "Rollout state file reads or writes that failed.");
  t.Sample("tokenway_rollout_state_file_errors_total", {}, state_file_errors_);
}

}  // namespace tokenway
