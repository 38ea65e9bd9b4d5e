#include "telemetry/otlp_exporter.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <optional>

#include "telemetry/prometheus_text.h"
#include "telemetry/span.h"

namespace tokenway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// One keep-alive HTTP/1.1 connection to the collector, driven synchronously from the exporter
// thread by running its own io_context until each exchange ends.
class OtlpExporter::Client {
 public:
  Client(const OtlpTarget& target, std::string user_agent)
      : target_(target),
        user_agent_(std::move(user_agent)),
        host_header_(
            (target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host) +
            ":" + target.port) {}

  // The HTTP status of the answer, or 0 when there was none (connect failure, timeout, broken
  // connection). `retry_after` is set from a Retry-After header in seconds, else zero.
  int Post(const std::string& body, Duration timeout, Duration& retry_after) {
    int status = 0;
    retry_after = Duration::zero();
    ioc_.restart();
    asio::co_spawn(ioc_, Exchange(body, timeout, &retry_after),
                   [&status](std::exception_ptr e, int s) { status = e ? 0 : s; });
    ioc_.run();
    return status;
  }

 private:
  asio::awaitable<int> Exchange(const std::string& body, Duration timeout, Duration* retry_after) {
    constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool reused = stream_.has_value();
      if (!reused) {
        stream_.emplace(ioc_);
        buffer_.clear();
        stream_->expires_at(deadline);
        asio::ip::tcp::resolver resolver(ioc_);
        auto [rec, results] = co_await resolver.async_resolve(target_.host, target_.port, kNoThrow);
        if (rec) {
          stream_.reset();
          co_return 0;
        }
        auto [cec, at] = co_await stream_->async_connect(results, kNoThrow);
        if (cec) {
          stream_.reset();
          co_return 0;
        }
      }
      stream_->expires_at(deadline);
      http::request<http::string_body> req(http::verb::post, target_.path, 11);
      req.set(http::field::host, host_header_);
      req.set(http::field::content_type, "application/json");
      req.set(http::field::user_agent, user_agent_);
      req.body() = body;
      req.prepare_payload();
      auto [wec, wn] = co_await http::async_write(*stream_, req, kNoThrow);
      http::response_parser<http::string_body> parser;
      parser.body_limit(1024 * 1024);
      boost::system::error_code rec;
      if (!wec) {
        auto [ec, rn] = co_await http::async_read(*stream_, buffer_, parser, kNoThrow);
        rec = ec;
      }
      if (wec || rec) {
        stream_.reset();
        // The collector may have closed the kept connection while idle: one fresh try.
        if (reused && !parser.got_some() && std::chrono::steady_clock::now() < deadline) continue;
        co_return 0;
      }
      if (!parser.keep_alive()) stream_.reset();
      const auto& res = parser.get();
      auto it = res.find(http::field::retry_after);
      if (it != res.end()) {
        std::string_view v(it->value().data(), it->value().size());
        if (!v.empty() && v.size() < 6 && v.find_first_not_of("0123456789") == v.npos) {
          *retry_after = std::chrono::seconds(std::stoi(std::string(v)));
        }
      }
      co_return static_cast<int>(res.result_int());
    }
    co_return 0;
  }

  const OtlpTarget target_;
  const std::string user_agent_;
  const std::string host_header_;  // "host:port", IPv6 literals in brackets
  asio::io_context ioc_{1};
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

StatusOr<std::unique_ptr<OtlpExporter>> OtlpExporter::Create(OtlpExporterOptions options) {
  auto target = ParseOtlpEndpoint(options.endpoint);
  if (!target.ok()) return target.status();
  if (options.workers == 0) options.workers = 1;
  if (options.batch_size == 0) options.batch_size = 1;
  return std::unique_ptr<OtlpExporter>(new OtlpExporter(std::move(options), *target));
}

OtlpExporter::OtlpExporter(OtlpExporterOptions options, OtlpTarget target)
    : options_(std::move(options)),
      target_(std::move(target)),
      taken_(options_.workers),
      client_(std::make_unique<Client>(target_, "tokenway")) {
  for (uint32_t i = 0; i < options_.workers; ++i) slots_.push_back(std::make_unique<Slot>());
  thread_ = std::thread([this] { Run(); });
}

OtlpExporter::~OtlpExporter() {
  Stop();
}

void OtlpExporter::Stop() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

