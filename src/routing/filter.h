// Filter: the first stage of the scheduling framework (filters → scorers → picker). It narrows
// the eligible candidates before scoring. Called by the SchedulerPicker on worker threads,
// concurrently; must not block. If the filters together drop every candidate, the picker keeps
// the unfiltered set: a request always has somewhere to go (shedding is flow control's job).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "routing/scorer.h"

namespace tokenway {

class Filter {
 public:
  virtual ~Filter() = default;
  // Copies the candidates that pass into `out` (capacity ≥ in.size()); returns how many.
  virtual size_t Apply(const ScoringContext& ctx, std::span<const PickCandidate> in,
                       PickCandidate* out) const = 0;
  virtual std::string_view name() const = 0;
};

}  // namespace tokenway
