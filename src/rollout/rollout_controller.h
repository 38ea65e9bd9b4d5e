// RolloutController: runs the configured progressive rollouts. Each tick it reads the candidate's
// and the stable version's cumulative figures, judges the last analysis window (rollout_analysis.h)
// and moves the rollout on: a pass at the end of a step's bake → the next step's weight; a fail at
// any time → the candidate's weight to 0 at once (rolled_back); reaching 100 % → promoted. It also
// takes the admin listener's manual actions (pause, resume, promote, abort), logs and counts every
// transition, and keeps the state in the state file (rollout_state.h) so restarts resume.
//
// Control thread only: Configure (start and every reload), Tick (a timer, rollouts.tick), Act and
// the renderers (the admin listener, same thread). Nothing here is touched by a worker; the
// workers see only the weights the backend stores (atomics the split reads).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rollout/rollout_analysis.h"
#include "rollout/rollout_config.h"
#include "rollout/rollout_state.h"

namespace tokenway {

class JsonWriter;
class PrometheusText;

// What the controller reads and drives, implemented by the gateway over the versions' run-time
// weights and per-version metrics (and by fakes in tests). Called on the control thread.
class RolloutBackend {
 public:
  virtual ~RolloutBackend() = default;
  // The cumulative figures of `version` of alias `model`, summed across workers; false when the
  // running configuration has no such version (the analysis then waits).
  virtual bool ReadFigures(std::string_view model, std::string_view version,
                           VersionFigures& out) = 0;
  // The version's share of the alias's traffic from now on, in percent (0..100).
  virtual void SetWeight(std::string_view model, std::string_view version, uint32_t percent) = 0;
  // Hands the version back its configured weight (its rollout left the configuration).
  virtual void ResetWeight(std::string_view model, std::string_view version) = 0;
};

enum class RolloutAction : uint8_t { kPause, kResume, kPromote, kAbort };
std::optional<RolloutAction> ParseRolloutAction(std::string_view name);

struct RolloutActionResult {
  int http_status = 200;  // 200 done, 404 no such rollout, 409 not allowed in its state
  std::string message;
};

class RolloutController {
 public:
  explicit RolloutController(RolloutBackend& backend) : backend_(backend) {}

  // Adopts a configuration (at start and on every reload). The first call with a state file
  // reads it: a rollout whose definition matches its record resumes where the record stands; a
  // changed or new definition begins at its first step; one that left the configuration hands
  // its versions back their configured weights. Sets every rollout's weights at once.
  void Configure(const RolloutsConfig& config, int64_t now_unix_ms);
  // One analysis round (and any transition it causes) for every rollout.
  void Tick(int64_t now_unix_ms);
  // pause | resume | promote | abort for the rollout of alias `model`. Counted by action and
  // result (tokenway_rollout_actions_total).
  RolloutActionResult Act(std::string_view model, RolloutAction action, int64_t now_unix_ms);
  // A manual request the admin listener could not read (unknown action, malformed path):
  // counted as action "invalid".
  void CountInvalidAction() { ++invalid_actions_; }

  // GET /admin/rollouts.
  void WriteStatusJson(JsonWriter& w, int64_t now_unix_ms) const;
  // tokenway_rollout_* families.
  void RenderMetrics(PrometheusText& t) const;

  // For tests and the status renderers.
  const RolloutRecord* Find(std::string_view model) const;
  std::optional<AnalysisResult> LastAnalysis(std::string_view model) const;

 private:
  struct Reading {
    int64_t at_ms;
    VersionFigures candidate;
    VersionFigures stable;
  };
  struct Rollout {
    RolloutConfig config;
    RolloutRecord record;
    std::deque<Reading> readings;  // oldest first, spanning a little more than the window
    std::optional<AnalysisResult> last;
    int64_t last_at_ms = 0;
  };
  struct Counters {
    std::array<uint64_t, kRolloutPhases> transitions{};  // by the state entered
    std::array<uint64_t, 3> verdicts{};                  // by Verdict
  };

  void Begin(Rollout& r, int64_t now_ms, const std::string& reason);
  void Transition(Rollout& r, RolloutPhase to, uint32_t step, int64_t now_ms, std::string reason);
  void ApplyWeights(const Rollout& r);
  void Persist();
  void TickOne(Rollout& r, int64_t now_ms);
  RolloutActionResult Apply(std::string_view model, RolloutAction action, int64_t now_ms);

  RolloutBackend& backend_;
  std::string state_file_;
  bool state_read_ = false;
  std::map<std::string, RolloutRecord, std::less<>> from_file_;  // records not yet adopted
  std::map<std::string, Rollout, std::less<>> rollouts_;         // by alias
  std::map<std::string, Counters, std::less<>> counters_;        // outlive the rollouts
  uint64_t state_file_errors_ = 0;
  // Manual actions by RolloutAction and result (0 done, 1 not found, 2 not allowed).
  std::array<std::array<uint64_t, 3>, 4> actions_{};
  uint64_t invalid_actions_ = 0;
};

}  // namespace tokenway
