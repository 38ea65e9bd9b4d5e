// HealthChecker: active health checks of every endpoint, on the control thread.
//
// Every interval, each endpoint of the current Runtime gets GET <path>; `unhealthy_threshold`
// failures in a row mark it unhealthy (pickers skip it), `healthy_threshold` successes mark it
// healthy again. Passive ejection (EndpointState::RecordFailure) works independently.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>

#include "control/runtime.h"

namespace tokenway {

class HealthChecker {
 public:
  // `current` returns the Runtime whose endpoints and settings apply right now.
  HealthChecker(boost::asio::io_context& ioc,
                std::function<std::shared_ptr<const Runtime>()> current);
  // Starts the periodic loop on the io_context; it ends when the io_context stops.
  void Start();
  // One probe (also used by tests): true when the endpoint answered 2xx within the timeout.
  static boost::asio::awaitable<bool> Probe(PoolEndpoint endpoint, ActiveHealthConfig config);
  // Probes one endpoint and applies the verdict to its state (thresholds of `config`).
  static boost::asio::awaitable<void> Check(PoolEndpoint endpoint, ActiveHealthConfig config);

 private:
  boost::asio::awaitable<void> Loop();
  boost::asio::io_context& ioc_;
  std::function<std::shared_ptr<const Runtime>()> current_;
};

}  // namespace tokenway
