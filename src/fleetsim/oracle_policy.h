// OraclePolicy: a routing policy that exists only in the fleet simulator. It reads every engine's
// true state at the moment of the pick — which prompt blocks its KV cache holds (exact prefix
// match, with the engine's own chained hashes), the tokens still to compute for its queued and
// running requests, its running batch and free KV blocks, and how long its current step still
// runs — and sends the request where its predicted time to first token is smallest, or, with an
// SLO, where the larger of predicted TTFT / SLO TTFT and predicted TPOT / SLO TPOT is smallest
// (the most headroom). No gateway can see this much; the oracle is the bound other policies are
// measured against, not a perfect one (the prediction is a model of the engine's scheduler).
//
// Prediction for engine e, in engine time (÷ speed for virtual time):
//   new      = prompt − tokens of its leading blocks cached on e
//   work     = e.uncomputed_tokens() + new          (what e must compute before our first token)
//   steps    = ⌈work / max_num_batched_tokens⌉
//   TTFT     = rest of e's current step + steps × StepMs(min(work, budget), e's context + prompt)
//              (+ one mean step per request beyond max_num_seqs, + a full drain of e's work when
//               its KV pool cannot hold the new tokens)
//   TPOT     = StepMs(running + 1, context + prompt)
// Cost: one cache lookup per candidate that holds the first block (more for those that hold
// more), O(1) otherwise. Called by FleetSimulator on its thread.
#pragma once

#include <vector>

#include "fleetsim/routing_policy.h"

namespace tokenway::fleetsim {

class OraclePolicy final : public RoutingPolicy {
 public:
  // `engines`: the fleet, indexed like the pool's endpoints through `engine_of` (pool index ->
  // engine index). `slo_ttft_s`, `slo_tpot_s`: the experiment's SLO (<= 0: not constrained).
  OraclePolicy(const std::vector<SimulatedEngine>& engines, std::vector<uint32_t> engine_of,
               double slo_ttft_s, double slo_tpot_s);

  uint32_t Choose(const PolicyRequest& request, std::span<const PickCandidate> candidates,
                  uint64_t random, int64_t now_ns) override;
  std::string_view name() const override { return "oracle"; }

  // Predicted TTFT and TPOT of `request` on engine `engine` at `now_ns`, in virtual seconds.
  // Public for tests.
  struct Prediction {
    double ttft_s = 0;
    double tpot_s = 0;
    int64_t cached_tokens = 0;
  };
  Prediction Predict(const PolicyRequest& request, uint32_t engine, int64_t now_ns);

 private:
  const std::vector<SimulatedEngine>& engines_;
  std::vector<uint32_t> engine_of_;
  double slo_ttft_s_, slo_tpot_s_;
  // The request's chained block hashes under the engine's hash seed; recomputed per request.
  std::vector<uint64_t> hashes_;
};

}  // namespace tokenway::fleetsim
