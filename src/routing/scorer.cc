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

}  // namespace tokenway
