#include "bench/epp_load.h"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "bench/sse_client.h"
#include "common/json_writer.h"
#include "common/usage.h"

namespace tokenway::bench {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Shared {
  const EppLoadOptions* options;
  const std::vector<WorkloadRequest>* workload;
  std::vector<std::string> bodies;  // request body per workload entry
  std::vector<double> arrivals;     // open loop: send offsets in seconds
  Clock::time_point start;
  int64_t warmup_ns = 0, end_ns = 0;
  const std::atomic<bool>* stop = nullptr;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> measured_started{0};
  std::atomic<int64_t> request_ids{0};
  bool Stopped() const { return stop && stop->load(std::memory_order_relaxed); }
  int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  }
};

// One finished request as the EPP figures need it, next to its RequestRecord.
struct EppRecord {
  bool warmup = false;
  bool picked = false;
  double decision_s = -1;
  int immediate_status = 0;
  int64_t response_chunks = 0;
  double end_s = 0;
  std::string failure;
  std::string served;
};

struct ThreadCtx {
  ThreadCtx(Shared* s, const std::string& target) : shared(s), io(1), pool(io) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    stub = std::make_unique<grpc::GenericStub>(channel);
  }
  Shared* shared;
  asio::io_context io;
  UpstreamPool pool;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  UsageReader usage;
  std::vector<RequestRecord> records;
  std::vector<EppRecord> epp;
  std::vector<uint32_t> itl;
  int64_t in_flight = 0;
  int64_t client_limited = 0;
  int64_t unfinished = 0;
  bool abandon = false;  // the drain time ran out: open streams are cancelled
  std::vector<std::weak_ptr<ExtProcCall>> streams;
  void AbandonAll() {
    abandon = true;
    for (auto& w : streams) {
      if (auto s = w.lock()) s->Cancel();
    }
    streams.clear();
  }
  double last_measured_end = 0;
  std::atomic<int64_t> done{0}, errors{0};
};

ErrorKind StatusKind(int status) {
  return status >= 500 ? ErrorKind::kHttp5xx
                       : (status >= 400 ? ErrorKind::kHttp4xx : ErrorKind::kMalformedBody);
}

asio::awaitable<void> Execute(ThreadCtx& ctx, size_t index, bool warmup) {
  Shared& sh = *ctx.shared;
  const EppLoadOptions& o = *sh.options;
  const WorkloadRequest& w = (*sh.workload)[index];
  ++ctx.in_flight;
  RequestRecord rec;
  rec.input_tokens = w.input_tokens;
  rec.group = w.group;
  rec.warmup = warmup;
  EppRecord er;
  er.warmup = warmup;
  StreamMeter meter(&ctx.usage, warmup ? nullptr : &ctx.itl);
  EnvoyRequest req;
  req.path = o.load.target.path;
  req.authority = o.authority;
  req.headers = {{"content-type", "application/json"},
                 {"accept", o.load.stream ? "text/event-stream" : "application/json"},
                 {"x-request-id", "bench-" + std::to_string(sh.request_ids.fetch_add(1))},
                 {"user-agent", "tokenway-bench"}};
  req.body = sh.bodies[index];
  bool streaming = false;
  auto relay = [&](std::string_view piece, int64_t now) {
    if (!streaming) return;
    meter.buffer()->append(piece);
    meter.Drain(now);
  };
  streaming = o.load.stream;
  EnvoyOptions eo = o.envoy;
  eo.on_stream = [&ctx](const std::shared_ptr<ExtProcCall>& s) {
    if (ctx.abandon) {
      s->Cancel();
      return;
    }
    if (ctx.streams.size() > 4 * static_cast<size_t>(ctx.in_flight) + 64) {
      std::erase_if(ctx.streams, [](const auto& w) { return w.expired(); });
    }
    ctx.streams.push_back(s);
  };
  EnvoyResult r = co_await RunEnvoyExchange(*ctx.stub, ctx.pool, std::move(req), eo, relay,
                                            [&sh] { return sh.Now(); });
  const int64_t t0 = r.headers_sent_ns >= 0 ? r.headers_sent_ns : sh.Now();
  rec.start = t0 / 1e9;
  rec.e2e = (r.end_ns - t0) / 1e9;
  er.end_s = r.end_ns / 1e9;
  er.response_chunks = r.response_chunks_received;
  if (r.pick_ns >= 0) {
    er.picked = true;
    er.decision_s = (r.pick_ns - t0) / 1e9;
    er.served = r.served;
  }
  switch (r.outcome) {
    case EnvoyResult::Outcome::kImmediate:
      er.immediate_status = r.immediate_status;
      rec.status = r.immediate_status;
      rec.error = StatusKind(r.immediate_status);
      break;
    case EnvoyResult::Outcome::kFailed:
      er.failure = r.error.substr(0, 100);
      rec.error = r.error.find("timeout") != std::string::npos || r.grpc_code == 4
                      ? ErrorKind::kTimeout
                      : (r.error.find("stream") != std::string::npos ? ErrorKind::kConnect
                                                                     : ErrorKind::kMalformedBody);
      break;
    case EnvoyResult::Outcome::kCompleted: {
      rec.status = r.upstream_status;
      if (r.upstream_status != 200) {
        rec.error = StatusKind(r.upstream_status);
        break;
      }
      const bool sse = r.upstream_content_type.rfind("text/event-stream", 0) == 0;
      rec.error = streaming && sse ? RecordStream(meter, t0, rec)
                                   : RecordBody(ctx.usage, r.relayed_body, rec);
      break;
    }
  }
  --ctx.in_flight;
  if (ctx.abandon && !rec.ok()) {
    ++ctx.unfinished;
    co_return;
  }
  if (!warmup) ctx.last_measured_end = std::max(ctx.last_measured_end, er.end_s);
  ctx.done.fetch_add(1, std::memory_order_relaxed);
  if (!rec.ok()) ctx.errors.fetch_add(1, std::memory_order_relaxed);
  ctx.records.push_back(rec);
  ctx.epp.push_back(std::move(er));
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
    if (ctx.in_flight >= sh.options->load.max_in_flight) {
      ++ctx.client_limited;
      continue;
    }
    bool warmup = sh.arrivals[i] * 1e9 < static_cast<double>(sh.warmup_ns);
    asio::co_spawn(ctx.io, Execute(ctx, i % n, warmup), asio::detached);
  }
}

