// The EPP load generator (`tokenway-bench epp`): plays Envoy against an endpoint picker with the
// same workloads, open/closed loops and report as `tokenway-bench run`, one EnvoyExchange per
// request, and measures what the picker costs: pick decision latency (request_headers written →
// pick received), picks/s, response chunks/s through the processor, and — given the picker's pid
// — its CPU time per request from /proc/<pid>/stat.
//
// One Asio loop per thread (--threads), each with its own gRPC channel (one HTTP/2 connection,
// like one Envoy worker) and its own upstream keep-alive pool. Called from main() of
// tokenway-bench; blocks until the run ends.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/envoy_exchange.h"
#include "bench/load_generator.h"
#include "bench/report.h"
#include "bench/stats.h"

namespace tokenway::bench {

struct EppLoadOptions {
  LoadOptions load;  // rate / concurrency / duration / warm-up / timeout / threads / stream
  std::string epp;   // the picker's gRPC address, host:port
  std::string authority = "tokenway-bench";
  EnvoyOptions envoy;  // body modes, chunk size, subset hint, no-upstream
  int epp_pid = 0;     // > 0: read this process's CPU time before and after the measurement
};

struct EppLoadResult {
  LoadResult load;                 // per-request records as the HTTP modes keep them
  std::vector<double> decision_s;  // measured picks: request_headers written -> pick received
  int64_t picks = 0;               // measured requests that got a pick
  int64_t immediate = 0;           // measured requests answered with an ImmediateResponse
  std::map<int, int64_t> immediate_by_status;
  int64_t response_chunks = 0;  // measured response_body answers received from the picker
  std::map<std::string, int64_t> failures;  // measured failures by reason
  std::map<std::string, int64_t> served;    // measured picks by first endpoint
  // The picker's CPU (user + system) between the end of the warm-up and the end of the run,
  // and the requests that finished in that window; cpu_s < 0: not measured.
  double cpu_s = -1, cpu_window_s = 0;
  int64_t cpu_window_requests = 0;
  double client_cpu_s = -1;  // this load generator's own CPU in the same window
};

EppLoadResult RunEppLoad(const EppLoadOptions& options,
                         const std::vector<WorkloadRequest>& workload,
                         const std::atomic<bool>* stop);

// The EPP figures as a text block (after the standard table) and as a JSON object text.
std::string FormatEppSummary(const EppLoadResult& r, const RunSummary& s);
std::string EppSummaryJson(const EppLoadResult& r, const RunSummary& s);

// CPU seconds (utime + stime) of `pid` from /proc/<pid>/stat; < 0 when unreadable.
double ProcessCpuSeconds(int pid);

}  // namespace tokenway::bench
