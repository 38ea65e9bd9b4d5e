#include "routing/prometheus_parser.h"

#include <cmath>
#include <cstdlib>
#include <limits>

namespace tokenway {

namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || (c >= '0' && c <= '9');
}

// Index just past the closing quote of a quoted label value starting at `i` (the opening quote),
// or npos when unterminated.
size_t SkipQuoted(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

// Walks `name="value",...` calling f(key, value) for each pair; false on malformed input.
template <typename F>
bool ForEachLabel(std::string_view labels, F&& f) {
  size_t i = 0;
  while (i < labels.size()) {
    while (i < labels.size() && (labels[i] == ' ' || labels[i] == '\t')) ++i;
    if (i == labels.size()) break;
    size_t key_start = i;
    if (!IsNameStart(labels[i])) return false;
    while (i < labels.size() && IsNameChar(labels[i])) ++i;
    std::string_view key = labels.substr(key_start, i - key_start);
    while (i < labels.size() && labels[i] == ' ') ++i;
    if (i >= labels.size() || labels[i] != '=') return false;
    ++i;
    while (i < labels.size() && labels[i] == ' ') ++i;
    if (i >= labels.size() || labels[i] != '"') return false;
    size_t close = SkipQuoted(labels, i);
    if (close == std::string_view::npos) return false;
    if (f(key, labels.substr(i + 1, close - i - 2))) return true;
    i = close;
    while (i < labels.size() && labels[i] == ' ') ++i;
    if (i < labels.size()) {
      if (labels[i] != ',') return false;
      ++i;
    }
  }
  return true;
}

bool ParseValue(std::string_view s, double& out) {
  if (s.empty() || s.size() > 64) return false;
  if (s == "NaN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (s == "+Inf" || s == "Inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  char buf[65];
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool allowed =
        (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E';
    if (!allowed) return false;
    buf[i] = c;
  }
  buf[s.size()] = '\0';
  char* end = nullptr;
  out = std::strtod(buf, &end);
  return end == buf + s.size();
}

}  // namespace

bool ParsePrometheusLine(std::string_view line, PrometheusSample& out) {
  size_t i = 0;
  if (line.empty() || !IsNameStart(line[0])) return false;
  while (i < line.size() && IsNameChar(line[i])) ++i;
  out.name = line.substr(0, i);
  out.labels = {};
  if (i < line.size() && line[i] == '{') {
    size_t start = i + 1;
    size_t j = start;
    for (;;) {
      if (j >= line.size()) return false;
      if (line[j] == '"') {
        j = SkipQuoted(line, j);
        if (j == std::string_view::npos) return false;
        continue;
      }
      if (line[j] == '}') break;
      ++j;
    }
    out.labels = line.substr(start, j - start);
    if (!ForEachLabel(out.labels, [](std::string_view, std::string_view) { return false; })) {
      return false;
    }
    i = j + 1;
  }
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  size_t vstart = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  if (!ParseValue(line.substr(vstart, i - vstart), out.value)) return false;
  // An optional integer timestamp may follow; anything else is malformed.
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  for (size_t k = i; k < line.size(); ++k) {
    char c = line[k];
    if (!((c >= '0' && c <= '9') || c == '-' || c == ' ')) return false;
  }
  return true;
}

bool FindPrometheusLabel(std::string_view labels, std::string_view key, std::string_view& value) {
  bool found = false;
  bool well_formed = ForEachLabel(labels, [&](std::string_view k, std::string_view v) {
    if (k != key) return false;
    value = v;
    found = true;
    return true;
  });
  return well_formed && found;
}

}  // namespace tokenway
