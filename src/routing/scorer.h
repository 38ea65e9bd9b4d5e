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
#include <vector>

#include "tokenway/picker.h"

namespace tokenway {

class PrefixIndex;
struct PrefixMatch;

// Per-candidate predictions the predicted-latency scorer leaves for the picker (scratch owned by
// the picker, one entry per scored candidate).
struct PredictionScratch {
  std::vector<double> ttft, tpot, cached;
  bool made = false;
  double best_cost = 0;
};

// Per-pick inputs computed once by the SchedulerPicker.
struct ScoringContext {
  const PickContext* pick = nullptr;
  int64_t now_ns = 0;
  int64_t stale_after_ns = 0;
  uint64_t model_hash = 0;                  // LoraNameHash(request model)
  std::span<const uint64_t> prefix_blocks;  // chained block hashes of the prompt (may be empty)
  PrefixIndex* prefix_index = nullptr;      // the pool's index (null if no prefix scorer)
  // prefix_index->MatchAll(prefix_blocks), looked up once per pick by the SchedulerPicker (null:
  // not looked up; a scorer that needs it does the lookup itself).
  const PrefixMatch* prefix_match = nullptr;
  // Where the predicted-latency scorer writes its predictions (null: nobody reads them).
  PredictionScratch* predictions = nullptr;
};

// Positions of candidates a scorer expects to score high, for a picker that scores only a sample
// of a large pool (pools[].scheduler.sample): nominated candidates are always in the sample.
class Nominations {
 public:
  static constexpr uint32_t kCapacity = 16;
  void push_back(uint32_t position) {
    if (size_ < kCapacity) items_[size_++] = position;
  }
  uint32_t size() const { return size_; }
  uint32_t operator[](uint32_t i) const { return items_[i]; }
  void clear() { size_ = 0; }

 private:
  uint32_t items_[kCapacity] = {};
  uint32_t size_ = 0;
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  // Writes scores[i] ∈ [0,1] for candidates[i].
  virtual void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                     std::span<double> scores) const = 0;
  // Adds the positions (in `candidates`) of the few candidates this scorer would score highest,
  // if it can find them without reading every candidate's state; the default nominates none.
  virtual void Nominate(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                        Nominations& out) const {
    (void)ctx;
    (void)candidates;
    (void)out;
  }
  virtual std::string_view name() const = 0;
};

// Position of the candidate for pool endpoint `endpoint`, or candidates.size() when it is not a
// candidate. O(1) when the candidates are the whole pool in order, O(log n) when they are in
// ascending index order, else a scan.
size_t CandidatePosition(std::span<const PickCandidate> candidates, uint32_t endpoint);

// Turns loads into scores in place: on entry scores[i] holds candidate i's load, or NaN when
// its signals are unknown; on return the lowest load scores 1, the highest 0, linearly between
// (all equal: 1 each), and unknown loads score 0. Shared by the load scorers.
void ScoreLowerIsBetter(std::span<double> scores);

}  // namespace tokenway
