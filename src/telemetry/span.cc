#include "telemetry/span.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/duration.h"
#include "common/json_writer.h"

namespace tokenway {

namespace {

// Span kind CLIENT and status code ERROR (trace.proto).
constexpr int kSpanKindClient = 3;
constexpr int kStatusError = 2;

class AttributeWriter {
 public:
  explicit AttributeWriter(std::string& out) : out_(out) {}

  void String(std::string_view key, std::string_view value) {
    Key(key);
    out_.append("{\"stringValue\":");
    AppendJsonString(out_, value);
    out_.append("}}");
  }
  // int64 as a decimal string, as the OTLP JSON encoding requires.
  void Int(std::string_view key, int64_t value) {
    Key(key);
    out_.append("{\"intValue\":\"").append(std::to_string(value)).append("\"}}");
  }
  void Double(std::string_view key, double value) {
    Key(key);
    out_.append("{\"doubleValue\":");
    if (!std::isfinite(value)) value = 0;
    char text[32];
    int n = std::snprintf(text, sizeof text, "%.9g", value);
    out_.append(text, static_cast<size_t>(n));
    out_.append("}}");
  }
  void Bool(std::string_view key, bool value) {
    Key(key);
    out_.append("{\"boolValue\":").append(value ? "true" : "false").append("}}");
  }

 private:
  void Key(std::string_view key) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.append("{\"key\":");
    AppendJsonString(out_, key);
    out_.append(",\"value\":");
  }
  std::string& out_;
  bool first_ = true;
};

// host and port of "http://host:port/..." (port 80 or 443 by scheme when absent).
void SplitUrl(std::string_view url, std::string_view& host, int& port) {
  port = 80;
  if (url.substr(0, 8) == "https://") port = 443;
  size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find('/'));
  size_t colon = url.rfind(':');
  size_t bracket = url.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    int p = 0;
    for (char c : url.substr(colon + 1)) {
      if (c < '0' || c > '9' || p > 65535) {
        p = -1;
        break;
      }
      p = p * 10 + (c - '0');
    }
    if (p > 0 && p <= 65535) port = p;
    url = url.substr(0, colon);
  }
  if (url.size() >= 2 && url.front() == '[' && url.back() == ']') url = url.substr(1, url.size() - 2);
  host = url;
}

}  // namespace

int64_t MonotonicToUnixNanos(int64_t monotonic_ns) {
  static const int64_t offset =
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count() -
      MonotonicNanos();
  return monotonic_ns + offset;
}

void AppendOtlpSpan(std::string& out, const SpanRecord& s) {
  const TraceContext& t = *s.trace;
  out.append("{\"traceId\":\"");
  AppendHex(out, t.trace_id.data(), t.trace_id.size());
  out.append("\",\"spanId\":\"");
  AppendHex(out, t.span_id.data(), t.span_id.size());
  out.append("\"");
  if (t.has_parent) {
    out.append(",\"parentSpanId\":\"");
    AppendHex(out, t.parent_id.data(), t.parent_id.size());
    out.append("\"");
  }
  if (!s.trace_state.empty()) {
    out.append(",\"traceState\":");
    AppendJsonString(out, s.trace_state);
  }
  out.append(",\"flags\":").append(std::to_string(t.flags));
  out.append(",\"name\":");
  std::string name;
  name.reserve(s.operation.size() + 1 + s.request_model.size());
  name.append(s.operation);
  if (!s.request_model.empty()) name.append(" ").append(s.request_model);
  AppendJsonString(out, name);
  out.append(",\"kind\":").append(std::to_string(kSpanKindClient));
  out.append(",\"startTimeUnixNano\":\"").append(std::to_string(s.start_unix_ns));
  out.append("\",\"endTimeUnixNano\":\"").append(std::to_string(s.end_unix_ns));
  out.append("\",\"attributes\":[");
  AttributeWriter a(out);
  a.String("gen_ai.operation.name", s.operation);
  a.String("gen_ai.provider.name", s.provider);
  if (!s.request_model.empty()) a.String("gen_ai.request.model", s.request_model);
  if (!s.response_model.empty()) a.String("gen_ai.response.model", s.response_model);
  if (s.max_tokens > 0) a.Int("gen_ai.request.max_tokens", s.max_tokens);
  if (s.stream) a.Bool("gen_ai.request.stream", true);
  if (s.input_tokens >= 0) a.Int("gen_ai.usage.input_tokens", s.input_tokens);
  if (s.output_tokens >= 0) a.Int("gen_ai.usage.output_tokens", s.output_tokens);
  if (s.cached_tokens >= 0) a.Int("gen_ai.usage.cache_read.input_tokens", s.cached_tokens);
  if (s.stream && s.time_to_first_chunk_s >= 0) {
    a.Double("gen_ai.response.time_to_first_chunk", s.time_to_first_chunk_s);
  }
  if (!s.endpoint_url.empty()) {
    std::string_view host;
    int port = 0;
    SplitUrl(s.endpoint_url, host, port);
    a.String("server.address", host);
    a.Int("server.port", port);
    a.String("tokenway.endpoint", s.endpoint_url);
  }
  if (s.status) a.Int("http.response.status_code", s.status);
  const bool error = !s.error_code.empty() || s.status >= 400 || s.status == 0;
  std::string error_type;
  if (error) {
    error_type = !s.error_code.empty() ? std::string(s.error_code)
                 : s.status            ? std::to_string(s.status)
                                       : std::string("_OTHER");
    a.String("error.type", error_type);
  }
  if (!s.pool.empty()) a.String("tokenway.pool", s.pool);
  a.String("tokenway.request_id", s.request_id);
  a.Double("tokenway.queue_time_ms", s.queue_time_ms);
  a.Int("tokenway.retries", s.retries);
  a.Int("tokenway.priority", s.priority);
  if (s.scores && s.scores->filled) {
    a.Double("tokenway.score.total", s.scores->total);
    std::string key;
    for (uint32_t k = 0; k < s.scores->count; ++k) {
      key.assign("tokenway.score.");
      for (char c : s.scores->names[k]) key.push_back(c == '-' ? '_' : c);
      a.Double(key, s.scores->values[k]);
    }
  }
  out.append("]");
  if (error) {
    out.append(",\"status\":{\"code\":").append(std::to_string(kStatusError));
    out.append(",\"message\":");
    AppendJsonString(out, error_type);
    out.append("}");
  } else {
    out.append(",\"status\":{}");
  }
  out.append("}");
}

void AppendOtlpExportRequestHead(std::string& out, std::string_view service_name) {
  out.append("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  out.append("{\"key\":\"service.name\",\"value\":{\"stringValue\":");
  AppendJsonString(out, service_name);
  out.append("}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"tokenway\"},\"spans\":[");
}

void AppendOtlpExportRequestTail(std::string& out) {
  out.append("]}]}]}");
}

}  // namespace tokenway
