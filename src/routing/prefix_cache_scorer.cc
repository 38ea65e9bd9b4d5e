#include "routing/prefix_cache_scorer.h"

#include "routing/prefix_index.h"

namespace tokenway {

void PrefixCacheScorer::Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
                              std::span<double> scores) const {
  const auto total = static_cast<uint32_t>(ctx.prefix_blocks.size());
  if (total == 0 || !ctx.prefix_index) {
    for (double& s : scores) s = 0;
    return;
  }
  // One walk over the blocks for the whole pool; endpoints not in the match hold nothing.
  const PrefixMatch match =
      ctx.prefix_match ? *ctx.prefix_match : ctx.prefix_index->MatchAll(ctx.prefix_blocks);
  const uint32_t block_bytes = ctx.prefix_index->config().block_bytes;
  const auto all = static_cast<double>(PrefixIndex::CoveredBytes(block_bytes, total));
  for (size_t i = 0; i < candidates.size(); ++i) {
    uint32_t matched = match.count ? match.BlocksOf(candidates[i].index) : 0;
    scores[i] =
        matched ? static_cast<double>(PrefixIndex::CoveredBytes(block_bytes, matched)) / all : 0;
  }
}

void PrefixCacheScorer::Nominate(const ScoringContext& ctx,
                                 std::span<const PickCandidate> candidates,
                                 Nominations& out) const {
  if (ctx.prefix_blocks.empty() || !ctx.prefix_index) return;
  const PrefixMatch match =
      ctx.prefix_match ? *ctx.prefix_match : ctx.prefix_index->MatchAll(ctx.prefix_blocks);
  for (uint32_t k = 0; k < match.count; ++k) {
    size_t pos = CandidatePosition(candidates, match.endpoint[k]);
    if (pos < candidates.size()) out.push_back(static_cast<uint32_t>(pos));
  }
}

}  // namespace tokenway
