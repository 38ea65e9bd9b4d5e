// EngineScraper: fetches every endpoint's /metrics on the control thread and publishes engine
// signals (queue, running, KV utilisation, LoRA adapters) into EndpointState::engine.
//
// Every `engine_metrics.interval` each distinct endpoint of the current Runtime gets one
// GET <engine_metrics.path> on a kept-alive connection, unless its previous fetch is still
// running (at most one fetch per endpoint in flight). Each fetch has `timeout` and reads at most
// `max_body_bytes`; the body is decoded by the endpoint's engine adapter (routing/engine_adapter.h;
// an endpoint listed in several pools has one engine, which the config loader enforces). A failed
// fetch, a non-2xx answer, an oversized or unusable body marks the signals invalid and counts a
// scrape failure; signals older than `stale_after` are marked invalid and counted as stale. Scorers
// treat invalid signals as saturated. Owned by the Gateway next to the HealthChecker.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

#include "control/http_get.h"
#include "control/runtime.h"

namespace tokenway {

class EngineScraper {
 public:
  // `current` returns the Runtime whose endpoints and settings apply right now.
  EngineScraper(boost::asio::io_context& ioc,
                std::function<std::shared_ptr<const Runtime>()> current);
  // Starts the periodic loop on the io_context; it ends when the io_context stops.
  void Start();
  // One fetch (also used by tests): the body when the endpoint answered 2xx within the timeout
  // and the limit, otherwise an empty optional-like result (ok == false).
  struct Fetched {
    bool ok = false;
    std::string body;
  };
  // `keep`: a connection to reuse and keep open (null: a fresh one, closed afterwards).
  static boost::asio::awaitable<Fetched> Fetch(PoolEndpoint endpoint, EngineMetricsConfig config,
                                               std::shared_ptr<KeptConnection> keep = nullptr);

 private:
  boost::asio::awaitable<void> Loop();
  // Scrapes one endpoint and publishes the reading to its state; `busy` marks it in progress.
  static boost::asio::awaitable<void> ScrapeOne(
      PoolEndpoint ep, EngineMetricsConfig config, EngineKind kind,
      std::shared_ptr<std::unordered_set<const EndpointState*>> busy,
      std::shared_ptr<KeptConnection> kept);
  boost::asio::io_context& ioc_;
  std::function<std::shared_ptr<const Runtime>()> current_;
};

}  // namespace tokenway
