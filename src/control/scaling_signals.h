// ScalingSignals: per-pool signals an autoscaler acts on — token throughput, queue depth,
// saturation 0..1 and a desired replica count — derived once a second from the workers' token
// counters and the endpoints' live state.
//
// The control thread calls Update() from a timer; the admin listener (same thread) reads
// Current() at scrape time and the KEDA scaler (gateway/keda_scaler.h, gRPC's threads) reads
// Find() per call, so both readers take a short lock that the request path never sees: it only
// writes the per-worker counters Update() reads.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"

namespace tokenway {

// Scaling signals of a pool (pools[].autoscaling, filled by the YAML walk in control/config.cc):
// what one endpoint of capacity 1.0 should carry, from which the desired replica count is derived.
struct AutoscalingConfig {
  double target_utilisation = 0.75;  // desired saturation of the pool, (0, 1]
  // Output tokens/s one endpoint of capacity 1.0 sustains at full load; 0: unknown, the
  // recommendation then follows measured saturation only.
  double endpoint_output_tokens_per_second = 0;
  uint32_t min_replicas = 1;
  uint32_t max_replicas = 0;                   // 0: no upper bound
  Duration window = std::chrono::seconds(30);  // throughput averaging window
};

// KEDA's external scaler (top-level autoscaling.keda, filled by control/config.cc): a gRPC
// listener that serves these signals to KEDA (gateway/keda_scaler.h). Off unless configured.
struct KedaScalerConfig {
  bool enabled = false;
  std::string listen;  // "ip:port"; port 0: the kernel picks one (logged)
};

struct Runtime;
struct Pool;
struct WorkerMetrics;

struct PoolScalingSignals {
  std::string pool;
  uint16_t metrics_slot = 0;            // MetricSlots::pools (WorkerMetrics::pools index)
  double input_tokens_per_second = 0;   // over autoscaling.window
  double output_tokens_per_second = 0;  // over autoscaling.window
  double queue_depth = 0;               // waiting in the gateway's queue plus in the engines
  double saturation = 0;                // 0..1; 1 while requests wait in the gateway's queue
  uint32_t ready_endpoints = 0;         // healthy, not ejected
  double ready_capacity = 0;            // sum of their relative capacities
  uint32_t desired_replicas = 0;        // recommendation, in endpoints of capacity 1.0
  uint64_t in_flight = 0;               // requests the gateway has sent to the pool's endpoints
};

// One endpoint's saturation 0..1: the largest of its KV-cache utilisation, its engine queue
// against the pool's queue_threshold and its in-flight count against max_in_flight (when set).
// Signals that are not fresh count as unknown and leave only the in-flight term.
double EndpointSaturation(const Pool& pool, size_t endpoint, int64_t now_ns);

// The replica recommendation: enough capacity-1.0 endpoints to carry the measured output
// throughput (when the per-endpoint figure is configured) and to bring the measured saturation
// down to the target; one more than now while requests queue in the gateway; within
// [min_replicas, max_replicas].
uint32_t DesiredReplicas(const AutoscalingConfig& config, double output_tokens_per_second,
                         double saturation, double ready_capacity, uint32_t ready_endpoints,
                         bool gateway_queue_nonempty);

class ScalingSignals {
 public:
  // Control thread, about once a second.
  void Update(const Runtime& rt, std::span<WorkerMetrics* const> workers, int64_t now_ns);
  // Any thread: the last Update()'s result, every pool or one (nullopt: no such pool in the
  // configuration the last Update() saw).
  std::vector<PoolScalingSignals> Current() const;
  std::optional<PoolScalingSignals> Find(std::string_view pool) const;

 private:
  struct Point {
    int64_t t_ns;
    uint64_t input;
    uint64_t output;
  };
  mutable std::mutex mu_;
  std::map<std::string, std::deque<Point>> history_;  // by pool name
  std::vector<PoolScalingSignals> current_;
};

}  // namespace tokenway
