// ScriptedService: a small HTTP/1.1 service on a loopback port, run by coroutines on the test's
// own io_context, that answers each request as a script says — raw bytes (so tests can send
// garbage, truncated or chunked answers), after a delay, or by closing the connection. Used by
// the tests of the JSON client and of the webhook payload processor to play hostile services.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <string>

namespace tokenway::testing {

// What the service does with one request: the raw bytes to write back (empty: close at once),
// after `delay`, then close when `close_after`.
struct Reply {
  std::string bytes;
  std::chrono::milliseconds delay{0};
  bool close_after = false;
};

// "HTTP/1.1 200 OK" with a JSON body.
inline std::string HttpOk(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

class ScriptedService {
 public:
  // `script` sees each request whole (head and body) and says how to answer.
  ScriptedService(boost::asio::io_context& io, std::function<Reply(const std::string&)> script)
      : acceptor_(io,
                  boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)),
        script_(std::move(script)) {
    boost::asio::co_spawn(io, Accept(), boost::asio::detached);
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url(std::string path = "/check") const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  int accepted = 0;
  int requests = 0;
  std::string last_request;  // head and body
  std::string last_body;

 private:
  static constexpr auto kNoThrow = boost::asio::as_tuple(boost::asio::use_awaitable);

  boost::asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) co_return;
      ++accepted;
      boost::asio::co_spawn(acceptor_.get_executor(), Serve(std::move(socket)),
                            boost::asio::detached);
    }
  }
  boost::asio::awaitable<void> Serve(boost::asio::ip::tcp::socket socket) {
    std::string buf;
    for (;;) {
      auto [ec, n] = co_await boost::asio::async_read_until(
          socket, boost::asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
      if (ec) co_return;
      std::string head = buf.substr(0, n);
      buf.erase(0, n);
      size_t length = 0;
      if (auto at = head.find("Content-Length: "); at != std::string::npos) {
        length = std::stoul(head.substr(at + 16));
      }
      while (buf.size() < length) {
        char tmp[4096];
        auto [rec, m] = co_await socket.async_read_some(boost::asio::buffer(tmp), kNoThrow);
        if (rec) co_return;
        buf.append(tmp, m);
      }
      last_body = buf.substr(0, length);
      last_request = head + last_body;
      buf.erase(0, length);
      ++requests;
      Reply r = script_(last_request);
      if (r.delay.count() > 0) {
        boost::asio::steady_timer t(socket.get_executor());
        t.expires_after(r.delay);
        co_await t.async_wait(kNoThrow);
      }
      if (r.bytes.empty()) co_return;
      co_await boost::asio::async_write(socket, boost::asio::buffer(r.bytes), kNoThrow);
      if (r.close_after) co_return;
    }
  }

  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<Reply(const std::string&)> script_;
};

}  // namespace tokenway::testing
