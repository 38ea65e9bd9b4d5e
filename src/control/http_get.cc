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

struct KeptConnection::State {
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

KeptConnection::KeptConnection() : state_(std::make_unique<State>()) {}
KeptConnection::~KeptConnection() = default;
bool KeptConnection::open() const {
  return state_->stream.has_value();
}

asio::awaitable<std::optional<std::string>> HttpGet(PoolEndpoint endpoint, std::string path,
                                                    Duration timeout, uint64_t body_limit,
                                                    std::string user_agent,
                                                    std::shared_ptr<KeptConnection> keep) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  auto executor = co_await asio::this_coro::executor;
  // A one-call connection when nothing is kept.
  auto local = keep ? keep : std::make_shared<KeptConnection>();
  KeptConnection::State& st = local->state();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = st.stream.has_value();
    if (!reused) {
      st.stream.emplace(executor);
      st.buffer.clear();
      st.stream->expires_at(deadline);
      local->CountConnect();
      auto [cec] = co_await st.stream->async_connect(endpoint.address, kNoThrow);
      if (cec) {
        st.stream.reset();
        co_return std::nullopt;
      }
    }
    st.stream->expires_at(deadline);
    http::request<http::empty_body> req(http::verb::get, path, 11);
    req.set(http::field::host, endpoint.host_header);
    if (!keep) req.set(http::field::connection, "close");
    req.set(http::field::user_agent, user_agent);
    auto [wec, wn] = co_await http::async_write(*st.stream, req, kNoThrow);
    http::response_parser<http::string_body> parser;
    parser.body_limit(body_limit);
    boost::system::error_code rec;
    if (!wec) {
      auto [ec, rn] = co_await http::async_read(*st.stream, st.buffer, parser, kNoThrow);
      rec = ec;
    }
    if (wec || rec) {
      st.stream.reset();
      // The server may have closed a kept connection while it was idle: one fresh try, if time
      // is left and nothing of a response arrived.
      bool idle_close = reused && !parser.got_some() && std::chrono::steady_clock::now() < deadline;
      if (idle_close) continue;
      co_return std::nullopt;
    }
    if (!keep || !parser.keep_alive()) st.stream.reset();
    if (parser.get().result_int() / 100 != 2) co_return std::nullopt;
    co_return std::move(parser.get().body());
  }
  co_return std::nullopt;
}

}  // namespace tokenway
