#include "bench/load_generator.h"

#include <netinet/tcp.h>

#include <unistd.h>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>

#include "bench/sse_client.h"
#include "common/usage.h"
#include "http/response_parser.h"

namespace tokenway::bench {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr size_t kReadBuffer = 64 * 1024;
constexpr size_t kTtftRing = 128;

int64_t NowNs(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}

struct Conn {
  explicit Conn(asio::io_context& io) : sock(io) { buf.resize(kReadBuffer); }
  tcp::socket sock;
  std::string buf;
  size_t begin = 0, end = 0;
  std::string body;
  int64_t deadline_ns = 0;  // 0: idle
  bool timed_out = false;
  bool alive = false;
  bool maybe_more = false;  // the last read filled the buffer: read before waiting
};

// What every thread shares, read-only during the run.
struct Shared {
  const LoadOptions* options;
  const std::vector<WorkloadRequest>* workload;
  std::vector<std::string> wire;  // request bytes per workload entry
  std::vector<double> arrivals;   // open loop: send offsets in seconds
  Clock::time_point start;
  int64_t warmup_ns = 0, end_ns = 0;  // end_ns 0: no time bound
  tcp::endpoint endpoint;
  const std::atomic<bool>* stop = nullptr;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> measured_started{0};
  bool Stopped() const { return stop && stop->load(std::memory_order_relaxed); }
};

struct ThreadCtx {
  explicit ThreadCtx(Shared* s) : shared(s), io(1) {}
  Shared* shared;
  asio::io_context io;
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<Conn*> idle;
  UsageReader usage;
  std::vector<RequestRecord> records;
  std::vector<uint32_t> itl;
  int64_t in_flight = 0;
  bool scheduling = true;
  bool abandon = false;
  int64_t unfinished = 0;
  int64_t client_limited = 0;
  double last_measured_end = 0;
  // Progress, read by the main thread.
  std::atomic<int64_t> done{0}, errors{0};
  std::array<std::atomic<float>, kTtftRing> ttft_ring{};
  std::atomic<uint64_t> ttft_count{0};

