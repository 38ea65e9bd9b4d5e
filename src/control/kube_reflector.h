// KubeReflector: keeps a local copy of one Kubernetes collection (pods matching a selector, or
// one InferencePool) in step with the API server, as client-go's reflector does.
//
// LIST (paged with limit/continue; the first from the watch cache, resourceVersion "0") fills
// the cache; a WATCH from the list's resourceVersion (allowWatchBookmarks) applies ADDED,
// MODIFIED and DELETED events and advances the resourceVersion on every event and BOOKMARK. A
// watch the server ends, or that stays silent past `watch_idle_timeout`, is re-opened from the
// last resourceVersion; 410 Gone (as the HTTP status or an ERROR event with code 410) relists
// from scratch (resourceVersion ""), replacing the cache. Connection and HTTP errors retry with
// jittered exponential back-off; 401 has re-read the token already (KubeClient); 403 is logged
// with the verb, resource and namespace for RBAC. Malformed and oversized events are logged,
// counted and skipped. While the API server is away the cache keeps its last content.
//
// Runs as one coroutine on the control thread's io_context; `on_change` is called there after
// every change of the cache. Owned through shared_ptr by Discovery; Stop() ends the coroutine.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "control/discovery_config.h"
#include "control/kube_client.h"
#include "control/kube_objects.h"

namespace tokenway {

// Why discovery failed, for tokenway_discovery_errors_total{reason}.
enum class DiscoveryError {
  kConnect,            // no connection, TLS failure, broken request
  kUnauthorized,       // 401 (after re-reading the token)
  kForbidden,          // 403: RBAC
  kExpired,            // 410 Gone: resourceVersion too old, relisted
  kHttpStatus,         // another non-2xx answer or in-stream ERROR
  kWatchIdle,          // a watch silent past watch_idle_timeout, reconnected
  kWatchBroken,        // a watch stream cut mid-way
  kInvalidList,        // a LIST answer that is not a list
  kInvalidObject,      // an object discovery cannot use (e.g. an InferencePool without ports)
  kInvalidAnnotation,  // a tokenway.io/* pod annotation with a bad value
  kNotFound,           // the named InferencePool does not exist
  kCount
};
std::string_view DiscoveryErrorName(DiscoveryError e);

// Counters every reflector of the process adds to (control thread writes, admin reads).
struct DiscoveryCounters {
  static constexpr size_t kEventKinds = 6;  // WatchEventType values, then "unknown"
  enum Result { kApplied, kMalformed, kOversized, kResults };
  std::array<std::array<std::atomic<uint64_t>, kResults>, kEventKinds> events{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(DiscoveryError::kCount)> errors{};
  std::atomic<uint64_t> lists{0};
  void Count(DiscoveryError e) {
    errors[static_cast<size_t>(e)].fetch_add(1, std::memory_order_relaxed);
  }
};

class KubeReflector : public std::enable_shared_from_this<KubeReflector> {
 public:
  struct Resource {
    KubeKind kind = KubeKind::kPod;
    std::string path;            // collection path, e.g. /api/v1/namespaces/llm/pods
    std::string label_selector;  // k=v,k2=v2 (encoded when sent); empty: none
    std::string field_selector;  // e.g. metadata.name=x; empty: none
    std::string resource;        // "pods", "inferencepools" (logs)
    std::string namespace_name;  // (logs)
  };

  KubeReflector(boost::asio::io_context& ioc, std::shared_ptr<KubeClient> client,
                const KubernetesConfig& config, Resource resource, DiscoveryCounters* counters,
                std::function<void()> on_change);
  void Start();
  // Ends the loop and any open watch; the cache stays readable.
  void Stop();

  const std::map<std::string, KubeObject>& objects() const { return objects_; }
  bool synced() const { return synced_; }        // a LIST has completed
  bool connected() const { return connected_; }  // a watch is open now
  int64_t last_contact_ns() const { return last_contact_ns_; }
  bool forbidden() const { return forbidden_; }
  const std::string& last_error() const { return last_error_; }  // empty after a success
  const Resource& resource() const { return resource_; }

 private:
  enum class WatchEnd { kReopen, kRelist, kFailed };
  static boost::asio::awaitable<void> Run(std::shared_ptr<KubeReflector> self);
  boost::asio::awaitable<bool> List(std::string rv_param);
  boost::asio::awaitable<WatchEnd> WatchOnce();
  boost::asio::awaitable<void> Backoff(uint32_t failures);
  std::string Target(std::string_view extra) const;
  void Fail(DiscoveryError reason, const std::string& what, int status);
  void OnEvent(std::string_view json, bool& changed, bool& expired, bool& error_event);

  boost::asio::io_context& ioc_;
  std::shared_ptr<KubeClient> client_;
  KubernetesConfig config_;
  Resource resource_;
  DiscoveryCounters* counters_;
  std::function<void()> on_change_;
  boost::asio::steady_timer backoff_timer_;
  std::shared_ptr<WatchCancel> cancel_;
  KubeJsonDecoder decoder_;
  std::mt19937_64 random_;

  std::map<std::string, KubeObject> objects_;
  std::string resource_version_;
  bool stopped_ = false;
  bool synced_ = false;
  bool connected_ = false;
  bool forbidden_ = false;
  int64_t last_contact_ns_ = 0;
  std::string last_error_;
};

}  // namespace tokenway
