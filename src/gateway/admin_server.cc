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

#include "common/duration.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "common/openai_error.h"
#include "common/request_inspector.h"
#include "control/discovery.h"
#include "control/scaling_signals.h"
#include "gateway/keda_scaler.h"
#include "gateway/status_page.h"
#include "gateway/worker.h"
#include "governance/limiter.h"
#include "payload/payload_metrics.h"
#include "rollout/rollout_controller.h"
#include "semantic/semantic_metrics.h"
#include "telemetry/metrics_exposition.h"

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

constexpr std::string_view kRolloutsPath = "/admin/rollouts";

// %XX escapes of a path segment (a model name may hold '/', sent as %2F) or, with plus_is_space,
// of a query value; false when malformed.
bool PercentDecode(std::string_view in, std::string& out, bool plus_is_space = false) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(plus_is_space && in[i] == '+' ? ' ' : in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

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
    const bool rollout_action = path.size() > kRolloutsPath.size() + 1 &&
                                path.starts_with(kRolloutsPath) &&
                                path[kRolloutsPath.size()] == '/';
    const bool cache_purge = path == "/admin/cache/purge";
    if (rollout_action || cache_purge) {
      if (req.method() != http::verb::post) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "POST");
        AppendOpenAiError(res.body(), "use POST", "invalid_request_error", "",
                          "method_not_allowed");
      } else {
        if (cache_purge) {
          http::status status = http::status::ok;
          PurgeCache(target, status, res.body());
          res.result(status);
        } else {
          auto [status, body] = RolloutAction(path.substr(kRolloutsPath.size() + 1));
          res.result(static_cast<http::status>(status));
          res.body() = std::move(body);
        }
      }
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      AppendOpenAiError(res.body(), "use GET", "invalid_request_error", "", "method_not_allowed");
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
      const bool ready = Ready(reason);
      if (!ready) res.result(http::status::service_unavailable);
      JsonWriter w(res.body());
      w.BeginObject().Key("status").String(ready ? "ready" : "not ready");
      if (!ready) w.Key("reason").String(reason);
      // How current each discovering pool's view of Kubernetes is.
      if (view_.discovery && view_.discovery->active()) view_.discovery->WriteStatusJson(w);
      w.EndObject();
    } else if (path == "/metrics") {
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = RenderMetrics();
    } else if (path == "/admin/endpoints") {
      res.body() = RenderEndpoints();
    } else if (path == "/admin/config") {
      res.body() = view_.runtime()->config_json;
    } else if (path == kRolloutsPath) {
      res.body() = RenderRollouts();
    } else {
      res.result(http::status::not_found);
      AppendOpenAiError(res.body(), "unknown admin path", "invalid_request_error", "", "not_found");
    }
    res.prepare_payload();
    // HEAD: the same headers (Content-Length included) and no body.
    if (req.method() == http::verb::head) res.body().clear();
    auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
    if (wec || !res.keep_alive()) co_return;
  }
}

std::string AdminServer::RenderRollouts() const {
  std::string out;
  JsonWriter w(out);
  if (view_.rollouts) {
    view_.rollouts->WriteStatusJson(w, UnixMillis());
  } else {
    w.BeginObject().Key("state_file").Null().Key("rollouts").BeginArray().EndArray().EndObject();
  }
  return out;
}

std::pair<int, std::string> AdminServer::RolloutAction(std::string_view rest) {
  std::string body;
  const size_t slash = rest.rfind('/');
  std::string model;
  if (slash == std::string_view::npos || slash == 0 ||
      !PercentDecode(rest.substr(0, slash), model)) {
    if (view_.rollouts) view_.rollouts->CountInvalidAction();
    AppendOpenAiError(body, "expected /admin/rollouts/<model>/<pause|resume|promote|abort>",
                      "invalid_request_error", "", "not_found");
    return {404, body};
  }
  auto action = ParseRolloutAction(rest.substr(slash + 1));
  if (!action) {
    if (view_.rollouts) view_.rollouts->CountInvalidAction();
    AppendOpenAiError(body,
                      "unknown rollout action '" + std::string(rest.substr(slash + 1)) +
                          "' (pause, resume, promote, abort)",
                      "invalid_request_error", "", "not_found");
    return {404, body};
  }
  if (!view_.rollouts) {
    AppendOpenAiError(body, "no rollout for model '" + model + "'", "invalid_request_error", "",
                      "not_found");
    return {404, body};
  }
  RolloutActionResult result = view_.rollouts->Act(model, *action, UnixMillis());
  if (result.http_status != 200) {
    AppendOpenAiError(body, result.message, "invalid_request_error", "",
                      result.http_status == 404 ? "not_found" : "conflict");
    return {result.http_status, body};
  }
  JsonWriter w(body);
  w.BeginObject().Key("model").String(model).Key("state").String(result.message).EndObject();
  return {200, body};
}

