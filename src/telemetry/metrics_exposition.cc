#include "telemetry/metrics_exposition.h"

#include "telemetry/access_log.h"

#include <atomic>
#include <utility>

#include "common/request_inspector.h"

namespace tokenway {

namespace {

uint64_t Load(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

// One scrape: sums per-worker values at read time.
struct Scrape {
  PrometheusText& t;
  std::span<WorkerMetrics* const> workers;

  // Sums one histogram over the workers and writes it, unless it is empty. `pick` selects the
  // histogram in a WorkerMetrics; `scale` is the unit scale its sum is kept in.
  template <class Pick>
  void Histogram(std::string_view name, std::initializer_list<Label> labels,
                 std::span<const double> bounds, double scale, Pick&& pick) {
    uint64_t counts[kMaxHistogramBuckets + 1] = {};
    uint64_t total = 0, sum = 0;
    for (auto* w : workers) {
      const tokenway::Histogram& h = pick(*w);
      for (size_t b = 0; b <= bounds.size(); ++b) counts[b] += Load(h.buckets[b]);
      total += Load(h.count);
      sum += Load(h.sum);
    }
    if (total == 0) return;
    t.Histogram(name, labels, bounds.data(), counts, bounds.size(), counts[bounds.size()],
                static_cast<double>(sum) / scale);
  }
  template <class Pick>
  uint64_t Sum(Pick&& pick) const {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(pick(*w));
    return v;
  }
};

// The OpenTelemetry GenAI semantic-convention metrics in Prometheus form (dots become
// underscores, the unit "s" a _seconds suffix). tokenway forwards the model name unchanged, so
// the response model is the request model.
void WriteGenAi(Scrape& scrape, std::span<const ModelSeries> models) {
  PrometheusText& t = scrape.t;
  using GenAi = WorkerMetrics::GenAi;
  struct Series {
    std::string_view model;
    std::string_view provider;
    size_t slot;
  };
  std::vector<Series> series;
  for (size_t s = 0; s < models.size(); ++s) {
    if (models[s].configured) series.push_back({models[s].name, models[s].provider, s});
  }
  constexpr Operation kOps[] = {Operation::kChatCompletions, Operation::kCompletions,
                                Operation::kEmbeddings};
  // Writes `member` of every (model, operation) with an extra label pair (may be empty).
  auto each = [&](std::string_view name, std::span<const double> bounds, double scale,
                  std::string_view key, std::string_view value, auto&& member) {
    for (const Series& x : series) {
      for (Operation op : kOps) {
        auto pick = [&](const WorkerMetrics& w) -> const Histogram& {
          return member(w.gen_ai[x.slot][static_cast<size_t>(op)]);
        };
        std::string_view opname = OperationName(op);
        if (key.empty()) {
          scrape.Histogram(name,
                           {{"gen_ai_operation_name", opname},
                            {"gen_ai_provider_name", x.provider},
                            {"gen_ai_request_model", x.model},
                            {"gen_ai_response_model", x.model}},
                           bounds, scale, pick);
        } else {
          scrape.Histogram(name,
                           {{"gen_ai_operation_name", opname},
                            {"gen_ai_provider_name", x.provider},
                            {"gen_ai_request_model", x.model},
                            {"gen_ai_response_model", x.model},
                            {key, value}},
                           bounds, scale, pick);
        }
      }
    }
  };
  t.Family("gen_ai_client_token_usage", "histogram",
           "Input and output tokens per successful request (gen_ai.client.token.usage).");
  each("gen_ai_client_token_usage", kGenAiTokenBuckets, 1, "gen_ai_token_type", "input",
       [](const GenAi& g) -> const Histogram& { return g.input_tokens; });
  each("gen_ai_client_token_usage", kGenAiTokenBuckets, 1, "gen_ai_token_type", "output",
       [](const GenAi& g) -> const Histogram& { return g.output_tokens; });
  t.Family("gen_ai_client_operation_duration_seconds", "histogram",
           "Duration of GenAI operations through the gateway (gen_ai.client.operation.duration); "
           "error_type is the status class of failed ones.");
  each("gen_ai_client_operation_duration_seconds", kGenAiDurationBuckets, 1e6, {}, {},
       [](const GenAi& g) -> const Histogram& {
         return g.duration[static_cast<size_t>(GenAiOutcome::kOk)];
       });
  each("gen_ai_client_operation_duration_seconds", kGenAiDurationBuckets, 1e6, "error_type", "4xx",
       [](const GenAi& g) -> const Histogram& {
         return g.duration[static_cast<size_t>(GenAiOutcome::kClientError)];
       });
  each("gen_ai_client_operation_duration_seconds", kGenAiDurationBuckets, 1e6, "error_type", "5xx",
       [](const GenAi& g) -> const Histogram& {
         return g.duration[static_cast<size_t>(GenAiOutcome::kServerError)];
       });
  t.Family("gen_ai_server_time_to_first_token_seconds", "histogram",
           "Time to the first token of successful streams (gen_ai.server.time_to_first_token).");
  each("gen_ai_server_time_to_first_token_seconds", kGenAiTtftBuckets, 1e6, {}, {},
       [](const GenAi& g) -> const Histogram& { return g.time_to_first_token; });
  t.Family("gen_ai_server_time_per_output_token_seconds", "histogram",
           "Time per output token after the first of successful streams "
           "(gen_ai.server.time_per_output_token).");
  each("gen_ai_server_time_per_output_token_seconds", kGenAiTpotBuckets, 1e6, {}, {},
       [](const GenAi& g) -> const Histogram& { return g.time_per_output_token; });
}

// Per model version (models[].versions): what a rollout compares, the split's weights, and
// the shadow copies.
void WriteVersions(Scrape& scrape, std::span<const VersionSeries> versions) {
  PrometheusText& t = scrape.t;
  using Families = WorkerMetrics::VersionFamilies;
  auto counter = [&](std::string_view name, std::string_view help, auto member) {
    t.Family(name, "counter", help);
    for (size_t s = 1; s < versions.size(); ++s) {
      uint64_t v = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
        return member(w.versions[s]);
      });
      if (v) t.Sample(name, {{"model", versions[s].model}, {"version", versions[s].version}}, v);
    }
  };
  auto histogram = [&](std::string_view name, std::string_view help, std::span<const double> bounds,
                       auto member) {
    t.Family(name, "histogram", help);
    for (size_t s = 1; s < versions.size(); ++s) {
      scrape.Histogram(name, {{"model", versions[s].model}, {"version", versions[s].version}},
                       bounds, 1e6, [&](const WorkerMetrics& w) -> const tokenway::Histogram& {
                         return member(w.versions[s]);
                       });
    }
  };
  t.Family("tokenway_model_version_weight", "gauge",
           "The weight the split gives each configured model version now (configured, or set at "
           "run time).");
  for (size_t s = 1; s < versions.size(); ++s) {
    if (versions[s].weight < 0) continue;
    t.Sample("tokenway_model_version_weight",
             {{"model", versions[s].model}, {"version", versions[s].version}}, versions[s].weight);
  }
  counter("tokenway_model_version_requests_total",
          "Client requests a model version served (split or match rule).",
          [](const Families& f) -> const std::atomic<uint64_t>& { return f.requests; });
  counter("tokenway_model_version_errors_total",
          "Client requests of a model version answered 5xx (upstream failures included).",
          [](const Families& f) -> const std::atomic<uint64_t>& { return f.errors; });
  counter("tokenway_model_version_input_tokens_total",
          "Input tokens of a model version's successful requests (reported usage).",
          [](const Families& f) -> const std::atomic<uint64_t>& { return f.input_tokens; });
  counter("tokenway_model_version_output_tokens_total",
          "Output tokens of a model version's successful requests (reported usage).",
          [](const Families& f) -> const std::atomic<uint64_t>& { return f.output_tokens; });
  histogram("tokenway_model_version_time_to_first_token_seconds",
            "Time to the first token of a model version's successful streams.", kGenAiTtftBuckets,
            [](const Families& f) -> const tokenway::Histogram& { return f.time_to_first_token; });
  histogram("tokenway_model_version_time_per_output_token_seconds",
            "Time per output token after the first of a model version's successful streams.",
            kGenAiTpotBuckets, [](const Families& f) -> const tokenway::Histogram& {
              return f.time_per_output_token;
            });
  t.Family("tokenway_shadow_requests_total", "counter",
           "Shadow copies of requests mirrored to a candidate version, by outcome.");
  for (size_t s = 1; s < versions.size(); ++s) {
    for (size_t o = 0; o < kShadowOutcomes; ++o) {
      uint64_t v = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
        return w.versions[s].shadow[o];
      });
      if (!v) continue;
      t.Sample("tokenway_shadow_requests_total",
               {{"model", versions[s].model},
                {"version", versions[s].version},
                {"outcome", ShadowOutcomeName(static_cast<ShadowOutcome>(o))}},
               v);
    }
  }
  histogram("tokenway_shadow_time_to_first_token_seconds",
            "Time to the first token of the shadow copies a candidate version answered.",
            kGenAiTtftBuckets, [](const Families& f) -> const tokenway::Histogram& {
              return f.shadow_time_to_first_token;
            });
}

}  // namespace

