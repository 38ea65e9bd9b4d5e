// Request-path metrics: counters and histograms kept per worker thread and summed at scrape.
//
// Each worker owns one WorkerMetrics and is its only writer (relaxed atomic adds on memory no
// other worker touches, so no lock and no contended cache line on the request path). The admin
// thread reads all of them at scrape time. Models are identified by a small integer slot that
// the control thread assigns once per name (NameSlots); pools and endpoints likewise.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tokenway {

inline constexpr size_t kMaxModelSlots = 128;
inline constexpr size_t kMaxPoolSlots = 64;
inline constexpr size_t kMaxEndpointSlots = 512;
inline constexpr size_t kMaxVersionSlots = 64;
inline constexpr size_t kUnknownModelSlot = 0;
inline constexpr size_t kNoSlot = 0;  // pools and endpoints: slot 0 is "none"

// Assigns stable metric slots to names (models, pools, endpoints). Control thread writes (at
// config load), the admin thread reads names at scrape; both take the mutex. Never used on the
// request path. Slot 0 is `first` ("unknown" or "none"); when all slots are used, new names share
// the overflow slot labelled "other".
class NameSlots {
 public:
  NameSlots(size_t capacity, std::string first);
  uint16_t SlotFor(const std::string& name);
  std::vector<std::string> Names() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, uint16_t> slots_;
  std::vector<std::string> names_;
};

// The slot spaces of one gateway process; slots outlive configuration reloads.
struct MetricSlots {
  NameSlots models{kMaxModelSlots, "unknown"};
  NameSlots pools{kMaxPoolSlots, ""};
  // Keyed EndpointSlotKey(pool, url).
  NameSlots endpoints{kMaxEndpointSlots, ""};
  // Keyed VersionSlotKey(model, version): the versions of models[].versions.
  NameSlots versions{kMaxVersionSlots, ""};
};
inline constexpr char kEndpointKeySeparator = '\x1f';
std::string EndpointSlotKey(std::string_view pool, std::string_view url);
// A version slot's key, and back (the model alias and the version name).
std::string VersionSlotKey(std::string_view model, std::string_view version);
std::pair<std::string_view, std::string_view> SplitVersionSlotKey(std::string_view key);

// HTTP status codes tracked individually; anything else lands in "other" of its class.
inline constexpr std::array<int, 19> kTrackedStatuses = {
    200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 499, 500, 501, 502, 503, 504, 0, 0};
size_t StatusSlot(int status);
int StatusForSlot(size_t slot);
inline constexpr size_t kStatusSlots = kTrackedStatuses.size();

// Latency buckets in seconds, shared by the duration and time-to-first-byte histograms.
inline constexpr std::array<double, 16> kLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
// The OpenTelemetry GenAI semantic conventions' bucket advice.
inline constexpr std::array<double, 14> kGenAiTokenBuckets = {
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};
inline constexpr std::array<double, 14> kGenAiDurationBuckets = {
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92};
inline constexpr std::array<double, 16> kGenAiTtftBuckets = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0};
inline constexpr std::array<double, 13> kGenAiTpotBuckets = {
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};
// Picker decision time: microseconds to milliseconds.
// Relative error |predicted − observed| / observed of the latency predictor (routing/
// latency_predictor.h).
inline constexpr std::array<double, 10> kPredictionErrorBuckets = {0.05, 0.1, 0.2, 0.3, 0.5,
                                                                   0.75, 1,   2,   5,   10};
inline constexpr std::array<double, 11> kPickerBuckets = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5,
                                                          1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2};
inline constexpr size_t kMaxHistogramBuckets = 16;

// A histogram over one of the bucket layouts above; the family that owns it knows which, and the
// unit scale its sum is kept in (integers, so that adds stay lock-free and exact).
struct Histogram {
  std::array<std::atomic<uint64_t>, kMaxHistogramBuckets + 1> buckets{};  // [n]: +Inf
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum{0};  // value × scale
  void Observe(double value, std::span<const double> bounds, double scale);
  void Observe(double seconds) { Observe(seconds, kLatencyBuckets, 1e6); }
};