namespace {

// The value of query parameter `name` in `target`, percent-decoded ('+' is a space); false when
// it is malformed. Absent: true with an empty value.
bool QueryParam(std::string_view target, std::string_view name, std::string& value) {
  value.clear();
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return true;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return PercentDecode(raw, value, /*plus_is_space=*/true);
  }
  return true;
}

}  // namespace

void AdminServer::PurgeCache(std::string_view target, http::status& status,
                             std::string& body) const {
  std::string tenant, model;
  if (!QueryParam(target, "tenant", tenant) || !QueryParam(target, "model", model)) {
    status = http::status::bad_request;
    AppendOpenAiError(body, "tenant and model must be percent-encoded", "invalid_request_error", "",
                      "bad_query");
    return;
  }
  ResponseCache* cache = view_.shared ? view_.shared->cache.get() : nullptr;
  if (!cache) {
    status = http::status::not_found;
    AppendOpenAiError(body, "the response cache is not running", "invalid_request_error", "",
                      "cache_off");
    return;
  }
  const ResponseCache::Purged p = cache->Purge(tenant, model);
  LogInfo("cache purge (tenant '" + tenant + "', model '" + model +
          "'): " + std::to_string(p.memory) + " entries in process, " + std::to_string(p.redis) +
          " in Redis" + (p.redis_error.empty() ? "" : " (" + p.redis_error + ")"));
  if (!p.redis_error.empty()) status = http::status::bad_gateway;
  JsonWriter w(body);
  w.BeginObject();
  w.Key("tenant").String(tenant).Key("model").String(model);
  w.Key("purged").Uint(p.memory).Key("purged_redis").Uint(p.redis);
  w.Key("purged_semantic").Uint(p.semantic);
  if (!p.redis_error.empty()) w.Key("error").String(p.redis_error);
  w.EndObject();
}

