#include "routing/least_request_scorer.h"

#include "routing/endpoint_state.h"

namespace tokenway {

void LeastRequestScorer::Score(const ScoringContext&, std::span<const PickCandidate> candidates,
                               std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) {
    scores[i] = static_cast<double>(candidates[i].state->in_flight.load(std::memory_order_relaxed));
  }
  ScoreLowerIsBetter(scores);
}

}  // namespace tokenway
