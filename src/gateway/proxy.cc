// The request path for the inference endpoints: the phases of brief.md, in order.
//
//   1 read & inspect   (ClientSession::ReadRequest, then Inspect here)
//   5 route            model -> pool -> eligible endpoints -> picker -> ordered fallbacks
//   6 forward          pooled upstream connection, one gathered write, relay (SSE event by
//                      event) or collect; retry on another endpoint only before any byte
//                      has reached the client
//   7 settle           usage from the response or the stream; outcome fed to endpoint health
//   8 observe          metrics and the access-log line
//
// Phases 2-3 (identity, governance: governance_phase.cc) run once the route is known, before
// admission; phase 4 (payload processing) slots in between inspect and route.
#include <xxhash.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include "common/duration.h"
#include "common/openai_error.h"
#include "common/scope_exit.h"
#include "gateway/client_session.h"
#include "gateway/worker.h"
#include "http/http_text.h"
#include "http/response_parser.h"

namespace tokenway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr uint32_t kUpstreamHeaderLimit = 64 * 1024;
constexpr size_t kMaxPendingEventBytes = 4 * 1024 * 1024;

// Output tokens assumed for a request that sets no max_tokens, for the decode-token estimate.
constexpr int64_t kDefaultDecodeTokens = 256;

}  // namespace

