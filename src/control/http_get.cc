#include "control/http_get.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<std::optional<std::string>> HttpGet(PoolEndpoint endpoint, std::string path,
                                                    Duration timeout, uint64_t body_limit,
                                                    std::string user_agent) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  auto [cec] = co_await stream.async_connect(endpoint.address, kNoThrow);
  if (cec) co_return std::nullopt;
  http::request<http::empty_body> req(http::verb::get, path, 11);
  req.set(http::field::host, endpoint.host_header);
  req.set(http::field::connection, "close");
  req.set(http::field::user_agent, user_agent);
  auto [wec, wn] = co_await http::async_write(stream, req, kNoThrow);
  if (wec) co_return std::nullopt;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
  if (rec || parser.get().result_int() / 100 != 2) co_return std::nullopt;
  co_return std::move(parser.get().body());
}

}  // namespace tokenway
