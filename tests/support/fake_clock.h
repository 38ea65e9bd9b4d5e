// FakeClock: a monotonic clock that moves only when a test says so, for units that take the time
// as an argument (now_ns) instead of reading the steady clock themselves. Starts at a large
// non-zero value so that "0" (the units' "never") is never mistaken for a real time.
#pragma once

#include <cstdint>

#include "common/duration.h"

namespace tokenway::testing {

class FakeClock {
 public:
  static constexpr int64_t kStartNs = 1'000'000'000'000;  // 1000 s

  int64_t now_ns() const { return now_ns_; }
  void Advance(Duration d) {
    now_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  void AdvanceNs(int64_t ns) { now_ns_ += ns; }

 private:
  int64_t now_ns_ = kStartNs;
};

}  // namespace tokenway::testing
