#include "gateway/admin_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <span>

#include "common/duration.h"
#include "common/json_writer.h"
#include "common/request_inspector.h"
#include "control/discovery.h"
#include "control/scaling_signals.h"
#include "gateway/status_page.h"
#include "gateway/worker.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

AdminServer::AdminServer(asio::io_context& ioc, AdminView view)
    : ioc_(ioc), acceptor_(ioc), view_(std::move(view)) {}

tcp::endpoint AdminServer::Listen(const tcp::endpoint& at) {
  acceptor_.open(at.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(at);
  acceptor_.listen();
  return acceptor_.local_endpoint();
}

void AdminServer::Start() {
  asio::co_spawn(ioc_, AcceptLoop(), asio::detached);
}

void AdminServer::Stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> AdminServer::AcceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    asio::co_spawn(ioc_, Serve(std::move(socket)), asio::detached);
  }
}

bool AdminServer::Ready(std::string& reason) const {
  if (view_.shared->draining.load()) {
    reason = "draining";
    return false;
  }
  if (view_.discovery && !view_.discovery->Ready(reason)) return false;
  auto rt = view_.runtime();
  int64_t now = MonotonicNanos();
  for (const auto& pool : rt->pools) {
    bool any = false;
    for (const auto& ep : pool->endpoints) any = any || ep.state->Eligible(now);
    if (!any) {
      reason = "pool '" + pool->name + "' has no healthy endpoint";
      return false;
    }
  }
  return true;
}

asio::awaitable<void> AdminServer::Serve(tcp::socket socket) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    stream.expires_after(std::chrono::seconds(30));
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(stream, buffer, req, kNoThrow);
    if (ec) co_return;
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    std::string_view target(req.target().data(), req.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    res.result(http::status::ok);
    res.set(http::field::content_type, "application/json");
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.body() =
          R"({"error":{"message":"use GET","type":"invalid_request_error","param":null,"code":"method_not_allowed"}})";
    } else if (path == "/") {
      res.set(http::field::content_type, "text/html; charset=utf-8");
      // Everything the page needs is inline; it may only talk back to this listener.
      res.set("Content-Security-Policy",
              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
              "img-src data:; connect-src 'self'");
      res.set(http::field::cache_control, "no-cache");
      res.body() = StatusPageHtml();
    } else if (path == "/healthz") {
      res.body() = R"({"status":"ok"})";
    } else if (path == "/readyz") {
      std::string reason;
      if (Ready(reason)) {
        res.body() = R"({"status":"ready")";
      } else {
        res.result(http::status::service_unavailable);
        res.body() = "{\"status\":\"not ready\",\"reason\":";
        AppendJsonString(res.body(), reason);
      }
      // How current each discovering pool's view of Kubernetes is.
      if (view_.discovery && view_.discovery->active()) {
        res.body().push_back(',');
        view_.discovery->AppendStatusJson(res.body());
      }
      res.body().push_back('}');
    } else if (path == "/metrics") {
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = RenderMetrics();
    } else if (path == "/admin/endpoints") {
      res.body() = RenderEndpoints();
    } else if (path == "/admin/config") {
      res.body() = view_.runtime()->config_json;
    } else {
      res.result(http::status::not_found);
      res.body() =
          R"({"error":{"message":"unknown admin path","type":"invalid_request_error","param":null,"code":"not_found"}})";
    }
    res.prepare_payload();
    // HEAD: the same headers (Content-Length included) and no body.
    if (req.method() == http::verb::head) res.body().clear();
    auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
    if (wec || !res.keep_alive()) co_return;
  }
}

