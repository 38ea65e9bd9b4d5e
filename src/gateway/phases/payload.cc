// Phase 3 of the request path: process payload. The snapshot's request processors
// (tokenway/payload.h) whose match selects the request run in order and may pass, reject (an
// OpenAI-shaped error, counted) or replace the body, which is then inspected again so that
// routing sees what goes upstream; what they flag goes to the access log and the response header
// x-tokenway-flagged. An external processor (webhook, ext_proc) is awaited here: its call runs on
// this worker's loop with the worker's JSON client, while other requests of the worker go on.
#include "common/io_buffer.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"
#include "payload/external_processor.h"

namespace tokenway {

namespace {

// The path a request of `op` arrived on (tokenway serves each operation on one path).
std::string_view OperationPath(Operation op) {
  switch (op) {
    case Operation::kChatCompletions:
      return "/v1/chat/completions";
    case Operation::kCompletions:
      return "/v1/completions";
    case Operation::kEmbeddings:
      return "/v1/embeddings";
  }
  return "/";
}

}  // namespace

boost::asio::awaitable<PhaseResult> ProcessPayload(RequestContext& ctx, ClientLink& client) {
  WorkerMetrics& m = ctx.worker.metrics();
  const Runtime& rt = *ctx.runtime;
  RequestVerdict& v = ctx.verdict;
  v.flagged.clear();
  for (const auto& processor : rt.payload.request) {
    if (!processor->Applies(ctx.inspected.model, ctx.record.tenant)) continue;
    v.kind = RequestVerdict::Kind::kPass;
    const PayloadRequest request{ctx.body, &ctx.inspected, ctx.record.tenant, ctx.prompt_tokens};
    if (const ExternalRequestProcessor* external = processor->external()) {
      v.reply_body.clear();
      ExternalCallSite site;
      site.io = &ctx.worker.io();
      site.http = &ctx.worker.json_client();
      site.request_id = ctx.record.request_id;
      site.authority = ctx.parser ? ctx.parser->host.in(ctx.base) : std::string_view("tokenway");
      site.path = OperationPath(ctx.operation);
      co_await external->Call(request, site, v);
    } else {
      processor->Process(request, v);
    }
    if (v.kind == RequestVerdict::Kind::kReject) {
      ctx.record.payload_flags.assign(v.flagged);
      m.Count(ClientError::kPayloadRejected);
      PhaseResult r = ctx.Fail(v.status, v.message, v.code);
      if (!v.reply_body.empty()) ctx.reply.body.swap(v.reply_body);
      co_return r;
    }
    if (v.kind == RequestVerdict::Kind::kReplace) {
      // The new body lives in the context, padded for simdjson like the read buffer.
      ctx.replaced_body.swap(v.body);
      const size_t size = ctx.replaced_body.size();
      ctx.replaced_body.append(IoBuffer::kPadding, '\0');
      ctx.body = std::string_view(ctx.replaced_body.data(), size);
      ctx.padding = IoBuffer::kPadding;
      ctx.record.request_bytes = size;
      if (!ctx.worker.inspector().Inspect(ctx.operation, ctx.body.data(), size, ctx.padding,
                                          ctx.inspected, ctx.inspect_error)) {
        m.Count(ClientError::kPayloadRejected);
        co_return ctx.Fail(500,
                           "request processor '" + std::string(processor->name()) +
                               "' produced an invalid body: " + ctx.inspect_error.message,
                           "payload_processor_failed");
      }
    }
  }
  if (!v.flagged.empty()) {
    ctx.record.payload_flags.assign(v.flagged);
  }
  co_return PhaseResult::kContinue;
}

}  // namespace tokenway
