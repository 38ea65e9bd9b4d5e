#include "routing/capacity_scorer.h"

#include <algorithm>

#include "routing/endpoint_state.h"

namespace tokenway {

void CapacityScorer::Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                           std::span<double> scores) const {
  // The loader only accepts positive capacities; the floor keeps a zero from dividing anyway.
  constexpr double kMinCapacity = 1e-6;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EndpointState& s = *candidates[i].state;
    double load = static_cast<double>(s.in_flight.load(std::memory_order_relaxed)) + 1.0;
    if (s.engine.Fresh(ctx.now_ns, ctx.stale_after_ns)) {
      load += static_cast<double>(std::max(0, s.engine.waiting.load(std::memory_order_relaxed)));
    }
    scores[i] = load / std::max(s.capacity.load(std::memory_order_relaxed), kMinCapacity);
  }
  ScoreLowerIsBetter(scores);
}

}  // namespace tokenway