  Conn* Acquire() {
    if (!idle.empty()) {
      Conn* c = idle.back();
      idle.pop_back();
      return c;
    }
    conns.push_back(std::make_unique<Conn>(io));
    return conns.back().get();
  }
  void Release(Conn* c, bool keep) {
    c->deadline_ns = 0;
    c->begin = c->end = 0;
    if (!keep || !c->alive) {
      error_code ec;
      c->sock.close(ec);
      c->alive = false;
      c->timed_out = false;
      c->maybe_more = false;
    }
    idle.push_back(c);
  }
};

// Sends one request and reads its response on `c`. Returns the error kind; `retryable` is set
// when a reused keep-alive connection failed before any response byte (the server had closed
// it), so the caller may retry once on a fresh connection.
asio::awaitable<ErrorKind> Exchange(ThreadCtx& ctx, Conn& c, size_t index, RequestRecord& rec,
                                    StreamMeter& meter, bool& retryable) {
  Shared& sh = *ctx.shared;
  const LoadOptions& o = *sh.options;
  error_code ec;
  retryable = false;
  bool reused = c.alive;
  if (!c.alive) {
    c.sock = tcp::socket(ctx.io);
    c.timed_out = false;
    c.deadline_ns = NowNs(sh.start) + static_cast<int64_t>(o.timeout_s * 1e9);
    co_await c.sock.async_connect(sh.endpoint, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return c.timed_out ? ErrorKind::kTimeout : ErrorKind::kConnect;
    c.sock.set_option(tcp::no_delay(true), ec);
    c.sock.non_blocking(true, ec);
    c.alive = true;
  }
  int64_t t0 = NowNs(sh.start);
  rec.start = t0 / 1e9;
  c.deadline_ns = t0 + static_cast<int64_t>(o.timeout_s * 1e9);
  const std::string& wire = sh.wire[index];
  co_await asio::async_write(c.sock, asio::buffer(wire),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    c.alive = false;
    if (c.timed_out) co_return ErrorKind::kTimeout;
    retryable = reused;
    co_return ErrorKind::kConnect;
  }
  c.body.clear();
  ResponseParser parser(64 * 1024, uint64_t(1) << 34, &c.body);
  bool head_done = false, streaming = false, received = false;
  error_code pec;
  for (;;) {
    while (c.begin < c.end && !parser.is_done()) {
      size_t n = parser.put(asio::buffer(c.buf.data() + c.begin, c.end - c.begin), pec);
      c.begin += n;
      if (pec == http::error::need_more) {
        pec = {};
        break;
      }
      if (pec) {
        c.alive = false;
        co_return ErrorKind::kMalformedBody;
      }
      if (!head_done && parser.is_header_done()) {
        head_done = true;
        rec.status = parser.status;
        if (parser.status == 200 && parser.event_stream) {
          streaming = true;
          parser.set_sink(meter.buffer());
        }
        parser.eager(true);
      }
    }
    int64_t now = NowNs(sh.start);
    if (streaming) meter.Drain(now);
    if (parser.is_done()) break;
    if (c.begin == c.end) {
      c.begin = c.end = 0;
    } else if (c.begin > 0 && c.end == c.buf.size()) {
      std::memmove(c.buf.data(), c.buf.data() + c.begin, c.end - c.begin);
      c.end -= c.begin;
      c.begin = 0;
    }
    if (c.end == c.buf.size()) c.buf.resize(c.buf.size() * 2);
    // Wait for readiness, then read without blocking: one read() per wake-up. (async_read_some
    // would first try a read that usually fails with EAGAIN, doubling the system calls per
    // streamed event.) After a read that filled the buffer more may be pending: read again
    // before waiting.
    size_t n = 0;
    if (!c.maybe_more) {
      co_await c.sock.async_wait(tcp::socket::wait_read,
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec) {
      size_t space = c.buf.size() - c.end;
      n = c.sock.read_some(asio::buffer(c.buf.data() + c.end, space), ec);
      c.maybe_more = n == space;
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        c.maybe_more = false;
        continue;
      }
    }
    c.end += n;
    if (n > 0) received = true;
    if (ec) {
      c.alive = false;
      if (c.timed_out) co_return ErrorKind::kTimeout;
      if (ec == asio::error::eof && head_done && parser.need_eof()) {
        parser.put_eof(pec);
        if (!pec) break;
      }
      if (!received && reused) {
        retryable = true;  // the server had closed the idle keep-alive connection
        co_return ErrorKind::kConnect;
      }
      co_return head_done&& parser.status >= 400
          ? (parser.status >= 500 ? ErrorKind::kHttp5xx : ErrorKind::kHttp4xx)
          : ErrorKind::kTruncatedStream;
    }
  }
  int64_t t_end = NowNs(sh.start);
  if (!parser.keep_alive()) c.alive = false;
  rec.e2e = (t_end - t0) / 1e9;
  if (parser.status >= 500) co_return ErrorKind::kHttp5xx;
  if (parser.status >= 400) co_return ErrorKind::kHttp4xx;
  if (parser.status != 200) co_return ErrorKind::kMalformedBody;
  if (streaming) co_return RecordStream(meter, t0, rec);
  co_return RecordBody(ctx.usage, c.body, rec);
}

asio::awaitable<void> Execute(ThreadCtx& ctx, size_t index, bool warmup) {
  Shared& sh = *ctx.shared;
  const WorkloadRequest& w = (*sh.workload)[index];
  ++ctx.in_flight;
  RequestRecord rec;
  rec.input_tokens = w.input_tokens;
  rec.group = w.group;
  rec.warmup = warmup;
  StreamMeter meter(&ctx.usage, warmup ? nullptr : &ctx.itl);
  for (int attempt = 0;; ++attempt) {
    Conn* c = ctx.Acquire();
    bool retryable = false;
    meter.Reset();
    rec.status = 0;
    ErrorKind err = co_await Exchange(ctx, *c, index, rec, meter, retryable);
    rec.error = err;
    ctx.Release(c, err == ErrorKind::kNone);
    if (err == ErrorKind::kNone || !retryable || attempt > 0 || ctx.abandon) break;
  }
  --ctx.in_flight;
  if (ctx.abandon && !rec.ok()) {
    ++ctx.unfinished;
    co_return;
  }
  if (!warmup) {
    ctx.last_measured_end = std::max(ctx.last_measured_end, NowNs(sh.start) / 1e9);
  }
  ctx.done.fetch_add(1, std::memory_order_relaxed);
  if (!rec.ok()) ctx.errors.fetch_add(1, std::memory_order_relaxed);
  if (rec.ttft >= 0) {
    uint64_t k = ctx.ttft_count.fetch_add(1, std::memory_order_relaxed);
    ctx.ttft_ring[k % kTtftRing].store(static_cast<float>(rec.ttft), std::memory_order_relaxed);
  }
  ctx.records.push_back(rec);
}

// Closes timed-out connections; after scheduling ends, waits for in-flight requests up to the
// drain time, then abandons them.
asio::awaitable<void> Sweep(ThreadCtx& ctx) {
  Shared& sh = *ctx.shared;
  asio::steady_timer timer(ctx.io);
  int64_t drain_deadline = -1;
  for (;;) {
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(asio::use_awaitable);
    int64_t now = NowNs(sh.start);
    if (!ctx.scheduling && ctx.in_flight == 0) break;
    if (!ctx.scheduling && drain_deadline < 0) {
      drain_deadline = now + static_cast<int64_t>(sh.options->drain_s * 1e9);
    }
    if (sh.Stopped() && drain_deadline > now) drain_deadline = now;
    bool abandon = drain_deadline >= 0 && now >= drain_deadline;
    if (abandon) ctx.abandon = true;
    for (auto& c : ctx.conns) {
      if (c->deadline_ns > 0 && (abandon || now > c->deadline_ns)) {
        c->timed_out = !abandon;
        c->deadline_ns = 0;
        error_code ec;
        c->sock.close(ec);
      }
    }
  }
  for (auto& c : ctx.conns) {
    error_code ec;
    c->sock.close(ec);
  }
}

asio::awaitable<void> OpenLoop(ThreadCtx& ctx, size_t thread, size_t threads) {
  Shared& sh = *ctx.shared;
  asio::steady_timer timer(ctx.io);
  const size_t n = sh.workload->size();
  for (size_t i = thread; i < sh.arrivals.size() && !sh.Stopped(); i += threads) {
    auto at = sh.start + std::chrono::nanoseconds(static_cast<int64_t>(sh.arrivals[i] * 1e9));
    if (at > Clock::now()) {
      timer.expires_at(at);
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (sh.Stopped()) break;
    if (ctx.in_flight >= sh.options->max_in_flight) {
      ++ctx.client_limited;
      continue;
    }
    bool warmup = sh.arrivals[i] * 1e9 < static_cast<double>(sh.warmup_ns);
    asio::co_spawn(ctx.io, Execute(ctx, i % n, warmup), asio::detached);
  }
  ctx.scheduling = false;
}

asio::awaitable<void> ClosedLoopWorker(ThreadCtx& ctx, int64_t* live) {
  Shared& sh = *ctx.shared;
  const LoadOptions& o = *sh.options;
  const size_t n = sh.workload->size();
  while (!sh.Stopped()) {
    int64_t now = NowNs(sh.start);
    if (sh.end_ns > 0 && now >= sh.end_ns) break;
    bool warmup = now < sh.warmup_ns;
    if (!warmup && o.requests > 0 &&
        sh.measured_started.fetch_add(1, std::memory_order_relaxed) >= o.requests) {
      break;
    }
    int64_t i = sh.next.fetch_add(1, std::memory_order_relaxed);
    co_await Execute(ctx, static_cast<size_t>(i) % n, warmup);
  }
  if (--*live == 0) ctx.scheduling = false;
}

}  // namespace

std::vector<double> ArrivalTimes(const LoadOptions& o, const std::vector<WorkloadRequest>& w) {
  std::vector<double> out;
  if (o.trace_arrivals) {
    for (const auto& r : w) out.push_back(std::max(0.0, r.arrival_s));
    std::sort(out.begin(), out.end());
    if (o.duration_s > 0) {
      while (!out.empty() && out.back() > o.warmup_s + o.duration_s) out.pop_back();
    }
    return out;
  }
  std::mt19937_64 rng(o.seed ^ 0xA5A5A5A5ull);
  std::exponential_distribution<double> gap(o.rate);
  double t = 0;
  int64_t measured = 0;
  for (;;) {
    if (o.duration_s > 0 && t >= o.warmup_s + o.duration_s) break;
    if (t >= o.warmup_s) {
      if (o.requests > 0 && measured >= o.requests) break;
      ++measured;
    }
    out.push_back(t);
    if (out.size() > 50'000'000) break;
    t += o.poisson ? gap(rng) : 1.0 / o.rate;
  }
  return out;
}

ErrorKind RecordStream(const StreamMeter& meter, int64_t t0_ns, RequestRecord& rec) {
  rec.stream_tokens = meter.token_chunks();
  if (meter.first_token_ns() >= 0) rec.ttft = (meter.first_token_ns() - t0_ns) / 1e9;
  if (meter.max_gap_ns() >= 0) rec.max_itl = meter.max_gap_ns() / 1e9;
  rec.output_tokens = meter.has_usage() && meter.usage().completion_tokens >= 0
                          ? meter.usage().completion_tokens
                          : meter.token_chunks();
  if (meter.has_usage()) {
    rec.cached_tokens = meter.usage().cached_tokens;
    rec.usage_mismatch = meter.usage().completion_tokens != meter.token_chunks();
  }
  if (rec.output_tokens > 1 && rec.ttft >= 0) {
    rec.tpot = (rec.e2e - rec.ttft) / static_cast<double>(rec.output_tokens - 1);
  }
  if (meter.error_event()) return ErrorKind::kStreamError;
  if (meter.malformed()) return ErrorKind::kMalformedSse;
  if (!meter.done()) return ErrorKind::kTruncatedStream;
  return ErrorKind::kNone;
}

ErrorKind RecordBody(UsageReader& usage, std::string& body, RequestRecord& rec) {
  UsageReading reading;
  if (!usage.ReadInPlace(body, reading)) return ErrorKind::kMalformedBody;
  if (reading.has_usage) {
    rec.output_tokens = std::max<int64_t>(0, reading.usage.completion_tokens);
    rec.cached_tokens = reading.usage.cached_tokens;
  }
  return ErrorKind::kNone;
}

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone:
      return "none";
    case ErrorKind::kConnect:
      return "connect";
    case ErrorKind::kHttp4xx:
      return "http_4xx";
    case ErrorKind::kHttp5xx:
      return "http_5xx";
    case ErrorKind::kMalformedSse:
      return "malformed_sse";
    case ErrorKind::kMalformedBody:
      return "malformed_body";
    case ErrorKind::kTruncatedStream:
      return "truncated_stream";
    case ErrorKind::kStreamError:
      return "stream_error";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kCount:
      break;
  }
  return "unknown";
}

