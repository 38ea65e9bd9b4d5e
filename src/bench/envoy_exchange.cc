#include "bench/envoy_exchange.h"

#include <netinet/tcp.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cstring>

#include "http/response_parser.h"
#include "tokenway/status.h"

namespace tokenway::bench {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
namespace ext_proc = envoy::service::ext_proc::v3;
using envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;

std::string HeaderValueText(const envoy::config::core::v3::HeaderValue& h) {
  return h.raw_value().empty() ? h.value() : h.raw_value();
}

std::unique_ptr<tcp::socket> UpstreamPool::Acquire(const std::string& endpoint) {
  auto it = idle_.find(endpoint);
  if (it != idle_.end() && !it->second.empty()) {
    auto s = std::move(it->second.back());
    it->second.pop_back();
    return s;
  }
  return nullptr;
}

void UpstreamPool::Release(const std::string& endpoint, std::unique_ptr<tcp::socket> s) {
  idle_[endpoint].push_back(std::move(s));
}

void UpstreamPool::CloseAll() {
  for (auto& [_, socks] : idle_) {
    for (auto& s : socks) {
      error_code ec;
      s->close(ec);
    }
  }
  idle_.clear();
}

namespace {

constexpr size_t kResponseChunkLimit = 64 * 1024;  // ext_proc's recommended message size

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

ProcessingMode::BodySendMode ToProto(BodyMode m) {
  return m == BodyMode::kBuffered ? ProcessingMode::BUFFERED : ProcessingMode::FULL_DUPLEX_STREAMED;
}

void AddHeader(envoy::config::core::v3::HeaderMap* map, std::string_view key,
               std::string_view value) {
  auto* h = map->add_headers();
  h->set_key(Lower(key));
  h->set_raw_value(std::string(value));
}

void SetSubsetHint(ext_proc::ProcessingRequest& r,
                   const std::optional<std::vector<std::string>>& hint) {
  if (!hint) return;
  auto& ns =
      (*r.mutable_metadata_context()->mutable_filter_metadata())[std::string(kSubsetNamespace)];
  auto* list = (*ns.mutable_fields())[std::string(kSubsetKey)].mutable_list_value();
  for (const auto& e : *hint) list->add_values()->set_string_value(e);
}

void SetServed(ext_proc::ProcessingRequest& r, const std::string& served) {
  auto& ns = (*r.mutable_metadata_context()->mutable_filter_metadata())[std::string(kLbNamespace)];
  (*ns.mutable_fields())[std::string(kServedKey)].set_string_value(served);
}

StatusOr<tcp::endpoint> ParseEndpoint(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::Error("bad endpoint '" + text + "'");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return Status::Error("endpoint '" + text + "' has no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Status::Error("endpoint '" + text + "' is not ip:port");
  int p = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || p > 65535) return Status::Error("bad port in '" + text + "'");
    p = p * 10 + (c - '0');
  }
  if (port.empty() || p == 0 || p > 65535) return Status::Error("bad port in '" + text + "'");
  return tcp::endpoint(addr, static_cast<uint16_t>(p));
}

std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

// What the picker has answered so far; written by the reader coroutine, read by the exchange.
struct Progress {
  explicit Progress(asio::io_context& io) : signal(io) {}
  LoopSignal signal;
  bool picked = false;  // a header mutation carried the destination
  bool request_headers_done = false;
  bool request_body_done = false;
  bool response_headers_done = false;
  bool response_body_done = false;
  bool immediate = false;
  bool reader_done = false;
  std::string failure;  // protocol violation seen by the reader
};

void RecordPick(const ext_proc::ProcessingResponse& m, const ext_proc::CommonResponse& common,
                EnvoyResult& res, Progress& p, int64_t now) {
  bool found = false;
  for (const auto& opt : common.header_mutation().set_headers()) {
    std::string key = Lower(opt.header().key());
    std::string value = HeaderValueText(opt.header());
    res.request_header_mutations.emplace_back(key, value);
    if (key == kDestinationHeader) {
      res.destination_header = value;
      found = true;
    }
  }
  if (m.has_dynamic_metadata()) {
    auto ns = m.dynamic_metadata().fields().find(std::string(kLbNamespace));
    if (ns != m.dynamic_metadata().fields().end()) {
      auto v = ns->second.struct_value().fields().find(std::string(kDestinationHeader));
      if (v != ns->second.struct_value().fields().end()) {
        res.destination_metadata = v->second.string_value();
      }
    }
  }
  if (found && !p.picked) {
    p.picked = true;
    res.pick_ns = now;
  }
}

// Reads every answer of the picker until the stream ends, classifying it by phase.
asio::awaitable<void> ReadAnswers(std::shared_ptr<ExtProcCall> call, EnvoyResult& res, Progress& p,
                                  const EnvoyOptions& o,
                                  const std::function<void(std::string_view, int64_t)>& relay,
                                  const std::function<int64_t()>& now) {
  auto fail = [&](std::string why) {
    if (p.failure.empty()) p.failure = std::move(why);
  };
  for (;;) {
    ExtProcCall::ReadResult r = co_await call->Read();
    if (r.outcome == ExtProcCall::ReadOutcome::kEnd) break;
    if (r.outcome == ExtProcCall::ReadOutcome::kMalformed) {
      fail("the picker sent bytes that are not a ProcessingResponse");
      p.signal.Notify();
      continue;
    }
    const auto& m = r.message;
    const int64_t t = now();
    switch (m.response_case()) {
      case ext_proc::ProcessingResponse::kImmediateResponse: {
        const auto& ir = m.immediate_response();
        res.immediate_status = static_cast<int>(ir.status().code());
        res.immediate_body = ir.body();
        for (const auto& opt : ir.headers().set_headers()) {
          res.immediate_headers.emplace_back(Lower(opt.header().key()),
                                             HeaderValueText(opt.header()));
        }
        p.immediate = true;
        break;
      }
      case ext_proc::ProcessingResponse::kRequestHeaders:
        if (p.request_headers_done) fail("a second request_headers answer");
        p.request_headers_done = true;
        RecordPick(m, m.request_headers().response(), res, p, t);
        if (m.request_headers().response().status() ==
            ext_proc::CommonResponse::CONTINUE_AND_REPLACE) {
          const auto& bm = m.request_headers().response().body_mutation();
          res.forwarded_body = bm.has_body() ? bm.body() : std::string();
          p.request_body_done = true;
        }
        break;
      case ext_proc::ProcessingResponse::kRequestBody: {
        if (p.request_body_done) fail("a request_body answer after the body's end");
        const auto& common = m.request_body().response();
        RecordPick(m, common, res, p, t);
        const auto& bm = common.body_mutation();
        if (bm.has_streamed_response()) {
          if (o.request_body_mode == BodyMode::kBuffered) {
            fail("streamed_response in BUFFERED mode");
          }
          res.forwarded_body += bm.streamed_response().body();
          if (bm.streamed_response().end_of_stream()) p.request_body_done = true;
        } else if (o.request_body_mode == BodyMode::kFullDuplexStreamed) {
          fail("a request_body answer without streamed_response in FULL_DUPLEX_STREAMED mode");
        } else {
          if (bm.has_body()) res.forwarded_body = bm.body();
          if (bm.clear_body()) res.forwarded_body.clear();
          p.request_body_done = true;
        }
        break;
      }
      case ext_proc::ProcessingResponse::kResponseHeaders:
        if (p.response_headers_done) fail("a second response_headers answer");
        p.response_headers_done = true;
        break;
      case ext_proc::ProcessingResponse::kResponseBody: {
        ++res.response_chunks_received;
        if (p.response_body_done) fail("a response_body answer after the body's end");
        const auto& bm = m.response_body().response().body_mutation();
        if (bm.has_streamed_response()) {
          const std::string& piece = bm.streamed_response().body();
          if (!piece.empty()) {
            if (res.first_relay_ns < 0) res.first_relay_ns = t;
            res.relayed_body += piece;
            if (relay) relay(piece, t);
          }
          if (bm.streamed_response().end_of_stream()) p.response_body_done = true;
        } else if (o.response_body_mode == BodyMode::kFullDuplexStreamed) {
          fail("a response_body answer without streamed_response in FULL_DUPLEX_STREAMED mode");
        } else {
          // BUFFERED: the upstream body unless the picker replaced it.
          if (bm.has_body()) res.relayed_body = bm.body();
          if (bm.clear_body()) res.relayed_body.clear();
          if (res.first_relay_ns < 0) res.first_relay_ns = t;
          if (relay && !res.relayed_body.empty()) relay(res.relayed_body, t);
          p.response_body_done = true;
        }
        break;
      }
      case ext_proc::ProcessingResponse::kRequestTrailers:
      case ext_proc::ProcessingResponse::kResponseTrailers:
        break;
      case ext_proc::ProcessingResponse::kStreamedImmediateResponse:
        res.immediate_status = 200;
        p.immediate = true;
        break;
      case ext_proc::ProcessingResponse::RESPONSE_NOT_SET:
        fail("an answer with no response set");
        break;
    }
    p.signal.Notify();
  }
  p.reader_done = true;
  p.signal.Notify();
}

// Waits until `ready()` holds, the picker answered immediately, failed, or ended the stream.
template <typename F>
asio::awaitable<void> WaitFor(Progress& p, F ready) {
  while (!ready() && !p.immediate && !p.reader_done && p.failure.empty()) {
    co_await p.signal.Wait();
  }
}

// Writes one message. A write can fail because the picker has already answered and ended the
// stream (it may close as soon as the body's end is answered): then the answers are read to the
// end first, so the caller can tell a finished exchange from a broken one.
asio::awaitable<bool> Send(std::shared_ptr<ExtProcCall> call, const ext_proc::ProcessingRequest& m,
                           Progress& p) {
  const bool written = co_await call->Write(m);
  if (!written) {
    while (!p.reader_done) co_await p.signal.Wait();
  }
  co_return written;
}

struct Upstream {
  std::unique_ptr<tcp::socket> sock;
  bool reused = false;
};

// Sends the request to `served` and streams the response to the picker.
asio::awaitable<std::string> ForwardUpstream(std::shared_ptr<ExtProcCall> call, UpstreamPool& pool,
                                             const EnvoyRequest& req, const EnvoyOptions& o,
                                             EnvoyResult& res, Progress& p) {
  auto ep = ParseEndpoint(res.served);
  if (!ep.ok()) co_return ep.status().message();
  std::string head = req.method + " " + req.path + " HTTP/1.1\r\nhost: " + req.authority + "\r\n";
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [k, v] : req.headers) {
    std::string key = Lower(k);
    if (key != "content-length" && key != "host") headers.emplace_back(key, v);
  }
  for (const auto& [k, v] : res.request_header_mutations) {
    if (k == "content-length" || k.empty() || k[0] == ':') continue;
    auto it = std::find_if(headers.begin(), headers.end(), [&](auto& h) { return h.first == k; });
    if (it != headers.end()) {
      it->second = v;
    } else {
      headers.emplace_back(k, v);
    }
  }
  for (const auto& [k, v] : headers) head += k + ": " + v + "\r\n";
  head += "content-length: " + std::to_string(res.forwarded_body.size()) + "\r\n\r\n";

