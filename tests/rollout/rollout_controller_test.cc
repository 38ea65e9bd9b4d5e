#include "rollout/rollout_controller.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>

#include "common/json_writer.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {
namespace {

constexpr std::array<double, 4> kBounds = {0.1, 0.2, 0.5, 1.0};

// The versions' side as the controller sees it: cumulative figures that the test feeds, and the
// weights the controller sets.
class FakeBackend : public RolloutBackend {
 public:
  bool ReadFigures(std::string_view model, std::string_view version, VersionFigures& out) override {
    auto it = figures.find(Key(model, version));
    if (it == figures.end()) return false;
    out = it->second;
    return true;
  }
  void SetWeight(std::string_view model, std::string_view version, uint32_t percent) override {
    weights[Key(model, version)] = static_cast<int>(percent);
  }
  void ResetWeight(std::string_view model, std::string_view version) override {
    weights[Key(model, version)] = -1;
  }
  // `n` more requests of which `errors` failed, latencies in bucket `bucket`.
  void Serve(const std::string& version, uint64_t n, uint64_t errors, size_t bucket = 1) {
    VersionFigures& f = figures[Key("chat", version)];
    f.ttft_bounds = f.tpot_bounds = kBounds;
    f.ttft.resize(kBounds.size() + 1);
    f.tpot.resize(kBounds.size() + 1);
    f.requests += n;
    f.errors += errors;
    f.output_tokens += (n - errors) * 10;
    f.ttft[bucket] += n - errors;
    f.tpot[bucket] += n - errors;
  }
  int Weight(const std::string& version) {
    auto it = weights.find(Key("chat", version));
    return it == weights.end() ? -2 : it->second;
  }
  static std::string Key(std::string_view m, std::string_view v) {
    return std::string(m) + "/" + std::string(v);
  }
  std::map<std::string, VersionFigures> figures;
  std::map<std::string, int> weights;
};

constexpr int64_t kSecond = 1000;
constexpr int64_t kStart = 1'700'000'000'000;

RolloutsConfig Config(const std::string& state_file = "") {
  RolloutsConfig c;
  c.state_file = state_file;
  RolloutConfig r;
  r.model = "chat";
  r.candidate = "v2";
  r.stable = "v1";
  r.steps = {{5, std::chrono::seconds(10)},
             {25, std::chrono::seconds(10)},
             {50, std::chrono::seconds(10)},
             {100, {}}};
  r.analysis.window = std::chrono::seconds(5);
  r.analysis.min_samples = 20;
  r.analysis.max_error_rate_delta = 0.05;
  r.analysis.max_ttft_p90_ratio = 1.5;
  c.rollouts.push_back(r);
  return c;
}

class RolloutControllerTest : public ::testing::Test {
 protected:
  // One simulated second: both versions serve (the candidate `bad` or not), then a tick.
  void Second(bool bad = false, uint64_t candidate = 10, uint64_t stable = 40) {
    now += kSecond;
    backend.Serve("v2", candidate, bad ? candidate / 2 : 0);
    backend.Serve("v1", stable, 0);
    controller.Tick(now);
  }
  RolloutPhase Phase() { return controller.Find("chat")->phase; }
  uint32_t Step() { return controller.Find("chat")->step; }

