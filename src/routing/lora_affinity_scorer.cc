#include "routing/lora_affinity_scorer.h"

#include "routing/endpoint_state.h"

namespace tokenway {

void LoraAffinityScorer::Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                               std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EngineSignals& e = candidates[i].state->engine;
    if (!e.Fresh(ctx.now_ns, ctx.stale_after_ns)) {
      scores[i] = 0;
    } else if (e.LoraRunning(ctx.model_hash)) {
      scores[i] = 1.0;
    } else if (e.running_lora_count.load(std::memory_order_relaxed) <
               e.max_lora.load(std::memory_order_relaxed)) {
      scores[i] = 0.8;
    } else if (e.LoraWaiting(ctx.model_hash)) {
      scores[i] = 0.6;
    } else {
      scores[i] = 0;
    }
  }
}

}  // namespace tokenway
