// Worker: one event loop on one thread, its own SO_REUSEPORT listener, and everything a request
// needs on the way (upstream connection pool, body inspector, metrics, access-log buffer, the JSON
// client external payload processors call their services with).
//
// A request stays on the worker that accepted its connection. The control thread talks to a
// worker only by posting to its io_context: a new Runtime snapshot, the start of a drain, stop.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "cache/cache_key.h"
#include "cache/cached_response.h"
#include "cache/response_cache.h"
#include "common/request_inspector.h"
#include "common/usage.h"
#include "control/runtime.h"
#include "gateway/route_embeddings.h"
#include "http/deadline_sweep.h"
#include "http/json_client.h"
#include "http/upstream_pool.h"
#include "telemetry/access_log.h"
#include "telemetry/metrics.h"
#include "telemetry/otlp_exporter.h"

namespace tokenway {

class ClientSession;

// Process-wide state shared by all workers (atomics only on the request path).
struct GatewayShared {
  std::atomic<bool> draining{false};
  std::atomic<int64_t> connections{0};
  std::shared_ptr<AccessLogSink> access_log;
  std::shared_ptr<OtlpExporter> traces;  // null when tracing is off
  std::shared_ptr<ResponseCache> cache;  // created at start; used while cache.enabled
};

class Worker {
 public:
  Worker(uint32_t id, GatewayShared& shared, WorkerMetrics& metrics);
  ~Worker();

  // Binds the listener (before Start; without one the worker serves only the endpoint-picker
  // front door's streams). With port 0 the kernel picks one; the caller binds the
  // other workers to the same port.
  boost::asio::ip::tcp::endpoint Listen(const boost::asio::ip::tcp::endpoint& at);
  void Start(std::shared_ptr<const Runtime> runtime);
  // Thread-safe: hands the worker a new snapshot for requests that start from now on.
  void Publish(std::shared_ptr<const Runtime> runtime);
  // Thread-safe: stop accepting, close idle client connections, finish the rest.
  void BeginDrain();
  // Thread-safe: stop the loop and join the thread.
  void Stop();

  // --- used by sessions on the worker thread ---
  uint32_t id() const { return id_; }
  boost::asio::io_context& io() { return *ioc_; }
  const std::shared_ptr<const Runtime>& runtime() const { return runtime_; }
  // Pins the current snapshot for a request (see RuntimePin): a plain per-worker count, no
  // atomic on a control block that every worker shares.
  const Runtime* PinRuntime();
  void UnpinRuntime(const Runtime* runtime);
  GatewayShared& shared() { return shared_; }
  WorkerMetrics& metrics() { return metrics_; }
  DeadlineSweep& sweep() { return sweep_; }
  UpstreamPool& upstreams() { return upstreams_; }
  // Side services the request path calls (webhook processors, a semantic router's embeddings
  // backend).
  JsonClient& json_client() { return *json_client_; }
  RouteEmbeddings& route_embeddings() { return *route_embeddings_; }
  RequestInspector& inspector() { return inspector_; }
  UsageReader& usage_reader() { return usage_reader_; }
  CacheKeyBuilder& cache_keys() { return cache_keys_; }
  ResponseReader& response_reader() { return response_reader_; }
  AccessLogBuffer& access_log() { return access_log_; }
  uint64_t NextRandom() { return rng_(); }
  void AddSession(ClientSession* s);
  void RemoveSession(ClientSession* s);

 private:
  void AcceptLoop();
  void Tick();

  const uint32_t id_;
  GatewayShared& shared_;
  WorkerMetrics& metrics_;
  // The io_context is destroyed first (explicitly, in ~Worker) so that coroutine frames it still
  // holds are torn down while the pool, the sweep and the session list are alive.
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  std::optional<boost::asio::steady_timer> tick_timer_;
  std::shared_ptr<const Runtime> runtime_;
  // Requests running on each snapshot this worker has served: the current one, and retired ones
  // that still have requests (dropped when their last request ends). Worker thread only.
  struct Pinned {
    std::shared_ptr<const Runtime> runtime;
    uint32_t requests = 0;
  };
  uint32_t current_pins_ = 0;
  std::vector<Pinned> retired_;
  DeadlineSweep sweep_;
  UpstreamPool upstreams_;
  std::optional<JsonClient> json_client_;  // on *ioc_; its idle connections close before it
  std::unique_ptr<RouteEmbeddings> route_embeddings_;
  RequestInspector inspector_;
  UsageReader usage_reader_;
  CacheKeyBuilder cache_keys_;
  ResponseReader response_reader_;
  AccessLogBuffer access_log_;
  std::mt19937_64 rng_;
  std::vector<ClientSession*> sessions_;
  std::thread thread_;
  bool draining_ = false;
};

// A request's hold on the snapshot it started with, for as long as it runs. Worker thread.
class RuntimePin {
 public:
  explicit RuntimePin(Worker& worker) : worker_(worker), runtime_(worker.PinRuntime()) {}
  ~RuntimePin() { worker_.UnpinRuntime(runtime_); }
  RuntimePin(const RuntimePin&) = delete;
  RuntimePin& operator=(const RuntimePin&) = delete;
  const Runtime* get() const { return runtime_; }
  // Moves the pin to the worker's current snapshot when a newer one was published since (a
  // keep-alive connection pins before it waits for its next request; the request must route on
  // the endpoints of when it arrived, not of when the connection went idle).
  const Runtime* Refresh() {
    const Runtime* now = worker_.runtime().get();
    if (now != runtime_) {
      worker_.UnpinRuntime(runtime_);
      runtime_ = worker_.PinRuntime();
    }
    return runtime_;
  }

 private:
  Worker& worker_;
  const Runtime* runtime_;
};

}  // namespace tokenway