  FakeBackend backend;
  RolloutController controller{backend};
  int64_t now = kStart;
};

TEST_F(RolloutControllerTest, HealthyCandidateWalksEveryStepToPromotion) {
  controller.Configure(Config(), now);
  EXPECT_EQ(backend.Weight("v2"), 5);
  EXPECT_EQ(backend.Weight("v1"), 95);
  std::vector<uint32_t> weights_seen = {5};
  for (int i = 0; i < 60 && Phase() != RolloutPhase::kPromoted; ++i) {
    Second();
    if (backend.Weight("v2") != static_cast<int>(weights_seen.back())) {
      weights_seen.push_back(static_cast<uint32_t>(backend.Weight("v2")));
      EXPECT_EQ(backend.Weight("v1"), 100 - backend.Weight("v2"));
    }
  }
  EXPECT_EQ(Phase(), RolloutPhase::kPromoted);
  EXPECT_EQ(weights_seen, (std::vector<uint32_t>{5, 25, 50, 100}));
  EXPECT_EQ(backend.Weight("v1"), 0);
  // Each step baked its full 10 s before moving on.
  const auto& h = controller.Find("chat")->history;
  ASSERT_EQ(h.size(), 4u);
  for (size_t i = 1; i < h.size(); ++i) {
    EXPECT_GE(h[i].at_unix_ms - h[i - 1].at_unix_ms, 10 * kSecond) << i;
  }
  EXPECT_EQ(h.back().to, RolloutPhase::kPromoted);
}

TEST_F(RolloutControllerTest, FailingCandidateRollsBackAtOnceMidBake) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 12; ++i) Second();  // step 1 passed after its bake
  ASSERT_EQ(Step(), 1u);
  Second(/*bad=*/true);  // one bad second: 5 of 10 errors within a 50-request window... judged
  EXPECT_EQ(Phase(), RolloutPhase::kRolledBack);
  EXPECT_EQ(backend.Weight("v2"), 0);
  EXPECT_EQ(backend.Weight("v1"), 100);
  EXPECT_NE(controller.Find("chat")->history.back().reason.find("error rate"), std::string::npos);
  // Rolled back is final: healthy figures later change nothing.
  for (int i = 0; i < 30; ++i) Second();
  EXPECT_EQ(Phase(), RolloutPhase::kRolledBack);
  EXPECT_EQ(backend.Weight("v2"), 0);
}

TEST_F(RolloutControllerTest, SlowCandidateRollsBack) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 4; ++i) {
    now += kSecond;
    backend.Serve("v2", 10, 0, /*bucket=*/3);
    backend.Serve("v1", 40, 0, /*bucket=*/1);
    controller.Tick(now);
  }
  EXPECT_EQ(Phase(), RolloutPhase::kRolledBack);
  EXPECT_NE(controller.Find("chat")->history.back().reason.find("ttft"), std::string::npos);
}

TEST_F(RolloutControllerTest, BelowMinSamplesItWaitsPastTheBake) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 40; ++i) Second(false, /*candidate=*/3, /*stable=*/40);  // 15 per window
  EXPECT_EQ(Phase(), RolloutPhase::kProgressing);
  EXPECT_EQ(Step(), 0u);
  EXPECT_EQ(controller.LastAnalysis("chat")->verdict, Verdict::kWait);
  // Enough traffic: it moves on.
  for (int i = 0; i < 3; ++i) Second();
  EXPECT_EQ(Step(), 1u);
}

TEST_F(RolloutControllerTest, ABreachBelowMinSamplesIsNotJudged) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 20; ++i) Second(/*bad=*/true, /*candidate=*/3, /*stable=*/40);
  EXPECT_EQ(Phase(), RolloutPhase::kProgressing);
  EXPECT_EQ(Step(), 0u);
  EXPECT_EQ(controller.LastAnalysis("chat")->verdict, Verdict::kWait);
}

TEST_F(RolloutControllerTest, PauseStopsTheBakeClockAndResumeContinuesIt) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 6; ++i) Second();
  EXPECT_EQ(controller.Act("chat", RolloutAction::kPause, now).http_status, 200);
  EXPECT_EQ(Phase(), RolloutPhase::kPaused);
  EXPECT_EQ(controller.Act("chat", RolloutAction::kPause, now).http_status, 409);
  for (int i = 0; i < 30; ++i) Second();
  EXPECT_EQ(Step(), 0u);
  EXPECT_EQ(backend.Weight("v2"), 5);
  EXPECT_EQ(controller.Act("chat", RolloutAction::kResume, now).http_status, 200);
  Second();
  Second();
  EXPECT_EQ(Step(), 0u);  // 6 + 2 of 10 s baked
  for (int i = 0; i < 3; ++i) Second();
  EXPECT_EQ(Step(), 1u);
}

