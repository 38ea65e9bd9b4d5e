#include "routing/outstanding_tokens_scorer.h"

#include "routing/endpoint_state.h"

namespace tokenway {

void OutstandingTokensScorer::Score(const ScoringContext&,
                                    std::span<const PickCandidate> candidates,
                                    std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) {
    const EndpointState& s = *candidates[i].state;
    scores[i] = static_cast<double>(s.prefill_tokens.load(std::memory_order_relaxed) +
                                    s.decode_tokens.load(std::memory_order_relaxed));
  }
  ScoreLowerIsBetter(scores);
}

}  // namespace tokenway
