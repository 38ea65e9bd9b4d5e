#include "semantic/semantic_metrics.h"

#include "telemetry/prometheus_text.h"

namespace tokenway {

const char* RouteReasonName(RouteReason reason) {
  switch (reason) {
    case RouteReason::kClassified:
      return "classified";
    case RouteReason::kBelowThreshold:
      return "below_threshold";
    case RouteReason::kTenantRestricted:
      return "tenant_restricted";
    case RouteReason::kBackendFallback:
      return "backend_fallback";
    case RouteReason::kDenied:
      return "denied";
  }
  return "classified";
}

void ClassifyTiming::Record(int64_t ns) {
  const double s = static_cast<double>(ns) / 1e9;
  size_t b = 0;
  while (b < kClassifyBounds.size() && s > kClassifyBounds[b]) ++b;
  buckets[b].fetch_add(1, std::memory_order_relaxed);
  nanos.fetch_add(static_cast<uint64_t>(ns > 0 ? ns : 0), std::memory_order_relaxed);
}

SemanticMetrics& SemanticMetrics::Global() {
  static SemanticMetrics metrics;
  return metrics;
}

std::atomic<uint64_t>* SemanticMetrics::Decision(const std::string& model, const std::string& route,
                                                 RouteReason reason) {
  std::lock_guard lock(mu_);
  auto& cell = decisions_[{model, route, static_cast<int>(reason)}];
  if (!cell) cell = std::make_unique<std::atomic<uint64_t>>(0);
  return cell.get();
}

ClassifyTiming* SemanticMetrics::Classify(const std::string& model) {
  std::lock_guard lock(mu_);
  auto& cell = timings_[model];
  if (!cell) cell = std::make_unique<ClassifyTiming>();
  return cell.get();
}

void SemanticMetrics::Render(PrometheusText& t) const {
  std::lock_guard lock(mu_);
  if (decisions_.empty() && timings_.empty()) return;
  t.Family("tokenway_semantic_route_total", "counter",
           "Requests to virtual models by model, route taken and reason (classified, "
           "below_threshold, tenant_restricted, backend_fallback, denied).");
  for (const auto& [key, cell] : decisions_) {
    const auto& [model, route, reason] = key;
    t.Sample("tokenway_semantic_route_total",
             {{"model", model},
              {"route", route},
              {"reason", RouteReasonName(static_cast<RouteReason>(reason))}},
             cell->load(std::memory_order_relaxed));
  }
  t.Family("tokenway_semantic_classify_seconds", "histogram",
           "Time to classify a prompt for a virtual model (lexical classifier).");
  for (const auto& [model, timing] : timings_) {
    std::array<uint64_t, kClassifyBounds.size()> counts;
    for (size_t b = 0; b < counts.size(); ++b)
      counts[b] = timing->buckets[b].load(std::memory_order_relaxed);
    t.Histogram("tokenway_semantic_classify_seconds", {{"model", model}}, kClassifyBounds.data(),
                counts.data(), counts.size(),
                timing->buckets[kClassifyBounds.size()].load(std::memory_order_relaxed),
                static_cast<double>(timing->nanos.load(std::memory_order_relaxed)) / 1e9);
  }
}

}  // namespace tokenway
