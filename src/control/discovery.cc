#include "control/discovery.h"

#include <algorithm>
#include <charconv>

#include "common/json_writer.h"
#include "common/log.h"
#include "routing/engine_adapter.h"
#include "routing/scheduler_config.h"

namespace tokenway {

namespace asio = boost::asio;

std::vector<EndpointConfig> PodEndpoints(const KubePod& pod, const std::vector<uint16_t>& ports,
                                         const PoolConfig& pool, std::string* bad_annotation) {
  std::vector<EndpointConfig> out;
  if (!pod.ready || pod.deleting || pod.pod_ip.empty()) return out;
  EndpointConfig base;
  base.host = pod.pod_ip;
  if (!pod.engine.empty()) {
    if (IsKnownName(kEngineNames, pod.engine)) {
      base.engine = pod.engine;
    } else if (bad_annotation) {
      *bad_annotation = std::string(kEngineAnnotation) + "=" + pod.engine + " is not an engine";
    }
  }
  if (!pod.accelerator.empty()) {
    base.accelerator = pod.accelerator;
    if (!pool.accelerators.count(pod.accelerator) && bad_annotation) {
      *bad_annotation = std::string(kAcceleratorAnnotation) + "=" + pod.accelerator +
                        " is not in the pool's accelerators (capacity 1.0)";
    }
  }
  if (!pod.capacity.empty()) {
    double v = 0;
    auto [ptr, ec] =
        std::from_chars(pod.capacity.data(), pod.capacity.data() + pod.capacity.size(), v);
    if (ec == std::errc() && ptr == pod.capacity.data() + pod.capacity.size() && v > 0 &&
        v <= 1e6) {
      base.capacity = v;
    } else if (bad_annotation) {
      *bad_annotation = std::string(kCapacityAnnotation) + "=" + pod.capacity +
                        " is not a positive number of at most 1000000";
    }
  }
  bool v6 = pod.pod_ip.find(':') != std::string::npos;
  for (uint16_t port : ports) {
    EndpointConfig ep = base;
    ep.port = port;
    ep.url = "http://" + (v6 ? "[" + pod.pod_ip + "]" : pod.pod_ip) + ":" + std::to_string(port);
    out.push_back(std::move(ep));
  }
  return out;
}

std::vector<std::string> PodDeviceProducts(const KubePod& pod,
                                           const std::map<std::string, KubeObject>& claims,
                                           const std::map<std::string, KubeObject>& slices) {
  std::vector<std::string> out;
  for (const std::string& name : pod.claims) {
    auto it = claims.find(pod.namespace_name + "/" + name);
    if (it == claims.end()) continue;
    const auto* claim = std::get_if<KubeResourceClaim>(&it->second);
    if (!claim) continue;
    for (const KubeDeviceRef& d : claim->devices) {
      for (const auto& [key, obj] : slices) {
        const auto* slice = std::get_if<KubeResourceSlice>(&obj);
        if (!slice || slice->driver != d.driver || slice->pool != d.pool) continue;
        for (const auto& [device, product] : slice->products) {
          if (device == d.device && !product.empty()) out.push_back(product);
        }
      }
    }
  }
  return out;
}

namespace {

std::string SelectorText(const std::map<std::string, std::string>& labels) {
  std::string s;
  for (const auto& [k, v] : labels) {
    if (!s.empty()) s.push_back(',');
    s += k + "=" + v;
  }
  return s;
}

bool SameEndpoints(const std::vector<EndpointConfig>& a, const std::vector<EndpointConfig>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].url != b[i].url || a[i].engine != b[i].engine ||
        a[i].accelerator != b[i].accelerator || a[i].capacity != b[i].capacity) {
      return false;
    }
  }
  return true;
}

}  // namespace

Discovery::Discovery(asio::io_context& ioc, std::function<void()> on_change)
    : ioc_(ioc), on_change_(std::move(on_change)), coalesce_timer_(ioc) {}

Discovery::~Discovery() {
  Stop();
}

void Discovery::Stop() {
  for (auto& [name, w] : pools_) StopPool(*w);
  coalesce_timer_.cancel();
  *alive_ = false;
}

