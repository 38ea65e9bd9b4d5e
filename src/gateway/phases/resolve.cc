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
//                     classified into (semantic/semantic_router.h; with an embeddings backend
//                     through the worker's RouteEmbeddings, gateway/route_embeddings.h); the
//                     decision is recorded for the x-tokenway-route header, the access log and
//                     the span.
//   version split     an alias with versions (models[].versions): a match rule (headers,
//                     tenants) chooses a version first; otherwise weighted rendezvous hashing of
//                     the sticky key (routing/version_split.h) over the versions' current weights,
//                     so a client stays on its version while weights move, and a weight raised
//                     only draws new clients onto its version. The route phase then sends the
//                     request to the chosen version's pool. It runs after semantic routing, so a
//                     route may target an alias.
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
  // Written into the scratch buffer, which then trades places with the replaced body: both keep
  // their capacity for the connection's next request.
  std::string& rewritten = ctx.scratch;
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

bool MatchesVersion(const RequestContext& ctx, const VersionMatchConfig& match) {
  if (match.empty()) return false;
  for (const auto& [name, value] : match.headers) {
    if (!ctx.parser || ctx.parser->FindHeader(ctx.base, name) != value) return false;
  }
  if (!match.tenants.empty()) {
    const std::string_view tenant = ctx.record.tenant;
    if (tenant.empty()) return false;
    bool listed = false;
    for (const std::string& t : match.tenants) listed = listed || t == tenant;
    if (!listed) return false;
  }
  return true;
}

// The key that keeps a client on one version: models[].sticky's source, else the request id
// (a request without one is split on its own, not sticky).
std::string_view StickyKey(const RequestContext& ctx, const StickyConfig& sticky) {
  std::string_view key;
  switch (sticky.by) {
    case StickyBy::kUser:
      key = ctx.inspected.user;
      break;
    case StickyBy::kTenant:
      key = ctx.record.tenant;
      break;
    case StickyBy::kHeader:
      if (ctx.parser) key = ctx.parser->FindHeader(ctx.base, sticky.header);
      break;
  }
  return key.empty() ? std::string_view(ctx.record.request_id) : key;
}

// Semantic routing, after the decision: records it and sends the request to the decided route's
// target; 403 when the tenant may use neither the classified route nor the default.
PhaseResult TakeRoute(RequestContext& ctx, const SemanticRouter& router, const RouteDecision& d) {
  RequestRecord& rec = ctx.record;
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

const RouteVersion* ChooseVersion(const RequestContext& ctx, const ModelRoute& route) {
  if (route.versions.empty()) return nullptr;
  for (const RouteVersion& v : route.versions) {
    if (MatchesVersion(ctx, v.match)) return &v;
  }
  return route.Split(StickyKeyHash(StickyKey(ctx, route.sticky)));
}

void SplitVersion(RequestContext& ctx) {
  const ModelRoute* route = ctx.runtime->FindModel(ctx.inspected.model);
  if (!route || route->versions.empty()) return;
  const RouteVersion* version = ChooseVersion(ctx, *route);
  ctx.route = route;
  ctx.version = version;
  ctx.record.version = version->name;
  ctx.record.version_slot = version->metrics_slot;
  if (route->response_model == ResponseModel::kAlias && version->model != route->name) {
    ctx.response_model_from = version->model;
    ctx.response_model_to = route->name;
  }
  RewriteModel(ctx, version->model);
}

boost::asio::awaitable<PhaseResult> Resolve(RequestContext& ctx, ClientLink& client) {
  ctx.requested_model.assign(ctx.inspected.model);
  if (const SemanticRouter* router = ctx.runtime->FindRouter(ctx.inspected.model)) {
    // Semantic routing: the prompt (its last user message) classified by its embedding when the
    // router has an embeddings backend, else lexically, in place.
    const InspectedRequest& req = ctx.inspected;
    const std::string_view text =
        SemanticRouter::RoutingText(req.prompt_text, req.operation == Operation::kChatCompletions);
    RouteDecision d;
    ctx.record.route_by = "lexical";
    if (router->config().embeddings.enabled()) {
      bool by_embeddings = false;
      d = co_await ctx.worker.route_embeddings().Decide(
          ctx.runtime->routers.find(ctx.inspected.model)->second, text, ctx.record.tenant,
          &by_embeddings);
      if (by_embeddings) ctx.record.route_by = "embeddings";
    } else {
      d = router->Decide(text, ctx.record.tenant);
    }
    if (PhaseResult r = TakeRoute(ctx, *router, d); r != PhaseResult::kContinue) co_return r;
  }
  // Last resolution step: an alias with versions → the version the split chooses.
  SplitVersion(ctx);
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
