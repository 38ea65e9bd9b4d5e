#include "routing/scorer_registry.h"

#include <iterator>

#include "routing/capacity_scorer.h"
#include "routing/consistent_prefix_scorer.h"
#include "routing/kv_cache_scorer.h"
#include "routing/least_request_scorer.h"
#include "routing/lora_affinity_scorer.h"
#include "routing/outstanding_tokens_scorer.h"
#include "routing/predicted_latency_scorer.h"
#include "routing/prefix_cache_scorer.h"
#include "routing/queue_depth_scorer.h"
#include "routing/saturation_filter.h"
#include "routing/session_affinity_scorer.h"

namespace tokenway {

std::unique_ptr<Scorer> MakeScorer(std::string_view name, const SchedulerConfig& config,
                                   uint32_t endpoints) {
  if (name == "queue-depth") return std::make_unique<QueueDepthScorer>();
  if (name == "kv-cache") return std::make_unique<KvCacheScorer>();
  if (name == "least-request") return std::make_unique<LeastRequestScorer>();
  if (name == "lora-affinity") return std::make_unique<LoraAffinityScorer>();
  if (name == "prefix-cache") return std::make_unique<PrefixCacheScorer>();
  if (name == "session-affinity") return std::make_unique<SessionAffinityScorer>();
  if (name == "outstanding-tokens") return std::make_unique<OutstandingTokensScorer>();
  if (name == "capacity") return std::make_unique<CapacityScorer>();
  if (name == "consistent-prefix") {
    return std::make_unique<ConsistentPrefixScorer>(config.affinity, endpoints);
  }
  if (name == "predicted-latency") return std::make_unique<PredictedLatencyScorer>(config.slo);
  return nullptr;
}

const std::vector<std::string>& KnownScorers() {
  static const std::vector<std::string> kNames(std::begin(kScorerNames), std::end(kScorerNames));
  return kNames;
}

std::unique_ptr<Filter> MakeFilter(const FilterConfig& config) {
  if (config.name == "saturation") return std::make_unique<SaturationFilter>(config);
  return nullptr;
}

}  // namespace tokenway
