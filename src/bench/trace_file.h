// Trace files: reading the public request-trace formats line by line and writing synthetic traces
// in them.
//
// Two formats, told apart by the first non-blank line (a CSV header names the Azure columns) or
// the file name (.csv):
//   Mooncake-style JSONL  {"timestamp": ms, "input_length": n, "output_length": n,
//                          "hash_ids": [ids], "prefix_group": g}   (ParseTraceLine, workload.h)
//   Azure LLM inference   CSV with the header TIMESTAMP,ContextTokens,GeneratedTokens; TIMESTAMP
//                          is "YYYY-MM-DD HH:MM:SS[.fraction]" (as published) or seconds
// A reader either stops at the first malformed line (tokenway-bench run/experiment: a trace is
// input the user prepared) or skips it and counts it (tokenway-bench simulate, which replays
// traces of millions of lines), keeping the first few reasons with their line numbers. Used by
// the workload generator and the fleet simulator on their own thread; no shared state.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/workload.h"
#include "tokenway/status.h"

namespace tokenway::bench {

enum class TraceFormat { kMooncake, kAzure };
const char* TraceFormatName(TraceFormat format);
StatusOr<TraceFormat> ParseTraceFormat(std::string_view name);  // "mooncake" | "azure"

// One Azure CSV data line ("2023-11-16 18:15:46.6805900,4808,10") as a TraceRecord (timestamp in
// ms since the Unix epoch, or the number given when it is plain seconds). Errors name the field.
StatusOr<TraceRecord> ParseAzureTraceLine(std::string_view line);

// Parses "YYYY-MM-DD HH:MM:SS[.fraction]" (UTC) to milliseconds since the Unix epoch.
StatusOr<double> ParseTraceDateTime(std::string_view text);

// Reads one trace file record by record.
class TraceReader {
 public:
  static constexpr size_t kKeptErrors = 5;

  // Opens `path`; `skip_malformed`: count and skip bad lines instead of failing on them.
  static StatusOr<TraceReader> Open(const std::string& path, bool skip_malformed);

  // The next record: true and `out` filled; false at the end of the file or on an error (then
  // status() is not ok and says "file:line: reason").
  bool Next(TraceRecord& out);
  const Status& status() const { return status_; }
  TraceFormat format() const { return format_; }
  int64_t records() const { return records_; }
  int64_t malformed() const { return malformed_; }
  // "file:line: reason" of the first kKeptErrors skipped lines.
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string path_;
  std::ifstream in_;
  bool skip_malformed_ = false;
  TraceFormat format_ = TraceFormat::kMooncake;
  bool header_pending_ = false;  // Azure: the header line has not been read yet
  int64_t line_ = 0;
  int64_t records_ = 0;
  int64_t malformed_ = 0;
  std::vector<std::string> errors_;
  Status status_ = Status::Ok();
};

// What a synthetic trace looks like. Arrivals are Poisson at `rate`; input lengths log-normal
// around `input_median`; output lengths log-normal around `output_median`. Mooncake traces share
// prefixes: each request belongs to one of `groups` prefix groups drawn with Zipf(`zipf`)
// popularity, whose first `shared_blocks` hash ids are the group's; the rest of its blocks are
// unique to it. Azure traces carry no prefix information (as published).
struct SyntheticTraceOptions {
  TraceFormat format = TraceFormat::kMooncake;
  int64_t requests = 1000;
  double rate = 10;  // requests per second
  uint64_t seed = 1;
  double input_median = 2048, input_sigma = 0.6;
  double output_median = 200, output_sigma = 0.7;
  int64_t max_input = 32768, max_output = 2048;
  int64_t groups = 64;
  double zipf = 1.0;
  int64_t shared_blocks = 4;
  int64_t block_size = 512;  // tokens per hash id
};

// Writes a synthetic trace to `path`.
Status WriteSyntheticTrace(const SyntheticTraceOptions& options, const std::string& path);

}  // namespace tokenway::bench
