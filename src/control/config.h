// GatewayConfig: tokenway's configuration as loaded from YAML or quick flags, and its loader and
// validator (control/config_render.h renders it back as JSON).
//
// It is composed of the components' own typed configs, each declared next to its code
// (SchedulerConfig in routing/scheduler_config.h, FlowControlConfig in routing/flow_controller.h,
// PassiveHealthConfig in routing/endpoint_state.h, AccessLogConfig in telemetry/access_log.h,
// TracingConfig in telemetry/otlp_exporter.h, RouterConfig in semantic/router_config.h,
// AutoscalingConfig and KedaScalerConfig in control/scaling_signals.h, GovernanceConfig in
// governance/governance_config.h, ProcessorConfig in payload/payload_config.h); config.cc walks the
// YAML into them.
//
// Loaded and validated once on the control thread, at start-up and on reload; the request path
// never sees this struct directly, only the immutable Runtime built from it. Every error names
// the file, line and field. docs/configuration.md documents each field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cache/cache_config.h"
#include "common/duration.h"
#include "control/discovery_config.h"
#include "control/scaling_signals.h"
#include "governance/governance_config.h"
#include "payload/payload_config.h"
#include "rollout/rollout_config.h"
#include "routing/endpoint_state.h"
#include "routing/flow_controller.h"
#include "routing/scheduler_config.h"
#include "routing/version_split.h"
#include "semantic/router_config.h"
#include "telemetry/access_log.h"
#include "telemetry/otlp_exporter.h"
#include "tokenway/status.h"

