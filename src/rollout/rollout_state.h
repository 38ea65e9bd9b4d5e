// RolloutRecord and the rollout state file: where each rollout stands (state, step, when the
// step began, the transitions so far), kept in a small JSON file so a restart resumes every
// rollout at the step it had reached.
//
// Control thread only (blocking file I/O: one write per transition, one read at start). The
// file is replaced atomically — written to `<path>.tmp`, fsync'd, renamed over `<path>`, and the
// directory fsync'd — so a crash leaves either the old or the new state, never half of one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenway/status.h"

namespace tokenway {

enum class RolloutPhase : uint8_t { kProgressing, kPaused, kPromoted, kRolledBack, kAborted };
inline constexpr size_t kRolloutPhases = 5;
std::string_view RolloutPhaseName(RolloutPhase p);
std::optional<RolloutPhase> ParseRolloutPhase(std::string_view name);
// Promoted, rolled back and aborted rollouts do nothing more until their definition changes.
inline bool Finished(RolloutPhase p) {
  return p == RolloutPhase::kPromoted || p == RolloutPhase::kRolledBack ||
         p == RolloutPhase::kAborted;
}

struct RolloutTransition {
  int64_t at_unix_ms = 0;
  RolloutPhase from = RolloutPhase::kProgressing;
  RolloutPhase to = RolloutPhase::kProgressing;
  uint32_t step = 0;    // index of the step after the transition
  uint32_t weight = 0;  // candidate's weight after it, percent
  std::string reason;   // "analysis passed", "manual pause", the failed criterion, ...
};

struct RolloutRecord {
  std::string model;
  std::string definition;  // RolloutConfig::Definition() the record belongs to
  RolloutPhase phase = RolloutPhase::kProgressing;
  uint32_t step = 0;                       // index into the configured steps
  uint32_t weight = 0;                     // candidate's weight now, percent
  int64_t step_started_unix_ms = 0;        // when the current step began baking
  int64_t baked_ms = 0;                    // bake time done when paused (frozen while paused)
  std::vector<RolloutTransition> history;  // oldest first, at most kMaxRolloutHistory
};
inline constexpr size_t kMaxRolloutHistory = 64;

// Writes every record, replacing the file atomically.
Status WriteRolloutStateFile(const std::string& path, const std::vector<RolloutRecord>& records);
// The records of the file; a missing file is no records. A file that cannot be parsed, or that
// holds an unknown state, is an error (the caller logs it and begins afresh).
StatusOr<std::vector<RolloutRecord>> ReadRolloutStateFile(const std::string& path);

// The JSON text of the file (also used by tests).
std::string RenderRolloutState(const std::vector<RolloutRecord>& records);
StatusOr<std::vector<RolloutRecord>> ParseRolloutState(std::string_view text);

}  // namespace tokenway
