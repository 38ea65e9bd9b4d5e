// SaturationFilter: drops endpoints the engines report as saturated — waiting queue at or above
// `queue_threshold` or KV utilisation at or above `kv_threshold` (GIE's defaults: 5 and 0.8) —
// and endpoints whose engine signals are invalid or stale (unknown counts as saturated, as GIE).
#pragma once

#include "routing/filter.h"
#include "routing/scheduler_config.h"

namespace tokenway {

class SaturationFilter final : public Filter {
 public:
  explicit SaturationFilter(const FilterConfig& config) : config_(config) {}
  size_t Apply(const ScoringContext& ctx, std::span<const PickCandidate> in,
               PickCandidate* out) const override;
  std::string_view name() const override { return "saturation"; }

 private:
  FilterConfig config_;
};

}  // namespace tokenway