// The load one attempt puts on its endpoint, kept right on every exit path: the in-flight count,
// the sent-since-scrape count flow control adds to the engine's queue, and estimated prefill
// tokens (until the first response byte) and decode tokens (until the end).
class EndpointLoad {
 public:
  EndpointLoad(EndpointState& state, int64_t prefill, int64_t decode)
      : state_(state), prefill_(prefill), decode_(decode) {
    state_.in_flight.fetch_add(1, std::memory_order_relaxed);
    state_.sent_since_scrape.fetch_add(1, std::memory_order_relaxed);
    state_.prefill_tokens.fetch_add(prefill_, std::memory_order_relaxed);
    state_.decode_tokens.fetch_add(decode_, std::memory_order_relaxed);
  }
  ~EndpointLoad() {
    PrefillDone();
    state_.decode_tokens.fetch_sub(decode_, std::memory_order_relaxed);
    state_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
  void PrefillDone() {
    state_.prefill_tokens.fetch_sub(std::exchange(prefill_, 0), std::memory_order_relaxed);
  }
  EndpointLoad(const EndpointLoad&) = delete;
  EndpointLoad& operator=(const EndpointLoad&) = delete;

 private:
  EndpointState& state_;
  int64_t prefill_;
  int64_t decode_;
};

namespace {}  // namespace

asio::awaitable<void> ClientSession::Proxy(RequestParser& parser, Operation op,
                                           std::string_view body, size_t padding) {
  WorkerMetrics& m = worker_.metrics();
  const Runtime& rt = *runtime_;
  RequestRecord& rec = record_;
  rec.Reset();
  rec.start_ns = MonotonicNanos();
  rec.request_bytes = body.size();
  ChooseRequestId(parser);
  if (rt.config.tracing.enabled) BeginTrace(parser);
  m.in_flight.fetch_add(1, std::memory_order_relaxed);
  governance_.Begin(rt.governance.get());
  ScopeExit settle([&] {
    governance_.Finish(rec.usage, rec.stream_events, rec.status);
    m.in_flight.fetch_sub(1, std::memory_order_relaxed);
    Observe(rec);
  });
  auto fail = [&](int status, std::string_view message, std::string_view code,
                  std::string_view param = {}) -> asio::awaitable<void> {
    rec.status = status;
    rec.error_code.assign(code);
    co_await WriteError(status, message, code, param);
  };

  // 1. Inspect the body once, in place.
  inspected_.Reset();
  inspected_.operation = op;
  std::string_view content_type = parser.content_type.in(buffer_.data());
  if (!content_type.empty() && !IsJsonMediaType(content_type)) {
    m.Count(ClientError::kUnsupportedMedia);
    co_await fail(415, "Content-Type must be application/json", "unsupported_media_type");
    co_return;
  }
  if (!worker_.inspector().Inspect(op, body.data(), body.size(), padding, inspected_,
                                   inspect_error_)) {
    m.Count(ClientError::kInvalidJson);
    co_await fail(400, inspect_error_.message, inspect_error_.code, inspect_error_.param);
    co_return;
  }
  rec.stream = inspected_.stream;
  rec.prompt_hash = XXH3_64bits(inspected_.prompt_text.data(), inspected_.prompt_text.size());

  // 5. Route: model -> pool -> eligible endpoints -> ordered choice.
  const ModelRoute* route = rt.FindModel(inspected_.model);
  if (!route) {
    m.Count(ClientError::kUnknownModel);
    co_await fail(404, "The model '" + inspected_.model + "' does not exist", "model_not_found",
                  "model");
    co_return;
  }
  rec.model_slot = route->metrics_slot;
  const Pool& pool = *route->pool;
  rec.pool = pool.name;
  rec.engine = EngineKindName(pool.engine);
  rec.pool_slot = pool.metrics_slot;

  // 2-3. Identity and governance: tenant, model permission, token reservation.
  if (rt.governance && !co_await Govern(parser, *route)) co_return;

  // 5a. Admission: under saturation, wait for room, or be shed.
  ScopeExit release_next([this] { FinishFlowRelease(); });
  if (pool.flow && !co_await Admit(parser, pool, *route)) co_return;

  candidates_.clear();
  int64_t now = MonotonicNanos();
  for (uint32_t i = 0; i < pool.endpoints.size(); ++i) {
    const EndpointState* state = pool.endpoints[i].state.get();
    if (state->Eligible(now)) candidates_.push_back({i, state});
  }
  if (candidates_.empty()) {
    m.no_endpoint.fetch_add(1, std::memory_order_relaxed);
    co_await fail(503, "no healthy endpoint in pool '" + pool.name + "'", "no_healthy_endpoint");
    co_return;
  }
  FallbackList fallbacks;
  PickReport report;
  PickContext ctx;
  ctx.request = &inspected_;
  ctx.random = worker_.NextRandom();
  ctx.session_key = parser.FindHeader(buffer_.data(), pool.session_header);
  if (rec.trace.sampled()) report.scores = &rec.scores;
  ctx.report = &report;
  pool.picker->Pick(ctx, candidates_, fallbacks);
  if (fallbacks.empty()) fallbacks.push_back(candidates_.front().index);
  WorkerMetrics::PoolFamilies& pm = m.pools[pool.metrics_slot];
  pm.picker.Observe(static_cast<double>(MonotonicNanos() - now) / 1e9, kPickerBuckets, 1e9);
  rec.picker = pool.picker->name();
  rec.prefix_blocks = report.prefix_blocks;
  rec.prefix_matched = report.prefix_matched;
  if (report.prefix_blocks) {
    pm.prefix_hit_blocks.fetch_add(report.prefix_matched, std::memory_order_relaxed);
    pm.prefix_miss_blocks.fetch_add(report.prefix_blocks - report.prefix_matched,
                                    std::memory_order_relaxed);
  }

  // Usage injection: make every stream report its tokens.
  std::string_view send_body = body;
  if (inspected_.stream && !inspected_.include_usage && rt.config.streaming.inject_usage &&
      op != Operation::kEmbeddings) {
    RewriteForUsage(body, inspected_, rewritten_body_);
    send_body = rewritten_body_;
    rec.usage_injected = true;
    m.usage_injected.fetch_add(1, std::memory_order_relaxed);
  }

  // 6. Forward, with retries on other endpoints before any byte reaches the client.
  uint32_t attempts = std::min<uint32_t>(rt.config.upstream.max_attempts, fallbacks.size());
  for (uint32_t a = 0; a < attempts; ++a) {
    const PoolEndpoint& endpoint = pool.endpoints[fallbacks[a]];
    if (a > 0) {
      ++rec.retries;
      m.retries.fetch_add(1, std::memory_order_relaxed);
    }
    rec.endpoint = endpoint.url;
    rec.engine = EngineKindName(endpoint.engine);
    rec.endpoint_slot = endpoint.metrics_slot;
    AttemptOutcome outcome = co_await ForwardOnce(parser, endpoint, send_body, a + 1 == attempts);
    if (outcome != AttemptOutcome::kRetry) break;
  }
  // The endpoint's load dropped: a queued request may go.
  if (pool.flow) pool.flow->Kick(pool.flow_view(), MonotonicNanos());
  // 7/8. Settlement of usage happened while relaying; Observe runs on scope exit.
  co_return;
}

asio::awaitable<ClientSession::AttemptOutcome> ClientSession::ForwardOnce(
    const RequestParser& parser, const PoolEndpoint& endpoint, std::string_view body,
    bool last_attempt) {
  const Runtime& rt = *runtime_;
  const UpstreamConfig& up = rt.config.upstream;
  WorkerMetrics& m = worker_.metrics();
  RequestRecord& rec = record_;
  EndpointState& state = *endpoint.state;
  const int64_t total_deadline = rec.start_ns + up.total_timeout.count();
  auto bounded = [&](Duration d) { return std::min(MonotonicNanos() + d.count(), total_deadline); };
  const int64_t prompt_tokens = static_cast<int64_t>(inspected_.prompt_text.size() / 4) + 1;
  const int64_t decode_tokens =
      inspected_.operation == Operation::kEmbeddings
          ? 0
          : (inspected_.max_tokens > 0 ? inspected_.max_tokens : kDefaultDecodeTokens);
  EndpointLoad load(state, prompt_tokens, decode_tokens);
  load_ = &load;
  FinishFlowRelease();  // this endpoint's counters now include the request
  state.requests_total.fetch_add(1, std::memory_order_relaxed);
  ScopeExit stop_watch([this] {
    StopAbortWatch();
    load_ = nullptr;
  });

  auto client_gone = [&]() {
    m.Count(ClientError::kDisconnected);
    rec.status = 499;
    rec.error_code = "client_disconnected";
    keep_alive_ = false;
    return AttemptOutcome::kFailed;
  };
  // Every upstream failure is counted; all but 429 (load, not a fault) feed passive ejection.
  auto count_failure = [&](UpstreamError kind) {
    m.Count(kind);
    if (kind != UpstreamError::kStatus429) {
      state.RecordFailure(rt.config.passive_health, MonotonicNanos());
    }
  };
  auto upstream_failed = [&](UpstreamError kind, int status, std::string_view message,
                             std::string_view code,
                             bool retryable) -> asio::awaitable<AttemptOutcome> {
    count_failure(kind);
    if (retryable && !last_attempt) co_return AttemptOutcome::kRetry;
    rec.status = status;
    rec.error_code.assign(code);
    co_await WriteError(status, message, code);
    co_return AttemptOutcome::kFailed;
  };

  // The upstream request head; the body follows unchanged in the same write.
  std::string& head = upstream_head_;
  head.clear();
  const char* base = buffer_.data();
  head.append("POST ").append(parser.target.in(base)).append(" HTTP/1.1\r\nHost: ");
  head.append(endpoint.host_header).append("\r\n");
  const bool drop_tracestate = rec.drop_tracestate && parser.tracestate_count > 0;
  // With governance on, the client's API key is tokenway's, not the model server's.
  const bool strip_key = rt.governance != nullptr && !parser.authorization.empty();
  for (const HeaderSlice& h : parser.forward_headers) {
    if (drop_tracestate && EqualsIgnoreCase(h.name.in(base), "tracestate")) continue;
    if (strip_key && h.value.offset == parser.authorization.offset) continue;
    head.append(h.name.in(base)).append(": ").append(h.value.in(base)).append("\r\n");
  }
  AppendTraceParent(head, parser);
  if (parser.content_type.empty()) head.append("Content-Type: application/json\r\n");
  head.append("X-Request-Id: ").append(rec.request_id).append("\r\nContent-Length: ");
  head.append(std::to_string(body.size())).append("\r\n\r\n");

  std::unique_ptr<UpstreamConnection> conn = worker_.upstreams().TakeIdle(&state);
  bool reused = conn != nullptr;
  std::optional<ResponseParser> response;
  for (int round = 0;; ++round) {
    if (!conn) {
      conn = std::make_unique<UpstreamConnection>(worker_.io());
      conn->endpoint_key = &state;
      conn->deadline.Attach(&worker_.sweep(), &conn->socket);
      conn->deadline.Arm(bounded(up.connect_timeout));
      StartAbortWatch(&conn->socket);
      auto [ec] = co_await conn->socket.async_connect(endpoint.address, kNoThrow);
      if (abort_->fired) co_return client_gone();
      if (ec) {
        std::string why = conn->deadline.expired() ? "timed out" : ec.message();
        co_return co_await upstream_failed(
            UpstreamError::kConnect, 502, "cannot connect to upstream " + endpoint.url + ": " + why,
            "upstream_connect_failed", true);
      }
      boost::system::error_code ignored;
      conn->socket.set_option(tcp::no_delay(true), ignored);
      m.upstream_connects.fetch_add(1, std::memory_order_relaxed);
    } else {
      conn->deadline.Attach(&worker_.sweep(), &conn->socket);
      m.upstream_reused.fetch_add(1, std::memory_order_relaxed);
      StartAbortWatch(&conn->socket);
    }
    ++conn->requests_served;

    conn->deadline.Arm(bounded(rt.config.limits.write_timeout));
    std::array<asio::const_buffer, 2> request_bufs = {asio::buffer(head.data(), head.size()),
                                                      asio::buffer(body.data(), body.size())};
    auto [wec, wn] = co_await asio::async_write(conn->socket, request_bufs, kNoThrow);
    if (abort_->fired) co_return client_gone();
    if (wec) {
      if (reused && round == 0) {  // the server closed an idle connection; use a fresh one
        conn.reset();
        reused = false;
        continue;
      }
      co_return co_await upstream_failed(UpstreamError::kConnect, 502,
                                         "upstream " + endpoint.url + " closed the connection",
                                         "upstream_connect_failed", true);
    }

    // The response head.
    response_body_.clear();
    response.emplace(kUpstreamHeaderLimit, rt.config.limits.max_response_bytes, &response_body_);
    conn->deadline.Arm(bounded(up.first_byte_timeout));
    bool stale = false;
    bool head_done = false;
    bool received = false;
    while (!head_done) {
      if (!conn->buffer.empty()) {
        boost::beast::error_code ec;
        size_t n = response->put(asio::buffer(conn->buffer.data(), conn->buffer.size()), ec);
        conn->buffer.consume(n);  // Beast may take the status line before the head is complete
        if (!ec && response->is_header_done()) {
          head_done = true;
          break;
        }
        if (ec && ec != http::error::need_more) {
          co_return co_await upstream_failed(
              UpstreamError::kProtocol, 502,
              "upstream sent an invalid HTTP response: " + ec.message(), "bad_upstream_response",
              false);
        }
      }
      char* p = conn->buffer.write_ptr(16 * 1024);
      auto [ec, n] = co_await conn->socket.async_read_some(
          asio::buffer(p, conn->buffer.write_space()), kNoThrow);
      if (abort_->fired) co_return client_gone();
      if (ec || n == 0) {
        if (conn->deadline.expired()) {
          co_return co_await upstream_failed(UpstreamError::kTimeout, 504,
                                             "upstream " + endpoint.url + " did not answer in time",
                                             "upstream_timeout", false);
        }
        if (reused && round == 0 && !received) {
          stale = true;
          break;
        }
        co_return co_await upstream_failed(
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

  ResponseParser& rp = *response;
  rp.eager(true);
  if (rp.status == 200 && rp.event_stream && inspected_.stream) {
    bool reusable = false;
    AttemptOutcome outcome = co_await RelayStream(*conn, endpoint, rp, reusable);
    if (reusable) {
      worker_.upstreams().Return(std::move(conn), up.max_idle_per_endpoint, MonotonicNanos());
    }
    co_return outcome;
  }

  // A whole response: collect it (bounded), read usage, answer in one write.
  while (!rp.is_done()) {
    if (!conn->buffer.empty()) {
      boost::beast::error_code ec;
      size_t n = rp.put(asio::buffer(conn->buffer.data(), conn->buffer.size()), ec);
      conn->buffer.consume(n);
      if (ec == http::error::body_limit) {
        co_return co_await upstream_failed(UpstreamError::kProtocol, 502,
                                           "upstream response exceeds limits.max_response_bytes",
                                           "upstream_response_too_large", false);
      }
      if (ec && ec != http::error::need_more) {
        co_return co_await upstream_failed(
            UpstreamError::kProtocol, 502,
            "upstream sent an invalid response body: " + ec.message(), "bad_upstream_response",
            false);
      }
      if (rp.is_done()) break;
    }
    conn->deadline.Arm(bounded(up.stream_idle_timeout));
    char* p = conn->buffer.write_ptr(16 * 1024);
    auto [ec, n] = co_await conn->socket.async_read_some(
        asio::buffer(p, conn->buffer.write_space()), kNoThrow);
    if (abort_->fired) co_return client_gone();
    if (ec || n == 0) {
      if (conn->deadline.expired()) {
        co_return co_await upstream_failed(UpstreamError::kTimeout, 504,
                                           "upstream " + endpoint.url + " stalled mid-response",
                                           "upstream_timeout", false);
      }
      if (rp.need_eof() && (ec == asio::error::eof || n == 0)) {
        boost::beast::error_code eof_ec;
        rp.put_eof(eof_ec);
        if (!eof_ec) break;
      }
      co_return co_await upstream_failed(
          UpstreamError::kBrokenStream, 502,
          "upstream " + endpoint.url + " closed the connection mid-response",
          "upstream_connection_closed", false);
    }
    conn->buffer.commit(n);
  }
  conn->deadline.Disarm();
  const int status = rp.status;
  const bool reusable = rp.keep_alive() && conn->buffer.empty();
  auto release = [&] {
    if (reusable) {
      worker_.upstreams().Return(std::move(conn), up.max_idle_per_endpoint, MonotonicNanos());
    }
  };
  const bool failed = status >= 500 || status == 429;
  if (failed) {
    count_failure(status == 429 ? UpstreamError::kStatus429 : UpstreamError::kStatus5xx);
  }
  release();
  if (failed && !last_attempt) co_return AttemptOutcome::kRetry;

  // 7. Settle: usage from the body. A 200 whose JSON does not parse is not relayed: the client
  // gets a clean 502 instead of a body its SDK would choke on.
  if (status == 200) {
    UsageReading reading;
    if (!worker_.usage_reader().ReadInPlace(response_body_, reading)) {
      co_return co_await upstream_failed(
          UpstreamError::kProtocol, 502,
          "upstream " + endpoint.url + " sent a response that is not JSON", "bad_upstream_response",
          false);
    }
    if (reading.has_usage) rec.usage = reading.usage;
    if (rec.trace.sampled()) rec.response_model.assign(reading.model);
  }
  if (!failed) state.RecordSuccess();
  rec.status = status;
  rec.response_bytes = response_body_.size();
  out_.clear();
  AppendStatusLine(out_, status);
  out_.append("Content-Type: ");
  out_.append(rp.content_type.empty() ? std::string_view("application/json")
                                      : std::string_view(rp.content_type));
  out_.append("\r\nContent-Length: ").append(std::to_string(response_body_.size()));
  out_.append("\r\nX-Request-Id: ").append(rec.request_id).append("\r\n");
  out_.append(governance_.headers());
  if (!keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  rec.first_byte_ns = MonotonicNanos();
  if (!co_await WriteAll(out_, response_body_)) co_return client_gone();
  co_return AttemptOutcome::kDone;
}

asio::awaitable<ClientSession::AttemptOutcome> ClientSession::RelayStream(
    UpstreamConnection& conn, const PoolEndpoint& endpoint, ResponseParser& rp, bool& reusable) {
  const Runtime& rt = *runtime_;
  const UpstreamConfig& up = rt.config.upstream;
  WorkerMetrics& m = worker_.metrics();
  RequestRecord& rec = record_;
  EndpointState& state = *endpoint.state;
  const int64_t total_deadline = rec.start_ns + up.total_timeout.count();
  const bool chunked = !http10_;
  if (!chunked) keep_alive_ = false;
  events_.Clear();
  rp.set_sink(events_.mutable_buffer());
  bool head_sent = false;
  reusable = false;

  out_.clear();
  out_.append("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
  out_.append("X-Request-Id: ").append(rec.request_id).append("\r\n");
  out_.append(governance_.headers());
  out_.append(chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
  if (chunked && !keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n");

  // Ends a stream that broke after it started: an error event, then a clean end.
  auto end_with_error = [&](UpstreamError kind, std::string_view message,
                            std::string_view code) -> asio::awaitable<AttemptOutcome> {
    m.Count(kind);
    state.RecordFailure(rt.config.passive_health, MonotonicNanos());
    rec.error_code.assign(code);
    if (!head_sent) {
      int status = kind == UpstreamError::kTimeout ? 504 : 502;
      rec.status = status;
      co_await WriteError(status, message, code);
      co_return AttemptOutcome::kFailed;
    }
    keep_alive_ = false;
    relay_.clear();
    relay_.append("data: ");
    AppendOpenAiError(relay_, message, "upstream_error", {}, code);
    relay_.append("\n\n");
    chunk_head_.clear();
    if (chunked) AppendChunkSize(chunk_head_, relay_.size());
    co_await WriteAll(chunk_head_, relay_, chunked ? "\r\n0\r\n\r\n" : "");
    co_return AttemptOutcome::kFailed;
  };

  for (;;) {
    if (!conn.buffer.empty()) {
      boost::beast::error_code ec;
      size_t n = rp.put(asio::buffer(conn.buffer.data(), conn.buffer.size()), ec);
      conn.buffer.consume(n);
      if (ec && ec != http::error::need_more) {
        co_return co_await end_with_error(UpstreamError::kProtocol,
                                          "upstream sent an invalid event stream: " + ec.message(),
                                          "bad_upstream_response");
      }
    }
    // Relay whole events, unchanged, except the usage chunk tokenway asked for itself.
    relay_.clear();
    std::string_view event;
    while (events_.Next(event)) {
      std::string_view data = SseEventData(event, scratch_);
      if (data == "[DONE]") {
        relay_.append(event);
        continue;
      }
      if (UsageReader::MayCarryUsage(data)) {
        UsageReading reading;
        if (worker_.usage_reader().Read(data, reading) && reading.has_usage) {
          rec.usage = reading.usage;
          if (rec.trace.sampled()) rec.response_model.assign(reading.model);
          if (rec.usage_injected && reading.choices_empty) continue;
        }
      }
      if (!data.empty() && ++rec.stream_events == 1 && load_) load_->PrefillDone();
      relay_.append(event);
    }
    events_.Compact();
    if (events_.buffered() > kMaxPendingEventBytes) {
      co_return co_await end_with_error(UpstreamError::kProtocol, "upstream event exceeds 4 MiB",
                                        "bad_upstream_response");
    }
    const bool done = rp.is_done();
    if (!relay_.empty() || done) {
      chunk_head_.clear();
      if (!head_sent) chunk_head_.append(out_);
      if (chunked && !relay_.empty()) AppendChunkSize(chunk_head_, relay_.size());
      std::string_view tail;
      if (chunked) {
        tail = relay_.empty() ? (done ? "0\r\n\r\n" : "") : (done ? "\r\n0\r\n\r\n" : "\r\n");
      }
      if (!head_sent) rec.first_byte_ns = MonotonicNanos();
      rec.status = 200;
      head_sent = true;
      rec.response_bytes += relay_.size();
      if (!co_await WriteAll(chunk_head_, relay_, tail)) {
        m.Count(ClientError::kDisconnected);
        rec.status = 499;
        rec.error_code = "client_disconnected";
        keep_alive_ = false;
        co_return AttemptOutcome::kFailed;
      }
    }
    if (done) break;
    conn.deadline.Arm(std::min(MonotonicNanos() + up.stream_idle_timeout.count(), total_deadline));
    char* p = conn.buffer.write_ptr(16 * 1024);
    auto [ec, n] =
        co_await conn.socket.async_read_some(asio::buffer(p, conn.buffer.write_space()), kNoThrow);
    if (abort_->fired) {
      m.Count(ClientError::kDisconnected);
      rec.status = 499;
      rec.error_code = "client_disconnected";
      keep_alive_ = false;
      co_return AttemptOutcome::kFailed;
    }
    if (ec || n == 0) {
      if (conn.deadline.expired()) {
        co_return co_await end_with_error(UpstreamError::kTimeout,
                                          "upstream " + endpoint.url + " stalled mid-stream",
                                          "upstream_timeout");
      }
      if (rp.need_eof()) {
        boost::beast::error_code eof_ec;
        rp.put_eof(eof_ec);
        if (!eof_ec) continue;  // relays what is left, then ends
      }
      co_return co_await end_with_error(
          UpstreamError::kBrokenStream,
          "upstream " + endpoint.url + " closed the connection mid-stream",
          "upstream_stream_broken");
    }
    conn.buffer.commit(n);
  }
  conn.deadline.Disarm();
  state.RecordSuccess();
  if (!rec.usage.known() && rec.stream_events > 0) {
    // No usage chunk (the upstream ignored include_usage): count the streamed events.
    rec.usage.completion_tokens = rec.stream_events;
  }
  reusable = rp.keep_alive() && conn.buffer.empty();
  co_return AttemptOutcome::kDone;
}

}  // namespace tokenway
