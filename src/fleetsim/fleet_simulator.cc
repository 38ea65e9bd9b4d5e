#include "fleetsim/fleet_simulator.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "common/request_inspector.h"
#include "common/tokenizer.h"
#include "control/runtime.h"
#include "fleetsim/event_queue.h"
#include "fleetsim/oracle_policy.h"
#include "fleetsim/routing_policy.h"
#include "routing/engine_adapter.h"
#include "routing/flow_controller.h"
#include "telemetry/metrics.h"

namespace tokenway::fleetsim {
namespace {

using bench::ErrorKind;

enum Kind : uint32_t {
  kArrival,         // data: request index; the client sends it
  kRoute,           // the gateway replica has read it and runs admission and the pick
  kReleased,        // flow control released it (FlowWaiter::Wake)
  kQueueTimeout,    // its queue TTL ran out
  kEngineArrival,   // it reaches its engine
  kStepEnd,         // target: engine; the step in progress ends
  kFirstAtGateway,  // its first token reaches the gateway (and the client)
  kDoneAtGateway,   // its last token (or an error) reaches the gateway (and the client)
  kScrape,          // target: replica; it scrapes every engine
};

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int64_t ToNs(double seconds) {
  return static_cast<int64_t>(std::llround(seconds * 1e9));
}

// A workload request as the gateway and the engine see it, built once per distinct request.
struct Prepared {
  InspectedRequest inspected;
  std::vector<uint32_t> tokens;
  std::string adapter;  // the model when it is not the fleet's base model
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int32_t group = -1;
};

// What a pool that predicts latency watches of one request: the chosen endpoint's features at
// dispatch and the pick's predictions, until the stream ends and teaches the model.
struct Watched {
  LatencyFeatures features;
  double predicted_ttft_s = -1;
  double predicted_tpot_s = -1;
  int64_t dispatched_ns = 0;
  int64_t first_ns = 0;  // the first token at the gateway
};

struct Request {
  std::shared_ptr<const Prepared> prepared;
  std::unique_ptr<Watched> watched;
  std::shared_ptr<FlowWaiter> waiter;
  const Pool* pool = nullptr;
  EndpointState* state = nullptr;  // the chosen endpoint's state in its replica
  int64_t arrival_ns = 0;
  int64_t first_ns = -1;  // engine time of the first token (virtual ns)
  int64_t last_ns = -1;
  int64_t done_ns = -1;
  int64_t max_itl_ns = -1;
  int64_t output = 0;
  int64_t cached = -1;
  int64_t prefill_load = 0;  // what the gateway added to the endpoint's counters
  int64_t decode_load = 0;
  uint32_t replica = 0;
  uint32_t pool_index = 0;
  uint32_t engine = 0;
  ErrorKind error = ErrorKind::kNone;
  int32_t status = 0;
  bool warmup = false;
  bool settled = false;
  bool owes_release = false;
  bool finished = false;
  bool sheddable = false;  // its model's priority is below 0
};

class SimWaiter final : public FlowWaiter {
 public:
  SimWaiter(EventQueue& queue, uint32_t replica, uint64_t request)
      : queue_(queue), replica_(replica), request_(request) {}
  void Wake() override { queue_.Push(queue_.now(), kReleased, replica_, request_); }

 private:
  EventQueue& queue_;
  uint32_t replica_;
  uint64_t request_;
};

struct Replica {
  EndpointRegistry registry;
  PoolStateRegistry pool_states;
  MetricSlots slots;
  std::shared_ptr<const Runtime> runtime;
  std::vector<std::unique_ptr<RoutingPolicy>> policies;  // per runtime pool
  std::vector<std::vector<uint32_t>> engine_of;          // per pool: endpoint -> engine
  uint64_t random = 0;
};

class Simulation {
 public:
  Simulation(const FleetSpec& fleet, const GatewaySpec& gateway, const LoadSpec& load,
             const WorkloadSource& workload)
      : fleet_(fleet), gw_(gateway), load_(load), workload_(workload) {}

  StatusOr<FleetResult> Run();