std::string RenderMetricsExposition(const ExpositionInput& in) {
  PrometheusText t;
  std::span<WorkerMetrics* const> workers = in.workers;
  const std::vector<ModelSeries>& models = in.models;

  Scrape scrape{t, workers};
  t.Family("tokenway_requests_total", "counter",
           "Requests answered, by requested model, its pool and HTTP status code.");
  for (size_t s = 0; s < models.size(); ++s) {
    for (size_t c = 0; c < kStatusSlots; ++c) {
      uint64_t v = 0;
      for (auto* w : workers) v += Load(w->requests[s][c]);
      if (v == 0) continue;
      int code = StatusForSlot(c);
      std::string code_text = code == 599                            ? "5xx"
                              : code == 499 && c == kStatusSlots - 2 ? "4xx"
                                                                     : std::to_string(code);
      t.Sample("tokenway_requests_total",
               {{"model", models[s].name}, {"pool", models[s].pool}, {"code", code_text}}, v);
    }
  }
  t.Family("tokenway_request_duration_seconds", "histogram",
           "Time from the request's arrival to its last response byte.");
  for (size_t s = 0; s < models.size(); ++s) {
    scrape.Histogram("tokenway_request_duration_seconds", {{"model", models[s].name}},
                     kLatencyBuckets, 1e6,
                     [&](const WorkerMetrics& w) -> const Histogram& { return w.duration[s]; });
  }
  t.Family("tokenway_time_to_first_byte_seconds", "histogram",
           "Time from the request's arrival to the first response byte sent to the client "
           "(for streams: the first event).");
  for (size_t s = 0; s < models.size(); ++s) {
    scrape.Histogram(
        "tokenway_time_to_first_byte_seconds", {{"model", models[s].name}}, kLatencyBuckets, 1e6,
        [&](const WorkerMetrics& w) -> const Histogram& { return w.time_to_first_byte[s]; });
  }
  WriteGenAi(scrape, models);

  t.Family("tokenway_tokens_total", "counter",
           "Tokens of successful requests by model and type (input, output, cached input).");
  for (size_t s = 0; s < models.size(); ++s) {
    uint64_t in = 0, out = 0, cached = 0;
    for (auto* w : workers) {
      in += Load(w->prompt_tokens[s]);
      out += Load(w->completion_tokens[s]);
      cached += Load(w->cached_tokens[s]);
    }
    if (in + out + cached == 0) continue;
    for (auto [type, v] : {std::pair{"input", in}, {"output", out}, {"cached", cached}}) {
      t.Sample("tokenway_tokens_total",
               {{"model", models[s].name}, {"pool", models[s].pool}, {"type", type}}, v);
    }
  }
  WriteVersions(scrape, in.versions);

  t.Family("tokenway_requests_without_usage_total", "counter",
           "Successful requests whose token usage could not be determined.");
  for (size_t s = 0; s < models.size(); ++s) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->usage_unknown[s]);
    if (v) t.Sample("tokenway_requests_without_usage_total", {{"model", models[s].name}}, v);
  }
  t.Family("tokenway_estimated_tokens_total", "counter",
           "Tokens of successful requests without usage, as estimated by tokenway (input: the "
           "token estimator on the prompt; output: content events relayed).");
  for (size_t s = 0; s < models.size(); ++s) {
    uint64_t est_in = 0, est_out = 0;
    for (auto* w : workers) {
      est_in += Load(w->estimated_tokens[s][0]);
      est_out += Load(w->estimated_tokens[s][1]);
    }
    if (est_in + est_out == 0) continue;
    t.Sample("tokenway_estimated_tokens_total", {{"model", models[s].name}, {"type", "input"}},
             est_in);
    t.Sample("tokenway_estimated_tokens_total", {{"model", models[s].name}, {"type", "output"}},
             est_out);
  }

  int64_t in_flight = 0, connections = 0;
  uint64_t retries = 0, injected = 0, connects = 0, reused = 0, no_endpoint = 0, accepted = 0;
  for (auto* w : workers) {
    in_flight += w->in_flight.load(std::memory_order_relaxed);
    connections += w->connections.load(std::memory_order_relaxed);
    retries += Load(w->retries);
    injected += Load(w->usage_injected);
    connects += Load(w->upstream_connects);
    reused += Load(w->upstream_reused);
    no_endpoint += Load(w->no_endpoint);
    accepted += Load(w->connections_total);
  }
  t.Family("tokenway_requests_in_flight", "gauge", "Inference requests being processed.");
  t.Sample("tokenway_requests_in_flight", {}, static_cast<double>(in_flight));
  t.Family("tokenway_client_connections", "gauge", "Open client connections.");
  t.Sample("tokenway_client_connections", {}, static_cast<double>(connections));
  t.Family("tokenway_client_connections_total", "counter", "Client connections accepted.");
  t.Sample("tokenway_client_connections_total", {}, accepted);
  t.Family("tokenway_retries_total", "counter",
           "Upstream attempts beyond the first (another endpoint, before any byte was sent).");
  t.Sample("tokenway_retries_total", {}, retries);
  t.Family("tokenway_usage_injected_total", "counter",
           "Streams for which tokenway asked the upstream for usage and stripped the usage "
           "chunk.");
  t.Sample("tokenway_usage_injected_total", {}, injected);
  t.Family("tokenway_upstream_connections_total", "counter",
           "Upstream connections used, by whether they were reused from the pool.");
  t.Sample("tokenway_upstream_connections_total", {{"reused", "false"}}, connects);
  t.Sample("tokenway_upstream_connections_total", {{"reused", "true"}}, reused);
  t.Family("tokenway_no_healthy_endpoint_total", "counter",
           "Requests answered 503 because their pool had no eligible endpoint.");
  t.Sample("tokenway_no_healthy_endpoint_total", {}, no_endpoint);
  t.Family("tokenway_upstream_errors_total", "counter", "Upstream failures by kind.");
  for (size_t k = 0; k < static_cast<size_t>(UpstreamError::kCount); ++k) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->upstream_errors[k]);
    t.Sample("tokenway_upstream_errors_total",
             {{"kind", UpstreamErrorName(static_cast<UpstreamError>(k))}}, v);
  }
  t.Family("tokenway_client_errors_total", "counter", "Bad or aborted client requests by kind.");
  for (size_t k = 0; k < static_cast<size_t>(ClientError::kCount); ++k) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->client_errors[k]);
    t.Sample("tokenway_client_errors_total",
             {{"kind", ClientErrorName(static_cast<ClientError>(k))}}, v);
  }

  int64_t epp_streams = 0;
  uint64_t epp_streams_total = 0;
  for (auto* w : workers) {
    epp_streams += w->epp_streams.load(std::memory_order_relaxed);
    epp_streams_total += Load(w->epp_streams_total);
  }
  t.Family("tokenway_epp_streams", "gauge",
           "Open ext_proc streams of the endpoint-picker front door.");
  t.Sample("tokenway_epp_streams", {}, static_cast<double>(epp_streams));
  t.Family("tokenway_epp_streams_total", "counter",
           "ext_proc streams the endpoint-picker front door accepted.");
  t.Sample("tokenway_epp_streams_total", {}, epp_streams_total);
  t.Family("tokenway_epp_messages_total", "counter",
           "ext_proc messages received by the endpoint-picker front door, by type.");
  for (size_t k = 0; k < kEppMessageKinds; ++k) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->epp_messages[k]);
    t.Sample("tokenway_epp_messages_total", {{"type", EppMessageName(k)}}, v);
  }
  t.Family("tokenway_epp_decisions_total", "counter",
           "Endpoint-picker requests by how their request side was answered.");
  for (size_t k = 0; k < static_cast<size_t>(EppDecision::kCount); ++k) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->epp_decisions[k]);
    t.Sample("tokenway_epp_decisions_total",
             {{"outcome", EppDecisionName(static_cast<EppDecision>(k))}}, v);
  }
  t.Family("tokenway_epp_protocol_errors_total", "counter",
           "ext_proc streams the endpoint-picker front door found at fault, by kind.");
  for (size_t k = 0; k < static_cast<size_t>(EppError::kCount); ++k) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->epp_errors[k]);
    t.Sample("tokenway_epp_protocol_errors_total",
             {{"kind", EppErrorName(static_cast<EppError>(k))}}, v);
  }

  // One sample per endpoint of every pool; `value` reads the endpoint's live state.
  auto per_endpoint = [&](const char* name, const char* type, const char* help, auto value) {
    t.Family(name, type, help);
    for (const PoolSeries& pool : in.pools) {
      for (const EndpointSeries& ep : pool.endpoints) {
        t.Sample(name, {{"pool", pool.name}, {"endpoint", ep.url}}, value(ep));
      }
    }
  };
  per_endpoint("tokenway_endpoint_in_flight", "gauge", "Requests in flight per endpoint.",
               [](const EndpointSeries& e) { return e.in_flight; });
  per_endpoint("tokenway_endpoint_healthy", "gauge",
               "1 when the endpoint passes active health checks.",
               [](const EndpointSeries& e) { return e.healthy ? 1.0 : 0.0; });
  per_endpoint("tokenway_endpoint_ejected", "gauge",
               "1 while the endpoint is ejected after consecutive failures.",
               [](const EndpointSeries& e) { return e.ejected ? 1.0 : 0.0; });
  per_endpoint("tokenway_endpoint_requests_total", "counter", "Upstream attempts per endpoint.",
               [](const EndpointSeries& e) { return e.requests_total; });
  per_endpoint("tokenway_endpoint_failures_total", "counter", "Failed attempts per endpoint.",
               [](const EndpointSeries& e) { return e.failures_total; });
  per_endpoint("tokenway_endpoint_ejections_total", "counter", "Passive ejections per endpoint.",
               [](const EndpointSeries& e) { return e.ejections_total; });
  per_endpoint("tokenway_endpoint_prefill_tokens", "gauge",
               "Estimated prompt tokens of in-flight requests not yet past prefill, per endpoint.",
               [](const EndpointSeries& e) { return e.prefill_tokens; });
  per_endpoint("tokenway_endpoint_decode_tokens", "gauge",
               "Estimated output tokens still to generate for in-flight requests, per endpoint.",
               [](const EndpointSeries& e) { return e.decode_tokens; });
  per_endpoint("tokenway_engine_signals_valid", "gauge",
               "1 while the endpoint's engine metrics are fresh and usable.",
               [](const EndpointSeries& e) { return e.engine_valid ? 1.0 : 0.0; });
  per_endpoint("tokenway_engine_waiting", "gauge", "Requests waiting in the engine (last scrape).",
               [](const EndpointSeries& e) { return e.engine_waiting; });
  per_endpoint("tokenway_engine_running", "gauge", "Requests running in the engine (last scrape).",
               [](const EndpointSeries& e) { return e.engine_running; });
  per_endpoint("tokenway_engine_kv_utilisation", "gauge",
               "Engine KV-cache utilisation, 0..1 (last scrape).",
               [](const EndpointSeries& e) { return e.engine_kv_utilisation; });
  per_endpoint("tokenway_engine_signals_age_seconds", "gauge",
               "Age of the endpoint's last successful engine scrape (-1: never scraped).",
               [](const EndpointSeries& e) { return e.engine_age_seconds; });
  per_endpoint("tokenway_engine_scrape_failures_total", "counter",
               "Engine /metrics scrapes that failed or were unusable.",
               [](const EndpointSeries& e) { return e.engine_scrape_failures_total; });
  per_endpoint("tokenway_engine_signals_stale_total", "counter",
               "Times an endpoint's engine signals aged past engine_metrics.stale_after.",
               [](const EndpointSeries& e) { return e.engine_stale_total; });

  // Per endpoint of the current configuration, from the per-worker slots.
  t.Family("tokenway_endpoint_responses_total", "counter",
           "Requests whose last attempt went to the endpoint, by pool, endpoint and status "
           "class of the answer.");
  for (const PoolSeries& pool : in.pools) {
    for (const EndpointSeries& ep : pool.endpoints) {
      for (size_t c = 0; c < kStatusClasses; ++c) {
        uint64_t v = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
          return w.endpoint_responses[ep.metrics_slot][c];
        });
        t.Sample("tokenway_endpoint_responses_total",
                 {{"pool", pool.name},
                  {"endpoint", ep.url},
                  {"class", StatusClassName(static_cast<StatusClass>(c))}},
                 v);
      }
    }
  }
  t.Family("tokenway_endpoint_tokens_total", "counter",
           "Tokens of successful requests by pool, endpoint and type; cached/input is the "
           "engine's real prefix-cache hit rate.");
  for (const PoolSeries& pool : in.pools) {
    for (const EndpointSeries& ep : pool.endpoints) {
      size_t i = 0;
      for (const char* type : {"input", "output", "cached"}) {
        uint64_t v = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
          return w.endpoint_tokens[ep.metrics_slot][i];
        });
        ++i;
        t.Sample("tokenway_endpoint_tokens_total",
                 {{"pool", pool.name}, {"endpoint", ep.url}, {"type", type}}, v);
      }
    }
  }
  using PoolFamilies = WorkerMetrics::PoolFamilies;
  auto per_pool_histogram = [&](const char* name, const char* help, std::span<const double> bounds,
                                double scale, auto member) {
    t.Family(name, "histogram", help);
    for (const PoolSeries& pool : in.pools) {
      scrape.Histogram(name, {{"pool", pool.name}}, bounds, scale,
                       [&](const WorkerMetrics& w) -> const Histogram& {
                         return w.pools[pool.metrics_slot].*member;
                       });
    }
  };
  per_pool_histogram("tokenway_pool_time_to_first_token_seconds",
                     "Time to the first token of successful streams, by pool.", kGenAiTtftBuckets,
                     1e6, &PoolFamilies::time_to_first_token);
  per_pool_histogram("tokenway_pool_time_per_output_token_seconds",
                     "Time per output token after the first of successful streams, by pool.",
                     kGenAiTpotBuckets, 1e6, &PoolFamilies::time_per_output_token);
  per_pool_histogram("tokenway_latency_prediction_ttft_error_ratio",
                     "Relative error |predicted - observed| / observed of the predicted TTFT of "
                     "the chosen endpoint, per finished stream, by pool (predicted-latency "
                     "scorer).",
                     kPredictionErrorBuckets, 1e6, &PoolFamilies::ttft_prediction_error);
  per_pool_histogram("tokenway_latency_prediction_tpot_error_ratio",
                     "Relative error of the predicted time per output token, as above.",
                     kPredictionErrorBuckets, 1e6, &PoolFamilies::tpot_prediction_error);
  t.Family("tokenway_slo_refused_total", "counter",
           "Sheddable requests refused (429 slo_unattainable) because no endpoint of the pool "
           "was predicted to serve them within their latency objective.");
  for (const PoolSeries& pool : in.pools) {
    t.Sample("tokenway_slo_refused_total", {{"pool", pool.name}},
             scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
               return w.pools[pool.metrics_slot].slo_refused;
             }));
  }
  per_pool_histogram("tokenway_picker_duration_seconds",
                     "Time the pool's picker took to choose an endpoint.", kPickerBuckets, 1e9,
                     &PoolFamilies::picker);
  t.Family("tokenway_prefix_affinity_blocks_total", "counter",
           "Prompt blocks looked up in the pool's prefix index at routing, by whether the chosen "
           "endpoint was estimated to hold them (the router's own hit estimate).");
  for (const PoolSeries& pool : in.pools) {
    uint64_t hit = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
      return w.pools[pool.metrics_slot].prefix_hit_blocks;
    });
    uint64_t miss = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
      return w.pools[pool.metrics_slot].prefix_miss_blocks;
    });
    t.Sample("tokenway_prefix_affinity_blocks_total", {{"pool", pool.name}, {"result", "hit"}},
             hit);
    t.Sample("tokenway_prefix_affinity_blocks_total", {{"pool", pool.name}, {"result", "miss"}},
             miss);
  }

  // Flow control, per flow-controlled pool.
  t.Family("tokenway_pool_saturated", "gauge",
           "1 while no endpoint of the pool has room (flow control).");
  for (const PoolSeries& pool : in.pools) {
    if (!pool.flow_controlled) continue;
    t.Sample("tokenway_pool_saturated", {{"pool", pool.name}}, pool.flow.saturated ? 1.0 : 0.0);
  }
  t.Family("tokenway_flow_queue_depth", "gauge",
           "Requests waiting for admission, by pool and priority band.");
  for (const PoolSeries& pool : in.pools) {
    if (!pool.flow_controlled) continue;
    for (const FlowSeries::Band& b : pool.flow.bands) {
      t.Sample("tokenway_flow_queue_depth",
               {{"pool", pool.name}, {"priority", std::to_string(b.priority)}},
               static_cast<double>(b.waiting));
    }
  }
  t.Family("tokenway_flow_requests_total", "counter",
           "Flow-control decisions by pool: dispatched at once, queued, released from the "
           "queue, shed (429), refused on a full queue (503), expired or abandoned in the queue.");
  for (const PoolSeries& pool : in.pools) {
    if (!pool.flow_controlled) continue;
    const FlowSeries& c = pool.flow;
    for (auto [outcome, counter] :
         {std::pair{"direct", c.dispatched_direct}, std::pair{"queued", c.queued},
          std::pair{"released", c.released}, std::pair{"shed", c.shed},
          std::pair{"queue_full", c.queue_full}, std::pair{"expired", c.expired}}) {
      t.Sample("tokenway_flow_requests_total", {{"pool", pool.name}, {"outcome", outcome}},
               counter);
    }
  }
  t.Family("tokenway_flow_queue_duration_seconds", "histogram",
           "Time queued requests waited for admission, by pool.");
  for (const PoolSeries& pool : in.pools) {
    if (!pool.flow_controlled) continue;
    const FlowSeries& c = pool.flow;
    // A caller's inconsistent bucket list is rendered as an empty histogram, never read past.
    size_t nb = c.queue_bounds.size();
    std::vector<uint64_t> counts(nb + 1, 0);
    if (c.queue_time_buckets.size() == nb + 1) counts = c.queue_time_buckets;
    t.Histogram("tokenway_flow_queue_duration_seconds", {{"pool", pool.name}},
                c.queue_bounds.data(), counts.data(), nb, counts[nb], c.queue_time_sum_seconds);
  }

  if (in.trace_section) in.trace_section(t);
  RenderAccessLogMetrics(t, in.access_log);
  // Autoscaling signals (control/scaling_signals.h), per pool.
  const std::vector<ScalingSeries>& scaling = in.scaling;
  auto per_pool_signal = [&](const char* name, const char* help, auto value) {
    t.Family(name, "gauge", help);
    for (const ScalingSeries& s : scaling) t.Sample(name, {{"pool", s.pool}}, value(s));
  };
  t.Family("tokenway_pool_token_throughput", "gauge",
           "Tokens per second of successful requests over the pool's autoscaling window, by "
           "type (input, output).");
  for (const ScalingSeries& s : scaling) {
    t.Sample("tokenway_pool_token_throughput", {{"pool", s.pool}, {"type", "input"}},
             s.input_tokens_per_second);
    t.Sample("tokenway_pool_token_throughput", {{"pool", s.pool}, {"type", "output"}},
             s.output_tokens_per_second);
  }
  per_pool_signal("tokenway_pool_queue_depth",
                  "Requests waiting for the pool: in the gateway's queue plus in the engines.",
                  [](const ScalingSeries& s) { return s.queue_depth; });
  per_pool_signal("tokenway_pool_saturation",
                  "Capacity-weighted saturation of the pool's ready endpoints, 0..1 (1 while "
                  "requests queue in the gateway).",
                  [](const ScalingSeries& s) { return s.saturation; });
  per_pool_signal("tokenway_pool_ready_endpoints", "Endpoints of the pool that take requests.",
                  [](const ScalingSeries& s) { return s.ready_endpoints; });
  per_pool_signal("tokenway_pool_desired_replicas",
                  "Recommended endpoints (of capacity 1.0) for the pool's measured load.",
                  [](const ScalingSeries& s) { return s.desired_replicas; });
  if (in.keda_section) in.keda_section(t);

  if (in.governance_section) in.governance_section(t);
  if (in.payload_section) in.payload_section(t);
  if (in.semantic_section) in.semantic_section(t);
  if (in.discovery_section) in.discovery_section(t);
  if (in.rollout_section) in.rollout_section(t);
  t.Family("tokenway_config_reloads_total", "counter", "Configuration reloads by result.");
  t.Sample("tokenway_config_reloads_total", {{"result", "success"}}, in.reloads_ok);
  t.Sample("tokenway_config_reloads_total", {{"result", "failure"}}, in.reloads_failed);
  t.Family("tokenway_config_generation", "gauge", "Generation of the configuration in use.");
  t.Sample("tokenway_config_generation", {}, static_cast<double>(in.generation));
  t.Family("tokenway_workers", "gauge", "Worker threads serving the data plane.");
  t.Sample("tokenway_workers", {}, static_cast<double>(workers.size()));
  return std::move(t.str());
}

}  // namespace tokenway
