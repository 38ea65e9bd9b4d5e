// Phase 7 of the request path: relay. A stream goes to the client event by event: the upstream
// body (chunked or not) is de-framed into an SseEventSplitter, and every upstream read's
// complete events are written at once as one HTTP chunk in one gathered write, pointing into the
// splitter's buffer (no second copy); nothing is held back to fill a buffer. Events pass
// unchanged through an empty response-processor chain; otherwise the processors that apply to
// the request see each event with their per-stream state (kept in the context) and may replace
// it by other events, hold text back (a bounded window) or end the stream (kEnd: their last
// events are sent and the upstream connection is dropped); at "[DONE]" or the end of the body
// they release what they hold. An event that may carry usage is parsed to record it, and the
// usage-only chunk is dropped when tokenway asked for it. A whole response is checked (a 200 must
// be JSON), its usage read, run through the processors' whole-body form, and written as head +
// body in one write. RelayStreamEvent, FinishStreamEvents and RelayWholeBody are shared with the
// endpoint-picker front door, which relays the same events through Envoy.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>
#include <optional>

#include "common/duration.h"
#include "common/openai_error.h"
#include "common/response_model.h"
#include "common/scope_exit.h"
#include "control/runtime.h"
#include "gateway/phases/phases.h"
#include "gateway/worker.h"
#include "http/http_text.h"

namespace tokenway {

namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxPendingEventBytes = 4 * 1024 * 1024;
constexpr size_t kUpstreamReadChunk = 16 * 1024;

void AppendDecimal(std::string& out, size_t v) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
  out.append(digits, end);
}

// The applying response processors' verdict on a whole body; `replacement` receives a replaced
// body.
ResponseVerdict RunResponseProcessors(const RequestContext& ctx, std::string_view data,
                                      std::string& replacement) {
  ResponseVerdict verdict = ResponseVerdict::kPass;
  std::string next;
  for (const auto& p : ctx.runtime->payload.response) {
    if (!p->Applies(ctx.inspected.model, ctx.record.tenant)) continue;
    std::string_view current = verdict == ResponseVerdict::kReplace ? replacement : data;
    ResponseVerdict v = p->Process(current, next);
    if (v == ResponseVerdict::kDrop) return v;
    if (v == ResponseVerdict::kReplace) {
      replacement.swap(next);
      verdict = v;
    }
  }
  return verdict;
}

// Creates the stream state of every response processor that applies; false when none does.
bool BeginStreamProcessors(RequestContext& ctx) {
  const auto& chain = ctx.runtime->payload.response;
  ctx.stream_states.clear();
  ctx.response_applies.assign(chain.size(), 0);
  bool any = false;
  for (size_t i = 0; i < chain.size(); ++i) {
    ctx.stream_states.push_back(nullptr);
    if (!chain[i]->Applies(ctx.inspected.model, ctx.record.tenant)) continue;
    ctx.response_applies[i] = 1;
    ctx.stream_states[i] = chain[i]->Begin();
    any = true;
  }
  return any;
}

