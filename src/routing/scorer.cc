#include "routing/scorer.h"

#include <algorithm>
#include <limits>

namespace tokenway {

void ScoreLowerIsBetter(std::span<const double> values, std::span<const bool> valid,
                        std::span<double> scores) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!valid[i]) continue;
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!valid[i]) {
      scores[i] = 0;
    } else if (hi <= lo) {
      scores[i] = 1;
    } else {
      scores[i] = (hi - values[i]) / (hi - lo);
    }
  }
}

}  // namespace tokenway
