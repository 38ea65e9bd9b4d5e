// A Prometheus-style cumulative histogram with fixed bucket bounds, and the bucket sets vLLM uses,
// so the simulator's latency metrics bucket exactly like a real engine's.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace tokenway::sim {

// Bounds and counts live inside the object, so an observation touches one object (an engine
// observes one inter-token latency per running sequence and step) instead of two heap arrays.
// Each observation counts in its own bucket; the cumulative counts are summed when read.
class Histogram {
 public:
  static constexpr std::size_t kMaxBuckets = 24;

  // At most kMaxBuckets ascending bounds; any beyond are dropped.
  explicit Histogram(const std::vector<double>& upper_bounds)
      : num_bounds_(std::min(upper_bounds.size(), kMaxBuckets)) {
    for (std::size_t i = 0; i < num_bounds_; ++i) bounds_[i] = upper_bounds[i];
  }

  void Observe(double value) {
    std::size_t i = 0;
    while (i < num_bounds_ && !(value <= bounds_[i])) ++i;
    ++counts_[i];  // counts_[num_bounds_]: above every bound
    ++count_;
    sum_ += value;
  }

  // Starts loading what Observe reads for a small value (the first bound and count, the totals).
  void Prefetch() const {
    __builtin_prefetch(bounds_.data());
    __builtin_prefetch(counts_.data(), 1);
    __builtin_prefetch(&count_, 1);
  }

  std::span<const double> upper_bounds() const { return {bounds_.data(), num_bounds_}; }
  // Cumulative count of observations <= upper_bounds()[i], for every i.
  std::vector<uint64_t> cumulative_counts() const {
    std::vector<uint64_t> cumulative(num_bounds_);
    uint64_t running = 0;
    for (std::size_t i = 0; i < num_bounds_; ++i) cumulative[i] = running += counts_[i];
    return cumulative;
  }
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::array<double, kMaxBuckets> bounds_{};
  std::array<uint64_t, kMaxBuckets + 1> counts_{};
  std::size_t num_bounds_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

// vllm/v1/metrics/loggers.py bucket sets.
inline std::vector<double> TimeToFirstTokenBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
inline std::vector<double> InterTokenLatencyBuckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
          0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
}
inline std::vector<double> RequestLatencyBuckets() {
  return {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
          30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

}  // namespace tokenway::sim
