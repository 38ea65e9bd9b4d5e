// Typed configuration of Kubernetes discovery: the `kubernetes:` section (how to reach the API
// server) and a pool's `discovery:` block (which pods are its endpoints). Filled by the YAML
// loader (control/config.cc) on the control thread; read by control/discovery.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/duration.h"

namespace tokenway {

// pools[].discovery: the pool's endpoints are the Ready pods of an InferencePool, or of a label
// selector with explicit ports. A pod with several ports is several endpoints.
struct PoolDiscoveryConfig {
  bool enabled = false;
  std::string namespace_name;                   // empty: the gateway's own namespace
  std::string inference_pool;                   // InferencePool name; empty: `selector` + `ports`
  std::map<std::string, std::string> selector;  // matchLabels
  std::vector<uint16_t> ports;
  // Derive each pod's accelerator and capacity from its DRA devices (ResourceClaim status →
  // ResourceSlice productName → the pool's `accelerators`).
  bool dra = false;
  // Take models' priorities from the InferenceObjectives that name this InferencePool
  // (inference_pool only).
  bool objectives = false;

  bool operator==(const PoolDiscoveryConfig&) const = default;
};

// kubernetes: the API server connection shared by every discovering pool.
struct KubernetesConfig {
  // A kubeconfig file for running outside the cluster; empty: in-cluster (service account and
  // KUBERNETES_SERVICE_HOST/PORT).
  std::string kubeconfig;
  std::string context;  // kubeconfig context; empty: its current-context
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  // A watch that delivers nothing (not even a bookmark) for this long is reconnected.
  Duration watch_idle_timeout = std::chrono::seconds(120);
  Duration request_timeout = std::chrono::seconds(30);  // connect + one LIST page
  Duration backoff_initial = std::chrono::milliseconds(500);
  Duration backoff_max = std::chrono::seconds(30);
  // Endpoint changes arriving within this window are published as one snapshot.
  Duration coalesce = std::chrono::milliseconds(100);
  uint64_t max_event_bytes = 4 * 1024 * 1024;  // larger watch events are skipped and counted
  uint32_t page_size = 500;                    // LIST limit
  // group/version InferenceObjectives are read from (GIE v1.5; llm-d.ai/v1alpha2 in llm-d).
  std::string objective_api = "inference.networking.x-k8s.io/v1alpha2";

  bool operator==(const KubernetesConfig&) const = default;
};

}  // namespace tokenway
