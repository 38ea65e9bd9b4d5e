#include "control/engine_scraper.h"

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
#include <unordered_set>

#include "common/duration.h"
#include "common/log.h"

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

EngineScraper::EngineScraper(asio::io_context& ioc,
                             std::function<std::shared_ptr<const Runtime>()> current)
    : ioc_(ioc), current_(std::move(current)) {}

void EngineScraper::Start() {
  asio::co_spawn(ioc_, Loop(), asio::detached);
}

asio::awaitable<EngineScraper::Fetched> EngineScraper::Fetch(PoolEndpoint endpoint,
                                                             EngineMetricsConfig config) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  Fetched result;
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(config.timeout);
  auto [cec] = co_await stream.async_connect(endpoint.address, kNoThrow);
  if (cec) co_return result;
  http::request<http::empty_body> req(http::verb::get, config.path, 11);
  req.set(http::field::host, endpoint.host_header);
  req.set(http::field::connection, "close");
  req.set(http::field::user_agent, "tokenway-engine-scraper");
  auto [wec, wn] = co_await http::async_write(stream, req, kNoThrow);
  if (wec) co_return result;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(config.max_body_bytes);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
  if (rec || parser.get().result_int() / 100 != 2) co_return result;
  result.ok = true;
  result.body = std::move(parser.get().body());
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
                Fetched fetched = co_await Fetch(ep, config);
                EngineReading reading;
                if (fetched.ok) {
                  reading = ReadEngineMetrics(kind, fetched.body, config.max_body_bytes);
                }
                PublishEngineReading(reading, *ep.state, MonotonicNanos());
                busy->erase(ep.state.get());
              }(ep, config, pool->engine, busy),
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
