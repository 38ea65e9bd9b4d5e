// AccessLog: one JSON line per request, written without slowing the request path.
//
// Each worker appends lines to its own AccessLogBuffer; the buffer is flushed to the sink when it
// passes 32 KiB and by the worker's periodic timer, so a line appears within ~100 ms. The sink
// write takes a process-wide mutex so lines from different workers never interleave; that lock
// is taken per flush, not per request.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

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
  kUsageInjected,
  kStreamEvents,
  kRetries,
  kPriority,
  kQueueMs,
  kRoute,
  kRequestBytes,
  kResponseBytes,
  kPromptHash,
  kError,
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

class AccessLogSink {
 public:
  // "stdout" or a file path (appended to). Returns nullptr and sets `error` on failure.
  static std::shared_ptr<AccessLogSink> Open(const std::string& path, std::string& error);
  ~AccessLogSink();
  void Write(const std::string& lines);

 private:
  explicit AccessLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  std::mutex mu_;
  int fd_;
  bool owned_;
};

class AccessLogBuffer {
 public:
  std::string& line() { return buf_; }  // append one complete line ending in '\n'
  void MaybeFlush(AccessLogSink* sink) {
    if (buf_.size() >= 32 * 1024) Flush(sink);
  }
  void Flush(AccessLogSink* sink) {
    if (!buf_.empty() && sink) sink->Write(buf_);
    buf_.clear();
  }

 private:
  std::string buf_;
};

}  // namespace tokenway
