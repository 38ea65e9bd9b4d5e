// The request path's tracing hooks: the trace context taken from the
// client's traceparent, the traceparent forwarded upstream, and the span of a sampled request.
// The span's encoding and its export live in src/telemetry (span.h, otlp_exporter.h).
#include "common/request_inspector.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"
#include "telemetry/otlp_exporter.h"
#include "telemetry/span.h"

namespace tokenway {

namespace {
// trace-context §3.3.1: at most 32 list members; a longer tracestate may be discarded.
constexpr size_t kMaxTraceStateMembers = 32;
}  // namespace

void BeginTrace(RequestContext& ctx) {
  const RequestParser& parser = *ctx.parser;
  RequestRecord& rec = ctx.record;
  const char* base = ctx.base;
  Worker& worker = ctx.worker;
  std::string_view header =
      parser.traceparent_count == 1 ? parser.traceparent.in(base) : std::string_view();
  StartTrace(
      header, ctx.runtime->config.tracing.sample_ratio, [&worker] { return worker.NextRandom(); },
      rec.trace);
  // tracestate belongs to the client's trace: propagated only under a valid traceparent.
  rec.drop_tracestate = !rec.trace.has_parent;
  if (rec.trace.has_parent && parser.tracestate_count == 1) {
    std::string_view state = parser.FindHeader(base, "tracestate");
    size_t members = 1;
    for (char c : state) members += c == ',';
    if (members > kMaxTraceStateMembers) {
      rec.drop_tracestate = true;
    } else {
      rec.trace_state = state;
    }
  }
}

void AppendTraceParent(const RequestContext& ctx, std::string& head) {
  const RequestParser& parser = *ctx.parser;
  const TraceContext& t = ctx.record.trace;
  if (t.active) {
    // Our span is the upstream's parent; the flags carry our sampling decision (W3C requires
    // propagation even when not sampled).
    char value[kTraceParentSize];
    FormatTraceParent(t.trace_id, t.span_id, t.flags, value);
    head.append("traceparent: ").append(value, kTraceParentSize).append("\r\n");
  } else if (!parser.traceparent.empty()) {
    // Tracing off: the client's header passes through unchanged.
    head.append("traceparent: ").append(parser.traceparent.in(ctx.base)).append("\r\n");
  }
}

void ExportSpan(const RequestContext& ctx, int64_t end_ns) {
  const RequestRecord& rec = ctx.record;
  OtlpExporter* exporter = ctx.worker.shared().traces.get();
  if (!exporter) return;
  const TracingConfig& config = ctx.runtime->config.tracing;
  SpanRecord s;
  s.trace = &rec.trace;
  s.trace_state = rec.trace_state;
  s.operation = OperationName(ctx.inspected.operation);
  s.request_model = ctx.inspected.model;
  s.response_model = rec.response_model;
  s.provider = !config.provider_name.empty() ? std::string_view(config.provider_name)
               : !rec.engine.empty()         ? rec.engine
                                             : std::string_view("unknown");
  s.endpoint_url = rec.endpoint;
  s.pool = rec.pool;
  s.request_id = rec.request_id;
  s.error_code = rec.error_code;
  s.start_unix_ns = MonotonicToUnixNanos(rec.start_ns);
  s.end_unix_ns = MonotonicToUnixNanos(end_ns);
  s.status = rec.status;
  s.input_tokens = rec.usage.prompt_tokens;
  s.output_tokens = rec.usage.completion_tokens;
  s.cached_tokens = rec.usage.cached_tokens;
  s.max_tokens = ctx.inspected.max_tokens;
  s.stream = rec.stream;
  if (rec.stream && rec.first_byte_ns) {
    s.time_to_first_chunk_s = static_cast<double>(rec.first_byte_ns - rec.start_ns) / 1e9;
  }
  s.retries = rec.retries;
  s.priority = rec.priority;
  s.queue_time_ms = static_cast<double>(rec.queue_ns) / 1e6;
  s.scores = &rec.scores;
  s.semantic_route = rec.semantic_route;
  s.route_confidence = rec.route_confidence;
  exporter->Submit(ctx.worker.id(), [&s](std::string& out) { AppendOtlpSpan(out, s); });
}

}  // namespace tokenway
