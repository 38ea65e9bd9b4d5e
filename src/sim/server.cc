#include "sim/server.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "common/scope_exit.h"
#include "common/tokenizer.h"

namespace tokenway::sim {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxBodyBytes = 32u << 20;
constexpr std::size_t kMaxRegisteredAdapters = 256;
constexpr std::size_t kLatenessSamples = 1 << 16;

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string HttpResponse(int status, std::string_view content_type, std::string_view body,
                         bool keep_alive) {
  std::string out;
  out.reserve(160 + body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out.push_back(' ');
  out += ReasonPhrase(status);
  out += "\r\nServer: tokenway-sim\r\n";
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(body.size());
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

// One HTTP chunk carrying one SSE event "data: <payload>\n\n".
std::string SseChunk(std::string_view payload) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", payload.size() + 8);
  std::string out;
  out.reserve(payload.size() + 24);
  out += size;
  out += "data: ";
  out += payload;
  out += "\n\n\r\n";
  return out;
}

// Wakes one coroutine waiting on it; used on a single thread, so a notification that arrives
// before the wait is remembered instead of lost.
class Signal {
 public:
  explicit Signal(const asio::any_io_executor& executor) : timer_(executor) {}
  void Notify() {
    notified_ = true;
    timer_.cancel();
  }
  awaitable<void> Wait() {
    if (!notified_) {
      timer_.expires_at(Clock::time_point::max());
      co_await timer_.async_wait(kNoThrow);
    }
    notified_ = false;
  }

 private:
  asio::steady_timer timer_;
  bool notified_ = false;
};

// A parse failure of bytes the client sent (answered 400), as opposed to a closed connection.
bool IsMalformedRequest(const boost::system::error_code& ec) {
  const boost::system::error_code end_of_stream = http::error::end_of_stream;
  return ec.category() == end_of_stream.category() && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

awaitable<bool> Cancelled() {
  auto state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

awaitable<bool> WriteAll(tcp::socket& socket, std::string data) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(data), kNoThrow);
  co_return !ec;
}

// Completes when the client closes the connection while a response is being generated. Bytes
// of a pipelined next request are kept in `stash` and the watch then waits to be cancelled.
awaitable<void> WatchDisconnect(tcp::socket& socket, std::string& stash) {
  char data[4096];
  auto [ec, n] = co_await socket.async_read_some(asio::buffer(data), kNoThrow);
  if (ec) co_return;
  stash.append(data, n);
  asio::steady_timer forever(co_await asio::this_coro::executor, Clock::time_point::max());
  co_await forever.async_wait(kNoThrow);
}

}  // namespace

class SimServer::Endpoint {
 public:
  Endpoint(asio::io_context& io, const EndpointOptions& options, double speed,
           Clock::time_point origin, uint64_t seed)
      : io_(io),
        options_(options),
        engine_(options.engine),
        acceptor_(io),
        step_timer_(io),
        speed_(speed),
        origin_(origin),
        rng_(seed),
        faults_(options.faults),
        adapters_(options.loras) {
    lateness_us_.reserve(1024);
  }

