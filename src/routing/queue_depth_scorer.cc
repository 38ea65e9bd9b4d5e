#include "routing/queue_depth_scorer.h"

#include <limits>

#include "routing/endpoint_state.h"

namespace tokenway {

void QueueDepthScorer::Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                             std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EndpointState& s = *candidates[i].state;
    scores[i] = s.engine.Fresh(ctx.now_ns, ctx.stale_after_ns)
                    ? static_cast<double>(s.engine.waiting.load(std::memory_order_relaxed)) +
                          static_cast<double>(s.in_flight.load(std::memory_order_relaxed))
                    : std::numeric_limits<double>::quiet_NaN();
  }
  ScoreLowerIsBetter(scores);
}

}  // namespace tokenway
