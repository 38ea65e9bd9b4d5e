// OutstandingTokensScorer: prefers the endpoint with the least work this gateway has sent it and
// not yet seen finish, in tokens: estimated prompt tokens still in prefill plus output tokens
// still to decode (EndpointState::prefill_tokens + decode_tokens, kept by every worker at
// dispatch, first event and completion). Unlike a request count it tells a 100k-token prompt
// from a short chat turn, and unlike engine metrics it is current to the request. Needs no
// engine signals.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class OutstandingTokensScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "outstanding-tokens"; }
};

}  // namespace tokenway
