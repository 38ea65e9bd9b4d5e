// Fuzzes the trace-line parsers (bench/trace_file.h, bench/workload.h): a Mooncake JSONL line or
// an Azure CSV line, whatever its bytes, is either a record with sane fields or an error with a
// message — never a crash. The first byte picks the parser.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "bench/trace_file.h"
#include "bench/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // simdjson needs its padding: parse from an owned copy.
  const std::string line(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto check = [](const tokenway::StatusOr<tokenway::bench::TraceRecord>& r) {
    if (r.ok()) {
      if (r->input_length < 1 || r->output_length < 0 || !(r->timestamp_ms >= 0)) std::abort();
    } else if (r.status().message().empty()) {
      std::abort();
    }
  };
  if (data[0] & 1) {
    check(tokenway::bench::ParseAzureTraceLine(line));
  } else {
    check(tokenway::bench::ParseTraceLine(line));
  }
  return 0;
}
