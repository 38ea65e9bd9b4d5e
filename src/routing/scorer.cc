#include "routing/scorer.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tokenway {

void ScoreLowerIsBetter(std::span<double> scores) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (double v : scores) {
    if (std::isnan(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  for (double& v : scores) {
    if (std::isnan(v)) {
      v = 0;
    } else if (hi <= lo) {
      v = 1;
    } else {
      v = (hi - v) / (hi - lo);
    }
  }
}

size_t CandidatePosition(std::span<const PickCandidate> candidates, uint32_t endpoint) {
  if (endpoint < candidates.size() && candidates[endpoint].index == endpoint) return endpoint;
  // The front doors list the eligible endpoints in pool order: a binary search finds it there
  // (on any other order it only fails, and the scan below decides).
  size_t lo = 0, hi = candidates.size();
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (candidates[mid].index < endpoint) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < candidates.size() && candidates[lo].index == endpoint) return lo;
  for (size_t i = 0; i < candidates.size(); ++i) {  // any other order
    if (candidates[i].index == endpoint) return i;
  }
  return candidates.size();
}

}  // namespace tokenway
