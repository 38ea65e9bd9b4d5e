// Phase 6 of the request path: forward. The fallbacks are tried in order: a pooled keep-alive
// connection to the endpoint (or a new one), the upstream head built by hand and sent with the
// body's pieces in one gathered write, then the response head — and for a whole response its
// body, collected. Connect failures, 5xx and 429 move on to the next endpoint while attempts
// remain (upstream.max_attempts); nothing has reached the client yet. A reused connection that
// the server had closed is replaced once without counting as a retry.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>

#include "common/duration.h"
#include "common/scope_exit.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"

namespace tokenway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr uint32_t kUpstreamHeaderLimit = 64 * 1024;
constexpr size_t kUpstreamReadChunk = 16 * 1024;

enum class Attempt { kRelay, kRetry, kRespond, kDone };

PhaseResult ClientGone(RequestContext& ctx, ClientLink& client) {
  ctx.worker.metrics().Count(ClientError::kDisconnected);
  ctx.record.status = 499;
  ctx.record.error_code = "client_disconnected";
  client.CloseAfterResponse();
  return PhaseResult::kDone;
}

// The upstream request head: the client's end-to-end headers, the gateway's own.
void BuildUpstreamHead(RequestContext& ctx, const PoolEndpoint& endpoint) {
  const RequestRecord& rec = ctx.record;
  std::string& head = ctx.upstream_head;
  head.clear();
  char digits[24];
  if (!ctx.parser) {
    // A request of tokenway's own (a shadow copy): no client headers to pass on.
    head.append("POST ").append(ctx.own_target).append(" HTTP/1.1\r\nHost: ");
    head.append(endpoint.host_header).append("\r\nContent-Type: application/json\r\n");
    head.append("X-Request-Id: ").append(rec.request_id).append("\r\nContent-Length: ");
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, ctx.outgoing.size());
    head.append(digits, end).append("\r\n\r\n");
    return;
  }
  const RequestParser& parser = *ctx.parser;
  const char* base = ctx.base;
  head.append("POST ").append(parser.target.in(base)).append(" HTTP/1.1\r\nHost: ");
  head.append(endpoint.host_header).append("\r\n");
  const bool drop_tracestate = rec.drop_tracestate && parser.tracestate_count > 0;
  // With governance on, the client's API key is tokenway's, not the model server's.
  const bool strip_key = ctx.runtime->governance != nullptr && !parser.authorization.empty();
  for (const HeaderSlice& h : parser.forward_headers) {
    if (drop_tracestate && EqualsIgnoreCase(h.name.in(base), "tracestate")) continue;
    if (strip_key && h.value.offset == parser.authorization.offset) continue;
    head.append(h.name.in(base)).append(": ").append(h.value.in(base)).append("\r\n");
  }
  AppendTraceParent(ctx, head);
  if (parser.content_type.empty()) head.append("Content-Type: application/json\r\n");
  head.append("X-Request-Id: ").append(rec.request_id).append("\r\nContent-Length: ");
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, ctx.outgoing.size());
  head.append(digits, end).append("\r\n\r\n");
}

