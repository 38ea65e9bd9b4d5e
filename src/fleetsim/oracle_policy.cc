#include "fleetsim/oracle_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sim/prefix_cache.h"

namespace tokenway::fleetsim {

namespace {

// How much a pick's prefill GPU time weighs against the request's own TTFT. More than 1: a cold
// prefill also evicts other prefixes on that endpoint and duplicates this one, costs the later
// requests pay. 4 did far better than 1 at 64 endpoints and as well at 8 (docs/fleetsim.md).
constexpr double kPrefillWeight = 4;

}  // namespace

OraclePolicy::OraclePolicy(const std::vector<SimulatedEngine>& engines,
                           std::vector<uint32_t> engine_of, double slo_ttft_s, double slo_tpot_s)
    : engines_(engines),
      engine_of_(std::move(engine_of)),
      slo_ttft_s_(slo_ttft_s),
      slo_tpot_s_(slo_tpot_s) {}

OraclePolicy::Prediction OraclePolicy::Predict(const PolicyRequest& request, uint32_t engine,
                                               int64_t now_ns) {
  const SimulatedEngine& slot = engines_[engine];
  const sim::Engine& e = *slot.engine;
  const sim::HardwareProfile& hw = e.config().profile;
  const int64_t bs = e.kv_pool().block_size();
  const int64_t len = std::max<int64_t>(1, request.prompt_tokens);
  Prediction p;
  if (request.tokens && !hashes_.empty()) {
    const size_t max_blocks = static_cast<size_t>((len - 1) / bs);
    p.cached_tokens =
        static_cast<int64_t>(sim::CountCachedPrefixBlocks(e.kv_pool(), hashes_, max_blocks)) * bs;
  }
  const int64_t fresh = len - p.cached_tokens;
  const int64_t budget = std::max(1, hw.max_num_batched_tokens);
  // The running sequences' rest, the queue's prefill as far as the cache does not hold it, ours.
  const int64_t work =
      e.uncomputed_tokens() - e.queued_tokens() + e.queued_uncached_tokens() + fresh;
  const int64_t steps = (work + budget - 1) / budget;
  const int64_t context = e.computed_tokens() + len;
  double ttft_ms = static_cast<double>(steps) * hw.StepMs(std::min(work, budget), context);
  const int64_t running = static_cast<int64_t>(e.num_running());
  const int64_t queued = static_cast<int64_t>(e.num_waiting());
  if (running + queued >= hw.max_num_seqs) {
    // No sequence slot: wait for requests to finish, about one decode step each.
    ttft_ms += static_cast<double>(running + queued + 1 - hw.max_num_seqs) *
               hw.StepMs(running, e.computed_tokens());
  }
  const int64_t free_tokens = e.kv_pool().num_free_blocks() * bs;
  if (free_tokens < work + p.cached_tokens) {
    // The KV pool cannot hold it yet: it waits until running requests drain.
    ttft_ms += static_cast<double>(work) / static_cast<double>(budget) *
               hw.StepMs(budget, e.computed_tokens()) * 4;
  }
  const double speed = slot.speed > 0 ? slot.speed : 1;
  double rest_s = 0;
  if (slot.step_end_ns > now_ns) rest_s = static_cast<double>(slot.step_end_ns - now_ns) / 1e9;
  p.ttft_s = rest_s + ttft_ms / 1e3 / speed;
  p.tpot_s = hw.StepMs(running + 1, context) / 1e3 / speed;
  return p;
}

uint32_t OraclePolicy::Choose(const PolicyRequest& request,
                              std::span<const PickCandidate> candidates, uint64_t random,
                              int64_t now_ns) {
  hashes_.clear();
  if (request.tokens && !candidates.empty()) {
    const sim::Engine& first = *engines_[engine_of_[candidates.front().index]].engine;
    const std::string_view seed_name =
        request.adapter.empty() ? std::string_view(first.config().model_name) : request.adapter;
    sim::ExtendBlockHashes(sim::PrefixHashSeed(seed_name), *request.tokens,
                           first.kv_pool().block_size(), hashes_);
  }
  const bool slo = slo_ttft_s_ > 0 || slo_tpot_s_ > 0;
  const size_t n = candidates.size();
  const size_t offset = n ? static_cast<size_t>(random % n) : 0;
  uint32_t best = candidates[offset].index;
  double best_cost = std::numeric_limits<double>::infinity();
  for (size_t k = 0, i = offset; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
    const uint32_t engine = engine_of_[candidates[i].index];
    const Prediction p = Predict(request, engine, now_ns);
    // What the pick costs the fleet: the GPU time of the prompt tokens it has to compute there
    // (a cold prefill elsewhere takes capacity every later request needs), weighted.
    const SimulatedEngine& slot = engines_[engine];
    const sim::HardwareProfile& hw = slot.engine->config().profile;
    const double fresh =
        static_cast<double>(std::max<int64_t>(0, request.prompt_tokens - p.cached_tokens));
    const double prefill_s =
        fresh * hw.compute_ms_per_token / 1e3 / (slot.speed > 0 ? slot.speed : 1);
    double cost = p.ttft_s + kPrefillWeight * prefill_s;
    if (slo) {
      // Endpoints that keep the request within its SLO (half the TTFT budget kept as headroom
      // for what the model does not see) come first; among the rest the same cost decides, so
      // an overloaded fleet does not give up cache affinity.
      const bool fits = (slo_ttft_s_ <= 0 || p.ttft_s <= 0.5 * slo_ttft_s_) &&
                        (slo_tpot_s_ <= 0 || p.tpot_s <= slo_tpot_s_);
      if (!fits) cost += 1e3;
    }
    if (cost < best_cost) {
      best_cost = cost;
      best = candidates[i].index;
    }
  }
  return best;
}

}  // namespace tokenway::fleetsim
