// OraclePolicy: a routing policy that exists only in the fleet simulator. It reads every engine's
// true state at the moment of the pick — which prompt blocks its KV cache holds (exact prefix
// match, with the engine's own chained hashes), the tokens still to compute for its queued and
// running requests, its running batch and free KV blocks, and how long its current step still
// runs — predicts the request's TTFT and TPOT on every endpoint, and sends it where
//   predicted TTFT + 4 × GPU time of the prompt tokens it must compute there
// is smallest among the endpoints whose predictions meet the SLO (TTFT within half its budget,
// TPOT within its budget); when none does, the smallest among all. The second term is what a
// pick costs the fleet: a cold prefill on an idle endpoint is fast for this request and takes
// capacity from every later one. No gateway can see this much; the oracle is the reference other
// policies are measured against. It is greedy (one request at a time, no look-ahead), so it is
// not a proven upper bound: docs/fleetsim.md shows where it loses.
//
// Prediction for engine e, in engine time (÷ speed for virtual time):
//   new      = prompt − tokens of its leading blocks cached on e
//   work     = rest of e's running sequences + uncached prompt tokens of its queue + new
//              (what e must compute before our first token)
//   steps    = ⌈work / max_num_batched_tokens⌉
//   TTFT     = rest of e's current step + steps × StepMs(min(work, budget), e's context + prompt)
//              (+ one mean step per request beyond max_num_seqs, + a full drain of e's work when
//               its KV pool cannot hold the new tokens)
//   TPOT     = StepMs(running + 1, context + prompt)
// Without an SLO it minimises predicted TTFT + prefill GPU time.
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
