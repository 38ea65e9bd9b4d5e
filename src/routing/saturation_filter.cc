#include "routing/saturation_filter.h"

#include "routing/endpoint_state.h"

namespace tokenway {

size_t SaturationFilter::Apply(const ScoringContext& ctx, std::span<const PickCandidate> in,
                               PickCandidate* out) const {
  size_t n = 0;
  for (const PickCandidate& c : in) {
    const EngineSignals& e = c.state->engine;
    if (!e.Fresh(ctx.now_ns, ctx.stale_after_ns)) continue;
    if (e.waiting.load(std::memory_order_relaxed) >= static_cast<int32_t>(config_.queue_threshold))
      continue;
    if (e.kv_utilisation.load(std::memory_order_relaxed) >= config_.kv_threshold) continue;
    out[n++] = c;
  }
  return n;
}

}  // namespace tokenway
