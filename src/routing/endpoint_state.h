// EndpointState: the live, shared view of one model-server endpoint.
//
// One object per endpoint URL for the life of the process; it survives config reloads so that
// in-flight counts, health and ejection carry over. Every worker updates it with relaxed atomics
// at pick and completion time (no mutex on the request path); the control thread writes the
// active-health verdict; the admin thread reads it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace tokenway {

struct PassiveHealthConfig;

struct EndpointState {
  explicit EndpointState(std::string url_in) : url(std::move(url_in)) {}

  const std::string url;

  std::atomic<int32_t> in_flight{0};
  std::atomic<bool> healthy{true};           // active health check verdict
  std::atomic<int64_t> ejected_until_ns{0};  // passive outlier ejection (monotonic clock)
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> consecutive_ejections{0};  // drives the exponential back-off
  std::atomic<uint64_t> ejections_total{0};
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> failures_total{0};
  std::atomic<uint32_t> health_failures{0};   // control thread only
  std::atomic<uint32_t> health_successes{0};  // control thread only

  // May a new request be sent here? Called by pickers' callers on worker threads.
  bool Eligible(int64_t now_ns) const {
    return healthy.load(std::memory_order_relaxed) &&
           now_ns >= ejected_until_ns.load(std::memory_order_relaxed);
  }
  bool Ejected(int64_t now_ns) const {
    return now_ns < ejected_until_ns.load(std::memory_order_relaxed);
  }

  // Outcome feedback from the forwarding code (worker threads). A failure is a connect error,
  // a 5xx, a timeout or a broken response; enough in a row eject the endpoint for a back-off
  // that doubles with each consecutive ejection.
  void RecordSuccess();
  void RecordFailure(const PassiveHealthConfig& config, int64_t now_ns);
};

}  // namespace tokenway