// Runs one stream event (`data`), or the end of the stream (no `data`), through the applying
// processors in order; each processor's output events are the next one's input. kPass: `data`
// goes out unchanged; kReplace: ctx.stream_events go out instead (maybe none); kEnd: they are the
// stream's last events.
ResponseVerdict RunStreamProcessors(RequestContext& ctx, std::optional<std::string_view> data) {
  const auto& chain = ctx.runtime->payload.response;
  std::vector<std::string>& cur = ctx.stream_events;
  std::vector<std::string>& next = ctx.stream_events_next;
  thread_local std::vector<std::string> produced;
  cur.clear();
  bool original = data.has_value();  // the input is still the upstream's event, unchanged
  bool changed = !original;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (!ctx.response_applies[i]) continue;
    const ResponseProcessor& p = *chain[i];
    ResponseStreamState* state = ctx.stream_states[i].get();
    next.clear();
    bool ended = false;
    auto run = [&](std::string_view in, bool is_original) {
      produced.clear();
      ResponseVerdict v;
      if (state) {
        v = p.Process(*state, in, produced);
      } else {
        produced.emplace_back();
        v = p.Process(in, produced.back());
        if (v == ResponseVerdict::kDrop) produced.clear();
      }
      if (v == ResponseVerdict::kPass) {
        if (!is_original) next.emplace_back(in);
        return true;
      }
      for (std::string& e : produced) next.push_back(std::move(e));
      ended = v == ResponseVerdict::kEnd;
      return false;
    };
    if (original) {
      if (run(*data, true)) continue;  // still the original, nothing copied
      original = false;
      changed = true;
    } else {
      for (const std::string& in : cur) {
        if (!run(in, false)) changed = true;
        if (ended) break;
      }
    }
    if (!ended && !data && state) {
      produced.clear();
      const ResponseVerdict v = p.Finish(*state, produced);
      for (std::string& e : produced) next.push_back(std::move(e));
      ended = v == ResponseVerdict::kEnd;
    }
    cur.swap(next);
    if (ended) return ResponseVerdict::kEnd;
  }
  if (original) return ResponseVerdict::kPass;
  return changed ? ResponseVerdict::kReplace : ResponseVerdict::kPass;
}

