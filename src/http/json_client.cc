#include "http/json_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>

#include "common/duration.h"
#include "http/request_parser.h"
#include "http/response_parser.h"

namespace tokenway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr uint32_t kHeaderLimit = 16 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

// One keep-alive connection. Shared with the deadline timer's handler, which holds it weakly and
// acts only if the call that armed it is still the current one (`armed`).
struct JsonClient::Connection {
  explicit Connection(asio::io_context& io) : socket(io), resolver(io), timer(io) {}

  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer timer;
  boost::beast::flat_buffer buffer;
  std::string key;
  uint64_t armed = 0;  // bumped by every Arm/Disarm; the timer acts on its own generation only
  bool expired = false;
  int64_t idle_since_ns = 0;

  void Arm(std::chrono::steady_clock::time_point at, const std::shared_ptr<Connection>& self) {
    const uint64_t generation = ++armed;
    expired = false;
    timer.expires_at(at);
    timer.async_wait(
        [weak = std::weak_ptr<Connection>(self), generation](const boost::system::error_code& ec) {
          if (ec) return;
          auto c = weak.lock();
          if (!c || c->armed != generation) return;
          c->expired = true;
          boost::system::error_code ignored;
          c->resolver.cancel();
          c->socket.cancel(ignored);
          c->socket.close(ignored);
        });
  }
  void Disarm() {
    ++armed;
    timer.cancel();
  }
};

const char* JsonCallErrorName(JsonCallError e) {
  switch (e) {
    case JsonCallError::kNone:
      return "none";
    case JsonCallError::kConnect:
      return "connect";
    case JsonCallError::kTimeout:
      return "timeout";
    case JsonCallError::kClosed:
      return "closed";
    case JsonCallError::kProtocol:
      return "protocol";
    case JsonCallError::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

StatusOr<HttpTarget> ParseHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || !EqualsIgnoreCase(url.substr(0, kScheme.size()), kScheme)) {
    return Status::Error("'" + std::string(url) + "' is not an http:// URL");
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpTarget t;
  t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (t.path.front() == '?') t.path.insert(0, "/");
  if (authority.empty()) return Status::Error("'" + std::string(url) + "' has no host");
  if (authority.find('@') != std::string_view::npos) {
    return Status::Error("'" + std::string(url) + "': credentials in the URL are not supported");
  }
  t.authority = std::string(authority);
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Status::Error("'" + std::string(url) + "': unterminated IPv6 address");
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Status::Error("'" + std::string(url) + "': bad authority");
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return Status::Error("'" + std::string(url) + "' has no host");
  if (!port.empty()) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
      return Status::Error("'" + std::string(url) + "': bad port '" + std::string(port) + "'");
    }
    t.port = static_cast<uint16_t>(value);
  }
  t.host = std::string(host);
  t.key = t.host + ":" + std::to_string(t.port);
  return t;
}

JsonClient::JsonClient(asio::io_context& io, uint32_t max_idle_per_target)
    : io_(io), max_idle_per_target_(max_idle_per_target) {}

JsonClient::~JsonClient() {
  CloseAll();
}

std::shared_ptr<JsonClient::Connection> JsonClient::TakeIdle(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  std::shared_ptr<Connection> c = std::move(it->second.back());
  it->second.pop_back();
  return c;
}

void JsonClient::Return(std::shared_ptr<Connection> conn) {
  auto& list = idle_[conn->key];
  if (list.size() >= max_idle_per_target_) return;  // closes with the last reference
  conn->idle_since_ns = MonotonicNanos();
  list.push_back(std::move(conn));
}

void JsonClient::CloseIdleBefore(int64_t cutoff_ns) {
  for (auto& [key, list] : idle_) {
    std::erase_if(list, [&](const auto& c) { return c->idle_since_ns < cutoff_ns; });
  }
}

void JsonClient::CloseAll() {
  idle_.clear();
}

size_t JsonClient::idle_count() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

