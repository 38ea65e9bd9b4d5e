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

// An external processor's calls (payload/external_processor.h): how each ended, how long it
// took, why the failed ones failed, and how many are in flight (the max_concurrency gate, shared
// by all workers and kept across reloads like the counters).
struct ExternalCallCounters {
  enum Outcome { kAllow, kDeny, kMutate, kTimeout, kError, kOverloaded, kInvalidAnswer, kOutcomes };
  enum Failure {
    kConnect,      // no connection (refused, reset, unreachable, no address)
    kClosed,       // the connection closed or broke before a whole answer
    kProtocol,     // not HTTP/1.1, or a gRPC stream that broke the protocol
    kTooLarge,     // the answer exceeds the processor's limit
    kHttpStatus,   // a webhook answered with a status other than 200
    kGrpcStatus,   // an ext_proc stream ended with a gRPC error (UNIMPLEMENTED, UNAVAILABLE, ...)
    kBadAnswer,    // an answer that is not what the protocol says
    kDeadline,     // the processor's timeout passed
    kConcurrency,  // max_concurrency calls were already in flight
    kFailures
  };
  static constexpr size_t kBuckets = 12;  // upper bounds in seconds: kLatencyBounds
  static const double kLatencyBounds[kBuckets];

  std::atomic<uint64_t> outcomes[kOutcomes] = {};
  std::atomic<uint64_t> failures[kFailures] = {};
  std::atomic<uint64_t> buckets[kBuckets + 1] = {};  // the last: above every bound
  std::atomic<uint64_t> latency_nanos{0};
  std::atomic<int64_t> in_flight{0};

  void Count(Outcome o) { outcomes[o].fetch_add(1, std::memory_order_relaxed); }
  void Fail(Failure f) { failures[f].fetch_add(1, std::memory_order_relaxed); }
  void Observe(int64_t nanos);
};

class PayloadMetrics {
 public:
  // The process's registry.
  static PayloadMetrics& Global();

  std::atomic<uint64_t>* Verdict(const std::string& processor, const std::string& detector,
                                 const std::string& action, PayloadDirection direction);
  PayloadTiming* Timing(const std::string& processor, PayloadDirection direction);
  ExternalCallCounters* External(const std::string& processor);

  // tokenway_payload_verdicts_total, tokenway_payload_processing_seconds_total/_calls_total and
  // the tokenway_payload_external_* families.
  void Render(PrometheusText& t) const;

 private:
  void RenderExternal(PrometheusText& t) const;

  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, std::string, int>,
           std::unique_ptr<std::atomic<uint64_t>>>
      verdicts_;
  std::map<std::pair<std::string, int>, std::unique_ptr<PayloadTiming>> timings_;
  std::map<std::string, std::unique_ptr<ExternalCallCounters>> external_;
};

}  // namespace tokenway
