// PrometheusText: writes the Prometheus text exposition format 0.0.4 (HELP/TYPE once per
// family, escaped label values). Used by the admin thread at scrape time only.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace tokenway {

using Label = std::pair<std::string_view, std::string_view>;

class PrometheusText {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, std::initializer_list<Label> labels, double value);
  void Sample(std::string_view name, std::initializer_list<Label> labels, uint64_t value);
  // A sample whose label set is only known at run time (e.g. configured tenant labels).
  void Sample(std::string_view name, std::span<const Label> labels, double value);
  // A histogram sample set from cumulative-ready bucket counts (not yet cumulative).
  void Histogram(std::string_view name, std::initializer_list<Label> labels, const double* bounds,
                 const uint64_t* counts, size_t n_bounds, uint64_t inf, double sum);
  std::string& str() { return out_; }

 private:
  void Head(std::string_view name, std::initializer_list<Label> labels,
            std::string_view extra_key = {}, std::string_view extra_value = {}) {
    Head(name, std::span<const Label>(labels.begin(), labels.size()), extra_key, extra_value);
  }
  void Head(std::string_view name, std::span<const Label> labels, std::string_view extra_key = {},
            std::string_view extra_value = {});
  std::string out_;
};

}  // namespace tokenway
