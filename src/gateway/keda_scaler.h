// KedaScaler: KEDA's external scaler (gRPC service externalscaler.ExternalScaler: IsActive,
// StreamIsActive, GetMetricSpec, GetMetrics) over the pools' scaling signals, so a ScaledObject
// scales a pool's model servers on token throughput, queue depth, saturation or the gateway's
// desired-replica recommendation — and from zero, since a pool with requests waiting for its
// first endpoint is active.
//
// The gateway builds one when `autoscaling.keda` is configured, starts it on the control thread
// after the first scaling signals exist, and stops it at exit. The calls run on gRPC's own
// threads (synchronous API) and read only thread-safe state: ScalingSignals::Find (a short lock
// the request path never takes) and the workers' relaxed atomic per-pool counts of requests
// waiting for an endpoint, so IsActive sees a scale-from-zero wait at once rather than at the
// next once-a-second update. The pool is looked up on every call, so reloads that add or remove
// pools need nothing here.
//
// A ScaledObject's trigger metadata (ScaledObjectRef.scalerMetadata) selects what is served:
//   pool    the pool's name (default: the ScaledObject's name)
//   metric  desired_replicas (default) | queue_depth | output_tokens_per_second |
//           input_tokens_per_second | saturation
//   target  the target value per replica (default per metric, DefaultScalerTarget)
// An unknown pool is NOT_FOUND; a bad metric or target is INVALID_ARGUMENT; each call is counted
// in tokenway_keda_requests_total{method, outcome}.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/scaling_signals.h"
#include "telemetry/prometheus_text.h"
#include "tokenway/status.h"

namespace grpc {
class Server;
}

namespace tokenway {

struct WorkerMetrics;

enum class ScalerMetric : uint8_t {
  kDesiredReplicas,
  kQueueDepth,
  kOutputTokensPerSecond,
  kInputTokensPerSecond,
  kSaturation,
  kCount
};

// "desired_replicas", ... (the `metric` metadata values).
std::string_view ScalerMetricName(ScalerMetric metric);
// The target when the trigger gives none: 1 replica's worth for desired_replicas (so the HPA's
// AverageValue arithmetic yields the recommendation itself), 4 waiting requests per replica,
// 1000 output and 8000 input tokens/s per replica, saturation 0.75.
double DefaultScalerTarget(ScalerMetric metric);
// The metric's value for a pool, as KEDA receives it.
double ScalerMetricValue(const PoolScalingSignals& signals, ScalerMetric metric);
// Whether the pool needs its model servers: requests waiting for an endpoint now
// (`waiting_now`), requests in flight or queued (gateway queue or engine waiting) at the last
// update, or any token throughput over the pool's autoscaling window.
bool PoolIsActive(const PoolScalingSignals& signals, int64_t waiting_now);

// What one ScaledObject trigger asks for, from its metadata.
struct ScalerQuery {
  std::string pool;
  ScalerMetric metric = ScalerMetric::kDesiredReplicas;
  double target = 1;
  // "<pool>-<metric>" lowercased, every character outside [a-z0-9-] turned into '-': valid as
  // a Kubernetes external metric name (KEDA prefixes "s<trigger index>-").
  std::string metric_name;
};
// `metadata` holds the trigger's metadata (only pool, metric and target are read);
// `object_name` is the ScaledObject's name. The error explains what is wrong.
StatusOr<ScalerQuery> ParseScalerQuery(const std::map<std::string, std::string>& metadata,
                                       std::string_view object_name);

class KedaScaler {
 public:
  enum class Method : uint8_t { kIsActive, kStreamIsActive, kGetMetricSpec, kGetMetrics, kCount };
  enum class Outcome : uint8_t { kOk, kNotFound, kInvalidArgument, kCount };

  // `signals` and `workers` outlive the scaler.
  KedaScaler(const ScalingSignals& signals, std::vector<const WorkerMetrics*> workers);
  ~KedaScaler();  // Stop()
  KedaScaler(const KedaScaler&) = delete;
  KedaScaler& operator=(const KedaScaler&) = delete;

  // Control thread, once: binds `listen` ("ip:port") and serves on gRPC's threads. Returns the
  // bound port; an error names the address.
  StatusOr<uint16_t> Start(const std::string& listen);
  // Control thread: open StreamIsActive streams end with UNAVAILABLE (KEDA reconnects, to
  // another replica), calls in progress finish, then the listener closes. Idempotent.
  void Stop();

  // Control thread (admin listener): tokenway_keda_requests_total and tokenway_keda_streams.
  void RenderMetrics(PrometheusText& t) const;

 private:
  class Service;  // the gRPC service; its methods run on gRPC's threads and call these:

  // One call's trigger, parsed, and its pool's signals as of now (or why not, counted).
  struct Answer {
    Outcome outcome = Outcome::kOk;
    std::string error;  // when not kOk
    ScalerQuery query;
    PoolScalingSignals signals;
    int64_t waiting_now = 0;
  };
  Answer Lookup(const std::map<std::string, std::string>& metadata, std::string_view object_name,
                Method method) const;
  // The pool's last signals and its requests waiting for an endpoint now; nullopt: no such pool.
  std::optional<std::pair<PoolScalingSignals, int64_t>> Current(const std::string& pool) const;
  // Waits `period` or until Stop(); false once stopping.
  bool WaitNextCheck(std::chrono::milliseconds period) const;
  int64_t WaitingForEndpoint(uint16_t pool_slot) const;

  const ScalingSignals& signals_;
  std::vector<const WorkerMetrics*> workers_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex stop_mu_;
  mutable std::condition_variable stop_cv_;
  bool stopping_ = false;  // under stop_mu_
  mutable std::array<std::array<std::atomic<uint64_t>, static_cast<size_t>(Outcome::kCount)>,
                     static_cast<size_t>(Method::kCount)>
      requests_{};
  std::atomic<int64_t> open_streams_{0};
};

}  // namespace tokenway
