// AccessLog: one JSON line per request, written without slowing the request path.
//
// Each worker appends lines to its own AccessLogBuffer; the buffer is handed to the sink when it
// passes 32 KiB and by the worker's periodic timer, so a line appears within ~100 ms. The hand-off
// takes no lock and never waits: each buffer owns a producer in the sink, a bounded
// single-producer/single-consumer ring of buffers that the sink's writer thread empties with
// write() (buffers are swapped, not copied, so steady state allocates nothing). Only the writer
// thread writes, so lines never interleave. When a worker's ring is full (the output is slower
// than the traffic: a stalled stdout pipe, a slow disk) its buffer is dropped and its lines are
// counted (tokenway_access_log_dropped_lines_total); a worker never blocks on the output.
// Destroying the sink writes out every buffer already handed over (waiting for an output that
// does not accept data at most shutdown_timeout, counting what it then drops).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tokenway {

// The fields a line may carry, in the order they are written (access_log.fields selects them).
enum class AccessLogField : uint8_t {
  kTs,
  kRequestId,
  kTenant,
  kOperation,
  kModel,
  kPool,
  kEndpoint,
  kStatus,
  kStream,
  kDurationMs,
  kTtftMs,
  kPromptTokens,
  kCompletionTokens,
  kCachedTokens,
  kUsage,  // "reported" by the model server, "estimated" by tokenway, or null
  kUsageInjected,
  kStreamEvents,
  kRetries,
  kPriority,
  kQueueMs,
  kRoute,
  kRequestBytes,
  kResponseBytes,
  kPromptHash,
  kPayload,  // what payload processors flagged ("email,phone"), or null
  kError,
  kSemanticRoute,  // a virtual model's route {route, target, confidence, reason}, or null
  kCount
};
using AccessLogFields = uint32_t;  // bit i: field i
inline constexpr AccessLogFields kAllAccessLogFields =
    (AccessLogFields{1} << static_cast<unsigned>(AccessLogField::kCount)) - 1;
static_assert(static_cast<unsigned>(AccessLogField::kCount) <= 32);
std::string_view AccessLogFieldName(AccessLogField f);

// The access_log section (filled by the YAML walk in control/): where lines go, which fields they
// carry and which requests are logged. Read by the gateway when it opens the sink and on every
// finished request.
struct AccessLogConfig {
  bool enabled = true;
  std::string path = "stdout";           // "stdout" or a file path
  AccessLogFields fields = 0xFFFFFFFFu;  // AccessLogField bitmask; default all
  double sample_ratio = 1.0;             // share of successful requests logged, 0..1
  bool always_log_errors = true;         // requests answered >= 400 are logged whatever the ratio
};

// False when `name` is not a field name.
bool ParseAccessLogField(std::string_view name, AccessLogField& out);

struct AccessLogSinkOptions {
  uint32_t buffers_per_producer = 8;  // the bound: buffers a worker may have waiting (32 KiB each)
  std::chrono::milliseconds shutdown_timeout{2000};
};

class AccessLogSink {
 public:
  static constexpr int kMaxProducers = 256;
  class Producer;

  // "stdout" or a file path (appended to). Returns nullptr and sets `error` on failure. The
  // writer thread starts at once.
  static std::shared_ptr<AccessLogSink> Open(const std::string& path, std::string& error,
                                             const AccessLogSinkOptions& options = {});
  // A sink on a descriptor the caller keeps open until the sink is destroyed.
  static std::shared_ptr<AccessLogSink> OnDescriptor(int fd,
                                                     const AccessLogSinkOptions& options = {});
  // Writes out what was handed over (see the file comment), then joins the writer thread. No
  // producer may hand over buffers any more.
  ~AccessLogSink();
  AccessLogSink(const AccessLogSink&) = delete;
  AccessLogSink& operator=(const AccessLogSink&) = delete;

  // Any thread, once per AccessLogBuffer: its producer (owned by the sink), or null when
  // kMaxProducers are taken. Takes a lock; never called per request.
  Producer* AddProducer();
  // The producer's owner: hands `lines` (complete lines) to the writer thread and gets back an
  // empty buffer with an earlier buffer's capacity. When the producer's ring is full the lines
  // are dropped, counted, and `lines` is cleared. Never blocks.
  void Submit(Producer* producer, std::string& lines);

  uint64_t dropped_lines() const { return dropped_lines_.load(std::memory_order_relaxed); }
  uint64_t id() const { return id_; }

 private:
  AccessLogSink(int fd, bool owned, const AccessLogSinkOptions& options);
  void Drop(std::string_view lines);
  void Run();
  // Writer thread: writes `data` whole unless the sink is stopping and the output stays
  // unwritable past the deadline, or it fails; what is not written is counted as dropped.
  void WriteOut(const std::string& data);
  void Wake();

  const int fd_;
  const bool owned_;
  bool regular_file_ = false;  // writes never wait indefinitely: no need to poll first
  const AccessLogSinkOptions options_;
  const uint64_t id_;
  std::unique_ptr<std::atomic<Producer*>[]> producers_;
  std::atomic<int> producer_count_{0};
  std::mutex add_mu_;  // AddProducer only
  std::atomic<uint64_t> dropped_lines_{0};
  int wake_fd_ = -1;  // eventfd: a buffer for a sleeping writer, or stop
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_{false};
  std::chrono::steady_clock::time_point stop_deadline_;  // written before stop_
  std::thread thread_;
};

// One worker's lines on their way to the sink. Worker thread only (and its owner after the
// worker thread has stopped).
class AccessLogBuffer {
 public:
  static constexpr size_t kFlushBytes = 32 * 1024;

  std::string& line() { return buf_; }  // append one complete line ending in '\n'
  void MaybeFlush(AccessLogSink* sink) {
    if (buf_.size() >= kFlushBytes) Flush(sink);
  }
  // Hands the lines to `sink` (dropped when null).
  void Flush(AccessLogSink* sink);

 private:
  std::string buf_;
  uint64_t sink_id_ = 0;  // the sink producer_ belongs to
  AccessLogSink::Producer* producer_ = nullptr;
};

class PrometheusText;
// Appends tokenway_access_log_dropped_lines_total (0 when `sink` is null). Admin thread.
void RenderAccessLogMetrics(PrometheusText& text, const AccessLogSink* sink);

}  // namespace tokenway