std::string AdminServer::RenderEndpoints() const {
  auto rt = view_.runtime();
  int64_t now = MonotonicNanos();
  std::vector<PoolScalingSignals> scaling;
  if (view_.scaling) scaling = view_.scaling->Current();
  std::string out;
  JsonWriter w(out);
  w.BeginObject().Key("generation").Uint(rt->generation).Key("pools").BeginArray();
  for (const auto& pool_ptr : rt->pools) {
    const Pool& pool = *pool_ptr;
    w.BeginObject();
    w.Key("name").String(pool.name);
    w.Key("policy").String(pool.picker->name());
    for (const PoolScalingSignals& s : scaling) {
      if (s.pool != pool.name) continue;
      w.Key("scaling").BeginObject();
      w.Key("input_tokens_per_second").Double(s.input_tokens_per_second);
      w.Key("output_tokens_per_second").Double(s.output_tokens_per_second);
      w.Key("queue_depth").Double(s.queue_depth);
      w.Key("saturation").Double(s.saturation);
      w.Key("ready_endpoints").Uint(s.ready_endpoints);
      w.Key("desired_replicas").Uint(s.desired_replicas);
      w.EndObject();
    }
    if (pool.flow) {
      w.Key("flow_control").BeginObject();
      w.Key("saturated").Bool(!FlowController::HasRoom(pool.flow_view(), now));
      w.Key("waiting").Uint(pool.flow->waiting());
      w.Key("bands").BeginArray();
      for (const auto& b : pool.flow->Depths()) {
        w.BeginObject()
            .Key("priority")
            .Int(b.priority)
            .Key("waiting")
            .Uint(b.waiting)
            .Key("flows")
            .Uint(b.flows)
            .EndObject();
      }
      w.EndArray().EndObject();
    }
    w.Key("endpoints").BeginArray();
    for (const PoolEndpoint& pe : pool.endpoints) {
      const EndpointState& s = *pe.state;
      int64_t until = s.ejected_until_ns.load();
      w.BeginObject();
      w.Key("url").String(s.url);
      w.Key("healthy").Bool(s.healthy.load());
      w.Key("ejected").Bool(s.Ejected(now));
      w.Key("ejected_for_ms").Int(until > now ? (until - now) / 1000000 : 0);
      w.Key("eligible").Bool(s.Eligible(now));
      w.Key("in_flight").Int(s.in_flight.load());
      w.Key("prefill_tokens").Int(s.prefill_tokens.load());
      w.Key("decode_tokens").Int(s.decode_tokens.load());
      w.Key("requests_total").Uint(s.requests_total.load());
      w.Key("failures_total").Uint(s.failures_total.load());
      w.Key("consecutive_failures").Uint(s.consecutive_failures.load());
      w.Key("ejections_total").Uint(s.ejections_total.load());
      w.Key("accelerator");
      if (pe.accelerator.empty()) {
        w.Null();
      } else {
        w.String(pe.accelerator);
      }
      w.Key("capacity").Double(s.capacity.load());
      const EngineSignals& e = s.engine;
      int64_t updated = e.updated_at_ns.load();
      w.Key("engine").BeginObject();
      w.Key("kind").String(EngineKindName(pe.engine));
      w.Key("valid").Bool(e.valid.load());
      w.Key("age_ms");
      if (updated == 0) {
        w.Null();
      } else {
        w.Int((now - updated) / 1000000);
      }
      w.Key("waiting").Int(e.waiting.load());
      w.Key("running").Int(e.running.load());
      w.Key("kv_utilisation").Number(e.kv_utilisation.load());
      w.Key("running_loras").Uint(e.running_lora_count.load());
      w.Key("waiting_loras").Uint(e.waiting_lora_count.load());
      w.Key("max_lora").Uint(e.max_lora.load());
      w.Key("block_size").Uint(e.block_size.load());
      w.Key("scrapes_total").Uint(e.scrapes_total.load());
      w.Key("scrape_failures_total").Uint(e.scrape_failures_total.load());
      w.Key("stale_total").Uint(e.stale_total.load());
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

std::string AdminServer::RenderMetrics() const {
  auto rt = view_.runtime();
  int64_t now = MonotonicNanos();
  std::vector<std::string> models = view_.slots->models.Names();
  ExpositionInput in;
  in.workers = view_.metrics;
  in.models.reserve(models.size());
  for (const std::string& name : models) {
    ModelSeries m;
    m.name = name;
    if (const ModelRoute* route = rt->FindModel(name)) {
      m.configured = true;
      m.pool = route->pool->name;
      m.provider = EngineKindName(route->pool->engine);
    }
    in.models.push_back(m);
  }
  std::vector<std::string> versions = view_.slots->versions.Names();
  in.versions.reserve(versions.size());
  for (const std::string& key : versions) {
    VersionSeries v;
    std::tie(v.model, v.version) = SplitVersionSlotKey(key);
    if (const ModelRoute* route = rt->FindModel(v.model)) {
      if (const RouteVersion* rv = route->FindVersion(v.version)) {
        v.weight = rv->weight->weight.load(std::memory_order_relaxed);
      }
    }
    in.versions.push_back(v);
  }
  in.pools.reserve(rt->pools.size());
  for (const auto& pool : rt->pools) {
    PoolSeries& p = in.pools.emplace_back();
    p.name = pool->name;
    p.metrics_slot = pool->metrics_slot;
    p.endpoints.reserve(pool->endpoints.size());
    for (const PoolEndpoint& pe : pool->endpoints) {
      const EndpointState& s = *pe.state;
      EndpointSeries& e = p.endpoints.emplace_back();
      e.url = pe.url;
      e.metrics_slot = pe.metrics_slot;
      e.in_flight = static_cast<double>(s.in_flight.load());
      e.healthy = s.healthy.load();
      e.ejected = s.Ejected(now);
      e.requests_total = s.requests_total.load(std::memory_order_relaxed);
      e.failures_total = s.failures_total.load(std::memory_order_relaxed);
      e.ejections_total = s.ejections_total.load(std::memory_order_relaxed);
      e.prefill_tokens = static_cast<double>(s.prefill_tokens.load());
      e.decode_tokens = static_cast<double>(s.decode_tokens.load());
      e.engine_valid = s.engine.valid.load();
      e.engine_waiting = static_cast<double>(s.engine.waiting.load());
      e.engine_running = static_cast<double>(s.engine.running.load());
      e.engine_kv_utilisation = static_cast<double>(s.engine.kv_utilisation.load());
      int64_t at = s.engine.updated_at_ns.load(std::memory_order_relaxed);
      e.engine_age_seconds = at == 0 ? -1.0 : static_cast<double>(now - at) / 1e9;
      e.engine_scrape_failures_total =
          s.engine.scrape_failures_total.load(std::memory_order_relaxed);
      e.engine_stale_total = s.engine.stale_total.load(std::memory_order_relaxed);
    }
    if (!pool->flow) continue;
    p.flow_controlled = true;
    FlowSeries& f = p.flow;
    f.saturated = !FlowController::HasRoom(pool->flow_view(), now);
    for (const auto& b : pool->flow->Depths()) f.bands.push_back({b.priority, b.waiting});
    const FlowController::Counters& c = pool->flow->counters();
    auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    f.dispatched_direct = load(c.dispatched_direct);
    f.queued = load(c.queued);
    f.released = load(c.released);
    f.shed = load(c.shed);
    f.queue_full = load(c.queue_full);
    f.expired = load(c.expired);
    f.queue_bounds = FlowController::kQueueBuckets;
    for (const auto& bucket : c.queue_time_buckets) f.queue_time_buckets.push_back(load(bucket));
    f.queue_time_sum_seconds = static_cast<double>(load(c.queue_time_sum_us)) / 1e6;
  }
  // Kept alive until the document is rendered: the series point into it.
  std::vector<PoolScalingSignals> scaling;
  if (view_.scaling) scaling = view_.scaling->Current();
  for (const PoolScalingSignals& s : scaling) {
    in.scaling.push_back({s.pool, s.input_tokens_per_second, s.output_tokens_per_second,
                          s.queue_depth, s.saturation, double(s.ready_endpoints),
                          double(s.desired_replicas)});
  }
  in.access_log = view_.shared ? view_.shared->access_log.get() : nullptr;
  in.trace_section = [&](PrometheusText& t) {
    RenderTraceMetrics(t, view_.shared ? view_.shared->traces.get() : nullptr);
  };
  in.payload_section = [](PrometheusText& t) { PayloadMetrics::Global().Render(t); };
  in.semantic_section = [](PrometheusText& t) { SemanticMetrics::Global().Render(t); };
  if (rt->governance) {
    in.governance_section = [&](PrometheusText& t) {
      rt->governance->state->RenderMetrics(t, rt->governance.get());
    };
  }
  if (view_.keda) {
    in.keda_section = [&](PrometheusText& t) { view_.keda->RenderMetrics(t); };
  }
  if (view_.discovery) {
    in.discovery_section = [&](PrometheusText& t) { view_.discovery->RenderMetrics(t); };
  }
  if (view_.rollouts) {
    in.rollout_section = [&](PrometheusText& t) { view_.rollouts->RenderMetrics(t); };
  }
  in.reloads_ok = view_.reloads_ok->load(std::memory_order_relaxed);
  in.reloads_failed = view_.reloads_failed->load(std::memory_order_relaxed);
  in.generation = rt->generation;
  std::string out = RenderMetricsExposition(in);
  if (view_.shared && view_.shared->cache) {
    PrometheusText t;
    view_.shared->cache->Render(t);
    out.append(t.str());
  }
  return out;
}

}  // namespace tokenway