asio::awaitable<void> ClosedLoopWorker(ThreadCtx& ctx) {
  Shared& sh = *ctx.shared;
  const LoadOptions& o = sh.options->load;
  const size_t n = sh.workload->size();
  while (!sh.Stopped()) {
    int64_t now = sh.Now();
    if (sh.end_ns > 0 && now >= sh.end_ns) break;
    bool warmup = now < sh.warmup_ns;
    if (!warmup && o.requests > 0 &&
        sh.measured_started.fetch_add(1, std::memory_order_relaxed) >= o.requests) {
      break;
    }
    int64_t i = sh.next.fetch_add(1, std::memory_order_relaxed);
    co_await Execute(ctx, static_cast<size_t>(i) % n, warmup);
  }
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

double ProcessCpuSeconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // The command name may contain spaces: fields start after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(text.substr(close + 1));
  std::string field;
  // Fields 3..13 precede utime (14) and stime (15).
  for (int i = 3; i <= 13; ++i) {
    if (!(in >> field)) return -1;
  }
  long long utime = 0, stime = 0;
  if (!(in >> utime >> stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

EppLoadResult RunEppLoad(const EppLoadOptions& o, const std::vector<WorkloadRequest>& workload,
                         const std::atomic<bool>* stop) {
  EppLoadResult result;
  if (workload.empty()) return result;
  Shared sh;
  sh.options = &o;
  sh.workload = &workload;
  sh.stop = stop;
  sh.bodies.reserve(workload.size());
  for (const auto& w : workload) sh.bodies.push_back(WithStream(w.body, o.load.stream));
  const LoadOptions& lo = o.load;
  bool open_loop = lo.rate > 0;
  if (open_loop) sh.arrivals = ArrivalTimes(lo, workload);
  sh.warmup_ns = static_cast<int64_t>(lo.warmup_s * 1e9);
  sh.end_ns = lo.duration_s > 0 ? static_cast<int64_t>((lo.warmup_s + lo.duration_s) * 1e9) : 0;

  int threads = std::max(1, lo.threads);
  std::vector<std::unique_ptr<ThreadCtx>> ctxs;
  for (int t = 0; t < threads; ++t) ctxs.push_back(std::make_unique<ThreadCtx>(&sh, o.epp));
  // Connect every channel before the clock starts.
  for (auto& c : ctxs) {
    c->channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  sh.start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ThreadCtx& ctx = *ctxs[t];
    if (open_loop) {
      asio::co_spawn(ctx.io, OpenLoop(ctx, t, threads), asio::detached);
    } else {
      int64_t c = std::max<int64_t>(1, lo.concurrency);
      int64_t mine = c / threads + (t < c % threads ? 1 : 0);
      for (int64_t k = 0; k < mine; ++k) {
        asio::co_spawn(ctx.io, ClosedLoopWorker(ctx), asio::detached);
      }
    }
  }
  std::vector<std::thread> pool;
  std::atomic<int> running{threads};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ctxs[t]->io.run();
      running.fetch_sub(1);
    });
  }
  // The picker's CPU: sampled when the warm-up ends and when the last request is done.
  double cpu0 = -1, cpu0_at = 0, self0 = -1;
  bool tty = lo.progress && isatty(STDERR_FILENO);
  auto last_print = Clock::now();
  const auto drain_deadline_after_end =
      std::chrono::nanoseconds(static_cast<int64_t>(lo.drain_s * 1e9));
  bool abandoned = false;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    double elapsed = std::chrono::duration<double>(Clock::now() - sh.start).count();
    if (o.epp_pid > 0 && cpu0 < 0 && elapsed >= lo.warmup_s) {
      cpu0 = ProcessCpuSeconds(o.epp_pid);
      self0 = ProcessCpuSeconds(static_cast<int>(getpid()));
      cpu0_at = elapsed;
    }
    if (!abandoned &&
        (sh.Stopped() ||
         (sh.end_ns > 0 && Clock::now() > sh.start + std::chrono::nanoseconds(sh.end_ns) +
                                              drain_deadline_after_end))) {
      // Streams still open after the drain time are cancelled; their requests are unfinished.
      abandoned = true;
      for (auto& c : ctxs) {
        ThreadCtx* ctx = c.get();
        asio::post(ctx->io, [ctx] { ctx->AbandonAll(); });
      }
    }
    if (tty && Clock::now() - last_print > std::chrono::milliseconds(500)) {
      last_print = Clock::now();
      int64_t done = 0, errors = 0;
      for (auto& c : ctxs) {
        done += c->done.load(std::memory_order_relaxed);
        errors += c->errors.load(std::memory_order_relaxed);
      }
      fprintf(stderr, "\r\033[K%s%s%.1fs  done %lld  errors %lld", lo.progress_label.c_str(),
              lo.progress_label.empty() ? "" : "  ", elapsed, static_cast<long long>(done),
              static_cast<long long>(errors));
      fflush(stderr);
    }
  }
  for (auto& th : pool) th.join();
  if (tty) fprintf(stderr, "\r\033[K");
  double cpu1_at = std::chrono::duration<double>(Clock::now() - sh.start).count();
  double cpu1 = o.epp_pid > 0 ? ProcessCpuSeconds(o.epp_pid) : -1;
  double self1 = o.epp_pid > 0 ? ProcessCpuSeconds(static_cast<int>(getpid())) : -1;
  result.load.wall_s = cpu1_at;
  result.load.measure_start = lo.warmup_s;
  std::vector<std::pair<RequestRecord, EppRecord>> all;
  for (auto& c : ctxs) {
    for (size_t i = 0; i < c->records.size(); ++i) {
      all.emplace_back(c->records[i], std::move(c->epp[i]));
    }
    result.load.itl_us.insert(result.load.itl_us.end(), c->itl.begin(), c->itl.end());
    result.load.measure_end = std::max(result.load.measure_end, c->last_measured_end);
    result.load.client_limited += c->client_limited;
    result.load.unfinished += c->unfinished;
    c->pool.CloseAll();
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first.start < b.first.start; });
  for (auto& [rec, er] : all) {
    result.load.records.push_back(rec);
    if (cpu0 >= 0 && er.end_s >= cpu0_at && er.end_s <= cpu1_at) ++result.cpu_window_requests;
    if (er.warmup) continue;
    if (er.picked) {
      ++result.picks;
      result.decision_s.push_back(er.decision_s);
      ++result.served[er.served];
    }
    if (er.immediate_status > 0) {
      ++result.immediate;
      ++result.immediate_by_status[er.immediate_status];
    }
    if (!er.failure.empty()) ++result.failures[er.failure];
    result.response_chunks += er.response_chunks;
  }
  if (cpu0 >= 0 && cpu1 >= 0) {
    result.cpu_s = cpu1 - cpu0;
    result.cpu_window_s = cpu1_at - cpu0_at;
    if (self0 >= 0 && self1 >= 0) result.client_cpu_s = self1 - self0;
  }
  return result;
}