// GenAI operations (gen_ai.operation.name), indexed by tokenway's Operation enum.
inline constexpr size_t kGenAiOperations = 3;
// Outcome classes of gen_ai.client.operation.duration: success, or the error.type.
enum class GenAiOutcome : uint8_t { kOk, kClientError, kServerError, kCount };
inline constexpr size_t kGenAiOutcomes = static_cast<size_t>(GenAiOutcome::kCount);

// HTTP status classes of responses per endpoint.
enum class StatusClass : uint8_t { k2xx, k4xx, k5xx, kCount };
inline constexpr size_t kStatusClasses = static_cast<size_t>(StatusClass::kCount);
StatusClass ClassOf(int status);
std::string_view StatusClassName(StatusClass c);

enum class UpstreamError : uint8_t {
  kConnect,       // connect refused or timed out
  kTimeout,       // first byte, idle or total timeout
  kStatus5xx,     // upstream answered 5xx
  kStatus429,     // upstream answered 429
  kProtocol,      // malformed or oversized response
  kBrokenStream,  // connection lost after the response started
  kCount
};
std::string_view UpstreamErrorName(UpstreamError e);

enum class ClientError : uint8_t {
  kMalformedRequest,  // HTTP syntax
  kHeaderTooLarge,
  kBodyTooLarge,
  kHeaderTimeout,
  kInvalidJson,  // body inspection failed
  kUnsupportedMedia,
  kUnknownModel,
  kUnknownPath,
  kDisconnected,  // client went away before the response finished
  kConnectionLimit,
  kInvalidHeader,  // a header tokenway interprets has an unusable value
  kMethodNotAllowed,
  kPayloadRejected,  // a request processor refused the request
  kCount
};
std::string_view ClientErrorName(ClientError e);

// What went wrong on an ext_proc stream of the endpoint-picker front door
// (tokenway_epp_protocol_errors_total{kind}).
enum class EppError : uint8_t {
  kOutOfOrder,       // a message the protocol does not allow at that point of the stream
  kUnsupportedMode,  // a request body mode no pick can be made with (STREAMED, NONE)
  kMissingHeader,    // request headers without :method or :path
  kEmptyMessage,     // a ProcessingRequest with none of its oneof set
  kStreamLimit,      // a stream refused because epp.max_streams were open
  kDecisionTimeout,  // epp.message_timeout passed while the request waited for its pick
  kCount
};
std::string_view EppErrorName(EppError e);

// How an endpoint-picker request's request side was answered (tokenway_epp_decisions_total).
enum class EppDecision : uint8_t {
  kPicked,             // destination endpoint header and metadata
  kImmediateResponse,  // an OpenAI-shaped error answered for the Gateway
  kPassthrough,        // a request that needs no pick (GET /v1/models, other paths): CONTINUE
  kCount
};
std::string_view EppDecisionName(EppDecision d);

// The ext_proc messages the endpoint-picker front door receives, by kind.
inline constexpr size_t kEppMessageKinds = 6;
std::string_view EppMessageName(size_t kind);  // request_headers, request_body, ...

// What one finished request contributes to the metrics (filled from the request record).
struct RequestSample {
  uint16_t model_slot = 0;
  uint16_t pool_slot = 0;      // 0: never routed to a pool
  uint16_t endpoint_slot = 0;  // 0: never forwarded
  uint16_t version_slot = 0;   // 0: the model has no versions
  uint8_t operation = 0;       // Operation
  int status = 0;
  bool stream = false;
  double seconds = 0;      // arrival to last byte
  double first_byte = -1;  // arrival to first byte, < 0: none
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
  int64_t cached_tokens = -1;
  // The tokens above are tokenway's estimate (the response carried no usage), not the model
  // server's report: counted as a request without usage and in the estimated-token family only.
  bool usage_estimated = false;
};

