#include "control/scaling_signals.h"

#include <algorithm>
#include <cmath>

#include "control/runtime.h"
#include "telemetry/metrics.h"

namespace tokenway {

double EndpointSaturation(const Pool& pool, size_t endpoint, int64_t now_ns) {
  const EndpointState& s = *pool.endpoints[endpoint].state;
  const FlowControlConfig& fc = pool.flow_config;
  double load = 0;
  if (fc.max_in_flight > 0) {
    load = static_cast<double>(s.in_flight.load(std::memory_order_relaxed)) / fc.max_in_flight;
  }
  const EngineSignals& e = s.engine;
  if (e.Fresh(now_ns, fc.stale_after_ns)) {
    load = std::max(load, static_cast<double>(e.kv_utilisation.load(std::memory_order_relaxed)));
    load = std::max(load, static_cast<double>(e.waiting.load(std::memory_order_relaxed)) /
                              std::max<uint32_t>(fc.queue_threshold, 1));
  }
  return std::clamp(load, 0.0, 1.0);
}

uint32_t DesiredReplicas(const AutoscalingConfig& config, double output_tokens_per_second,
                         double saturation, double ready_capacity, uint32_t ready_endpoints,
                         bool gateway_queue_nonempty) {
  double need = ready_capacity * saturation / config.target_utilisation;
  if (config.endpoint_output_tokens_per_second > 0) {
    need = std::max(need, output_tokens_per_second / (config.endpoint_output_tokens_per_second *
                                                      config.target_utilisation));
  }
  // A hair of tolerance so that exactly-at-target does not round up to one more.
  double desired = std::ceil(need - 1e-9);
  if (gateway_queue_nonempty) desired = std::max(desired, static_cast<double>(ready_endpoints) + 1);
  desired = std::max(desired, static_cast<double>(config.min_replicas));
  if (config.max_replicas) desired = std::min(desired, static_cast<double>(config.max_replicas));
  return static_cast<uint32_t>(std::min(desired, 1e6));
}

void ScalingSignals::Update(const Runtime& rt, std::span<WorkerMetrics* const> workers,
                            int64_t now_ns) {
  std::vector<PoolScalingSignals> out;
  std::lock_guard lock(mu_);
  std::map<std::string, std::deque<Point>> kept;
  for (const auto& pool : rt.pools) {
    PoolScalingSignals s;
    s.pool = pool->name;
    s.metrics_slot = pool->metrics_slot;
    const AutoscalingConfig* config = &pool->autoscaling;

    Point p{now_ns, 0, 0};
    for (const WorkerMetrics* w : workers) {
      const auto& f = w->pools[pool->metrics_slot];
      p.input += f.input_tokens.load(std::memory_order_relaxed);
      p.output += f.output_tokens.load(std::memory_order_relaxed);
    }
    auto& history = kept[pool->name];
    if (auto it = history_.find(pool->name); it != history_.end()) history = std::move(it->second);
    history.push_back(p);
    const int64_t window =
        std::chrono::duration_cast<std::chrono::nanoseconds>(config->window).count();
    while (history.size() > 2 && now_ns - history[1].t_ns >= window) history.pop_front();
    const Point& first = history.front();
    if (now_ns > first.t_ns) {
      double seconds = static_cast<double>(now_ns - first.t_ns) / 1e9;
      s.input_tokens_per_second = static_cast<double>(p.input - first.input) / seconds;
      s.output_tokens_per_second = static_cast<double>(p.output - first.output) / seconds;
    }

    double saturation_sum = 0;
    for (size_t i = 0; i < pool->endpoints.size(); ++i) {
      const PoolEndpoint& ep = pool->endpoints[i];
      const EndpointState& st = *ep.state;
      const EngineSignals& e = st.engine;
      int32_t in_flight = st.in_flight.load(std::memory_order_relaxed);
      if (in_flight > 0) s.in_flight += static_cast<uint64_t>(in_flight);
      if (e.valid.load(std::memory_order_relaxed)) {
        s.queue_depth += static_cast<double>(e.waiting.load(std::memory_order_relaxed));
      }
      if (!st.Eligible(now_ns)) continue;
      ++s.ready_endpoints;
      s.ready_capacity += ep.capacity;
      saturation_sum += EndpointSaturation(*pool, i, now_ns) * ep.capacity;
    }
    size_t queued = 0;
    if (pool->flow) {
      for (const auto& band : pool->flow->Depths()) queued += band.waiting;
    }
    // Requests waiting for a first endpoint (scale from zero) are queued for the pool too.
    for (const WorkerMetrics* w : workers) {
      int64_t waiting =
          w->pools[pool->metrics_slot].waiting_for_endpoint.load(std::memory_order_relaxed);
      if (waiting > 0) queued += static_cast<size_t>(waiting);
    }
    s.queue_depth += static_cast<double>(queued);
    if (s.ready_capacity > 0) s.saturation = saturation_sum / s.ready_capacity;
    if (queued > 0) s.saturation = 1.0;
    s.desired_replicas = DesiredReplicas(*config, s.output_tokens_per_second, s.saturation,
                                         s.ready_capacity, s.ready_endpoints, queued > 0);
    out.push_back(std::move(s));
  }
  history_ = std::move(kept);
  current_ = std::move(out);
}

std::vector<PoolScalingSignals> ScalingSignals::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::optional<PoolScalingSignals> ScalingSignals::Find(std::string_view pool) const {
  std::lock_guard lock(mu_);
  for (const PoolScalingSignals& s : current_) {
    if (s.pool == pool) return s;
  }
  return std::nullopt;
}

}  // namespace tokenway
