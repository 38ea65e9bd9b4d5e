// TraceContext: the W3C trace context of one request (https://www.w3.org/TR/trace-context/).
//
// The request path parses the client's `traceparent` (ParseTraceParent), starts the request's
// own span under it or a new trace (StartTrace), and forwards `traceparent` with its own span id
// as parent-id to the upstream (FormatTraceParent). Sampling is parent-based: a valid incoming
// header decides by its sampled flag; otherwise the configured ratio decides. Everything here is
// plain data and pure functions, called on worker threads; ids come from the worker's generator.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tokenway {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

inline constexpr uint8_t kTraceFlagSampled = 0x01;
inline constexpr size_t kTraceParentSize = 55;  // "00-" 32 hex "-" 16 hex "-" 2 hex

// A valid incoming traceparent.
struct TraceParent {
  uint8_t version = 0;
  TraceId trace_id{};
  SpanId parent_id{};
  uint8_t flags = 0;
};

// Parses a traceparent header value. Rules (trace-context §3.2): lowercase hex only; version
// "ff" is invalid; version 00 is exactly 55 characters; a higher version may carry more fields
// after a '-' at offset 55, which are ignored; an all-zero trace-id or parent-id is invalid.
// Returns false when the whole header must be ignored.
bool ParseTraceParent(std::string_view header, TraceParent& out);

// Writes "00-<trace_id>-<span_id>-<flags>" (kTraceParentSize characters) into `out`.
void FormatTraceParent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags, char* out);

// Appends `n` bytes as lowercase hex.
void AppendHex(std::string& out, const uint8_t* bytes, size_t n);

// The trace context of one request. `active` is false when tracing is off.
struct TraceContext {
  TraceId trace_id{};
  SpanId span_id{};    // this request's span, the parent-id sent upstream
  SpanId parent_id{};  // the client's span (valid when has_parent)
  uint8_t flags = 0;   // as sent upstream; bit 0 = sampled
  bool active = false;
  bool has_parent = false;
  bool sampled() const { return (flags & kTraceFlagSampled) != 0; }
};

// True with probability `ratio` for a uniformly random `random`: 0 never, 1 always.
inline bool SampleByRatio(double ratio, uint64_t random) {
  if (ratio >= 1.0) return true;
  if (ratio <= 0.0) return false;
  return static_cast<double>(random >> 11) * 0x1.0p-53 < ratio;
}

// Starts the request's trace context: under `header` when it parses (sampled as the parent
// says), else a new trace sampled by `ratio`. `random` is called for fresh ids and the
// sampling draw (the worker's generator).
template <class Random>
void StartTrace(std::string_view header, double ratio, Random&& random, TraceContext& out) {
  TraceParent parent;
  out.active = true;
  out.has_parent = !header.empty() && ParseTraceParent(header, parent);
  auto fill = [&](uint8_t* p, size_t n) {
    for (;;) {
      uint64_t nonzero = 0;
      for (size_t i = 0; i < n; i += 8) {
        uint64_t r = random();
        nonzero |= r;
        for (size_t k = 0; k < 8 && i + k < n; ++k) p[i + k] = static_cast<uint8_t>(r >> (8 * k));
      }
      if (nonzero) return;  // all-zero ids are invalid
    }
  };
  fill(out.span_id.data(), out.span_id.size());
  if (out.has_parent) {
    out.trace_id = parent.trace_id;
    out.parent_id = parent.parent_id;
    out.flags = parent.version == 0 ? parent.flags : (parent.flags & kTraceFlagSampled);
  } else {
    fill(out.trace_id.data(), out.trace_id.size());
    out.parent_id = SpanId{};
    out.flags = SampleByRatio(ratio, random()) ? kTraceFlagSampled : 0;
  }
}

}  // namespace tokenway