const PoolConfig* Discovery::FindPool(const std::string& name) const {
  for (const auto& p : pool_configs_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Status Discovery::Configure(const GatewayConfig& config) {
  bool any = std::any_of(config.pools.begin(), config.pools.end(),
                         [](const PoolConfig& p) { return p.discovery.enabled; });
  bool reconnect = !client_ || !(config.kubernetes == kube_config_);
  std::shared_ptr<KubeClient> client = client_;
  if (any && reconnect) {
    auto created = KubeClient::Create(config.kubernetes);
    if (!created.ok()) return Status::Error("kubernetes: " + created.status().message());
    client = *created;
    LogInfo("discovery: API server " + client->server() + ", namespace " +
            client->default_namespace());
  }
  // What each pool served so far keeps serving until its new watches have listed.
  std::map<std::string, std::pair<PoolDiscoveryConfig, std::vector<EndpointConfig>>> last;
  for (auto& [name, w] : pools_) last[name] = {w->config, w->endpoints};
  if (reconnect) {
    for (auto& [name, w] : pools_) StopPool(*w);
    pools_.clear();
  }
  client_ = any ? client : nullptr;
  kube_config_ = config.kubernetes;
  pool_configs_ = config.pools;
  std::map<std::string, std::unique_ptr<PoolWatch>> next;
  for (const auto& pc : config.pools) {
    if (!pc.discovery.enabled) continue;
    auto it = pools_.find(pc.name);
    if (it != pools_.end() && it->second->config == pc.discovery) {
      next[pc.name] = std::move(it->second);
      pools_.erase(it);
      continue;
    }
    auto w = std::make_unique<PoolWatch>();
    w->pool = pc.name;
    w->config = pc.discovery;
    w->namespace_name = pc.discovery.namespace_name.empty() ? client_->default_namespace()
                                                            : pc.discovery.namespace_name;
    w->started_ns = MonotonicNanos();
    if (auto was = last.find(pc.name); was != last.end() && was->second.first == pc.discovery) {
      w->endpoints = was->second.second;
    }
    next[pc.name] = std::move(w);
  }
  for (auto& [name, w] : pools_) StopPool(*w);  // pools gone or changed
  pools_ = std::move(next);
  for (auto& [name, w] : pools_) {
    if (!w->pods && !w->inference_pool) StartPool(*w);
  }
  return Status::Ok();
}

std::shared_ptr<KubeReflector> Discovery::MakeReflector(const std::string& pool,
                                                        KubeReflector::Resource resource,
                                                        Role role) {
  std::weak_ptr<bool> alive = alive_;
  auto r = std::make_shared<KubeReflector>(ioc_, client_, kube_config_, std::move(resource),
                                           &counters_, [this, alive, pool, role] {
                                             if (alive.expired() || !*alive.lock()) return;
                                             if (role == Role::kInferencePool) {
                                               OnInferencePool(pool);
                                             } else if (role == Role::kObjectives) {
                                               OnObjectives(pool);
                                             } else {
                                               OnPods(pool);
                                             }
                                           });
  r->Start();
  return r;
}

void Discovery::StartPool(PoolWatch& w) {
  if (w.config.dra) {
    KubeReflector::Resource claims;
    claims.kind = KubeKind::kResourceClaim;
    claims.path = "/apis/resource.k8s.io/v1/namespaces/" + w.namespace_name + "/resourceclaims";
    claims.resource = "resourceclaims";
    claims.namespace_name = w.namespace_name;
    w.claims = MakeReflector(w.pool, std::move(claims), Role::kDevices);
    KubeReflector::Resource slices;
    slices.kind = KubeKind::kResourceSlice;
    slices.path = "/apis/resource.k8s.io/v1/resourceslices";
    slices.resource = "resourceslices";
    w.slices = MakeReflector(w.pool, std::move(slices), Role::kDevices);
  }
  if (!w.config.inference_pool.empty()) {
    KubeReflector::Resource r;
    r.kind = KubeKind::kInferencePool;
    r.path =
        "/apis/inference.networking.k8s.io/v1/namespaces/" + w.namespace_name + "/inferencepools";
    r.field_selector = "metadata.name=" + w.config.inference_pool;
    r.resource = "inferencepools";
    r.namespace_name = w.namespace_name;
    w.inference_pool = MakeReflector(w.pool, std::move(r), Role::kInferencePool);
    if (w.config.objectives) {
      KubeReflector::Resource o;
      o.kind = KubeKind::kInferenceObjective;
      o.path = "/apis/" + kube_config_.objective_api + "/namespaces/" + w.namespace_name +
               "/inferenceobjectives";
      o.resource = "inferenceobjectives";
      o.namespace_name = w.namespace_name;
      w.objectives = MakeReflector(w.pool, std::move(o), Role::kObjectives);
    }
    return;
  }
  w.selector = w.config.selector;
  w.ports = w.config.ports;
  KubeReflector::Resource r;
  r.kind = KubeKind::kPod;
  r.path = "/api/v1/namespaces/" + w.namespace_name + "/pods";
  r.label_selector = SelectorText(w.selector);
  r.resource = "pods";
  r.namespace_name = w.namespace_name;
  w.pods = MakeReflector(w.pool, std::move(r), Role::kPods);
}

std::vector<const KubeReflector*> Discovery::Reflectors(const PoolWatch& w) const {
  std::vector<const KubeReflector*> out;
  for (const auto& r : {w.inference_pool, w.pods, w.claims, w.slices, w.objectives}) {
    if (r) out.push_back(r.get());
  }
  return out;
}

void Discovery::StopPool(PoolWatch& w) {
  for (const auto& r : {w.inference_pool, w.pods, w.claims, w.slices, w.objectives}) {
    if (r) r->Stop();
  }
}

void Discovery::OnInferencePool(const std::string& pool) {
  auto it = pools_.find(pool);
  if (it == pools_.end()) return;
  PoolWatch& w = *it->second;
  const KubeInferencePool* found = nullptr;
  for (const auto& [key, obj] : w.inference_pool->objects()) {
    const auto* ip = std::get_if<KubeInferencePool>(&obj);
    if (ip && ip->name == w.config.inference_pool) found = ip;
  }
  if (!found) {
    std::string problem =
        "InferencePool " + w.namespace_name + "/" + w.config.inference_pool + " not found";
    if (w.problem != problem) {
      counters_.Count(DiscoveryError::kNotFound);
      LogWarn("discovery: pool '" + pool + "': " + problem + "; no endpoints");
    }
    w.problem = problem;
    if (w.pods) w.pods->Stop();
    w.pods.reset();
    w.selector.clear();
    w.ports.clear();
    Recompute(w);
    return;
  }
  w.problem.clear();
  w.ports = found->target_ports;
  if (!w.pods || found->match_labels != w.selector) {
    if (w.pods) w.pods->Stop();
    w.selector = found->match_labels;
    KubeReflector::Resource r;
    r.kind = KubeKind::kPod;
    r.path = "/api/v1/namespaces/" + w.namespace_name + "/pods";
    r.label_selector = SelectorText(w.selector);
    r.resource = "pods";
    r.namespace_name = w.namespace_name;
    LogInfo("discovery: pool '" + pool + "' follows InferencePool " + w.namespace_name + "/" +
            w.config.inference_pool + ": pods " + r.label_selector);
    w.pods = MakeReflector(pool, std::move(r), Role::kPods);
  }
  Recompute(w);
}

void Discovery::OnObjectives(const std::string& pool) {
  auto it = pools_.find(pool);
  if (it == pools_.end() || !it->second->objectives) return;
  PoolWatch& w = *it->second;
  std::map<std::string, int32_t> priorities;
  // Objectives in key order (namespace/name): the first one naming a model wins a conflict.
  for (const auto& [key, obj] : w.objectives->objects()) {
    const auto* o = std::get_if<KubeInferenceObjective>(&obj);
    if (o && o->pool == w.config.inference_pool) priorities.emplace(o->model, o->priority);
  }
  if (priorities == w.priorities) return;
  std::string list;
  for (const auto& [model, priority] : priorities) {
    list += (list.empty() ? "" : ", ") + model + "=" + std::to_string(priority);
  }
  LogInfo("discovery: pool '" + pool + "' objectives: " + (list.empty() ? "none" : list));
  w.priorities = std::move(priorities);
  Schedule();
}

void Discovery::OnPods(const std::string& pool) {
  auto it = pools_.find(pool);
  if (it == pools_.end()) return;
  Recompute(*it->second);
}

void Discovery::Recompute(PoolWatch& w) {
  const PoolConfig* pc = FindPool(w.pool);
  if (!pc) return;
  // A pod watch that has not listed yet (start-up, a new selector) knows nothing: the endpoints
  // published so far keep serving until it has.
  if (w.pods && !w.pods->synced()) return;
  std::vector<EndpointConfig> eps;
  if (w.pods) {
    for (const auto& [key, obj] : w.pods->objects()) {
      const auto* pod = std::get_if<KubePod>(&obj);
      if (!pod) continue;
      std::string bad;
      auto mine = PodEndpoints(*pod, w.ports, *pc, &bad);
      if (!bad.empty() && w.warned.insert(key + " " + bad).second) {
        counters_.Count(DiscoveryError::kInvalidAnnotation);
        LogWarn("discovery: pod " + key + ": " + bad);
      }
      if (w.claims && w.slices && !mine.empty() && !pod->claims.empty()) {
        // DRA: the devices' product names give the accelerator and, summed over the devices
        // through the pool's `accelerators`, the capacity; the pod's annotations still win.
        auto products = PodDeviceProducts(*pod, w.claims->objects(), w.slices->objects());
        double capacity = 0;
        for (const std::string& product : products) {
          auto it = pc->accelerators.find(product);
          capacity += it == pc->accelerators.end() ? 1.0 : it->second;
          if (it == pc->accelerators.end() && w.warned.insert(key + " " + product).second) {
            LogWarn("discovery: pod " + key + " has a '" + product + "' device, which pool '" +
                    w.pool + "' has no accelerators entry for (capacity 1.0)");
          }
        }
        for (auto& ep : mine) {
          if (products.empty()) break;
          if (pod->accelerator.empty()) ep.accelerator = products.front();
          if (pod->capacity.empty()) ep.capacity = capacity;
        }
      }
      for (auto& ep : mine) eps.push_back(std::move(ep));
    }
  }
  std::sort(eps.begin(), eps.end(),
            [](const EndpointConfig& a, const EndpointConfig& b) { return a.url < b.url; });
  // Two pods cannot share an address; should a stale object say otherwise, keep one.
  eps.erase(
      std::unique(eps.begin(), eps.end(),
                  [](const EndpointConfig& a, const EndpointConfig& b) { return a.url == b.url; }),
      eps.end());
  if (SameEndpoints(eps, w.endpoints)) return;
  LogInfo("discovery: pool '" + w.pool + "' has " + std::to_string(eps.size()) +
          " endpoints (was " + std::to_string(w.endpoints.size()) + ")");
  w.endpoints = std::move(eps);
  Schedule();
}

void Discovery::Schedule() {
  if (scheduled_) return;
  scheduled_ = true;
  coalesce_timer_.expires_after(kube_config_.coalesce);
  std::weak_ptr<bool> alive = alive_;
  coalesce_timer_.async_wait([this, alive](boost::system::error_code ec) {
    if (alive.expired() || !*alive.lock()) return;
    scheduled_ = false;
    if (!ec) on_change_();
  });
}

GatewayConfig Discovery::WithEndpoints(const GatewayConfig& config) const {
  GatewayConfig out = config;
  for (auto& pc : out.pools) {
    if (!pc.discovery.enabled) continue;
    auto it = pools_.find(pc.name);
    if (it == pools_.end()) continue;
    pc.endpoints = it->second->endpoints;
    for (auto& m : out.models) {
      if (m.pool != pc.name) continue;
      auto p = it->second->priorities.find(m.name);
      if (p != it->second->priorities.end()) m.priority = p->second;
    }
  }
  return out;
}

bool Discovery::Ready(std::string& reason) const {
  for (const auto& [name, w] : pools_) {
    const KubeReflector* waiting = nullptr;
    for (const KubeReflector* r : Reflectors(*w)) {
      if (!waiting && !r->synced()) waiting = r;
    }
    if (!waiting) continue;
    reason = "discovery for pool '" + name + "': " +
             (waiting->last_error().empty()
                  ? std::string("waiting for the first list of ") + waiting->resource().resource
                  : waiting->last_error());
    return false;
  }
  return true;
}

double Discovery::SyncAge(const PoolWatch& w, int64_t now) const {
  double age = 0;
  for (const KubeReflector* r : Reflectors(w)) {
    int64_t since = r->synced() ? r->last_contact_ns() : w.started_ns;
    double a = r->connected() ? 0.0 : static_cast<double>(now - since) / 1e9;
    age = std::max(age, a);
  }
  return age;
}

void Discovery::WriteStatusJson(JsonWriter& w) const {
  if (pools_.empty()) return;
  int64_t now = MonotonicNanos();
  w.Key("discovery").BeginObject();
  for (const auto& [name, watch] : pools_) {
    bool synced = watch->pods != nullptr;
    for (const KubeReflector* r : Reflectors(*watch)) synced = synced && r->synced();
    std::string error = watch->problem;
    for (const KubeReflector* r : Reflectors(*watch)) {
      if (error.empty()) error = r->last_error();
    }
    w.Key(name).BeginObject();
    w.Key("synced").Bool(synced);
    w.Key("last_sync_age_seconds").Double(SyncAge(*watch, now));
    w.Key("endpoints").Uint(watch->endpoints.size());
    w.Key("error");
    if (error.empty()) {
      w.Null();
    } else {
      w.String(error);
    }
    w.EndObject();
  }
  w.EndObject();
}

void Discovery::RenderMetrics(PrometheusText& t) const {
  if (pools_.empty()) return;
  int64_t now = MonotonicNanos();
  t.Family("tokenway_discovery_last_sync_age_seconds", "gauge",
           "Seconds since the pool's Kubernetes view was last known current (0 while its watches "
           "are open).");
  for (const auto& [name, w] : pools_) {
    t.Sample("tokenway_discovery_last_sync_age_seconds", {{"pool", name}}, SyncAge(*w, now));
  }
  t.Family("tokenway_discovery_endpoints", "gauge",
           "Endpoints discovered for the pool (Ready pods × ports).");
  for (const auto& [name, w] : pools_) {
    t.Sample("tokenway_discovery_endpoints", {{"pool", name}},
             static_cast<double>(w->endpoints.size()));
  }
  t.Family("tokenway_discovery_events_total", "counter",
           "Watch events by type (kind; unknown when unreadable) and result (applied, malformed, "
           "oversized).");
  static constexpr const char* kResults[] = {"applied", "malformed", "oversized"};
  for (size_t k = 0; k < DiscoveryCounters::kEventKinds; ++k) {
    std::string_view kind = k + 1 == DiscoveryCounters::kEventKinds
                                ? std::string_view("unknown")
                                : WatchEventTypeName(static_cast<WatchEventType>(k));
    for (size_t r = 0; r < DiscoveryCounters::kResults; ++r) {
      uint64_t v = counters_.events[k][r].load(std::memory_order_relaxed);
      if (v || r == 0)
        t.Sample("tokenway_discovery_events_total", {{"kind", kind}, {"result", kResults[r]}}, v);
    }
  }
  t.Family("tokenway_discovery_errors_total", "counter",
           "Discovery errors by reason (connect, unauthorized, forbidden, expired, ...).");
  for (size_t e = 0; e < static_cast<size_t>(DiscoveryError::kCount); ++e) {
    t.Sample("tokenway_discovery_errors_total",
             {{"reason", DiscoveryErrorName(static_cast<DiscoveryError>(e))}},
             counters_.errors[e].load(std::memory_order_relaxed));
  }
  t.Family("tokenway_discovery_lists_total", "counter",
           "Complete LISTs (initial syncs and relists after 410 Gone).");
  t.Sample("tokenway_discovery_lists_total", {}, counters_.lists.load(std::memory_order_relaxed));
}

}  // namespace tokenway
