#include "gateway/request_path.h"

#include "common/scope_exit.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

boost::asio::awaitable<void> ServeInferenceRequest(RequestContext& ctx, ClientLink& client) {
  WorkerMetrics& m = ctx.worker.metrics();
  BeginRequest(ctx);
  m.in_flight.fetch_add(1, std::memory_order_relaxed);
  ScopeExit end([&] {
    Settle(ctx);
    m.in_flight.fetch_sub(1, std::memory_order_relaxed);
    Observe(ctx);
  });
  PhaseResult r = Inspect(ctx);
  if (r == PhaseResult::kContinue) r = co_await Govern(ctx);
  if (r == PhaseResult::kContinue) r = co_await ProcessPayload(ctx, client);
  if (r == PhaseResult::kContinue) r = co_await Resolve(ctx, client);
  if (r == PhaseResult::kContinue) r = co_await LookupCache(ctx, client);
  if (r == PhaseResult::kContinue) r = co_await Route(ctx, client);
  if (r == PhaseResult::kContinue) r = co_await Forward(ctx, client);
  // A shadow copy starts once the primary has been relayed, so that its work on this worker never
  // interleaves with the primary's events.
  const bool forwarded = r == PhaseResult::kContinue;
  if (r == PhaseResult::kContinue) r = co_await Relay(ctx, client);
  if (forwarded) StartShadow(ctx);
  if (r == PhaseResult::kRespond) co_await client.Respond(ctx.reply, ctx.record.request_id);
}

}  // namespace tokenway