std::string FormatEppSummary(const EppLoadResult& r, const RunSummary& s) {
  std::vector<double> d = r.decision_s;
  Summary dec = Summarize(d);
  const double window = s.duration_s > 0 ? s.duration_s : 0;
  std::string out = "EPP (Envoy ext_proc stand-in)\n";
  out += "  picks " + std::to_string(r.picks);
  if (window > 0) out += " (" + Fmt("%.1f", r.picks / window) + "/s)";
  out += ", immediate responses " + std::to_string(r.immediate);
  for (const auto& [status, n] : r.immediate_by_status) {
    out += " " + std::to_string(status) + "=" + std::to_string(n);
  }
  int64_t failed = 0;
  for (const auto& [_, n] : r.failures) failed += n;
  out += ", failed exchanges " + std::to_string(failed) + "\n";
  out += "  decision latency ms: mean " + Fmt("%.3f", dec.mean * 1e3) + "  p50 " +
         Fmt("%.3f", dec.p50 * 1e3) + "  p90 " + Fmt("%.3f", dec.p90 * 1e3) + "  p99 " +
         Fmt("%.3f", dec.p99 * 1e3) + "  max " + Fmt("%.3f", dec.max * 1e3) + "\n";
  out += "  response chunks through the processor " + std::to_string(r.response_chunks);
  if (window > 0) out += " (" + Fmt("%.0f", r.response_chunks / window) + "/s)";
  out += "\n";
  if (r.cpu_s >= 0) {
    double share = r.cpu_window_s > 0 ? r.cpu_s / r.cpu_window_s : 0;
    out += "  picker CPU " + Fmt("%.2f", r.cpu_s) + " s in " + Fmt("%.1f", r.cpu_window_s) +
           " s (" + Fmt("%.3f", share) + " cores), " + std::to_string(r.cpu_window_requests) +
           " requests: " +
           Fmt("%.1f", r.cpu_window_requests > 0 ? r.cpu_s / r.cpu_window_requests * 1e6 : 0) +
           " us per request";
    if (share > 0 && window > 0) {
      out += "; " + Fmt("%.0f", r.picks / window / share) + " picks/s and " +
             Fmt("%.0f", r.response_chunks / window / share) + " chunks/s per picker core";
    }
    out += "\n";
    if (r.client_cpu_s >= 0 && r.cpu_window_s > 0) {
      out += "  load generator CPU " + Fmt("%.2f", r.client_cpu_s) + " s (" +
             Fmt("%.3f", r.client_cpu_s / r.cpu_window_s) + " cores)\n";
    }
  }
  if (!r.served.empty()) {
    out += "  served:";
    for (const auto& [ep, n] : r.served) out += " " + ep + "=" + std::to_string(n);
    out += "\n";
  }
  for (const auto& [why, n] : r.failures) {
    out += "  failure x" + std::to_string(n) + ": " + why + "\n";
  }
  return out;
}

