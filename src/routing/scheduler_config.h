// SchedulerConfig: the typed configuration of a pool's scheduling profile
// (pools[].scheduler in YAML; docs/configuration.md). Header-only so the config loader can
// validate names without linking the routing library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "routing/prefix_index.h"

namespace tokenway {

struct ScorerConfig {
  std::string name;
  double weight = 1.0;
};

// A filter by name with its parameters; today only `saturation` has (and uses) these.
struct FilterConfig {
  std::string name;
  uint32_t queue_threshold = 5;  // GIE's default
  double kv_threshold = 0.8;     // GIE's default
};

struct SchedulerConfig {
  bool enabled = false;  // false: the pool uses its simple `policy`
  std::string preset;    // "gie-default" or empty; when set, `scorers`/`picker` hold its expansion
  std::vector<FilterConfig> filters;
  std::vector<ScorerConfig> scorers;
  std::string picker = "max-score";
  PrefixIndexConfig prefix;
  // Request header whose value is the session-affinity key (e.g. "x-session-id"); empty: the
  // request's `user` field only.
  std::string session_header;
};

inline constexpr std::string_view kScorerNames[] = {
    "queue-depth",  "kv-cache",         "least-request", "lora-affinity",
    "prefix-cache", "session-affinity", "capacity",      "outstanding-tokens"};
inline constexpr std::string_view kFilterNames[] = {"saturation"};
inline constexpr std::string_view kSchedulerPickerNames[] = {"max-score", "weighted-random",
                                                             "power-of-two"};
inline constexpr std::string_view kSchedulerPresets[] = {"gie-default"};

template <size_t N>
bool IsKnownName(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

template <size_t N>
std::string JoinNames(const std::string_view (&names)[N]) {
  std::string out;
  for (auto n : names) out.append(out.empty() ? "" : ", ").append(n);
  return out;
}

// Fills scorers and picker for a preset. GIE's default profile: queue 2, KV cache 2, prefix 3,
// max-score. False for an unknown preset.
inline bool ExpandSchedulerPreset(std::string_view preset, SchedulerConfig& c) {
  if (preset == "gie-default") {
    c.scorers = {{"queue-depth", 2}, {"kv-cache", 2}, {"prefix-cache", 3}};
    c.picker = "max-score";
    return true;
  }
  return false;
}

}  // namespace tokenway
