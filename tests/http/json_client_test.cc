// JsonClient against small scripted HTTP services on loopback: keep-alive reuse, the deadline,
// bounded answers, connections that close, connect failures and their retries.
#include "http/json_client.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <optional>

namespace tokenway {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// What the service does with each request it reads: the raw bytes to write back (empty: close
// at once), and a delay before writing.
struct Reply {
  std::string bytes;
  std::chrono::milliseconds delay{0};
  bool close_after = false;
};

class ScriptedService {
 public:
  ScriptedService(asio::io_context& io, std::function<Reply(const std::string&)> script)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        script_(std::move(script)) {
    asio::co_spawn(io, Accept(), asio::detached);
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted = 0;
  int requests = 0;
  std::string last_request;

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) co_return;
      ++accepted;
      asio::co_spawn(acceptor_.get_executor(), Serve(std::move(socket)), asio::detached);
    }
  }
  asio::awaitable<void> Serve(tcp::socket socket) {
    std::string buf;
    for (;;) {
      auto [ec, n] =
          co_await asio::async_read_until(socket, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
      if (ec) co_return;
      std::string head = buf.substr(0, n);
      buf.erase(0, n);
      size_t length = 0;
      if (auto at = head.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(head.substr(at + 16));
      }
      while (buf.size() < length) {
        char tmp[4096];
        auto [rec, m] = co_await socket.async_read_some(asio::buffer(tmp), kNoThrow);
        if (rec) co_return;
        buf.append(tmp, m);
      }
      last_request = head + buf.substr(0, length);
      buf.erase(0, length);
      ++requests;
      Reply r = script_(last_request);
      if (r.delay.count() > 0) {
        asio::steady_timer t(socket.get_executor());
        t.expires_after(r.delay);
        co_await t.async_wait(kNoThrow);
      }
      if (r.bytes.empty()) co_return;
      co_await asio::async_write(socket, asio::buffer(r.bytes), kNoThrow);
      if (r.close_after) co_return;
    }
  }
  tcp::acceptor acceptor_;
  std::function<Reply(const std::string&)> script_;
};

std::string Ok(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

JsonResponse Call(asio::io_context& io, JsonClient& client, const std::string& url,
                  std::string body, JsonPostOptions options = {}) {
  auto target = ParseHttpUrl(url);
  EXPECT_TRUE(target.ok()) << target.status().message();
  std::optional<JsonResponse> out;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { out = co_await client.Post(*target, body, options); },
      asio::detached);
  io.restart();
  while (!out && io.run_one() > 0) {
  }
  return out.value_or(JsonResponse{});
}

std::string Url(uint16_t port, std::string path = "/check") {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

TEST(ParseHttpUrl, AcceptsHostsPortsAndPaths) {
  auto t = ParseHttpUrl("http://guard.local:8080/v1/check?x=1");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->host, "guard.local");
  EXPECT_EQ(t->port, 8080);
  EXPECT_EQ(t->path, "/v1/check?x=1");
  EXPECT_EQ(t->authority, "guard.local:8080");
  auto v6 = ParseHttpUrl("http://[::1]:9000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->path, "/");
  auto plain = ParseHttpUrl("HTTP://example.com");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->port, 80);
}

TEST(ParseHttpUrl, RejectsWhatItCannotCall) {
  for (const char* bad : {"https://x/", "ftp://x", "http://", "http://:80/", "http://x:0/",
                          "http://x:99999/", "http://x:8a/", "http://u:p@x/", "http://[::1/"}) {
    EXPECT_FALSE(ParseHttpUrl(bad).ok()) << bad;
  }
}

