#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/duration.h"

namespace tokenway::bench {

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Summary Summarize(std::vector<double>& values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = static_cast<int64_t>(values.size());
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(s.count);
  s.p50 = Percentile(values, 50);
  s.p90 = Percentile(values, 90);
  s.p99 = Percentile(values, 99);
  s.min = values.front();
  s.max = values.back();
  return s;
}

std::string Slo::ToString() const {
  std::string out;
  auto add = [&](const char* name, double v) {
    if (v <= 0) return;
    if (!out.empty()) out += ',';
    out += name;
    out += '=';
    out += FormatDuration(std::chrono::nanoseconds(static_cast<int64_t>(v * 1e9)));
  };
  add("ttft", ttft);
  add("tpot", tpot);
  add("itl", itl);
  add("e2e", e2e);
  return out;
}

StatusOr<Slo> ParseSlo(std::string_view text) {
  Slo slo;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find_first_of("=:");
    if (eq == std::string_view::npos) {
      return Status::Error("SLO item '" + std::string(item) + "' is not name=duration");
    }
    std::string_view name = item.substr(0, eq);
    auto d = ParseDuration(item.substr(eq + 1));
    if (!d.ok()) return Status::Error("SLO '" + std::string(item) + "': " + d.status().message());
    double seconds = std::chrono::duration<double>(*d).count();
    if (name == "ttft") {
      slo.ttft = seconds;
    } else if (name == "tpot") {
      slo.tpot = seconds;
    } else if (name == "itl") {
      slo.itl = seconds;
    } else if (name == "e2e" || name == "e2el") {
      slo.e2e = seconds;
    } else {
      return Status::Error("unknown SLO metric '" + std::string(name) + "' (ttft, tpot, itl, e2e)");
    }
  }
  return slo;
}

bool MeetsSlo(const RequestTiming& r, const Slo& slo) {
  if (!r.ok) return false;
  if (slo.ttft > 0 && !(r.ttft >= 0 && r.ttft <= slo.ttft)) return false;
  if (slo.tpot > 0 && r.tpot >= 0 && r.tpot > slo.tpot) return false;
  if (slo.itl > 0 && r.max_itl >= 0 && r.max_itl > slo.itl) return false;
  if (slo.e2e > 0 && !(r.e2e >= 0 && r.e2e <= slo.e2e)) return false;
  return true;
}

}  // namespace tokenway::bench
