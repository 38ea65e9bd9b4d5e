// Phase 5 of the request path: route. The model names its pool (404 when the snapshot has no
// such model; an alias's version chosen by the resolve phase names its own); a flow-controlled pool
// admits the request or makes it wait (admission.cc); the pool's eligible endpoints (healthy, not
// ejected) go to its Picker, which returns them ordered: the first is tried first, the rest are
// retry targets. In a pool whose scheduler predicts latency, the request's objective comes from
// its x-slo-ttft-ms / x-slo-tpot-ms headers (400 when unusable), and a sheddable request
// (priority < 0) that no endpoint is predicted to serve within it is refused with 429
// `slo_unattainable` before it is sent.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/duration.h"
#include "common/scope_exit.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

namespace asio = boost::asio;

asio::awaitable<PhaseResult> Admit(RequestContext& ctx, ClientLink& client);  // admission.cc

namespace {

constexpr auto kEndpointPoll = std::chrono::milliseconds(50);

// The objective headers: GIE's names, then llm-d's.
constexpr std::string_view kSloTtftHeaders[] = {"x-slo-ttft-ms", "x-llm-d-slo-ttft-ms"};
constexpr std::string_view kSloTpotHeaders[] = {"x-slo-tpot-ms", "x-llm-d-slo-tpot-ms"};

// Reads one objective header into seconds: 0 when absent; false when the value is not a
// positive number of milliseconds (at most a day).
bool ReadSloHeader(const RequestContext& ctx, std::span<const std::string_view> names,
                   double& seconds, std::string_view& name) {
  seconds = 0;
  for (std::string_view n : names) {
    std::string_view v = ctx.parser->FindHeader(ctx.base, n);
    if (v.empty()) continue;
    name = n;
    if (v.front() == '+') v.remove_prefix(1);  // as Go's ParseFloat (GIE) accepts
    double ms = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(ms) ||
        ms < 0.001 || ms > 86'400'000) {
      return false;
    }
    seconds = ms / 1000;
    return true;
  }
  return true;
}

// The request's objective from its headers, read before admission so that an unusable header is
// answered at once rather than after a wait.
PhaseResult ReadSlo(RequestContext& ctx, RequestSlo& slo) {
  std::string_view name;
  if (!ReadSloHeader(ctx, kSloTtftHeaders, slo.ttft_s, name) ||
      !ReadSloHeader(ctx, kSloTpotHeaders, slo.tpot_s, name)) {
    ctx.worker.metrics().Count(ClientError::kInvalidHeader);
    return ctx.Fail(
        400,
        "header " + std::string(name) + " must be a number of milliseconds from 0.001 to 86400000",
        "invalid_slo", name);
  }
  return PhaseResult::kContinue;
}

// May the request be refused for its objective? Sheddable: priority < 0 (the admission phase's
// priority when the pool is flow-controlled, else its tenant's or its model's).
bool Sheddable(const RequestContext& ctx, const Pool& pool) {
  if (pool.flow) return ctx.record.priority < 0;
  const Tenant* tenant = ctx.governance.tenant();
  return (tenant && tenant->has_priority ? tenant->priority : ctx.route->priority) < 0;
}

// The pool's endpoints that may take a request now, into ctx.candidates.
// With a subset from the Gateway (endpoint-picker protocol), only the endpoints it names.
void CollectCandidates(RequestContext& ctx, const Pool& pool, int64_t now) {
  ctx.candidates.clear();
  for (uint32_t i = 0; i < pool.endpoints.size(); ++i) {
    const PoolEndpoint& endpoint = pool.endpoints[i];
    const EndpointState* state = endpoint.state.get();
    if (!state->Eligible(now)) continue;
    if (ctx.restrict_to_subset) {
      bool named = false;
      for (std::string_view s : ctx.endpoint_subset) named = named || s == endpoint.ip_port;
      if (!named) continue;
    }
    ctx.candidates.push_back({i, state});
  }
}

