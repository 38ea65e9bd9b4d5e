// HttpGet against a scripted in-process HTTP server: kept-alive connections are reused, a kept
// connection the server closed while idle is replaced transparently, and one-shot calls ask the
// server to close.
#include "control/http_get.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace tokenway {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Answers every request on a connection with 200 "ok" (or 404 for /missing); closes the
// connection silently after each answer when `close_after_each` is set.
struct Server {
  explicit Server(asio::io_context& io, bool close_after_each)
      : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        close_after_each(close_after_each) {
    asio::co_spawn(io, Accept(), asio::detached);
  }
  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(kNoThrow);
      if (ec) co_return;
      ++accepts;
      asio::co_spawn(acceptor.get_executor(), Serve(std::move(sock)), asio::detached);
    }
  }
  asio::awaitable<void> Serve(tcp::socket sock) {
    std::string buf;
    for (;;) {
      auto [ec, n] =
          co_await asio::async_read_until(sock, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
      if (ec) co_return;
      std::string head = buf.substr(0, n);
      buf.erase(0, n);
      heads.push_back(head);
      bool missing = head.find("GET /missing ") == 0;
      std::string reply = missing ? "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
                                  : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(reply), kNoThrow);
      if (wec || close_after_each) co_return;
    }
  }
  PoolEndpoint endpoint() const {
    PoolEndpoint e;
    e.address = acceptor.local_endpoint();
    e.host_header = "127.0.0.1:" + std::to_string(e.address.port());
    e.url = "http://" + e.host_header;
    return e;
  }
  tcp::acceptor acceptor;
  bool close_after_each;
  int accepts = 0;
  std::vector<std::string> heads;
};

std::vector<std::optional<std::string>> GetAll(asio::io_context& io, Server& server,
                                               std::vector<std::string> paths,
                                               std::shared_ptr<KeptConnection> keep) {
  std::vector<std::optional<std::string>> out;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (const auto& p : paths) {
          out.push_back(co_await HttpGet(server.endpoint(), p, 2s, 1024, "test", keep));
          // Let the server finish its side (a close after the answer) before the next call.
          asio::steady_timer t(io, 5ms);
          co_await t.async_wait(asio::use_awaitable);
        }
        io.stop();  // the server still holds the kept connection open
      },
      asio::detached);
  io.run();
  return out;
}

TEST(HttpGetTest, KeptConnectionIsReused) {
  asio::io_context io;
  Server server(io, false);
  auto keep = std::make_shared<KeptConnection>();
  auto out = GetAll(io, server, {"/metrics", "/metrics", "/missing", "/metrics", "/metrics"}, keep);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], "ok");
  EXPECT_EQ(out[1], "ok");
  EXPECT_FALSE(out[2].has_value());  // a 404 is no body, but the connection stays usable
  EXPECT_EQ(out[4], "ok");
  EXPECT_EQ(server.accepts, 1);
  EXPECT_EQ(keep->connects(), 1u);
  EXPECT_TRUE(keep->open());
  for (const auto& h : server.heads) EXPECT_EQ(h.find("Connection: close"), std::string::npos);
}

TEST(HttpGetTest, ConnectionClosedWhileIdleIsReplaced) {
  asio::io_context io;
  Server server(io, true);
  auto keep = std::make_shared<KeptConnection>();
  auto out = GetAll(io, server, {"/metrics", "/metrics", "/metrics"}, keep);
  ASSERT_EQ(out.size(), 3u);
  for (const auto& o : out) EXPECT_EQ(o, "ok");
  EXPECT_EQ(server.accepts, 3);
  EXPECT_EQ(keep->connects(), 3u);
}

TEST(HttpGetTest, OneShotCallsAskTheServerToClose) {
  asio::io_context io;
  Server server(io, false);
  auto out = GetAll(io, server, {"/health", "/health"}, nullptr);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1], "ok");
  EXPECT_EQ(server.accepts, 2);
  for (const auto& h : server.heads) EXPECT_NE(h.find("Connection: close"), std::string::npos);
}

TEST(HttpGetTest, UnreachableEndpointIsNullopt) {
  asio::io_context io;
  PoolEndpoint e;
  {
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    e.address = a.local_endpoint();
  }  // closed: nothing listens there now
  e.host_header = "127.0.0.1";
  auto keep = std::make_shared<KeptConnection>();
  std::optional<std::string> got = "unset";
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { got = co_await HttpGet(e, "/", 1s, 10, "t", keep); },
      asio::detached);
  io.run();
  EXPECT_FALSE(got.has_value());
  EXPECT_FALSE(keep->open());
}

}  // namespace
}  // namespace tokenway
