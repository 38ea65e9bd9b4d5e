#include "telemetry/prometheus_text.h"

#include <cmath>
#include <cstdio>

namespace tokenway {
namespace {

void AppendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"') {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {  // printf spells it "nan" or "-nan"; the format says "NaN"
    out.append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out.append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%.15g", v);
  out.append(buf, static_cast<size_t>(n));
}

}  // namespace

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ");
  // HELP text escapes backslash and line feed (but not quotes).
  for (char c : help) {
    if (c == '\\') {
      out_.append("\\\\");
    } else if (c == '\n') {
      out_.append("\\n");
    } else {
      out_.push_back(c);
    }
  }
  out_.push_back('\n');
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void PrometheusText::Head(std::string_view name, std::span<const Label> labels,
                          std::string_view extra_key, std::string_view extra_value) {
  out_.append(name);
  if (labels.size() == 0 && extra_key.empty()) return;
  out_.push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out_.push_back(',');
    first = false;
    out_.append(k).append("=\"");
    AppendEscaped(out_, v);
    out_.push_back('"');
  }
  if (!extra_key.empty()) {
    if (!first) out_.push_back(',');
    out_.append(extra_key).append("=\"").append(extra_value).append("\"");
  }
  out_.push_back('}');
}

void PrometheusText::Sample(std::string_view name, std::initializer_list<Label> labels,
                            double value) {
  Head(name, labels);
  out_.push_back(' ');
  AppendNumber(out_, value);
  out_.push_back('\n');
}

void PrometheusText::Sample(std::string_view name, std::span<const Label> labels, double value) {
  Head(name, labels);
  out_.push_back(' ');
  AppendNumber(out_, value);
  out_.push_back('\n');
}

void PrometheusText::Sample(std::string_view name, std::initializer_list<Label> labels,
                            uint64_t value) {
  Head(name, labels);
  out_.push_back(' ');
  out_.append(std::to_string(value));
  out_.push_back('\n');
}

void PrometheusText::Histogram(std::string_view name, std::initializer_list<Label> labels,
                               const double* bounds, const uint64_t* counts, size_t n_bounds,
                               uint64_t inf, double sum) {
  std::string bucket(name);
  bucket.append("_bucket");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < n_bounds; ++i) {
    cumulative += counts[i];
    std::string le;
    AppendNumber(le, bounds[i]);
    Head(bucket, labels, "le", le);
    out_.push_back(' ');
    out_.append(std::to_string(cumulative));
    out_.push_back('\n');
  }
  cumulative += inf;
  Head(bucket, labels, "le", "+Inf");
  out_.push_back(' ');
  out_.append(std::to_string(cumulative));
  out_.push_back('\n');
  Head(std::string(name) + "_sum", labels);
  out_.push_back(' ');
  AppendNumber(out_, sum);
  out_.push_back('\n');
  Head(std::string(name) + "_count", labels);
  out_.push_back(' ');
  out_.append(std::to_string(cumulative));
  out_.push_back('\n');
}

}  // namespace tokenway
