// The load generator: sends a workload's requests to one OpenAI-compatible URL and measures each
// one from the client side.
//
// One Asio event loop per thread (--threads), C++20 coroutines, keep-alive connections, request
// bytes (head + body) built once before the run, responses parsed incrementally from the
// connection's own buffer and streams metered event by event (StreamMeter). Open loop (Poisson or
// constant arrivals at --rate, or a trace's own arrival times) or closed loop (--concurrency).
// Requests that start during the warm-up are sent but excluded from results. Failures are
// recorded by kind; nothing a server does crashes the generator.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bench/workload.h"
#include "common/usage.h"
#include "tokenway/status.h"

namespace tokenway::bench {

struct Target {
  std::string host;
  uint16_t port = 80;
  std::string path;  // e.g. /v1/chat/completions
};
// Parses http://host[:port][/path]; the path defaults to `default_path`.
StatusOr<Target> ParseHttpUrl(std::string_view url, std::string_view default_path);

enum class ErrorKind : uint8_t {
  kNone = 0,
  kConnect,  // connect refused / unreachable / reset before any response byte
  kHttp4xx,
  kHttp5xx,
  kMalformedSse,     // a stream payload that is not JSON
  kMalformedBody,    // an unparsable HTTP response, or a 200 body that is not JSON
  kTruncatedStream,  // the connection ended before the response (or "[DONE]") was complete,
                     // including a close without any response byte
  kStreamError,      // an {"error": ...} event inside a 200 stream
  kTimeout,          // no complete response within --timeout
  kCount
};
const char* ErrorKindName(ErrorKind kind);
inline constexpr size_t kErrorKinds = static_cast<size_t>(ErrorKind::kCount);

// One finished request. Times in seconds; -1 = not measured.
struct RequestRecord {
  double start = 0;  // send time, from the start of the run
  double ttft = -1, tpot = -1, e2e = -1, max_itl = -1;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;   // usage.completion_tokens, else token chunks counted
  int64_t stream_tokens = -1;  // token chunks counted in the stream
  int64_t cached_tokens = -1;  // usage.prompt_tokens_details.cached_tokens
  int32_t status = 0;          // HTTP status (0: none)
  int32_t group = -1;
  ErrorKind error = ErrorKind::kNone;
  bool warmup = false;          // started during the warm-up: excluded from results
  bool usage_mismatch = false;  // usage and the counted stream disagree
  bool ok() const { return error == ErrorKind::kNone; }
};

struct LoadOptions {
  Target target;
  bool stream = true;
  double rate = 0;              // requests/s, open loop; 0 with concurrency > 0: closed loop
  bool poisson = true;          // open loop: exponential gaps (else constant)
  bool trace_arrivals = false;  // open loop at the workload's own arrival_s
  int64_t concurrency = 0;      // closed loop: requests in flight
  double duration_s = 0;        // stop starting requests after warmup + duration (0: unbounded)
  int64_t requests = 0;         // ... or after this many measured requests (0: unbounded)
  double warmup_s = 0;
  double timeout_s = 300;  // per request
  double drain_s = 30;     // after the last start, how long in-flight requests may finish
  int threads = 1;
  int64_t max_in_flight = 20000;
  uint64_t seed = 1;
  bool progress = false;  // live progress line on stderr
  std::string progress_label;
};

struct LoadResult {
  std::vector<RequestRecord> records;  // every request started (warm-up ones flagged)
  std::vector<uint32_t> itl_us;        // inter-token gaps of measured requests, microseconds
  double measure_start = 0;            // seconds from run start: end of warm-up
  double measure_end = 0;              // last completion of a measured request
  double wall_s = 0;
  int64_t unfinished = 0;      // still in flight when the drain time ran out
  int64_t client_limited = 0;  // open loop: skipped because max_in_flight was reached
};

// Runs the load. `stop` (may be null) ends it early (SIGINT). Blocks until done.
LoadResult RunLoad(const LoadOptions& options, const std::vector<WorkloadRequest>& workload,
                   const std::atomic<bool>* stop);

// The open-loop send times of a run, in seconds from its start: Poisson (seeded by
// options.seed) or constant gaps at options.rate until warm-up + duration (or options.requests
// measured ones), or the workload's own arrival_s (sorted) for trace replay. Request i of the
// run sends workload[i % size]. Shared with the fleet simulator, so a simulated run offers the
// same arrivals as a real one.
std::vector<double> ArrivalTimes(const LoadOptions& options,
                                 const std::vector<WorkloadRequest>& workload);

class StreamMeter;

// A finished streamed response, metered: fills `rec`'s output and cached tokens, TTFT, TPOT and
// largest gap (e2e must be set), and returns how the stream ended (kNone when complete). Shared by
// the HTTP load mode and the endpoint-picker mode, so both score a stream alike.
ErrorKind RecordStream(const StreamMeter& meter, int64_t t0_ns, RequestRecord& rec);

// A whole JSON response: fills `rec`'s tokens from its usage block; kMalformedBody when it is not
// JSON. `body` is parsed in place (simdjson padding).
ErrorKind RecordBody(UsageReader& usage, std::string& body, RequestRecord& rec);

// The JSON body of `r` with "stream" (and stream_options.include_usage) set.
std::string WithStream(const std::string& body, bool stream);

}  // namespace tokenway::bench
