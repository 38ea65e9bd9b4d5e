// The simulator's HTTP front end: N independent endpoints (one Engine each) served by one
// Asio event loop. Each endpoint speaks vLLM's OpenAI-compatible API over keep-alive HTTP/1.1,
// streams every token as one chunked SSE event the moment its engine step completes, exposes
// /metrics and accepts fault settings at /sim/faults. The owner creates the server on the
// io_context's thread, calls Listen() then Start(), and runs the io_context on that one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "sim/api.h"
#include "sim/engine.h"
#include "sim/faults.h"
#include "sim/metrics_text.h"

namespace tokenway::sim {

struct EndpointOptions {
  EngineConfig engine;
  FaultConfig faults;
  std::vector<AdapterEntry> loras;  // registered at start (vLLM --lora-modules)
  MetricsDialect dialect = MetricsDialect::kVllm;
  double output_len_mean = 179;  // mean of sampled output lengths (ShareGPT) without max_tokens
  int64_t max_waiting = 4096;    // requests beyond this many waiting are answered 503
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t first_port = 0;  // 0: every endpoint gets a free port
  double speed = 1.0;       // engine clock runs this many times faster than the wall clock
  std::vector<EndpointOptions> endpoints;
};

class SimServer {
 public:
  SimServer(boost::asio::io_context& io, ServerOptions options);
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  // Binds every endpoint's listener; throws boost::system::system_error when a port is taken.
  // Returns the bound ports in endpoint order.
  std::vector<uint16_t> Listen();
  // Starts accepting connections (after Listen).
  void Start();
  // Graceful shutdown (SIGTERM), as a model server behind a Kubernetes Service does it: stop
  // accepting connections; every request already read is answered to its end, and each
  // connection closes after its current response.
  void Drain();
  // Requests read and not yet answered to the end, over every endpoint.
  int64_t active_requests() const;

 private:
  class Endpoint;
  boost::asio::io_context& io_;
  ServerOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
};

}  // namespace tokenway::sim
