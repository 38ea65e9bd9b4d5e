#include "payload/payload_metrics.h"

#include "telemetry/prometheus_text.h"

namespace tokenway {

namespace {
const char* DirectionName(int d) {
  return d == 0 ? "request" : "response";
}
}  // namespace

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

void PayloadMetrics::Render(PrometheusText& t) const {
  std::lock_guard lock(mu_);
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