StatusOr<Target> ParseHttpUrl(std::string_view url, std::string_view default_path) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Status::Error("URL '" + std::string(url) + "' must start with http://");
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  Target t;
  t.path = slash == std::string_view::npos || rest.substr(slash) == "/"
               ? std::string(default_path)
               : std::string(rest.substr(slash));
  size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    t.host = std::string(hostport);
  } else {
    t.host = std::string(hostport.substr(0, colon));
    int port = 0;
    for (char ch : hostport.substr(colon + 1)) {
      if (ch < '0' || ch > '9') return Status::Error("bad port in URL '" + std::string(url) + "'");
      port = port * 10 + (ch - '0');
      if (port > 65535) return Status::Error("bad port in URL '" + std::string(url) + "'");
    }
    t.port = static_cast<uint16_t>(port);
  }
  if (t.host.empty()) return Status::Error("no host in URL '" + std::string(url) + "'");
  if (t.host == "localhost") t.host = "127.0.0.1";
  return t;
}

std::string WithStream(const std::string& body, bool stream) {
  std::string out = body;
  if (!out.empty() && out.back() == '}') out.pop_back();
  out += stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
                : ",\"stream\":false}";
  return out;
}

LoadResult RunLoad(const LoadOptions& o, const std::vector<WorkloadRequest>& workload,
                   const std::atomic<bool>* stop) {
  LoadResult result;
  if (workload.empty()) return result;
  Shared sh;
  sh.options = &o;
  sh.workload = &workload;
  sh.stop = stop;
  error_code ec;
  auto addr = asio::ip::make_address(o.target.host, ec);
  if (ec) {
    // Resolve names once, before the run.
    asio::io_context io;
    tcp::resolver resolver(io);
    auto results = resolver.resolve(o.target.host, std::to_string(o.target.port), ec);
    if (!ec && !results.empty()) addr = results.begin()->endpoint().address();
  }
  sh.endpoint = tcp::endpoint(addr, o.target.port);
  std::string host_header = o.target.host + ":" + std::to_string(o.target.port);
  sh.wire.reserve(workload.size());
  for (const auto& w : workload) {
    std::string body = WithStream(w.body, o.stream);
    std::string wire = "POST " + o.target.path + " HTTP/1.1\r\nHost: " + host_header +
                       "\r\nContent-Type: application/json\r\nAccept: " +
                       (o.stream ? "text/event-stream" : "application/json") +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    wire += body;
    sh.wire.push_back(std::move(wire));
  }
  bool open_loop = o.trace_arrivals || o.rate > 0;
  if (open_loop) sh.arrivals = ArrivalTimes(o, workload);
  sh.warmup_ns = static_cast<int64_t>(o.warmup_s * 1e9);
  sh.end_ns = o.duration_s > 0 ? static_cast<int64_t>((o.warmup_s + o.duration_s) * 1e9) : 0;

  int threads = std::max(1, o.threads);
  std::vector<std::unique_ptr<ThreadCtx>> ctxs;
  std::vector<int64_t> live(threads, 0);
  for (int t = 0; t < threads; ++t) ctxs.push_back(std::make_unique<ThreadCtx>(&sh));
  sh.start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ThreadCtx& ctx = *ctxs[t];
    if (open_loop) {
      asio::co_spawn(ctx.io, OpenLoop(ctx, t, threads), asio::detached);
    } else {
      int64_t c = std::max<int64_t>(1, o.concurrency);
      int64_t mine = c / threads + (t < c % threads ? 1 : 0);
      live[t] = mine;
      for (int64_t k = 0; k < mine; ++k) {
        asio::co_spawn(ctx.io, ClosedLoopWorker(ctx, &live[t]), asio::detached);
      }
      if (mine == 0) ctx.scheduling = false;
    }
    asio::co_spawn(ctx.io, Sweep(ctx), asio::detached);
  }
  std::vector<std::thread> pool;
  std::atomic<int> running{threads};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ctxs[t]->io.run();
      running.fetch_sub(1);
    });
  }
  bool tty = o.progress && isatty(STDERR_FILENO);
  int64_t last_done = 0;
  auto last_t = Clock::now();
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 500 : 50));
    if (!tty) continue;
    int64_t done = 0, errors = 0;
    std::vector<float> ttfts;
    for (auto& c : ctxs) {
      done += c->done.load(std::memory_order_relaxed);
      errors += c->errors.load(std::memory_order_relaxed);
      size_t n = std::min<uint64_t>(c->ttft_count.load(), kTtftRing);
      for (size_t i = 0; i < n; ++i) ttfts.push_back(c->ttft_ring[i].load());
    }
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - last_t).count();
    double rate = dt > 0 ? (done - last_done) / dt : 0;
    last_done = done;
    last_t = now;
    double p50 = 0;
    if (!ttfts.empty()) {
      std::nth_element(ttfts.begin(), ttfts.begin() + ttfts.size() / 2, ttfts.end());
      p50 = ttfts[ttfts.size() / 2];
    }
    double elapsed = std::chrono::duration<double>(now - sh.start).count();
    fprintf(stderr, "\r\033[K%s%s%.1fs  done %lld  %.1f req/s  ttft p50 %.1f ms  errors %lld",
            o.progress_label.c_str(), o.progress_label.empty() ? "" : "  ", elapsed,
            static_cast<long long>(done), rate, p50 * 1e3, static_cast<long long>(errors));
    fflush(stderr);
  }
  for (auto& th : pool) th.join();
  if (tty) fprintf(stderr, "\r\033[K");
  result.wall_s = std::chrono::duration<double>(Clock::now() - sh.start).count();
  result.measure_start = o.warmup_s;
  for (auto& c : ctxs) {
    result.records.insert(result.records.end(), c->records.begin(), c->records.end());
    result.itl_us.insert(result.itl_us.end(), c->itl.begin(), c->itl.end());
    result.measure_end = std::max(result.measure_end, c->last_measured_end);
    result.unfinished += c->unfinished;
    result.client_limited += c->client_limited;
  }
  std::sort(result.records.begin(), result.records.end(),
            [](const RequestRecord& a, const RequestRecord& b) { return a.start < b.start; });
  return result;
}

}  // namespace tokenway::bench