OtlpExporterStats OtlpExporter::stats() const {
  OtlpExporterStats s;
  s.spans_exported = exported_.load(std::memory_order_relaxed);
  s.spans_dropped = dropped_.load(std::memory_order_relaxed);
  s.spans_failed = failed_.load(std::memory_order_relaxed);
  s.batches_ok = batches_ok_.load(std::memory_order_relaxed);
  s.batches_failed = batches_failed_.load(std::memory_order_relaxed);
  s.batches_retried = batches_retried_.load(std::memory_order_relaxed);
  return s;
}

void OtlpExporter::Run() {
  for (;;) {
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_.wait_for(lock, options_.batch_interval, [this] {
        return stop_ || pending_.load(std::memory_order_relaxed) >= options_.batch_size;
      });
      stopping = stop_;
    }
    // The final flush gets one `timeout` in all, so shutdown stays bounded.
    if (stopping) stop_deadline_ = std::chrono::steady_clock::now() + options_.timeout;
    if (Collect() > 0) ExportCollected(stopping);
    if (stopping) return;
  }
}

size_t OtlpExporter::Collect() {
  size_t n = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    SpanBuffer& mine = taken_[i];
    mine.spans.clear();
    mine.ends.clear();
    {
      std::lock_guard<std::mutex> lock(slots_[i]->mu);
      std::swap(mine, slots_[i]->buffer);
    }
    n += mine.ends.size();
  }
  pending_.fetch_sub(static_cast<uint32_t>(n), std::memory_order_relaxed);
  return n;
}

void OtlpExporter::ExportCollected(bool stopping) {
  std::string body;
  uint32_t in_batch = 0;
  auto start = [&] {
    body.clear();
    AppendOtlpExportRequestHead(body, options_.service_name);
    in_batch = 0;
  };
  auto flush = [&] {
    if (in_batch == 0) return;
    AppendOtlpExportRequestTail(body);
    PostBatch(body, in_batch, stopping);
    start();
  };
  start();
  for (const SpanBuffer& b : taken_) {
    uint32_t begin = 0;
    for (uint32_t end : b.ends) {
      if (in_batch) body.push_back(',');
      body.append(b.spans, begin, end - begin);
      begin = end;
      if (++in_batch == options_.batch_size) flush();
    }
  }
  flush();
}

void OtlpExporter::PostBatch(const std::string& body, uint32_t spans, bool stopping) {
  Duration backoff = std::chrono::milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    Duration retry_after;
    Duration timeout = options_.timeout;
    if (stopping) {
      auto left = stop_deadline_ - std::chrono::steady_clock::now();
      timeout = std::min<Duration>(timeout, std::chrono::duration_cast<Duration>(left));
    }
    int status = timeout > Duration::zero() ? client_->Post(body, timeout, retry_after) : 0;
    if (status / 100 == 2) {
      exported_.fetch_add(spans, std::memory_order_relaxed);
      batches_ok_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // OTLP/HTTP: only these answers are worth another try; never retry a 400.
    bool retryable = status == 429 || status == 502 || status == 503 || status == 504;
    if (!retryable || stopping || attempt >= kMaxAttempts) {
      failed_.fetch_add(spans, std::memory_order_relaxed);
      batches_failed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    batches_retried_.fetch_add(1, std::memory_order_relaxed);
    Duration wait = std::min<Duration>(std::max(backoff, retry_after), std::chrono::seconds(5));
    backoff *= 2;
    std::unique_lock<std::mutex> lock(wake_mu_);
    if (wake_.wait_for(lock, wait, [this] { return stop_; })) stopping = true;
  }
}

void RenderTraceMetrics(PrometheusText& t, const OtlpExporter* exporter) {
  OtlpExporterStats s = exporter ? exporter->stats() : OtlpExporterStats{};
  t.Family("tokenway_trace_spans_total", "counter",
           "Spans of sampled requests by outcome: exported, dropped (export queue full) or "
           "failed (their batch could not be delivered).");
  t.Sample("tokenway_trace_spans_total", {{"outcome", "exported"}}, s.spans_exported);
  t.Sample("tokenway_trace_spans_total", {{"outcome", "dropped"}}, s.spans_dropped);
  t.Sample("tokenway_trace_spans_total", {{"outcome", "failed"}}, s.spans_failed);
  t.Family("tokenway_trace_export_batches_total", "counter",
           "OTLP export requests by result: success, failure, or retry (an attempt answered "
           "429, 502, 503 or 504 that was tried again).");
  t.Sample("tokenway_trace_export_batches_total", {{"result", "success"}}, s.batches_ok);
  t.Sample("tokenway_trace_export_batches_total", {{"result", "failure"}}, s.batches_failed);
  t.Sample("tokenway_trace_export_batches_total", {{"result", "retry"}}, s.batches_retried);
}

}  // namespace tokenway
