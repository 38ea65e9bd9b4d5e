// CapacityScorer: for pools of unequal accelerators (pools[].accelerators,
// pools[].endpoints[].capacity). It prefers the endpoint with the least load per unit of
// capacity, counting the request being placed:
//   (in flight from this gateway + engine waiting queue, when fresh + 1) / EndpointState::capacity
// normalised across the candidates with ScoreLowerIsBetter. Counting the new request makes equal
// loads favour the larger endpoint (an idle H100 beats an idle A100), and picking greedily on it
// keeps in-flight work in proportion to capacity. Unlike queue-depth it does not zero an endpoint
// whose engine signals are invalid or stale: its own in-flight count still says what this
// gateway sent there, so only the engine's queue is left out.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class CapacityScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "capacity"; }
};

}  // namespace tokenway
