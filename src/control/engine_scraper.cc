#include "control/engine_scraper.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "common/duration.h"
#include "common/log.h"
#include "control/http_get.h"

namespace tokenway {

namespace asio = boost::asio;

EngineScraper::EngineScraper(asio::io_context& ioc,
                             std::function<std::shared_ptr<const Runtime>()> current)
    : ioc_(ioc), current_(std::move(current)) {}

void EngineScraper::Start() {
  asio::co_spawn(ioc_, Loop(), asio::detached);
}

asio::awaitable<EngineScraper::Fetched> EngineScraper::Fetch(PoolEndpoint endpoint,
                                                             EngineMetricsConfig config,
                                                             std::shared_ptr<KeptConnection> keep) {
  Fetched result;
  auto body = co_await HttpGet(std::move(endpoint), config.path, config.timeout,
                               config.max_body_bytes, "tokenway-engine-scraper", std::move(keep));
  if (!body) co_return result;
  result.ok = true;
  result.body = std::move(*body);
  co_return result;
}

asio::awaitable<void> EngineScraper::ScrapeOne(
    PoolEndpoint ep, EngineMetricsConfig config, EngineKind kind,
    std::shared_ptr<std::unordered_set<const EndpointState*>> busy,
    std::shared_ptr<KeptConnection> kept) {
  // Requests sent before this fetch are in the engine's counts it returns.
  int32_t sent_before = ep.state->sent_since_scrape.load(std::memory_order_relaxed);
  Fetched fetched = co_await Fetch(ep, config, kept);
  EngineReading reading;
  if (fetched.ok) reading = ReadEngineMetrics(kind, fetched.body, config.max_body_bytes);
  PublishEngineReading(reading, *ep.state, MonotonicNanos());
  if (reading.valid) ep.state->sent_since_scrape.fetch_sub(sent_before, std::memory_order_relaxed);
  busy->erase(ep.state.get());
}

asio::awaitable<void> EngineScraper::Loop() {
  asio::steady_timer timer(ioc_);
  // Endpoints with a fetch in flight; touched only on the control thread.
  auto busy = std::make_shared<std::unordered_set<const EndpointState*>>();
  // One kept-alive connection per endpoint (its fetches never overlap), dropped when the
  // endpoint leaves the configuration.
  std::unordered_map<const EndpointState*, std::shared_ptr<KeptConnection>> connections;
  for (;;) {
    std::shared_ptr<const Runtime> rt = current_();
    const EngineMetricsConfig config = rt->config.engine_metrics;
    if (config.enabled) {
      int64_t now = MonotonicNanos();
      std::set<const EndpointState*> seen;
      for (const auto& pool : rt->pools) {
        for (const auto& ep : pool->endpoints) {
          if (!seen.insert(ep.state.get()).second) continue;
          EngineSignals& e = ep.state->engine;
          if (e.valid.load(std::memory_order_relaxed) &&
              now - e.updated_at_ns.load(std::memory_order_relaxed) > config.stale_after.count()) {
            e.valid.store(false, std::memory_order_relaxed);
            e.stale_total.fetch_add(1, std::memory_order_relaxed);
          }
          if (!busy->insert(ep.state.get()).second) continue;
          auto& kept = connections[ep.state.get()];
          if (!kept) kept = std::make_shared<KeptConnection>();
          asio::co_spawn(ioc_, ScrapeOne(ep, config, ep.engine, busy, kept), asio::detached);
        }
      }
      for (auto it = connections.begin(); it != connections.end();) {
        it = seen.count(it->first) ? std::next(it) : connections.erase(it);
      }
    } else {
      connections.clear();
    }
    timer.expires_after(config.interval);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

}  // namespace tokenway
