// KvCacheScorer: 1 − the engine's KV-cache utilisation; invalid or stale signals score 0
// (saturated), as GIE does.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class KvCacheScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "kv-cache"; }
};

}  // namespace tokenway