// How a shadow copy of a request ended (tokenway_shadow_requests_total{outcome}).
enum class ShadowOutcome : uint8_t {
  kCompleted,           // the candidate answered 2xx; its answer was read and discarded
  kFailed,              // the candidate answered an error or the exchange failed
  kSkippedConcurrency,  // shadow.max_concurrency copies were already in flight on the worker
  kSkippedSaturated,    // the candidate's pool is saturated or has no eligible endpoint
  kCount
};
inline constexpr size_t kShadowOutcomes = static_cast<size_t>(ShadowOutcome::kCount);
std::string_view ShadowOutcomeName(ShadowOutcome o);

// A histogram summed over the workers (control thread readers, e.g. a rollout's analysis).
struct HistogramTotals {
  std::array<uint64_t, kMaxHistogramBuckets + 1> buckets{};  // per bucket, not cumulative
  uint64_t count = 0;
  double sum = 0;  // in the histogram's unit (seconds)
  // The q-quantile (0..1) by linear interpolation inside the bucket that holds it, as
  // Prometheus' histogram_quantile does; the last finite bound when it falls in +Inf; 0 when
  // empty.
  double Quantile(double q, std::span<const double> bounds) const;
  // This window's figures: these totals minus an earlier reading of the same histogram.
  HistogramTotals Minus(const HistogramTotals& earlier) const;
};

// One model version's figures summed over the workers (SumVersion).
struct VersionTotals {
  uint64_t requests = 0;      // finished requests routed to the version (shadow copies apart)
  uint64_t errors = 0;        // of them answered 5xx (upstream failures included)
  uint64_t input_tokens = 0;  // successful requests' reported usage
  uint64_t output_tokens = 0;
  HistogramTotals time_to_first_token;    // successful streams; bounds kGenAiTtftBuckets
  HistogramTotals time_per_output_token;  // successful streams; bounds kGenAiTpotBuckets
  // Shadow copies (shadow.version): by outcome, and the figures of those the version answered.
  std::array<uint64_t, kShadowOutcomes> shadow{};
  uint64_t shadow_output_tokens = 0;
  HistogramTotals shadow_time_to_first_token;
  HistogramTotals shadow_time_per_output_token;
  VersionTotals Minus(const VersionTotals& earlier) const;
};

struct WorkerMetrics {
  // Counts one finished request in every family it belongs to.
  void CountRequest(const RequestSample& r);
  // The version families only (CountRequest calls it; shadow copies call it with shadow set:
  // their figures count apart from the client's requests, in the shadow_* members).
  void CountVersion(const RequestSample& r, bool shadow);
  void CountRequest(uint16_t model_slot, int status, double seconds);
  void CountTokens(uint16_t model_slot, int64_t prompt, int64_t completion, int64_t cached);

