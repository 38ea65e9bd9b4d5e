// PrometheusParser: a fast, allocation-free reader of Prometheus text exposition (0.0.4).
//
// The engine scraper (control thread) feeds it the body of an engine's /metrics and receives one
// callback per sample with string_views into that body: no copy, no allocation per sample. It
// never crashes on hostile input: malformed lines are skipped and counted, a body larger than
// `max_bytes` is rejected whole, lines longer than kMaxLineBytes are skipped as malformed.
// NaN/Inf values are passed through as parsed; callers decide what a NaN gauge means. Comment
// lines (# HELP, # TYPE) are ignored; a timestamp after the value is accepted and ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tokenway {

// One sample; every view points into the parsed body and lives as long as it.
struct PrometheusSample {
  std::string_view name;
  std::string_view labels;  // raw text between the braces, without them; empty when none
  double value = 0;
};

struct PrometheusParseResult {
  bool ok = true;          // false: the body exceeded max_bytes and nothing was parsed
  uint32_t samples = 0;    // samples delivered to the visitor
  uint32_t malformed = 0;  // lines skipped as malformed or too long
};

inline constexpr size_t kMaxPrometheusLineBytes = 64 * 1024;

// Parses one non-comment line. False when the line is malformed (the sample is then unspecified).
bool ParsePrometheusLine(std::string_view line, PrometheusSample& out);

// The value of label `key` in a raw label list (as in PrometheusSample::labels), still escaped
// (\" \\ \n stay as written; engine label values we read do not use them). False when absent or
// the list is malformed.
bool FindPrometheusLabel(std::string_view labels, std::string_view key, std::string_view& value);

// Calls visit(const PrometheusSample&) for each sample line of `text`.
template <typename Visitor>
PrometheusParseResult ParsePrometheusText(std::string_view text, size_t max_bytes,
                                          Visitor&& visit) {
  PrometheusParseResult result;
  if (text.size() > max_bytes) {
    result.ok = false;
    return result;
  }
  size_t pos = 0;
  PrometheusSample sample;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (line.size() > kMaxPrometheusLineBytes || !ParsePrometheusLine(line.substr(first), sample)) {
      ++result.malformed;
      continue;
    }
    ++result.samples;
    visit(static_cast<const PrometheusSample&>(sample));
  }
  return result;
}

}  // namespace tokenway