TEST(JsonClient, PostsJsonAndReusesTheConnection) {
  asio::io_context io;
  ScriptedService svc(io, [](const std::string&) { return Reply{Ok(R"({"action":"allow"})")}; });
  JsonClient client(io);
  for (int i = 0; i < 3; ++i) {
    JsonResponse r = Call(io, client, Url(svc.port()), R"({"n":1})");
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"action":"allow"})");
  }
  EXPECT_EQ(svc.accepted, 1);
  EXPECT_EQ(client.connects(), 1u);
  EXPECT_EQ(client.idle_count(), 1u);
  EXPECT_NE(svc.last_request.find("POST /check HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(svc.last_request.find("Content-Type: application/json"), std::string::npos);
  EXPECT_NE(svc.last_request.find("\r\n\r\n{\"n\":1}"), std::string::npos);
  client.CloseIdleBefore(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(client.idle_count(), 0u);
}

TEST(JsonClient, ReadsChunkedAndCloseDelimitedAnswers) {
  asio::io_context io;
  int n = 0;
  ScriptedService svc(io, [&](const std::string&) {
    if (n++ == 0) {
      return Reply{
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
          "chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n"};
    }
    return Reply{"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\noops", {}, true};
  });
  JsonClient client(io);
  JsonResponse r = Call(io, client, Url(svc.port()), "{}");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.body, R"({"a":1})");
  r = Call(io, client, Url(svc.port()), "{}");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "oops");
  EXPECT_EQ(client.idle_count(), 0u);  // Connection: close is not kept
}

TEST(JsonClient, TimesOutOnAServiceThatHangs) {
  asio::io_context io;
  ScriptedService svc(io, [](const std::string&) {
    return Reply{Ok("{}"), std::chrono::milliseconds(2000)};
  });
  JsonClient client(io);
  JsonPostOptions o;
  o.timeout = std::chrono::milliseconds(100);
  o.retries = 3;  // never used: the request was sent
  const auto start = std::chrono::steady_clock::now();
  JsonResponse r = Call(io, client, Url(svc.port()), "{}", o);
  EXPECT_EQ(r.error, JsonCallError::kTimeout) << r.message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(svc.requests, 1);
  EXPECT_EQ(r.attempts, 1u);
  EXPECT_EQ(client.idle_count(), 0u);
}

TEST(JsonClient, BoundsTheAnswer) {
  asio::io_context io;
  ScriptedService svc(io, [](const std::string&) { return Reply{Ok(std::string(5000, 'x'))}; });
  JsonClient client(io);
  JsonPostOptions o;
  o.max_response_bytes = 1000;
  JsonResponse r = Call(io, client, Url(svc.port()), "{}", o);
  EXPECT_EQ(r.error, JsonCallError::kTooLarge) << r.message;
}

TEST(JsonClient, ReportsAConnectionClosedMidAnswer) {
  asio::io_context io;
  ScriptedService svc(io, [](const std::string&) {
    return Reply{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"action\":", {}, true};
  });
  JsonClient client(io);
  JsonResponse r = Call(io, client, Url(svc.port()), "{}");
  EXPECT_EQ(r.error, JsonCallError::kClosed) << r.message;
}

TEST(JsonClient, ReportsGarbageAsAProtocolError) {
  asio::io_context io;
  ScriptedService svc(io, [](const std::string&) { return Reply{"NOT HTTP AT ALL\r\n\r\n"}; });
  JsonClient client(io);
  JsonResponse r = Call(io, client, Url(svc.port()), "{}");
  EXPECT_EQ(r.error, JsonCallError::kProtocol) << r.message;
}

TEST(JsonClient, RetriesOnlyConnectFailures) {
  asio::io_context io;
  uint16_t closed_port;
  {
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  JsonClient client(io);
  JsonPostOptions o;
  o.retries = 2;
  JsonResponse r = Call(io, client, Url(closed_port), "{}", o);
  EXPECT_EQ(r.error, JsonCallError::kConnect) << r.message;
  EXPECT_EQ(r.attempts, 3u);
}

TEST(JsonClient, ReplacesAKeepAliveConnectionTheServerClosed) {
  asio::io_context io;
  int n = 0;
  ScriptedService svc(io, [&](const std::string&) {
    // The first answer keeps the connection open per HTTP but the service closes it after.
    return Reply{Ok(std::to_string(n++)), {}, true};
  });
  JsonClient client(io);
  JsonResponse r = Call(io, client, Url(svc.port()), "{}");
  ASSERT_TRUE(r.ok()) << r.message;
  // Let the close reach the client's side.
  asio::steady_timer t(io);
  t.expires_after(std::chrono::milliseconds(20));
  t.async_wait([](auto) {});
  io.restart();
  io.run_one();
  r = Call(io, client, Url(svc.port()), "{}");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.body, "1");
  EXPECT_EQ(r.attempts, 1u);
  EXPECT_EQ(svc.accepted, 2);
}

}  // namespace
}  // namespace tokenway
