#include "telemetry/trace_context.h"

namespace tokenway {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Lowercase hex digit value, or -1.
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes 2*n lowercase hex characters; false on any other character.
bool DecodeHex(std::string_view text, uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    int hi = HexValue(text[2 * i]);
    int lo = HexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

}  // namespace

bool ParseTraceParent(std::string_view h, TraceParent& out) {
  if (h.size() < kTraceParentSize) return false;
  uint8_t version;
  if (!DecodeHex(h.substr(0, 2), &version, 1) || version == 0xff) return false;
  if (version == 0 && h.size() != kTraceParentSize) return false;
  // A later version may append fields, each after a '-'.
  if (h.size() > kTraceParentSize && h[kTraceParentSize] != '-') return false;
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  if (!DecodeHex(h.substr(3, 32), out.trace_id.data(), 16)) return false;
  if (!DecodeHex(h.substr(36, 16), out.parent_id.data(), 8)) return false;
  if (!DecodeHex(h.substr(53, 2), &out.flags, 1)) return false;
  if (AllZero(out.trace_id.data(), 16) || AllZero(out.parent_id.data(), 8)) return false;
  out.version = version;
  return true;
}

void FormatTraceParent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags, char* out) {
  char* p = out;
  *p++ = '0';
  *p++ = '0';
  *p++ = '-';
  for (uint8_t b : trace_id) {
    *p++ = kHex[b >> 4];
    *p++ = kHex[b & 0xF];
  }
  *p++ = '-';
  for (uint8_t b : span_id) {
    *p++ = kHex[b >> 4];
    *p++ = kHex[b & 0xF];
  }
  *p++ = '-';
  *p++ = kHex[flags >> 4];
  *p++ = kHex[flags & 0xF];
}

void AppendHex(std::string& out, const uint8_t* bytes, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xF]);
  }
}

}  // namespace tokenway
