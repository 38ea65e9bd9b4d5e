#include "routing/round_robin_picker.h"

namespace tokenway {

void RoundRobinPicker::Pick(const PickContext&, std::span<const PickCandidate> candidates,
                            FallbackList& out) {
  uint64_t start = next_.fetch_add(1, std::memory_order_relaxed);
  size_t n = candidates.size();
  for (size_t i = 0; i < n && out.size() < FallbackList::kCapacity; ++i) {
    out.push_back(candidates[(start + i) % n].index);
  }
}

}  // namespace tokenway