std::string AdminServer::RenderEndpoints() const {
  auto rt = view_.runtime();
  int64_t now = MonotonicNanos();
  std::vector<PoolScalingSignals> scaling;
  if (view_.scaling) scaling = view_.scaling->Current();
  std::string o = "{\"generation\":" + std::to_string(rt->generation) + ",\"pools\":[";
  for (size_t p = 0; p < rt->pools.size(); ++p) {
    const Pool& pool = *rt->pools[p];
    if (p) o.push_back(',');
    o.append("{\"name\":");
    AppendJsonString(o, pool.name);
    o.append(",\"policy\":");
    AppendJsonString(o, pool.picker->name());
    for (const PoolScalingSignals& s : scaling) {
      if (s.pool != pool.name) continue;
      o.append(",\"scaling\":{\"input_tokens_per_second\":");
      AppendJsonDouble(o, s.input_tokens_per_second);
      o.append(",\"output_tokens_per_second\":");
      AppendJsonDouble(o, s.output_tokens_per_second);
      o.append(",\"queue_depth\":");
      AppendJsonDouble(o, s.queue_depth);
      o.append(",\"saturation\":");
      AppendJsonDouble(o, s.saturation);
      o.append(",\"ready_endpoints\":").append(std::to_string(s.ready_endpoints));
      o.append(",\"desired_replicas\":").append(std::to_string(s.desired_replicas));
      o.push_back('}');
    }
    if (pool.flow) {
      o.append(",\"flow_control\":{\"saturated\":")
          .append(FlowController::HasRoom(pool.flow_view(), now) ? "false" : "true");
      o.append(",\"waiting\":").append(std::to_string(pool.flow->waiting()));
      o.append(",\"bands\":[");
      bool first = true;
      for (const auto& b : pool.flow->Depths()) {
        if (!first) o.push_back(',');
        first = false;
        o.append("{\"priority\":").append(std::to_string(b.priority));
        o.append(",\"waiting\":").append(std::to_string(b.waiting));
        o.append(",\"flows\":").append(std::to_string(b.flows)).push_back('}');
      }
      o.append("]}");
    }
    o.append(",\"endpoints\":[");
    for (size_t i = 0; i < pool.endpoints.size(); ++i) {
      const PoolEndpoint& pe = pool.endpoints[i];
      const EndpointState& s = *pe.state;
      if (i) o.push_back(',');
      int64_t until = s.ejected_until_ns.load();
      o.append("{\"url\":");
      AppendJsonString(o, s.url);
      o.append(",\"healthy\":").append(s.healthy.load() ? "true" : "false");
      o.append(",\"ejected\":").append(s.Ejected(now) ? "true" : "false");
      o.append(",\"ejected_for_ms\":")
          .append(std::to_string(until > now ? (until - now) / 1000000 : 0));
      o.append(",\"eligible\":").append(s.Eligible(now) ? "true" : "false");
      o.append(",\"in_flight\":").append(std::to_string(s.in_flight.load()));
      o.append(",\"prefill_tokens\":").append(std::to_string(s.prefill_tokens.load()));
      o.append(",\"decode_tokens\":").append(std::to_string(s.decode_tokens.load()));
      o.append(",\"requests_total\":").append(std::to_string(s.requests_total.load()));
      o.append(",\"failures_total\":").append(std::to_string(s.failures_total.load()));
      o.append(",\"consecutive_failures\":").append(std::to_string(s.consecutive_failures.load()));
      o.append(",\"ejections_total\":").append(std::to_string(s.ejections_total.load()));
      o.append(",\"accelerator\":");
      if (pe.accelerator.empty()) {
        o.append("null");
      } else {
        AppendJsonString(o, pe.accelerator);
      }
      o.append(",\"capacity\":");
      AppendJsonDouble(o, s.capacity.load());
      const EngineSignals& e = s.engine;
      int64_t updated = e.updated_at_ns.load();
      o.append(",\"engine\":{\"kind\":");
      AppendJsonString(o, EngineKindName(pe.engine));
      o.append(",\"valid\":").append(e.valid.load() ? "true" : "false");
      o.append(",\"age_ms\":")
          .append(updated == 0 ? std::string("null") : std::to_string((now - updated) / 1000000));
      o.append(",\"waiting\":").append(std::to_string(e.waiting.load()));
      o.append(",\"running\":").append(std::to_string(e.running.load()));
      o.append(",\"kv_utilisation\":").append(std::to_string(e.kv_utilisation.load()));
      o.append(",\"running_loras\":").append(std::to_string(e.running_lora_count.load()));
      o.append(",\"waiting_loras\":").append(std::to_string(e.waiting_lora_count.load()));
      o.append(",\"max_lora\":").append(std::to_string(e.max_lora.load()));
      o.append(",\"block_size\":").append(std::to_string(e.block_size.load()));
      o.append(",\"scrapes_total\":").append(std::to_string(e.scrapes_total.load()));
      o.append(",\"scrape_failures_total\":")
          .append(std::to_string(e.scrape_failures_total.load()));
      o.append(",\"stale_total\":").append(std::to_string(e.stale_total.load()));
      o.append("}}");
    }
    o.append("]}");
  }
  o.append("]}");
  return o;
}

