// Picker: chooses the endpoint(s) of a pool for one request.
//
// The forwarding code gives a picker the pool's eligible endpoints (healthy, not ejected) and
// gets back an ordered list: the first is tried first, the rest are fallbacks for retries. The
// routing layer later adds filters and weighted scorers in front of a picker; the forwarding code
// only ever sees this interface. One picker instance per pool, shared by all worker threads:
// Pick() is called concurrently and must not block or take a lock.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace tokenway {

struct EndpointState;
struct InspectedRequest;

// One candidate endpoint: its index in the pool and its live state.
struct PickCandidate {
  uint32_t index;
  const EndpointState* state;
};

// The chosen endpoint's scores, for the request's trace span: the weighted total and each
// scorer's own score in [0, 1]. Filled by a scoring picker (SchedulerPicker) only when the
// caller asks (PickReport::scores); simple policies leave it empty. Names are the scorers'
// static names.
struct PickScores {
  static constexpr uint32_t kCapacity = 8;
  uint32_t count = 0;
  bool filled = false;
  double total = 0;
  std::string_view names[kCapacity];
  double values[kCapacity] = {};
};

// A request's latency objective, from its x-slo-ttft-ms / x-slo-tpot-ms headers (0: the pool's
// scheduler.slo applies), and whether it may be refused: a sheddable request (priority < 0) that
// no endpoint is predicted to serve within its objective is refused before it is sent.
struct RequestSlo {
  double ttft_s = 0;
  double tpot_s = 0;
  bool sheddable = false;
};

// What the predicted-latency scorer foresaw for one pick.
struct LatencyPrediction {
  bool made = false;     // some candidate's model was trained
  double ttft_s = -1;    // predicted for the chosen endpoint
  double tpot_s = -1;    // (-1: its TPOT model is not trained yet)
  double best_cost = 0;  // lowest max(TTFT/SLO, TPOT/SLO) over the candidates (> 1: none meets it)
  double cached_fraction = 0;  // of the prompt, held by the chosen endpoint (prefix index)
};

// What a picker tells the request path about its decision, for metrics and traces. Filled only
// when the caller passes one; pickers that know nothing of a field leave it alone.
struct PickReport {
  uint32_t prefix_blocks =
      0;  // prompt looked up in the prefix index, in units of block_bytes (0: none)
  uint32_t prefix_matched = 0;   // of those, the units the chosen endpoint is estimated to hold
  PickScores* scores = nullptr;  // when set (sampled traces), the chosen endpoint's scores
  LatencyPrediction prediction;  // filled by a scheduler with the predicted-latency scorer
  // The picker chose no endpoint because the request is sheddable and none is predicted to meet
  // its objective (RequestSlo): the caller answers 429 instead of sending it.
  bool refused = false;
};

// What a picker may look at besides the candidates.
struct PickContext {
  const InspectedRequest* request = nullptr;
  uint64_t random = 0;  // a fresh random value from the worker's generator
  // The request's session, from the header named by pools[].scheduler.session_header; empty when
  // the pool names none or the request lacks it. A view into the request buffer, valid during
  // Pick().
  std::string_view session_key;
  PickReport* report = nullptr;  // optional; written by Pick()
  // The caller's monotonic clock reading in nanoseconds (common/duration.h MonotonicNanos); 0:
  // the picker reads the clock itself. The gateway passes the time it already read for the
  // eligibility check; the fleet simulator passes its virtual time, so staleness, ejection and
  // prefix-index ages follow the simulated clock.
  int64_t now_ns = 0;
  int64_t prompt_tokens = 0;  // the request's estimated prompt tokens (0: unknown)
  RequestSlo slo;
};

// Ordered endpoint indices, best first; bounded so it lives on the stack.
class FallbackList {
 public:
  static constexpr uint32_t kCapacity = 8;
  void push_back(uint32_t index) {
    if (size_ < kCapacity) items_[size_++] = index;
  }
  uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint32_t operator[](uint32_t i) const { return items_[i]; }
  void clear() { size_ = 0; }

 private:
  uint32_t items_[kCapacity] = {};
  uint32_t size_ = 0;
};

class Picker {
 public:
  virtual ~Picker() = default;
  // Fills `out` (cleared by the caller) with candidate indices, best first. `candidates` is
  // never empty. Called on worker threads, concurrently.
  virtual void Pick(const PickContext& ctx, std::span<const PickCandidate> candidates,
                    FallbackList& out) = 0;
  virtual std::string_view name() const = 0;
};

}  // namespace tokenway
