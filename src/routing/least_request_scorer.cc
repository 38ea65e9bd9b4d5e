#include "routing/least_request_scorer.h"

#include <memory>

#include "routing/endpoint_state.h"

namespace tokenway {

void LeastRequestScorer::Score(const ScoringContext&, std::span<const PickCandidate> candidates,
                               std::span<double> scores) const {
  constexpr size_t kStack = 256;
  size_t n = candidates.size();
  double values_buf[kStack];
  bool valid_buf[kStack];
  std::unique_ptr<double[]> values_big;
  std::unique_ptr<bool[]> valid_big;
  double* values = values_buf;
  bool* valid = valid_buf;
  if (n > kStack) {
    values_big = std::make_unique<double[]>(n);
    valid_big = std::make_unique<bool[]>(n);
    values = values_big.get();
    valid = valid_big.get();
  }
  for (size_t i = 0; i < n; ++i) {
    valid[i] = true;
    values[i] = static_cast<double>(candidates[i].state->in_flight.load(std::memory_order_relaxed));
  }
  ScoreLowerIsBetter({values, n}, {valid, n}, scores);
}

}  // namespace tokenway