asio::awaitable<PhaseResult> RelayStream(RequestContext& ctx, ClientLink& client) {
  const Runtime& rt = *ctx.runtime;
  const UpstreamConfig& up = rt.config.upstream;
  WorkerMetrics& m = ctx.worker.metrics();
  RequestRecord& rec = ctx.record;
  const PoolEndpoint& endpoint = *ctx.endpoint;
  EndpointState& state = *endpoint.state;
  UpstreamConnection& conn = *ctx.conn;
  ResponseParser& rp = *ctx.response;
  const int64_t total_deadline = rec.start_ns + up.total_timeout.count();
  const bool chunked = !client.http10();
  if (!chunked) client.CloseAfterResponse();
  SseEventSplitter& events = ctx.events;
  events.Clear();
  rp.set_sink(events.mutable_buffer());
  bool head_sent = false;
  RelayBatch& batch = ctx.relay_batch;
  client.WatchClient(&conn.socket, nullptr);
  ScopeExit stop_watch([&client] { client.StopWatching(); });

  std::string& head = ctx.out;
  head.clear();
  head.append("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
  head.append("X-Request-Id: ").append(rec.request_id).append("\r\n");
  if (!rec.version.empty()) head.append("X-Tokenway-Version: ").append(rec.version).append("\r\n");
  head.append(ctx.governance.headers());
  head.append(ctx.cache.header_line());
  if (!rec.payload_flags.empty()) {
    head.append("X-Tokenway-Flagged: ").append(rec.payload_flags).append("\r\n");
  }
  if (!rec.semantic_route.empty()) {
    head.append("X-Tokenway-Route: ");
    AppendRouteHeaderValue(rec, head);
    head.append("\r\n");
  }
  head.append(chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
  if (chunked && !client.keep_alive()) head.append("Connection: close\r\n");
  head.append("\r\n");

  auto gone = [&] {
    m.Count(ClientError::kDisconnected);
    rec.status = 499;
    rec.error_code = "client_disconnected";
    client.CloseAfterResponse();
    return PhaseResult::kDone;
  };
  // Ends a stream that broke: a clean 502/504 before the first event, else an error event and a
  // proper end of the chunked body, then the connection closes.
  auto end_with_error = [&](UpstreamError kind, std::string_view message,
                            std::string_view code) -> asio::awaitable<PhaseResult> {
    m.Count(kind);
    state.RecordFailure(rt.config.passive_health, MonotonicNanos());
    ctx.conn.reset();
    if (!head_sent) co_return ctx.Fail(kind == UpstreamError::kTimeout ? 504 : 502, message, code);
    rec.error_code.assign(code);
    client.CloseAfterResponse();
    std::string& event = ctx.scratch;
    event.assign("data: ");
    AppendOpenAiError(event, message, "upstream_error", {}, code);
    event.append("\n\n");
    ctx.chunk_head.clear();
    if (chunked) AppendChunkSize(ctx.chunk_head, event.size());
    const std::string_view end = chunked ? "\r\n0\r\n\r\n" : "";
    co_await client.Write(ctx.chunk_head, event, end);
    co_return PhaseResult::kDone;
  };

  bool filtered = false;  // a response processor ended the stream (kEnd)
  auto keep_processed = [&](StreamEventAction action) {
    for (const std::string& e : ctx.stream_events) batch.KeepReplaced(e);
    if (action == StreamEventAction::kEnd) filtered = true;
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
    // Complete events, in place; dropped ones split the batch into runs.
    batch.Clear(events.mutable_buffer()->data());
    std::string_view event;
    while (events.Next(event)) {
      const StreamEventAction action = RelayStreamEvent(ctx, event);
      switch (action) {
        case StreamEventAction::kKeep:
          batch.Keep(event);
          break;
        case StreamEventAction::kReplace:
        case StreamEventAction::kEnd:
          keep_processed(action);
          break;
        case StreamEventAction::kDrop:
          break;
      }
      if (filtered) break;
    }
    if (events.buffered() > kMaxPendingEventBytes) {
      co_return co_await end_with_error(UpstreamError::kProtocol, "upstream event exceeds 4 MiB",
                                        "bad_upstream_response");
    }
    if (!filtered && rp.is_done()) {
      const StreamEventAction action = FinishStreamEvents(ctx);
      if (action != StreamEventAction::kKeep) keep_processed(action);
    }
    const bool done = rp.is_done() || filtered;
    if (!batch.empty() || done) {
      std::vector<asio::const_buffer>& out = ctx.gather;
      out.clear();
      ctx.chunk_head.clear();
      if (!head_sent) ctx.chunk_head.append(head);
      if (chunked && !batch.empty()) AppendChunkSize(ctx.chunk_head, batch.bytes());
      out.emplace_back(ctx.chunk_head.data(), ctx.chunk_head.size());
      batch.AppendTo(out);
      std::string_view tail;
      if (chunked) {
        tail = batch.empty() ? (done ? "0\r\n\r\n" : "") : (done ? "\r\n0\r\n\r\n" : "\r\n");
      }
      if (!tail.empty()) out.emplace_back(tail.data(), tail.size());
      if (!head_sent) rec.first_byte_ns = MonotonicNanos();
      rec.status = 200;
      head_sent = true;
      rec.response_bytes += batch.bytes();
      if (!co_await client.Write(std::span<const asio::const_buffer>(out))) co_return gone();
    }
    events.Compact();
    if (filtered) {
      // The rest of the upstream stream is not read: its connection cannot be reused.
      conn.deadline.Disarm();
      state.RecordSuccess();
      ctx.conn.reset();
      co_return PhaseResult::kDone;
    }
    if (done) break;
    conn.deadline.Arm(std::min(MonotonicNanos() + up.stream_idle_timeout.count(), total_deadline));
    char* p = conn.buffer.write_ptr(kUpstreamReadChunk);
    auto [ec, n] =
        co_await conn.socket.async_read_some(asio::buffer(p, conn.buffer.write_space()), kNoThrow);
    if (client.client_gone()) co_return gone();
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
  if (rp.keep_alive() && conn.buffer.empty()) {
    ctx.worker.upstreams().Return(std::move(ctx.conn), up.max_idle_per_endpoint, MonotonicNanos());
  }
  ctx.conn.reset();
  co_return PhaseResult::kDone;
}

asio::awaitable<PhaseResult> RelayWhole(RequestContext& ctx, ClientLink& client) {
  const Runtime& rt = *ctx.runtime;
  RequestRecord& rec = ctx.record;
  const PoolEndpoint& endpoint = *ctx.endpoint;
  ResponseParser& rp = *ctx.response;
  const int status = rp.status;
  const bool failed = status >= 500 || status == 429;
  std::string_view body = ctx.response_body;
  // A 200 whose JSON does not parse is not relayed: the client gets a clean 502 instead of a
  // body its SDK would choke on.
  if (status == 200) {
    switch (RelayWholeBody(ctx, ctx.response_body)) {
      case WholeBodyAction::kNotJson:
        ctx.worker.metrics().Count(UpstreamError::kProtocol);
        endpoint.state->RecordFailure(rt.config.passive_health, MonotonicNanos());
        co_return ctx.Fail(502, "upstream " + endpoint.url + " sent a response that is not JSON",
                           "bad_upstream_response");
      case WholeBodyAction::kWithheld:
        co_return ctx.Fail(502, "the response was withheld by a response processor",
                           "response_withheld");
      case WholeBodyAction::kReplace:
        body = ctx.processed;
        break;
      case WholeBodyAction::kKeep:
        body = ctx.response_body;
        break;
    }
  }
  if (!failed) endpoint.state->RecordSuccess();
  rec.status = status;
  rec.response_bytes = body.size();
  std::string& out = ctx.out;
  out.clear();
  AppendStatusLine(out, status);
  out.append("Content-Type: ");
  out.append(rp.content_type.empty() ? std::string_view("application/json")
                                     : std::string_view(rp.content_type));
  out.append("\r\nContent-Length: ");
  AppendDecimal(out, body.size());
  out.append("\r\nX-Request-Id: ").append(rec.request_id).append("\r\n");
  if (!rec.version.empty()) out.append("X-Tokenway-Version: ").append(rec.version).append("\r\n");
  out.append(ctx.governance.headers());
  if (status == 200) out.append(ctx.cache.header_line());
  if (!rec.payload_flags.empty()) {
    out.append("X-Tokenway-Flagged: ").append(rec.payload_flags).append("\r\n");
  }
  if (!rec.semantic_route.empty()) {
    out.append("X-Tokenway-Route: ");
    AppendRouteHeaderValue(rec, out);
    out.append("\r\n");
  }
  if (!client.keep_alive()) out.append("Connection: close\r\n");
  out.append("\r\n");
  rec.first_byte_ns = MonotonicNanos();
  if (!co_await client.Write(out, body)) {
    ctx.worker.metrics().Count(ClientError::kDisconnected);
    rec.status = 499;
    rec.error_code = "client_disconnected";
    client.CloseAfterResponse();
  }
  co_return PhaseResult::kDone;
}

}  // namespace

namespace {

// Whether response processors run on this stream; starts them (their stream state) once.
bool StreamProcessorsRunning(RequestContext& ctx) {
  const PayloadChain& chain = ctx.runtime->payload;
  if (chain.response.empty()) return false;
  if (ctx.response_applies.size() != chain.response.size()) {
    ctx.stream_processing = BeginStreamProcessors(ctx);
  }
  return ctx.stream_processing;
}

StreamEventAction FromVerdict(RequestContext& ctx, ResponseVerdict v) {
  switch (v) {
    case ResponseVerdict::kPass:
      return StreamEventAction::kKeep;
    case ResponseVerdict::kEnd:
      ctx.stream_ended = true;
      ctx.record.error_code.assign("content_filter");
      return StreamEventAction::kEnd;
    default:
      return StreamEventAction::kReplace;
  }
}

// A version served under another name with response_model: alias — the event's "model" back to
// the alias: `data` kept becomes one replacement event; replacement events are rewritten in place.
StreamEventAction ReportAlias(RequestContext& ctx, std::string_view data,
                              StreamEventAction action) {
  if (ctx.response_model_from.empty()) return action;
  const std::string_view from = ctx.response_model_from, to = ctx.response_model_to;
  std::vector<std::string>& events = ctx.stream_events;
  if (action == StreamEventAction::kKeep) {
    if (events.empty()) events.emplace_back();
    events.resize(1);
    return ReplaceResponseModel(data, from, to, events[0]) ? StreamEventAction::kReplace
                                                           : StreamEventAction::kKeep;
  }
  if (action == StreamEventAction::kReplace || action == StreamEventAction::kEnd) {
    for (std::string& e : events) {
      if (ReplaceResponseModel(e, from, to, ctx.processed)) e.swap(ctx.processed);
    }
  }
  return action;
}

}  // namespace

StreamEventAction RelayStreamEvent(RequestContext& ctx, std::string_view event) {
  RequestRecord& rec = ctx.record;
  if (ctx.stream_ended) return StreamEventAction::kDrop;
  std::string_view data = SseEventData(event, ctx.scratch);
  if (ctx.cache.store) ctx.worker.response_reader().ReadStreamEvent(data, ctx.cache.assembly);
  if (data == "[DONE]") {
    // The processors release what they hold before it.
    const StreamEventAction action = FinishStreamEvents(ctx);
    if (action == StreamEventAction::kReplace) ctx.stream_events.emplace_back("[DONE]");
    return action;
  }
  if (UsageReader::MayCarryUsage(data)) {
    UsageReading reading;
    if (ctx.worker.usage_reader().Read(data, reading) && reading.has_usage) {
      rec.usage = reading.usage;
      if (rec.trace.sampled()) rec.response_model.assign(reading.model);
      if (rec.usage_injected && reading.choices_empty) return StreamEventAction::kDrop;
    }
  }
  if (data.empty()) return StreamEventAction::kKeep;
  if (ctx.load) {
    if (++rec.stream_events == 1) {
      ctx.load->PrefillDone();
    } else {
      ctx.load->NextEvent();
    }
  } else {
    ++rec.stream_events;
  }
  if (!StreamProcessorsRunning(ctx)) return ReportAlias(ctx, data, StreamEventAction::kKeep);
  return ReportAlias(ctx, data, FromVerdict(ctx, RunStreamProcessors(ctx, data)));
}

StreamEventAction FinishStreamEvents(RequestContext& ctx) {
  if (ctx.stream_ended || ctx.stream_flushed || !StreamProcessorsRunning(ctx)) {
    return StreamEventAction::kKeep;
  }
  ctx.stream_flushed = true;
  return FromVerdict(ctx, RunStreamProcessors(ctx, std::nullopt));
}

WholeBodyAction RelayWholeBody(RequestContext& ctx, std::string& body) {
  RequestRecord& rec = ctx.record;
  UsageReading reading;
  if (!ctx.worker.usage_reader().ReadInPlace(body, reading)) return WholeBodyAction::kNotJson;
  if (ctx.cache.store) ctx.worker.response_reader().ReadBody(body, ctx.cache.assembly);
  if (reading.has_usage) rec.usage = reading.usage;
  if (rec.trace.sampled()) rec.response_model.assign(reading.model);
  WholeBodyAction action = WholeBodyAction::kKeep;
  if (!ctx.runtime->payload.response.empty()) {
    switch (RunResponseProcessors(ctx, body, ctx.processed)) {
      case ResponseVerdict::kDrop:
        return WholeBodyAction::kWithheld;
      case ResponseVerdict::kReplace:
        action = WholeBodyAction::kReplace;
        break;
      default:
        break;
    }
  }
  // A version served under another name with response_model: alias.
  if (ctx.response_model_from.empty()) return action;
  const std::string_view from = ctx.response_model_from, to = ctx.response_model_to;
  if (action == WholeBodyAction::kKeep) {
    if (ReplaceResponseModel(body, from, to, ctx.processed)) return WholeBodyAction::kReplace;
  } else if (ReplaceResponseModel(ctx.processed, from, to, ctx.scratch)) {
    ctx.processed.swap(ctx.scratch);
  }
  return action;
}

asio::awaitable<PhaseResult> Relay(RequestContext& ctx, ClientLink& client) {
  if (ctx.streaming_response) {
    co_return co_await RelayStream(ctx, client);
  }
  co_return co_await RelayWhole(ctx, client);
}

}  // namespace tokenway
