#include "fleetsim/routing_policy.h"

namespace tokenway::fleetsim {

uint32_t PickerPolicy::Choose(const PolicyRequest& request,
                              std::span<const PickCandidate> candidates, uint64_t random,
                              int64_t now_ns) {
  PickContext pick;
  pick.request = request.inspected;
  pick.random = random;
  pick.now_ns = now_ns;
  pick.prompt_tokens = request.prompt_tokens;
  pick.slo = request.slo;
  pick.report = request.report;
  fallbacks_.clear();
  picker_.Pick(pick, candidates, fallbacks_);
  if (fallbacks_.empty() && request.report && request.report->refused) return kRefused;
  return fallbacks_.empty() ? candidates.front().index : fallbacks_[0];
}

}  // namespace tokenway::fleetsim
