// Tracing micro-benchmarks: the per-request cost on a worker of an unsampled request (trace
// context + the upstream traceparent) and of a sampled one (span encoding and hand-over).
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "telemetry/otlp_exporter.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

namespace tokenway {
namespace {

constexpr char kParent[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

void TraceHeader(benchmark::State& state, std::string_view header) {
  std::mt19937_64 rng(1);
  std::string head;
  for (auto _ : state) {
    TraceContext t;
    StartTrace(
        header, 0.1, [&] { return rng(); }, t);
    char value[kTraceParentSize];
    FormatTraceParent(t.trace_id, t.span_id, t.flags, value);
    head.clear();
    head.append("traceparent: ").append(value, kTraceParentSize).append("\r\n");
    benchmark::DoNotOptimize(head.data());
  }
}

void BM_TraceContextFromClientHeader(benchmark::State& state) {
  TraceHeader(state, kParent);
}
BENCHMARK(BM_TraceContextFromClientHeader);

void BM_TraceContextNewTrace(benchmark::State& state) {
  TraceHeader(state, {});
}
BENCHMARK(BM_TraceContextNewTrace);

SpanRecord SampleSpan(const TraceContext& t, const PickScores& scores) {
  SpanRecord s;
  s.trace = &t;
  s.operation = "chat";
  s.request_model = "meta-llama/Llama-3.1-8B-Instruct";
  s.response_model = "meta-llama/Llama-3.1-8B-Instruct";
  s.provider = "vllm";
  s.endpoint_url = "http://10.1.2.80:8000";
  s.pool = "llama-8b";
  s.request_id = "5f0c2a9e81d34b7a";
  s.start_unix_ns = 1735689600000000000;
  s.end_unix_ns = 1735689601250000000;
  s.status = 200;
  s.input_tokens = 812;
  s.output_tokens = 180;
  s.max_tokens = 256;
  s.stream = true;
  s.time_to_first_chunk_s = 0.0425;
  s.queue_time_ms = 0.0;
  s.scores = &scores;
  return s;
}

PickScores GieScores() {
  PickScores p;
  p.filled = true;
  p.count = 3;
  p.total = 5.4;
  p.names[0] = "queue-depth";
  p.names[1] = "kv-cache";
  p.names[2] = "prefix-cache";
  p.values[0] = 1.0;
  p.values[1] = 0.7;
  p.values[2] = 0.4;
  return p;
}

void BM_SpanEncode(benchmark::State& state) {
  std::mt19937_64 rng(1);
  TraceContext t;
  StartTrace(
      kParent, 1.0, [&] { return rng(); }, t);
  PickScores scores = GieScores();
  SpanRecord s = SampleSpan(t, scores);
  std::string out;
  for (auto _ : state) {
    out.clear();
    AppendOtlpSpan(out, s);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_SpanEncode);

// Encoding into the worker's span buffer under its lock, as a sampled request's Observe does.
void BM_SpanSubmit(benchmark::State& state) {
  OtlpExporterOptions o;
  // Nothing listens there: the exporter takes the buffers every 20 ms and fails fast.
  o.endpoint = "http://127.0.0.1:9";
  o.batch_interval = std::chrono::milliseconds(20);
  o.queue_size = 1u << 20;
  auto exporter = OtlpExporter::Create(o);
  std::mt19937_64 rng(1);
  TraceContext t;
  StartTrace(
      kParent, 1.0, [&] { return rng(); }, t);
  PickScores scores = GieScores();
  SpanRecord s = SampleSpan(t, scores);
  for (auto _ : state) {
    (*exporter)->Submit(0, [&s](std::string& out) { AppendOtlpSpan(out, s); });
  }
  (*exporter)->Stop();
}
BENCHMARK(BM_SpanSubmit);

}  // namespace
}  // namespace tokenway
