#include "routing/kv_cache_scorer.h"

#include <algorithm>

#include "routing/endpoint_state.h"

namespace tokenway {

void KvCacheScorer::Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                          std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EngineSignals& e = candidates[i].state->engine;
    if (!e.Fresh(ctx.now_ns, ctx.stale_after_ns)) {
      scores[i] = 0;
      continue;
    }
    double kv = e.kv_utilisation.load(std::memory_order_relaxed);
    scores[i] = std::clamp(1.0 - kv, 0.0, 1.0);
  }
}

}  // namespace tokenway
