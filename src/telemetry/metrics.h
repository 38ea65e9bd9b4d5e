// Request-path metrics: counters and histograms kept per worker thread and summed at scrape.
//
// Each worker owns one WorkerMetrics and is its only writer (relaxed atomic adds on memory no
// other worker touches, so no lock and no contended cache line on the request path). The admin
// thread reads all of them at scrape time. Models are identified by a small integer slot that
// the control thread assigns once per model name (ModelSlots); slot 0 is "unknown model".
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tokenway {

inline constexpr size_t kMaxModelSlots = 128;
inline constexpr size_t kUnknownModelSlot = 0;

// Assigns stable metric slots to model names. Control thread writes (at config load), the
// admin thread reads names at scrape; both take the mutex. Never used on the request path.
class ModelSlots {
 public:
  ModelSlots();
  // Returns the slot for `name`, assigning one if new; when all slots are used, returns the
  // overflow slot labelled "other".
  uint16_t SlotFor(const std::string& name);
  std::vector<std::string> Names() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, uint16_t> slots_;
  std::vector<std::string> names_;
};

// HTTP status codes tracked individually; anything else lands in "other" of its class.
inline constexpr std::array<int, 19> kTrackedStatuses = {
    200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 499, 500, 501, 502, 503, 504, 0, 0};
size_t StatusSlot(int status);
int StatusForSlot(size_t slot);
inline constexpr size_t kStatusSlots = kTrackedStatuses.size();

// Latency buckets in seconds, shared by the duration and time-to-first-byte histograms.
inline constexpr std::array<double, 16> kLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

struct Histogram {
  std::array<std::atomic<uint64_t>, kLatencyBuckets.size() + 1> buckets{};  // last: +Inf
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_micros{0};
  void Observe(double seconds);
};

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
  kCount
};
std::string_view ClientErrorName(ClientError e);

struct WorkerMetrics {
  void CountRequest(uint16_t model_slot, int status, double seconds);
  void CountTokens(uint16_t model_slot, int64_t prompt, int64_t completion, int64_t cached);

  std::array<std::array<std::atomic<uint64_t>, kStatusSlots>, kMaxModelSlots> requests{};
  std::array<Histogram, kMaxModelSlots> duration{};
  std::array<Histogram, kMaxModelSlots> time_to_first_byte{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> prompt_tokens{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> completion_tokens{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> cached_tokens{};
  std::array<std::atomic<uint64_t>, kMaxModelSlots> usage_unknown{};
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
};

}  // namespace tokenway
