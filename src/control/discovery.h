// Discovery: the endpoints of pools that set `discovery:` instead of `endpoints:`, kept in step
// with Kubernetes (control thread).
//
// Per discovering pool: with `inference_pool`, a reflector on that one InferencePool
// (inference.networking.k8s.io/v1) gives the pod selector (spec.selector.matchLabels) and ports
// (spec.targetPorts); otherwise the pool's own `selector` and `ports` do. A second reflector
// watches the pods that selector matches. Every pod that is Ready (status.conditions), has a
// status.podIP and no metadata.deletionTimestamp is one endpoint per port,
// http://<podIP>:<port>, with the engine, accelerator and capacity its tokenway.io/* annotations
// name. When a pool's endpoint list changes, `on_change` runs once the changes of the next
// `kubernetes.coalesce` have gathered; the gateway then builds and publishes a new Runtime with
// Endpoints() filled in. While the API server is away the last lists keep serving; Ready() and
// the metrics say what is missing and how old the pool's view is.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/kube_reflector.h"
#include "telemetry/prometheus_text.h"

namespace tokenway {

class JsonWriter;

// The endpoints one pod contributes to `pool` on `ports` (none unless it is Ready, has an IP
// and is not being deleted). A bad annotation is ignored (the pool's default applies) and
// reported in `bad_annotation`.
std::vector<EndpointConfig> PodEndpoints(const KubePod& pod, const std::vector<uint16_t>& ports,
                                         const PoolConfig& pool, std::string* bad_annotation);

// DRA: the product name of every device allocated to `pod` through its ResourceClaims, found in
// `claims` (by namespace/name) and `slices` (the ResourceSlices' devices by driver/pool/device).
// Devices whose claim or slice is not known (yet) are left out.
std::vector<std::string> PodDeviceProducts(const KubePod& pod,
                                           const std::map<std::string, KubeObject>& claims,
                                           const std::map<std::string, KubeObject>& slices);

class Discovery {
 public:
  Discovery(boost::asio::io_context& ioc, std::function<void()> on_change);
  ~Discovery();

  // Applies a (re)loaded configuration: (re)connects when `kubernetes` changed, starts watches
  // for new discovering pools and for pools whose `discovery` changed, stops the others. An error
  // (no cluster credentials, bad kubeconfig) leaves the running watches as they were.
  Status Configure(const GatewayConfig& config);
  // `config` with the discovered endpoints filled into every discovering pool (sorted by URL),
  // and the priorities of its pools' InferenceObjectives set on their models.
  GatewayConfig WithEndpoints(const GatewayConfig& config) const;
  // Ends every watch (shutdown).
  void Stop();

  // False while a discovering pool has not had its first complete LIST (reason: its last error,
  // e.g. a 403, or that it is still waiting). Admin thread = control thread.
  bool Ready(std::string& reason) const;
  // Writes the member "discovery":{"<pool>":{...}} of /readyz; nothing when no pool discovers.
  void WriteStatusJson(JsonWriter& w) const;
  void RenderMetrics(PrometheusText& t) const;
  bool active() const { return !pools_.empty(); }

 private:
  struct PoolWatch {
    std::string pool;
    PoolDiscoveryConfig config;
    std::string namespace_name;
    std::shared_ptr<KubeReflector> inference_pool;  // null: selector mode
    std::shared_ptr<KubeReflector> pods;
    std::shared_ptr<KubeReflector> claims, slices;  // with `dra`
    std::shared_ptr<KubeReflector> objectives;      // with `objectives`
    std::map<std::string, int32_t> priorities;      // model → priority, last published
    std::map<std::string, std::string> selector;    // of the pods watch now
    std::vector<uint16_t> ports;
    std::vector<EndpointConfig> endpoints;  // last published
    std::string problem;                    // e.g. the InferencePool is missing
    int64_t started_ns = 0;
    std::set<std::string> warned;  // annotation warnings already logged
  };

  void StartPool(PoolWatch& w);
  void StopPool(PoolWatch& w);
  enum class Role { kInferencePool, kPods, kDevices, kObjectives };
  void OnObjectives(const std::string& pool);
  void OnInferencePool(const std::string& pool);
  void OnPods(const std::string& pool);
  void Recompute(PoolWatch& w);
  void Schedule();
  std::shared_ptr<KubeReflector> MakeReflector(const std::string& pool,
                                               KubeReflector::Resource resource, Role role);
  std::vector<const KubeReflector*> Reflectors(const PoolWatch& w) const;
  const PoolConfig* FindPool(const std::string& name) const;
  double SyncAge(const PoolWatch& w, int64_t now) const;

  boost::asio::io_context& ioc_;
  std::function<void()> on_change_;
  boost::asio::steady_timer coalesce_timer_;
  bool scheduled_ = false;
  KubernetesConfig kube_config_;
  std::vector<PoolConfig> pool_configs_;  // of the configuration in use
  std::shared_ptr<KubeClient> client_;
  std::map<std::string, std::unique_ptr<PoolWatch>> pools_;
  DiscoveryCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tokenway
