// Phase 9 of the request path: observe. The request record becomes one RequestSample counted in
// the worker's own metrics (every family it belongs to), the span of a sampled request goes to
// the exporter's per-worker buffer, and the access-log line to the worker's log buffer.
#include "common/duration.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

void Observe(RequestContext& ctx) {
  const RequestRecord& rec = ctx.record;
  int64_t end = MonotonicNanos();
  double seconds = static_cast<double>(end - rec.start_ns) / 1e9;
  RequestSample sample;
  sample.model_slot = rec.model_slot;
  sample.pool_slot = rec.pool_slot;
  sample.endpoint_slot = rec.endpoint_slot;
  sample.version_slot = rec.version_slot;
  sample.operation = static_cast<uint8_t>(ctx.operation);
  sample.status = rec.status;
  sample.stream = rec.stream;
  sample.seconds = seconds;
  if (rec.first_byte_ns) {
    sample.first_byte = static_cast<double>(rec.first_byte_ns - rec.start_ns) / 1e9;
  }
  sample.prompt_tokens = rec.usage.prompt_tokens;
  sample.completion_tokens = rec.usage.completion_tokens;
  sample.cached_tokens = rec.usage.cached_tokens;
  sample.usage_estimated = rec.usage_estimated;
  ctx.worker.metrics().CountRequest(sample);
  if (rec.trace.sampled()) ExportSpan(ctx, end);
  WriteAccessLog(ctx, seconds);
}

}  // namespace tokenway
