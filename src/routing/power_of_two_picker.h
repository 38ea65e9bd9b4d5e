// PowerOfTwoPicker: two endpoints drawn at random, the less loaded one wins (Mitzenmacher's
// power of two choices); fallbacks follow in increasing load. Cheaper than a full scan on large
// pools and avoids the herding of a pure least-request choice between counter updates.
#pragma once

#include "tokenway/picker.h"

namespace tokenway {

class PowerOfTwoPicker final : public Picker {
 public:
  void Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
            FallbackList& out) override;
  std::string_view name() const override { return "power-of-two"; }
};

}  // namespace tokenway
