// Durations in configuration: "250ms", "10s", "5m", "1h", or a bare number of seconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "tokenway/status.h"

namespace tokenway {

using Duration = std::chrono::nanoseconds;

StatusOr<Duration> ParseDuration(std::string_view text);
std::string FormatDuration(Duration d);

inline int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace tokenway
