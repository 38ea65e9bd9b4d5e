#include "control/health_checker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>

#include "common/log.h"
#include "control/http_get.h"

namespace tokenway {

namespace asio = boost::asio;

HealthChecker::HealthChecker(asio::io_context& ioc,
                             std::function<std::shared_ptr<const Runtime>()> current)
    : ioc_(ioc), current_(std::move(current)) {}

void HealthChecker::Start() {
  asio::co_spawn(ioc_, Loop(), asio::detached);
}

asio::awaitable<bool> HealthChecker::Probe(PoolEndpoint endpoint, ActiveHealthConfig config) {
  auto body = co_await HttpGet(std::move(endpoint), config.path, config.timeout, 64 * 1024,
                               "tokenway-health");
  co_return body.has_value();
}

asio::awaitable<void> HealthChecker::Check(PoolEndpoint ep, ActiveHealthConfig config) {
  const bool ok = co_await Probe(ep, config);
  EndpointState& s = *ep.state;
  if (ok) {
    s.health_failures.store(0, std::memory_order_relaxed);
    uint32_t n = s.health_successes.fetch_add(1, std::memory_order_relaxed) + 1;
    if (!s.healthy.load(std::memory_order_relaxed) && n >= config.healthy_threshold) {
      s.healthy.store(true, std::memory_order_relaxed);
      LogInfo("endpoint " + s.url + " is healthy again");
    }
  } else {
    s.health_successes.store(0, std::memory_order_relaxed);
    uint32_t n = s.health_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    if (s.healthy.load(std::memory_order_relaxed) && n >= config.unhealthy_threshold) {
      s.healthy.store(false, std::memory_order_relaxed);
      LogWarn("endpoint " + s.url + " failed " + std::to_string(n) +
              " health checks; marked unhealthy");
    }
  }
}

asio::awaitable<void> HealthChecker::Loop() {
  asio::steady_timer timer(ioc_);
  for (;;) {
    std::shared_ptr<const Runtime> rt = current_();
    const ActiveHealthConfig config = rt->config.active_health;
    if (config.enabled) {
      std::set<const EndpointState*> seen;
      for (const auto& pool : rt->pools) {
        for (const auto& ep : pool->endpoints) {
          if (!seen.insert(ep.state.get()).second) continue;
          asio::co_spawn(ioc_, Check(ep, config), asio::detached);
        }
      }
    }
    timer.expires_after(config.interval);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

}  // namespace tokenway
