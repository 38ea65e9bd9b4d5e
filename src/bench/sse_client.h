// StreamMeter: the client side of one streamed completion, measured event by event.
//
// The load generator appends the de-framed response body to buffer() as it arrives and calls
// Drain() with the arrival time; the meter splits server-sent events on blank lines, finds the
// chunks that carry a non-empty token (TTFT, ITL), counts them, reads usage from the usage chunk
// and notices "[DONE]", error events and malformed payloads. One meter per request; reusable
// after Reset(). Not thread-safe; one per in-flight request on its loop's thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/sse.h"
#include "common/usage.h"

namespace tokenway::bench {

class StreamMeter {
 public:
  // `usage_reader` is shared by the meters of one thread; `itl_us` receives every inter-token
  // gap in microseconds (may be null).
  StreamMeter(UsageReader* usage_reader, std::vector<uint32_t>* itl_us)
      : usage_reader_(usage_reader), itl_us_(itl_us) {}

  void Reset();
  std::string* buffer() { return splitter_.mutable_buffer(); }
  // Consumes every complete event buffered so far; `now_ns` is when their bytes arrived.
  void Drain(int64_t now_ns);

  int64_t first_token_ns() const { return first_token_ns_; }  // -1: no token yet
  int64_t last_token_ns() const { return last_token_ns_; }
  int64_t token_chunks() const { return token_chunks_; }  // chunks with a non-empty token
  int64_t events() const { return events_; }
  int64_t max_gap_ns() const { return max_gap_ns_; }
  bool done() const { return done_; }                // "data: [DONE]" seen
  bool malformed() const { return malformed_; }      // a payload that is not JSON
  bool error_event() const { return error_event_; }  // an {"error": ...} payload
  const TokenUsage& usage() const { return usage_; }
  bool has_usage() const { return has_usage_; }

  // Whether a chunk's JSON carries a non-empty "content" or "text" token. Exposed for tests.
  static bool CarriesToken(std::string_view json);

 private:
  void OnEvent(std::string_view event, int64_t now_ns);

  SseEventSplitter splitter_;
  std::string scratch_;
  UsageReader* usage_reader_;
  std::vector<uint32_t>* itl_us_;
  int64_t first_token_ns_ = -1, last_token_ns_ = -1, max_gap_ns_ = -1;
  int64_t token_chunks_ = 0, events_ = 0;
  bool done_ = false, malformed_ = false, error_event_ = false, has_usage_ = false;
  TokenUsage usage_;
};

}  // namespace tokenway::bench