 private:
  Status Build();
  std::shared_ptr<const Prepared> Prepare(const bench::WorkloadRequest& w);
  std::shared_ptr<const Prepared> RequestFor(uint64_t index);
  void StartRequest(int64_t now);
  void Handle(const Event& e);
  void Route(uint64_t id);
  void Dispatch(uint64_t id);
  void Fail(uint64_t id, ErrorKind kind, int32_t status);
  void EngineArrival(uint64_t id);
  void StepEnd(uint32_t engine);
  void StartStep(uint32_t engine);
  void AtGatewayFirst(uint64_t id);
  void AtGatewayDone(uint64_t id);
  void Learn(Request& r, int64_t now);
  void Scrape(uint32_t replica);
  void Prefetch(const Event& next) const;
  double EngineNow(const SimulatedEngine& e) const {
    return static_cast<double>(queue_.now()) / 1e9 * e.speed;
  }

  const FleetSpec& fleet_;
  const GatewaySpec& gw_;
  const LoadSpec& load_;
  const WorkloadSource& workload_;

  EventQueue queue_;
  std::vector<SimulatedEngine> engines_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::unordered_map<std::string, uint32_t> engine_by_url_;
  RequestInspector inspector_;
  std::vector<std::shared_ptr<const Prepared>> prepared_;  // generated workloads, by item
  std::vector<double> arrivals_;                           // open loop, seconds
  double trace_first_ms_ = 0;
  std::vector<Request> requests_;
  uint64_t rng_ = 0;
  int64_t net_ns_ = 0, overhead_ns_ = 0, warmup_ns_ = 0, stop_starting_ns_ = 0;
  int64_t scrape_ns_ = 0;
  int64_t live_ = 0;  // requests started and not finished
  bool closed_loop_ = false;
  bool arrivals_done_ = false;
  uint64_t itl_stride_ = 1, itl_counter_ = 0;
  FleetResult result_;
  std::string body_buffer_;
};

std::shared_ptr<const Prepared> Simulation::Prepare(const bench::WorkloadRequest& w) {
  auto p = std::make_shared<Prepared>();
  body_buffer_.assign(w.body);
  body_buffer_.append(64, '\0');  // the inspector reads up to 64 bytes past the body
  InspectError error;
  if (!inspector_.Inspect(Operation::kChatCompletions, body_buffer_.data(), w.body.size(), 64,
                          p->inspected, error)) {
    p->inspected.model = w.model;  // counted as a 400 when it is routed
    p->inspected.max_tokens = -2;
  }
  p->tokens = tokenizer::Encode(p->inspected.prompt_text);
  if (w.model != fleet_.model) p->adapter = w.model;
  p->input_tokens = w.input_tokens;
  p->output_tokens = w.output_tokens;
  p->group = w.group;
  return p;
}

std::shared_ptr<const Prepared> Simulation::RequestFor(uint64_t index) {
  if (!workload_.trace.empty()) {
    // Built when it arrives and dropped when it finishes: a long trace never sits in memory.
    std::mt19937_64 rng(Mix(workload_.seed ^ (index * 0x2545F4914F6CDD1Dull)));
    return Prepare(bench::TraceRequest(workload_.trace[index % workload_.trace.size()],
                                       workload_.trace_params, workload_.model, trace_first_ms_,
                                       rng));
  }
  const size_t n = workload_.items.size();
  const size_t i = static_cast<size_t>(index % n);
  if (!prepared_[i]) prepared_[i] = Prepare(workload_.items[i]);
  return prepared_[i];
}

Status Simulation::Build() {
  if (fleet_.endpoints < 1) return Status::Error("the fleet needs at least one endpoint");
  if (fleet_.profiles.empty()) return Status::Error("the fleet needs a hardware profile");
  if (workload_.items.empty() && workload_.trace.empty()) {
    return Status::Error("the workload has no requests");
  }
  rng_ = Mix(load_.seed);
  net_ns_ = ToNs(gw_.network_delay_s);
  overhead_ns_ = ToNs(gw_.gateway_overhead_s);
  engines_.resize(static_cast<size_t>(fleet_.endpoints));
  for (int64_t i = 0; i < fleet_.endpoints; ++i) {
    sim::EngineConfig ec;
    ec.profile = fleet_.profiles[static_cast<size_t>(i) % fleet_.profiles.size()];
    ec.model_name = fleet_.model;
    ec.max_loras = fleet_.max_loras;
    ec.kv_blocks = fleet_.kv_blocks;
    ec.seed = fleet_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) + 1;
    ec.emit_text = false;  // only token counts and times are measured
    ec.estimate_queued_prefill = !gw_.oracle_pools.empty() || gw_.policy_factory != nullptr;
    SimulatedEngine& e = engines_[static_cast<size_t>(i)];
    e.engine = std::make_unique<sim::Engine>(std::move(ec));
    e.speed = fleet_.speed > 0 ? fleet_.speed : 1;
    e.max_waiting = fleet_.max_waiting;
    engine_by_url_.emplace(FleetUrl(i), static_cast<uint32_t>(i));
  }
  const double slo_ttft = load_.options.stream ? load_.slo.ttft : 0;
  for (int r = 0; r < gw_.replicas; ++r) {
    auto rep = std::make_unique<Replica>();
    auto rt = BuildRuntime(gw_.config, rep->registry, rep->slots, 1, 0, &rep->pool_states);
    if (!rt.ok()) return Status::Error("gateway configuration: " + rt.status().message());
    rep->runtime = *rt;
    rep->engine_of.reserve(rep->runtime->pools.size());  // stable addresses for the policies
    for (const auto& pool : rep->runtime->pools) {
      std::vector<uint32_t>& engine_of = rep->engine_of.emplace_back();
      for (const auto& ep : pool->endpoints) {
        auto it = engine_by_url_.find(ep.url);
        if (it == engine_by_url_.end()) {
          return Status::Error("pool '" + pool->name + "' names " + ep.url +
                               ", which is not an endpoint of the simulated fleet");
        }
        engine_of.push_back(it->second);
      }
      const bool oracle = std::find(gw_.oracle_pools.begin(), gw_.oracle_pools.end(), pool->name) !=
                          gw_.oracle_pools.end();
      if (gw_.policy_factory) {
        PolicyEnvironment env{pool.get(), &engines_, &engine_of, &load_.slo};
        auto policy = gw_.policy_factory(env);
        if (!policy) return Status::Error("no policy for pool '" + pool->name + "'");
        rep->policies.push_back(std::move(policy));
      } else if (oracle) {
        rep->policies.push_back(
            std::make_unique<OraclePolicy>(engines_, engine_of, slo_ttft, load_.slo.tpot));
      } else {
        rep->policies.push_back(std::make_unique<PickerPolicy>(*pool->picker));
      }
    }
    rep->random = Mix(load_.seed ^ (0xC0FFEEull + static_cast<uint64_t>(r)));
    replicas_.push_back(std::move(rep));
  }
  const EngineMetricsConfig& em = gw_.config.engine_metrics;
  scrape_ns_ = em.enabled ? std::max<int64_t>(1, em.interval.count()) : 0;

