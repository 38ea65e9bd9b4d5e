#include "routing/endpoint_state.h"

#include <xxhash.h>

#include <algorithm>

namespace tokenway {

uint64_t LoraNameHash(std::string_view name) {
  return XXH3_64bits(name.data(), name.size());
}

void EndpointState::RecordSuccess() {
  if (consecutive_failures.load(std::memory_order_relaxed) != 0) {
    consecutive_failures.store(0, std::memory_order_relaxed);
  }
  if (consecutive_ejections.load(std::memory_order_relaxed) != 0) {
    consecutive_ejections.store(0, std::memory_order_relaxed);
  }
}

void EndpointState::RecordFailure(const PassiveHealthConfig& config, int64_t now_ns) {
  failures_total.fetch_add(1, std::memory_order_relaxed);
  uint32_t failures = consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (config.consecutive_failures == 0 || failures < config.consecutive_failures) return;
  // Only one worker performs the ejection for this run of failures.
  uint32_t expected = failures;
  if (!consecutive_failures.compare_exchange_strong(expected, 0, std::memory_order_relaxed)) {
    return;
  }
  uint32_t n = consecutive_ejections.fetch_add(1, std::memory_order_relaxed);
  int64_t base = config.base_ejection.count();
  int64_t cap = config.max_ejection.count();
  int64_t backoff = base;
  for (uint32_t i = 0; i < n && backoff < cap; ++i) backoff *= 2;
  backoff = std::min(backoff, cap);
  ejected_until_ns.store(now_ns + backoff, std::memory_order_relaxed);
  ejections_total.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace tokenway
