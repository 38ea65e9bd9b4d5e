// Fuzzes the W3C traceparent parser: never crashes, and whatever it accepts round-trips: the
// formatted header of an accepted version-00 value is the input itself, ids are never all zero,
// and the input was lowercase hex where the grammar says so.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "telemetry/trace_context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view header(reinterpret_cast<const char*>(data), size);
  tokenway::TraceParent parent;
  if (!tokenway::ParseTraceParent(header, parent)) return 0;
  if (header.size() < tokenway::kTraceParentSize) std::abort();
  if (parent.version == 0xff) std::abort();
  bool zero_trace = true, zero_parent = true;
  for (uint8_t b : parent.trace_id) zero_trace = zero_trace && b == 0;
  for (uint8_t b : parent.parent_id) zero_parent = zero_parent && b == 0;
  if (zero_trace || zero_parent) std::abort();
  char formatted[tokenway::kTraceParentSize];
  tokenway::FormatTraceParent(parent.trace_id, parent.parent_id, parent.flags, formatted);
  // Everything after the version must match the input exactly.
  if (std::string_view(formatted + 2, tokenway::kTraceParentSize - 2) !=
      header.substr(2, tokenway::kTraceParentSize - 2)) {
    std::abort();
  }
  if (parent.version == 0 && header.size() != tokenway::kTraceParentSize) std::abort();
  return 0;
}