  const bench::LoadOptions& o = load_.options;
  warmup_ns_ = ToNs(o.warmup_s);
  closed_loop_ = o.rate <= 0 && !o.trace_arrivals && o.concurrency > 0 && workload_.trace.empty();
  int64_t expected = 0;
  if (!workload_.trace.empty()) {
    trace_first_ms_ = workload_.trace.front().timestamp_ms;
    for (const auto& rec : workload_.trace)
      trace_first_ms_ = std::min(trace_first_ms_, rec.timestamp_ms);
    for (const auto& rec : workload_.trace) {
      double at = std::max(
          0.0, (rec.timestamp_ms - trace_first_ms_) / 1000.0 * workload_.trace_params.time_scale);
      if (o.duration_s > 0 && at > o.warmup_s + o.duration_s) continue;
      arrivals_.push_back(at);
    }
    std::sort(arrivals_.begin(), arrivals_.end());
    expected = static_cast<int64_t>(arrivals_.size());
  } else if (!closed_loop_) {
    arrivals_ = bench::ArrivalTimes(o, workload_.items);
    expected = static_cast<int64_t>(arrivals_.size());
  } else {
    expected = o.concurrency * 64;
  }
  if (expected <= 0) return Status::Error("the load sends no request");
  if (workload_.trace.empty()) prepared_.resize(workload_.items.size());
  stop_starting_ns_ =
      o.duration_s > 0 ? ToNs(o.warmup_s + o.duration_s) : std::numeric_limits<int64_t>::max() / 4;
  requests_.reserve(static_cast<size_t>(std::min<int64_t>(expected, 50'000'000)));
  // ITL samples: every stride-th gap, so memory stays bounded on million-request runs.
  double mean_out = 0;
  if (!workload_.items.empty()) {
    for (const auto& w : workload_.items) mean_out += static_cast<double>(w.output_tokens);
    mean_out /= static_cast<double>(workload_.items.size());
  } else {
    for (const auto& r : workload_.trace) mean_out += static_cast<double>(r.output_length);
    mean_out /= static_cast<double>(workload_.trace.size());
  }
  const double gaps = static_cast<double>(expected) * std::max(0.0, mean_out - 1);
  if (load_.itl_samples > 0 && gaps > static_cast<double>(load_.itl_samples)) {
    itl_stride_ = static_cast<uint64_t>(std::ceil(gaps / static_cast<double>(load_.itl_samples)));
  }
  return Status::Ok();
}

void Simulation::StartRequest(int64_t now) {
  const uint64_t id = requests_.size();
  Request r;
  r.arrival_ns = now;
  r.warmup = now < warmup_ns_;
  rng_ = Mix(rng_);
  r.replica = static_cast<uint32_t>(rng_ % static_cast<uint64_t>(replicas_.size()));
  r.prepared = RequestFor(id);
  requests_.push_back(std::move(r));
  ++live_;
  queue_.Push(now + overhead_ns_, kRoute, requests_.back().replica, id);
}

void Simulation::Fail(uint64_t id, ErrorKind kind, int32_t status) {
  Request& r = requests_[id];
  r.error = kind;
  r.status = status;
  r.done_ns = queue_.now();
  queue_.Push(queue_.now(), kDoneAtGateway, r.replica, id);
}

void Simulation::Route(uint64_t id) {
  Request& r = requests_[id];
  Replica& g = *replicas_[r.replica];
  const Prepared& p = *r.prepared;
  if (p.inspected.max_tokens == -2) return Fail(id, ErrorKind::kHttp4xx, 400);
  const ModelRoute* route = g.runtime->FindModel(p.inspected.model);
  if (!route) return Fail(id, ErrorKind::kHttp4xx, 404);
  r.pool = route->pool;
  r.sheddable = route->priority < 0;
  for (uint32_t i = 0; i < g.runtime->pools.size(); ++i) {
    if (g.runtime->pools[i].get() == r.pool) r.pool_index = i;
  }
  const Pool& pool = *r.pool;
  if (!pool.flow) return Dispatch(id);
  const FlowControlConfig& fc = pool.flow_config;
  uint64_t flow = 0;
  if (fc.fairness_key == "user" && !p.inspected.user.empty()) {
    flow = XXH3_64bits(p.inspected.user.data(), p.inspected.user.size());
  }
  auto make_waiter = [&]() -> std::shared_ptr<FlowWaiter> {
    r.waiter = std::make_shared<SimWaiter>(queue_, r.replica, id);
    return r.waiter;
  };
  switch (pool.flow->Admit(pool.flow_view(), route->priority, flow, make_waiter, queue_.now())) {
    case FlowController::Admission::kDispatch:
      return Dispatch(id);
    case FlowController::Admission::kShed:
      return Fail(id, ErrorKind::kHttp4xx, 429);
    case FlowController::Admission::kQueueFull:
      return Fail(id, ErrorKind::kHttp5xx, 503);
    case FlowController::Admission::kQueued:
      queue_.Push(queue_.now() + fc.queue_ttl.count(), kQueueTimeout, r.replica, id);
      return;
  }
}

void Simulation::Dispatch(uint64_t id) {
  Request& r = requests_[id];
  Replica& g = *replicas_[r.replica];
  const Pool& pool = *r.pool;
  const int64_t now = queue_.now();
  thread_local std::vector<PickCandidate> candidates;
  candidates.clear();
  for (uint32_t i = 0; i < pool.endpoints.size(); ++i) {
    const EndpointState* s = pool.endpoints[i].state.get();
    if (s->Eligible(now)) candidates.push_back({i, s});
  }
  if (candidates.empty()) {
    if (r.owes_release) pool.flow->DispatchDone(pool.flow_view(), now);
    r.owes_release = false;
    return Fail(id, ErrorKind::kHttp5xx, 503);
  }
  const Prepared& p = *r.prepared;
  PolicyRequest pr;
  pr.inspected = &p.inspected;
  pr.tokens = &p.tokens;
  pr.adapter = p.adapter;
  pr.prompt_tokens = static_cast<int64_t>(p.tokens.size());
  pr.max_tokens = p.output_tokens;
  PickReport report;
  if (pool.predicts_latency) {
    pr.slo.sheddable = r.sheddable;
    pr.report = &report;
  }
  g.random = Mix(g.random);
  const uint32_t chosen = g.policies[r.pool_index]->Choose(pr, candidates, g.random, now);
  if (chosen == RoutingPolicy::kRefused) {
    if (r.owes_release) pool.flow->DispatchDone(pool.flow_view(), now);
    r.owes_release = false;
    if (!r.warmup) ++result_.slo_refused;
    return Fail(id, ErrorKind::kHttp4xx, 429);
  }
  EndpointState& state = *pool.endpoints[chosen].state;
  r.state = &state;
  if (pool.predicts_latency) {
    // As the gateway's RequestContext::Dispatch: the endpoint before this request joined it.
    r.watched = std::make_unique<Watched>();
    Watched& w = *r.watched;
    w.features =
        ComputeLatencyFeatures(state, static_cast<double>(pr.prompt_tokens),
                               report.prediction.cached_fraction, now, pool.stale_after_ns);
    w.predicted_ttft_s = report.prediction.made ? report.prediction.ttft_s : -1;
    w.predicted_tpot_s = report.prediction.made ? report.prediction.tpot_s : -1;
    w.dispatched_ns = now;
  }
  r.prefill_load = p.input_tokens;
  r.decode_load = p.inspected.max_tokens > 0 ? p.inspected.max_tokens : kDefaultDecodeTokens;
  state.in_flight.fetch_add(1, std::memory_order_relaxed);
  state.sent_since_scrape.fetch_add(1, std::memory_order_relaxed);
  state.prefill_tokens.fetch_add(r.prefill_load, std::memory_order_relaxed);
  state.decode_tokens.fetch_add(r.decode_load, std::memory_order_relaxed);
  state.requests_total.fetch_add(1, std::memory_order_relaxed);
  if (r.owes_release) {
    r.owes_release = false;
    pool.flow->DispatchDone(pool.flow_view(), now);
  }
  r.engine = g.engine_of[r.pool_index][chosen];
  queue_.Push(now + net_ns_, kEngineArrival, r.engine, id);
}

void Simulation::EngineArrival(uint64_t id) {
  Request& r = requests_[id];
  SimulatedEngine& e = engines_[r.engine];
  if (static_cast<int64_t>(e.engine->num_waiting()) >= e.max_waiting) {
    r.error = ErrorKind::kHttp5xx;
    r.status = 503;
    r.done_ns = queue_.now();
    queue_.Push(queue_.now() + net_ns_, kDoneAtGateway, r.replica, id);
    return;
  }
  const Prepared& p = *r.prepared;
  sim::GenerationRequest g;
  g.prompt_tokens = p.tokens;
  g.adapter = p.adapter;
  g.max_output_tokens = std::max<int64_t>(1, p.output_tokens);
  g.seed = Mix(load_.seed ^ (id + 1));
  g.tag = id;
  e.engine->Add(std::move(g), EngineNow(e));
  if (e.step_end_ns < 0) StartStep(r.engine);
}

void Simulation::StartStep(uint32_t engine) {
  SimulatedEngine& e = engines_[engine];
  e.step_end_ns = -1;
  if (!e.engine->HasWork()) return;
  const double d = e.engine->BeginStep(EngineNow(e));
  if (d <= 0) return;  // nothing can run until a request arrives or leaves
  ++result_.steps;
  e.step_end_ns = queue_.now() + std::max<int64_t>(1, ToNs(d / e.speed));
  queue_.Push(e.step_end_ns, kStepEnd, engine, 0);
}

void Simulation::StepEnd(uint32_t engine) {
  SimulatedEngine& e = engines_[engine];
  const int64_t now = queue_.now();
  const bool stream = load_.options.stream;
  const std::vector<sim::TokenEvent>& events = e.engine->FinishStep(EngineNow(e));
  // The requests of a big fleet are scattered over memory: start every miss before the first.
  for (const sim::TokenEvent& ev : events) __builtin_prefetch(&requests_[ev.tag]);
  for (const sim::TokenEvent& ev : events) {
    const uint64_t id = ev.tag;
    Request& r = requests_[id];
    if (ev.completion_tokens == 1) {
      r.first_ns = now;
      r.cached = ev.cached_tokens;
      queue_.Push(now + net_ns_, kFirstAtGateway, r.replica, id);
    } else {
      const int64_t gap = now - r.last_ns;
      r.max_itl_ns = std::max(r.max_itl_ns, gap);
      if (stream && !r.warmup && itl_counter_++ % itl_stride_ == 0) {
        result_.load.itl_us.push_back(
            static_cast<uint32_t>(std::min<int64_t>(gap / 1000, UINT32_MAX)));
      }
    }
    r.last_ns = now;
    r.output = ev.completion_tokens;
    if (ev.finish != sim::FinishReason::kNone) {
      r.done_ns = now;
      r.status = 200;
      queue_.Push(now + net_ns_, kDoneAtGateway, r.replica, id);
    }
  }
  StartStep(engine);
}

void Simulation::AtGatewayFirst(uint64_t id) {
  Request& r = requests_[id];
  if (!r.state) return;
  if (r.watched) r.watched->first_ns = queue_.now();
  r.state->prefill_tokens.fetch_sub(std::exchange(r.prefill_load, 0), std::memory_order_relaxed);
}

void Simulation::AtGatewayDone(uint64_t id) {
  Request& r = requests_[id];
  const int64_t now = queue_.now();
  if (r.state) {
    EndpointState& s = *r.state;
    s.prefill_tokens.fetch_sub(std::exchange(r.prefill_load, 0), std::memory_order_relaxed);
    s.decode_tokens.fetch_sub(r.decode_load, std::memory_order_relaxed);
    s.in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (r.error == ErrorKind::kNone) s.RecordSuccess();
    if (r.watched && r.error == ErrorKind::kNone && load_.options.stream) Learn(r, now);
  }
  if (r.pool && r.pool->flow && r.state) r.pool->flow->Kick(r.pool->flow_view(), now);
  r.finished = true;
  --live_;
  const Prepared& p = *r.prepared;
  bench::RequestRecord rec;
  rec.start = static_cast<double>(r.arrival_ns) / 1e9;
  rec.input_tokens = p.input_tokens;
  rec.group = p.group;
  rec.warmup = r.warmup;
  rec.status = r.status;
  rec.error = r.error;
  const double e2e = static_cast<double>(now - r.arrival_ns) / 1e9;
  if (r.error == ErrorKind::kNone) {
    rec.e2e = e2e;
    rec.output_tokens = r.output;
    rec.stream_tokens = load_.options.stream ? r.output : -1;
    rec.cached_tokens = r.cached;
    if (load_.options.stream) {
      rec.ttft = static_cast<double>(r.first_ns + net_ns_ - r.arrival_ns) / 1e9;
      if (r.output > 1) {
        rec.tpot =
            static_cast<double>(r.done_ns - r.first_ns) / 1e9 / static_cast<double>(r.output - 1);
      }
      if (r.max_itl_ns >= 0) rec.max_itl = static_cast<double>(r.max_itl_ns) / 1e9;
    }
    if (e2e > load_.options.timeout_s) {
      rec.error = ErrorKind::kTimeout;
      rec.status = 0;
    }
  }
  if (!r.warmup) {
    result_.load.measure_end = std::max(result_.load.measure_end, static_cast<double>(now) / 1e9);
  }
  result_.load.records.push_back(rec);
  r.prepared.reset();  // trace requests: free the prompt
  r.waiter.reset();
  r.watched.reset();  // a request that did not teach its model (an error, no stream)
  if (closed_loop_ && now < stop_starting_ns_) StartRequest(now);
}

void Simulation::Learn(Request& r, int64_t now) {
  const Watched& w = *r.watched;
  if (w.first_ns <= 0) return;
  const double ttft = static_cast<double>(w.first_ns - w.dispatched_ns) / 1e9;
  double tpot = -1;
  if (r.output >= 2) {
    tpot = static_cast<double>(now - w.first_ns) / 1e9 / static_cast<double>(r.output - 1);
  }
  if (!r.warmup) {
    if (w.predicted_ttft_s >= 0 && ttft > 0) {
      result_.ttft_error_sum += std::abs(w.predicted_ttft_s - ttft) / ttft;
      ++result_.ttft_predictions;
    }
    if (w.predicted_tpot_s > 0 && tpot > 0) {
      result_.tpot_error_sum += std::abs(w.predicted_tpot_s - tpot) / tpot;
      ++result_.tpot_predictions;
    }
  }
  r.state->latency.Learn(w.features, ttft, tpot);
  r.watched.reset();
}

void Simulation::Scrape(uint32_t replica) {
  Replica& g = *replicas_[replica];
  const int64_t now = queue_.now();
  const bool loras = !fleet_.loras.empty();
  for (size_t pi = 0; pi < g.runtime->pools.size(); ++pi) {
    const Pool& pool = *g.runtime->pools[pi];
    for (size_t i = 0; i < pool.endpoints.size(); ++i) {
      EndpointState& state = *pool.endpoints[i].state;
      const sim::Engine& e = *engines_[g.engine_of[pi][i]].engine;
      EngineReading reading;
      reading.valid = true;
      reading.waiting = static_cast<double>(e.num_waiting());
      reading.running = static_cast<double>(e.num_running());
      reading.kv_utilisation = e.kv_usage();
      reading.max_lora = static_cast<uint32_t>(e.config().max_loras);
      reading.block_size = static_cast<uint32_t>(e.config().profile.block_size);
      if (loras) {
        reading.running_loras = e.RunningAdapters();
        reading.waiting_loras = e.WaitingAdapters();
      }
      // Requests sent before this scrape are in the engine's counts (they left the gateway).
      const int32_t sent_before = state.sent_since_scrape.load(std::memory_order_relaxed);
      PublishEngineReading(reading, state, now);
      state.sent_since_scrape.fetch_sub(sent_before, std::memory_order_relaxed);
    }
    if (pool.flow) pool.flow->Kick(pool.flow_view(), now);
  }
  queue_.Push(now + scrape_ns_, kScrape, replica, 0);
}

// Starts loading what the next event will touch while this one is handled: with a thousand
// engines and a million requests in memory, each is otherwise a cache miss on arrival.
void Simulation::Prefetch(const Event& next) const {
  if (const Event* after = queue_.second(); after && after->kind == kStepEnd) {
    engines_[after->target].engine->PrefetchState();
  }
  switch (next.kind) {
    case kStepEnd:
      engines_[next.target].engine->PrefetchBatch();
      break;
    case kRoute:
    case kEngineArrival:
    case kFirstAtGateway:
    case kDoneAtGateway:
      if (next.data < requests_.size()) __builtin_prefetch(&requests_[next.data]);
      break;
    default:
      break;
  }
}

void Simulation::Handle(const Event& e) {
  switch (e.kind) {
    case kArrival: {
      StartRequest(queue_.now());
      const size_t next = requests_.size();
      if (next < arrivals_.size()) {
        queue_.Push(ToNs(arrivals_[next]), kArrival, 0, next);
      } else {
        arrivals_done_ = true;
      }
      break;
    }
    case kRoute:
      Route(e.data);
      break;
    case kReleased:
    case kQueueTimeout: {
      Request& r = requests_[e.data];
      if (r.settled || r.finished || !r.waiter) break;
      r.settled = true;
      const Pool& pool = *r.pool;
      if (pool.flow->Settle(*r.waiter, queue_.now()) == FlowController::Settlement::kReleased) {
        r.owes_release = true;
        Dispatch(e.data);
      } else {
        Fail(e.data, ErrorKind::kHttp5xx, 503);
      }
      break;
    }
    case kEngineArrival:
      EngineArrival(e.data);
      break;
    case kStepEnd:
      StepEnd(e.target);
      break;
    case kFirstAtGateway:
      AtGatewayFirst(e.data);
      break;
    case kDoneAtGateway:
      AtGatewayDone(e.data);
      break;
    case kScrape:
      Scrape(e.target);
      break;
  }
}

StatusOr<FleetResult> Simulation::Run() {
  if (Status st = Build(); !st.ok()) return st;
  const bench::LoadOptions& o = load_.options;
  if (closed_loop_) {
    for (int64_t i = 0; i < o.concurrency; ++i) StartRequest(0);
    arrivals_done_ = true;
  } else {
    queue_.Push(ToNs(arrivals_.front()), kArrival, 0, 0);
  }
  if (scrape_ns_ > 0) {
    for (size_t r = 0; r < replicas_.size(); ++r) {
      // Each replica scrapes on its own phase; the first scrape is at its phase, so at the start
      // the signals are missing, as they are before a gateway's first scrape.
      queue_.Push(
          static_cast<int64_t>(Mix(load_.seed + 77 + r) % static_cast<uint64_t>(scrape_ns_)),
          kScrape, static_cast<uint32_t>(r), 0);
    }
  }
  const int64_t last_start =
      closed_loop_ ? stop_starting_ns_ : ToNs(arrivals_.empty() ? 0 : arrivals_.back());
  const int64_t end_ns = std::min(last_start, stop_starting_ns_) + ToNs(o.drain_s);
  while (!queue_.empty()) {
    const Event e = queue_.Pop();
    if (!queue_.empty()) Prefetch(queue_.top());
    if (e.time_ns > end_ns) break;
    ++result_.events;
    if ((result_.events & 0xFFFF) == 0 && load_.stop &&
        load_.stop->load(std::memory_order_relaxed)) {
      result_.interrupted = true;
      break;
    }
    Handle(e);
    if (arrivals_done_ && live_ == 0) break;
    if (closed_loop_ && queue_.now() >= stop_starting_ns_ && live_ == 0) break;
  }
  result_.load.unfinished = live_;
  result_.load.measure_start = o.warmup_s;
  result_.load.wall_s = static_cast<double>(queue_.now()) / 1e9;
  result_.virtual_s = result_.load.wall_s;
  for (const SimulatedEngine& e : engines_) {
    const sim::EngineStats& s = e.engine->stats();
    result_.prefix_queries += static_cast<double>(s.prefix_cache_queries);
    result_.prefix_hits += static_cast<double>(s.prefix_cache_hits);
    result_.adapter_loads += static_cast<double>(s.lora_loads);
    result_.preemptions += s.preemptions;
  }
  // Records in send order, as the load generator keeps them.
  std::stable_sort(result_.load.records.begin(), result_.load.records.end(),
                   [](const bench::RequestRecord& a, const bench::RequestRecord& b) {
                     return a.start < b.start;
                   });
  return std::move(result_);
}

}  // namespace

std::string FleetUrl(int64_t i) {
  return "http://10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) +
         "." + std::to_string(i & 255) + ":8000";
}

StatusOr<FleetResult> RunFleet(const FleetSpec& fleet, const GatewaySpec& gateway,
                               const LoadSpec& load, const WorkloadSource& workload) {
  Simulation simulation(fleet, gateway, load, workload);
  return simulation.Run();
}

}  // namespace tokenway::fleetsim