  auto& io = pool.io();
  for (int attempt = 0; attempt < 2; ++attempt) {
    Upstream up{pool.Acquire(res.served), true};
    error_code ec;
    if (!up.sock) {
      up.sock = std::make_unique<tcp::socket>(io);
      up.reused = false;
      co_await up.sock->async_connect(*ep, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return "connect to " + res.served + ": " + ec.message();
      up.sock->set_option(tcp::no_delay(true), ec);
    }
    // The upstream's deadline: closes the socket; `watch` outlives this attempt.
    struct Watch {
      bool active = true, timed_out = false;
    };
    auto watch = std::make_shared<Watch>();
    asio::steady_timer deadline_timer(io);
    deadline_timer.expires_after(o.timeout);
    tcp::socket* raw = up.sock.get();
    deadline_timer.async_wait([raw, watch](error_code e) {
      if (!e && watch->active) {
        watch->timed_out = true;
        error_code ignore;
        raw->close(ignore);
      }
    });
    struct Deadline {
      asio::steady_timer& timer;
      std::shared_ptr<Watch> watch;
      void cancel() {
        watch->active = false;
        timer.cancel();
      }
      ~Deadline() { cancel(); }
    } deadline{deadline_timer, watch};
    const bool& timed_out = watch->timed_out;
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(res.forwarded_body)};
    co_await asio::async_write(*up.sock, bufs, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      deadline.cancel();
      if (up.reused && !timed_out) continue;  // the upstream had closed the idle connection
      co_return "write to " + res.served + ": " + ec.message();
    }
    std::string piece;
    ResponseParser parser(64 * 1024, uint64_t(1) << 34, &piece);
    parser.eager(true);
    std::string buf(64 * 1024, '\0');
    size_t begin = 0, end = 0;
    bool head_sent = false, received = false;
    std::string collected;  // BUFFERED response mode
    for (;;) {
      error_code pec;
      while (begin < end && !parser.is_done()) {
        size_t n = parser.put(asio::buffer(buf.data() + begin, end - begin), pec);
        begin += n;
        if (pec == http::error::need_more) {
          pec = {};
          break;
        }
        if (pec) {
          deadline.cancel();
          co_return "unparsable response from " + res.served + ": " + pec.message();
        }
      }
      if (!head_sent && parser.is_header_done()) {
        head_sent = true;
        res.upstream_status = parser.status;
        res.upstream_content_type = parser.content_type;
        ext_proc::ProcessingRequest m;
        auto* hm = m.mutable_response_headers()->mutable_headers();
        AddHeader(hm, ":status", std::to_string(parser.status));
        if (!parser.content_type.empty()) AddHeader(hm, "content-type", parser.content_type);
        SetServed(m, res.served);
        const bool sent_m = co_await Send(call, m, p);
        if (!sent_m) {
          deadline.cancel();
          if (p.immediate || p.response_body_done) co_return std::string();
          co_return "the stream broke while sending response_headers";
        }
        if (o.response_body_mode == BodyMode::kBuffered) {
          co_await WaitFor(p, [&] { return p.response_headers_done; });
          if (p.immediate || !p.failure.empty() || p.reader_done) {
            deadline.cancel();
            co_return std::string();
          }
        }
      }
      bool finished = parser.is_done();
      if (head_sent && (!piece.empty() || finished)) {
        if (o.response_body_mode == BodyMode::kBuffered) {
          collected += piece;
          piece.clear();
        }
        if (o.response_body_mode == BodyMode::kFullDuplexStreamed || finished) {
          std::string& body = o.response_body_mode == BodyMode::kBuffered ? collected : piece;
          // BUFFERED: the whole body in one message, and what the client gets unless the
          // picker's answer replaces it.
          const bool buffered = o.response_body_mode == BodyMode::kBuffered;
          if (buffered) res.relayed_body = collected;
          size_t off = 0;
          do {
            size_t n = buffered ? body.size() : std::min(kResponseChunkLimit, body.size() - off);
            ext_proc::ProcessingRequest m;
            m.mutable_response_body()->set_body(body.substr(off, n));
            off += n;
            m.mutable_response_body()->set_end_of_stream(finished && off == body.size());
            SetServed(m, res.served);
            ++res.response_chunks_sent;
            const bool sent_m = co_await Send(call, m, p);
            if (!sent_m) {
              deadline.cancel();
              if (p.immediate || p.response_body_done) co_return std::string();
              co_return "the stream broke while sending response_body";
            }
          } while (off < body.size());
          piece.clear();
        }
      }
      if (finished) break;
      if (begin == end) begin = end = 0;
      if (end == buf.size()) {
        if (begin > 0) {
          std::memmove(buf.data(), buf.data() + begin, end - begin);
          end -= begin;
          begin = 0;
        } else {
          buf.resize(buf.size() * 2);
        }
      }
      size_t n = co_await up.sock->async_read_some(asio::buffer(buf.data() + end, buf.size() - end),
                                                   asio::redirect_error(asio::use_awaitable, ec));
      end += n;
      if (n > 0) received = true;
      if (ec) {
        if (ec == asio::error::eof && parser.is_header_done() && parser.need_eof()) {
          parser.put_eof(pec);
          if (!pec) continue;
        }
        deadline.cancel();
        if (!received && up.reused && !timed_out) break;  // stale keep-alive: retry
        co_return timed_out ? "upstream timeout" : "upstream read: " + ec.message();
      }
    }
    deadline.cancel();
    if (!parser.is_done()) continue;  // retry on a fresh connection
    if (parser.keep_alive() && up.sock->is_open()) pool.Release(res.served, std::move(up.sock));
    co_return std::string();
  }
  co_return "the upstream closed the connection before answering";
}

