// Span: the one OTLP span tokenway emits per traced request, and its OTLP/HTTP JSON encoding.
//
// SpanRecord is a view assembled at the end of a request (ClientSession::ExportSpan) from the
// request's record; its strings point into the request's buffers and are valid only while the
// span is encoded. AppendOtlpSpan writes one `Span` JSON object as the OTLP JSON encoding
// requires (opentelemetry-proto docs/specification.md, "JSON Protobuf Encoding"): lowercase hex
// trace and span ids, lowerCamelCase keys, enums as integers, int64 values as decimal strings.
// The exporter joins spans into an ExportTraceServiceRequest with AppendOtlpExportRequest.
// Attribute names follow the OpenTelemetry GenAI semantic conventions plus tokenway.* for the
// routing decision.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "telemetry/trace_context.h"
#include "tokenway/picker.h"

namespace tokenway {

struct SpanRecord {
  const TraceContext* trace = nullptr;
  std::string_view trace_state;     // the client's tracestate, empty when none
  std::string_view operation;       // gen_ai.operation.name: chat, text_completion, embeddings
  std::string_view request_model;   // may be empty (the body did not parse)
  std::string_view response_model;  // from the response, empty when unknown
  std::string_view provider;        // gen_ai.provider.name
  std::string_view endpoint_url;    // empty when no endpoint was chosen
  std::string_view pool;
  std::string_view request_id;
  std::string_view error_code;  // tokenway's error code, empty when none
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  int status = 0;
  int64_t input_tokens = -1;  // -1: unknown
  int64_t output_tokens = -1;
  int64_t cached_tokens = -1;
  int64_t max_tokens = 0;  // 0: not set by the request
  bool stream = false;
  double time_to_first_chunk_s = -1;  // streams only; negative: no chunk
  uint32_t retries = 0;
  int32_t priority = 0;
  double queue_time_ms = 0;
  const PickScores* scores = nullptr;
  std::string_view semantic_route;  // a virtual model's route (tokenway.route); empty: none
  double route_confidence = 0;      // tokenway.route.confidence
};

// Appends one OTLP `Span` JSON object (no separator).
void AppendOtlpSpan(std::string& out, const SpanRecord& span);

// An ExportTraceServiceRequest body is Head, the encoded Span objects joined by commas, Tail:
// one resource (service.name = `service_name`) with one instrumentation scope ("tokenway").
void AppendOtlpExportRequestHead(std::string& out, std::string_view service_name);
void AppendOtlpExportRequestTail(std::string& out);

// Unix time in nanoseconds of a MonotonicNanos() reading (offset taken once per process).
int64_t MonotonicToUnixNanos(int64_t monotonic_ns);

}  // namespace tokenway
