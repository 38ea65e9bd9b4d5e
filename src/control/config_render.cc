#include "control/config_render.h"

#include "common/json_writer.h"
#include "telemetry/access_log.h"

namespace tokenway {
namespace {

void WriteScheduler(JsonWriter& w, const SchedulerConfig& sc) {
  w.BeginObject();
  if (!sc.preset.empty()) w.Key("preset").String(sc.preset);
  w.Key("filters").BeginArray();
  for (const FilterConfig& f : sc.filters) {
    w.BeginObject()
        .Key("name")
        .String(f.name)
        .Key("queue_threshold")
        .Uint(f.queue_threshold)
        .Key("kv_threshold")
        .Number(f.kv_threshold)
        .EndObject();
  }
  w.EndArray();
  w.Key("picker").String(sc.picker);
  w.Key("session_header").String(sc.session_header);
  w.Key("scorers").BeginArray();
  for (const ScorerConfig& s : sc.scorers) {
    w.BeginObject().Key("name").String(s.name).Key("weight").Number(s.weight).EndObject();
  }
  w.EndArray();
  w.Key("prefix").BeginObject();
  w.Key("block_bytes").Uint(sc.prefix.block_bytes);
  w.Key("capacity").Uint(sc.prefix.capacity);
  w.Key("max_blocks").Uint(sc.prefix.max_blocks);
  w.EndObject();
  w.Key("affinity").BeginObject();
  w.Key("blocks").Uint(sc.affinity.blocks);
  w.Key("epsilon").Number(sc.affinity.epsilon);
  w.EndObject();
  w.Key("sample").Uint(sc.sample);
  w.Key("slo").BeginObject();
  w.Key("ttft").String(FormatDuration(sc.slo.ttft));
  w.Key("tpot").String(FormatDuration(sc.slo.tpot));
  w.Key("min_samples").Uint(sc.slo.min_samples);
  w.Key("shed").Bool(sc.slo.shed);
  w.EndObject();
  w.EndObject();
}

void WriteFlowControl(JsonWriter& w, const FlowControlConfig& fc) {
  w.BeginObject();
  w.Key("queue_threshold").Uint(fc.queue_threshold);
  w.Key("kv_threshold").Number(fc.kv_threshold);
  w.Key("max_in_flight").Uint(fc.max_in_flight);
  w.Key("max_queue").Uint(fc.max_queue);
  w.Key("queue_ttl").String(FormatDuration(fc.queue_ttl));
  w.Key("fairness_key").String(fc.fairness_key);
  w.Key("priority_header").String(fc.priority_header);
  w.Key("max_header_priority").Int(fc.max_header_priority);
  w.EndObject();
}

void WriteAutoscaling(JsonWriter& w, const AutoscalingConfig& as) {
  w.BeginObject();
  w.Key("target_utilisation").Number(as.target_utilisation);
  w.Key("endpoint_output_tokens_per_second").Number(as.endpoint_output_tokens_per_second);
  w.Key("min_replicas").Uint(as.min_replicas);
  w.Key("max_replicas").Uint(as.max_replicas);
  w.Key("window").String(FormatDuration(as.window));
  w.EndObject();
}

void WriteDiscovery(JsonWriter& w, const PoolDiscoveryConfig& d) {
  w.BeginObject();
  w.Key("namespace").String(d.namespace_name);
  w.Key("dra").Bool(d.dra);
  w.Key("objectives").Bool(d.objectives);
  if (!d.inference_pool.empty()) {
    w.Key("inference_pool").String(d.inference_pool);
  } else {
    w.Key("selector").BeginObject();
    for (const auto& [k, v] : d.selector) w.Key(k).String(v);
    w.EndObject();
    w.Key("ports").BeginArray();
    for (uint16_t port : d.ports) w.Uint(port);
    w.EndArray();
  }
  w.EndObject();
}

void WriteKubernetes(JsonWriter& w, const KubernetesConfig& k) {
  w.BeginObject();
  w.Key("kubeconfig").String(k.kubeconfig);
  w.Key("context").String(k.context);
  w.Key("service_account_dir").String(k.service_account_dir);
  for (auto [key, d] :
       {std::pair{"watch_idle_timeout", k.watch_idle_timeout},
        std::pair{"request_timeout", k.request_timeout},
        std::pair{"backoff_initial", k.backoff_initial}, std::pair{"backoff_max", k.backoff_max},
        std::pair{"coalesce", k.coalesce}}) {
    w.Key(key).String(FormatDuration(d));
  }
  w.Key("max_event_bytes").Uint(k.max_event_bytes);
  w.Key("page_size").Uint(k.page_size);
  w.Key("objective_api").String(k.objective_api);
  w.EndObject();
}

void WritePool(JsonWriter& w, const PoolConfig& pool) {
  w.BeginObject();
  w.Key("name").String(pool.name);
  w.Key("policy").String(pool.policy);
  w.Key("engine").String(pool.engine);
  if (pool.scheduler.enabled) WriteScheduler(w.Key("scheduler"), pool.scheduler);
  if (pool.flow_control.enabled) WriteFlowControl(w.Key("flow_control"), pool.flow_control);
  WriteAutoscaling(w.Key("autoscaling"), pool.autoscaling);
  if (pool.scale_from_zero.enabled) {
    w.Key("scale_from_zero").BeginObject();
    w.Key("queue_ttl").String(FormatDuration(pool.scale_from_zero.queue_ttl));
    w.Key("max_waiting").Uint(pool.scale_from_zero.max_waiting);
    w.EndObject();
  }
  w.Key("accelerators").BeginObject();
  for (const auto& [name, capacity] : pool.accelerators) w.Key(name).Number(capacity);
  w.EndObject();
  w.Key("endpoints").BeginArray();
  for (const EndpointConfig& ep : pool.endpoints) {
    w.BeginObject();
    w.Key("url").String(ep.url);
    w.Key("engine").String(EffectiveEngine(pool, ep));
    w.Key("accelerator");
    if (ep.accelerator.empty()) {
      w.Null();
    } else {
      w.String(ep.accelerator);
    }
    w.Key("capacity").Number(EffectiveCapacity(pool, ep));
    w.EndObject();
  }
  w.EndArray();
  if (pool.discovery.enabled) WriteDiscovery(w.Key("discovery"), pool.discovery);
  w.EndObject();
}

void WriteVersions(JsonWriter& w, const ModelConfig& m) {
  w.Key("versions").BeginArray();
  for (const ModelVersionConfig& v : m.versions) {
    w.BeginObject();
    w.Key("name").String(v.name);
    w.Key("model").String(v.model);
    w.Key("pool").String(v.pool);
    w.Key("weight").Number(v.weight);
    if (!v.match.empty()) {
      w.Key("match").BeginObject();
      w.Key("headers").BeginObject();
      for (const auto& [name, value] : v.match.headers) w.Key(name).String(value);
      w.EndObject();
      w.Key("tenants").BeginArray();
      for (const auto& t : v.match.tenants) w.String(t);
      w.EndArray();
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("sticky").BeginObject();
  switch (m.sticky.by) {
    case StickyBy::kUser:
      w.Key("by").String("user");
      break;
    case StickyBy::kTenant:
      w.Key("by").String("tenant");
      break;
    case StickyBy::kHeader:
      w.Key("by").BeginObject().Key("header").String(m.sticky.header).EndObject();
      break;
  }
  w.EndObject();
  w.Key("response_model").String(m.response_model == ResponseModel::kAlias ? "alias" : "version");
  if (!m.shadow.version.empty()) {
    w.Key("shadow").BeginObject();
    w.Key("version").String(m.shadow.version);
    w.Key("percent").Number(m.shadow.percent);
    w.Key("max_concurrency").Uint(m.shadow.max_concurrency);
    w.EndObject();
  }
}

}  // namespace

std::string RenderConfigJson(const GatewayConfig& c) {
  std::string out;
  JsonWriter w(out);
  auto duration = [&](const char* key, Duration d) { w.Key(key).String(FormatDuration(d)); };
  w.BeginObject();
  w.Key("source").String(c.source);
  w.Key("listen").String(c.listen);
  w.Key("admin").String(c.admin);
  w.Key("workers").Uint(c.workers);
  duration("drain_timeout", c.drain_timeout);
  duration("reload_poll_interval", c.reload_poll_interval);

  w.Key("limits").BeginObject();
  w.Key("max_header_bytes").Uint(c.limits.max_header_bytes);
  w.Key("max_body_bytes").Uint(c.limits.max_body_bytes);
  w.Key("max_response_bytes").Uint(c.limits.max_response_bytes);
  w.Key("max_connections").Uint(c.limits.max_connections);
  duration("header_timeout", c.limits.header_timeout);
  duration("idle_timeout", c.limits.idle_timeout);
  duration("write_timeout", c.limits.write_timeout);
  w.EndObject();

  w.Key("upstream").BeginObject();
  duration("connect_timeout", c.upstream.connect_timeout);
  duration("first_byte_timeout", c.upstream.first_byte_timeout);
  duration("stream_idle_timeout", c.upstream.stream_idle_timeout);
  duration("total_timeout", c.upstream.total_timeout);
  duration("idle_connection_timeout", c.upstream.idle_connection_timeout);
  w.Key("max_idle_per_endpoint").Uint(c.upstream.max_idle_per_endpoint);
  w.Key("max_attempts").Uint(c.upstream.max_attempts);
  w.EndObject();

  w.Key("health").BeginObject();
  w.Key("active").BeginObject();
  w.Key("enabled").Bool(c.active_health.enabled);
  duration("interval", c.active_health.interval);
  duration("timeout", c.active_health.timeout);
  w.Key("path").String(c.active_health.path);
  w.Key("unhealthy_threshold").Uint(c.active_health.unhealthy_threshold);
  w.Key("healthy_threshold").Uint(c.active_health.healthy_threshold);
  w.EndObject();
  w.Key("passive").BeginObject();
  w.Key("consecutive_failures").Uint(c.passive_health.consecutive_failures);
  duration("base_ejection", c.passive_health.base_ejection);
  duration("max_ejection", c.passive_health.max_ejection);
  w.EndObject();
  w.EndObject();

  w.Key("streaming").BeginObject().Key("inject_usage").Bool(c.streaming.inject_usage).EndObject();

  if (c.epp.enabled()) {
    w.Key("epp").BeginObject();
    w.Key("listen").String(c.epp.listen);
    if (!c.epp.cert_file.empty()) {
      w.Key("tls").BeginObject();
      w.Key("cert_file").String(c.epp.cert_file);
      w.Key("key_file").String(c.epp.key_file);
      w.EndObject();
    }
    w.Key("max_streams").Uint(c.epp.max_streams);
    duration("message_timeout", c.epp.message_timeout);
    w.Key("fallback_endpoints").Uint(c.epp.fallback_endpoints);
    w.EndObject();
  }

  w.Key("access_log").BeginObject();
  w.Key("enabled").Bool(c.access_log.enabled);
  w.Key("path").String(c.access_log.path);
  w.Key("fields").BeginArray();
  for (unsigned k = 0; k < static_cast<unsigned>(AccessLogField::kCount); ++k) {
    if (c.access_log.fields & (AccessLogFields{1} << k)) {
      w.String(AccessLogFieldName(static_cast<AccessLogField>(k)));
    }
  }
  w.EndArray();
  w.Key("sample_ratio").Number(c.access_log.sample_ratio);
  w.Key("always_log_errors").Bool(c.access_log.always_log_errors);
  w.EndObject();

  w.Key("tracing").BeginObject();
  w.Key("enabled").Bool(c.tracing.enabled);
  w.Key("endpoint").String(c.tracing.endpoint);
  w.Key("sample_ratio").Number(c.tracing.sample_ratio);
  w.Key("service_name").String(c.tracing.service_name);
  w.Key("provider_name").String(c.tracing.provider_name);
  w.Key("batch_size").Uint(c.tracing.batch_size);
  duration("batch_interval", c.tracing.batch_interval);
  w.Key("queue_size").Uint(c.tracing.queue_size);
  duration("timeout", c.tracing.timeout);
  w.EndObject();

  w.Key("engine_metrics").BeginObject();
  w.Key("enabled").Bool(c.engine_metrics.enabled);
  duration("interval", c.engine_metrics.interval);
  duration("timeout", c.engine_metrics.timeout);
  duration("stale_after", c.engine_metrics.stale_after);
  w.Key("path").String(c.engine_metrics.path);
  w.Key("max_body_bytes").Uint(c.engine_metrics.max_body_bytes);
  w.EndObject();

  w.Key("pools").BeginArray();
  for (const PoolConfig& pool : c.pools) WritePool(w, pool);
  w.EndArray();

  w.Key("models").BeginArray();
  for (const ModelConfig& m : c.models) {
    w.BeginObject();
    w.Key("name").String(m.name);
    if (m.router.enabled()) {
      WriteRouterConfig(w.Key("router"), m.router);
      w.EndObject();
      continue;
    }
    w.Key("pool").String(m.pool);
    if (!m.parent.empty()) w.Key("parent").String(m.parent);
    w.Key("priority").Int(m.priority);
    if (!m.versions.empty()) WriteVersions(w, m);
    w.EndObject();
  }
  w.EndArray();

  WriteKubernetes(w.Key("kubernetes"), c.kubernetes);
  w.Key("autoscaling").BeginObject();
  if (c.keda.enabled) w.Key("keda").BeginObject().Key("listen").String(c.keda.listen).EndObject();
  w.EndObject();
  WriteGovernanceJson(w.Key("governance"), c.governance);
  WriteProcessorsConfig(w.Key("processors"), c.processors);
  WriteRolloutsConfigJson(w.Key("rollouts"), c.rollouts);
  WriteCacheConfig(w.Key("cache"), c.cache);
  w.EndObject();
  return out;
}

}  // namespace tokenway
