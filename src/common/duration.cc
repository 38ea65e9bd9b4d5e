#include "common/duration.h"

#include <charconv>
#include <cmath>

namespace tokenway {

StatusOr<Duration> ParseDuration(std::string_view text) {
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (text.empty()) return Status::Error("empty duration");
  size_t unit_pos = text.find_first_not_of("0123456789.");
  std::string_view number = text.substr(0, unit_pos);
  std::string_view unit = unit_pos == std::string_view::npos ? "s" : text.substr(unit_pos);
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size() || number.empty()) {
    return Status::Error("'" + std::string(text) + "' is not a duration (e.g. 250ms, 10s, 5m)");
  }
  double scale;
  if (unit == "ns") {
    scale = 1;
  } else if (unit == "us") {
    scale = 1e3;
  } else if (unit == "ms") {
    scale = 1e6;
  } else if (unit == "s") {
    scale = 1e9;
  } else if (unit == "m") {
    scale = 60e9;
  } else if (unit == "h") {
    scale = 3600e9;
  } else {
    return Status::Error("unknown duration unit '" + std::string(unit) + "' (ns, us, ms, s, m, h)");
  }
  double ns = value * scale;
  if (!std::isfinite(ns) || ns > 1e18) return Status::Error("duration too large");
  return Duration(static_cast<int64_t>(ns));
}

std::string FormatDuration(Duration d) {
  int64_t ns = d.count();
  if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + "s";
  if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + "ms";
  if (ns % 1000 == 0) return std::to_string(ns / 1000) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace tokenway
