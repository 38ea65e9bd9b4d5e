// The access log's line per request: the fields access_log.fields selects, in a fixed order,
// for the requests access_log.sample_ratio and always_log_errors keep. Header values and
// bodies never appear, so neither do credentials.
#include <chrono>

#include "common/json_writer.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

namespace {

void AppendOptionalString(std::string& o, std::string_view s) {
  if (s.empty()) {
    o.append("null");
  } else {
    AppendJsonString(o, s);
  }
}

}  // namespace

void WriteAccessLog(RequestContext& ctx, double seconds) {
  const RequestRecord& rec = ctx.record;
  Worker& worker = ctx.worker;
  const AccessLogConfig& config = ctx.runtime->config.access_log;
  if (!config.enabled) return;
  if (config.sample_ratio < 1.0 && !(config.always_log_errors && rec.status >= 400)) {
    // 53 random bits against the ratio: exact for every ratio a YAML number can express.
    double draw = static_cast<double>(worker.NextRandom() >> 11) * 0x1.0p-53;
    if (draw >= config.sample_ratio) return;
  }
  std::string& o = worker.access_log().line();
  const AccessLogFields fields = config.fields;
  char sep = '{';
  auto key = [&](AccessLogField f) {
    if (!(fields & (AccessLogFields{1} << static_cast<unsigned>(f)))) return false;
    o.push_back(sep);
    sep = ',';
    o.push_back('"');
    o.append(AccessLogFieldName(f));
    o.append("\":");
    return true;
  };
  using F = AccessLogField;
  if (key(F::kTs)) {
    auto wall = std::chrono::system_clock::now().time_since_epoch();
    AppendJsonDouble(o, std::chrono::duration<double>(wall).count());
  }
  if (key(F::kRequestId)) AppendJsonString(o, rec.request_id);
  if (key(F::kTenant)) AppendOptionalString(o, rec.tenant);
  if (key(F::kOperation)) AppendJsonString(o, OperationName(ctx.inspected.operation));
  if (key(F::kModel)) AppendJsonString(o, ctx.inspected.model);
  if (key(F::kPool)) AppendJsonString(o, rec.pool);
  if (key(F::kEndpoint)) AppendJsonString(o, rec.endpoint);
  if (key(F::kStatus)) AppendJsonInt(o, rec.status);
  if (key(F::kStream)) o.append(rec.stream ? "true" : "false");
  if (key(F::kDurationMs)) AppendJsonDouble(o, seconds * 1e3);
  if (key(F::kTtftMs)) {
    if (rec.first_byte_ns) {
      AppendJsonDouble(o, static_cast<double>(rec.first_byte_ns - rec.start_ns) / 1e6);
    } else {
      o.append("null");
    }
  }
  if (key(F::kPromptTokens)) AppendJsonInt(o, rec.usage.prompt_tokens);
  if (key(F::kCompletionTokens)) AppendJsonInt(o, rec.usage.completion_tokens);
  if (key(F::kCachedTokens)) AppendJsonInt(o, rec.usage.cached_tokens);
  if (key(F::kUsage)) {
    o.append(rec.usage_estimated ? "\"estimated\"" : rec.usage.known() ? "\"reported\"" : "null");
  }
  if (key(F::kUsageInjected)) o.append(rec.usage_injected ? "true" : "false");
  if (key(F::kStreamEvents)) AppendJsonInt(o, rec.stream_events);
  if (key(F::kRetries)) AppendJsonInt(o, rec.retries);
  if (key(F::kPriority)) AppendJsonInt(o, rec.priority);
  if (key(F::kQueueMs)) AppendJsonDouble(o, static_cast<double>(rec.queue_ns) / 1e6);
  if (key(F::kRoute)) {
    // Why this endpoint: the picker, the prefix blocks the endpoint was estimated to hold,
    // whether the request waited for admission and whether it was retried elsewhere.
    if (rec.picker.empty()) {
      o.append("null");
    } else {
      o.append("{\"picker\":");
      AppendJsonString(o, rec.picker);
      if (rec.prefix_blocks) {
        o.append(",\"prefix_blocks\":");
        AppendJsonInt(o, rec.prefix_blocks);
        o.append(",\"prefix_matched\":");
        AppendJsonInt(o, rec.prefix_matched);
      }
      o.append(",\"queued\":").append(rec.queue_ns > 0 ? "true" : "false");
      o.append(",\"retried\":").append(rec.retries > 0 ? "true" : "false");
      o.push_back('}');
    }
  }
  if (key(F::kRequestBytes)) AppendJsonInt(o, static_cast<int64_t>(rec.request_bytes));
  if (key(F::kResponseBytes)) AppendJsonInt(o, static_cast<int64_t>(rec.response_bytes));
  if (key(F::kPromptHash)) {
    static constexpr char kHex[] = "0123456789abcdef";
    o.push_back('"');
    for (int i = 15; i >= 0; --i) o.push_back(kHex[(rec.prompt_hash >> (i * 4)) & 0xF]);
    o.push_back('"');
  }
  if (key(F::kPayload)) AppendOptionalString(o, rec.payload_flags);
  if (key(F::kError)) AppendOptionalString(o, rec.error_code);
  if (key(F::kSemanticRoute)) {
    if (rec.semantic_route.empty()) {
      o.append("null");
    } else {
      o.append("{\"route\":");
      AppendJsonString(o, rec.semantic_route);
      o.append(",\"requested_model\":");
      AppendJsonString(o, ctx.requested_model);
      o.append(",\"confidence\":");
      AppendJsonDouble(o, rec.route_confidence);
      o.append(",\"reason\":");
      AppendJsonString(o, rec.route_reason);
      o.push_back('}');
    }
  }
  if (sep == '{') o.push_back('{');
  o.append("}\n");
  worker.access_log().MaybeFlush(worker.shared().access_log.get());
}

}  // namespace tokenway
