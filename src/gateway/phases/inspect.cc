// Phase 1 of the request path: read and inspect. The head has been parsed in place by the front
// door; here the request gets its id, its trace context and its body inspected once, in place,
// with simdjson (common/request_inspector.h). A body that is not an OpenAI request is a 400 (415
// for another media type) with a precise code and param.
#include <xxhash.h>

#include <cctype>

#include "common/duration.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"
#include "governance/token_estimate.h"

namespace tokenway {

void AssignRequestId(RequestContext& ctx) {
  std::string& id = ctx.record.request_id;
  std::string_view given = ctx.parser ? ctx.parser->request_id.in(ctx.base) : std::string_view();
  bool usable = !given.empty() && given.size() <= 128;
  for (char c : given) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == ':')) {
      usable = false;
      break;
    }
  }
  if (usable) {
    id.assign(given);
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t r = ctx.worker.NextRandom();
  id.resize(16);
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[r & 0xF];
    r >>= 4;
  }
}

void BeginRequest(RequestContext& ctx) {
  RequestRecord& rec = ctx.record;
  rec.start_ns = MonotonicNanos();
  rec.request_bytes = ctx.body.size();
  if (ctx.runtime->config.tracing.enabled) BeginTrace(ctx);
}

PhaseResult Inspect(RequestContext& ctx) {
  WorkerMetrics& m = ctx.worker.metrics();
  std::string_view content_type = ctx.parser->content_type.in(ctx.base);
  if (!content_type.empty() && !IsJsonMediaType(content_type)) {
    m.Count(ClientError::kUnsupportedMedia);
    return ctx.Fail(415, "Content-Type must be application/json", "unsupported_media_type");
  }
  if (!ctx.worker.inspector().Inspect(ctx.operation, ctx.body.data(), ctx.body.size(), ctx.padding,
                                      ctx.inspected, ctx.inspect_error)) {
    m.Count(ClientError::kInvalidJson);
    const InspectError& e = ctx.inspect_error;
    return ctx.Fail(400, e.message, e.code, e.param);
  }
  const std::string& prompt = ctx.inspected.prompt_text;
  ctx.record.stream = ctx.inspected.stream;
  ctx.record.prompt_hash = XXH3_64bits(prompt.data(), prompt.size());
  ctx.prompt_tokens = EstimateInputTokens(prompt);
  return PhaseResult::kContinue;
}

}  // namespace tokenway