std::string EppSummaryJson(const EppLoadResult& r, const RunSummary& s) {
  std::vector<double> d = r.decision_s;
  Summary dec = Summarize(d);
  const double window = s.duration_s;
  std::string out = "{\"picks\":";
  AppendJsonInt(out, r.picks);
  out += ",\"picks_per_s\":" + Fmt("%.3f", window > 0 ? r.picks / window : 0);
  out += ",\"immediate\":";
  AppendJsonInt(out, r.immediate);
  out += ",\"decision_latency\":{\"count\":";
  AppendJsonInt(out, dec.count);
  out += ",\"mean_ms\":" + Fmt("%.4f", dec.mean * 1e3) +
         ",\"p50_ms\":" + Fmt("%.4f", dec.p50 * 1e3) + ",\"p90_ms\":" + Fmt("%.4f", dec.p90 * 1e3) +
         ",\"p99_ms\":" + Fmt("%.4f", dec.p99 * 1e3) + ",\"max_ms\":" + Fmt("%.4f", dec.max * 1e3) +
         "}";
  out += ",\"response_chunks\":";
  AppendJsonInt(out, r.response_chunks);
  out += ",\"response_chunks_per_s\":" + Fmt("%.1f", window > 0 ? r.response_chunks / window : 0);
  if (r.cpu_s >= 0) {
    out += ",\"picker_cpu_s\":" + Fmt("%.3f", r.cpu_s) +
           ",\"cpu_window_s\":" + Fmt("%.3f", r.cpu_window_s) + ",\"cpu_window_requests\":";
    AppendJsonInt(out, r.cpu_window_requests);
    out += ",\"cpu_us_per_request\":" +
           Fmt("%.2f", r.cpu_window_requests > 0 ? r.cpu_s / r.cpu_window_requests * 1e6 : 0);
    out += ",\"client_cpu_s\":" + Fmt("%.3f", r.client_cpu_s);
  }
  out += ",\"failures\":{";
  bool first = true;
  for (const auto& [why, n] : r.failures) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, why);
    out += ':';
    AppendJsonInt(out, n);
  }
  out += "},\"served\":{";
  first = true;
  for (const auto& [ep, n] : r.served) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, ep);
    out += ':';
    AppendJsonInt(out, n);
  }
  out += "}}";
  return out;
}

}  // namespace tokenway::bench
