// SemanticMetrics: the semantic router's counters — decisions by virtual model, route and reason
// (tokenway_semantic_route_total) and the time to classify a prompt, per virtual model
// (tokenway_semantic_classify_seconds) — kept for the life of the process so a configuration
// reload does not reset them.
//
// The control thread creates cells while it builds a SemanticRouter (Decision(), Classify());
// worker threads then only add to the atomics they were handed; the admin thread renders them.
// The mutex guards the cell maps and is never taken on the request path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace tokenway {

class PrometheusText;

// Why a request went to the route it went to.
enum class RouteReason : uint8_t {
  kClassified,        // the classifier's route, confident enough
  kBelowThreshold,    // the default route: the classifier was not confident enough
  kTenantRestricted,  // the default route: the tenant may not use the classified route
  kBackendFallback,   // the lexical classifier's route: the embeddings backend failed
  kDenied,            // 403: the tenant may use neither the classified nor the default route
};
inline constexpr size_t kRouteReasons = 5;
const char* RouteReasonName(RouteReason reason);

// Classify-time histogram: bucket upper bounds in seconds.
inline constexpr std::array<double, 10> kClassifyBounds = {5e-6, 1e-5, 2e-5, 5e-5, 1e-4,
                                                           2e-4, 5e-4, 1e-3, 1e-2, 1e-1};
struct ClassifyTiming {
  std::array<std::atomic<uint64_t>, kClassifyBounds.size() + 1> buckets{};  // last: +Inf
  std::atomic<uint64_t> nanos{0};
  void Record(int64_t ns);
};

class SemanticMetrics {
 public:
  static SemanticMetrics& Global();

  std::atomic<uint64_t>* Decision(const std::string& model, const std::string& route,
                                  RouteReason reason);
  ClassifyTiming* Classify(const std::string& model);

  // tokenway_semantic_route_total and tokenway_semantic_classify_seconds.
  void Render(PrometheusText& t) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, std::unique_ptr<std::atomic<uint64_t>>>
      decisions_;
  std::map<std::string, std::unique_ptr<ClassifyTiming>> timings_;
};

}  // namespace tokenway