// The response without an engine: an SSE stream, one event per response_body message.
asio::awaitable<std::string> FabricateResponse(std::shared_ptr<ExtProcCall> call,
                                               const EnvoyOptions& o, EnvoyResult& res,
                                               Progress& p) {
  res.upstream_status = 200;
  res.upstream_content_type = o.fabricated_stream ? "text/event-stream" : "application/json";
  ext_proc::ProcessingRequest m;
  auto* hm = m.mutable_response_headers()->mutable_headers();
  AddHeader(hm, ":status", "200");
  AddHeader(hm, "content-type", res.upstream_content_type);
  SetServed(m, res.served);
  const bool sent_m = co_await Send(call, m, p);
  if (!sent_m && !p.immediate && !p.response_body_done) {
    co_return "the stream broke while sending response_headers";
  }
  if (o.response_body_mode == BodyMode::kBuffered) {
    co_await WaitFor(p, [&] { return p.response_headers_done; });
  }
  if (!o.fabricated_stream) {
    const int tokens = std::max(1, o.fabricated_events);
    std::string text;
    for (int i = 0; i < tokens; ++i) text += " tok" + std::to_string(i);
    ext_proc::ProcessingRequest b;
    b.mutable_response_body()->set_body(
        "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"model\":\"bench\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"" +
        text +
        "\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1,"
        "\"completion_tokens\":" +
        std::to_string(tokens) + ",\"total_tokens\":" + std::to_string(tokens + 1) + "}}");
    b.mutable_response_body()->set_end_of_stream(true);
    SetServed(b, res.served);
    ++res.response_chunks_sent;
    if (o.response_body_mode == BodyMode::kBuffered) res.relayed_body = b.response_body().body();
    const bool sent_b = co_await Send(call, b, p);
    if (!sent_b && !p.immediate && !p.response_body_done) {
      co_return "the stream broke while sending response_body";
    }
    co_return std::string();
  }
  const int events = std::max(1, o.fabricated_events);
  std::string all;
  for (int i = 0; i <= events; ++i) {
    std::string event;
    if (i < events) {
      event =
          "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":"
          "\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok" +
          std::to_string(i) + " \"},\"finish_reason\":null}]}\n\n";
    } else {
      event =
          "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"model\":"
          "\"bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":" +
          std::to_string(events) + ",\"total_tokens\":" + std::to_string(events + 1) +
          "}}\n\ndata: [DONE]\n\n";
    }
    if (o.response_body_mode == BodyMode::kBuffered) {
      all += event;
      if (i < events) continue;
      event = all;
      res.relayed_body = all;  // unless the picker's answer replaces it
    }
    ext_proc::ProcessingRequest b;
    b.mutable_response_body()->set_body(std::move(event));
    b.mutable_response_body()->set_end_of_stream(i == events);
    SetServed(b, res.served);
    ++res.response_chunks_sent;
    const bool sent_b = co_await Send(call, b, p);
    if (!sent_b && !p.immediate && !p.response_body_done) {
      co_return "the stream broke while sending response_body";
    }
  }
  co_return std::string();
}

