// EndpointState: the live, shared view of one model-server endpoint.
//
// One object per endpoint URL for the life of the process; it survives config reloads so that
// in-flight counts, health and ejection carry over. Every worker updates it with relaxed atomics
// at pick and completion time (no mutex on the request path); the control thread writes the
// active-health verdict; the admin thread reads it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "routing/latency_predictor.h"

namespace tokenway {

// Passive outlier ejection (health.passive): consecutive failures that eject an endpoint, and the
// back-off that doubles with each consecutive ejection up to max_ejection. Filled by the YAML
// walk in control/; read by RecordFailure on worker threads.
struct PassiveHealthConfig {
  uint32_t consecutive_failures = 5;  // 0: never eject
  Duration base_ejection = std::chrono::seconds(10);
  Duration max_ejection = std::chrono::seconds(300);
};

// The engine's own view of its load, from its /metrics (see routing/engine_adapter.h). Written by
// the engine scraper on the control thread, read by scorers on worker threads and by the admin
// thread. Each field is its own relaxed atomic: a reader may see fields from two consecutive
// scrapes, which is harmless for scoring (each value is a snapshot of a moving quantity anyway)
// and keeps the request path free of locks and retry loops. LoRA adapters are kept as hashes of
// their names (LoraNameHash) so a scorer compares integers, never strings.
struct EngineSignals {
  static constexpr uint32_t kMaxLoras = 16;  // adapters beyond this are not tracked

  std::atomic<bool> valid{false};         // last scrape succeeded and carried the core series
  std::atomic<int64_t> updated_at_ns{0};  // monotonic time of the last successful scrape
  std::atomic<int32_t> waiting{0};
  std::atomic<int32_t> running{0};
  std::atomic<float> kv_utilisation{0};  // 0..1
  std::atomic<uint32_t> max_lora{0};
  std::atomic<uint32_t> block_size{0};
  std::atomic<uint32_t> running_lora_count{0};
  std::atomic<uint32_t> waiting_lora_count{0};
  std::atomic<uint64_t> running_lora[kMaxLoras] = {};
  std::atomic<uint64_t> waiting_lora[kMaxLoras] = {};
  std::atomic<uint64_t> scrapes_total{0};
  std::atomic<uint64_t> scrape_failures_total{0};  // fetch errors, bad status, unusable bodies
  std::atomic<uint64_t> stale_total{0};            // times the signals were found too old

  // Valid and no older than `stale_after_ns` at `now_ns`.
  bool Fresh(int64_t now_ns, int64_t stale_after_ns) const {
    return valid.load(std::memory_order_relaxed) &&
           now_ns - updated_at_ns.load(std::memory_order_relaxed) <= stale_after_ns;
  }
  bool LoraRunning(uint64_t hash) const { return Contains(running_lora, running_lora_count, hash); }
  bool LoraWaiting(uint64_t hash) const { return Contains(waiting_lora, waiting_lora_count, hash); }

 private:
  static bool Contains(const std::atomic<uint64_t>* set, const std::atomic<uint32_t>& count,
                       uint64_t hash) {
    uint32_t n = count.load(std::memory_order_relaxed);
    if (n > kMaxLoras) n = kMaxLoras;
    for (uint32_t i = 0; i < n; ++i) {
      if (set[i].load(std::memory_order_relaxed) == hash) return true;
    }
    return false;
  }
};

// Output tokens the gateway assumes for a request that sets no max_tokens, in the decode-token
// estimate of EndpointState::decode_tokens (the gateway and the fleet simulator).
inline constexpr int64_t kDefaultDecodeTokens = 256;

// The hash under which EngineSignals keeps a LoRA adapter name.
uint64_t LoraNameHash(std::string_view name);

// Laid out by who writes what: the counters every worker writes per request sit on their own
// cache lines, apart from the health verdict and capacity every pick reads, so a dispatch on one
// core does not invalidate the line another core's pick is reading.
inline constexpr size_t kCacheLine = 64;

struct EndpointState {
  explicit EndpointState(std::string url_in) : url(std::move(url_in)) {}

  const std::string url;

  // --- read by every pick; written rarely (health checks, ejections, a new Runtime) ---
  std::atomic<bool> healthy{true};           // active health check verdict
  std::atomic<int64_t> ejected_until_ns{0};  // passive outlier ejection (monotonic clock)
  // Relative capacity (pools[].endpoints[].capacity, or its accelerator's): how much work this
  // endpoint takes compared with its peers, read by the `capacity` scorer. Written by the control
  // thread when it builds a Runtime. It lives here rather than in the Runtime because scorers see
  // only EndpointState; the config loader rejects a URL listed with two capacities, so one value
  // holds for every pool that names it.
  std::atomic<double> capacity{1.0};

  // --- written by every worker at dispatch and completion ---
  alignas(kCacheLine) std::atomic<int32_t> in_flight{0};
  // Requests sent here since the engine's last scrape: the engine has not counted them yet, so
  // flow control adds them to its waiting count (reset by each published scrape).
  std::atomic<int32_t> sent_since_scrape{0};
  // Estimated tokens of the in-flight requests still in prefill (prompt tokens, until the first
  // response byte) and still to decode (max_tokens or a default, until completion). Updated by
  // workers at dispatch and completion; read by the outstanding-tokens scorer.
  std::atomic<int64_t> prefill_tokens{0};
  std::atomic<int64_t> decode_tokens{0};
  std::atomic<uint64_t> requests_total{0};

  // --- outcome feedback: written on failures and after a failure run ---
  alignas(kCacheLine) std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> consecutive_ejections{0};  // drives the exponential back-off
  std::atomic<uint64_t> ejections_total{0};
  std::atomic<uint64_t> failures_total{0};
  std::atomic<uint32_t> health_failures{0};   // control thread only
  std::atomic<uint32_t> health_successes{0};  // control thread only

  // --- the engine's view: written by the scraper on the control thread, read by scorers ---
  alignas(kCacheLine) EngineSignals engine;

  // --- what this endpoint's requests took, learned by workers when a stream finishes and read
  // by the predicted-latency scorer at every pick ---
  alignas(kCacheLine) LatencyModel latency;

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
