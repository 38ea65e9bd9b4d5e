// QueueDepthScorer: prefers endpoints with short queues. The depth is the engine's
// waiting count (last scrape) plus the gateway's own requests in flight to the endpoint, which
// fills the blind spot between scrapes. Scores are normalised between the pool's least and most
// loaded candidates (GIE's queue scorer); invalid or stale engine signals score 0.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class QueueDepthScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "queue-depth"; }
};

}  // namespace tokenway