namespace {

uint64_t Load(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

// One scrape: sums per-worker values at read time.
struct Scrape {
  PrometheusText& t;
  const std::vector<WorkerMetrics*>& workers;

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
void WriteGenAi(Scrape& scrape, const std::vector<std::string>& models, const Runtime& rt) {
  PrometheusText& t = scrape.t;
  using GenAi = WorkerMetrics::GenAi;
  struct Series {
    std::string_view model;
    std::string_view provider;
    size_t slot;
  };
  std::vector<Series> series;
  for (size_t s = 0; s < models.size(); ++s) {
    if (const ModelRoute* route = rt.FindModel(models[s])) {
      series.push_back({models[s], EngineKindName(route->pool->engine), s});
    }
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

}  // namespace

std::string AdminServer::RenderMetrics() const {
  PrometheusText t;
  const auto& workers = view_.metrics;
  std::vector<std::string> models = view_.slots->models.Names();
  auto rt = view_.runtime();
  int64_t now = MonotonicNanos();
  // The pool each configured model is served by (models no longer configured: none).
  std::vector<std::string_view> model_pool(models.size());
  for (size_t s = 0; s < models.size(); ++s) {
    if (const ModelRoute* route = rt->FindModel(models[s])) model_pool[s] = route->pool->name;
  }

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
               {{"model", models[s]}, {"pool", model_pool[s]}, {"code", code_text}}, v);
    }
  }
  t.Family("tokenway_request_duration_seconds", "histogram",
           "Time from the request's arrival to its last response byte.");
  for (size_t s = 0; s < models.size(); ++s) {
    scrape.Histogram("tokenway_request_duration_seconds", {{"model", models[s]}}, kLatencyBuckets,
                     1e6,
                     [&](const WorkerMetrics& w) -> const Histogram& { return w.duration[s]; });
  }
  t.Family("tokenway_time_to_first_byte_seconds", "histogram",
           "Time from the request's arrival to the first response byte sent to the client "
           "(for streams: the first event).");
  for (size_t s = 0; s < models.size(); ++s) {
    scrape.Histogram(
        "tokenway_time_to_first_byte_seconds", {{"model", models[s]}}, kLatencyBuckets, 1e6,
        [&](const WorkerMetrics& w) -> const Histogram& { return w.time_to_first_byte[s]; });
  }
  WriteGenAi(scrape, models, *rt);

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
               {{"model", models[s]}, {"pool", model_pool[s]}, {"type", type}}, v);
    }
  }
  t.Family("tokenway_requests_without_usage_total", "counter",
           "Successful requests whose token usage could not be determined.");
  for (size_t s = 0; s < models.size(); ++s) {
    uint64_t v = 0;
    for (auto* w : workers) v += Load(w->usage_unknown[s]);
    if (v) t.Sample("tokenway_requests_without_usage_total", {{"model", models[s]}}, v);
  }
  t.Family("tokenway_estimated_tokens_total", "counter",
           "Tokens of successful requests without usage, as estimated by tokenway (input: the "
           "token estimator on the prompt; output: content events relayed).");
  for (size_t s = 0; s < models.size(); ++s) {
    uint64_t in = 0, out = 0;
    for (auto* w : workers) {
      in += Load(w->estimated_tokens[s][0]);
      out += Load(w->estimated_tokens[s][1]);
    }
    if (in + out == 0) continue;
    t.Sample("tokenway_estimated_tokens_total", {{"model", models[s]}, {"type", "input"}}, in);
    t.Sample("tokenway_estimated_tokens_total", {{"model", models[s]}, {"type", "output"}}, out);
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

  // One sample per endpoint of every pool; `value` reads the endpoint's live state.
  auto per_endpoint = [&](const char* name, const char* type, const char* help, auto value) {
    t.Family(name, type, help);
    for (const auto& pool : rt->pools) {
      for (const auto& ep : pool->endpoints) {
        t.Sample(name, {{"pool", pool->name}, {"endpoint", ep.url}}, value(*ep.state));
      }
    }
  };
  per_endpoint("tokenway_endpoint_in_flight", "gauge", "Requests in flight per endpoint.",
               [](const EndpointState& s) { return static_cast<double>(s.in_flight.load()); });
  per_endpoint("tokenway_endpoint_healthy", "gauge",
               "1 when the endpoint passes active health checks.",
               [](const EndpointState& s) { return s.healthy.load() ? 1.0 : 0.0; });
  per_endpoint("tokenway_endpoint_ejected", "gauge",
               "1 while the endpoint is ejected after consecutive failures.",
               [&](const EndpointState& s) { return s.Ejected(now) ? 1.0 : 0.0; });
  per_endpoint("tokenway_endpoint_requests_total", "counter", "Upstream attempts per endpoint.",
               [](const EndpointState& s) { return Load(s.requests_total); });
  per_endpoint("tokenway_endpoint_failures_total", "counter", "Failed attempts per endpoint.",
               [](const EndpointState& s) { return Load(s.failures_total); });
  per_endpoint("tokenway_endpoint_ejections_total", "counter", "Passive ejections per endpoint.",
               [](const EndpointState& s) { return Load(s.ejections_total); });
  per_endpoint("tokenway_endpoint_prefill_tokens", "gauge",
               "Estimated prompt tokens of in-flight requests not yet past prefill, per endpoint.",
               [](const EndpointState& s) { return static_cast<double>(s.prefill_tokens.load()); });
  per_endpoint("tokenway_endpoint_decode_tokens", "gauge",
               "Estimated output tokens still to generate for in-flight requests, per endpoint.",
               [](const EndpointState& s) { return static_cast<double>(s.decode_tokens.load()); });
  per_endpoint("tokenway_engine_signals_valid", "gauge",
               "1 while the endpoint's engine metrics are fresh and usable.",
               [](const EndpointState& s) { return s.engine.valid.load() ? 1.0 : 0.0; });
  per_endpoint("tokenway_engine_waiting", "gauge", "Requests waiting in the engine (last scrape).",
               [](const EndpointState& s) { return static_cast<double>(s.engine.waiting.load()); });
  per_endpoint("tokenway_engine_running", "gauge", "Requests running in the engine (last scrape).",
               [](const EndpointState& s) { return static_cast<double>(s.engine.running.load()); });
  per_endpoint(
      "tokenway_engine_kv_utilisation", "gauge", "Engine KV-cache utilisation, 0..1 (last scrape).",
      [](const EndpointState& s) { return static_cast<double>(s.engine.kv_utilisation.load()); });
  per_endpoint("tokenway_engine_signals_age_seconds", "gauge",
               "Age of the endpoint's last successful engine scrape (-1: never scraped).",
               [&](const EndpointState& s) {
                 int64_t at = s.engine.updated_at_ns.load(std::memory_order_relaxed);
                 return at == 0 ? -1.0 : static_cast<double>(now - at) / 1e9;
               });
  per_endpoint("tokenway_engine_scrape_failures_total", "counter",
               "Engine /metrics scrapes that failed or were unusable.",
               [](const EndpointState& s) { return Load(s.engine.scrape_failures_total); });
  per_endpoint("tokenway_engine_signals_stale_total", "counter",
               "Times an endpoint's engine signals aged past engine_metrics.stale_after.",
               [](const EndpointState& s) { return Load(s.engine.stale_total); });

  // Per endpoint of the current configuration, from the per-worker slots.
  t.Family("tokenway_endpoint_responses_total", "counter",
           "Requests whose last attempt went to the endpoint, by pool, endpoint and status "
           "class of the answer.");
  for (const auto& pool : rt->pools) {
    for (const auto& ep : pool->endpoints) {
      for (size_t c = 0; c < kStatusClasses; ++c) {
        uint64_t v = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
          return w.endpoint_responses[ep.metrics_slot][c];
        });
        t.Sample("tokenway_endpoint_responses_total",
                 {{"pool", pool->name},
                  {"endpoint", ep.url},
                  {"class", StatusClassName(static_cast<StatusClass>(c))}},
                 v);
      }
    }
  }
  t.Family("tokenway_endpoint_tokens_total", "counter",
           "Tokens of successful requests by pool, endpoint and type; cached/input is the "
           "engine's real prefix-cache hit rate.");
  for (const auto& pool : rt->pools) {
    for (const auto& ep : pool->endpoints) {
      size_t i = 0;
      for (const char* type : {"input", "output", "cached"}) {
        uint64_t v = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
          return w.endpoint_tokens[ep.metrics_slot][i];
        });
        ++i;
        t.Sample("tokenway_endpoint_tokens_total",
                 {{"pool", pool->name}, {"endpoint", ep.url}, {"type", type}}, v);
      }
    }
  }
  using PoolFamilies = WorkerMetrics::PoolFamilies;
  auto per_pool_histogram = [&](const char* name, const char* help, std::span<const double> bounds,
                                double scale, auto member) {
    t.Family(name, "histogram", help);
    for (const auto& pool : rt->pools) {
      scrape.Histogram(name, {{"pool", pool->name}}, bounds, scale,
                       [&](const WorkerMetrics& w) -> const Histogram& {
                         return w.pools[pool->metrics_slot].*member;
                       });
    }
  };
  per_pool_histogram("tokenway_pool_time_to_first_token_seconds",
                     "Time to the first token of successful streams, by pool.", kGenAiTtftBuckets,
                     1e6, &PoolFamilies::time_to_first_token);
  per_pool_histogram("tokenway_pool_time_per_output_token_seconds",
                     "Time per output token after the first of successful streams, by pool.",
                     kGenAiTpotBuckets, 1e6, &PoolFamilies::time_per_output_token);
  per_pool_histogram("tokenway_picker_duration_seconds",
                     "Time the pool's picker took to choose an endpoint.", kPickerBuckets, 1e9,
                     &PoolFamilies::picker);
  t.Family("tokenway_prefix_affinity_blocks_total", "counter",
           "Prompt blocks looked up in the pool's prefix index at routing, by whether the chosen "
           "endpoint was estimated to hold them (the router's own hit estimate).");
  for (const auto& pool : rt->pools) {
    uint64_t hit = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
      return w.pools[pool->metrics_slot].prefix_hit_blocks;
    });
    uint64_t miss = scrape.Sum([&](const WorkerMetrics& w) -> const std::atomic<uint64_t>& {
      return w.pools[pool->metrics_slot].prefix_miss_blocks;
    });
    t.Sample("tokenway_prefix_affinity_blocks_total", {{"pool", pool->name}, {"result", "hit"}},
             hit);
    t.Sample("tokenway_prefix_affinity_blocks_total", {{"pool", pool->name}, {"result", "miss"}},
             miss);
  }

  // Flow control, per flow-controlled pool.
  t.Family("tokenway_pool_saturated", "gauge",
           "1 while no endpoint of the pool has room (flow control).");
  for (const auto& pool : rt->pools) {
    if (!pool->flow) continue;
    t.Sample("tokenway_pool_saturated", {{"pool", pool->name}},
             FlowController::HasRoom(pool->flow_view(), now) ? 0.0 : 1.0);
  }
  t.Family("tokenway_flow_queue_depth", "gauge",
           "Requests waiting for admission, by pool and priority band.");
  for (const auto& pool : rt->pools) {
    if (!pool->flow) continue;
    for (const auto& b : pool->flow->Depths()) {
      t.Sample("tokenway_flow_queue_depth",
               {{"pool", pool->name}, {"priority", std::to_string(b.priority)}},
               static_cast<double>(b.waiting));
    }
  }
  t.Family("tokenway_flow_requests_total", "counter",
           "Flow-control decisions by pool: dispatched at once, queued, released from the "
           "queue, shed (429), refused on a full queue (503), expired or abandoned in the queue.");
  for (const auto& pool : rt->pools) {
    if (!pool->flow) continue;
    const auto& c = pool->flow->counters();
    for (auto [outcome, counter] :
         {std::pair{"direct", &c.dispatched_direct}, std::pair{"queued", &c.queued},
          std::pair{"released", &c.released}, std::pair{"shed", &c.shed},
          std::pair{"queue_full", &c.queue_full}, std::pair{"expired", &c.expired}}) {
      t.Sample("tokenway_flow_requests_total", {{"pool", pool->name}, {"outcome", outcome}},
               Load(*counter));
    }
  }
  t.Family("tokenway_flow_queue_duration_seconds", "histogram",
           "Time queued requests waited for admission, by pool.");
  for (const auto& pool : rt->pools) {
    if (!pool->flow) continue;
    const auto& c = pool->flow->counters();
    constexpr size_t nb = FlowController::kQueueBuckets.size();
    uint64_t counts[nb + 1] = {};
    for (size_t b = 0; b <= nb; ++b) counts[b] = Load(c.queue_time_buckets[b]);
    t.Histogram("tokenway_flow_queue_duration_seconds", {{"pool", pool->name}},
                FlowController::kQueueBuckets.data(), counts, nb, counts[nb],
                static_cast<double>(Load(c.queue_time_sum_us)) / 1e6);
  }

  RenderTraceMetrics(t, view_.shared ? view_.shared->traces.get() : nullptr);
  RenderAccessLogMetrics(t, view_.shared ? view_.shared->access_log.get() : nullptr);
  // Autoscaling signals (control/scaling_signals.h), per pool.
  std::vector<PoolScalingSignals> scaling;
  if (view_.scaling) scaling = view_.scaling->Current();
  auto per_pool_signal = [&](const char* name, const char* help, auto value) {
    t.Family(name, "gauge", help);
    for (const PoolScalingSignals& s : scaling) t.Sample(name, {{"pool", s.pool}}, value(s));
  };
  t.Family("tokenway_pool_token_throughput", "gauge",
           "Tokens per second of successful requests over the pool's autoscaling window, by "
           "type (input, output).");
  for (const PoolScalingSignals& s : scaling) {
    t.Sample("tokenway_pool_token_throughput", {{"pool", s.pool}, {"type", "input"}},
             s.input_tokens_per_second);
    t.Sample("tokenway_pool_token_throughput", {{"pool", s.pool}, {"type", "output"}},
             s.output_tokens_per_second);
  }
  per_pool_signal("tokenway_pool_queue_depth",
                  "Requests waiting for the pool: in the gateway's queue plus in the engines.",
                  [](const PoolScalingSignals& s) { return s.queue_depth; });
  per_pool_signal("tokenway_pool_saturation",
                  "Capacity-weighted saturation of the pool's ready endpoints, 0..1 (1 while "
                  "requests queue in the gateway).",
                  [](const PoolScalingSignals& s) { return s.saturation; });
  per_pool_signal("tokenway_pool_ready_endpoints", "Endpoints of the pool that take requests.",
                  [](const PoolScalingSignals& s) { return double(s.ready_endpoints); });
  per_pool_signal("tokenway_pool_desired_replicas",
                  "Recommended endpoints (of capacity 1.0) for the pool's measured load.",
                  [](const PoolScalingSignals& s) { return double(s.desired_replicas); });

  if (rt->governance) rt->governance->state->RenderMetrics(t, rt->governance.get());
  if (view_.discovery) view_.discovery->RenderMetrics(t);
  t.Family("tokenway_config_reloads_total", "counter", "Configuration reloads by result.");
  t.Sample("tokenway_config_reloads_total", {{"result", "success"}}, Load(*view_.reloads_ok));
  t.Sample("tokenway_config_reloads_total", {{"result", "failure"}}, Load(*view_.reloads_failed));
  t.Family("tokenway_config_generation", "gauge", "Generation of the configuration in use.");
  t.Sample("tokenway_config_generation", {}, static_cast<double>(rt->generation));
  t.Family("tokenway_workers", "gauge", "Worker threads serving the data plane.");
  t.Sample("tokenway_workers", {}, static_cast<double>(workers.size()));
  return std::move(t.str());
}

}  // namespace tokenway
