// LeastRequestScorer: prefers the fewest requests in flight from this gateway (all
// workers), normalised across candidates. Needs no engine signals, so it also works when
// scraping is off or failing.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class LeastRequestScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "least-request"; }
};

}  // namespace tokenway
