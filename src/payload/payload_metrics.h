// PayloadMetrics: the payload processors' counters — verdicts by processor, detector, action and
// direction, and processing time by processor and direction — kept for the life of the process so
// a configuration reload does not reset them.
//
// The control thread creates cells while it builds a PayloadChain (Verdict(), Timing()); worker
// threads then only add to the atomics they were handed; the admin thread renders them. The
// mutex guards the cell map and is never taken on the request path.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace tokenway {

class PrometheusText;

enum class PayloadDirection { kRequest, kResponse };

struct PayloadTiming {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> nanos{0};
};

class PayloadMetrics {
 public:
  // The process's registry.
  static PayloadMetrics& Global();

  std::atomic<uint64_t>* Verdict(const std::string& processor, const std::string& detector,
                                 const std::string& action, PayloadDirection direction);
  PayloadTiming* Timing(const std::string& processor, PayloadDirection direction);

  // tokenway_payload_verdicts_total and tokenway_payload_processing_seconds_total/_calls_total.
  void Render(PrometheusText& t) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string, int>,
           std::unique_ptr<std::atomic<uint64_t>>>
      verdicts_;
  std::map<std::pair<std::string, int>, std::unique_ptr<PayloadTiming>> timings_;
};

}  // namespace tokenway
