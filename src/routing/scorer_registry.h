// The registry of scorers and filters by the names used in configuration
// (pools[].scheduler.scorers[].name, pools[].scheduler.filters[].name).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "routing/filter.h"
#include "routing/scheduler_config.h"
#include "routing/scorer.h"

namespace tokenway {

// Returns nullptr for an unknown name (configuration validation rejects those first).
// `config` and `endpoints` (the pool's size) parameterise the scorers that need them.
std::unique_ptr<Scorer> MakeScorer(std::string_view name, const SchedulerConfig& config = {},
                                   uint32_t endpoints = 0);
// Known scorer names, for validation messages.
const std::vector<std::string>& KnownScorers();
// Returns nullptr for an unknown filter name.
std::unique_ptr<Filter> MakeFilter(const FilterConfig& config);

}  // namespace tokenway
