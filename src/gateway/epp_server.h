// EppServer: the endpoint-picker front door — a gRPC server speaking Envoy's external-processing
// protocol (envoy.service.ext_proc.v3.ExternalProcessor/Process) as the Gateway API Inference
// Extension's endpoint picker, beside the HTTP front door and on the same workers, snapshots,
// discovery, flow control, limits and metrics; plus grpc.health.v1.Health for the Gateway's and
// the kubelet's probes.
//
// gRPC's callback API serves the streams: no thread per stream. Each new stream is bound to one
// worker, round-robin, and every message is handed to that worker's event loop (EppStream).
// Beyond epp.max_streams open streams a new one is refused with RESOURCE_EXHAUSTED; while
// draining, with UNAVAILABLE.
//
// Health: "liveness" is SERVING while the process runs, "" while it is not draining;
// "readiness", "inference-extension" and "envoy.service.ext_proc.v3.ExternalProcessor" are
// SERVING when the control thread last found the gateway ready (every pool has an eligible
// endpoint, discovery has synced, not draining). Watch streams every change.
//
// Threads: Start, SetReady, BeginDrain and Stop are called by the control thread; gRPC's own
// threads run the services.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/config.h"
#include "tokenway/status.h"

namespace grpc {
class Server;
}

namespace tokenway {

class Worker;
struct EppStreamShared;

class EppServer {
 public:
  // The workers serve the streams and must run from Start() until Stop() returns.
  explicit EppServer(std::vector<Worker*> workers);
  ~EppServer();
  EppServer(const EppServer&) = delete;
  EppServer& operator=(const EppServer&) = delete;

  // Listens on config.listen (port 0: the kernel's choice) with TLS when a certificate is
  // configured, and serves. Returns the bound port; an error names what failed (address, files).
  // `max_message_bytes` bounds one received message (a BUFFERED body is one message).
  StatusOr<int> Start(const EppConfig& config, uint64_t max_message_bytes);
  // Readiness as the health service reports it (thread-safe; watchers are told of a change).
  void SetReady(bool ready);
  // New streams are refused (UNAVAILABLE) and readiness turns NOT_SERVING; open streams go on.
  void BeginDrain();
  // Cancels the streams still open, waits until gRPC and the workers are done with them.
  void Stop();

  class HealthWatch;

 private:
  class ExtProcService;
  class HealthService;
  friend class HealthWatch;
  // grpc.health.v1 status of `service`: 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN.
  int StatusFor(const std::string& service) const;
  void AddWatch(HealthWatch* w);
  void RemoveWatch(HealthWatch* w);
  void NotifyWatches();

  std::vector<Worker*> workers_;
  std::shared_ptr<EppStreamShared> shared_;
  std::unique_ptr<ExtProcService> ext_proc_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  // Health watchers (not the request path): added and removed by gRPC threads, notified by the
  // control thread.
  std::mutex watches_mu_;
  std::vector<HealthWatch*> watches_;
};

}  // namespace tokenway
