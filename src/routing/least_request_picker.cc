#include "routing/least_request_picker.h"

#include <algorithm>

#include "routing/endpoint_state.h"

namespace tokenway {

void AppendByLoad(const PickContext& ctx, std::span<const PickCandidate> candidates,
                  FallbackList& out) {
  size_t n = candidates.size();
  size_t offset = n ? ctx.random % n : 0;
  // Selection of the k lowest loads; k is small (FallbackList capacity), n may be large.
  while (out.size() < FallbackList::kCapacity && out.size() < n) {
    int32_t best_load = INT32_MAX;
    size_t best = n;
    for (size_t i = 0; i < n; ++i) {
      const PickCandidate& c = candidates[(offset + i) % n];
      bool taken = false;
      for (uint32_t k = 0; k < out.size(); ++k) {
        if (out[k] == c.index) {
          taken = true;
          break;
        }
      }
      if (taken) continue;
      int32_t load = c.state->in_flight.load(std::memory_order_relaxed);
      if (load < best_load) {
        best_load = load;
        best = (offset + i) % n;
      }
    }
    if (best == n) break;
    out.push_back(candidates[best].index);
  }
}

void LeastRequestPicker::Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
                              FallbackList& out) {
  AppendByLoad(ctx, candidates, out);
}

}  // namespace tokenway