// A wait (admission, scale from zero) ended by the front door's deadline: 503, counted.
PhaseResult DeadlinePassed(RequestContext& ctx) {
  ctx.worker.metrics().Count(EppError::kDecisionTimeout);
  return ctx.Fail(503,
                  "no endpoint could be picked within the endpoint picker's message_timeout "
                  "(waited " +
                      std::to_string(ctx.record.queue_ns / 1'000'000) + " ms)",
                  "decision_timeout", {}, "Retry-After: 1\r\n");
}

// Scale from zero: waits until the model's pool has an eligible endpoint — in this snapshot or
// in a newer one the control thread publishes when discovery finds a pod — up to the pool's
// queue_ttl. kContinue with ctx.route, ctx.pool and ctx.candidates set (and ctx.runtime moved
// to the newer snapshot, pinned); otherwise the answer.
asio::awaitable<PhaseResult> WaitForEndpoint(RequestContext& ctx, ClientLink& client) {
  const ScaleFromZeroConfig cfg = ctx.pool->scale_from_zero;
  WorkerMetrics& m = ctx.worker.metrics();
  std::atomic<int64_t>& waiting = m.pools[ctx.pool->metrics_slot].waiting_for_endpoint;
  if (waiting.load(std::memory_order_relaxed) >= static_cast<int64_t>(cfg.max_waiting)) {
    m.no_endpoint.fetch_add(1, std::memory_order_relaxed);
    co_return ctx.Fail(503,
                       "no endpoint in pool '" + ctx.pool->name +
                           "' yet and too many requests already wait for one",
                       "no_healthy_endpoint");
  }
  waiting.fetch_add(1, std::memory_order_relaxed);
  ScopeExit leave([&waiting] { waiting.fetch_sub(1, std::memory_order_relaxed); });
  const int64_t start = MonotonicNanos();
  const int64_t deadline = start + std::chrono::nanoseconds(cfg.queue_ttl).count();
  asio::steady_timer timer(ctx.worker.io());
  for (;;) {
    timer.expires_after(kEndpointPoll);
    client.WatchClient(nullptr, &timer);
    {
      ScopeExit stop_watch([&client] { client.StopWatching(); });
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const int64_t now = MonotonicNanos();
    ctx.record.queue_ns = now - ctx.record.start_ns;
    if (client.deadline_passed()) co_return DeadlinePassed(ctx);
    if (client.client_gone()) {
      m.Count(ClientError::kDisconnected);
      ctx.record.status = 499;
      ctx.record.error_code = "client_disconnected";
      client.CloseAfterResponse();
      co_return PhaseResult::kDone;
    }
    // Endpoints arrive with new snapshots: continue on the newest.
    if (ctx.worker.runtime().get() != ctx.runtime) {
      ctx.refreshed_runtime.reset();
      ctx.refreshed_runtime.emplace(ctx.worker);
      ctx.runtime = ctx.refreshed_runtime->get();
      const ModelRoute* route = ctx.runtime->FindModel(
          ctx.version ? std::string_view(ctx.route->name) : ctx.inspected.model);
      const RouteVersion* version =
          ctx.version && route ? route->FindVersion(ctx.version->name) : nullptr;
      if (!route || (ctx.version && !version)) {
        m.Count(ClientError::kUnknownModel);
        co_return ctx.Fail(404, "The model '" + ctx.requested_model + "' does not exist",
                           "model_not_found", "model");
      }
      ctx.route = route;
      ctx.pool = version ? version->pool : route->pool;
      if (version) ctx.version = version;
    }
    CollectCandidates(ctx, *ctx.pool, now);
    if (!ctx.candidates.empty()) co_return PhaseResult::kContinue;
    if (now >= deadline) {
      m.no_endpoint.fetch_add(1, std::memory_order_relaxed);
      co_return ctx.Fail(503,
                         "no endpoint of pool '" + ctx.pool->name + "' became ready within " +
                             std::to_string((now - start) / 1'000'000) + " ms",
                         "no_healthy_endpoint");
    }
  }
}

}  // namespace