asio::awaitable<JsonResponse> JsonClient::Post(const HttpTarget& target, std::string_view body,
                                               JsonPostOptions options) {
  JsonResponse out;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  std::string head;
  head.reserve(160 + target.path.size() + target.authority.size() + options.extra_headers.size());
  head.append("POST ").append(target.path).append(" HTTP/1.1\r\nHost: ").append(target.authority);
  head.append("\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ");
  head.append(std::to_string(body.size())).append("\r\n").append(options.extra_headers);
  head.append("\r\n");

  auto fail = [&](JsonCallError e, std::string message) {
    out.error = e;
    out.message = std::move(message);
    out.body.clear();
    return out;
  };

  uint32_t retries_left = options.retries;
  bool stale_retry_left = true;
  std::shared_ptr<Connection> conn = TakeIdle(target.key);
  for (;;) {
    ++out.attempts;
    const bool reused = conn != nullptr;
    if (!conn) {
      conn = std::make_shared<Connection>(io_);
      conn->key = target.key;
      conn->Arm(deadline, conn);
      boost::system::error_code ec;
      tcp::endpoint single;
      const asio::ip::address literal = asio::ip::make_address(target.host, ec);
      if (!ec) {
        single = tcp::endpoint(literal, target.port);
        std::tie(ec) = co_await conn->socket.async_connect(single, kNoThrow);
      } else {
        auto [rec, results] = co_await conn->resolver.async_resolve(
            target.host, std::to_string(target.port), kNoThrow);
        ec = rec;
        if (!ec && !conn->expired) {
          auto [cec, at] = co_await asio::async_connect(conn->socket, results, kNoThrow);
          ec = cec;
        }
      }
      if (conn->expired) {
        co_return fail(JsonCallError::kTimeout, "no connection to " + target.key + " in time");
      }
      if (ec) {
        conn->Disarm();
        conn.reset();
        if (retries_left > 0) {
          --retries_left;
          continue;
        }
        co_return fail(JsonCallError::kConnect,
                       "cannot connect to " + target.key + ": " + ec.message());
      }
      ++connects_;
      boost::system::error_code ignored;
      conn->socket.set_option(tcp::no_delay(true), ignored);
    } else {
      conn->Arm(deadline, conn);
    }

    std::array<asio::const_buffer, 2> bufs = {asio::buffer(head), asio::buffer(body)};
    auto [wec, wn] = co_await asio::async_write(conn->socket, bufs, kNoThrow);
    if (conn->expired)
      co_return fail(JsonCallError::kTimeout, target.key + " did not answer in time");
    if (wec) {
      conn->Disarm();
      conn.reset();
      if (reused && stale_retry_left) {  // the server had closed the idle connection
        stale_retry_left = false;
        --out.attempts;
        continue;
      }
      if (wn == 0 && retries_left > 0) {
        --retries_left;
        continue;
      }
      co_return fail(wn == 0 ? JsonCallError::kConnect : JsonCallError::kClosed,
                     "sending to " + target.key + " failed: " + wec.message());
    }

    out.body.clear();
    ResponseParser rp(kHeaderLimit, options.max_response_bytes, &out.body);
    rp.eager(true);
    bool received = false;
    bool stale = false;
    for (;;) {
      if (conn->buffer.size() > 0) {
        boost::beast::error_code ec;
        const size_t n = rp.put(conn->buffer.data(), ec);
        conn->buffer.consume(n);
        if (!ec && rp.is_done()) break;
        if (ec == http::error::body_limit) {
          conn->Disarm();
          co_return fail(JsonCallError::kTooLarge, "the answer from " + target.key + " exceeds " +
                                                       std::to_string(options.max_response_bytes) +
                                                       " bytes");
        }
        if (ec && ec != http::error::need_more) {
          conn->Disarm();
          co_return fail(JsonCallError::kProtocol,
                         "invalid HTTP answer from " + target.key + ": " + ec.message());
        }
      }
      auto space = conn->buffer.prepare(kReadChunk);
      auto [ec, n] = co_await conn->socket.async_read_some(space, kNoThrow);
      if (conn->expired) {
        co_return fail(JsonCallError::kTimeout, target.key + " did not answer in time");
      }
      if (ec == asio::error::eof && rp.is_header_done() && rp.need_eof()) {
        boost::beast::error_code pec;
        rp.put_eof(pec);
        if (!pec && rp.is_done()) break;
      }
      if (ec || n == 0) {
        if (reused && !received && stale_retry_left) {
          stale = true;
          break;
        }
        conn->Disarm();
        co_return fail(JsonCallError::kClosed, target.key +
                                                   " closed the connection before a whole answer" +
                                                   (ec ? ": " + ec.message() : std::string()));
      }
      conn->buffer.commit(n);
      received = true;
    }
    if (stale) {
      conn->Disarm();
      conn.reset();
      stale_retry_left = false;
      --out.attempts;
      continue;
    }
    conn->Disarm();
    out.status = static_cast<int>(rp.status);
    if (rp.keep_alive() && !rp.need_eof() && conn->buffer.size() == 0) {
      Return(std::move(conn));
    }
    co_return out;
  }
}

}  // namespace tokenway