asio::awaitable<Attempt> ForwardOnce(RequestContext& ctx, ClientLink& client,
                                     const PoolEndpoint& endpoint, bool last_attempt) {
  const Runtime& rt = *ctx.runtime;
  const UpstreamConfig& up = rt.config.upstream;
  WorkerMetrics& m = ctx.worker.metrics();
  RequestRecord& rec = ctx.record;
  EndpointState& state = *endpoint.state;
  const int64_t total_deadline = rec.start_ns + up.total_timeout.count();
  auto bounded = [&](Duration d) { return std::min(MonotonicNanos() + d.count(), total_deadline); };
  ctx.Dispatch(endpoint);
  ScopeExit stop_watch([&client] { client.StopWatching(); });

  // Every upstream failure is counted; all but 429 (load, not a fault) feed passive ejection.
  auto count_failure = [&](UpstreamError kind) {
    m.Count(kind);
    if (kind != UpstreamError::kStatus429) {
      state.RecordFailure(rt.config.passive_health, MonotonicNanos());
    }
  };
  auto upstream_failed = [&](UpstreamError kind, int status, std::string_view message,
                             std::string_view code, bool retryable) {
    count_failure(kind);
    ctx.conn.reset();
    if (retryable && !last_attempt) return Attempt::kRetry;
    ctx.Fail(status, message, code);
    return Attempt::kRespond;
  };
  auto gone = [&] {
    ClientGone(ctx, client);
    return Attempt::kDone;
  };

  BuildUpstreamHead(ctx, endpoint);
  const OutgoingBody& body = ctx.outgoing;
  std::unique_ptr<UpstreamConnection>& conn = ctx.conn;
  conn = ctx.worker.upstreams().TakeIdle(&state);
  bool reused = conn != nullptr;
  for (int round = 0;; ++round) {
    if (!conn) {
      conn = std::make_unique<UpstreamConnection>(ctx.worker.io());
      conn->endpoint_key = &state;
      conn->deadline.Attach(&ctx.worker.sweep(), &conn->socket);
      conn->deadline.Arm(bounded(up.connect_timeout));
      client.WatchClient(&conn->socket, nullptr);
      auto [ec] = co_await conn->socket.async_connect(endpoint.address, kNoThrow);
      if (client.client_gone()) co_return gone();
      if (ec) {
        std::string why = conn->deadline.expired() ? "timed out" : ec.message();
        co_return upstream_failed(UpstreamError::kConnect, 502,
                                  "cannot connect to upstream " + endpoint.url + ": " + why,
                                  "upstream_connect_failed", true);
      }
      boost::system::error_code ignored;
      conn->socket.set_option(tcp::no_delay(true), ignored);
      m.upstream_connects.fetch_add(1, std::memory_order_relaxed);
    } else {
      conn->deadline.Attach(&ctx.worker.sweep(), &conn->socket);
      m.upstream_reused.fetch_add(1, std::memory_order_relaxed);
      client.WatchClient(&conn->socket, nullptr);
    }
    ++conn->requests_served;

    conn->deadline.Arm(bounded(rt.config.limits.write_timeout));
    const std::string& head = ctx.upstream_head;
    std::array<asio::const_buffer, 4> request_bufs = {
        asio::buffer(head.data(), head.size()),
        asio::buffer(body.before.data(), body.before.size()),
        asio::buffer(body.insert.data(), body.insert.size()),
        asio::buffer(body.after.data(), body.after.size())};
    auto [wec, wn] = co_await asio::async_write(conn->socket, request_bufs, kNoThrow);
    if (client.client_gone()) co_return gone();
    if (wec) {
      if (reused && round == 0) {  // the server closed an idle connection; use a fresh one
        conn.reset();
        reused = false;
        continue;
      }
      co_return upstream_failed(UpstreamError::kConnect, 502,
                                "upstream " + endpoint.url + " closed the connection",
                                "upstream_connect_failed", true);
    }

    // The response head.
    ctx.response_body.clear();
    ctx.ResetResponse();
    ctx.response.emplace(kUpstreamHeaderLimit, rt.config.limits.max_response_bytes,
                         &ctx.response_body, std::move(ctx.content_type_storage));
    ResponseParser& rp = *ctx.response;
    conn->deadline.Arm(bounded(up.first_byte_timeout));
    bool stale = false;
    bool received = false;
    for (;;) {
      if (!conn->buffer.empty()) {
        boost::beast::error_code ec;
        size_t n = rp.put(asio::buffer(conn->buffer.data(), conn->buffer.size()), ec);
        conn->buffer.consume(n);  // Beast may take the status line before the head is complete
        if (!ec && rp.is_header_done()) break;
        if (ec && ec != http::error::need_more) {
          co_return upstream_failed(UpstreamError::kProtocol, 502,
                                    "upstream sent an invalid HTTP response: " + ec.message(),
                                    "bad_upstream_response", false);
        }
      }
      char* p = conn->buffer.write_ptr(kUpstreamReadChunk);
      auto [ec, n] = co_await conn->socket.async_read_some(
          asio::buffer(p, conn->buffer.write_space()), kNoThrow);
      if (client.client_gone()) co_return gone();
      if (ec || n == 0) {
        if (conn->deadline.expired()) {
          co_return upstream_failed(UpstreamError::kTimeout, 504,
                                    "upstream " + endpoint.url + " did not answer in time",
                                    "upstream_timeout", false);
        }
        if (reused && round == 0 && !received) {
          stale = true;
          break;
        }
        co_return upstream_failed(
            UpstreamError::kBrokenStream, 502,
            "upstream " + endpoint.url + " closed the connection before responding",
            "upstream_connection_closed", false);
      }
      conn->buffer.commit(n);
      received = true;
    }
    if (stale) {
      conn.reset();
      reused = false;
      continue;
    }
    break;
  }

  ResponseParser& rp = *ctx.response;
  rp.eager(true);
  ctx.streaming_response = rp.status == 200 && rp.event_stream && ctx.inspected.stream;
  if (ctx.streaming_response) co_return Attempt::kRelay;

  // A whole response: collect it (bounded); the connection goes back to the pool at once.
  while (!rp.is_done()) {
    if (!conn->buffer.empty()) {
      boost::beast::error_code ec;
      size_t n = rp.put(asio::buffer(conn->buffer.data(), conn->buffer.size()), ec);
      conn->buffer.consume(n);
      if (ec == http::error::body_limit) {
        co_return upstream_failed(UpstreamError::kProtocol, 502,
                                  "upstream response exceeds limits.max_response_bytes",
                                  "upstream_response_too_large", false);
      }
      if (ec && ec != http::error::need_more) {
        co_return upstream_failed(UpstreamError::kProtocol, 502,
                                  "upstream sent an invalid response body: " + ec.message(),
                                  "bad_upstream_response", false);
      }
      if (rp.is_done()) break;
    }
    conn->deadline.Arm(bounded(up.stream_idle_timeout));
    char* p = conn->buffer.write_ptr(kUpstreamReadChunk);
    auto [ec, n] = co_await conn->socket.async_read_some(
        asio::buffer(p, conn->buffer.write_space()), kNoThrow);
    if (client.client_gone()) co_return gone();
    if (ec || n == 0) {
      if (conn->deadline.expired()) {
        co_return upstream_failed(UpstreamError::kTimeout, 504,
                                  "upstream " + endpoint.url + " stalled mid-response",
                                  "upstream_timeout", false);
      }
      if (rp.need_eof() && (ec == asio::error::eof || n == 0)) {
        boost::beast::error_code eof_ec;
        rp.put_eof(eof_ec);
        if (!eof_ec) break;
      }
      co_return upstream_failed(UpstreamError::kBrokenStream, 502,
                                "upstream " + endpoint.url + " closed the connection mid-response",
                                "upstream_connection_closed", false);
    }
    conn->buffer.commit(n);
  }
  conn->deadline.Disarm();
  if (rp.keep_alive() && conn->buffer.empty()) {
    ctx.worker.upstreams().Return(std::move(conn), up.max_idle_per_endpoint, MonotonicNanos());
  }
  conn.reset();
  const int status = rp.status;
  const bool failed = status >= 500 || status == 429;
  if (failed) {
    count_failure(status == 429 ? UpstreamError::kStatus429 : UpstreamError::kStatus5xx);
    if (!last_attempt) co_return Attempt::kRetry;
  }
  co_return Attempt::kRelay;
}

}  // namespace

