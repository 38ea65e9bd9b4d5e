// PrefixCacheScorer: the share of the prompt's bytes, in whole leading blocks, that the endpoint
// probably holds in its KV cache (routing/prefix_index.h). The SchedulerPicker hashes the prompt
// once per pick and teaches the chosen endpoint the request's blocks; this scorer looks the
// blocks up once for the whole pool (PrefixIndex::MatchAll), not once per candidate. Worker
// threads; no lock, no allocation.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class PrefixCacheScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  // The endpoints holding the prompt's first block (at most PrefixMatch::kMax).
  void Nominate(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                Nominations& out) const override;
  std::string_view name() const override { return "prefix-cache"; }
};

}  // namespace tokenway
