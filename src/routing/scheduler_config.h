// SchedulerConfig: the typed configuration of a pool's scheduling profile
// (pools[].scheduler in YAML; docs/configuration.md). Header-only so the config loader can
// validate names without linking the routing library.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
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

// The `consistent-prefix` scorer (routing/consistent_prefix_scorer.h): the leading prompt blocks
// that make a request's affinity key, and how far above the mean load an endpoint may go before
// its prefix groups spill to the next endpoint of their rendezvous order.
struct AffinityConfig {
  uint32_t blocks = 16;   // leading blocks of the key (16 × 64 B: the first 1 KiB of the prompt)
  double epsilon = 0.25;  // bound = ceil((1 + epsilon) × (total load + 1) / candidates)
};

// The `predicted-latency` scorer (routing/predicted_latency_scorer.h): the objective a request
// without x-slo-* headers is scored against, how many finished streams an endpoint's model needs
// before its predictions count, and whether sheddable requests no endpoint is predicted to serve
// within their objective (their headers', or a configured ttft/tpot) are refused (429) instead of
// sent.
struct SloConfig {
  Duration ttft = std::chrono::seconds(1);
  Duration tpot = std::chrono::milliseconds(50);
  uint32_t min_samples = 32;
  bool shed = true;
  // ttft or tpot was configured: requests without x-slo-* headers may be refused for the pool's
  // objective too (a default objective nobody chose refuses nothing).
  bool objective_set = false;
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
  AffinityConfig affinity;
  // Pools larger than this score a sample of this many random candidates plus the ones the
  // scorers nominate (prefix holders, rendezvous choices) instead of every candidate; 0: all.
  uint32_t sample = 0;
  SloConfig slo;
  // A predicted-latency scorer is configured: the request path feeds the endpoints' latency
  // models and reads requests' x-slo-* headers.
  bool PredictsLatency() const {
    return std::any_of(scorers.begin(), scorers.end(),
                       [](const ScorerConfig& s) { return s.name == "predicted-latency"; });
  }
};

inline constexpr std::string_view kScorerNames[] = {
    "queue-depth",      "kv-cache", "least-request",      "lora-affinity",     "prefix-cache",
    "session-affinity", "capacity", "outstanding-tokens", "consistent-prefix", "predicted-latency"};
inline constexpr std::string_view kFilterNames[] = {"saturation"};
inline constexpr std::string_view kSchedulerPickerNames[] = {"max-score", "weighted-random",
                                                             "power-of-two"};
inline constexpr std::string_view kSchedulerPresets[] = {"gie-default", "tokenway"};

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
// max-score. tokenway's: the prefix index and replica-consistent prefix affinity with bounded
// load, balanced by queue depth, KV cache and outstanding tokens, a strong LoRA-adapter
// affinity (it decides nothing in pools without adapters), scoring a sample of 64 (plus the
// nominated endpoints) in pools larger than that (docs/benchmarks.md, "The tokenway
// preset"). False for an unknown preset.
inline bool ExpandSchedulerPreset(std::string_view preset, SchedulerConfig& c) {
  if (preset == "gie-default") {
    c.scorers = {{"queue-depth", 2}, {"kv-cache", 2}, {"prefix-cache", 3}};
    c.picker = "max-score";
    return true;
  }
  if (preset == "tokenway") {
    c.scorers = {{"prefix-cache", 3}, {"consistent-prefix", 3},  {"queue-depth", 2},
                 {"kv-cache", 1},     {"outstanding-tokens", 2}, {"lora-affinity", 8}};
    c.picker = "max-score";
    c.sample = 64;
    return true;
  }
  return false;
}

}  // namespace tokenway
