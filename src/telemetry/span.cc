#include "telemetry/span.h"

#include <charconv>
#include <chrono>
#include <cmath>

#include "common/duration.h"
#include "common/json_writer.h"

namespace tokenway {

namespace {

// Span kind CLIENT and status code ERROR (trace.proto).
constexpr int kSpanKindClient = 3;
constexpr int kStatusError = 2;

// Attribute keys are tokenway's own ASCII names: written without escaping. Values are escaped.
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
    out_.append("{\"intValue\":\"");
    AppendJsonInt(out_, value);
    out_.append("\"}}");
  }
  void Double(std::string_view key, double value) {
    Key(key);
    AppendDoubleValue(value);
  }
  // "tokenway.score.<scorer>" with '-' written '_' (attribute names are snake_case).
  void Score(std::string_view scorer, double value) {
    Open();
    out_.append("\"tokenway.score.");
    for (char c : scorer) out_.push_back(c == '-' ? '_' : c);
    out_.append("\",\"value\":");
    AppendDoubleValue(value);
  }
  void Bool(std::string_view key, bool value) {
    Key(key);
    out_.append("{\"boolValue\":").append(value ? "true" : "false").append("}}");
  }

 private:
  void Open() {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.append("{\"key\":");
  }
  void Key(std::string_view key) {
    Open();
    out_.push_back('"');
    out_.append(key);
    out_.append("\",\"value\":");
  }
  void AppendDoubleValue(double value) {
    out_.append("{\"doubleValue\":");
    if (!std::isfinite(value)) value = 0;
    char text[32];
    auto [end, ec] = std::to_chars(text, text + sizeof text, value);
    out_.append(text, static_cast<size_t>(end - text));
    out_.append("}}");
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
  if (url.size() >= 2 && url.front() == '[' && url.back() == ']')
    url = url.substr(1, url.size() - 2);
  host = url;
}

}  // namespace

int64_t MonotonicToUnixNanos(int64_t monotonic_ns) {
  static const int64_t offset = std::chrono::duration_cast<std::chrono::nanoseconds>(
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
  out.append(",\"flags\":");
  AppendJsonInt(out, t.flags);
  // "{operation} {model}": the operation is one of tokenway's names, the model is escaped.
  out.append(",\"name\":\"").append(s.operation);
  if (!s.request_model.empty()) {
    out.push_back(' ');
    size_t quote = out.size();
    AppendJsonString(out, s.request_model);
    out.erase(quote, 1);  // the opening quote of the model's literal
  } else {
    out.push_back('"');
  }
  out.append(",\"kind\":");
  AppendJsonInt(out, kSpanKindClient);
  out.append(",\"startTimeUnixNano\":\"");
  AppendJsonInt(out, s.start_unix_ns);
  out.append("\",\"endTimeUnixNano\":\"");
  AppendJsonInt(out, s.end_unix_ns);
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
  char status_text[16];
  std::string_view error_type;
  if (error) {
    if (!s.error_code.empty()) {
      error_type = s.error_code;
    } else if (s.status) {
      auto [end, ec] = std::to_chars(status_text, status_text + sizeof status_text, s.status);
      error_type = std::string_view(status_text, static_cast<size_t>(end - status_text));
    } else {
      error_type = "_OTHER";
    }
    a.String("error.type", error_type);
  }
  if (!s.pool.empty()) a.String("tokenway.pool", s.pool);
  a.String("tokenway.request_id", s.request_id);
  a.Double("tokenway.queue_time_ms", s.queue_time_ms);
  a.Int("tokenway.retries", s.retries);
  a.Int("tokenway.priority", s.priority);
  if (!s.semantic_route.empty()) {
    a.String("tokenway.route", s.semantic_route);
    a.Double("tokenway.route.confidence", s.route_confidence);
  }
  if (s.scores && s.scores->filled) {
    a.Double("tokenway.score.total", s.scores->total);
    for (uint32_t k = 0; k < s.scores->count; ++k) a.Score(s.scores->names[k], s.scores->values[k]);
  }
  out.append("]");
  if (error) {
    out.append(",\"status\":{\"code\":");
    AppendJsonInt(out, kStatusError);
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
