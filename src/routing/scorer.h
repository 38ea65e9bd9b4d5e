// Scorer: one weighted signal of the scheduling framework (filters → scorers → picker).
//
// The SchedulerPicker calls Score() on a worker thread for each pick, with all candidates at
// once so a scorer can normalise across them (queue depth relative to the pool's least and most
// loaded endpoint, as GIE does). Every score is in [0, 1], higher is better; an endpoint whose
// engine signals are invalid or stale scores 0, as if saturated. Scorers are shared by all
// workers: Score() must not block and must only touch atomics or per-endpoint locks held for
// microseconds. Each scorer is one file pair registered by name in scorer_registry.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "tokenway/picker.h"

namespace tokenway {

class PrefixIndex;

// Per-pick inputs computed once by the SchedulerPicker.
struct ScoringContext {
  const PickContext* pick = nullptr;
  int64_t now_ns = 0;
  int64_t stale_after_ns = 0;
  uint64_t model_hash = 0;                  // LoraNameHash(request model)
  std::span<const uint64_t> prefix_blocks;  // chained block hashes of the prompt (may be empty)
  PrefixIndex* prefix_index = nullptr;      // the pool's index (null if no prefix scorer)
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  // Writes scores[i] ∈ [0,1] for candidates[i].
  virtual void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                     std::span<double> scores) const = 0;
  virtual std::string_view name() const = 0;
};

// Turns loads into scores in place: on entry scores[i] holds candidate i's load, or NaN when
// its signals are unknown; on return the lowest load scores 1, the highest 0, linearly between
// (all equal: 1 each), and unknown loads score 0. Shared by the load scorers.
void ScoreLowerIsBetter(std::span<double> scores);

}  // namespace tokenway
