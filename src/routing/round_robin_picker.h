// RoundRobinPicker: endpoints in turn, ignoring load. The baseline the benchmark compares with.
#pragma once

#include <atomic>

#include "tokenway/picker.h"

namespace tokenway {

class RoundRobinPicker final : public Picker {
 public:
  void Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
            FallbackList& out) override;
  std::string_view name() const override { return "round-robin"; }

 private:
  std::atomic<uint64_t> next_{0};
};

}  // namespace tokenway
