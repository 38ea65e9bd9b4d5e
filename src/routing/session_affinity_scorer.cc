#include "routing/session_affinity_scorer.h"

#include <xxhash.h>

#include "common/request_inspector.h"
#include "routing/endpoint_state.h"

namespace tokenway {

void SessionAffinityScorer::Score(const ScoringContext& ctx,
                                  std::span<const PickCandidate> candidates,
                                  std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) scores[i] = 0;
  if (!ctx.pick || candidates.empty()) return;
  std::string_view session = ctx.pick->session_key;
  if (session.empty() && ctx.pick->request) session = ctx.pick->request->user;
  if (session.empty()) return;
  uint64_t key = XXH3_64bits(session.data(), session.size());
  size_t best = 0;
  uint64_t best_weight = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::string& url = candidates[i].state->url;
    uint64_t w = XXH3_64bits_withSeed(url.data(), url.size(), key);
    if (i == 0 || w > best_weight) {
      best = i;
      best_weight = w;
    }
  }
  scores[best] = 1;
}

}  // namespace tokenway
