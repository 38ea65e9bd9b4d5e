// Phase 8 of the request path: settle. Runs once on every exit path, after the response (or the
// error) has been written or the client has gone.
//
// Usage: the model server's report when it sent one. A stream that ended without a usage block
// is settled with an estimate — the prompt's token estimate and one token per content event —
// and marked as such (RequestRecord::usage_estimated: the access log's `usage` field says
// "estimated", the metrics count it in tokenway_requests_without_usage_total and the
// estimated-token family, never as reported usage). The governance reservation is settled or
// released exactly once (a cache hit is charged per cache.charge); a cacheable miss's answer is
// stored in the response cache (phases/cache.cc); a stream that answered teaches its endpoint's
// latency model (pools with a predicted-latency scorer); the endpoint's load and the upstream
// connection of an unfinished exchange are let go; a flow-controlled pool is told that room may
// have appeared.
#include "common/duration.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

void Settle(RequestContext& ctx) {
  RequestRecord& rec = ctx.record;
  // Governance settles with what the server reported; without a report, with the relayed events
  // plus the input estimate (a stream) or the reservation (a whole 200).
  // A cache hit is charged per cache.charge, not with the usage the answer reports.
  if (ctx.cache.outcome == RequestCacheState::Outcome::kHit) {
    ctx.governance.Finish(ctx.cache.charge, 0, rec.status);
  } else {
    ctx.governance.Finish(rec.usage, rec.stream_events, rec.status);
  }
  if (!rec.usage.known() && rec.stream_events > 0) {
    rec.usage.prompt_tokens = ctx.prompt_tokens;
    rec.usage.completion_tokens = rec.stream_events;
    rec.usage_estimated = true;
  }
  StoreCachedAnswer(ctx);
  if (ctx.load && rec.status == 200 && rec.stream && ctx.pool) {
    // A stream that answered teaches its endpoint's latency model (pools that predict latency).
    const EndpointLoad::Learned learned = ctx.load->Learn(rec.usage.completion_tokens);
    WorkerMetrics::PoolFamilies& pm = ctx.worker.metrics().pools[ctx.pool->metrics_slot];
    if (learned.ttft_error >= 0) {
      pm.ttft_prediction_error.Observe(learned.ttft_error, kPredictionErrorBuckets, 1e6);
    }
    if (learned.tpot_error >= 0) {
      pm.tpot_prediction_error.Observe(learned.tpot_error, kPredictionErrorBuckets, 1e6);
    }
  }
  ctx.load.reset();
  ctx.conn.reset();  // an exchange cut short: the connection cannot be reused
  ctx.ResetResponse();
  ctx.FinishFlowRelease();
  if (ctx.pool && ctx.pool->flow && ctx.endpoint) {
    // The endpoint's load dropped: a queued request may go.
    ctx.pool->flow->Kick(ctx.pool->flow_view(), MonotonicNanos());
  }
}

}  // namespace tokenway
