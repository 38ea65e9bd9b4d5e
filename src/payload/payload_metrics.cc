#include "payload/payload_metrics.h"

#include <iterator>

#include "telemetry/prometheus_text.h"

namespace tokenway {

namespace {
const char* DirectionName(int d) {
  return d == 0 ? "request" : "response";
}
}  // namespace

const double ExternalCallCounters::kLatencyBounds[kBuckets] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

void ExternalCallCounters::Observe(int64_t nanos) {
  const double seconds = static_cast<double>(nanos) / 1e9;
  size_t i = 0;
  while (i < kBuckets && seconds > kLatencyBounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  latency_nanos.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
}

void PayloadMetrics::RenderExternal(PrometheusText& t) const {
  if (external_.empty()) return;
  static const char* const kOutcomeNames[] = {"allow", "deny",       "mutate",        "timeout",
                                              "error", "overloaded", "invalid_answer"};
  static const char* const kFailureNames[] = {"connect",    "closed",      "protocol",
                                              "too_large",  "http_status", "grpc_status",
                                              "bad_answer", "timeout",     "overloaded"};
  static_assert(std::size(kOutcomeNames) == ExternalCallCounters::kOutcomes);
  static_assert(std::size(kFailureNames) == ExternalCallCounters::kFailures);
  t.Family("tokenway_payload_external_calls_total", "counter",
           "Calls of external payload processors (webhook, ext_proc) by processor and outcome.");
  for (const auto& [name, c] : external_) {
    for (int o = 0; o < ExternalCallCounters::kOutcomes; ++o) {
      t.Sample("tokenway_payload_external_calls_total",
               {{"processor", name}, {"outcome", kOutcomeNames[o]}},
               c->outcomes[o].load(std::memory_order_relaxed));
    }
  }
  t.Family("tokenway_payload_external_failures_total", "counter",
           "Failed calls of external payload processors by processor and kind of failure.");
  for (const auto& [name, c] : external_) {
    for (int f = 0; f < ExternalCallCounters::kFailures; ++f) {
      t.Sample("tokenway_payload_external_failures_total",
               {{"processor", name}, {"kind", kFailureNames[f]}},
               c->failures[f].load(std::memory_order_relaxed));
    }
  }
  t.Family("tokenway_payload_external_in_flight", "gauge",
           "Calls of an external payload processor in flight, over all workers.");
  for (const auto& [name, c] : external_) {
    t.Sample("tokenway_payload_external_in_flight", {{"processor", name}},
             static_cast<double>(c->in_flight.load(std::memory_order_relaxed)));
  }
  t.Family("tokenway_payload_external_call_seconds", "histogram",
           "Duration of external payload processor calls (the whole call, retries included).");
  for (const auto& [name, c] : external_) {
    uint64_t counts[ExternalCallCounters::kBuckets];
    for (size_t i = 0; i < ExternalCallCounters::kBuckets; ++i) {
      counts[i] = c->buckets[i].load(std::memory_order_relaxed);
    }
    t.Histogram("tokenway_payload_external_call_seconds", {{"processor", name}},
                ExternalCallCounters::kLatencyBounds, counts, ExternalCallCounters::kBuckets,
                c->buckets[ExternalCallCounters::kBuckets].load(std::memory_order_relaxed),
                static_cast<double>(c->latency_nanos.load(std::memory_order_relaxed)) / 1e9);
  }
}

PayloadMetrics& PayloadMetrics::Global() {
  static PayloadMetrics metrics;
  return metrics;
}

std::atomic<uint64_t>* PayloadMetrics::Verdict(const std::string& processor,
                                               const std::string& detector,
                                               const std::string& action,
                                               PayloadDirection direction) {
  std::lock_guard lock(mu_);
  auto& cell = verdicts_[{processor, detector, action, static_cast<int>(direction)}];
  if (!cell) cell = std::make_unique<std::atomic<uint64_t>>(0);
  return cell.get();
}

PayloadTiming* PayloadMetrics::Timing(const std::string& processor, PayloadDirection direction) {
  std::lock_guard lock(mu_);
  auto& cell = timings_[{processor, static_cast<int>(direction)}];
  if (!cell) cell = std::make_unique<PayloadTiming>();
  return cell.get();
}

ExternalCallCounters* PayloadMetrics::External(const std::string& processor) {
  std::lock_guard lock(mu_);
  auto& cell = external_[processor];
  if (!cell) cell = std::make_unique<ExternalCallCounters>();
  return cell.get();
}

void PayloadMetrics::Render(PrometheusText& t) const {
  std::lock_guard lock(mu_);
  RenderExternal(t);
  if (verdicts_.empty() && timings_.empty()) return;
  t.Family("tokenway_payload_verdicts_total", "counter",
           "Findings of payload processors by processor, detector, action and direction.");
  for (const auto& [key, cell] : verdicts_) {
    const auto& [processor, detector, action, direction] = key;
    t.Sample("tokenway_payload_verdicts_total",
             {{"processor", processor},
              {"detector", detector},
              {"action", action},
              {"direction", DirectionName(direction)}},
             cell->load(std::memory_order_relaxed));
  }
  t.Family("tokenway_payload_processing_seconds_total", "counter",
           "CPU time spent in payload processors, by processor and direction.");
  for (const auto& [key, cell] : timings_) {
    t.Sample("tokenway_payload_processing_seconds_total",
             {{"processor", key.first}, {"direction", DirectionName(key.second)}},
             static_cast<double>(cell->nanos.load(std::memory_order_relaxed)) / 1e9);
  }
  t.Family("tokenway_payload_processing_calls_total", "counter",
           "Calls of payload processors (requests, response bodies and stream events).");
  for (const auto& [key, cell] : timings_) {
    t.Sample("tokenway_payload_processing_calls_total",
             {{"processor", key.first}, {"direction", DirectionName(key.second)}},
             cell->calls.load(std::memory_order_relaxed));
  }
}

}  // namespace tokenway
