// LoraAffinityScorer: GIE's LoRA rule for the requested model name: 1.0 when the
// adapter is already running on the endpoint, 0.8 when the endpoint has a free adapter slot
// (running adapters < max_lora), 0.6 when the adapter is waiting there, else 0. Invalid or stale
// signals score 0.
#pragma once

#include "routing/scorer.h"

namespace tokenway {

class LoraAffinityScorer final : public Scorer {
 public:
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "lora-affinity"; }
};

}  // namespace tokenway