TEST_F(RolloutControllerTest, PausedRolloutStillRollsBackOnFailure) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 3; ++i) Second();
  controller.Act("chat", RolloutAction::kPause, now);
  for (int i = 0; i < 3; ++i) Second(true);
  EXPECT_EQ(Phase(), RolloutPhase::kRolledBack);
}

TEST_F(RolloutControllerTest, PromoteAndAbortByHand) {
  controller.Configure(Config(), now);
  Second();
  EXPECT_EQ(controller.Act("chat", RolloutAction::kAbort, now).http_status, 200);
  EXPECT_EQ(Phase(), RolloutPhase::kAborted);
  EXPECT_EQ(backend.Weight("v2"), 0);
  EXPECT_EQ(controller.Act("chat", RolloutAction::kAbort, now).http_status, 409);
  EXPECT_EQ(controller.Act("chat", RolloutAction::kResume, now).http_status, 409);
  EXPECT_EQ(controller.Act("chat", RolloutAction::kPromote, now).http_status, 200);
  EXPECT_EQ(Phase(), RolloutPhase::kPromoted);
  EXPECT_EQ(backend.Weight("v2"), 100);
  EXPECT_EQ(backend.Weight("v1"), 0);
  EXPECT_EQ(controller.Act("chat", RolloutAction::kPromote, now).http_status, 409);
  EXPECT_EQ(controller.Act("other", RolloutAction::kPause, now).http_status, 404);
  EXPECT_FALSE(ParseRolloutAction("restart").has_value());
}

TEST_F(RolloutControllerTest, ReloadKeepsTheStepUnlessTheDefinitionChanges) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 12; ++i) Second();
  ASSERT_EQ(Step(), 1u);
  controller.Configure(Config(), now);  // same definition
  EXPECT_EQ(Step(), 1u);
  EXPECT_EQ(backend.Weight("v2"), 25);
  RolloutsConfig changed = Config();
  changed.rollouts[0].steps[0].weight = 10;
  controller.Configure(changed, now);
  EXPECT_EQ(Step(), 0u);
  EXPECT_EQ(backend.Weight("v2"), 10);
  EXPECT_NE(controller.Find("chat")->history.back().reason.find("definition changed"),
            std::string::npos);
  controller.Configure(RolloutsConfig{}, now);  // removed: configured weights again
  EXPECT_EQ(controller.Find("chat"), nullptr);
  EXPECT_EQ(backend.Weight("v2"), -1);
  EXPECT_EQ(backend.Weight("v1"), -1);
}

std::string TempPath(const char* name) {
  return ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid()) + ".json";
}

TEST_F(RolloutControllerTest, RestartResumesFromTheStateFile) {
  const std::string path = TempPath("rollout-state");
  std::remove(path.c_str());
  controller.Configure(Config(path), now);
  for (int i = 0; i < 24; ++i) Second();
  ASSERT_EQ(Step(), 2u);
  controller.Act("chat", RolloutAction::kPause, now);

  FakeBackend fresh;
  RolloutController restarted(fresh);
  restarted.Configure(Config(path), now + 5 * kSecond);
  ASSERT_NE(restarted.Find("chat"), nullptr);
  EXPECT_EQ(restarted.Find("chat")->step, 2u);
  EXPECT_EQ(restarted.Find("chat")->phase, RolloutPhase::kPaused);
  EXPECT_EQ(fresh.Weight("v2"), 50);
  EXPECT_EQ(restarted.Find("chat")->history.size(), controller.Find("chat")->history.size());

  // A different definition in the new configuration begins again despite the file.
  FakeBackend other;
  RolloutController changed(other);
  RolloutsConfig c = Config(path);
  c.rollouts[0].analysis.min_samples = 30;
  changed.Configure(c, now);
  EXPECT_EQ(changed.Find("chat")->step, 0u);
  EXPECT_EQ(other.Weight("v2"), 5);
  std::remove(path.c_str());
}

