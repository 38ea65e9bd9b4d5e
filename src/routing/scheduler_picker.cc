#include "routing/scheduler_picker.h"

#include <algorithm>

#include "common/duration.h"
#include "common/request_inspector.h"
#include "routing/endpoint_state.h"
#include "routing/scorer_registry.h"

namespace tokenway {

namespace {

struct Scratch {
  std::vector<double> total;
  std::vector<double> one;
  std::vector<uint64_t> blocks;
  std::vector<PickCandidate> filtered;
  std::vector<uint32_t> order;
  std::vector<PickCandidate> sampled;
  std::vector<uint8_t> marked;     // by position in the pick's candidates; all 0 between picks
  std::vector<double> per_scorer;  // scorer-major, only when the caller asks for scores
  PredictionScratch predictions;
  PredictionScratch all_predictions;  // a refusal's check of the candidates not scored
  std::vector<double> all_scores;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

uint64_t Mix(uint64_t x) {  // splitmix64 step: independent draws from one random value
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

SchedulerPicker::SchedulerPicker(const SchedulerConfig& config, uint32_t endpoints,
                                 int64_t stale_after_ns, std::shared_ptr<PrefixIndex> prefix_index)
    : stale_after_ns_(stale_after_ns), blocks_(config.prefix), sample_(config.sample) {
  blocks_.max_blocks = 0;
  for (const auto& fc : config.filters) {
    if (auto filter = MakeFilter(fc)) filters_.push_back(std::move(filter));
  }
  for (const auto& sc : config.scorers) {
    auto scorer = MakeScorer(sc.name, config, endpoints);
    if (!scorer) continue;
    if (sc.name == "prefix-cache" && !prefix_index_) {
      prefix_index_ = prefix_index && prefix_index->endpoints() == endpoints
                          ? std::move(prefix_index)
                          : std::make_shared<PrefixIndex>(config.prefix, endpoints);
    }
    if (sc.name == "consistent-prefix" && !prefix_index_) {
      // Only the key's leading blocks, unless the prefix index wants them all.
      blocks_.max_blocks = std::min(config.prefix.max_blocks, config.affinity.blocks);
    }
    scorers_.push_back({std::move(scorer), sc.weight});
  }
  if (prefix_index_) blocks_ = prefix_index_->config();
  predicts_ = config.PredictsLatency();
  shed_ = config.slo.shed;
  pool_objective_ = config.slo.objective_set;
  for (const auto& w : scorers_) {
    if (w.scorer->name() == "predicted-latency") predictor_ = w.scorer.get();
  }
  if (config.picker == "weighted-random") choice_ = Choice::kWeightedRandom;
  if (config.picker == "power-of-two") choice_ = Choice::kPowerOfTwo;
}

const std::vector<double>& SchedulerPicker::LastScoresForTest() {
  return ThreadScratch().total;
}

std::span<const PickCandidate> SchedulerPicker::Sample(const ScoringContext& sc,
                                                       std::span<const PickCandidate> all,
                                                       uint64_t random,
                                                       std::vector<PickCandidate>& sampled,
                                                       std::vector<uint8_t>& marked) const {
  const size_t n = all.size();
  if (marked.size() < n) marked.resize(n, 0);
  sampled.clear();
  // The marks are cleared again from the sampled candidates' positions, kept in their `index`
  // field until the end (the candidates are copied back over them last).
  auto take = [&](size_t pos) {
    if (marked[pos]) return;
    marked[pos] = 1;
    sampled.push_back({static_cast<uint32_t>(pos), nullptr});
  };
  Nominations nominated;
  for (const auto& w : scorers_) w.scorer->Nominate(sc, all, nominated);
  for (uint32_t k = 0; k < nominated.size(); ++k) {
    if (nominated[k] < n) take(nominated[k]);
  }
  // Random positions; a repeat is skipped, and the tries are bounded at twice the sample (the
  // pool is larger than the sample, so a short sample is rare and only a little short).
  const size_t want = sampled.size() + sample_;
  uint64_t r = Mix(random ^ 0x5851f42d4c957f2dull);
  for (size_t tries = 0; sampled.size() < want && tries < 2 * size_t{sample_}; ++tries) {
    r = Mix(r);
    __extension__ using U128 = unsigned __int128;
    take(static_cast<size_t>((static_cast<U128>(r) * n) >> 64));
  }
  for (PickCandidate& c : sampled) {
    marked[c.index] = 0;
    c = all[c.index];
    // The scorers read these two lines of every sampled endpoint: start the misses together.
    __builtin_prefetch(&c.state->in_flight);
    __builtin_prefetch(&c.state->engine);
  }
  return sampled;
}

void SchedulerPicker::Pick(const PickContext& ctx, std::span<const PickCandidate> all,
                           FallbackList& out) {
  Scratch& s = ThreadScratch();
  ScoringContext sc;
  sc.pick = &ctx;
  sc.now_ns = ctx.now_ns != 0 ? ctx.now_ns : MonotonicNanos();
  sc.stale_after_ns = stale_after_ns_;
  s.blocks.clear();
  if (ctx.request) {
    sc.model_hash = LoraNameHash(ctx.request->model);
    if (blocks_.max_blocks > 0) {
      PrefixIndex::HashBlocks(ctx.request->model, ctx.request->prompt_text, blocks_.block_bytes,
                              blocks_.max_blocks, s.blocks);
    }
  }
  sc.prefix_blocks = s.blocks;
  sc.prefix_index = prefix_index_.get();
  if (predicts_) {
    s.predictions.made = false;
    sc.predictions = &s.predictions;
  }
  PrefixMatch match;
  if (prefix_index_ && !s.blocks.empty()) {
    match = prefix_index_->MatchAll(s.blocks);
    sc.prefix_match = &match;
  }
  std::span<const PickCandidate> candidates = all;
  if (sample_ > 0 && all.size() > sample_ + Nominations::kCapacity) {
    candidates = Sample(sc, all, ctx.random, s.sampled, s.marked);
  }
  for (const auto& filter : filters_) {
    // In place on the second and later filters: Apply writes index k only after reading it.
    s.filtered.resize(candidates.size());
    size_t kept = filter->Apply(sc, candidates, s.filtered.data());
    if (kept == 0) break;  // keep the last non-empty set
    s.filtered.resize(kept);
    candidates = s.filtered;
  }
  const size_t n = candidates.size();
  s.total.assign(n, 0.0);
  s.one.resize(n);
  const bool keep_scores = ctx.report && ctx.report->scores;
  if (keep_scores) s.per_scorer.resize(scorers_.size() * n);
  for (size_t k = 0; k < scorers_.size(); ++k) {
    const Weighted& w = scorers_[k];
    w.scorer->Score(sc, candidates, s.one);
    for (size_t i = 0; i < n; ++i) s.total[i] += w.weight * s.one[i];
    if (keep_scores) std::copy(s.one.begin(), s.one.end(), s.per_scorer.begin() + k * n);
  }

  uint64_t r1 = Mix(ctx.random);
  uint64_t r2 = Mix(r1);
  size_t offset = n ? r1 % n : 0;
  size_t first = offset;
  switch (choice_) {
    case Choice::kMaxScore:
      for (size_t k = 0, i = offset; k < n; ++k) {
        if (s.total[i] > s.total[first]) first = i;
        if (++i == n) i = 0;
      }
      break;
    case Choice::kWeightedRandom: {
      // A small floor keeps every candidate reachable when all scores are 0.
      constexpr double kFloor = 1e-3;
      double sum = 0;
      for (size_t i = 0; i < n; ++i) sum += s.total[i] + kFloor;
      double x = static_cast<double>(r2 >> 11) * 0x1.0p-53 * sum;
      for (first = 0; first + 1 < n; ++first) {
        x -= s.total[first] + kFloor;
        if (x < 0) break;
      }
      break;
    }
    case Choice::kPowerOfTwo:
      if (n > 1) {
        size_t b = (offset + 1 + r2 % (n - 1)) % n;
        if (s.total[b] > s.total[first]) first = b;
      }
      break;
  }
  if (predicts_) {
    // Refusal needs an objective someone set: the request's headers or the pool's scheduler.slo.
    const bool objective = pool_objective_ || ctx.slo.ttft_s > 0 || ctx.slo.tpot_s > 0;
    if (s.predictions.made && ctx.slo.sheddable && shed_ && objective &&
        s.predictions.best_cost > 1.0) {
      double best = s.predictions.best_cost;
      if (candidates.size() != all.size() && predictor_) {
        // A sample or a filter left endpoints out: "no endpoint" must hold for all of them.
        ScoringContext every = sc;
        every.predictions = &s.all_predictions;
        s.all_scores.resize(all.size());
        predictor_->Score(every, all, s.all_scores);
        if (s.all_predictions.made) best = std::min(best, s.all_predictions.best_cost);
      }
      if (best > 1.0) {
        // No endpoint is predicted to meet the objective of a request that may be refused:
        // refuse it now rather than send it to miss its objective and delay the others.
        if (ctx.report) {
          ctx.report->refused = true;
          ctx.report->prediction.made = true;
          ctx.report->prediction.best_cost = best;
        }
        return;
      }
    }
    if (ctx.report && first < s.predictions.cached.size()) {
      LatencyPrediction& p = ctx.report->prediction;
      p.made = s.predictions.made;
      p.ttft_s = s.predictions.ttft[first];
      p.tpot_s = s.predictions.tpot[first];
      p.best_cost = s.predictions.best_cost;
      p.cached_fraction = s.predictions.cached[first];
    }
  }
  out.push_back(candidates[first].index);
  if (keep_scores) {
    PickScores& ps = *ctx.report->scores;
    ps.filled = true;
    ps.total = s.total[first];
    ps.count = static_cast<uint32_t>(std::min<size_t>(scorers_.size(), PickScores::kCapacity));
    for (uint32_t k = 0; k < ps.count; ++k) {
      ps.names[k] = scorers_[k].scorer->name();
      ps.values[k] = s.per_scorer[k * n + first];
    }
  }
  // Fallbacks: the k best of the rest by descending score (k < FallbackList capacity), O(n log k).
  // Positions start at the random offset so equal scores are not always ordered the same way.
  s.order.clear();
  for (size_t k = 0, i = offset; k < n; ++k) {
    if (i != first) s.order.push_back(static_cast<uint32_t>(i));
    if (++i == n) i = 0;
  }
  size_t k = std::min<size_t>(s.order.size(), FallbackList::kCapacity - 1);
  std::partial_sort(s.order.begin(), s.order.begin() + static_cast<std::ptrdiff_t>(k),
                    s.order.end(), [&](uint32_t a, uint32_t b) { return s.total[a] > s.total[b]; });
  for (size_t j = 0; j < k; ++j) out.push_back(candidates[s.order[j]].index);
  // Endpoints the filters dropped are still better retry targets than none.
  for (size_t i = 0;
       candidates.size() != all.size() && i < all.size() && out.size() < FallbackList::kCapacity;
       ++i) {
    bool taken = false;
    for (uint32_t j = 0; j < out.size(); ++j) taken = taken || out[j] == all[i].index;
    if (!taken) out.push_back(all[i].index);
  }
  if (prefix_index_ && !s.blocks.empty()) {
    // Learning also tells how many leading blocks the endpoint already held: no second walk.
    uint32_t held = prefix_index_->Insert(candidates[first].index, s.blocks, sc.now_ns);
    if (ctx.report) {
      // In units of block_bytes, so the hit/miss counts weigh the prompt's bytes, not its
      // blocks (later blocks are longer).
      const uint32_t bb = prefix_index_->config().block_bytes;
      auto units = [bb](uint32_t blocks) {
        return static_cast<uint32_t>(
            std::min<uint64_t>(PrefixIndex::CoveredBytes(bb, blocks) / bb, UINT32_MAX));
      };
      ctx.report->prefix_blocks = units(static_cast<uint32_t>(s.blocks.size()));
      ctx.report->prefix_matched = units(held);
    }
  }
}

}  // namespace tokenway
