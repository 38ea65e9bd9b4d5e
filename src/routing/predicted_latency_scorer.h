// PredictedLatencyScorer (`predicted-latency`): scores each candidate by the headroom its
// predicted TTFT and TPOT leave under the request's objective — 1 − max(TTFT/SLO, TPOT/SLO),
// clamped to [0, 1] — from the endpoint's online latency model (routing/latency_predictor.h).
// The prediction already knows the prompt part the endpoint is believed to cache, so an endpoint
// with the prefix keeps winning until its queue eats the headroom, then requests spill to the
// endpoint with the most room. An endpoint whose model has not seen `slo.min_samples` streams
// borrows the model of the first trained candidate; with no trained candidate every candidate
// scores 1 (the scorer abstains) and nothing is refused. The TPOT term counts once a TPOT model is
// trained (streams of two tokens or more) and for requests that may produce more than one token;
// embeddings are not scored. Writes each candidate's predictions to ScoringContext::predictions
// for the picker (report, early refusal).
#pragma once

#include "routing/scheduler_config.h"
#include "routing/scorer.h"

namespace tokenway {

class PredictedLatencyScorer final : public Scorer {
 public:
  explicit PredictedLatencyScorer(const SloConfig& config)
      : min_samples_(config.min_samples),
        ttft_s_(static_cast<double>(config.ttft.count()) / 1e9),
        tpot_s_(static_cast<double>(config.tpot.count()) / 1e9) {}
  void Score(const ScoringContext& ctx, std::span<const PickCandidate> candidates,
             std::span<double> scores) const override;
  std::string_view name() const override { return "predicted-latency"; }

 private:
  uint32_t min_samples_;
  double ttft_s_, tpot_s_;  // the objective of requests that bring none
};

}  // namespace tokenway