TEST(RolloutStateFile, RoundTripsEveryField) {
  RolloutRecord r;
  r.model = "chat \"alias\"";
  r.definition = "0123456789abcdef";
  r.phase = RolloutPhase::kPaused;
  r.step = 3;
  r.weight = 50;
  r.step_started_unix_ms = 1234;
  r.baked_ms = 567;
  r.history.push_back({1, RolloutPhase::kProgressing, RolloutPhase::kPaused, 3, 50, "manual"});
  const std::string path = TempPath("rollout-roundtrip");
  ASSERT_TRUE(WriteRolloutStateFile(path, {r}).ok());
  auto back = ReadRolloutStateFile(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), 1u);
  const RolloutRecord& b = (*back)[0];
  EXPECT_EQ(b.model, r.model);
  EXPECT_EQ(b.definition, r.definition);
  EXPECT_EQ(b.phase, r.phase);
  EXPECT_EQ(b.step, 3u);
  EXPECT_EQ(b.weight, 50u);
  EXPECT_EQ(b.step_started_unix_ms, 1234);
  EXPECT_EQ(b.baked_ms, 567);
  ASSERT_EQ(b.history.size(), 1u);
  EXPECT_EQ(b.history[0].to, RolloutPhase::kPaused);
  EXPECT_EQ(b.history[0].reason, "manual");
  EXPECT_EQ(::access((path + ".tmp").c_str(), F_OK), -1);  // renamed, nothing left behind
  std::remove(path.c_str());
  // A missing file is no records.
  auto missing = ReadRolloutStateFile(path);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
}

TEST(RolloutStateFile, CorruptFilesAreErrorsNotCrashes) {
  const char* bad[] = {
      "",
      "{",
      "[]",
      R"({"format": 2, "rollouts": []})",
      R"({"format": 1})",
      R"({"format": 1, "rollouts": [{"model": "m"}]})",
      R"({"format": 1, "rollouts": [{"model": "m", "definition": "d", "state": "dancing",
          "step": 0, "weight": 5, "step_started_unix_ms": 0, "baked_ms": 0, "history": []}]})",
      R"({"format": 1, "rollouts": [{"model": "m", "definition": "d", "state": "paused",
          "step": 0, "weight": 500, "step_started_unix_ms": 0, "baked_ms": 0, "history": []}]})",
  };
  for (const char* text : bad) {
    EXPECT_FALSE(ParseRolloutState(text).ok()) << text;
  }
}

TEST_F(RolloutControllerTest, CorruptStateFileBeginsAfreshAndIsCounted) {
  const std::string path = TempPath("rollout-corrupt");
  { std::ofstream(path) << "{not json"; }
  controller.Configure(Config(path), now);
  EXPECT_EQ(Step(), 0u);
  EXPECT_EQ(Phase(), RolloutPhase::kProgressing);
  PrometheusText t;
  controller.RenderMetrics(t);
  EXPECT_NE(t.str().find("tokenway_rollout_state_file_errors_total 1"), std::string::npos)
      << t.str();
  // The next write replaced it with a good one.
  EXPECT_TRUE(ReadRolloutStateFile(path).ok());
  std::remove(path.c_str());
}

TEST_F(RolloutControllerTest, StatusAndMetricsShowTheRollout) {
  controller.Configure(Config(), now);
  for (int i = 0; i < 3; ++i) Second();
  std::string json;
  JsonWriter w(json);
  controller.WriteStatusJson(w, now);
  EXPECT_NE(json.find(R"("model":"chat")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("state":"progressing")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("weights":{"v2":5,"v1":95})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("verdict":"pass")"), std::string::npos) << json;
  PrometheusText t;
  controller.RenderMetrics(t);
  const std::string& m = t.str();
  EXPECT_NE(m.find(R"(tokenway_rollout_weight{model="chat",version="v2"} 5)"), std::string::npos)
      << m;
  EXPECT_NE(m.find(R"(tokenway_rollout_state{model="chat",state="progressing"} 1)"),
            std::string::npos);
  EXPECT_NE(m.find(R"(tokenway_rollout_state{model="chat",state="rolled_back"} 0)"),
            std::string::npos);
  EXPECT_NE(m.find(R"(tokenway_rollout_transitions_total{model="chat",state="progressing"} 1)"),
            std::string::npos);
}

}  // namespace
}  // namespace tokenway
