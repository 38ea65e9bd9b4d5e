#include "control/engine_scraper.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
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
                                                             EngineMetricsConfig config) {
  Fetched result;
  auto body = co_await HttpGet(std::move(endpoint), config.path, config.timeout,
                               config.max_body_bytes, "tokenway-engine-scraper");
  if (!body) co_return result;
  result.ok = true;
  result.body = std::move(*body);
  co_return result;
}

asio::awaitable<void> EngineScraper::Loop() {
  asio::steady_timer timer(ioc_);
  // Endpoints with a fetch in flight; touched only on the control thread.
  auto busy = std::make_shared<std::unordered_set<const EndpointState*>>();
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
          asio::co_spawn(
              ioc_,
              [](PoolEndpoint ep, EngineMetricsConfig config, EngineKind kind,
                 std::shared_ptr<std::unordered_set<const EndpointState*>> busy)
                  -> asio::awaitable<void> {
                // Requests sent before this fetch are in the engine's counts it returns.
                int32_t sent_before = ep.state->sent_since_scrape.load(std::memory_order_relaxed);
                Fetched fetched = co_await Fetch(ep, config);
                EngineReading reading;
                if (fetched.ok) {
                  reading = ReadEngineMetrics(kind, fetched.body, config.max_body_bytes);
                }
                PublishEngineReading(reading, *ep.state, MonotonicNanos());
                if (reading.valid) {
                  ep.state->sent_since_scrape.fetch_sub(sent_before, std::memory_order_relaxed);
                }
                busy->erase(ep.state.get());
              }(ep, config, ep.engine, busy),
              asio::detached);
        }
      }
    }
    timer.expires_after(config.interval);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

}  // namespace tokenway