asio::awaitable<PhaseResult> Route(RequestContext& ctx, ClientLink& client) {
  WorkerMetrics& m = ctx.worker.metrics();
  RequestRecord& rec = ctx.record;
  // A version the resolve phase chose names its alias's route and its own pool.
  const ModelRoute* route = ctx.version ? ctx.route : ctx.runtime->FindModel(ctx.inspected.model);
  if (!route) {
    m.Count(ClientError::kUnknownModel);
    co_return ctx.Fail(404, "The model '" + ctx.inspected.model + "' does not exist",
                       "model_not_found", "model");
  }
  ctx.route = route;
  rec.model_slot = route->metrics_slot;
  const Pool& pool = ctx.version ? *ctx.version->pool : *route->pool;
  ctx.pool = &pool;
  rec.pool = pool.name;
  rec.engine = EngineKindName(pool.engine);
  rec.pool_slot = pool.metrics_slot;

  RequestSlo slo;
  if (pool.predicts_latency) {
    PhaseResult read = ReadSlo(ctx, slo);
    if (read != PhaseResult::kContinue) co_return read;
  }

  // 4a. Admission: under saturation, wait for room, or be shed.
  if (pool.flow) {
    PhaseResult admitted = co_await Admit(ctx, client);
    if (admitted != PhaseResult::kContinue) co_return admitted;
  }

  // 4b. Pick, among the endpoints that may take a request now (with scale from zero, once
  // there is one).
  std::vector<PickCandidate>& candidates = ctx.candidates;
  int64_t now = MonotonicNanos();
  CollectCandidates(ctx, pool, now);
  if (candidates.empty() && pool.scale_from_zero.enabled) {
    PhaseResult waited = co_await WaitForEndpoint(ctx, client);
    if (waited != PhaseResult::kContinue) co_return waited;
    now = MonotonicNanos();
  } else if (candidates.empty()) {
    m.no_endpoint.fetch_add(1, std::memory_order_relaxed);
    if (ctx.restrict_to_subset) {
      co_return ctx.Fail(
          503,
          "no endpoint of the subset the gateway allowed is eligible in pool '" + pool.name + "'",
          "no_healthy_endpoint");
    }
    co_return ctx.Fail(503, "no healthy endpoint in pool '" + pool.name + "'",
                       "no_healthy_endpoint");
  }
  const Pool& chosen_pool = *ctx.pool;  // a newer snapshot's after a wait
  rec.pool = chosen_pool.name;
  rec.pool_slot = chosen_pool.metrics_slot;
  PickReport report;
  PickContext pick;
  pick.request = &ctx.inspected;
  pick.random = ctx.worker.NextRandom();
  pick.now_ns = now;
  pick.session_key = ctx.parser->FindHeader(ctx.base, chosen_pool.session_header);
  pick.prompt_tokens = ctx.prompt_tokens;
  if (chosen_pool.predicts_latency) {
    if (!pool.predicts_latency) {  // a newer snapshot's pool after a wait for an endpoint
      PhaseResult read = ReadSlo(ctx, slo);
      if (read != PhaseResult::kContinue) co_return read;
    }
    pick.slo = slo;
    pick.slo.sheddable = Sheddable(ctx, chosen_pool);
  }
  if (rec.trace.sampled()) report.scores = &rec.scores;
  pick.report = &report;
  ctx.fallbacks.clear();
  chosen_pool.picker->Pick(pick, candidates, ctx.fallbacks);
  WorkerMetrics::PoolFamilies& pm = m.pools[chosen_pool.metrics_slot];
  pm.picker.Observe(static_cast<double>(MonotonicNanos() - now) / 1e9, kPickerBuckets, 1e9);
  if (report.refused) {
    pm.slo_refused.fetch_add(1, std::memory_order_relaxed);
    char best[32];
    std::snprintf(best, sizeof best, "%.0f", report.prediction.best_cost * 100);
    co_return ctx.Fail(429,
                       "no endpoint of pool '" + chosen_pool.name +
                           "' is predicted to serve this sheddable request within its latency "
                           "objective (the best would take " +
                           best + " % of it); retry later",
                       "slo_unattainable", {}, "Retry-After: 1\r\n");
  }
  if (ctx.fallbacks.empty()) ctx.fallbacks.push_back(candidates.front().index);
  ctx.prediction = report.prediction;
  rec.picker = chosen_pool.picker->name();
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