// After the exchange: half-close and give the picker a moment to end the stream, then reset it.
asio::awaitable<void> CloseStream(std::shared_ptr<ExtProcCall> call, Progress& p,
                                  asio::io_context& io, bool cancel) {
  if (cancel) {
    call->Cancel();
    co_return;
  }
  co_await call->WritesDone();
  asio::steady_timer grace(io);
  grace.expires_after(std::chrono::seconds(2));
  auto state = std::make_shared<std::pair<bool, bool>>(true, false);  // {waiting, expired}
  grace.async_wait([state, &p](error_code e) {
    if (!e && state->first) {
      state->second = true;
      p.signal.Notify();
    }
  });
  while (!p.reader_done && !state->second) co_await p.signal.Wait();
  state->first = false;
  grace.cancel();
  if (!p.reader_done) call->Cancel();
}

}  // namespace

asio::awaitable<EnvoyResult> RunEnvoyExchange(grpc::GenericStub& stub, UpstreamPool& pool,
                                              EnvoyRequest req, EnvoyOptions o,
                                              std::function<void(std::string_view, int64_t)> relay,
                                              std::function<int64_t()> now) {
  EnvoyResult res;
  auto& io = pool.io();
  auto call = ExtProcCall::Start(stub, io, o.timeout);
  if (o.on_stream) o.on_stream(call);
  Progress p(io);
  bool reader_running = true;
  LoopSignal reader_exit(io);
  asio::co_spawn(io, ReadAnswers(call, res, p, o, relay, now), [&](std::exception_ptr) {
    reader_running = false;
    reader_exit.Notify();
  });

  std::string error;
  bool cancel = false;
  do {
    // request_headers, with the protocol configuration and the subset hint.
    ext_proc::ProcessingRequest h;
    auto* hm = h.mutable_request_headers()->mutable_headers();
    AddHeader(hm, ":method", req.method);
    AddHeader(hm, ":path", req.path);
    AddHeader(hm, ":authority", req.authority);
    AddHeader(hm, ":scheme", req.scheme);
    for (const auto& [k, v] : req.headers) {
      if (Lower(k) != "content-length") AddHeader(hm, k, v);
    }
    AddHeader(hm, "content-length", std::to_string(req.body.size()));
    h.mutable_request_headers()->set_end_of_stream(req.body.empty());
    auto* pc = h.mutable_protocol_config();
    pc->set_request_body_mode(ToProto(o.request_body_mode));
    pc->set_response_body_mode(ToProto(o.response_body_mode));
    SetSubsetHint(h, o.subset_hint);
    res.headers_sent_ns = now();
    const bool sent_h = co_await Send(call, h, p);
    if (!sent_h) {
      if (!p.immediate) error = "the stream broke while sending request_headers";
      break;
    }
    if (o.request_body_mode == BodyMode::kBuffered) {
      // Envoy waits for the headers answer before it sends the buffered body.
      co_await WaitFor(p, [&] { return p.request_headers_done; });
      if (!p.immediate && p.failure.empty() && !p.reader_done && !p.request_body_done &&
          !req.body.empty()) {
        ext_proc::ProcessingRequest b;
        b.mutable_request_body()->set_body(req.body);
        b.mutable_request_body()->set_end_of_stream(true);
        SetSubsetHint(b, o.subset_hint);
        const bool sent_b = co_await Send(call, b, p);
        if (!sent_b) {
          if (!p.immediate) error = "the stream broke while sending request_body";
          break;
        }
        // Without a body answer carrying CONTINUE semantics, the body goes on unchanged.
        res.forwarded_body = req.body;
      }
    } else {
      size_t chunk = std::max<size_t>(1, o.chunk_size);
      for (size_t off = 0; off < req.body.size(); off += chunk) {
        ext_proc::ProcessingRequest b;
        size_t n = std::min(chunk, req.body.size() - off);
        b.mutable_request_body()->set_body(req.body.substr(off, n));
        b.mutable_request_body()->set_end_of_stream(off + n == req.body.size());
        SetSubsetHint(b, o.subset_hint);
        const bool sent_b = co_await Send(call, b, p);
        if (!sent_b) {
          if (!p.immediate) error = "the stream broke while sending request_body";
          break;
        }
      }
      if (!error.empty()) break;
    }
    co_await WaitFor(p, [&] { return p.picked && (p.request_body_done || req.body.empty()); });
    if (p.immediate) break;
    if (!p.failure.empty()) {
      error = p.failure;
      cancel = true;
      break;
    }
    if (!p.picked || !(p.request_body_done || req.body.empty())) {
      error = p.picked ? "the stream ended before the request body came back"
                       : "the stream ended without a pick";
      break;
    }
    // The pick: the header and the envoy.lb metadata must agree.
    if (res.destination_metadata.empty()) {
      error = "no dynamic_metadata envoy.lb x-gateway-destination-endpoint";
      cancel = true;
      break;
    }
    if (res.destination_metadata != res.destination_header) {
      error = "header pick '" + res.destination_header + "' and envoy.lb metadata '" +
              res.destination_metadata + "' disagree";
      cancel = true;
      break;
    }
    res.destinations = SplitList(res.destination_header);
    if (res.destinations.empty()) {
      error = "empty x-gateway-destination-endpoint";
      cancel = true;
      break;
    }
    res.served = res.destinations.front();
    if (o.no_upstream) {
      error = co_await FabricateResponse(call, o, res, p);
    } else {
      error = co_await ForwardUpstream(call, pool, req, o, res, p);
    }
    if (!error.empty()) {
      cancel = true;
      break;
    }
    if (p.immediate) break;
    co_await WaitFor(p, [&] { return p.response_body_done; });
    if (p.immediate) break;
    if (!p.failure.empty()) {
      error = p.failure;
      cancel = true;
    } else if (!p.response_body_done) {
      error = "the stream ended before the response body came back";
    }
  } while (false);

  res.end_ns = now();
  if (error.empty() && p.immediate) {
    res.outcome = EnvoyResult::Outcome::kImmediate;
  } else if (error.empty()) {
    res.outcome = EnvoyResult::Outcome::kCompleted;
  } else {
    res.outcome = EnvoyResult::Outcome::kFailed;
    res.error = error;
  }
  co_await CloseStream(call, p, io, cancel);
  grpc::Status st = co_await call->Finish();
  res.grpc_code = static_cast<int>(st.error_code());
  res.grpc_message = st.error_message();
  while (reader_running) co_await reader_exit.Wait();
  if (res.outcome == EnvoyResult::Outcome::kFailed && !p.reader_done && res.grpc_code != 0 &&
      res.error.find("stream") != std::string::npos) {
    res.error += " (" + res.grpc_message + ")";
  }
  co_return res;
}

}  // namespace tokenway::bench
