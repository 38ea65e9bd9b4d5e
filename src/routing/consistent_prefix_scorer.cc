#include "routing/consistent_prefix_scorer.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>

#include "routing/endpoint_state.h"

namespace tokenway {

namespace {

// The endpoint's load as every replica can see it alike (see the header).
double Load(const ScoringContext& ctx, const EndpointState& s) {
  if (s.engine.Fresh(ctx.now_ns, ctx.stale_after_ns)) {
    return static_cast<double>(s.engine.waiting.load(std::memory_order_relaxed)) +
           static_cast<double>(s.engine.running.load(std::memory_order_relaxed)) +
           static_cast<double>(std::max(0, s.sent_since_scrape.load(std::memory_order_relaxed)));
  }
  return static_cast<double>(std::max(0, s.in_flight.load(std::memory_order_relaxed)));
}

}  // namespace

ConsistentPrefixScorer::ConsistentPrefixScorer(const AffinityConfig& config, uint32_t endpoints)
    : config_(config),
      endpoints_(endpoints),
      url_hash_(std::make_unique<std::atomic<uint64_t>[]>(endpoints)) {
  if (config_.blocks == 0) config_.blocks = 1;
}

uint64_t ConsistentPrefixScorer::Key(const ScoringContext& ctx) const {
  if (ctx.prefix_blocks.empty()) return 0;
  size_t k = std::min<size_t>(ctx.prefix_blocks.size(), config_.blocks);
  return ctx.prefix_blocks[k - 1] | 1;  // never 0
}

uint64_t ConsistentPrefixScorer::UrlHash(const PickCandidate& c) const {
  const uint64_t h = XXH3_64bits(c.state->url.data(), c.state->url.size()) | 1;
  // Racing workers compute the same value; either store is right.
  if (c.index < endpoints_) url_hash_[c.index].store(h, std::memory_order_relaxed);
  return h;
}

void ConsistentPrefixScorer::Nominate(const ScoringContext& ctx,
                                      std::span<const PickCandidate> candidates,
                                      Nominations& out) const {
  const uint64_t key = Key(ctx);
  if (key == 0 || candidates.empty()) return;
  // The kNominated highest weights, kept sorted (descending) by insertion.
  uint64_t weight[kNominated] = {};
  uint32_t pos[kNominated] = {};
  uint32_t kept = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    uint64_t w = Weight(key, candidates[i]);
    if (kept == kNominated && w <= weight[kNominated - 1]) continue;
    uint32_t j = kept < kNominated ? kept++ : kNominated - 1;
    while (j > 0 && weight[j - 1] < w) {
      weight[j] = weight[j - 1];
      pos[j] = pos[j - 1];
      --j;
    }
    weight[j] = w;
    pos[j] = static_cast<uint32_t>(i);
  }
  for (uint32_t j = 0; j < kept; ++j) out.push_back(pos[j]);
}

void ConsistentPrefixScorer::Score(const ScoringContext& ctx,
                                   std::span<const PickCandidate> candidates,
                                   std::span<double> scores) const {
  for (size_t i = 0; i < candidates.size(); ++i) scores[i] = 0;
  const uint64_t key = Key(ctx);
  if (key == 0 || candidates.empty()) return;
  // Loads are kept in `scores` until the choice is made.
  double total = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    scores[i] = Load(ctx, *candidates[i].state);
    total += scores[i];
  }
  const double bound =
      std::ceil((1.0 + config_.epsilon) * (total + 1.0) / static_cast<double>(candidates.size()));
  // The least-loaded endpoint is always under the bound, so `best` is always set.
  size_t best = 0;
  uint64_t best_weight = 0;
  bool found = false;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (scores[i] >= bound) continue;
    uint64_t w = Weight(key, candidates[i]);
    if (!found || w > best_weight) {
      best = i;
      best_weight = w;
      found = true;
    }
  }
  for (size_t i = 0; i < candidates.size(); ++i) scores[i] = 0;
  scores[best] = 1;
}

}  // namespace tokenway