  std::array<std::array<std::atomic<uint64_t>, kStatusSlots>, kMaxModelSlots> requests{};
  std::array<Histogram, kMaxModelSlots> duration{};
  std::array<Histogram, kMaxModelSlots> time_to_first_byte{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> prompt_tokens{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> completion_tokens{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> cached_tokens{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> usage_unknown{};
  // Estimated input and output tokens of successful requests without usage.
  std::array<std::array<std::atomic<uint64_t>, 2>, kMaxModelSlots> estimated_tokens{};

  // GenAI semantic-convention families, by model and operation.
  struct GenAi {
    Histogram input_tokens;   // gen_ai.client.token.usage{gen_ai.token.type=input}
    Histogram output_tokens;  // ... {gen_ai.token.type=output}
    std::array<Histogram, kGenAiOutcomes> duration;  // gen_ai.client.operation.duration
    Histogram time_to_first_token;                   // gen_ai.server.time_to_first_token
    Histogram time_per_output_token;                 // gen_ai.server.time_per_output_token
  };
  std::array<std::array<GenAi, kGenAiOperations>, kMaxModelSlots> gen_ai{};

  // Per endpoint (slot of pool + URL): responses by status class and tokens.
  std::array<std::array<std::atomic<uint64_t>, kStatusClasses>, kMaxEndpointSlots>
      endpoint_responses{};
  std::array<std::array<std::atomic<uint64_t>, 3>, kMaxEndpointSlots> endpoint_tokens{};

  // Per pool: streaming latencies, picker decision time, prefix-affinity estimate.
  struct PoolFamilies {
    Histogram time_to_first_token;
    Histogram time_per_output_token;
    Histogram picker;
    std::atomic<uint64_t> prefix_hit_blocks{0};
    std::atomic<uint64_t> prefix_miss_blocks{0};
    std::atomic<uint64_t> input_tokens{0};  // successful requests' tokens: throughput signals
    std::atomic<uint64_t> output_tokens{0};
    // Requests of this worker waiting for the pool's first eligible endpoint (scale from zero).
    std::atomic<int64_t> waiting_for_endpoint{0};
    // The predicted-latency scorer: sheddable requests refused because no endpoint was predicted
    // to meet their objective, and how far its predictions were from what streams then took.
    std::atomic<uint64_t> slo_refused{0};
    Histogram ttft_prediction_error;  // kPredictionErrorBuckets
    Histogram tpot_prediction_error;
  };
  std::array<PoolFamilies, kMaxPoolSlots> pools{};

  // Per model version (slot of VersionSlotKey): what a rollout compares between versions.
  // Requests a version served for clients, and apart from them the shadow copies it answered.
  struct VersionFamilies {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> errors{0};  // 5xx, upstream failures included
    std::atomic<uint64_t> input_tokens{0};
    std::atomic<uint64_t> output_tokens{0};
    Histogram time_to_first_token;    // kGenAiTtftBuckets, successful streams
    Histogram time_per_output_token;  // kGenAiTpotBuckets
    std::atomic<uint64_t> shadow_output_tokens{0};
    std::array<std::atomic<uint64_t>, kShadowOutcomes> shadow{};
    Histogram shadow_time_to_first_token;
    Histogram shadow_time_per_output_token;
    // Shadow copies in flight on this worker (the worker compares it with max_concurrency).
    std::atomic<int64_t> shadow_in_flight{0};
  };
  std::array<VersionFamilies, kMaxVersionSlots> versions{};
  void Count(uint16_t version_slot, ShadowOutcome o) {
    versions[version_slot].shadow[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, static_cast<size_t>(UpstreamError::kCount)> upstream_errors{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(ClientError::kCount)> client_errors{};
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> connections{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> usage_injected{0};
  std::atomic<uint64_t> upstream_connects{0};
  std::atomic<uint64_t> upstream_reused{0};
  std::atomic<uint64_t> no_endpoint{0};

  void Count(UpstreamError e) {
    upstream_errors[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }
  void Count(ClientError e) {
    client_errors[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }

  // Endpoint-picker front door (gateway/epp_stream.h): open streams, streams opened, messages
  // received by kind, request sides answered by decision, protocol errors by kind.
  std::atomic<int64_t> epp_streams{0};
  std::atomic<uint64_t> epp_streams_total{0};
  std::array<std::atomic<uint64_t>, kEppMessageKinds> epp_messages{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(EppDecision::kCount)> epp_decisions{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(EppError::kCount)> epp_errors{};
  void Count(EppError e) {
    epp_errors[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }
  void Count(EppDecision d) {
    epp_decisions[static_cast<size_t>(d)].fetch_add(1, std::memory_order_relaxed);
  }
};

// A version's figures summed over the workers' metrics (relaxed loads; any thread, typically
// the control thread once per analysis tick).
VersionTotals SumVersion(std::span<const WorkerMetrics* const> workers, uint16_t version_slot);
VersionTotals SumVersion(std::span<WorkerMetrics* const> workers, uint16_t version_slot);

}  // namespace tokenway
