// SchedulerPicker: the scheduling framework behind pools[].scheduler — weighted scorers, then a
// picker over the total score — packaged as a Picker so the forwarding code is unchanged.
//
// Per pick (worker thread, concurrently): hash the prompt into prefix blocks once (only when a
// prefix-cache or consistent-prefix scorer is configured) and look them up in the prefix index
// once; in a pool larger than `sample` (when set), keep only the candidates the scorers nominate
// plus `sample` random others; run the filters (keeping the unfiltered set if they
// would leave nothing); run each scorer over all candidates (scores in [0,1]), add
// weight × score, choose the first endpoint with the configured picker (max-score with random
// tie-break, weighted-random proportional to score, or power-of-two over scores), then order the
// rest by descending score as fallbacks. The chosen endpoint learns the request's prefix blocks.
// With a predicted-latency scorer the pick reports the chosen endpoint's predicted TTFT and TPOT,
// and a sheddable request that no candidate is predicted to serve within its objective gets no
// endpoint at all (PickReport::refused; scheduler.slo.shed).
// Scratch vectors are thread_local so steady-state picks do not allocate. One instance per pool
// and Runtime; the prefix index is handed over across reloads by the runtime builder.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "routing/filter.h"
#include "routing/prefix_index.h"
#include "routing/scheduler_config.h"
#include "routing/scorer.h"

namespace tokenway {

class SchedulerPicker final : public Picker {
 public:
  enum class Choice { kMaxScore, kWeightedRandom, kPowerOfTwo };

  // `endpoints`: the pool's size (candidate indices are below it). `stale_after_ns`: engine
  // signals older than this score as saturated. Unknown names were rejected at load; here they
  // are skipped.
  // `prefix_index`: an index to keep using (it survives reloads that keep the pool's endpoints);
  // null: a new one when a prefix-cache scorer is configured.
  SchedulerPicker(const SchedulerConfig& config, uint32_t endpoints, int64_t stale_after_ns,
                  std::shared_ptr<PrefixIndex> prefix_index = nullptr);

  void Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
            FallbackList& out) override;
  std::string_view name() const override { return "scheduler"; }

  // For tests and the admin view.
  PrefixIndex* prefix_index() { return prefix_index_.get(); }
  // Total scores of the last Pick on this thread (tests).
  static const std::vector<double>& LastScoresForTest();

 private:
  struct Weighted {
    std::unique_ptr<Scorer> scorer;
    double weight;
  };
  // The candidates of a large pool that are scored: the scorers' nominations plus sample_ random
  // others (no repeats). Fills `sampled`; `marked` is scratch, all 0 on entry and on return.
  std::span<const PickCandidate> Sample(const ScoringContext& sc,
                                        std::span<const PickCandidate> all, uint64_t random,
                                        std::vector<PickCandidate>& sampled,
                                        std::vector<uint8_t>& marked) const;

  std::vector<std::unique_ptr<Filter>> filters_;
  std::vector<Weighted> scorers_;
  Choice choice_ = Choice::kMaxScore;
  int64_t stale_after_ns_;
  std::shared_ptr<PrefixIndex> prefix_index_;  // only when a prefix-cache scorer is configured
  // How the prompt is cut into blocks; max_blocks 0: no scorer needs the blocks.
  PrefixIndexConfig blocks_;
  uint32_t sample_ = 0;    // pools[].scheduler.sample (0: score every candidate)
  bool predicts_ = false;  // a predicted-latency scorer is configured
  bool shed_ = false;      // scheduler.slo.shed: refuse sheddable requests no endpoint can serve
  bool pool_objective_ = false;        // scheduler.slo.ttft or .tpot was configured
  const Scorer* predictor_ = nullptr;  // the predicted-latency scorer, when configured
};

}  // namespace tokenway
