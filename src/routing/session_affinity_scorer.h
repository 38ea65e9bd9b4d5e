// SessionAffinityScorer: keeps a session on one endpoint so its growing conversation hits the
// same KV cache. The session key is PickContext::session_key (the pool's session header) when
// the request has one, else the request's `user` field; the endpoint is chosen by
// rendezvous hashing (highest XXH3(endpoint URL, seed = hash of the key) among the candidates),
// which needs no shared state and moves a session only when its endpoint leaves the candidate set
// (unhealthy, ejected, removed). Score 1 for that endpoint, 0 for the others and for requests
// without a key.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class SessionAffinityScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "session-affinity"; }
};

}  // namespace tokenway
