// Runtime: the immutable snapshot of routing state that workers serve requests from.
//
// Built by the control thread from a validated GatewayConfig (at start and on every reload) and
// handed to each worker; a request keeps the snapshot it started with, so a reload never changes
// a request mid-flight. Endpoint live state (EndpointState) is shared across snapshots through
// the EndpointRegistry, keyed by URL.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "control/config.h"
#include "governance/governance.h"
#include "routing/endpoint_state.h"
#include "routing/engine_adapter.h"
#include "routing/flow_controller.h"
#include "routing/prefix_index.h"
#include "routing/version_split.h"
#include "semantic/semantic_router.h"
#include "tokenway/payload.h"
#include "tokenway/picker.h"

namespace tokenway {

struct MetricSlots;

struct PoolEndpoint {
  std::string url;
  std::string host_header;  // "host:port" as sent in the Host header
  boost::asio::ip::tcp::endpoint address;
  std::string ip_port;  // the resolved address as "ip:port" ("[ip6]:port"), as the EPP names it
  std::shared_ptr<EndpointState> state;
  EngineKind engine = EngineKind::kVllm;  // metric dialect its /metrics is read with
  std::string accelerator;                // as configured; empty: none
  double capacity = 1.0;                  // relative capacity (also in state->capacity)
  uint16_t metrics_slot = 0;              // MetricSlots::endpoints
};

struct Pool {
  std::string name;
  uint16_t metrics_slot = 0;  // MetricSlots::pools
  std::vector<PoolEndpoint> endpoints;
  std::unique_ptr<Picker> picker;         // a simple policy, or a SchedulerPicker
  EngineKind engine = EngineKind::kVllm;  // the pool's default; each endpoint has its own
  std::string session_header;             // pools[].scheduler.session_header; empty: none
  // The scheduler has a predicted-latency scorer: the request path reads x-slo-* headers and
  // teaches the endpoints' latency models; engine signals older than stale_after_ns do not count
  // in their features.
  bool predicts_latency = false;
  int64_t stale_after_ns = 0;
  // Flow control (null when the pool has none): the process-wide controller of this pool name,
  // and this snapshot's settings and endpoint states for it (kept for every pool: the scaling
  // signals read the thresholds).
  std::shared_ptr<FlowController> flow;
  FlowControlConfig flow_config;  // pools[].flow_control and the engine-metrics settings
  std::vector<EndpointState*> endpoint_states;
  AutoscalingConfig autoscaling;  // pools[].autoscaling, for the scaling signals
  ScaleFromZeroConfig scale_from_zero;
  FlowView flow_view() const { return {&flow_config, endpoint_states}; }
};

// One version of a model alias (models[].versions[]) as the resolve phase splits to it.
struct RouteVersion {
  std::string name;   // metrics, access log, span, x-tokenway-version
  std::string model;  // the model name sent upstream
  const Pool* pool = nullptr;
  uint16_t metrics_slot = 0;  // MetricSlots::versions
  uint64_t seed = 0;          // VersionSeed(name)
  // Its split weight, shared with the process-wide VersionWeights (set at run time by the
  // control thread; a relaxed load per request).
  std::shared_ptr<VersionWeight> weight;
  VersionMatchConfig match;  // header names lower-case
};

struct ModelRoute {
  std::string name;
  const Pool* pool = nullptr;  // with versions: the pool of the alias as configured (metrics)
  uint16_t metrics_slot = 0;
  int32_t priority = 0;
  // Versions (empty: the model is served as named), in configuration order; the split's
  // key, the name responses report, and the shadow candidate (index into versions; -1: none).
  std::vector<RouteVersion> versions;
  StickyConfig sticky;
  ResponseModel response_model = ResponseModel::kAlias;
  int32_t shadow = -1;
  double shadow_percent = 0;
  uint32_t shadow_max_concurrency = 0;
  // The weighted sticky split over the versions' current weights (routing/version_split.h) for
  // the hash of a request's sticky key: the first version when no weight is positive (all set to
  // 0 at run time), null for a model without versions. Worker threads; relaxed loads only.
  const RouteVersion* Split(uint64_t key_hash) const;
  const RouteVersion* FindVersion(std::string_view version) const {
    for (const RouteVersion& v : versions) {
      if (v.name == version) return &v;
    }
    return nullptr;
  }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Runtime {
  GatewayConfig config;
  uint64_t generation = 0;
  std::vector<std::unique_ptr<Pool>> pools;
  std::unordered_map<std::string, ModelRoute, StringHash, std::equal_to<>> models;
  std::string models_json;  // body of GET /v1/models
  std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> model_json;
  std::string config_json;  // body of /admin/config
  // Payload processors of phases 3 and 6 (empty: the body and the response pass unchanged).
  PayloadChain payload;
  // Tenants, keys and limiter (null when governance is off). Shared with the snapshots built
  // since the last change of the governance section or the keys file.
  std::shared_ptr<const GovernanceSnapshot> governance;

  const ModelRoute* FindModel(std::string_view name) const {
    auto it = models.find(name);
    return it == models.end() ? nullptr : &it->second;
  }

  // Virtual models (models[].router), by name, with their trained classifiers. A virtual model
  // has no ModelRoute: the resolve phase sends its requests to a route's target first.
  std::unordered_map<std::string, std::shared_ptr<const SemanticRouter>, StringHash,
                     std::equal_to<>>
      routers;
  const SemanticRouter* FindRouter(std::string_view name) const {
    if (routers.empty()) return nullptr;
    auto it = routers.find(name);
    return it == routers.end() ? nullptr : it->second.get();
  }
};

// Live endpoint state by URL; lives as long as the process. Control thread creates entries; the
// admin thread lists them. The mutex is never taken on the request path.
class EndpointRegistry {
 public:
  std::shared_ptr<EndpointState> Get(const std::string& url);
  std::vector<std::shared_ptr<EndpointState>> All() const;
  // Forgets endpoints nothing else refers to any more (no snapshot, no probe in flight), so that
  // pod churn under discovery does not grow the registry without bound; returns how many.
  size_t Prune();

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<EndpointState>> states_;
};

// Per pool name, the state that outlives Runtime snapshots: the flow controller (queued requests
// keep waiting across a reload) and the prefix-cache index (what the engines probably cache does
// not change because the configuration did); and per model version its split weight (a weight
// set at run time survives reloads). Control thread, except DropAll at shutdown and the
// weights' readers (routing/version_split.h).
class PoolStateRegistry {
 public:
  std::shared_ptr<FlowController> Flow(const std::string& pool);
  // The pool's index when the last one was built for the same endpoint URLs (in order) and
  // settings; for other URLs with the same settings (and a size within a factor 2 of the one
  // the table was sized for), a copy in which every URL that stays keeps its learned blocks;
  // otherwise a new, empty one.
  std::shared_ptr<PrefixIndex> Prefix(const std::string& pool, const PrefixIndexConfig& config,
                                      const std::vector<std::string>& urls);
  std::vector<std::shared_ptr<FlowController>> Flows() const;
  // Drops every queued request without waking it (shutdown, after the workers stopped).
  void DropAll();
  // The run-time weights of every model version, by alias and version name.
  VersionWeights& versions() { return versions_; }
  const VersionWeights& versions() const { return versions_; }

 private:
  VersionWeights versions_;
  struct PrefixEntry {
    std::shared_ptr<PrefixIndex> index;
    PrefixIndexConfig config;
    std::vector<std::string> urls;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<FlowController>> flows_;
  std::unordered_map<std::string, PrefixEntry> prefixes_;
};

// Builds a snapshot: resolves endpoint addresses, creates pickers, renders the model list.
// Flow controllers and prefix indexes come from `pools` (fresh ones when null). Once
// everything else has succeeded it stores each endpoint's configured capacity into its shared
// EndpointState (so a rejected configuration changes nothing).
StatusOr<std::shared_ptr<const Runtime>> BuildRuntime(
    const GatewayConfig& config, EndpointRegistry& endpoints, MetricSlots& slots,
    uint64_t generation, int64_t created_unix_seconds, PoolStateRegistry* pools = nullptr,
    std::shared_ptr<const GovernanceSnapshot> governance = nullptr);

}  // namespace tokenway