namespace tokenway {

// One pools[].endpoints[] entry: a URL string, or a mapping {url, engine, accelerator, capacity}.
struct EndpointConfig {
  std::string url;   // as written: http://host:port
  std::string host;  // host part
  uint16_t port = 0;
  std::string engine;       // metric dialect (kEngineNames); empty: the pool's engine
  std::string accelerator;  // product name, a key of the pool's `accelerators`; empty: none
  double capacity = 0;      // relative capacity (> 0); 0: from the accelerator, else 1.0
};

// Scale from zero (pools[].scale_from_zero): while a pool has no endpoint that may take a
// request — none discovered yet, all unready — requests wait for one instead of failing at once,
// and the pool's queue depth counts them, so an autoscaler brings the first replica up.
struct ScaleFromZeroConfig {
  bool enabled = false;
  Duration queue_ttl = std::chrono::seconds(60);  // then 503 no_healthy_endpoint
  uint32_t max_waiting = 1024;                    // per worker thread; beyond it 503 at once
};

struct PoolConfig {
  std::string name;
  std::string policy = "least-request";  // simple picker, used when `scheduler` is absent
  std::string engine = "vllm";           // metric dialect of the endpoints (kEngineNames)
  SchedulerConfig scheduler;             // filters/scorers/picker profile (routing/)
  FlowControlConfig flow_control;        // routing/flow_controller.h
  AutoscalingConfig autoscaling;         // control/scaling_signals.h
  // Relative capacity by accelerator name, e.g. {H100-80GB: 1.0, A100-40GB: 0.45}.
  std::map<std::string, double> accelerators;
  std::vector<EndpointConfig> endpoints;  // static; discovered pools fill them per snapshot
  PoolDiscoveryConfig discovery;          // Kubernetes discovery instead of `endpoints`
  ScaleFromZeroConfig scale_from_zero;
};

// The engine whose metric names an endpoint is scraped with: its own, else its pool's.
const std::string& EffectiveEngine(const PoolConfig& pool, const EndpointConfig& endpoint);
// An endpoint's relative capacity: its own `capacity`, else its accelerator's entry in the pool's
// `accelerators`, else 1.0.
double EffectiveCapacity(const PoolConfig& pool, const EndpointConfig& endpoint);

struct ModelConfig {
  std::string name;      // what clients send in "model" and see in GET /v1/models
  std::string pool;      // pool that serves it (with versions: the first version's by default;
                         // empty for a virtual model)
  std::string parent;    // base model when this is a LoRA adapter; empty otherwise
  int32_t priority = 0;  // flow-control priority; negative: sheddable under saturation
  // Versions of this alias (routing/version_split.h); empty: the model is served as named.
  std::vector<ModelVersionConfig> versions;
  StickyConfig sticky;
  ResponseModel response_model = ResponseModel::kAlias;
  ShadowConfig shadow;
  // A virtual model: no pool of its own; each request goes to the model of the route its prompt
  // is classified into (semantic/router_config.h).
  RouterConfig router;
};

struct LimitsConfig {
  uint32_t max_header_bytes = 64 * 1024;
  uint64_t max_body_bytes = 8 * 1024 * 1024;
  uint64_t max_response_bytes = 64 * 1024 * 1024;
  uint32_t max_connections = 10000;
  Duration header_timeout = std::chrono::seconds(10);
  Duration idle_timeout = std::chrono::seconds(60);
  Duration write_timeout = std::chrono::seconds(60);
};

struct UpstreamConfig {
  Duration connect_timeout = std::chrono::seconds(2);
  Duration first_byte_timeout = std::chrono::seconds(300);
  Duration stream_idle_timeout = std::chrono::seconds(60);
  Duration total_timeout = std::chrono::seconds(1800);
  Duration idle_connection_timeout = std::chrono::seconds(60);
  uint32_t max_idle_per_endpoint = 128;
  uint32_t max_attempts = 3;  // first try plus retries on another endpoint
};

struct ActiveHealthConfig {
  bool enabled = true;
  Duration interval = std::chrono::seconds(5);
  Duration timeout = std::chrono::seconds(1);
  std::string path = "/health";
  uint32_t unhealthy_threshold = 2;
  uint32_t healthy_threshold = 1;
};

struct StreamingConfig {
  // Ask upstreams for usage on every stream and strip the usage chunk when the client did not
  // ask for it, so every request's tokens are known.
  bool inject_usage = true;
};

// Scraping of every endpoint's /metrics for engine signals (control/engine_scraper.h).
struct EngineMetricsConfig {
  bool enabled = true;
  Duration interval = std::chrono::milliseconds(50);
  Duration timeout = std::chrono::milliseconds(200);
  Duration stale_after = std::chrono::seconds(1);  // older signals score as saturated
  std::string path = "/metrics";
  uint64_t max_body_bytes = 4 * 1024 * 1024;
};

// The endpoint-picker front door (gateway/epp_server.h): Envoy's external-processing gRPC
// protocol as the Gateway API Inference Extension uses it. Enabled by `epp.listen`.
struct EppConfig {
  std::string listen;     // host:port; empty: no endpoint-picker listener
  std::string cert_file;  // epp.tls: PEM certificate chain and key; both empty: plaintext
  std::string key_file;
  uint32_t max_streams = 10000;  // concurrent ext_proc streams; beyond it RESOURCE_EXHAUSTED
  // How long a request may wait for its pick (flow control, scale from zero) before tokenway
  // answers 503 itself; keep it below the Gateway's ext_proc message_timeout. 0: no bound
  // beyond the pool's own queue TTLs.
  Duration message_timeout = std::chrono::seconds(5);
  // Endpoints named in x-gateway-destination-endpoint: the pick, then fallbacks in the
  // scheduler's order.
  uint32_t fallback_endpoints = 3;
  bool enabled() const { return !listen.empty(); }
};

struct GatewayConfig {
  std::string source = "flags";           // file the config came from
  std::string listen = "127.0.0.1:8080";  // empty (only with epp.listen): no HTTP listener
  std::string admin = "127.0.0.1:8081";
  uint32_t workers = 0;  // 0: one per core
  Duration drain_timeout = std::chrono::seconds(30);
  Duration reload_poll_interval = std::chrono::seconds(1);
  LimitsConfig limits;
  UpstreamConfig upstream;
  ActiveHealthConfig active_health;
  PassiveHealthConfig passive_health;  // routing/endpoint_state.h
  StreamingConfig streaming;
  AccessLogConfig access_log;  // telemetry/access_log.h
  TracingConfig tracing;       // telemetry/otlp_exporter.h
  EngineMetricsConfig engine_metrics;
  std::vector<PoolConfig> pools;
  std::vector<ModelConfig> models;
  GovernanceConfig governance;  // tenants, keys and limits (governance/); off by default
  KubernetesConfig kubernetes;  // API server access for pools[].discovery
  KedaScalerConfig keda;        // autoscaling.keda (control/scaling_signals.h); off by default
  EppConfig epp;                // endpoint-picker front door; off unless epp.listen is set
  // Payload processors of phases 3 and 6, in order (payload/payload_config.h); empty: none.
  std::vector<ProcessorConfig> processors;
  // Progressive rollouts of model versions (rollout/rollout_config.h); empty: none.
  RolloutsConfig rollouts;
  // The response cache (cache/cache_config.h); off unless a `cache:` section is present.
  CacheConfig cache;
};

// Parses YAML text; `source` names the file in error messages.
StatusOr<GatewayConfig> ParseConfig(const std::string& text, const std::string& source);
StatusOr<GatewayConfig> LoadConfigFile(const std::string& path);

// Cross-field checks (every model's pool exists, names unique, ...). ParseConfig calls it; quick
// flag configurations call it directly.
Status ValidateConfig(const GatewayConfig& config);

// Checks a listener address "ip:port" ("[v6]:port"; port 0: any) and returns its port. The
// error explains what is wrong.
StatusOr<uint16_t> ParseListenPort(const std::string& address);

// Parses "http://host:port" (path-less). The error explains what is wrong.
StatusOr<EndpointConfig> ParseEndpointUrl(const std::string& url);

// Known picker policy names (for validation and --help).
const std::vector<std::string>& KnownPolicies();

}  // namespace tokenway
