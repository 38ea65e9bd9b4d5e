// LeastRequestPicker: the endpoint with the fewest requests in flight across all workers
// (ties broken at random), then the others in increasing load as fallbacks.
#pragma once

#include "tokenway/picker.h"

namespace tokenway {

class LeastRequestPicker final : public Picker {
 public:
  void Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
            FallbackList& out) override;
  std::string_view name() const override { return "least-request"; }
};

// Appends candidates to `out` in increasing in-flight order, starting the scan at a random
// offset so equal loads are spread; skips indices already in `out`. Shared by pickers.
void AppendByLoad(const PickContext& ctx, std::span<const PickCandidate> candidates,
                  FallbackList& out);

}  // namespace tokenway
