// PrefixCacheScorer: the fraction of the prompt's leading blocks the endpoint
// probably holds in its KV cache (routing/prefix_index.h). The SchedulerPicker hashes the prompt
// once per pick and teaches the chosen endpoint the request's blocks.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class PrefixCacheScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "prefix-cache"; }
};

}  // namespace tokenway
