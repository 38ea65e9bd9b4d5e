#include "control/health_checker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <set>

#include "common/log.h"

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

HealthChecker::HealthChecker(asio::io_context& ioc,
                             std::function<std::shared_ptr<const Runtime>()> current)
    : ioc_(ioc), current_(std::move(current)) {}

void HealthChecker::Start() {
  asio::co_spawn(ioc_, Loop(), asio::detached);
}

asio::awaitable<bool> HealthChecker::Probe(PoolEndpoint endpoint, ActiveHealthConfig config) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(config.timeout);
  auto [cec] = co_await stream.async_connect(endpoint.address, kNoThrow);
  if (cec) co_return false;
  http::request<http::empty_body> req(http::verb::get, config.path, 11);
  req.set(http::field::host, endpoint.host_header);
  req.set(http::field::connection, "close");
  req.set(http::field::user_agent, "tokenway-health");
  auto [wec, wn] = co_await http::async_write(stream, req, kNoThrow);
  if (wec) co_return false;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
  if (rec) co_return false;
  co_return parser.get().result_int() / 100 == 2;
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
          asio::co_spawn(
              ioc_,
              [](PoolEndpoint ep, ActiveHealthConfig config) -> asio::awaitable<void> {
                bool ok = co_await Probe(ep, config);
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
                  if (s.healthy.load(std::memory_order_relaxed) &&
                      n >= config.unhealthy_threshold) {
                    s.healthy.store(false, std::memory_order_relaxed);
                    LogWarn("endpoint " + s.url + " failed " + std::to_string(n) +
                            " health checks; marked unhealthy");
                  }
                }
              }(ep, config),
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
