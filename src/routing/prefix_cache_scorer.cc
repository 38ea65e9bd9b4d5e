#include "routing/prefix_cache_scorer.h"

#include "routing/prefix_index.h"

namespace tokenway {

void PrefixCacheScorer::Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                              std::span<double> scores) const {
  size_t total = ctx.prefix_blocks.size();
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (total == 0 || !ctx.prefix_index) {
      scores[i] = 0;
      continue;
    }
    uint32_t matched = ctx.prefix_index->Match(candidates[i].index, ctx.prefix_blocks);
    scores[i] = static_cast<double>(matched) / static_cast<double>(total);
  }
}

}  // namespace tokenway