asio::awaitable<PhaseResult> Forward(RequestContext& ctx, ClientLink& client) {
  const Pool& pool = *ctx.pool;
  RequestRecord& rec = ctx.record;
  WorkerMetrics& m = ctx.worker.metrics();
  const uint32_t attempts =
      std::min<uint32_t>(ctx.runtime->config.upstream.max_attempts, ctx.fallbacks.size());
  for (uint32_t a = 0; a < attempts; ++a) {
    const PoolEndpoint& endpoint = pool.endpoints[ctx.fallbacks[a]];
    if (a > 0) {
      ++rec.retries;
      m.retries.fetch_add(1, std::memory_order_relaxed);
    }
    rec.endpoint = endpoint.url;
    rec.engine = EngineKindName(endpoint.engine);
    rec.endpoint_slot = endpoint.metrics_slot;
    switch (co_await ForwardOnce(ctx, client, endpoint, a + 1 == attempts)) {
      case Attempt::kRelay:
        co_return PhaseResult::kContinue;
      case Attempt::kRetry:
        continue;
      case Attempt::kRespond:
        co_return PhaseResult::kRespond;
      case Attempt::kDone:
        co_return PhaseResult::kDone;
    }
  }
  // Not reached: the last attempt never asks for a retry.
  co_return ctx.Fail(502, "no endpoint answered", "upstream_connect_failed");
}

}  // namespace tokenway
