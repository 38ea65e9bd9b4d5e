#include "routing/predicted_latency_scorer.h"

#include <algorithm>
#include <limits>

#include "common/request_inspector.h"
#include "routing/endpoint_state.h"
#include "routing/latency_predictor.h"
#include "routing/prefix_index.h"

namespace tokenway {

void PredictedLatencyScorer::Score(const ScoringContext& ctx,
                                   std::span<const PickCandidate> candidates,
                                   std::span<double> scores) const {
  const size_t n = candidates.size();
  PredictionScratch scratch;
  PredictionScratch& out = ctx.predictions ? *ctx.predictions : scratch;
  out.made = false;
  out.best_cost = 0;
  out.ttft.assign(n, -1.0);
  out.tpot.assign(n, -1.0);
  out.cached.assign(n, 0.0);
  const PickContext* pick = ctx.pick;
  const InspectedRequest* request = pick ? pick->request : nullptr;
  const double prompt_bytes = request ? static_cast<double>(request->prompt_text.size()) : 0.0;
  const uint32_t block_bytes = ctx.prefix_index ? ctx.prefix_index->config().block_bytes : 0;
  // The part of the prompt each candidate is believed to cache (also what the request path
  // teaches the chosen endpoint's model with, so it is written even while the scorer abstains).
  if (ctx.prefix_match && ctx.prefix_match->count && block_bytes && prompt_bytes > 0) {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t held = ctx.prefix_match->BlocksOf(candidates[i].index);
      if (held) {
        out.cached[i] = std::min(
            1.0, static_cast<double>(PrefixIndex::CoveredBytes(block_bytes, held)) / prompt_bytes);
      }
    }
  }
  const LatencyModel* lender = nullptr;
  for (const PickCandidate& c : candidates) {
    if (c.state->latency.Trained(min_samples_)) {
      lender = &c.state->latency;
      break;
    }
  }
  // Embeddings have neither a first token to wait for nor tokens to pace: abstain.
  if (!lender || (request && request->operation == Operation::kEmbeddings)) {
    std::fill(scores.begin(), scores.end(), 1.0);
    return;
  }
  // A request for at most one token has no time per output token to meet.
  const bool paced = !(request && request->max_tokens >= 0 && request->max_tokens <= 1);
  const double slo_ttft = pick && pick->slo.ttft_s > 0 ? pick->slo.ttft_s : ttft_s_;
  const double slo_tpot = pick && pick->slo.tpot_s > 0 ? pick->slo.tpot_s : tpot_s_;
  double prompt_tokens = pick ? static_cast<double>(pick->prompt_tokens) : 0.0;
  if (prompt_tokens <= 0) prompt_tokens = prompt_bytes / 4;
  double best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n; ++i) {
    const EndpointState& state = *candidates[i].state;
    const LatencyFeatures f =
        ComputeLatencyFeatures(state, prompt_tokens, out.cached[i], ctx.now_ns, ctx.stale_after_ns);
    const LatencyModel& model = state.latency.Trained(min_samples_) ? state.latency : *lender;
    const double ttft = model.PredictTtft(f);
    // TPOT models learn only from streams of two tokens or more: until one is trained (its own,
    // else the lender's), the TPOT term stays out of the cost.
    const LatencyModel* tpot_model = state.latency.TpotTrained(min_samples_) ? &state.latency
                                     : lender->TpotTrained(min_samples_)     ? lender
                                                                             : nullptr;
    const double tpot = tpot_model ? tpot_model->PredictTpot(f) : -1.0;
    const double cost = std::max(ttft / slo_ttft, paced && tpot >= 0 ? tpot / slo_tpot : 0.0);
    scores[i] = std::clamp(1.0 - cost, 0.0, 1.0);
    best = std::min(best, cost);
    out.ttft[i] = ttft;
    out.tpot[i] = tpot;
  }
  out.made = true;
  out.best_cost = best;
}

}  // namespace tokenway
