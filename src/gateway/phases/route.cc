// Phase 4 of the request path: route. The model names its pool (404 when the snapshot has no
// such model); a flow-controlled pool admits the request or makes it wait (admission.cc); the
// pool's eligible endpoints (healthy, not ejected) go to its Picker, which returns them ordered:
// the first is tried first, the rest are retry targets.
#include "common/duration.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

namespace asio = boost::asio;

asio::awaitable<PhaseResult> Admit(RequestContext& ctx, ClientLink& client);  // admission.cc

asio::awaitable<PhaseResult> Route(RequestContext& ctx, ClientLink& client) {
  WorkerMetrics& m = ctx.worker.metrics();
  RequestRecord& rec = ctx.record;
  const ModelRoute* route = ctx.runtime->FindModel(ctx.inspected.model);
  if (!route) {
    m.Count(ClientError::kUnknownModel);
    co_return ctx.Fail(404, "The model '" + ctx.inspected.model + "' does not exist",
                       "model_not_found", "model");
  }
  ctx.route = route;
  rec.model_slot = route->metrics_slot;
  const Pool& pool = *route->pool;
  ctx.pool = &pool;
  rec.pool = pool.name;
  rec.engine = EngineKindName(pool.engine);
  rec.pool_slot = pool.metrics_slot;

  // 4a. Admission: under saturation, wait for room, or be shed.
  if (pool.flow) {
    PhaseResult admitted = co_await Admit(ctx, client);
    if (admitted != PhaseResult::kContinue) co_return admitted;
  }

  // 4b. Pick, among the endpoints that may take a request now.
  std::vector<PickCandidate>& candidates = ctx.candidates;
  candidates.clear();
  int64_t now = MonotonicNanos();
  for (uint32_t i = 0; i < pool.endpoints.size(); ++i) {
    const EndpointState* state = pool.endpoints[i].state.get();
    if (state->Eligible(now)) candidates.push_back({i, state});
  }
  if (candidates.empty()) {
    m.no_endpoint.fetch_add(1, std::memory_order_relaxed);
    co_return ctx.Fail(503, "no healthy endpoint in pool '" + pool.name + "'",
                       "no_healthy_endpoint");
  }
  PickReport report;
  PickContext pick;
  pick.request = &ctx.inspected;
  pick.random = ctx.worker.NextRandom();
  pick.session_key = ctx.parser->FindHeader(ctx.base, pool.session_header);
  if (rec.trace.sampled()) report.scores = &rec.scores;
  pick.report = &report;
  ctx.fallbacks.clear();
  pool.picker->Pick(pick, candidates, ctx.fallbacks);
  if (ctx.fallbacks.empty()) ctx.fallbacks.push_back(candidates.front().index);
  WorkerMetrics::PoolFamilies& pm = m.pools[pool.metrics_slot];
  pm.picker.Observe(static_cast<double>(MonotonicNanos() - now) / 1e9, kPickerBuckets, 1e9);
  rec.picker = pool.picker->name();
  rec.prefix_blocks = report.prefix_blocks;
  rec.prefix_matched = report.prefix_matched;
  if (report.prefix_blocks) {
    pm.prefix_hit_blocks.fetch_add(report.prefix_matched, std::memory_order_relaxed);
    pm.prefix_miss_blocks.fetch_add(report.prefix_blocks - report.prefix_matched,
                                    std::memory_order_relaxed);
  }
  co_return PhaseResult::kContinue;
}

}  // namespace tokenway
