#include "routing/power_of_two_picker.h"

#include "routing/endpoint_state.h"
#include "routing/least_request_picker.h"

namespace tokenway {

void PowerOfTwoPicker::Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
                            FallbackList& out) {
  size_t n = candidates.size();
  if (n == 1) {
    out.push_back(candidates[0].index);
    return;
  }
  size_t a = ctx.random % n;
  size_t b = (a + 1 + (ctx.random >> 32) % (n - 1)) % n;
  int32_t la = candidates[a].state->in_flight.load(std::memory_order_relaxed);
  int32_t lb = candidates[b].state->in_flight.load(std::memory_order_relaxed);
  out.push_back(candidates[lb < la ? b : a].index);
  PickContext rest = ctx;
  rest.random = ctx.random >> 16;
  AppendByLoad(rest, candidates, out);
}

}  // namespace tokenway
