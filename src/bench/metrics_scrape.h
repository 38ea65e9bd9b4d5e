// Reads an engine's Prometheus /metrics before and after a run, for the prefix-cache hit rate
// and (from tokenway-sim) the number of LoRA adapter loads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenway/status.h"

namespace tokenway::bench {

struct PrefixCacheCounters {
  double queries = 0;     // vllm:prefix_cache_queries_total (tokens), summed over label sets
  double hits = 0;        // vllm:prefix_cache_hits_total
  double lora_loads = 0;  // tokenway_sim_lora_loads_total (the simulator's adapter loads)
};

// Sums the counters in a Prometheus text body.
PrefixCacheCounters ParsePrefixCacheCounters(std::string_view metrics_text);

// GET `url` (http://host:port/path) with a short timeout; returns the body.
StatusOr<std::string> HttpGet(const std::string& url, double timeout_s = 5);

// Scrapes every URL and sums the counters; errors name the URL that failed.
StatusOr<PrefixCacheCounters> ScrapePrefixCache(const std::vector<std::string>& urls);

}  // namespace tokenway::bench
