// Shadow traffic (models[].shadow): a share of an alias's requests, chosen by the hash of the
// request id (independent of the sticky key), is mirrored to a candidate version. The copy runs
// as a detached coroutine on the same worker, started once the primary's request has been
// forwarded; the primary never waits for it. It carries the body as sent upstream with the
// candidate's model, goes through the same pick, forward and relay code as a client's request
// — against a client link that discards everything — and ends in the candidate's per-version
// shadow figures (WorkerMetrics::VersionFamilies). It passes no governance phase (not charged to
// the tenant), is not counted as a client request, and is skipped (and counted) when
// shadow.max_concurrency copies are in flight on the worker or the candidate's pool is saturated
// or has no eligible endpoint: shadow traffic is the first to go under load.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "common/duration.h"
#include "common/io_buffer.h"
#include "common/scope_exit.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"
#include "routing/flow_controller.h"

namespace tokenway {

namespace asio = boost::asio;

namespace {

// The client side of a shadow copy: there is no client; what would go to one is dropped.
class DiscardingClient final : public ClientLink {
 public:
  void WatchClient(asio::ip::tcp::socket*, asio::steady_timer*) override {}
  void StopWatching() override {}
  bool client_gone() const override { return false; }
  asio::awaitable<bool> Write(std::span<const asio::const_buffer>) override { co_return true; }
  asio::awaitable<bool> Respond(const LocalReply&, std::string_view) override { co_return true; }
  bool http10() const override { return false; }
  bool keep_alive() const override { return true; }
  void CloseAfterResponse() override {}
};

// Everything one shadow copy owns for as long as it runs.
struct ShadowCopy {
  explicit ShadowCopy(Worker& w) : pin(w), ctx(w) {}
  RuntimePin pin;  // the worker's current snapshot, which the copy's route comes from
  RequestContext ctx;
  DiscardingClient client;
  std::string body;  // the primary's body as sent, padded
};

// The candidate pool's ordered endpoints into ctx.fallbacks; false when none may take a request.
bool Pick(RequestContext& ctx, const Pool& pool, int64_t now) {
  ctx.candidates.clear();
  for (uint32_t i = 0; i < pool.endpoints.size(); ++i) {
    const EndpointState* state = pool.endpoints[i].state.get();
    if (state->Eligible(now)) ctx.candidates.push_back({i, state});
  }
  if (ctx.candidates.empty()) return false;
  PickContext pick;
  pick.request = &ctx.inspected;
  pick.random = ctx.worker.NextRandom();
  pick.now_ns = now;
  ctx.fallbacks.clear();
  pool.picker->Pick(pick, ctx.candidates, ctx.fallbacks);
  if (ctx.fallbacks.empty()) ctx.fallbacks.push_back(ctx.candidates.front().index);
  return true;
}

asio::awaitable<void> RunShadow(std::unique_ptr<ShadowCopy> copy, uint16_t slot) {
  RequestContext& ctx = copy->ctx;
  WorkerMetrics& m = ctx.worker.metrics();
  std::atomic<int64_t>& in_flight = m.versions[slot].shadow_in_flight;
  ScopeExit done([&in_flight] { in_flight.fetch_sub(1, std::memory_order_relaxed); });
  PhaseResult r = co_await Forward(ctx, copy->client);
  if (r == PhaseResult::kContinue) r = co_await Relay(ctx, copy->client);
  if (r == PhaseResult::kRespond) ctx.record.status = ctx.reply.status;
  Settle(ctx);
  const RequestRecord& rec = ctx.record;
  RequestSample sample;
  sample.version_slot = slot;
  sample.status = rec.status;
  sample.stream = rec.stream;
  const int64_t end = MonotonicNanos();
  sample.seconds = static_cast<double>(end - rec.start_ns) / 1e9;
  if (rec.first_byte_ns) {
    sample.first_byte = static_cast<double>(rec.first_byte_ns - rec.start_ns) / 1e9;
  }
  sample.prompt_tokens = rec.usage.prompt_tokens;
  sample.completion_tokens = rec.usage.completion_tokens;
  sample.usage_estimated = rec.usage_estimated;
  m.CountVersion(sample, true);
}

}  // namespace

void StartShadow(RequestContext& ctx) {
  const ModelRoute* primary_route = ctx.route;
  if (!primary_route || primary_route->shadow < 0 || !ctx.parser) return;
  const RouteVersion& primary_candidate =
      primary_route->versions[static_cast<size_t>(primary_route->shadow)];
  // The primary already goes to the candidate: nothing to compare.
  if (ctx.version == &primary_candidate) return;
  if (!InShare(StickyKeyHash(ctx.record.request_id), primary_route->shadow_percent)) return;
  WorkerMetrics& m = ctx.worker.metrics();
  const uint16_t slot = primary_candidate.metrics_slot;
  std::atomic<int64_t>& in_flight = m.versions[slot].shadow_in_flight;
  if (in_flight.load(std::memory_order_relaxed) >=
      static_cast<int64_t>(primary_route->shadow_max_concurrency)) {
    m.Count(slot, ShadowOutcome::kSkippedConcurrency);
    return;
  }
  const int64_t now = MonotonicNanos();
  const Pool& primary_pool = *primary_candidate.pool;
  if (primary_pool.flow && (primary_pool.flow->waiting() > 0 ||
                            !FlowController::HasRoom(primary_pool.flow_view(), now))) {
    m.Count(slot, ShadowOutcome::kSkippedSaturated);
    return;
  }

  auto copy = std::make_unique<ShadowCopy>(ctx.worker);
  // The copy follows the worker's current snapshot (the primary's may be an older one).
  const ModelRoute* route = copy->pin.get()->FindModel(primary_route->name);
  const RouteVersion* candidate = route ? route->FindVersion(primary_candidate.name) : nullptr;
  if (!candidate) return;  // reloaded away since the primary started
  RequestContext& shadow = copy->ctx;
  copy->body.reserve(ctx.body.size() + IoBuffer::kPadding);
  copy->body.assign(ctx.body);
  const size_t size = copy->body.size();
  copy->body.append(IoBuffer::kPadding, '\0');
  shadow.Reset(copy->pin.get(), nullptr, nullptr, std::string_view(copy->body.data(), size),
               IoBuffer::kPadding, ctx.operation);
  if (!Pick(shadow, *candidate->pool, now)) {
    m.Count(slot, ShadowOutcome::kSkippedSaturated);
    return;
  }
  shadow.own_target.assign(ctx.parser->target.in(ctx.base));
  shadow.inspected = ctx.inspected;
  shadow.prompt_tokens = ctx.prompt_tokens;
  shadow.requested_model.assign(ctx.requested_model);
  shadow.route = route;
  shadow.version = candidate;
  shadow.pool = candidate->pool;
  RequestRecord& rec = shadow.record;
  rec.start_ns = now;
  rec.request_id.assign(ctx.record.request_id).append("-shadow");
  rec.model_slot = route->metrics_slot;
  rec.version = candidate->name;
  rec.version_slot = candidate->metrics_slot;
  rec.stream = ctx.inspected.stream;
  rec.pool = candidate->pool->name;
  rec.pool_slot = candidate->pool->metrics_slot;
  RewriteModel(shadow, candidate->model);
  shadow.outgoing = OutgoingBody{shadow.body, {}, {}};
  const InspectedRequest& req = shadow.inspected;
  if (req.stream && !req.include_usage && copy->pin.get()->config.streaming.inject_usage &&
      req.operation != Operation::kEmbeddings) {
    BodyInsertion ins = UsageInsertion(shadow.body, req);
    shadow.outgoing =
        OutgoingBody{shadow.body.substr(0, ins.at), ins.text, shadow.body.substr(ins.at)};
    rec.usage_injected = true;
  }
  in_flight.fetch_add(1, std::memory_order_relaxed);
  asio::co_spawn(ctx.worker.io(), RunShadow(std::move(copy), slot), asio::detached);
}

}  // namespace tokenway