  uint16_t Listen(const std::string& host, uint16_t port) {
    tcp::endpoint endpoint(asio::ip::make_address(host), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    return acceptor_.local_endpoint().port();
  }

  void Start() { asio::co_spawn(io_, AcceptLoop(), asio::detached); }

  void Drain() {
    draining_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  int64_t active_requests() const { return active_requests_; }

 private:
  // A generation in flight. The step loop delivers each token straight to it (Deliver): a
  // streaming token is formatted and written to the socket at once when no write is pending;
  // the serving coroutine is woken only for what needs it (a blocked socket, the end, a fault).
  struct Generation {
    enum class Fault { kNone, kStall, kDrop };
    Generation(const asio::any_io_executor& executor, tcp::socket& socket)
        : signal(executor), socket(socket) {}
    uint64_t engine_id = 0;
    bool engine_done = false;
    Signal signal;
    tcp::socket& socket;
    ResponseIdentity identity;
    bool stream = false;
    bool include_usage = false;
    int64_t stall_after_tokens = -1;
    int64_t drop_after_tokens = -1;
    int64_t sent_tokens = 0;
    std::string outbox;       // formatted bytes not yet handed to the socket
    bool writer_busy = true;  // the coroutine owns the socket's write side (headers first)
    bool complete = false;    // the final token was delivered
    bool write_failed = false;
    Fault fault = Fault::kNone;
    std::string text;  // non-streaming output
    std::string_view finish_reason;
    UsageCounts usage;
  };

  // Removes a generation from the endpoint and aborts its engine sequence if still running,
  // whichever way the serving coroutine ends (finished, client gone, stall, drop).
  class GenerationGuard {
   public:
    GenerationGuard(Endpoint& endpoint, Generation& generation)
        : endpoint_(endpoint), generation_(generation) {}
    ~GenerationGuard() { endpoint_.Detach(generation_); }

   private:
    Endpoint& endpoint_;
    Generation& generation_;
  };

  struct Reply {
    bool close = false;
  };

  double EngineNow() const {
    return std::chrono::duration<double>(Clock::now() - origin_).count() * speed_;
  }

  void Detach(Generation& generation) {
    if (generation.engine_id == 0) return;
    generations_.erase(generation.engine_id);
    if (!generation.engine_done) {
      engine_.Abort(generation.engine_id, EngineNow());
      generation.engine_done = true;
    }
    generation.engine_id = 0;
  }

  void Kick() {
    if (!engine_.step_in_flight() && engine_.HasWork()) StartStep(Clock::now());
  }

  void StartStep(Clock::time_point start) {
    const double engine_start = std::chrono::duration<double>(start - origin_).count() * speed_;
    const double duration = engine_.BeginStep(engine_start);
    if (duration <= 0) return;
    step_end_engine_ = engine_start + duration;
    step_end_ = start + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(duration / speed_));
    step_timer_.expires_at(step_end_);
    step_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) OnStepEnd();
    });
  }

  void OnStepEnd() {
    const Clock::time_point woke = Clock::now();
    const double lateness_us = std::chrono::duration<double, std::micro>(woke - step_end_).count();
    if (lateness_us_.size() < kLatenessSamples) {
      lateness_us_.push_back(lateness_us);
    } else {
      lateness_us_[lateness_next_++ % kLatenessSamples] = lateness_us;
    }
    for (const TokenEvent& event : engine_.FinishStep(step_end_engine_)) {
      auto it = generations_.find(event.request_id);
      if (it == generations_.end()) continue;
      Deliver(*it->second, event);
    }
    // Steps follow each other back to back in engine time; if the loop fell far behind
    // (overload), restart from now instead of bursting to catch up.
    const bool far_behind = woke - step_end_ > std::chrono::milliseconds(20);
    if (engine_.HasWork()) StartStep(far_behind ? woke : step_end_);
  }

  void Deliver(Generation& g, const TokenEvent& event) {
    if (event.finish != FinishReason::kNone) g.engine_done = true;
    if (g.complete || g.fault != Generation::Fault::kNone || g.write_failed) return;
    if (g.stall_after_tokens >= 0 && g.sent_tokens >= g.stall_after_tokens) {
      g.fault = Generation::Fault::kStall;
      g.signal.Notify();
      return;
    }
    if (g.drop_after_tokens >= 0 && g.sent_tokens >= g.drop_after_tokens) {
      g.fault = Generation::Fault::kDrop;
      g.signal.Notify();
      return;
    }
    ++g.sent_tokens;
    const bool last = event.finish != FinishReason::kNone;
    if (last) {
      g.complete = true;
      g.finish_reason = FinishReasonName(event.finish);
      g.usage = UsageCounts{event.prompt_tokens, event.completion_tokens, event.cached_tokens};
    }
    if (!g.stream) {
      g.text.append(event.text);
      if (last) g.signal.Notify();
      return;
    }
    if (g.sent_tokens == 1 && g.identity.kind == ApiKind::kChat) {
      g.outbox += SseChunk(ChatRoleChunk(g.identity));
    }
    g.outbox += SseChunk(ContentChunk(g.identity, event.text, g.finish_reason));
    if (last) {
      if (g.include_usage) g.outbox += SseChunk(UsageChunk(g.identity, g.usage));
      g.outbox += SseChunk("[DONE]");
      g.outbox += "0\r\n\r\n";
    }
    if (!g.writer_busy) {
      // The socket is non-blocking: write what the kernel takes now, the coroutine the rest.
      boost::system::error_code ec;
      const std::size_t written = g.socket.write_some(asio::buffer(g.outbox), ec);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        g.write_failed = true;
      } else {
        g.outbox.erase(0, written);
      }
    }
    if (!g.outbox.empty() || last || g.write_failed) g.signal.Notify();
  }

  awaitable<void> AcceptLoop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        asio::steady_timer backoff(io_, std::chrono::milliseconds(10));
        co_await backoff.async_wait(kNoThrow);
        continue;
      }
      asio::co_spawn(io_, Session(std::move(socket)), asio::detached);
    }
  }

  awaitable<void> Session(tcp::socket socket) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    socket.non_blocking(true, ignored);  // for Deliver's immediate writes
    boost::beast::flat_buffer buffer;
    try {
      for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(kMaxBodyBytes);
        parser.header_limit(64 * 1024);
        auto [header_ec, header_bytes] =
            co_await http::async_read_header(socket, buffer, parser, kNoThrow);
        boost::system::error_code ec = header_ec;
        if (!ec) {
          // curl sends "Expect: 100-continue" for large bodies and waits for this line.
          const auto expect = parser.get()[http::field::expect];
          if (boost::beast::iequals(expect, "100-continue") &&
              !co_await WriteAll(socket, "HTTP/1.1 100 Continue\r\n\r\n")) {
            break;
          }
          auto [body_ec, body_bytes] = co_await http::async_read(socket, buffer, parser, kNoThrow);
          ec = body_ec;
        }
        if (ec) {
          if (ec == http::error::body_limit) {
            co_await WriteAll(socket,
                              HttpResponse(413, "application/json",
                                           ErrorJson(413, "Request body too large"), false));
          } else if (IsMalformedRequest(ec)) {
            co_await WriteAll(
                socket,
                HttpResponse(400, "application/json",
                             ErrorJson(400, "Malformed HTTP request: " + ec.message()), false));
          }
          break;
        }
        http::request<http::string_body> request = parser.release();
        const bool keep_alive = request.keep_alive();
        std::string stash;
        ++active_requests_;
        ScopeExit done([this] { --active_requests_; });
        Reply reply = co_await Route(socket, request, keep_alive, stash);
        if (reply.close || !keep_alive || !socket.is_open() || draining_) break;
        if (!stash.empty()) {
          auto space = buffer.prepare(stash.size());
          asio::buffer_copy(space, asio::buffer(stash));
          buffer.commit(stash.size());
        }
      }
    } catch (const std::exception& error) {
      std::fprintf(stderr, "tokenway-sim: connection error: %s\n", error.what());
    }
    if (socket.is_open()) {
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      socket.close(ignored);
    }
  }

  awaitable<Reply> Respond(tcp::socket& socket, int status, std::string_view content_type,
                           std::string_view body, bool keep_alive) {
    const bool ok = co_await WriteAll(socket, HttpResponse(status, content_type, body, keep_alive));
    co_return Reply{!ok};
  }

  awaitable<Reply> RespondError(tcp::socket& socket, int status, std::string_view message,
                                bool keep_alive) {
    co_return co_await Respond(socket, status, "application/json", ErrorJson(status, message),
                               keep_alive);
  }

  awaitable<Reply> Route(tcp::socket& socket, http::request<http::string_body>& request,
                         bool keep_alive, std::string& stash) {
    std::string_view target = request.target();
    target = target.substr(0, target.find('?'));
    const http::verb method = request.method();
    const bool get = method == http::verb::get;
    const bool post = method == http::verb::post;
    const char* json = "application/json";

    if (target == "/v1/chat/completions" || target == "/v1/completions") {
      if (!post) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      const ApiKind kind = target == "/v1/chat/completions" ? ApiKind::kChat : ApiKind::kCompletion;
      auto result =
          co_await (ServeGeneration(socket, kind, std::move(request.body()), keep_alive) ||
                    WatchDisconnect(socket, stash));
      if (result.index() == 1) co_return Reply{true};  // client went away
      co_return std::get<0>(result);
    }
    if (target == "/v1/embeddings") {
      if (!post) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      co_return co_await ServeEmbeddings(socket, request.body(), keep_alive);
    }
    if (target == "/health") {
      if (!get) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      co_return co_await Respond(socket, faults_.health_fail ? 503 : 200, "", "", keep_alive);
    }
    if (target == "/metrics") {
      if (!get) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      MetricsContext context;
      context.model_name = options_.engine.model_name;
      context.wall_clock_seconds =
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count();
      co_return co_await Respond(socket, 200, "text/plain; version=0.0.4; charset=utf-8",
                                 RenderMetrics(engine_, options_.dialect, context), keep_alive);
    }
    if (target == "/v1/models") {
      if (!get) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      co_return co_await Respond(
          socket, 200, json,
          ModelListJson(options_.engine.model_name, engine_.max_model_len(), created_, adapters_),
          keep_alive);
    }
    if (target == "/v1/load_lora_adapter" || target == "/v1/unload_lora_adapter") {
      if (!post) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      const bool load = target == "/v1/load_lora_adapter";
      auto parsed = ParseLoraRequest(request.body(), load);
      if (auto* error = std::get_if<ApiError>(&parsed)) {
        co_return co_await RespondError(socket, error->status, error->message, keep_alive);
      }
      const AdapterEntry entry = std::get<AdapterEntry>(std::move(parsed));
      auto it = std::find_if(adapters_.begin(), adapters_.end(),
                             [&](const AdapterEntry& a) { return a.name == entry.name; });
      if (load) {
        if (it != adapters_.end()) {
          co_return co_await RespondError(
              socket, 400, "The lora adapter '" + entry.name + "' has already been loaded.",
              keep_alive);
        }
        if (adapters_.size() >= kMaxRegisteredAdapters ||
            entry.name == options_.engine.model_name) {
          co_return co_await RespondError(socket, 400, "Cannot load adapter '" + entry.name + "'.",
                                          keep_alive);
        }
        adapters_.push_back(entry);
        co_return co_await Respond(socket, 200, "text/plain; charset=utf-8",
                                   "Success: LoRA adapter '" + entry.name + "' added successfully.",
                                   keep_alive);
      }
      if (it == adapters_.end()) {
        co_return co_await RespondError(
            socket, 404, "The lora adapter '" + entry.name + "' cannot be found.", keep_alive);
      }
      adapters_.erase(it);
      engine_.UnloadAdapter(entry.name);
      co_return co_await Respond(socket, 200, "text/plain; charset=utf-8",
                                 "Success: LoRA adapter '" + entry.name + "' removed successfully.",
                                 keep_alive);
    }
    if (target == "/sim/faults") {
      if (post) {
        std::string error = faults_.ApplyJson(request.body());
        if (!error.empty()) co_return co_await RespondError(socket, 400, error, keep_alive);
      } else if (!get) {
        co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      }
      co_return co_await Respond(socket, 200, json, faults_.ToJson(), keep_alive);
    }
    if (target == "/sim/stats") {
      if (!get) co_return co_await RespondError(socket, 405, "Method Not Allowed", keep_alive);
      co_return co_await Respond(socket, 200, json, StatsJson(), keep_alive);
    }
    co_return co_await Respond(socket, 404, json, "{\"detail\":\"Not Found\"}", keep_alive);
  }

  std::string StatsJson() const {
    std::vector<double> sorted = lateness_us_;
    std::sort(sorted.begin(), sorted.end());
    auto percentile = [&](double p) {
      if (sorted.empty()) return 0.0;
      return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(p * sorted.size()))];
    };
    const EngineStats& s = engine_.stats();
    char text[512];
    std::snprintf(text, sizeof text,
                  "{\"steps\":%llu,\"step_lateness_us\":{\"samples\":%zu,\"p50\":%.1f,"
                  "\"p99\":%.1f,\"max\":%.1f},\"running\":%zu,\"waiting\":%zu,"
                  "\"preemptions\":%llu,\"kv_usage\":%.6f,\"lora_loads\":%llu}",
                  static_cast<unsigned long long>(s.steps), sorted.size(), percentile(0.5),
                  percentile(0.99), sorted.empty() ? 0.0 : sorted.back(), engine_.num_running(),
                  engine_.num_waiting(), static_cast<unsigned long long>(s.preemptions),
                  engine_.kv_usage(), static_cast<unsigned long long>(s.lora_loads));
    return text;
  }

  double Uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

  int64_t SampleOutputLength() {
    // Exponential with the configured mean (a long tail like ShareGPT's outputs), at least 1.
    const double u = Uniform();
    return std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(-options_.output_len_mean * std::log1p(-u))));
  }

  // /v1/embeddings: the lexical embedding of each input, answered at once (after
  // fault-slow-start-ms, and subject to the error and rate-limit faults like generation).
  awaitable<Reply> ServeEmbeddings(tcp::socket& socket, std::string body, bool keep_alive) {
    auto parsed = ParseEmbeddingsRequest(body);
    if (auto* error = std::get_if<ApiError>(&parsed)) {
      co_return co_await RespondError(socket, error->status, error->message, keep_alive);
    }
    const EmbeddingsSpec spec = std::get<EmbeddingsSpec>(std::move(parsed));
    const bool known = spec.model == options_.engine.model_name ||
                       std::any_of(adapters_.begin(), adapters_.end(),
                                   [&](const AdapterEntry& a) { return a.name == spec.model; });
    if (!known) {
      co_return co_await RespondError(socket, 404, "The model `" + spec.model + "` does not exist.",
                                      keep_alive);
    }
    if (faults_.error_rate > 0 && Uniform() < faults_.error_rate) {
      co_return co_await RespondError(socket, 500, "Simulated engine failure (fault injection)",
                                      keep_alive);
    }
    if (faults_.rate_limit_rate > 0 && Uniform() < faults_.rate_limit_rate) {
      co_return co_await RespondError(socket, 429, "Simulated rate limit (fault injection)",
                                      keep_alive);
    }
    if (faults_.slow_start_ms > 0) {
      asio::steady_timer delay(socket.get_executor(),
                               std::chrono::milliseconds(faults_.slow_start_ms));
      co_await delay.async_wait(kNoThrow);
    }
    const std::string id = "embd-" + std::to_string(++embedding_requests_);
    const int64_t created =
        static_cast<int64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
    co_return co_await Respond(socket, 200, "application/json",
                               EmbeddingsResponse(spec, id, created), keep_alive);
  }

  awaitable<Reply> ServeGeneration(tcp::socket& socket, ApiKind kind, std::string body,
                                   bool keep_alive) {
    auto parsed = ParseGenerationRequest(kind, body);
    if (auto* error = std::get_if<ApiError>(&parsed)) {
      co_return co_await RespondError(socket, error->status, error->message, keep_alive);
    }
    GenerationSpec spec = std::get<GenerationSpec>(std::move(parsed));
    std::string adapter;
    if (spec.model != options_.engine.model_name) {
      const bool known = std::any_of(adapters_.begin(), adapters_.end(),
                                     [&](const AdapterEntry& a) { return a.name == spec.model; });
      if (!known) {
        co_return co_await RespondError(
            socket, 404, "The model `" + spec.model + "` does not exist.", keep_alive);
      }
      adapter = spec.model;
    }

    // Injected failures, drawn independently per request.
    if (faults_.error_rate > 0 && Uniform() < faults_.error_rate) {
      co_return co_await RespondError(socket, 500, "Simulated engine failure (fault injection)",
                                      keep_alive);
    }
    if (faults_.rate_limit_rate > 0 && Uniform() < faults_.rate_limit_rate) {
      co_return co_await RespondError(socket, 429, "Simulated rate limit (fault injection)",
                                      keep_alive);
    }
    if (faults_.garbage_rate > 0 && Uniform() < faults_.garbage_rate) {
      if (Uniform() < 0.5) {
        co_await WriteAll(socket, std::string("\x16\x03\x01 NOT-HTTP garbage \xff\xfe\r\n\r\n"));
        boost::system::error_code ignored;
        socket.close(ignored);
        co_return Reply{true};
      }
      co_return co_await Respond(socket, 200, "application/json",
                                 "{\"id\":\"chatcmpl-garbage\",\"choices\":[{\"tex", keep_alive);
    }

    GenerationRequest request;
    request.prompt_tokens = tokenizer::Encode(spec.prompt_text);
    const int64_t prompt_tokens = static_cast<int64_t>(request.prompt_tokens.size());
    const int64_t max_model_len = engine_.max_model_len();
    if (prompt_tokens >= max_model_len ||
        (spec.max_tokens && prompt_tokens + *spec.max_tokens > max_model_len)) {
      co_return co_await RespondError(
          socket, 400,
          "This model's maximum context length is " + std::to_string(max_model_len) +
              " tokens. However, you requested " +
              std::to_string(prompt_tokens + spec.max_tokens.value_or(0)) + " tokens (" +
              std::to_string(prompt_tokens) + " in the messages, " +
              std::to_string(spec.max_tokens.value_or(0)) +
              " in the completion). Please reduce the length of the messages or completion.",
          keep_alive);
    }
    if (spec.max_tokens) {
      request.max_output_tokens = *spec.max_tokens;
    } else if (spec.ignore_eos) {
      request.max_output_tokens = max_model_len - prompt_tokens;
    } else {
      request.max_output_tokens = std::min(SampleOutputLength(), max_model_len - prompt_tokens);
      request.limit_is_eos = true;
    }
    if (static_cast<int64_t>(engine_.num_waiting()) >= options_.max_waiting) {
      co_return co_await RespondError(socket, 503, "Server overloaded: waiting queue is full",
                                      keep_alive);
    }
    request.adapter = adapter;
    request.stop = std::move(spec.stop);
    request.seed = spec.seed ? *spec.seed : rng_();
    const FaultConfig faults = faults_;  // as configured when the request arrived

    const auto executor = co_await asio::this_coro::executor;
    if (faults.slow_start_ms > 0) {
      asio::steady_timer delay(executor, std::chrono::milliseconds(faults.slow_start_ms));
      co_await delay.async_wait(kNoThrow);
      if (co_await Cancelled()) co_return Reply{true};
    }

    ResponseIdentity identity;
    identity.kind = kind;
    char id[40];
    std::snprintf(id, sizeof id, "%s-%016llx", kind == ApiKind::kChat ? "chatcmpl" : "cmpl",
                  static_cast<unsigned long long>(rng_()));
    identity.id = id;
    identity.created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    identity.model = spec.model;

    Generation generation(executor, socket);
    generation.identity = std::move(identity);
    generation.stream = spec.stream;
    generation.include_usage = spec.include_usage;
    generation.stall_after_tokens = faults.stall_after_tokens;
    generation.drop_after_tokens = faults.drop_after_tokens;
    generation.engine_id = engine_.Add(std::move(request), EngineNow());
    generations_.emplace(generation.engine_id, &generation);
    GenerationGuard guard(*this, generation);
    Kick();

    if (spec.stream) {
      if (!co_await WriteAll(socket,
                             "HTTP/1.1 200 OK\r\nServer: tokenway-sim\r\n"
                             "Content-Type: text/event-stream; charset=utf-8\r\n"
                             "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n" +
                                 std::string(keep_alive ? "Connection: keep-alive\r\n\r\n"
                                                        : "Connection: close\r\n\r\n"))) {
        co_return Reply{true};
      }
    }
    generation.writer_busy = false;

    std::string in_flight;
    for (;;) {
      if (generation.write_failed) co_return Reply{true};
      if (generation.fault == Generation::Fault::kStall) {
        Detach(generation);  // the engine is done with it; the client hangs
        for (;;) {
          co_await generation.signal.Wait();
          if (co_await Cancelled()) co_return Reply{true};
        }
      }
      if (generation.fault == Generation::Fault::kDrop) {
        boost::system::error_code ignored;
        socket.set_option(asio::socket_base::linger(true, 0), ignored);
        socket.close(ignored);
        co_return Reply{true};
      }
      if (!generation.outbox.empty()) {
        in_flight.clear();
        in_flight.swap(generation.outbox);
        generation.writer_busy = true;
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(in_flight), kNoThrow);
        generation.writer_busy = false;
        if (ec) co_return Reply{true};
        continue;
      }
      if (generation.complete) {
        if (!spec.stream) {
          co_return co_await Respond(socket, 200, "application/json",
                                     CompleteResponse(generation.identity, generation.text,
                                                      generation.finish_reason, generation.usage),
                                     keep_alive);
        }
        co_return Reply{!keep_alive};
      }
      co_await generation.signal.Wait();
      if (co_await Cancelled()) co_return Reply{true};
    }
  }

  asio::io_context& io_;
  EndpointOptions options_;
  Engine engine_;
  tcp::acceptor acceptor_;
  asio::steady_timer step_timer_;
  bool draining_ = false;        // SIGTERM: no new connections; each closes after its response
  int64_t active_requests_ = 0;  // requests being answered (read, not yet fully written)
  double speed_;
  Clock::time_point origin_;
  Clock::time_point step_end_{};
  double step_end_engine_ = 0;
  std::mt19937_64 rng_;
  FaultConfig faults_;
  std::vector<AdapterEntry> adapters_;
  uint64_t embedding_requests_ = 0;
  std::unordered_map<uint64_t, Generation*> generations_;
  std::vector<double> lateness_us_;
  std::size_t lateness_next_ = 0;
  int64_t created_ = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
};

SimServer::SimServer(asio::io_context& io, ServerOptions options)
    : io_(io), options_(std::move(options)) {
  const auto origin = Clock::now();
  for (std::size_t i = 0; i < options_.endpoints.size(); ++i) {
    endpoints_.push_back(std::make_unique<Endpoint>(
        io_, options_.endpoints[i], options_.speed, origin,
        options_.endpoints[i].engine.seed * 0x9E3779B97F4A7C15ull + i + 1));
  }
}

SimServer::~SimServer() = default;

std::vector<uint16_t> SimServer::Listen() {
  std::vector<uint16_t> ports;
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    const uint16_t port =
        options_.first_port == 0 ? 0 : static_cast<uint16_t>(options_.first_port + i);
    ports.push_back(endpoints_[i]->Listen(options_.host, port));
  }
  return ports;
}

void SimServer::Start() {
  for (auto& endpoint : endpoints_) endpoint->Start();
}

void SimServer::Drain() {
  for (auto& endpoint : endpoints_) endpoint->Drain();
}

int64_t SimServer::active_requests() const {
  int64_t n = 0;
  for (const auto& endpoint : endpoints_) n += endpoint->active_requests();
  return n;
}

}  // namespace tokenway::sim
