// RenderMetricsExposition: the gateway's /metrics document in the Prometheus text format —
// tokenway's own families, the OpenTelemetry GenAI ones, per-endpoint and per-pool state, flow
// control, scaling signals — from the workers' counters and a plain description of the
// configuration and live state at scrape time.
//
// The admin listener (control thread) fills an ExpositionInput from its Runtime snapshot at each
// scrape and calls RenderMetricsExposition; nothing here reads the request path's structures
// other than the per-worker WorkerMetrics (relaxed loads). Families are always announced (HELP
// and TYPE) in a fixed order, so dashboards and promtool see a stable document; the sections
// other units render (trace export, governance) are called back at their place.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "telemetry/metrics.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {

// One model slot of MetricSlots::models, in slot order.
struct ModelSeries {
  std::string_view name;
  bool configured = false;    // served by the current configuration
  std::string_view pool;      // its pool; empty when not configured
  std::string_view provider;  // gen_ai.provider.name (the pool's engine)
};

// One endpoint of a pool as it is at scrape time (EndpointState, copied by the caller).
struct EndpointSeries {
  std::string_view url;
  uint16_t metrics_slot = 0;  // MetricSlots::endpoints
  double in_flight = 0;
  bool healthy = true;
  bool ejected = false;
  uint64_t requests_total = 0;
  uint64_t failures_total = 0;
  uint64_t ejections_total = 0;
  double prefill_tokens = 0;
  double decode_tokens = 0;
  bool engine_valid = false;
  double engine_waiting = 0;
  double engine_running = 0;
  double engine_kv_utilisation = 0;
  double engine_age_seconds = -1;  // -1: never scraped
  uint64_t engine_scrape_failures_total = 0;
  uint64_t engine_stale_total = 0;
};

// A flow-controlled pool's controller at scrape time.
struct FlowSeries {
  struct Band {
    int32_t priority = 0;
    uint32_t waiting = 0;
  };
  bool saturated = false;
  std::vector<Band> bands;  // highest priority first
  uint64_t dispatched_direct = 0, queued = 0, released = 0, shed = 0, queue_full = 0, expired = 0;
  std::span<const double> queue_bounds;      // seconds
  std::vector<uint64_t> queue_time_buckets;  // per bucket (not cumulative), +Inf last
  double queue_time_sum_seconds = 0;
};

struct PoolSeries {
  std::string_view name;
  uint16_t metrics_slot = 0;  // MetricSlots::pools
  std::vector<EndpointSeries> endpoints;
  bool flow_controlled = false;
  FlowSeries flow;  // when flow_controlled
};

// One pool's scaling signals (control/scaling_signals.h).
struct ScalingSeries {
  std::string_view pool;
  double input_tokens_per_second = 0;
  double output_tokens_per_second = 0;
  double queue_depth = 0;
  double saturation = 0;
  double ready_endpoints = 0;
  double desired_replicas = 0;
};

struct ExpositionInput {
  std::span<WorkerMetrics* const> workers;
  std::vector<ModelSeries> models;  // every model slot, configured or not
  std::vector<PoolSeries> pools;    // the configured pools, in configuration order
  std::vector<ScalingSeries> scaling;
  // Sections rendered by their own units, called at their place in the document; may be empty.
  std::function<void(PrometheusText&)> trace_section;
  const class AccessLogSink* access_log = nullptr;    // its dropped-line counter; null: none
  std::function<void(PrometheusText&)> keda_section;  // KEDA external scaler (gateway/)
  std::function<void(PrometheusText&)> governance_section;
  std::function<void(PrometheusText&)> payload_section;    // payload processors (payload/)
  std::function<void(PrometheusText&)> semantic_section;   // semantic router (semantic/)
  std::function<void(PrometheusText&)> discovery_section;  // Kubernetes discovery (control/)
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  uint64_t generation = 0;
};

std::string RenderMetricsExposition(const ExpositionInput& in);

}  // namespace tokenway
