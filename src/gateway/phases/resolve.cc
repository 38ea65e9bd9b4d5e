// Phase 4 of the request path: resolve. The model the client named becomes the model that goes
// upstream: each resolution step may name another model (RewriteModel), and the body is then
// re-serialised once, only its "model" token replaced (common/request_inspector.h ReplaceModel),
// so routing, caching and the upstream all see the model actually served while the record keeps
// the client's name in ctx.requested_model. Last, when a stream did not ask for usage and
// streaming.inject_usage is on, the outgoing body is edited to ask for it: one insertion, sent as
// pieces around the body's bytes (OutgoingBody), never copied.
//
// Resolution steps, in order:
//   semantic routing  a virtual model (models[].router) → the target of the route its prompt is
//                     classified into (semantic/semantic_router.h); the decision is recorded for
//                     the x-tokenway-route header, the access log and the span.
#include <algorithm>
#include <cmath>

#include "common/io_buffer.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

void RewriteModel(RequestContext& ctx, std::string_view model) {
  InspectedRequest& req = ctx.inspected;
  if (model == req.model) return;
  std::string rewritten;
  ReplaceModel(ctx.body, req, model, rewritten);
  // Everything after the model token moved by the same amount; the inspected fields stay valid.
  const size_t old_end = req.model_offset + req.model_length;
  const size_t new_length = rewritten.size() - (ctx.body.size() - req.model_length);
  if (req.has_stream_options && req.stream_options_offset >= old_end) {
    req.stream_options_offset = req.stream_options_offset - req.model_length + new_length;
  }
  req.model_length = new_length;
  req.model.assign(model);
  const size_t size = rewritten.size();
  rewritten.append(IoBuffer::kPadding, '\0');
  ctx.replaced_body.swap(rewritten);
  ctx.body = std::string_view(ctx.replaced_body.data(), size);
  ctx.padding = IoBuffer::kPadding;
  ctx.record.request_bytes = size;
}

void AppendRouteHeaderValue(const RequestRecord& rec, std::string& out) {
  out.append(rec.semantic_route);
  out.append("; confidence=");
  const long hundredths = std::lround(std::clamp(rec.route_confidence, 0.0f, 1.0f) * 100.0f);
  out.push_back(static_cast<char>('0' + hundredths / 100));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + (hundredths / 10) % 10));
  out.push_back(static_cast<char>('0' + hundredths % 10));
}

namespace {

// Semantic routing: classifies the prompt of a request to a virtual model and sends it to the
// decided route's target; 403 when the tenant may use neither that route nor the default.
PhaseResult RouteVirtualModel(RequestContext& ctx, const SemanticRouter& router) {
  const InspectedRequest& req = ctx.inspected;
  RequestRecord& rec = ctx.record;
  const std::string_view text =
      SemanticRouter::RoutingText(req.prompt_text, req.operation == Operation::kChatCompletions);
  const RouteDecision d = router.Decide(text, rec.tenant);
  rec.route_confidence = d.confidence;
  rec.route_reason = RouteReasonName(d.reason);
  if (d.route < 0) {
    const RouteConfig& refused = router.route(d.refused);
    rec.semantic_route.assign(refused.name);
    return ctx.Fail(403,
                    "The model '" + router.model() + "' has no route this tenant may use (route '" +
                        refused.name + "' is restricted to other tenants)",
                    "route_not_allowed", "model");
  }
  const RouteConfig& route = router.route(d.route);
  rec.semantic_route.assign(route.name);
  RewriteModel(ctx, route.target);
  return PhaseResult::kContinue;
}

}  // namespace

boost::asio::awaitable<PhaseResult> Resolve(RequestContext& ctx, ClientLink& client) {
  ctx.requested_model.assign(ctx.inspected.model);
  if (const SemanticRouter* router = ctx.runtime->FindRouter(ctx.inspected.model)) {
    if (PhaseResult r = RouteVirtualModel(ctx, *router); r != PhaseResult::kContinue) co_return r;
  }
  ctx.outgoing = OutgoingBody{ctx.body, {}, {}};
  const InspectedRequest& req = ctx.inspected;
  if (req.stream && !req.include_usage && ctx.runtime->config.streaming.inject_usage &&
      ctx.may_inject_usage && req.operation != Operation::kEmbeddings) {
    BodyInsertion ins = UsageInsertion(ctx.body, req);
    ctx.outgoing = OutgoingBody{ctx.body.substr(0, ins.at), ins.text, ctx.body.substr(ins.at)};
    ctx.record.usage_injected = true;
    ctx.worker.metrics().usage_injected.fetch_add(1, std::memory_order_relaxed);
  }
  co_return PhaseResult::kContinue;
}

}  // namespace tokenway
